"""Binary MERF (GMERF, issue 27 item 4) against MASS::glmmPQL on real data, and its contract.

Reference: ``Rscript tests/reference/glmmpql.R`` -> ``tests/data/gmerf/glmmpql.json`` (provenance:
``tests/data/gmerf/PROVENANCE.md``): glmmPQL's own fit and the same PQL loop iterated to
``max |delta eta| < 1e-8`` with nlme at tight tolerances (``tight``, which agrees with glmmPQL
to 4e-7 in the fixed effects). R is not needed to run these tests.

With a linear base model binary MERF *is* PQL: lme on the working response with ``method =
"ML"`` and ``varFixed(~1/w)`` weights, the dispersion sigma^2 estimated. Both sides at a tight
tolerance (MERF: ``tol = outer_tol = 1e-6``), the worst differences measured on the four cases
were: fixed effects 9.5e-7 (absolute; the random slope case), D 2.1e-5 relative, sigma^2 9e-9
relative, conditional modes 1.6e-5 (absolute). The tolerances below are 1e-5, 1e-4, 1e-6, 1e-4.
The fixed effects compared are the linear part plus the linear base model's coefficients: with a
linear base the two are one linear predictor, split between them arbitrarily.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special
from sklearn.base import clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import log_loss
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier

from mixcv_core.errors import ConvergenceWarning, MixcvError
from mixcv_core.models import GeneralizedLinearMixedModel
from mixcv_core.models.merf_binary import COUNTERPARTS, MERFClassifier, regression_counterpart

DATA = Path(__file__).parent.parent / "data"
REF = json.loads((DATA / "gmerf" / "glmmpql.json").read_text())
CON_X = ["age", "I_age_2_", "urbanY", "livch1", "livch2", "livch3_"]


def contraception() -> pd.DataFrame:
    d = pd.read_csv(DATA / "glmm" / "contraception.csv", dtype={"district": str})
    d["wt"] = 1 + np.arange(len(d)) % 3          # the R script's integer prior weights
    return d


def cbpp_rows() -> pd.DataFrame:
    """lme4's cbpp as 0/1 rows, in the order the R script makes them."""
    cb = pd.read_csv(DATA / "glmm" / "cbpp.csv", dtype={"herd": str})
    rows = [(y, r.herd, r.period2, r.period3, r.period4) for r in cb.itertuples()
            for y in [1] * r.incidence + [0] * (r.size - r.incidence)]
    return pd.DataFrame(rows, columns=["y", "herd", "period2", "period3", "period4"])


CASES = {
    "contraception": (contraception, CON_X, "use", "district", None, None),
    "contraception_slope": (contraception, CON_X, "use", "district", ["urbanY"], None),
    "contraception_wt": (contraception, CON_X, "use", "district", None, "wt"),
    "cbpp_rows": (cbpp_rows, ["period2", "period3", "period4"], "y", "herd", None, None),
}


def fit_case(name: str, **kw: object) -> tuple[MERFClassifier, pd.DataFrame]:
    load, cols, y, g, slopes, wt = CASES[name]
    d = load()
    args = {"tol": 1e-6, "max_iterations": 5000, "outer_tol": 1e-6, **kw}
    m = MERFClassifier(LinearRegression(), **args).fit(d[cols], d[y], groups=d[g], slopes=slopes,
                                                       sample_weight=None if wt is None else d[wt])
    return m, d


def total_fixed(m: MERFClassifier) -> np.ndarray:
    lr = m.trained_fe_model
    return m.fe_linear_.to_numpy() + np.r_[lr.intercept_, lr.coef_]


