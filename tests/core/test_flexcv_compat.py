"""flexcv's documented behaviours, on mixcv: code written for flexcv runs with the imports changed.

Each test states one thing flexcv's README, guides or API reference promise and checks it
against numbers computed here (scikit-learn, numpy), not against mixcv's own tables.
"""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_squared_error, r2_score

from mixcv_core import CrossValidation
from mixcv_core.errors import MixcvError, SpecError, SpecTypeError
from mixcv_core.models import LinearModel
from mixcv_core.synthesizer import generate_grouped_regression, generate_regression


def raises_on(field, fn, kind=MixcvError):
    with pytest.raises(kind) as info:
        fn()
    assert getattr(info.value, "field", None) == field, info.value
    return info.value


@pytest.fixture(scope="module")
def two_models():
    """flexcv's data (100 rows, 3 features, 5 groups), KFold(3), an OLS and a small forest."""
    X, y, group, slopes = generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
    results = (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=3)
               .add_model(LinearModel).add_model(RandomForestRegressor, model_kwargs={"n_estimators": 10})
               .set_run(store=False).perform().get_results())
    return X, y, results


# -- the results dict ------------------------------------------------------------------------
def test_results_read_as_flexcvs_dict_of_models(two_models):
    X, y, results = two_models
    assert list(results) == ["LinearModel", "RandomForestRegressor"] == list(results.keys())
    assert "LinearModel" in results and "M" not in results and len(results) == 2
    for model in results:
        entry = results[model]
        assert len(entry["metrics"]) == 3
        for k in range(3):
            y_test, y_pred = entry["y_test"][k], entry["y_pred"][k]
            # The fold's metrics are the metrics of its test rows, as scikit-learn computes them.
            assert entry["metrics"][k]["r2"] == pytest.approx(r2_score(y_test, y_pred))
            assert entry["metrics"][k]["mse"] == pytest.approx(mean_squared_error(y_test, y_pred))
            assert entry["metrics"][k]["r2_train"] == pytest.approx(
                r2_score(entry["y_train"][k], entry["y_pred_train"][k]))
            assert entry["folds_by_metrics"]["r2"][k] == entry["metrics"][k]["r2"]
            # Test and training rows of a fold are the whole data, once each.
            assert len(entry["y_test"][k]) + len(entry["y_train"][k]) == len(y)
        assert sorted(np.concatenate(entry["y_test"])) == sorted(y)


def test_flexcv_getters_return_each_folds_values(two_models):
    X, y, results = two_models
    frame = results.predictions[results.predictions["model"] == "LinearModel"]
    for k in range(3):
        rows = frame.loc[frame["fold"] == k, "row"].to_numpy()
        train = np.setdiff1d(np.arange(len(y)), rows)
        np.testing.assert_allclose(results.get_predictions("LinearModel", k), frame.loc[frame["fold"] == k, "y_pred"])
        np.testing.assert_array_equal(results.get_true_values("LinearModel", k), y.to_numpy()[rows])
        np.testing.assert_array_equal(results.get_training_true_values("LinearModel", k), y.to_numpy()[train])
        # OLS's fitted values on its training rows, by numpy (scaling the features does not change them).
        design = np.column_stack([np.ones(len(train)), X.to_numpy(float)[train]])
        fitted = design @ np.linalg.lstsq(design, y.to_numpy()[train], rcond=None)[0]
        np.testing.assert_allclose(results.get_training_predictions("LinearModel", k), fitted, atol=1e-9)
        assert results.get_params("RandomForestRegressor", k) == results.to_frame().query(
            "model == 'RandomForestRegressor'")["best_params"].iloc[k]


def test_best_model_by_metric_is_the_fitted_model_of_the_best_fold(two_models):
    _, _, results = two_models
    table = results.to_frame()
    best = table.loc[table["test_r2"].idxmax()]
    assert results.get_best_model_by_metric(metric_name="r2", direction="max") is \
        results.models[(best["model"], best["fold"])]
    lm = table[table["model"] == "LinearModel"]
    low = lm.loc[lm["test_mse"].idxmin()]
    assert results.get_best_model_by_metric("LinearModel") is results.models[("LinearModel", low["fold"])]
    raises_on("direction", lambda: results.get_best_model_by_metric(direction="best"))
    raises_on("metric_name", lambda: results.get_best_model_by_metric(metric_name="auc"))
    err = raises_on("model_name", lambda: results["Nope"], KeyError)
    assert "LinearModel" in str(err)


