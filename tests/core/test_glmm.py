"""The generalised linear mixed model (issue 26) against lme4's glmer, on real data.

Reference: ``Rscript tests/reference/glmer_battery.R`` -> ``tests/data/glmm/glmer_battery.json``
and the datasets' CSVs next to it (provenance: ``tests/data/glmm/PROVENANCE.md``). lme4 1.1-31,
bobyqa in both stages at rhoend 1e-12 and ``tolPwrss = 1e-12``: at lme4's default PIRLS
tolerance its Laplace deviance is itself off by ~3e-6 relative (see the script). R is not
needed to run these tests.

Cases: cbpp (binomial with trials; Laplace, nAGQ 9 and 25, probit, and a Poisson rate with an
offset), Contraception (Bernoulli; Laplace, nAGQ 9, probit, a correlated random slope),
VerbAgg (subjects x items crossed), grouseticks (Poisson, three factors; centred and raw
altitude, the raw one a fit lme4 itself flags as not converged), epil (Poisson with an offset;
Laplace, nAGQ 9, a random slope), Mmmec (Poisson with an offset, regions in nations), guImmun
(children in mothers in communities).

Tolerances (issue 26): the deviance to 1e-6 relative; theta and fixed effects to 1e-4
relative, with an absolute floor of 1e-3 of the coefficient's standard error for
coefficients near zero (Contraception's age is 0.0035: the two optimisers agree on it to 4e-5
of its SE, below any precision the deviance resolves); conditional modes to 1e-3 of their
conditional sd, the sds and the fitted means to 1e-4 relative. Standard errors to 5e-3: both
sides invert a finite-difference Hessian of the deviance, and lme4's ``deriv12`` step moves
its SEs by a few 1e-3 (the script records a second finite-difference SE, ``se_fd``, to show it).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from mixcv_core.errors import ConvergenceWarning, SpecError
from mixcv_core.models import GeneralizedLinearMixedModel, glmer
from mixcv_core.models.mixed.family import get_family
from mixcv_core.models.mixed.glmm import fit_glmm
from mixcv_core.models.mixed.pirls import Problem
from mixcv_core.models.mixed.pls import Statistics

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "glmm"
REF = json.loads((DATA / "glmer_battery.json").read_text())
CASES = REF["cases"]
# Columns R wrote as text: the grouping factors and the raw factors of the fixed parts.
LABELS = {c for case in CASES.values() for c in (*case["group_columns"], *case.get("factor_levels", {}))}


def frame(dataset: str) -> pd.DataFrame:
    """A dataset's CSV with its grouping factors as text labels, as R wrote them."""
    path = DATA / f"{dataset}.csv"
    head = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={c: str for c in head if c in LABELS})


def intercept(name: str) -> str:
    return "Intercept" if name == "(Intercept)" else name


_FITS: dict[str, GeneralizedLinearMixedModel] = {}