@pytest.mark.parametrize("name", list(CASES))
def test_binary_merf_with_a_linear_base_is_glmmpql(name):
    m, _ = fit_case(name)
    r = REF[name]["tight"]
    assert m.converged_
    np.testing.assert_allclose(total_fixed(m), list(r["fixef"].values()), atol=1e-5, rtol=0)
    (D,) = m.varcorr_.values()
    np.testing.assert_allclose(D.to_numpy(), np.array(r["D"]), rtol=1e-4, atol=0)
    np.testing.assert_allclose(m.scale_, r["sigma"] ** 2, rtol=1e-6)
    modes = m.random_effects_.reindex(r["ranef_levels"]).to_numpy()
    np.testing.assert_allclose(modes, np.array(r["ranef"]), atol=1e-4, rtol=0)
    # glmmPQL as shipped stops at a relative change of 1e-3 and lands on the same fit.
    np.testing.assert_allclose(total_fixed(m), list(REF[name]["glmmPQL"]["fixef"].values()), atol=1e-4)


def test_a_fit_stopped_after_one_pql_iteration_says_it_did_not_converge_and_is_off_the_reference():
    with pytest.warns(ConvergenceWarning, match="outer_max_iterations=1"):
        m, _ = fit_case("cbpp_rows", outer_max_iterations=1)
    assert m.converged_ is False
    assert "outer_max_iterations=1" in m.convergence_
    r = REF["cbpp_rows"]["tight"]
    # One linearisation around the overall mean is not PQL's fixed point: the claim is right to be False.
    assert np.abs(total_fixed(m) - list(r["fixef"].values())).max() > 0.05


def test_known_groups_get_conditional_probabilities_and_new_groups_the_integral_over_the_random_effect():
    m, d = fit_case("cbpp_rows")
    x = pd.DataFrame({"period2": [1.0], "period3": [0.0], "period4": [0.0]})
    eta_fixed = float(m.decision_function(x)[0])
    (D,) = m.varcorr_.values()
    sd = float(np.sqrt(D.to_numpy()[0, 0]))
    # New herd: E expit(eta + b), b ~ N(0, D), by adaptive quadrature (not the Gauss-Hermite rule used).
    expected, _ = integrate.quad(lambda b: special.expit(eta_fixed + b) * np.exp(-b * b / (2 * sd * sd))
                                 / (sd * np.sqrt(2 * np.pi)), -12 * sd, 12 * sd, epsabs=1e-12)
    p_new = m.predict_proba(x, groups=["no such herd"])[0, 1]
    assert abs(p_new - expected) < 1e-8
    assert abs(p_new - special.expit(eta_fixed)) > 1e-3        # not the plug-in b = 0
    # Known herd: conditional on its mode.
    herd = str(m.random_effects_.index[0])
    b = float(m.random_effects_.iloc[0, 0])
    p_known = m.predict_proba(x, groups=[herd])[0, 1]
    assert abs(p_known - special.expit(eta_fixed + b)) < 1e-12
    # predict_known_groups=False: every row marginal.
    m.set_params(predict_known_groups=False)
    assert abs(m.predict_proba(x, groups=[herd])[0, 1] - expected) < 1e-8