def test_flexcv_summary_lists_folds_then_mean_median_std_per_metric(two_models, tmp_path):
    _, _, results = two_models
    summary = results.flexcv_summary
    assert summary.index.names == ["Fold", "Metric"] and list(summary.columns) == list(results)
    r2 = [results["LinearModel"]["metrics"][k]["r2"] for k in range(3)]
    block = summary.xs("r2", level="Metric")["LinearModel"]
    assert list(block.index) == [0, 1, 2, "mean", "median", "std"]
    np.testing.assert_allclose(block.to_numpy(), [*r2, np.mean(r2), np.median(r2), np.std(r2, ddof=1)])
    # flexcv's README saves the summary with pandas' to_excel (openpyxl).
    results.summary.to_excel(tmp_path / "summary.xlsx")
    summary.to_excel(tmp_path / "flexcv.xlsx")
    back = pd.read_excel(tmp_path / "flexcv.xlsx", index_col=[0, 1])
    assert back.loc[("mean", "r2"), "LinearModel"] == pytest.approx(np.mean(r2))


# -- the builder -----------------------------------------------------------------------------
def test_builder_takes_flexcvs_names_and_orders(grouped):
    from mixcv_core.interface import CrossValMethod, ModelConfigDict, ModelMappingDict  # noqa: F401
    from mixcv_core.metrics import MetricsDict

    X, y, group, slopes = grouped
    assert dict(ModelConfigDict()) == {"requires_inner_cv": False, "n_jobs_model": -1, "n_jobs_cv": -1, "params": {}}
    metrics = MetricsDict()
    metrics["naive_metric"] = lambda valid, pred: 42.0
    with pytest.raises(RuntimeError):
        CrossValidation().get_results()
    # Refused when set, not at perform().
    raises_on("run", lambda: CrossValidation().set_run(run="x"), SpecTypeError)
    cv = (CrossValidation().set_data(X, y, group, slopes)
          .set_splits(split_out=CrossValMethod.GROUP, split_in=CrossValMethod.KFOLD, n_splits_out=3, metrics=metrics)
          # flexcv's positions: set_run(run, diagnostics, random_seed); add_model's 6th is callbacks.
          .set_run(None, False, 7, store=False)
          .add_model(LinearModel, False, "", None, None, None, n_jobs_model=1, n_jobs_cv=1))
    spec = cv.to_spec()
    assert spec.seed == 7 and spec.outer.method == "GroupKFold" and spec.inner.method == "KFold"
    assert list(spec.metrics) == ["r2", "mse", "mae", "naive_metric"]
    table = cv.perform().get_results().to_frame()
    assert (table["test_naive_metric"] == 42.0).all()
    raises_on("bogus", lambda: CrossValidation().add_model(LinearModel, bogus=1))
    with pytest.warns(UserWarning, match="no params to tune"):
        CrossValidation().add_model(LinearModel, requires_inner_cv=True)
    from mixcv_core.split import string_to_crossvalmethod
    assert string_to_crossvalmethod("ContinuousStratifiedGroupKFold") is CrossValMethod.CONTISTRATGROUP
    raises_on("method", lambda: string_to_crossvalmethod("InvalidString"), TypeError)


def test_params_without_requires_inner_cv_are_tuned_as_in_flexcv(grouped):
    X, y, group, _ = grouped
    params = {"alpha": optuna.distributions.FloatDistribution(1e-3, 10.0, log=True)}
    from sklearn.linear_model import Ridge
    results = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3, n_splits_in=2).set_inner_cv(3)
               .add_model(Ridge, params=params).set_run(store=False).perform().get_results())
    assert len(results.studies) == 3
    for (_, k), study in results.studies.items():
        assert len(study.trials) == 3
        assert results.models[("Ridge", k)].alpha == study.best_params["alpha"]


