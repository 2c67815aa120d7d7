"""MERF that generalises to new groups: zero-mean random effects, an EM that stops, GPBoost beside it.

References: the native LMM's maximum-likelihood fit (itself checked against lme4 in
test_lmm_battery.py) for MERF with a linear base estimator; the loop-over-clusters
reference of merf 1.0's updates stays in test_merf.py for ``linear_fixed_effects=False``.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

from mixcv_core import ConvergenceWarning, CrossValidation, MixcvError
from mixcv_core.merf import MERF, MERFRegressor
from mixcv_core.models import GPBoostRegressor, LinearMixedEffectsModel
from mixcv_core.synthesizer import generate_grouped_regression

DATA = Path(__file__).parent.parent / "data" / "lmm"
HAS_GPBOOST = importlib.util.find_spec("gpboost") is not None


@pytest.fixture(scope="module")
def quickstart():
    X, y, g, _ = generate_grouped_regression(30, 20, n_slopes=1, noise_level=0.5, random_seed=0)
    return X, y, g


@pytest.fixture(scope="module")
def new_groups(quickstart):
    """The quickstart's experiment for new groups: GroupKFold(5), a forest and its MERF."""
    X, y, g = quickstart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (CrossValidation().set_data(X, y, g, ["X0"]).set_splits(split_out="GroupKFold", n_splits_out=5)
                # The quickstart's 30 trees and 20 EM iterations: the forest's noise keeps the EM
                # from settling to the 0.1 % rule, and 100 iterations took 49 s for the same fit.
                # 100 trees and 25 iterations (17 s of CPU, the EM fitting 50 trees each time)
                # gave the same scores to three decimals (MERF 0.808, forest 0.682) as these (7 s).
                .add_model("RandomForestRegressor", model_kwargs={"n_estimators": 30, "min_samples_leaf": 5},
                           add_merf=True)
                .set_merf(em_max_iterations=20)
                .set_run(store=False).perform().get_results())


def test_for_new_groups_merf_is_at_least_as_good_as_its_forest(new_groups):
    r2 = new_groups.summary.xs("r2", level="metric")["mean"]
    assert r2["MERF(RandomForestRegressor)"] >= r2["RandomForestRegressor"]
    assert r2["MERF(RandomForestRegressor)"] > 0.75   # merf 1.0's algorithm: 0.46 on these data


def test_the_random_effects_average_zero(new_groups):
    for (name, _fold), model in new_groups.models.items():
        if name.startswith("MERF"):
            b = model.trained_b
            # Exactly zero up to the solver's rounding: the GLS normal equations say so.
            assert np.all(np.abs(b.mean().to_numpy()) <= 1e-8 * b.std().to_numpy())
            assert model.fe_linear_ is not None and list(model.fe_linear_.index[:2]) == ["Intercept", "X0"]


def test_classic_merf_lets_the_random_slope_absorb_the_fixed_slope(quickstart):
    # What the linear part prevents, seen with merf 1.0's algorithm on the same data.
    X, y, g = quickstart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = MERFRegressor(RandomForestRegressor(50, min_samples_leaf=5, random_state=0), max_iterations=20,
                          gll_early_stop_threshold=None, linear_fixed_effects=False).fit(X, y, groups=g, slopes=["X0"])
    b = m.trained_b
    assert abs(b.mean()[1]) > b.std()[1]   # the mean random slope is far from zero


