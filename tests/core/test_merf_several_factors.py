"""MERF with several random-effect terms (issue 25, item 5): crossed, nested, slopes, ``||``.

The reference is lme4 (tests/reference/lme4_multi.R, values in tests/data/lmm_multi/lme4_multi.json,
real data in the CSVs next to it), which mixcv did not compute. With a base estimator that
predicts a constant, MERF's model is the linear mixed model, and its EM's fixed point is the
*maximum likelihood* fit (``beta`` is a parameter, ``b`` the missing data; REML would need
``beta`` integrated out too), so lme4's ML fit is the reference, and the REML fit must not match.

Tolerances: the EM stops when every variance changes by less than ``tol = 1e-9`` (relative)
per iteration for two iterations. A linearly convergent EM with rate rho is then within
``1e-9 rho / (1 - rho)`` of its fixed point; the slowest case here (Pastes, 254 iterations)
has rho ~ 0.95, so ~2e-8, and lme4's bobyqa with rhoend 1e-12 is as close to its optimum.
Measured worst differences: 3.5e-7 (variances), 2e-8 (sigma^2), 1e-7 (BLUPs, relative to the
largest), 7e-8 (conditional sds). The asserts allow 1e-5 for variances, BLUPs and sds and 1e-6
for sigma^2 and the fixed effects.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
from mixcv_core.merf import MERFRegressor
from mixcv_core.models._base import MixedEffectsRegressor

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests" / "data" / "lmm_multi" / "lme4_multi.json").read_text())["cases"]


def read(name: str) -> tuple[dict, pd.DataFrame]:
    case = CASES[name]
    d = pd.read_csv(ROOT / case["csv"], dtype={c: str for c in case["group_columns"]})
    assert len(d) == case["n"]
    return case, d


def random_part(case: dict) -> str:
    rhs = case["formula"].split("~", 1)[1]
    return rhs[rhs.index("("):]


def fit_constant_base(name: str, **kwargs) -> tuple[dict, pd.DataFrame, MERFRegressor]:
    """MERF around a base model that predicts a constant: the linear mixed model, fitted by EM."""
    case, d = read(name)
    cols = [c for c in case["ml"]["fixef"] if c != "(Intercept)"]
    # An intercept-only model has no feature: the base model gets a column of zeros, which
    # the linear part drops (no coefficient of its own).
    X = d[cols] if cols else pd.DataFrame({"zero": np.zeros(len(d))})
    m = MERFRegressor(DummyRegressor(), max_iterations=5000, tol=1e-9, random=random_part(case), **kwargs)
    m.fit(X, d[case["response"]], groups=d[case["group_columns"]])
    return case, d, m


@pytest.mark.parametrize("name", ["penicillin", "pastes_nested", "machines", "oats", "sleepstudy_uncorrelated",
                                  "carrots"])
def test_with_a_constant_base_model_merf_converges_to_lme4_s_maximum_likelihood_fit(name):
    # crossed (Penicillin), nested (Pastes' batch/cask, Oats' Block/Variety, Machines' Worker:Machine),
    # uncorrelated slope (sleepstudy ||), a correlated slope next to a crossed factor (carrots).
    case, d, m = fit_constant_base(name)
    ref = case["ml"]
    assert m.converged_
    assert set(m.varcorr_) == set(ref["varcorr"])
    for term, cov in m.varcorr_.items():
        expected = np.array(ref["varcorr"][term]["cov"])
        sd = np.sqrt(np.diag(expected))
        np.testing.assert_allclose(cov.to_numpy() / np.outer(sd, sd), expected / np.outer(sd, sd), atol=1e-5)
    np.testing.assert_allclose(m.scale_, ref["sigma2"], rtol=1e-6)
    fixed = m.fe_linear_.to_dict()
    fixed["Intercept"] += float(m.trained_fe_model.constant_.ravel()[0])
    for col, value in ref["fixef"].items():
        np.testing.assert_allclose(fixed["Intercept" if col == "(Intercept)" else col], value, rtol=1e-6)
    sds = m.random_effects_sd_ if isinstance(m.random_effects_sd_, dict) else {"": m.random_effects_sd_}
    for factor, r in ref["ranef"].items():
        blups = m.ranef_[factor].loc[r["levels"]].to_numpy()
        modes = np.array(r["modes"])
        np.testing.assert_allclose(blups, modes, atol=1e-5 * np.abs(modes).max())
        mine_sd = (sds[factor] if factor in sds else sds[""]).loc[r["levels"]].to_numpy()
        np.testing.assert_allclose(mine_sd, np.array(r["sds"]), rtol=1e-5)


def test_the_em_fixed_point_is_the_ml_fit_not_the_reml_fit():
    case, _, m = fit_constant_base("penicillin")
    sample = m.varcorr_["sample"].to_numpy()[0, 0]
    assert abs(sample / case["ml"]["varcorr"]["sample"]["cov"][0][0] - 1) < 1e-5
    assert abs(sample / case["reml"]["varcorr"]["sample"]["cov"][0][0] - 1) > 0.1   # REML: 3.73, ML: 3.14


def test_one_factor_written_as_random_is_the_one_factor_shorthand():
    d = pd.read_csv(ROOT / "tests" / "data" / "lmm_multi" / "sleepstudy.csv")
    kw = {"max_iterations": 40, "tol": None}
    short = MERFRegressor(LinearRegression(), **kw).fit(d[["Days"]], d["Reaction"], groups=d["Subject"],
                                                       slopes=["Days"])
    full = MERFRegressor(LinearRegression(), random="(1 + Days | Subject)", **kw).fit(
        d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    np.testing.assert_allclose(full.merf_.gll_history, short.merf_.gll_history, rtol=1e-12)
    np.testing.assert_allclose(full.random_effects_.to_numpy(), short.random_effects_.to_numpy(), rtol=1e-10)
    # One factor: the DataFrame form both ways (named by the factor when random= names it).
    assert list(short.random_effects_.columns) == ["Intercept", "Days"] and short.random_effects_.index.name == "group"
    assert list(full.random_effects_.columns) == ["Intercept", "Days"] and full.random_effects_.index.name == "Subject"
    np.testing.assert_allclose(full.predict(d[["Days"]], groups=d[["Subject"]]),
                               short.predict(d[["Days"]], groups=d["Subject"]), rtol=1e-10)


def test_a_new_level_of_one_factor_gets_zero_for_it_and_the_blups_of_the_others():
    case, d, m = fit_constant_base("penicillin")
    rows = d.iloc[[0, 1]].copy()
    fixed = m.predict(rows[["plate"]].assign(zero=0.0)[["zero"]], groups=None)
    b_plate, b_sample = m.random_effects_["plate"]["Intercept"], m.random_effects_["sample"]["Intercept"]
    X = pd.DataFrame({"zero": [0.0, 0.0]})
    new_plate = pd.DataFrame({"plate": ["new", "new"], "sample": rows["sample"].to_numpy()})
    np.testing.assert_allclose(m.predict(X, groups=new_plate), fixed + b_sample.loc[rows["sample"]].to_numpy())
    new_sample = pd.DataFrame({"plate": rows["plate"].to_numpy(), "sample": ["new", "new"]})
    np.testing.assert_allclose(m.predict(X, groups=new_sample), fixed + b_plate.loc[rows["plate"]].to_numpy())
    known = pd.DataFrame({"plate": rows["plate"].to_numpy(), "sample": rows["sample"].to_numpy()})
    np.testing.assert_allclose(m.predict(X, groups=known), fixed + b_plate.loc[rows["plate"]].to_numpy()
                               + b_sample.loc[rows["sample"]].to_numpy())


def test_convergence_is_reported_per_term():
    case, d, m = fit_constant_base("machines")
    table = m.merf_.convergence_by_term_
    assert list(table.index) == ["Worker:Machine", "Worker", "residual"] and table["settled"].all()
    assert {"variance_change[Worker]", "blup_change[Worker:Machine]", "D[Worker][0,0]"} <= set(m.history_.columns)
    X = d[["MachineB", "MachineC"]]
    with pytest.warns(Warning, match="did not converge"):
        short = MERFRegressor(DummyRegressor(), max_iterations=3, random=random_part(case)).fit(
            X, d["score"], groups=d[["Worker", "Machine"]])
    assert not short.converged_ and "Worker:Machine: variances" in short.convergence_
    assert not short.merf_.convergence_by_term_["settled"].all()


class Recording(RegressorMixin, BaseEstimator):
    """A base model that records whether it was ever fitted."""

    fitted = 0

    def fit(self, X, y):
        Recording.fitted += 1
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


@pytest.mark.parametrize("random,groups,slopes,field,words", [
    ("(1 | plate) + (1 | sample", ["plate", "sample"], None, "random", "not closed"),
    ("(1 + | plate)", ["plate", "sample"], None, "random", "was expected after it"),
    (3, ["plate", "sample"], None, "random", "text"),
    ("(1 | plate) + (1 | batch)", ["plate", "sample"], None, "groups", "'batch' is not in the data"),
    ("(1 | plate) + (1 | sample)", ["plate", "sample"], ["zero"], "slopes", "written in the terms"),
    (None, ["plate", "sample"], None, "groups", "random="),
    ("(1 + zero | plate)", ["plate", "sample"], None, "groups", "constant within every level"),
])
def test_a_random_part_merf_cannot_fit_is_refused_naming_the_field_before_any_fit(random, groups, slopes, field,
                                                                                   words):
    _, d = read("penicillin")
    Recording.fitted = 0
    with pytest.raises(MixcvError) as info:
        MERFRegressor(Recording(), random=random).fit(pd.DataFrame({"zero": np.zeros(len(d))}), d["diameter"],
                                                      groups=d[groups], slopes=slopes)
    assert info.value.field == field and words in info.value.message
    assert Recording.fitted == 0


class OneFactorOnly(MixedEffectsRegressor):
    """A mixed model whose constructor takes no random part: it fits one grouping factor."""

    def fit(self, X, y, groups=None, slopes=None):
        return self

    def predict(self, X, groups=None, slopes=None):
        return np.zeros(len(X))


def test_the_spec_lets_merf_take_several_factors_and_still_refuses_one_factor_models():
    data = DataSpec(target="diameter", random="(1 | plate) + (1 | sample)")
    spec = ExperimentSpec(data=data, models=(ModelSpec("LR", "LinearRegression", add_merf=True),))
    assert spec.model_names() == ["LR", "MERF(LR)"]
    with pytest.raises(MixcvError) as info:
        ExperimentSpec(data=data, models=(ModelSpec("one", OneFactorOnly),))
    assert info.value.field == "models['one'].model" and "one grouping factor" in info.value.message


def test_the_engine_fits_merf_with_the_spec_s_crossed_terms_on_every_fold():
    # carrots: 103 consumers x 12 products, crossed, real data; new consumers in each test fold.
    case, d = read("carrots")
    random = "(1 + sens2 | Consumer) + (1 | Product)"
    X, y, G = d[["sens2", "Homesize3"]], d["Preference"], d[["Consumer", "Product"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = (CrossValidation().set_data(X, y, groups=G, random=random, split_by="Consumer")
               .set_splits("GroupKFold", n_splits_out=3, scale_out=False)
               .add_model(LinearRegression, add_merf=True).set_run(store=False).perform().get_results())
    assert res.failures.empty
    preds = res.predictions
    for k in range(3):
        m = res.models[("MERF(LinearRegression)", k)]
        assert m.random == random and set(m.varcorr_) == {"Consumer", "Product"}
        fold = preds[(preds["model"] == "MERF(LinearRegression)") & (preds["fold"] == k)]
        train = ~d.index.isin(fold["row"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = MERFRegressor(LinearRegression(), random=random, max_iterations=m.max_iterations).fit(
                X[train], y[train], groups=G[train])
        np.testing.assert_allclose(m.scale_, ref.scale_, rtol=1e-10)
        rows = fold["row"].to_numpy()
        np.testing.assert_allclose(fold["y_pred"].to_numpy(), ref.predict(X.loc[rows], groups=G.loc[rows]),
                                   rtol=1e-10)
        # Test consumers are new and get no BLUP of their own; products are known and keep theirs.
        assert not set(d.loc[rows, "Consumer"]) & set(d.loc[train, "Consumer"])
        product = ref.random_effects_["Product"]["Intercept"].loc[d.loc[rows, "Product"]].to_numpy()
        np.testing.assert_allclose(fold["y_pred"].to_numpy(), ref.merf_.predict_fixed(X.loc[rows]) + product,
                                   rtol=1e-10)


def test_the_e_step_solver_is_the_dense_conditional_distribution_of_the_random_effects():
    # Penicillin's crossed design with a slope added to one term, at an arbitrary theta and
    # response: GLS beta, conditional means and covariances written with dense matrices.
    from mixcv_core.models.mixed.conditional import ConditionalSolver
    from mixcv_core.models.mixed.pls import Statistics

    _, d = read("penicillin")
    rng = np.random.default_rng(0)
    n = len(d)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = d["diameter"].to_numpy(float) + x
    codes = [pd.factorize(d["plate"], sort=True)[0], pd.factorize(d["sample"], sort=True)[0]]
    Zs = [np.column_stack([np.ones(n), x]), np.ones((n, 1))]
    levels = [24, 6]
    lams = [np.array([[1.3, 0.0], [0.4, 0.7]]), np.array([[2.1]])]
    got = ConditionalSolver(X, codes, Zs, levels).solve(y, lams)
    # Dense: Z = [Z_1 Z_2] level-major, Lambda block diagonal, M = Lambda'Z'Z Lambda + I.
    Zfull = np.hstack([np.hstack([Z * (c == k)[:, None] for k in range(K)]) for c, Z, K in zip(codes, Zs, levels)])
    Lam = np.zeros((Zfull.shape[1],) * 2)
    o = 0
    for lam, K in zip(lams, levels):
        for _ in range(K):
            q = len(lam)
            Lam[o:o + q, o:o + q] = lam
            o += q
    V = Zfull @ Lam @ Lam.T @ Zfull.T + np.eye(n)          # Var(y) / sigma^2
    beta = np.linalg.solve(X.T @ np.linalg.solve(V, X), X.T @ np.linalg.solve(V, y))
    M = Lam.T @ Zfull.T @ Zfull @ Lam + np.eye(len(Lam))
    b = Lam @ np.linalg.solve(M, Lam.T @ Zfull.T @ (y - X @ beta))
    cov = Lam @ np.linalg.inv(M) @ Lam.T
    np.testing.assert_allclose(got.beta, beta, rtol=1e-9)
    np.testing.assert_allclose(np.concatenate([bt.ravel() for bt in got.b]), b, atol=1e-9)
    o = 0
    for bt, ct in zip(got.b, got.cov):
        for k in range(len(bt)):
            q = bt.shape[1]
            np.testing.assert_allclose(ct[k], cov[o:o + q, o:o + q], atol=1e-10)
            o += q
    np.testing.assert_allclose(got.trace_minv, np.trace(np.linalg.inv(M)), rtol=1e-10)
    # The response column swapped into the statistics built once is the statistics built anew.
    solver = ConditionalSolver(X, codes, Zs, levels)
    fresh = Statistics(X, y, codes, Zs, levels)
    swapped = solver.statistics(y)
    for name in ("G", "H", "A_FF", "A_RF", "A_RR"):
        np.testing.assert_allclose(getattr(swapped, name), getattr(fresh, name), rtol=1e-12, atol=1e-9)


def test_the_one_factor_call_still_scores_validation_rows_at_every_iteration():
    from mixcv_core.merf import MERF

    d = pd.read_csv(ROOT / "tests" / "data" / "lmm_multi" / "sleepstudy.csv")
    train, val = d[d["Days"] < 8], d[d["Days"] >= 8]
    Z = lambda f: np.column_stack([np.ones(len(f)), f["Days"]])  # noqa: E731
    m = MERF(LinearRegression(), max_iterations=6, tol=None).fit(
        train[["Days"]], Z(train), train["Subject"], train["Reaction"],
        X_val=val[["Days"]], Z_val=Z(val), clusters_val=val["Subject"], y_val=val["Reaction"])
    assert len(m.val_loss_history) == 6
    mse = np.mean((val["Reaction"].to_numpy() - m.predict(val[["Days"]], Z(val), val["Subject"])) ** 2)
    np.testing.assert_allclose(m.val_loss_history[-1], mse, rtol=1e-12)


def test_flexcv_s_merf_post_processor_names_each_term_by_its_factor_with_several_factors():
    from mixcv_core.models.postprocessing import MERFModelPostProcessor

    case, _, m = fit_constant_base("penicillin")
    table = MERFModelPostProcessor()(m, [])
    ref = case["ml"]
    expected = {f"{f}: var({m.varcorr_[f].columns[0]})": v["cov"][0][0]
                for f, v in ref["varcorr"].items()}
    for key, value in expected.items():
        np.testing.assert_allclose(table.loc[key, "estimate"], value, rtol=1e-5)
    np.testing.assert_allclose(table.loc["var(residual)", "estimate"], ref["sigma2"], rtol=1e-6)
    assert len(table) == len(expected) + 1
