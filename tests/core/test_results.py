"""Results views and exports, the model mapping, the spec round trip and the synthesizer."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixcv_core import CrossValidation, ExperimentSpec
from mixcv_core.models import LinearMixedEffectsModel, LinearModel
from mixcv_core.synthesizer import generate_grouped_regression


@pytest.fixture(scope="module")
def results(grouped):
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes, dataset_name="toy")
            .set_splits("GroupKFold", n_splits_out=3).add_model(LinearModel).add_model(LinearMixedEffectsModel)
            .perform().get_results())


def test_fold_table_columns(results):
    table = results.to_frame()
    assert list(table.columns[:3]) == ["model", "repeat", "fold"]
    assert (table["repeat"] == 0).all()   # one repeat unless asked
    for c in ("test_r2", "test_mse", "test_mae", "train_r2", "train_mse", "train_mae", "fit_time", "best_params"):
        assert c in table.columns
    assert (table["n_train"] + table["n_test"] == 60).all()


def test_summary_is_mean_sd_median_and_rmse_is_root_of_mean_mse(results):
    table = results.to_frame()
    s = results.summary
    for model in ("LinearModel", "LinearMixedEffectsModel"):
        v = table.loc[table["model"] == model, "test_r2"]
        assert np.isclose(s.loc[(model, "r2"), "mean"], v.mean())
        assert np.isclose(s.loc[(model, "r2"), "sd"], v.std(ddof=1))
        assert np.isclose(s.loc[(model, "r2"), "median"], v.median())
        mse = table.loc[table["model"] == model, "test_mse"]
        assert np.isclose(s.loc[(model, "rmse"), "mean"], np.sqrt(mse.mean()))
        assert s.loc[(model, "rmse"), "mean"] >= np.sqrt(mse).mean()  # Jensen: never the biased mean of roots
    both = results.summarize("both")
    assert ("LinearModel", "train_mse") in both.index


def test_predictions_cover_every_row_once_per_model(results, grouped):
    pred = results.predictions
    X, y, group, _ = grouped
    for _model, part in pred.groupby("model"):
        assert sorted(part["row"]) == list(range(60))
        np.testing.assert_allclose(part.sort_values("row")["y_true"], y)
        assert (part.sort_values("row")["group"].to_numpy() == group.to_numpy()).all()
    # Out-of-fold MSE from the predictions equals the mean of fold MSEs weighted by fold size.
    lm = pred[pred["model"] == "LinearModel"]
    t = results.to_frame().query("model == 'LinearModel'")
    np.testing.assert_allclose(np.mean((lm.y_true - lm.y_pred) ** 2),
                               np.average(t["test_mse"], weights=t["n_test"]))


def test_csv_and_json_exports(results, tmp_path):
    path = results.to_csv(tmp_path / "folds.csv")
    back = pd.read_csv(path)
    assert len(back) == 6 and np.allclose(back["test_mse"], results.to_frame()["test_mse"])
    data = json.loads(results.to_json(tmp_path / "r.json"))
    assert data["status"] == "finished"
    assert data["spec"]["data"]["dataset_name"] == "toy"
    assert len(data["folds"]) == 6
    assert json.loads((tmp_path / "r.json").read_text()) == data
    spec = ExperimentSpec.from_dict(data["spec"])
    assert spec == results.spec


def test_html_report(results):
    html = results._repr_html_()
    assert "LinearMixedEffectsModel" in html and "toy" in html
    assert "font-weight: bold" in html  # best model highlighted
    assert "<details>" in html and "Per fold (6 fits)" in html


def test_plots(results):
    from matplotlib.figure import Figure
    assert isinstance(results.plot("r2"), Figure)
    fig = results.plot_predictions()
    assert len(fig.axes) == 2


def test_yaml_model_mapping(grouped):
    X, y, group, _ = grouped
    text = """
Forest:
  model: RandomForestRegressor
  requires_inner_cv: true
  model_kwargs: {n_estimators: 5}
  post_processor: flexcv.model_postprocessing.RandomForestModelPostProcessor
  params:
    max_depth: !Int {low: 2, high: 4}
    max_features: !Float {low: 0.5, high: 1.0}