def test_with_a_linear_base_estimator_merf_is_the_lmms_maximum_likelihood_fit():
    d = pd.read_csv(DATA / "sleepstudy.csv")
    lmm = LinearMixedEffectsModel(reml=False).fit(d[["Days"]], d["Reaction"], groups=d["Subject"], slopes=["Days"])
    m = MERFRegressor(LinearRegression(), max_iterations=500, tol=1e-10).fit(
        d[["Days"]], d["Reaction"], groups=d["Subject"], slopes=["Days"]).merf_
    assert m.converged_
    f = m.trained_fe_model
    fixed = m.fe_linear_.to_numpy() + np.r_[f.intercept_, f.coef_]
    np.testing.assert_allclose(fixed, lmm.fe_params_.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(m.sigma2_hat_history[-1], lmm.scale_, rtol=1e-6)
    np.testing.assert_allclose(m.D_hat_history[-1], lmm.cov_re_.to_numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m.trained_b.to_numpy(), lmm.random_effects_.to_numpy(), rtol=1e-6, atol=1e-5)


def test_new_groups_get_the_whole_fixed_part_and_known_groups_their_effects(quickstart):
    X, y, g = quickstart
    # How predictions are put together does not depend on how far the EM went: 5 iterations
    # (the 100 it would run here took 23 s).
    m = MERF(RandomForestRegressor(30, random_state=0), max_iterations=5).fit(
        X, np.column_stack([np.ones(len(X)), X["X0"]]), g, y)
    assert m.converged_ is False
    Z = np.column_stack([np.ones(3), X["X0"].iloc[:3]])
    fixed = m.trained_fe_model.predict(X.iloc[:3]) + np.column_stack([np.ones(3), X.iloc[:3]]) @ m.fe_linear_
    np.testing.assert_allclose(m.predict(X.iloc[:3], Z, ["unseen"] * 3), fixed)
    np.testing.assert_allclose(m.predict_fixed(X.iloc[:3]), fixed)
    known = m.predict(X.iloc[:3], Z, g.iloc[:3])
    np.testing.assert_allclose(known - fixed, np.einsum("nj,nj->n", Z, m.trained_b.loc[g.iloc[:3]].to_numpy()))


class _CountedForest(RandomForestRegressor):
    """A forest that records how many trees each of its fits had."""

    def fit(self, X, y, sample_weight=None):
        FITS.append(self.n_estimators)
        return super().fit(X, y, sample_weight=sample_weight)


FITS: list[int] = []


@pytest.mark.parametrize(("trees", "em_estimators", "light"), [
    (20, 50, 5),       # no larger than em_estimators: a quarter of its trees (it used to iterate whole)
    (50, 50, 13),      # a quarter, rounded up
    (16, 50, None),    # a quarter would be 4, fewer than 5: the whole forest every iteration
    (100, 50, 50),     # larger than em_estimators: em_estimators trees, as before
    (20, None, None),  # None: the whole forest every iteration
])
def test_the_em_iterates_on_a_light_forest_and_fits_the_whole_one_last(trees, em_estimators, light):
    d = pd.read_csv(DATA / "oxboys.csv")
    X, Z, g, y = d[["age"]], np.ones((len(d), 1)), d["Subject"], d["height"]
    FITS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MERF(_CountedForest(trees, random_state=0), max_iterations=6, em_estimators=em_estimators).fit(X, Z, g, y)
    if light is None:
        assert FITS == [trees] * m.n_iter_ and all(m.history_["full_forest"])
    else:
        # Every EM iteration on the light copy, then one more with the real forest, which the fit keeps.
        assert FITS == [light] * (m.n_iter_ - 1) + [trees]
        assert m.history_["full_forest"].tolist() == [False] * (m.n_iter_ - 1) + [True]
    assert m.trained_fe_model.n_estimators == trees and len(m.trained_fe_model.estimators_) == trees


def test_a_light_forest_needs_the_linear_part():
    # merf 1.0's algorithm (no linear part) refits the whole forest every iteration, as merf does.
    d = pd.read_csv(DATA / "oxboys.csv")
    FITS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MERF(_CountedForest(20, random_state=0), max_iterations=3, linear_fixed_effects=False).fit(
            d[["age"]], np.ones((len(d), 1)), d["Subject"], d["height"])
    assert FITS == [20, 20, 20]


def test_the_em_stops_when_done_and_says_whether_it_converged():
    d = pd.read_csv(DATA / "oxboys.csv")
    X, Z, g, y = d[["age"]], np.ones((len(d), 1)), d["Subject"], d["height"]
    m = MERF(RandomForestRegressor(100, random_state=0)).fit(X, Z, g, y)
    assert m.converged_ is True and m.n_iter_ < 100
    assert f"converged at iteration {m.n_iter_ - 1}:" in m.stop_reason_ and "for 2 iteration(s)" in m.stop_reason_
    assert m.history_["full_forest"].tolist()[-1] is True            # the full forest fitted last
    assert not any(m.history_["full_forest"].tolist()[:-1])           # ...and only then
    assert m.trained_fe_model.n_estimators == 100
    whole = MERF(RandomForestRegressor(50, random_state=0), em_estimators=None).fit(X, Z, g, y)
    assert all(whole.history_["full_forest"])
    with pytest.warns(ConvergenceWarning):
        capped = MERFRegressor(RandomForestRegressor(20, random_state=0), max_iterations=1).fit(X, y, g).merf_
    assert capped.converged_ is False and "max_iterations=1" in capped.stop_reason_
    judged = MERF(LinearRegression(), max_iterations=60, tol=None).fit(X, Z, g, y)
    assert judged.n_iter_ == 60 and judged.converged_ is True          # ran every iteration, judged at the end


def test_an_em_that_runs_out_of_iterations_warns_and_is_marked_everywhere(quickstart):
    X, y, g = quickstart
    with pytest.warns(ConvergenceWarning):
        res = (CrossValidation().set_data(X, y, g, ["X0"]).set_splits(split_out="GroupKFold", n_splits_out=3)
               .add_model("RandomForestRegressor", model_kwargs={"n_estimators": 10}, add_merf=True)
               .set_merf(em_max_iterations=1).set_run(store=False).perform().get_results())
    table = res.to_frame().set_index("model")
    assert table.loc["MERF(RandomForestRegressor)", "converged"].tolist() == [False] * 3
    assert table.loc["MERF(RandomForestRegressor)", "convergence"].str.contains("max_iterations=1").all()
    assert "did not converge (MERF(RandomForestRegressor))" in res._repr_html_()


def test_merf_needs_numeric_features_for_its_linear_part():
    X = pd.DataFrame({"a": ["x", "y"] * 10})
    with pytest.raises(MixcvError, match="X: the linear fixed part needs numeric features"):
        MERF(RandomForestRegressor(5)).fit(X, np.ones((20, 1)), np.repeat([0, 1], 10), np.arange(20.0))


@pytest.mark.skipif(not HAS_GPBOOST, reason="the gpboost extra is not installed (pip install 'mixcv[gpboost]')")
def test_gpboost_runs_through_the_engine_tuned_and_on_the_same_splits(quickstart):
    import optuna
    X, y, g = quickstart
    res = (CrossValidation().set_data(X, y, g, ["X0"]).set_splits(split_out="GroupKFold", split_in="GroupKFold",
                                                                    n_splits_out=3, n_splits_in=2)
           .add_model(GPBoostRegressor, requires_inner_cv=True, model_kwargs={"n_jobs": 1},
                      params={"num_boost_round": optuna.distributions.IntDistribution(10, 40)})
           .add_model(LinearMixedEffectsModel).set_inner_cv(2).set_run(store=False).perform().get_results())
    table = res.to_frame()
    gp = table[table["model"] == "GPBoostRegressor"]
    assert len(gp) == 3 and gp["best_params"].map(lambda p: 10 <= p["num_boost_round"] <= 40).all()
    assert (gp["test_r2"] > 0).all()
    preds = res.predictions
    rows = preds.groupby("model")["row"].apply(lambda s: sorted(s.tolist()))
    assert rows["GPBoostRegressor"] == rows["LinearMixedEffectsModel"]        # the same splits
    m = res.models[("GPBoostRegressor", 0)]
    assert list(m.cov_pars_.index) == ["error", "Intercept", "X0"]


@pytest.mark.skipif(not HAS_GPBOOST, reason="the gpboost extra is not installed (pip install 'mixcv[gpboost]')")
def test_gpboost_in_a_cell():
    from mixcv_core.experiment.cell import parse_cell
    spec = parse_cell("data: df\ntarget: y\ngroups: group\nmodels:\n  GPBoostRegressor:\n"
                      "    learning_rate: float(0.01, 0.3, log)\n").spec
    assert spec.models[0].estimator_class is GPBoostRegressor and spec.models[0].tunes


def test_a_missing_gpboost_is_reported_before_any_work(quickstart, monkeypatch):
    import mixcv_core.experiment.data as data
    X, y, g = quickstart
    real = importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None if name == "gpboost" else real(name))
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, y, g).add_model(GPBoostRegressor).perform()
    assert info.value.field == "models['GPBoostRegressor'].model"
    assert "pip install 'mixcv[gpboost]'" in info.value.message