def fitted(name: str) -> GeneralizedLinearMixedModel:
    """mixcv's fit of a case, once per test session (the slow ones take seconds)."""
    if name not in _FITS:
        case = CASES[name]
        link = None if case["link"] in ("logit", "log") else case["link"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # boundary notes; convergence is asserted below
            _FITS[name] = glmer(case["formula"], frame(case["dataset"]), family=case["family"], link=link,
                                nAGQ=case["nAGQ"])
    return _FITS[name]


def offset_of(name: str, rows: pd.DataFrame) -> np.ndarray | None:
    column = CASES[name].get("offset")
    return None if column is None else rows[column].to_numpy(dtype=float)


def mean_of(m: GeneralizedLinearMixedModel, rows: pd.DataFrame, offset: np.ndarray | None) -> np.ndarray:
    """The predicted mean through the public contract: P(y = 1) for binomial, ``predict`` for Poisson."""
    if m.family_.name == "binomial":
        proba = m.predict_proba(rows, offset=offset)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
        return proba[:, 1]
    return m.predict(rows, offset=offset)


# -- every case of the battery ----------------------------------------------------------------
# One test per case with all its checks: each fit runs once, and a case's failure names the check.

@pytest.mark.parametrize("name", list(CASES))
def test_mixcv_gives_glmer_s_deviance_estimates_modes_and_fitted_means_on(name):
    case = CASES[name]
    ref = case["fit"]
    m = fitted(name)
    # A certified optimum -- also on grouseticks_raw, where lme4 itself reports a gradient of 4e-3.
    assert m.converged_, m.convergence_
    assert bool(m.boundary_) == bool(ref["singular"])

    # The criterion lme4 minimises (Laplace, or AGQ without the saturated constants), never above it.
    np.testing.assert_allclose(m.deviance_, ref["objective"], rtol=1e-6, err_msg="deviance")
    assert m.deviance_ <= ref["objective"] * (1 + 1e-9), "mixcv stopped above glmer's optimum"
    np.testing.assert_allclose(m.llf_, ref["loglik"], rtol=1e-6, err_msg="llf as lme4 reports it for this nAGQ")

    names = [intercept(k) for k in ref["fixef"]]
    assert list(m.fe_params_.index) == names
    beta, se = np.array(list(ref["fixef"].values())), np.array(list(ref["se"].values()))
    gap = np.abs(m.fe_params_.to_numpy() - beta)
    assert np.all(gap <= 1e-4 * np.abs(beta) + 1e-3 * se), dict(zip(names, gap / np.abs(beta)))
    np.testing.assert_allclose(m.theta_, list(ref["theta"].values()), rtol=1e-4, atol=1e-6, err_msg="theta")
    for t in ref["terms"]:
        cov = np.asarray(ref["varcorr"][t["group"]]["cov"], dtype=float).reshape(len(t["columns"]), -1)
        scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
        got = m.varcorr_[t["group"]].to_numpy()
        assert np.all(np.abs(got - cov) <= 2e-4 * scale + 1e-10), (t["group"], got, cov)

    np.testing.assert_allclose(m.bse_.to_numpy(), np.array(list(reference_se(name).values())), rtol=5e-3,
                               err_msg="standard errors")

    for group, r in ref["ranef"].items():
        modes = m.random_effects_ if isinstance(m.random_effects_, pd.DataFrame) else m.random_effects_[group]
        sds = m.random_effects_sd_ if isinstance(m.random_effects_sd_, pd.DataFrame) else m.random_effects_sd_[group]
        want, want_sd = (np.asarray(r[k], dtype=float).reshape(len(r["levels"]), -1) for k in ("modes", "sds"))
        assert list(modes.columns) == [intercept(c) for c in r["columns"]]
        got = modes.loc[r["levels"]].to_numpy()
        assert np.all(np.abs(got - want) <= 1e-3 * want_sd), (group, np.max(np.abs(got - want) / want_sd))
        np.testing.assert_allclose(sds.loc[r["levels"]].to_numpy(), want_sd, rtol=1e-4, err_msg=f"sds of {group}")

    # Rows of known groups: conditional on their modes, glmer's fitted(m).
    rows = frame(case["dataset"]).iloc[ref["rows"]]
    mu = mean_of(m, rows, offset_of(name, rows))
    np.testing.assert_allclose(mu, ref["fitted"], rtol=1e-4, err_msg="fitted means of known groups")
    if m.family_.name == "binomial":
        np.testing.assert_array_equal(m.predict(rows), (np.asarray(ref["fitted"]) > 0.5).astype(int))


# lme4's vcov() SEs, except where its finite-difference step is off (documented in the R script):
# grouseticks' cHEIGHT SE is 0.003490 in vcov(m), 0.003439 by central differences at any step
# from 3e-4 to 1e-2 on glmer's own deviance function -- mixcv's 0.003438 is the latter.
# grouseticks with raw altitude, which lme4 reports as not converged and "nearly unidentifiable"
# (an eigenvalue ratio its rescaling advice is about): vcov's intercept and HEIGHT SEs are 0.9%
# and 1.2% above the plain central differences (1.6013, 0.0034363); mixcv's Hessian, differences
# of the exact gradient, gives 1.5992 and 0.0034385 -- within 0.15% of the differences.
LME4_SE_OFF = {"grouseticks": ["cHEIGHT"], "grouseticks_raw": ["(Intercept)", "HEIGHT"]}


def reference_se(name: str) -> dict[str, float]:
    fit = CASES[name]["fit"]
    se = dict(fit["se"])
    for column in LME4_SE_OFF.get(name, []):
        se[column] = fit["se_fd"]["se"][column]
    return se


def test_where_lme4_s_vcov_and_central_differences_disagree_mixcv_sides_with_the_differences():
    # The exception above is a finding, not a tolerance widened to pass: lme4's own deviance
    # function, differentiated plainly, disagrees with its vcov() by over 1%, and mixcv's SE
    # is the plain differences' to 1e-3.
    fit, m = CASES["grouseticks"]["fit"], fitted("grouseticks")
    for column in LME4_SE_OFF["grouseticks"]:
        fd, lme4 = fit["se_fd"]["se"][column], fit["se"][column]
        assert abs(lme4 / fd - 1) > 1e-2
        assert abs(m.bse_[column] / fd - 1) < 1e-3


def test_the_issue_s_cbpp_numbers_are_reproduced():
    # The issue quotes lme4's default-control fit; the tight optimum is 2e-5 away from it.
    m = fitted("cbpp")
    np.testing.assert_allclose(m.fe_params_.to_numpy(), [-1.39855, -0.99234, -1.12868, -1.58030], atol=5e-5)
    np.testing.assert_allclose(m.varcorr_["herd"].iloc[0, 0], 0.41246, atol=5e-5)


def test_the_issue_s_verbagg_deviance_is_reproduced():
    np.testing.assert_allclose(fitted("verbagg").deviance_, 8151.40, atol=5e-3)


@pytest.mark.parametrize("dataset", ["cbpp", "contraception", "epil"])
def test_quadrature_and_laplace_differ_on_the_scale_with_every_constant(dataset):
    # lme4's AGQ deviance sums deviance residuals, leaving out the saturated model's
    # log-likelihood; put back, it is -2 log L on Laplace's scale, and mixcv's AGQ fit
    # reaches glmer's there too. The two approximations then differ by a real amount.
    lap, agq = fitted(dataset), fitted(f"{dataset}_agq9")
    ref = CASES[f"{dataset}_agq9"]["fit"]
    with_constants = agq.deviance_ - 2 * ref["saturated_loglik"]
    np.testing.assert_allclose(with_constants, ref["minus2loglik_with_constants"], rtol=1e-6)
    assert abs(with_constants - lap.deviance_) > 1e-3
    assert np.sign(with_constants - lap.deviance_) == np.sign(
        ref["minus2loglik_with_constants"] - CASES[dataset]["fit"]["objective"])


def test_quadrature_converges_in_the_number_of_nodes():
    q9, q25 = fitted("cbpp_agq9"), fitted("cbpp_agq25")
    np.testing.assert_allclose(q25.fe_params_, q9.fe_params_, rtol=1e-3)
    np.testing.assert_allclose(q25.deviance_, q9.deviance_, rtol=1e-7)


# -- predictions for new groups: the marginal mean ---------------------------------------------

NEW = "a level not seen in training"


@pytest.mark.parametrize("name", list(REF["marginal"]))
def test_a_row_of_new_groups_gets_the_marginal_mean_r_integrates(name):
    # R: integrate() of linkinv(eta + s) dnorm(s, 0, sqrt(v)) at glmer's estimates, v the
    # random part's variance summed over the factors; mixcv's estimates are within 1e-4 of them.
    ref = REF["marginal"][name]
    m = fitted(name)
    rows = frame(CASES[name]["dataset"]).iloc[ref["rows"]].copy()
    for g in CASES[name]["group_columns"]:
        rows[g] = NEW
    got = mean_of(m, rows, offset_of(name, rows))
    np.testing.assert_allclose(got, ref["marginal"], rtol=2e-4)
    # ... which is not the plug-in with zero random effects (it would fail the comparison
    # above tenfold): for a bounded link nearer 0.5, for the log link higher.
    plug = np.asarray(ref["plug_in"])
    assert not np.allclose(got, plug, rtol=2e-3)
    if ref["link"] == "log":
        assert np.all(got > plug)
    else:
        assert np.all(np.abs(got - 0.5) < np.abs(plug - 0.5))


def test_a_new_herd_s_logit_probability_is_the_numerical_integral_over_its_random_effect():
    m = fitted("cbpp")
    rows = frame("cbpp").iloc[:4].copy()          # herd 1, periods 1 to 4
    rows["herd"] = NEW
    fe = m.fe_params_
    sd = float(np.sqrt(m.varcorr_["herd"].iloc[0, 0]))
    for i, (_, row) in enumerate(rows.iterrows()):
        eta = fe["Intercept"] + sum(fe[c] * float(row[c]) for c in ("period2", "period3", "period4"))
        expected = integrate.quad(lambda b, eta=eta: stats.logistic.cdf(eta + b) * stats.norm.pdf(b, 0, sd),
                                  -12 * sd, 12 * sd, epsabs=1e-13)[0]
        np.testing.assert_allclose(m.predict_proba(rows.iloc[[i]])[0, 1], expected, rtol=1e-7)


def test_a_new_herd_s_probit_probability_is_the_closed_form():
    # E Phi(eta + b), b ~ N(0, v), is P(Z - b < eta) = Phi(eta / sqrt(1 + v)); checked here
    # against the numerical integral too, so the closed form itself is not taken on trust.
    m = fitted("cbpp_probit")
    rows = frame("cbpp").iloc[:4].copy()
    rows["herd"] = NEW
    fe = m.fe_params_
    v = float(m.varcorr_["herd"].iloc[0, 0])
    eta = fe["Intercept"] + rows[["period2", "period3", "period4"]].to_numpy() @ fe[["period2", "period3", "period4"]]
    closed = stats.norm.cdf(eta / np.sqrt(1 + v))
    np.testing.assert_allclose(m.predict_proba(rows)[:, 1], closed, rtol=1e-12)
    sd = np.sqrt(v)
    numeric = [integrate.quad(lambda b, e=e: stats.norm.cdf(e + b) * stats.norm.pdf(b, 0, sd), -12 * sd, 12 * sd,
                              epsabs=1e-14)[0] for e in eta]
    np.testing.assert_allclose(closed, numeric, rtol=1e-8)


def test_a_new_herd_s_poisson_mean_is_the_integral_over_its_random_effect():
    m = fitted("cbpp_poisson_offset")
    d = frame("cbpp").iloc[[0]].copy()
    d["herd"] = NEW
    offset = float(d["log_size"].iloc[0])
    eta = m.fe_params_["Intercept"] + offset
    sd = float(np.sqrt(m.varcorr_["herd"].iloc[0, 0]))
    # exp(b) tilts the normal towards +v: integrate well past the peak.
    expected = integrate.quad(lambda b: np.exp(eta + b) * stats.norm.pdf(b, 0, sd), -12 * sd, 14 * sd)[0]
    np.testing.assert_allclose(m.predict(d, offset=d["log_size"].to_numpy()), [expected], rtol=1e-8)


def test_a_new_district_with_a_random_slope_is_integrated_over_intercept_and_slope_together():
    # (1 + urbanY | district): for a new district the random part is b0 + urbanY b1, normal
    # with variance z' Sigma z; the mean is integrated here by quadrature on that normal.
    m = fitted("contraception_slope")
    d = frame("contraception").iloc[:2].copy()
    d["urbanY"] = [0.0, 1.0]
    d["district"] = NEW
    sigma = m.varcorr_["district"].to_numpy()
    fe = m.fe_params_
    got = m.predict_proba(d)[:, 1]
    for i, (_, row) in enumerate(d.iterrows()):
        z = np.array([1.0, row["urbanY"]])
        sd = float(np.sqrt(z @ sigma @ z))
        eta = fe["Intercept"] + sum(fe[c] * float(row[c]) for c in fe.index if c != "Intercept")
        expected = integrate.quad(lambda b, eta=eta, sd=sd: stats.logistic.cdf(eta + b) * stats.norm.pdf(b, 0, sd),
                                  -12 * sd, 12 * sd, epsabs=1e-13)[0]
        np.testing.assert_allclose(got[i], expected, rtol=1e-7)


def test_a_known_subject_answering_a_new_item_keeps_the_subject_s_mode():
    # Crossed factors: the known id's mode is added, the new item's effect integrated out.
    m = fitted("verbagg")
    row = frame("verbagg").iloc[[0]].copy()
    row["item"] = NEW
    fe = m.fe_params_
    eta = fe["Intercept"] + sum(fe[c] * float(row[c].iloc[0]) for c in fe.index if c != "Intercept")
    eta += m.random_effects_["id"].loc[row["id"].iloc[0], "Intercept"]
    sd = float(np.sqrt(m.varcorr_["item"].iloc[0, 0]))
    expected = integrate.quad(lambda b: stats.logistic.cdf(eta + b) * stats.norm.pdf(b, 0, sd), -12 * sd, 12 * sd,
                              epsabs=1e-13)[0]
    np.testing.assert_allclose(m.predict_proba(row)[0, 1], expected, rtol=1e-7)


# -- the estimator's other entry points --------------------------------------------------------

def test_the_estimator_with_random_and_groups_gives_glmer_s_fit():
    d = frame("cbpp")
    X = d[["period2", "period3", "period4"]]
    y = d["incidence"] / d["size"]
    m = GeneralizedLinearMixedModel(random="(1 | herd)").fit(X, y, groups=d[["herd"]], weights=d["size"])
    np.testing.assert_allclose(m.deviance_, CASES["cbpp"]["fit"]["objective"], rtol=1e-6)
    m1 = GeneralizedLinearMixedModel().fit(X, y, groups=d["herd"], weights=d["size"])
    np.testing.assert_allclose(m1.fe_params_, m.fe_params_, rtol=1e-8)


def test_fit_glmm_takes_blocks_as_the_lmm_does():
    d = frame("cbpp")
    codes, levels = pd.factorize(d["herd"])
    X = np.column_stack([np.ones(len(d)), d[["period2", "period3", "period4"]]])
    fit = fit_glmm(X, (d["incidence"] / d["size"]).to_numpy(), [SimpleNamespace(codes=codes, n_levels=len(levels),
                                                                                  Z=np.ones((len(d), 1)))],
                   get_family("binomial"), weights=d["size"].to_numpy(float))
    np.testing.assert_allclose(fit.criterion, CASES["cbpp"]["fit"]["objective"], rtol=1e-6)
    assert fit.converged and fit.newton_decrement < 1e-9


def test_the_summary_names_the_approximation_and_prints_glmer_s_deviance_and_z_values():
    text = str(fitted("cbpp_agq9").summary())
    assert "adaptive Gauss-Hermite quadrature, nAGQ = 9" in text and "z value" in text
    assert f"{CASES['cbpp_agq9']['fit']['objective']:.4f}" in text
    # The latent residual of the logit link (pi^2 / 3), not a fitted parameter, in the column's 4 decimals.
    assert "Residual (latent)" in text and f"{np.pi ** 2 / 3:.4f}" in text


def test_a_group_without_effect_is_a_certified_boundary_fit_equal_to_the_plain_logistic_regression():
    # With a zero variance the GLMM is the GLM: its deviance is the GLM's -2 log-likelihood and
    # its fixed effects the GLM's, computed here by a direct maximisation.
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    y = rng.binomial(1, 0.4, 600).astype(float)
    g = np.repeat(np.arange(60), 10)
    with pytest.warns(UserWarning, match="boundary"):
        m = GeneralizedLinearMixedModel().fit(pd.DataFrame({"x": x}), y, groups=g)
    assert m.converged_ and m.boundary_ == ["Intercept"] and m.theta_[0] == 0.0
    X = np.column_stack([np.ones(600), x])

    def nll(b):
        eta = X @ b
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    glm = minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(m.fe_params_.to_numpy(), glm.x, atol=1e-6)
    np.testing.assert_allclose(m.deviance_, 2 * glm.fun, rtol=1e-9)


def test_a_fit_stopped_early_is_not_converged_and_warns():
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        m = glmer(CASES["cbpp"]["formula"], frame("cbpp"), max_evals=12)
    assert not m.converged_


# -- PIRLS internals on real data ---------------------------------------------------------------

def test_reweighted_statistics_reuse_the_pair_pattern_with_the_same_numbers():
    d = frame("verbagg").iloc[:2000]
    id_codes, item_codes = pd.factorize(d["id"])[0], pd.factorize(d["item"])[0]
    n = len(d)
    ones = np.ones((n, 1))
    X = np.column_stack([np.ones(n), d["Anger"]])
    codes, levels = [id_codes, item_codes], [id_codes.max() + 1, item_codes.max() + 1]
    first = Statistics(X, d["r2"].to_numpy(float), codes, [ones, ones], levels)
    sw = np.random.default_rng(1).uniform(0.2, 0.5, n)
    fresh = Statistics(X * sw[:, None], d["r2"].to_numpy(float) * sw, codes, [sw[:, None]] * 2, levels)
    reused = Statistics(X * sw[:, None], d["r2"].to_numpy(float) * sw, codes, [sw[:, None]] * 2, levels, like=first)
    assert reused._pair_index is first._pair_index
    V = np.random.default_rng(2).uniform(0.1, 1.0, (levels[0], 1, 1))
    np.testing.assert_allclose(reused.eliminated(V), fresh.eliminated(V), rtol=1e-13)


def test_the_row_sum_reweighting_of_crossed_terms_gives_the_sparse_products_numbers():
    # PIRLS rebuilds A from row sums when the terms after the first are scalar; the general
    # path (sparse products of the scaled rows) must give the same modes and deviance.
    d = frame("verbagg").iloc[:3000]
    X = np.column_stack([np.ones(len(d)), d[["Anger", "GenderM"]]])
    codes = [pd.factorize(d[c])[0] for c in ("id", "item")]
    ones = np.ones((len(d), 1))
    args = (X, d["r2"].to_numpy(float), np.ones(len(d)), np.zeros(len(d)), codes, [ones, ones],
            [c.max() + 1 for c in codes], get_family("binomial"))
    fast, slow = Problem(*args), Problem(*args)
    assert fast._reweight is not None
    slow._reweight = None
    theta, beta = np.array([1.2, 0.6]), np.array([-0.5, 0.05, 0.3])
    for b in (beta, None):
        a, s = fast.modes(theta, b), slow.modes(theta, b)
        np.testing.assert_allclose(fast.laplace(a), slow.laplace(s), rtol=1e-13)
        np.testing.assert_allclose(a.beta, s.beta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.u[0], s.u[0], rtol=1e-9, atol=1e-12)


# -- bad inputs: the battery's, and the contract's ---------------------------------------------
BAD = REF["bad_inputs"]


def bad_rows(case: dict) -> pd.DataFrame:
    d = frame(case["dataset"])
    return d.iloc[case["rows"]].reset_index(drop=True) if "rows" in case else d


def test_complete_separation_in_real_data_is_refused_naming_the_column():
    # VerbAgg with resp_no (the answer 'no') as a predictor: r2 = 1 - resp_no. glmer says
    # nothing and returns a coefficient of -79 with a standard error of 1.5e6.
    case = BAD["complete_separation"]
    with pytest.raises(SpecError, match="separation") as err:
        glmer(case["formula"], bad_rows(case))
    assert err.value.field == "X" and "'resp_no'" in str(err.value)


def test_quasi_complete_separation_in_real_data_is_refused_naming_the_column():
    # Contraception's district 11: its 21 women all have use = 0, so a fixed dummy for it has
    # no finite estimate (glmer: 'Hessian is numerically singular', a coefficient of -28).
    case = BAD["quasi_separation_all_zero_group"]
    with pytest.raises(SpecError, match="separation") as err:
        glmer(case["formula"], bad_rows(case))
    assert err.value.field == "X" and "'d11'" in str(err.value)


def test_complete_separation_is_refused_naming_x():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    g = np.repeat(np.arange(20), 10)
    y = (x > 0).astype(float)
    with pytest.raises(SpecError, match="separation") as err:
        GeneralizedLinearMixedModel().fit(pd.DataFrame({"x": x}), y, groups=g)
    assert err.value.field == "X" and "'x'" in str(err.value)


def test_districts_whose_outcomes_are_all_zero_get_glmer_s_finite_shrunken_modes():
    # Not an error: the random effect's distribution keeps such a district's mode finite (its
    # maximum-likelihood value alone would be minus infinity), as glmer's are.
    case = BAD["all_zero_groups_in_a_fit"]
    m = fitted(case["case"])
    modes, sds = m.random_effects_["Intercept"], m.random_effects_sd_["Intercept"]
    np.testing.assert_allclose(modes[case["levels"]], case["modes"], atol=1e-3 * min(case["sds"]))
    np.testing.assert_allclose(sds[case["levels"]], case["sds"], rtol=1e-4)
    assert m.converged_ and np.all(modes[case["levels"]] < 0) and np.all(modes[case["levels"]] > -5)


def test_every_outcome_zero_is_refused_naming_y():
    # The rows of Contraception's districts 11 and 49 (glmer: 'Response is constant').
    case = BAD["all_zero_outcome"]
    with pytest.raises(SpecError, match="every outcome") as err:
        glmer(case["formula"], bad_rows(case))
    assert err.value.field == "y"


@pytest.mark.parametrize("response, field, cause", [
    ("incidence", "y", "0/1 or a proportion"),                     # counts given as if Bernoulli
    ("incidence / size", "weights", "whole number of successes"),  # proportions without their trials
    ("incidence - 1", "y", "0/1 or a proportion"),                 # negative
])
def test_a_binomial_outcome_that_is_not_0_1_without_trials_is_refused_naming_its_field(response, field, cause):
    d = frame("cbpp").assign(outcome=lambda f: f.eval(response))
    with pytest.raises(SpecError, match=cause) as err:
        glmer("outcome ~ period2 + period3 + period4 + (1 | herd)", d)
    assert err.value.field == field


def test_negative_counts_are_refused_naming_y():
    d = frame("grouseticks").assign(TICKS=lambda f: f["TICKS"] - 1)
    with pytest.raises(SpecError, match="non-negative count") as err:
        glmer("TICKS ~ YEAR96 + YEAR97 + cHEIGHT + (1 | BROOD)", d, family="poisson")
    assert err.value.field == "y"


def test_a_non_integer_count_warns_naming_y():
    d = frame("epil").assign(y=lambda f: f["y"] + 0.5)
    with pytest.warns(UserWarning, match=r"\by\b.*integer|integer.*\by\b"):
        glmer("y ~ post + (1 | subject)", d, family="poisson")


def test_cbind_with_negative_failures_is_refused_naming_the_formula():
    with pytest.raises(SpecError) as err:
        glmer("cbind(incidence, size - incidence - 20) ~ period2 + (1 | herd)", frame("cbpp"))
    assert err.value.field == "formula"


def test_quadrature_for_two_terms_is_refused_naming_nagq():
    d = frame("verbagg").iloc[:400]
    with pytest.raises(SpecError, match="one scalar random effect") as err:
        glmer("r2 ~ Anger + (1 | id) + (1 | item)", d, nAGQ=5)
    assert err.value.field == "nAGQ"
    with pytest.raises(SpecError, match="one scalar random effect") as err:
        glmer("y ~ post + (1 + post | subject) + offset(log_weeks)", frame("epil"), family="poisson", nAGQ=9)
    assert err.value.field == "nAGQ"
    with pytest.raises(SpecError, match="25") as err:
        glmer("r2 ~ Anger + (1 | id)", d, nAGQ=26)
    assert err.value.field == "nAGQ"


def test_bad_family_and_link_are_named():
    d = frame("cbpp")
    with pytest.raises(SpecError, match="gamma") as err:
        glmer(CASES["cbpp"]["formula"], d, family="gamma")
    assert err.value.field == "family"
    with pytest.raises(SpecError, match="'log'") as err:
        glmer(CASES["cbpp"]["formula"], d, link="log")
    assert err.value.field == "link"
    with pytest.raises(SpecError, match="'logit'") as err:
        glmer(CASES["epil"]["formula"], frame("epil"), family="poisson", link="logit")
    assert err.value.field == "link"


# -- the README's comparison with glmer on cbpp cannot rot --------------------------------------

def readme_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Binary and count outcomes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in rows[1:]]
    return {row[0]: (row[1], row[2]) for row in cells}


