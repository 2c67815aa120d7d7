"""The native LMM solver against lme4's published results and statsmodels.

Reference values were produced with R 4.2.2 and lme4 1.1.31 (Debian packages) on
lme4's sleepstudy data (tests/data/sleepstudy.csv); the R code is next to each set.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from statsmodels.regression.mixed_linear_model import MixedLM

from mixcv_core import ConvergenceWarning, CrossValidation, MixcvError
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.models.lmm import _Criterion, relative_factor

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")

# lmer(Reaction ~ Days + (Days | Subject), sleepstudy)   -- lme4 defaults, as published
LME4_DEFAULT = {"fe": [251.4051048485, 10.4672859596], "sigma2": 654.94000826,
                "cov": [[612.10015802477, 9.60440895116], [9.60440895116, 35.07171445094]],
                "remlcrit": 1743.62827196, "se": [6.82459669495, 1.54578964391],
                "theta": [0.966741773967, 0.015169058896, 0.230909953208]}
# ... with control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
LME4_TIGHT = {"fe": [251.4051048485, 10.4672859596], "sigma2": 654.94104068197,
              "cov": [[612.0897482746686, 9.6043354747549], [9.6043354747549, 35.0716623442135]],
              "remlcrit": 1743.62827195849, "se": [6.8245557762758, 1.5457889324299]}
# ... the same with REML = FALSE
LME4_ML_TIGHT = {"sigma2": 654.94103758017, "loglik": -875.969672231599,
                 "cov": [[565.515271042699, 11.055414458564], [11.055414458564, 32.682197613824]]}


def fit_sleep(reml=True, backend="native"):
    X = SLEEP[["Days"]].astype(float)
    return LinearMixedEffectsModel(reml=reml, backend=backend).fit(X, SLEEP["Reaction"], groups=SLEEP["Subject"],
                                                                   slopes=["Days"])


def test_sleepstudy_matches_lme4_to_1e5():
    m = fit_sleep()
    assert m.converged_ and not m.boundary_
    ref = LME4_TIGHT
    np.testing.assert_allclose(m.fe_params_.to_numpy(), ref["fe"], rtol=1e-8)
    np.testing.assert_allclose(m.scale_, ref["sigma2"], rtol=1e-5)
    np.testing.assert_allclose(m.cov_re_.to_numpy(), ref["cov"], rtol=1e-5)
    np.testing.assert_allclose(m.reml_criterion_, ref["remlcrit"], rtol=1e-10)
    np.testing.assert_allclose(m.bse_.to_numpy(), ref["se"], rtol=1e-5)
    assert list(m.cov_re_.index) == ["Intercept", "Days"] and len(m.random_effects_) == 18


def test_sleepstudy_against_lme4_defaults_as_published():
    m = fit_sleep()
    ref = LME4_DEFAULT
    np.testing.assert_allclose(m.fe_params_.to_numpy(), ref["fe"], rtol=1e-8)
    np.testing.assert_allclose(m.scale_, ref["sigma2"], rtol=1e-5)
    np.testing.assert_allclose(m.bse_.to_numpy(), ref["se"], rtol=1e-5)
    # lme4's default BOBYQA stops where the criterion is still 1.5e-9 above its minimum;
    # on this flat ridge that moves var(Intercept) by 1.7e-5, so its published variance
    # components are themselves only good to about 2e-5 (the tight fit above agrees
    # with ours to 3e-7).
    np.testing.assert_allclose(m.cov_re_.to_numpy(), ref["cov"], rtol=3e-5)
    assert m.reml_criterion_ <= ref["remlcrit"] + 1e-9


def test_criterion_reproduces_lme4_at_its_own_theta():
    X = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    codes = pd.factorize(SLEEP["Subject"], sort=True)[0]
    crit = _Criterion(X, SLEEP["Reaction"].to_numpy(float), X.copy(), codes, 18, reml=True)
    np.testing.assert_allclose(crit(np.array(LME4_DEFAULT["theta"])), LME4_DEFAULT["remlcrit"], rtol=1e-11)


def test_sleepstudy_ml_matches_lme4():
    m = fit_sleep(reml=False)
    ref = LME4_ML_TIGHT
    np.testing.assert_allclose(m.llf_, ref["loglik"], rtol=1e-10)
    np.testing.assert_allclose(m.scale_, ref["sigma2"], rtol=1e-5)
    np.testing.assert_allclose(m.cov_re_.to_numpy(), ref["cov"], rtol=1e-5)
    assert np.isnan(m.reml_criterion_)


@pytest.mark.parametrize("reml", [True, False])
def test_exact_gradient_matches_finite_differences(reml):
    rng = np.random.default_rng(1)
    n, k = 300, 25
    g = rng.integers(0, k, n)
    X = rng.normal(size=(n, 3))
    Z = np.column_stack([np.ones(n), X[:, 0], X[:, 1]])
    y = X @ [1, 2, 3] + rng.normal(size=n) + 2 * rng.normal(size=k)[g] + rng.normal(size=k)[g] * X[:, 0]
    crit = _Criterion(np.column_stack([np.ones(n), X]), y, Z, pd.factorize(g, sort=True)[0], k, reml)
    theta = np.array([1.2, 0.3, -0.2, 0.8, 0.1, 0.5])
    _, grad = crit.value_and_grad(theta)
    h = 1e-5
    central = np.array([(crit(theta + h * e) - crit(theta - h * e)) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(grad, central, rtol=1e-6, atol=1e-6)
    assert np.allclose(approx_fprime(theta, crit, 1e-7), grad, rtol=1e-3, atol=1e-3)


def shaped(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "few large groups":
        g = np.repeat(np.arange(5), 200)
    elif kind == "many small groups":
        g = np.repeat(np.arange(300), 3)
    elif kind == "unbalanced with a group of one":
        g = np.repeat(np.arange(40), rng.integers(1, 30, 40))
        g = np.concatenate([g, [999]])
    elif kind == "slope variance zero":
        g = np.repeat(np.arange(60), 12)
    n, k = len(g), len(np.unique(g))
    codes = pd.factorize(g)[0]
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x1", "x2", "x3"])
    sd_slope = 0.0 if kind == "slope variance zero" else 0.7
    b0, b1 = rng.normal(0, 1.5, k), rng.normal(0, sd_slope, k)
    y = 2 + X @ [1.0, -0.5, 0.25] + b0[codes] + b1[codes] * X["x1"] + rng.normal(0, 1, n)
    return X, y.to_numpy(), g


SHAPES = ["few large groups", "many small groups", "unbalanced with a group of one", "slope variance zero"]


@pytest.mark.parametrize("kind", SHAPES)
def test_agrees_with_statsmodels_and_is_never_worse(kind):
    X, y, g = shaped(kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = LinearMixedEffectsModel().fit(X, y, groups=g, slopes=["x1"])
        exog = np.column_stack([np.ones(len(y)), X])
        ere = np.column_stack([np.ones(len(y)), X["x1"]])
        sm = MixedLM(y, exog, groups=g, exog_re=ere).fit(reml=True, gtol=1e-8)
    assert ours.converged_
    # Judge both answers by the same REML criterion: ours is never higher.
    crit = _Criterion(exog, y, ere, pd.factorize(g, sort=True)[0], len(np.unique(g)), reml=True)
    lam_sm = relative_factor(np.asarray(sm.cov_re) / sm.scale)
    crit_sm = crit(lam_sm[[0, 1, 1], [0, 0, 1]])
    assert ours.reml_criterion_ <= crit_sm + 1e-7
    if any("failed to converge" in str(w.message) for w in caught):
        # statsmodels gave up (and its fallback optimiser stopped elsewhere): there is
        # nothing to agree with, and the criterion shows which answer is the optimum.
        assert ours.reml_criterion_ < crit_sm - 1.0
        return
    np.testing.assert_allclose(ours.fe_params_.to_numpy(), sm.fe_params, rtol=1e-5, atol=1e-5)
    scale = max(np.abs(np.asarray(sm.cov_re)).max(), sm.scale)
    np.testing.assert_allclose(ours.cov_re_.to_numpy(), sm.cov_re, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(ours.scale_, sm.scale, rtol=1e-3)


def test_zero_slope_variance_is_a_reported_boundary_fit():
    rng = np.random.default_rng(5)
    n, k = 400, 40
    g = np.repeat(np.arange(k), n // k)
    X = pd.DataFrame({"x1": rng.normal(size=n)})
    # The slope differs by group not at all, and the intercept a lot.
    y = 1 + 2 * X["x1"] + rng.normal(0, 2, k)[g] + rng.normal(0, 1, n)
    # A perfectly flat slope still shows sampling variation; remove it so the REML
    # estimate of the slope variance is exactly on the bound.
    for j in range(k):
        m = g == j
        xm = X["x1"][m] - X["x1"][m].mean()
        y[m] -= (xm * (y[m] - y[m].mean())).sum() / (xm @ xm) * xm - 2 * xm
    with pytest.warns(UserWarning, match="boundary"):
        lmm = LinearMixedEffectsModel().fit(X, y, groups=g, slopes=["x1"])
    assert lmm.converged_
    assert lmm.boundary_ == ["x1"]
    assert lmm.cov_re_.loc["x1", "x1"] < 1e-4 and lmm.cov_re_.loc["Intercept", "Intercept"] > 1


def test_rank_deficient_design_is_refused():
    X, y, g = shaped("few large groups")
    X["x4"] = X["x1"] * 2
    with pytest.raises(MixcvError) as info:
        LinearMixedEffectsModel().fit(X, y, groups=g)
    # The message names the aliased column (x4 = 2 x1), as lme4's rank check would drop it.
    assert info.value.field == "X" and "x4 is a combination of the columns before" in info.value.message


def test_non_convergence_is_in_the_fold_table_and_warned(grouped):
    X, y, group, slopes = grouped
    cv = (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=3)
          .add_model(LinearMixedEffectsModel, model_kwargs={"backend": "statsmodels"}, fit_kwargs={"maxiter": 1}))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = cv.perform().get_results()
    assert (res.to_frame()["converged"] == False).all()  # noqa: E712 - a column of Python bools


def test_native_is_the_default_backend_and_engine_uses_it(grouped):
    X, y, group, slopes = grouped
    res = (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=3)
           .add_model(LinearMixedEffectsModel).perform().get_results())
    est = res.models[("LinearMixedEffectsModel", 0)]
    assert est.backend == "native" and est.n_evals_ > 0 and (res.to_frame()["converged"] == True).all()  # noqa: E712


def _sleep_criterion(reml=True):
    X = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    codes = pd.factorize(SLEEP["Subject"], sort=True)[0]
    return X, codes, _Criterion(X, SLEEP["Reaction"].to_numpy(float), X.copy(), codes, 18, reml=reml)


def _saddle(crit):
    """The best fit with the Days column of Lambda held at zero (a random slope perfectly
    correlated with the intercept): a stationary point of the criterion, its gradient in
    that column exactly zero by symmetry, that is not a minimum."""
    from scipy.optimize import minimize
    best = minimize(lambda t: crit(np.array([t[0], t[1], 0.0])), [1.0, 0.0], method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    return np.array([best.x[0], best.x[1], 0.0])


def test_the_saddle_passes_a_first_order_test_but_not_the_certificate():
    from mixcv_core.models.lmm import _certify
    _, _, crit = _sleep_criterion()
    saddle = _saddle(crit)
    _, grad = crit.value_and_grad(saddle)
    assert np.max(np.abs(grad)) < 1e-4          # what fooled the bounded optimiser
    cert = _certify(crit, saddle)
    assert not cert.ok and "saddle" in cert.message
    assert crit(cert.descent) < crit(saddle) - 1.0   # a real way down, not rounding


def test_a_fit_started_at_the_saddle_escapes_it_to_lme4s_optimum():
    from mixcv_core.models.lmm import fit_lmm
    X, codes, crit = _sleep_criterion()
    fit = fit_lmm(X, SLEEP["Reaction"].to_numpy(float), X.copy(), codes, 18, theta0=_saddle(crit))
    assert fit.converged and not fit.boundary
    np.testing.assert_allclose(fit.criterion, LME4_TIGHT["remlcrit"], rtol=1e-11)
    np.testing.assert_allclose(fit.cov_re, LME4_TIGHT["cov"], rtol=1e-5)


def test_converged_is_true_only_at_the_optimum():
    from mixcv_core.models.lmm import _certify, fit_lmm
    X, codes, crit = _sleep_criterion()
    optimum = fit_sleep().theta_
    assert _certify(crit, optimum).ok
    away = _certify(crit, optimum * 1.2)
    assert not away.ok and away.newton_decrement > 1e-3
    # A limit reached is never convergence, and it says so.
    short = fit_lmm(X, SLEEP["Reaction"].to_numpy(float), X.copy(), codes, 18, max_evals=4)
    assert not short.converged and "limit of 4 criterion evaluations" in short.message
    with pytest.warns(ConvergenceWarning, match="limit of 4"):
        m = LinearMixedEffectsModel(max_evals=4).fit(SLEEP[["Days"]], SLEEP["Reaction"], groups=SLEEP["Subject"],
                                                     slopes=["Days"])
    assert not m.converged_ and m.convergence_ == short.message