# -- YAML ------------------------------------------------------------------------------------
GUIDE_YAML = """
LinearModel:
  {requires_inner_cv: false, n_jobs_model: 1, n_jobs_cv: 1, model: flexcv.models.LinearModel,
   post_processor: flexcv.model_postprocessing.LinearModelPostProcessor}
RandomForest:
  requires_inner_cv: true
  n_trials: 10
  n_jobs_model: -1
  model: sklearn.ensemble.RandomForestRegressor
  params: {max_depth: !Int {low: 2, high: 6}, n_estimators: !Cat {choices: [5]}}
  post_processor: flexcv.model_postprocessing.RandomForestModelPostProcessor
"""


def test_yaml_mappings_hold_classes():
    from mixcv_core.model_mapping import read_mapping_from_yaml_string
    from mixcv_core.model_postprocessing import LinearModelPostProcessor, RandomForestModelPostProcessor

    mapping = read_mapping_from_yaml_string(GUIDE_YAML)
    assert mapping["LinearModel"]["model"] is LinearModel
    assert mapping["LinearModel"]["post_processor"] is LinearModelPostProcessor
    assert mapping["RandomForest"]["model"] is RandomForestRegressor
    assert mapping["RandomForest"]["post_processor"] is RandomForestModelPostProcessor
    assert mapping["RandomForest"]["params"]["max_depth"] == optuna.distributions.IntDistribution(2, 6)


@pytest.mark.parametrize("how", ["yaml_string", "yaml_path", "yaml_path_of_a_dumped_string"])
def test_set_models_reads_yaml_by_string_and_path(grouped, tmp_path, how):
    import yaml

    X, y, group, _ = grouped
    path = tmp_path / "models.yaml"
    if how == "yaml_path":
        path.write_text(GUIDE_YAML)
    elif how == "yaml_path_of_a_dumped_string":
        with open(path, "w") as f:   # flexcv's guide writes the text as one YAML string
            yaml.safe_dump(GUIDE_YAML, f)
    source = {"yaml_string": GUIDE_YAML} if how == "yaml_string" else {"yaml_path": path}
    results = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=2, n_splits_in=2).set_inner_cv(2)
               .add_model(LinearModel, model_name="AddedBefore").set_models(**source)
               .set_run(store=False).perform().get_results())
    assert list(results) == ["AddedBefore", "LinearModel", "RandomForest"]
    assert all(results.models[("RandomForest", k)].n_estimators == 5 for k in range(2))
    assert 2 <= results.get_params("RandomForest", 0)["max_depth"] <= 6
    assert set(results.insights[("RandomForest", 0)].index) == set(X.columns)


def test_set_models_wants_exactly_one_source(tmp_path):
    raises_on("mapping", lambda: CrossValidation().set_models())
    raises_on("mapping", lambda: CrossValidation().set_models({"a": {"model": "LinearModel"}}, yaml_string="x: 1"))
    raises_on("yaml_path", lambda: CrossValidation().set_models(yaml_path=tmp_path / "missing.yaml"))
    # mixcv stays stricter where flexcv failed later: a key it does not know is named.
    raises_on("models['M']", lambda: CrossValidation().set_models({"M": {"model": "LinearModel", "lr": 1}}))


# -- XGBoost ---------------------------------------------------------------------------------
def test_xgboost_is_tuned_and_configured_and_gets_its_callbacks(grouped):
    xgb = pytest.importorskip("xgboost")

    class Counter(xgb.callback.TrainingCallback):
        iterations: list[int] = []   # class-level: XGBoost may copy the callback object

        def after_iteration(self, model, epoch, evals_log):
            Counter.iterations.append(epoch)
            return False

    X, y, group, _ = grouped
    params = {"max_depth": optuna.distributions.IntDistribution(1, 4),
              "learning_rate": optuna.distributions.FloatDistribution(0.05, 0.5)}
    results = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3, n_splits_in=2).set_inner_cv(3)
               .add_model(xgb.XGBRegressor, params=params, callbacks=[Counter()],
                          model_kwargs={"n_estimators": 7, "tree_method": "exact"})
               .set_run(store=False).perform().get_results())
    assert results.failures.empty
    for k in range(3):
        fitted = results.models[("XGBRegressor", k)]
        best = results.get_params("XGBRegressor", k)
        assert fitted.get_params()["max_depth"] == best["max_depth"] and 1 <= best["max_depth"] <= 4
        assert fitted.get_params()["n_estimators"] == 7
    # The outer fits only: 7 boosting rounds in each of 3 folds.
    assert Counter.iterations == list(range(7)) * 3
    err = raises_on("models['XGBRegressor'].params",
                    lambda: CrossValidation().add_model(xgb.XGBRegressor,
                                                        params={"max_dept": optuna.distributions.IntDistribution(1, 3)}))
    assert "max_depth" in str(err)