def test_the_readme_s_cbpp_table_prints_glmer_s_and_mixcv_s_numbers():
    table = readme_table()
    ref, m = CASES["cbpp"]["fit"], fitted("cbpp")
    agq = CASES["cbpp_agq9"]["fit"]
    expected = {f"{k} estimate (SE)": ((v, ref["se"][k]), (m.fe_params_[intercept(k)], m.bse_[intercept(k)]))
                for k, v in ref["fixef"].items()}
    expected["herd variance (Std.Dev.)"] = (
        (ref["varcorr"]["herd"]["cov"][0][0], ref["varcorr"]["herd"]["sd"][0]),
        (m.varcorr_["herd"].iloc[0, 0], np.sqrt(m.varcorr_["herd"].iloc[0, 0])))
    expected["logLik"] = ((ref["loglik"],), (m.llf_,))
    expected["-2 logLik (glmer's `deviance` line)"] = ((ref["minus2loglik"],), (m.deviance_,))
    expected["AIC"] = ((ref["aic"],), (m.deviance_ + 2 * (len(m.fe_params_) + len(m.theta_)),))
    expected["nAGQ = 9: -2 logLik with the binomial constants"] = (
        (agq["minus2loglik_with_constants"],), (fitted("cbpp_agq9").deviance_ - 2 * agq["saturated_loglik"],))
    assert set(table) == set(expected)
    for label, sides in expected.items():
        for side, printed in zip(sides, table[label]):
            numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", printed)]
            decimals = [len(x.split(".")[1]) for x in re.findall(r"-?\d+\.\d+", printed)]
            assert len(numbers) == len(side), (label, printed)
            for value, shown, places in zip(side, numbers, decimals):
                # The printed digits are the value rounded (0.6 of the last place: an SE from a
                # differenced Hessian may sit on a rounding boundary, 0.4274350 -> 0.42743 or 4).
                assert abs(shown - float(value)) <= 0.6 * 10.0 ** -places, (label, printed, value)