Linear:
  model: mixcv_core.models.LinearModel
"""
    cv = CrossValidation().set_data(X, y, group).set_models(text)
    spec = cv.to_spec()
    assert [m.name for m in spec.models] == ["Forest", "Linear"]
    assert spec.models[0].params["max_depth"] == optuna.distributions.IntDistribution(2, 4)
    assert spec.models[0].tunes and spec.models[0].model_kwargs["n_estimators"] == 5
    assert spec.models[1].estimator is LinearModel


@settings(max_examples=40, deadline=None)
@given(n_splits=st.integers(2, 9), method=st.sampled_from(["KFold", "GroupKFold", "StratifiedKFold"]),
       seed=st.integers(0, 2**31 - 1), n_trials=st.integers(1, 500), low=st.floats(1e-4, 1.0),
       log=st.booleans(), merf=st.booleans(), scale=st.booleans())
def test_spec_round_trips_through_a_plain_dict(n_splits, method, seed, n_trials, low, log, merf, scale):
    from mixcv_core.experiment.spec import DataSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
    spec = ExperimentSpec(
        data=DataSpec("y", groups="g", slopes=("a",), features=("a", "b")),
        models=(ModelSpec("R", "Ridge", params={"alpha": optuna.distributions.FloatDistribution(low, 10.0, log=log)},
                          requires_inner_cv=True, add_merf=merf),),
        outer=SplitSpec(method, n_splits, scale, _field="outer"), inner=SplitSpec("KFold", 2, _field="inner"),
        tuning=TuningSpec(n_trials), merf=MerfSpec(max_iterations=7), seed=seed)
    d = spec.to_dict()
    assert ExperimentSpec.from_dict(json.loads(json.dumps(d))) == spec


def test_synthesizer_has_real_random_slopes():
    X, y, group, slopes = generate_grouped_regression(40, 60, n_slopes=1, noise_level=0.1, random_seed=3)
    assert X.shape == (2400, 5) and list(slopes.columns) == ["X0"] and group.nunique() == 40
    # Per-group OLS slopes of X0 vary across groups by about sd_slope = 0.5 (a reference
    # computed without mixcv): flexcv's generator would give ~0 here.
    per_group = []
    for g in range(40):
        m = (group == g).to_numpy()
        A = np.column_stack([np.ones(m.sum()), X[m].to_numpy()])
        per_group.append(np.linalg.lstsq(A, y[m].to_numpy(), rcond=None)[0][1])
    assert 0.3 < np.std(per_group, ddof=1) < 0.7
    lmm = LinearMixedEffectsModel().fit(X, y, groups=group, slopes=slopes)
    assert 0.3**2 < lmm.cov_re_.loc["X0", "X0"] < 0.7**2
    assert 0.6**2 < lmm.cov_re_.loc["Intercept", "Intercept"] < 1.5**2
    again = generate_grouped_regression(40, 60, n_slopes=1, noise_level=0.1, random_seed=3)
    pd.testing.assert_series_equal(y, again[1])


def test_ties_are_all_bold_and_wide_tables_scroll_inside_the_output():
    import re

    from mixcv_core import CrossValidation
    from mixcv_core.synthesizer import generate_grouped_regression
    X, y, g, _ = generate_grouped_regression(6, 10, random_seed=3, n_features=2)
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=3)
           .add_model("LinearModel").add_model("LinearModel", model_name="SameAgain").add_model("DummyRegressor")
           .set_run(store=False).perform().get_results())
    page = res._repr_html_()
    (selectors,) = re.findall(r"((?:#T_\w+_row\d_col\d,?\s*)+)\{\s*font-weight: bold;", page)
    bold = set(re.findall(r"_row(\d)_col(\d)", selectors))
    # Both tied models are bold on every metric, the dummy nowhere.
    assert bold == {(r, c) for r in "01" for c in "0123"}, bold
    assert page.count('<div class="mixcv-scroll">') >= 2                 # summary and per-fold table