# -- post-processors -------------------------------------------------------------------------
def test_a_flexcv_style_post_processor_runs_on_every_fold(grouped):
    from mixcv_core.model_postprocessing import ModelPostProcessor

    class ResidualSpread(ModelPostProcessor):
        def __call__(self, results_all_folds, fold_result, features, run, *args, **kwargs):
            run[f"{fold_result.model_name}/Residuals"].append(1.0)   # flexcv logs to Neptune
            name, k = fold_result.model_name, fold_result.k
            results_all_folds[name]["parameters"][k] = {"n_train": len(fold_result.X_train),
                                                        "features": list(features)}
            spread = float(np.std(fold_result.y_test - fold_result.y_pred))
            results_all_folds[name].setdefault("residual_sd", []).append(spread)
            return results_all_folds

    X, y, group, _ = grouped
    results = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3)
               .add_model(LinearModel, post_processor=ResidualSpread).set_run(store=False).perform().get_results())
    assert results.failures.empty
    for k in range(3):
        residuals = results.get_true_values("LinearModel", k) - results.get_predictions("LinearModel", k)
        assert results["LinearModel"]["residual_sd"][k] == pytest.approx(np.std(residuals))
        assert results.get_params("LinearModel", k) == {"n_train": len(results["LinearModel"]["y_train"][k]),
                                                        "features": list(X.columns)}


def test_svr_post_processor_ranks_the_feature_that_matters_first():
    from sklearn.svm import SVR

    from mixcv_core.model_postprocessing import SVRModelPostProcessor
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.standard_normal((120, 3)), columns=["signal", "noise1", "noise2"])
    y = pd.Series(3 * X["signal"] + rng.normal(0, 0.1, 120), name="y")
    results = (CrossValidation().set_data(X, y).set_splits(n_splits_out=3)
               .add_model(SVR, model_kwargs={"kernel": "linear"}, post_processor=SVRModelPostProcessor)
               .set_run(store=False).perform().get_results())
    for k in range(3):
        table = results.insights[("SVR", k)]
        assert table.index[0] == "signal" and table.loc["signal", "importance"] > 10 * table["importance"].iloc[1:].max()


def test_xgboost_and_merf_post_processors_report_the_fitted_models(grouped):
    xgb = pytest.importorskip("xgboost")
    from mixcv_core.model_postprocessing import MERFModelPostProcessor, XGBoostModelPostProcessor

    X, y, group, slopes = grouped
    results = (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=2)
               .add_model(xgb.XGBRegressor, model_kwargs={"n_estimators": 5}, post_processor=XGBoostModelPostProcessor)
               .add_model(RandomForestRegressor, model_kwargs={"n_estimators": 5}, add_merf=True,
                          post_processor=MERFModelPostProcessor)
               .set_merf(em_max_iterations=3).set_run(store=False).perform().get_results())
    assert results.failures.empty
    assert ("RandomForestRegressor", 0) not in results.insights   # MERF's table is for MERF only
    fitted = results.models[("XGBRegressor", 0)]
    table = results.insights[("XGBRegressor", 0)]
    np.testing.assert_allclose(table.loc[list(X.columns), "importance"], fitted.feature_importances_)
    merf = results.models[("MERF(RandomForestRegressor)", 0)]
    merf = getattr(merf, "merf_", merf)
    components = results.insights[("MERF(RandomForestRegressor)", 0)]["estimate"]
    assert components["var(residual)"] == merf.sigma2_hat_history[-1]
    assert [i for i in components.index if i.startswith("var(")][:-1] == \
        [f"var({c})" for c in merf.trained_b.columns]