@pytest.mark.skipif(not HAS_GPBOOST, reason="the gpboost extra is not installed (pip install 'mixcv[gpboost]')")
def test_gpboost_regressor_predicts_what_gpboost_itself_predicts():
    import gpboost as gpb
    d = pd.read_csv(DATA / "sleepstudy.csv")
    train, test = d[d["Subject"] != 372], d[d["Subject"].isin([308, 372])]   # a known and a new subject
    params = {"objective": "regression_l2", "learning_rate": 0.1, "max_depth": 6, "min_data_in_leaf": 5,
              "num_leaves": 31, "lambda_l2": 0.0, "verbose": -1, "seed": 3, "num_threads": 1}
    codes, labels = pd.factorize(train["Subject"], sort=True)
    model = gpb.GPModel(group_data=codes, group_rand_coef_data=train[["Days"]].to_numpy(float),
                        ind_effect_group_rand_coef=[1], num_parallel_threads=1)
    bst = gpb.train(params=params, train_set=gpb.Dataset(train[["Days"]].to_numpy(float), train["Reaction"].to_numpy()),
                    gp_model=model, num_boost_round=25)
    pos = labels.get_indexer(test["Subject"])
    direct = bst.predict(data=test[["Days"]].to_numpy(float), group_data_pred=np.where(pos >= 0, pos, len(labels) + 1),
                         group_rand_coef_data_pred=test[["Days"]].to_numpy(float))["response_mean"]
    ours = GPBoostRegressor(num_boost_round=25, random_state=3, n_jobs=1).fit(
        train[["Days"]], train["Reaction"], groups=train["Subject"], slopes=["Days"])
    np.testing.assert_allclose(ours.predict(test[["Days"]], groups=test["Subject"], slopes=["Days"]), direct, rtol=1e-10)
    fixed_only = ours.predict(test[["Days"]])
    np.testing.assert_allclose(fixed_only, bst.predict(data=test[["Days"]].to_numpy(float), ignore_gp_model=True),
                               rtol=1e-10)