def test_a_forest_inside_binary_merf_beats_the_plain_forest_on_held_out_rows_of_known_districts():
    d = contraception()
    cols = ["age", "urbanY", "livch1", "livch2", "livch3_"]
    rng = np.random.default_rng(0)
    test = np.zeros(len(d), bool)
    for idx in d.groupby("district").indices.values():
        test[rng.choice(idx, size=max(1, len(idx) // 4), replace=False)] = True
    tr, te = d[~test], d[test]
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=20, random_state=0, n_jobs=1)
    plain = log_loss(te["use"], clone(forest).fit(tr[cols], tr["use"]).predict_proba(te[cols])[:, 1])
    m = MERFClassifier(forest).fit(tr[cols], tr["use"], groups=tr["district"])
    known = log_loss(te["use"], m.predict_proba(te[cols], groups=te["district"])[:, 1])
    assert m.converged_
    assert m.counterpart_ == "RandomForestRegressor" and m.weighted_base_
    assert known < plain - 0.01          # measured: 0.626 against 0.646 (300 trees)


class _CountedForest(RandomForestRegressor):
    """A forest that records the number of trees of every fit (the light phase's and the real one's)."""

    def fit(self, X, y, sample_weight=None):
        FITS.append(self.n_estimators)
        return super().fit(X, y, sample_weight=sample_weight)


FITS: list[int] = []


def test_a_large_forest_moves_eta_on_a_small_one_first_and_every_iteration_that_counts_uses_the_real_one():
    d = cbpp_rows()
    cols = ["period2", "period3", "period4"]
    FITS.clear()
    forest = _CountedForest(n_estimators=40, min_samples_leaf=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MERFClassifier(forest, em_estimators=10).fit(d[cols], d["y"], groups=d["herd"])
    h = m.history_
    light = int((~h["full_base"]).sum())
    assert light >= 1 and not h["full_base"].iloc[:light].any() and h["full_base"].iloc[light:].all()
    # One EM step on 10 trees per light iteration, then the real forest, which the fit returned is.
    assert FITS[:light] == [10] * light and FITS[light] == 40 and FITS[-1] == 40
    assert (h["inner_iterations"].iloc[:light] == 1).all()
    assert m.trained_fe_model.n_estimators == 40 and len(m.trained_fe_model.estimators_) == 40
    assert m.converged_        # both changes that made it converged are between real-forest fits
    assert (h["eta_change"].iloc[-2:] < m.outer_tol).all() and light <= len(h) - 3
    # A single PQL iteration, or no light forest (em_estimators=None): no light phase.
    FITS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = MERFClassifier(forest, em_estimators=10, outer_max_iterations=1).fit(d[cols], d["y"], groups=d["herd"])
        small = MERFClassifier(forest, em_estimators=None, outer_max_iterations=3).fit(d[cols], d["y"],
                                                                                    groups=d["herd"])
    assert one.history_["full_base"].all() and small.history_["full_base"].all()
    assert set(FITS) == {40}


def test_a_fit_whose_eta_stalls_above_outer_tol_stops_after_outer_patience_iterations_without_a_new_low():
    d = contraception()
    cols, y, g = CON_X, "use", "district"
    # A 10-tree forest on age refitted to a moving working response never moves eta by less than 1e-6.
    forest = RandomForestRegressor(n_estimators=10, min_samples_leaf=20, random_state=0)
    with pytest.warns(ConvergenceWarning, match="stalled"):
        m = MERFClassifier(forest, outer_tol=1e-6, outer_patience=3).fit(d[cols], d[y], groups=d[g])
    assert m.converged_ is False and "outer_patience" in m.convergence_
    changes = list(m.history_["eta_change"])
    # Written out: the first iteration at which the lowest change so far is 3 iterations old.
    low, at, stop = np.inf, 0, None
    for i, c in enumerate(changes):
        low, at = (c, i) if c < low else (low, at)
        if i - at >= 3:
            stop = i
            break
    assert stop == len(changes) - 1 < m.outer_max_iterations - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = MERFClassifier(forest, outer_tol=1e-6, outer_patience=None, outer_max_iterations=len(changes) + 2)
        whole.fit(d[cols], d[y], groups=d[g])
    assert whole.n_iter_ == len(changes) + 2 and "outer_max_iterations" in whole.convergence_


def test_prior_weights_reach_a_base_that_takes_them_and_a_base_without_them_is_fitted_unweighted():
    d = cbpp_rows()
    cols = ["period2", "period3", "period4"]
    w = 1 + np.arange(len(d)) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MERFClassifier(RandomForestRegressor(n_estimators=10, random_state=0), outer_max_iterations=3)
        m.fit(d[cols], d["y"], groups=d["herd"], sample_weight=w)
        assert m.weighted_base_
        k = MERFClassifier(KNeighborsClassifier(n_neighbors=50), outer_max_iterations=3)
        k.fit(d[cols], d["y"], groups=d["herd"], sample_weight=w)
    assert not k.weighted_base_ and k.counterpart_ == "KNeighborsRegressor"


def test_a_classifier_base_is_mapped_to_its_regression_counterpart_with_its_parameters():
    reg, carried, dropped = regression_counterpart(
        RandomForestClassifier(max_depth=4, min_samples_leaf=7, criterion="entropy", class_weight="balanced"))
    assert type(reg).__name__ == "RandomForestRegressor"
    assert reg.get_params()["max_depth"] == 4 and reg.get_params()["min_samples_leaf"] == 7
    assert carried["max_depth"] == 4
    assert dropped == {"criterion": "entropy", "class_weight": "balanced"}
    reg, carried, dropped = regression_counterpart(LogisticRegression(C=4.0, solver="liblinear"))
    assert isinstance(reg, Ridge) and reg.alpha == 0.25 and carried == {"alpha": 0.25, "fit_intercept": True}
    assert "solver" in dropped and "C" not in dropped
    reg, _, dropped = regression_counterpart(HistGradientBoostingClassifier(max_iter=20))
    assert type(reg).__name__ == "HistGradientBoostingRegressor" and reg.max_iter == 20 and "loss" in dropped
    reg, _, dropped = regression_counterpart(GradientBoostingClassifier(n_estimators=5))
    assert reg.n_estimators == 5 and dropped == {"loss": "log_loss"}


@pytest.mark.parametrize("key", [k for k in COUNTERPARTS if k.startswith("sklearn:")])
def test_every_scikit_learn_counterpart_in_the_table_fits_a_regression_with_the_default_parameters(key):
    import sklearn.utils
    classes = dict(sklearn.utils.all_estimators(type_filter="classifier"))
    reg, _, _ = regression_counterpart(classes[key.split(":")[1]]())
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    assert reg.fit(X, X[:, 0]).predict(X).shape == (40,)


def test_bad_input_is_refused_naming_the_field_before_any_fit():
    d = cbpp_rows()
    X, g = d[["period2", "period3", "period4"]], d["herd"]

    def field_of(fn):
        with pytest.raises(MixcvError) as info:
            fn()
        return info.value.field, str(info.value)

    field, text = field_of(lambda: MERFClassifier(GaussianNB()).fit(X, d["y"], groups=g))
    assert field == "fixed_effects_model" and "GaussianNB" in text
    field, text = field_of(lambda: MERFClassifier(GeneralizedLinearMixedModel()).fit(X, d["y"], groups=g))
    assert field == "fixed_effects_model" and "random effects of its own" in text
    field, text = field_of(lambda: MERFClassifier(LinearRegression()).fit(X, np.arange(len(d)) % 3, groups=g))
    assert field == "y" and "3" in text
    assert field_of(lambda: MERFClassifier(LinearRegression(), outer_tol=0).fit(X, d["y"], groups=g))[0] == "outer_tol"
    assert field_of(lambda: MERFClassifier(LinearRegression(), outer_patience=0).fit(
        X, d["y"], groups=g))[0] == "outer_patience"
    assert field_of(lambda: MERFClassifier(LinearRegression(), outer_max_iterations=0).fit(
        X, d["y"], groups=g))[0] == "outer_max_iterations"
    assert field_of(lambda: MERFClassifier(LinearRegression()).fit(
        X, d["y"], groups=g, sample_weight=-np.ones(len(d))))[0] == "sample_weight"
    assert field_of(lambda: MERFClassifier(LinearRegression()).fit(X, d["y"]))[0] == "groups"


def test_labels_come_back_as_given_and_each_pql_iteration_reaches_the_callback():
    d = cbpp_rows()
    seen = []
    y = np.where(d["y"] == 1, "case", "healthy")        # "healthy" > "case": it is the positive class
    m = MERFClassifier(LinearRegression(), callback=seen.append).fit(d[["period2"]], y, groups=d["herd"])
    assert list(m.classes_) == ["case", "healthy"]
    assert set(m.predict(d[["period2"]], groups=d["herd"])) <= {"case", "healthy"}
    assert [e["iteration"] for e in seen] == list(m.history_["iteration"]) and len(seen) == m.n_iter_ >= 2
    assert {"gll", "sigma2", "D", "eta_change"} <= set(seen[0])
    assert clone(m).get_params()["outer_tol"] == m.outer_tol