# -- repeated cross validation ---------------------------------------------------------------
def test_repeated_summary_has_flexcvs_mean_and_std_rows(grouped):
    from mixcv_core.repeated import RepeatedCV

    X, y, group, _ = grouped

    def run(seeds):
        return (RepeatedCV().set_data(X, y, group).add_model(LinearModel)
                .set_splits(n_splits_out=3, n_splits_in=3).set_n_repeats(2).set_seeds(seeds)
                .set_run(store=False).perform().get_results())

    same, different = run([42, 42]), run([42, 43])
    # flexcv's own test: equal seeds give equal repeats, different seeds different ones.
    assert same.summary.loc["r2_std", "LinearModel"] == 0.0
    assert different.summary.loc["r2_std", "LinearModel"] != 0.0
    table = different.to_frame()
    per_repeat = table.groupby("repeat")["test_r2"].mean()
    assert different.summary.loc["r2_mean", "LinearModel"] == pytest.approx(per_repeat.mean())
    assert different.summary.loc["r2_std", "LinearModel"] == pytest.approx(per_repeat.std(ddof=1))
    assert {"mse_mean", "mse_train_std", "mae_mean"} <= set(different.summary.index)
    raises_on("seeds", lambda: RepeatedCV().set_data(X, y, group).add_model(LinearModel)
              .set_n_repeats(3).set_seeds([1, 2]).to_spec())


# -- the data generator ----------------------------------------------------------------------
def test_generate_regression_has_flexcvs_signature_and_shapes():
    X, y, group, slopes = generate_regression(m_features=4, n_samples=60, n_groups=6, n_slopes=2, random_seed=3,
                                              noise_level=0.2, fixed_random_ratio=0.05)
    assert X.shape == (60, 4) and list(X.columns) == ["X0", "X1", "X2", "X3"]
    assert y.shape == (60,) and y.name == "y" and group.name == "group"
    assert set(group) <= set(range(6)) and slopes.shape == (60, 2)
    assert set(slopes.columns) <= set(X.columns)
    pd.testing.assert_frame_equal(slopes, X[slopes.columns])
    again = generate_regression(4, 60, 6, 2, 3, 0.2, 0.05)
    pd.testing.assert_series_equal(again[1], y)
    # mixcv's own generator keeps its meaning under its own name: groups x rows per group.
    Xg, _, gg, _ = generate_grouped_regression(3, 100)
    assert Xg.shape == (300, 5) and gg.nunique() == 3
    raises_on("m_features", lambda: generate_regression(0, 10))
    raises_on("n_slopes", lambda: generate_regression(2, 10, n_slopes=3))


def test_generate_regression_draws_random_intercepts_and_the_stated_noise():
    X, y, group, _ = generate_regression(3, 4000, n_groups=5, noise_level=0.3, fixed_random_ratio=0.01,
                                         random_seed=11)
    # y = 1 + X beta + b_group + e: least squares on X and one dummy per group recovers it.
    design = np.column_stack([X.to_numpy(float), np.eye(5)[group.to_numpy()]])
    coef, *_ = np.linalg.lstsq(design, y.to_numpy(), rcond=None)
    residual_sd = np.std(y.to_numpy() - design @ coef, ddof=design.shape[1])
    assert residual_sd == pytest.approx(0.3, rel=0.05)
    beta, intercepts = coef[:3], coef[3:] - 1.0
    assert np.all(beta > -0.002) and np.all(beta < 0.012)          # U(0, 1) * 0.01
    assert np.all(intercepts > 0.85) and np.all(intercepts < 1.05)  # U(0.9, 1.0)
    assert set(np.unique(X.to_numpy())) <= set(range(-10, 10))


def test_a_results_object_knows_no_training_predictions_after_a_store_load(grouped, tmp_path):
    from mixcv_core import RunStore

    X, y, group, _ = grouped
    store = RunStore(tmp_path / "store")
    results = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=2).add_model(LinearModel)
               .set_run(store=store).perform().get_results())
    loaded = store.load(results.run_id)
    np.testing.assert_allclose(loaded.get_predictions("LinearModel", 1), results.get_predictions("LinearModel", 1))
    err = raises_on("fold_id", lambda: loaded.get_training_predictions("LinearModel", 1), SpecError)
    assert "store" in str(err)
