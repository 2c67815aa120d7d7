"""Every kind of bad input is refused before any work starts, with the field named."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.models import LinearMixedEffectsModel


def raises_on(field, fn):
    with pytest.raises(MixcvError) as info:
        fn()
    assert info.value.field == field, info.value
    assert str(info.value).startswith(f"{field}: ")
    return info.value


def cv_with(grouped, **changes):
    X, y, group, slopes = grouped
    args = {"X": X, "y": y, "groups": group, "slopes": slopes, **changes}
    return CrossValidation().set_data(**args)


def test_x_not_a_frame(grouped):
    err = raises_on("X", lambda: cv_with(grouped, X=grouped[0].to_numpy(), slopes=None))
    assert "DataFrame" in err.message and "ndarray" in err.message


def test_y_of_another_length(grouped):
    err = raises_on("y", lambda: cv_with(grouped, y=grouped[1].iloc[:-3]))
    assert "57 rows but X has 60" in err.message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_x(grouped, bad):
    X = grouped[0].copy()
    X.iloc[4, 1] = bad
    err = raises_on("X", lambda: cv_with(grouped, X=X))
    assert "'X1' (" + ("1 NaN" if np.isnan(bad) else "1 infinite") + ")" in err.message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_y(grouped, bad):
    y = grouped[1].copy()
    y.iloc[0] = bad
    raises_on("y", lambda: cv_with(grouped, y=y))


def test_missing_group_labels(grouped):
    g = grouped[2].astype(float).copy()
    g.iloc[[1, 2]] = np.nan
    err = raises_on("groups", lambda: cv_with(grouped, groups=g))
    assert "2 missing" in err.message


def test_non_numeric_feature(grouped):
    X = grouped[0].assign(site=["a", "b"] * 30)
    err = raises_on("X", lambda: cv_with(grouped, X=X))
    assert "'site'" in err.message and "get_dummies" in err.message


def test_slope_column_not_in_x(grouped):
    err = raises_on("slopes", lambda: cv_with(grouped, slopes=["nope"]))
    assert "'nope'" in err.message


def test_single_group(grouped):
    err = raises_on("groups", lambda: cv_with(grouped, groups=np.zeros(60, dtype=int)))
    assert "single group" in err.message


def test_fewer_groups_than_group_folds(grouped):
    cv = cv_with(grouped).set_splits(split_out="GroupKFold", n_splits_out=10).add_model("LinearModel")
    err = raises_on("outer.n_splits", cv.perform)
    assert "at least 10 groups, there are 6" in err.message


def test_fewer_groups_than_inner_group_folds(grouped):
    cv = (cv_with(grouped).set_splits(split_out="GroupKFold", split_in="GroupKFold", n_splits_out=3, n_splits_in=5)
          .add_model("Ridge", requires_inner_cv=True, params={"alpha": optuna.distributions.FloatDistribution(0.1, 10)}))
    err = raises_on("inner.n_splits", cv.perform)
    assert "outer fold 0" in err.message


@pytest.mark.parametrize("kw,field", [({"split_out": "GroupKFlod"}, "outer.method"),
                                      ({"split_in": "Bogus"}, "inner.method")])
def test_unknown_split_name(grouped, kw, field):
    err = raises_on(field, lambda: cv_with(grouped).set_splits(**kw))
    assert "GroupKFold" in err.message  # lists the choices


def test_unknown_model_name(grouped):
    err = raises_on("models['RandomForestRegresor'].model", lambda: cv_with(grouped).add_model("RandomForestRegresor"))
    assert "did you mean 'RandomForestRegressor'" in err.message


@pytest.mark.parametrize("name,words", [
    ("LogisticRegression", "LogisticRegression is a classifier; this run is regression (mixcv predicts a "
                           "continuous target), so it needs a regressor such as 'LinearRegression' or 'Ridge'"),
    ("RandomForestClassifier", "RandomForestClassifier is a classifier; this run is regression (mixcv predicts a "
                               "continuous target), so it needs a regressor, e.g. 'RandomForestRegressor'"),
    ("StandardScaler", "StandardScaler is a transformer (it changes features, it predicts nothing)"),
    ("KMeans", "KMeans is a clustering method, not a model of a target"),
])
def test_a_scikit_learn_estimator_that_is_not_a_regressor_is_refused_with_the_reason(grouped, name, words):
    # A classifier is a model name like any other (a classification run uses it): on this
    # continuous target the run is a regression, and it is refused before any fit.
    err = raises_on(f"models[{name!r}].model", lambda: cv_with(grouped).add_model(name).perform())
    assert words in err.message and "unknown model" not in err.message


def test_several_grouping_columns_are_understood_as_such():
    from mixcv_core.experiment.spec import DataSpec
    assert DataSpec(target="y", groups=["Subject", "Occasion"]).group_columns == ("Subject", "Occasion")
    assert DataSpec(target="y", groups=["Subject"]).groups == "Subject"
    err = raises_on("data.groups", lambda: DataSpec(target="y", groups=["Subject", 3]))
    assert "column names must be strings" in err.message


def test_model_instance_instead_of_class(grouped):
    from sklearn.linear_model import Ridge
    err = raises_on("models['model'].model", lambda: cv_with(grouped).add_model(Ridge()))
    assert "model_kwargs" in err.message


@pytest.mark.parametrize("kw,field", [({"n_splits_out": 1}, "outer.n_splits"), ({"n_splits_in": 0}, "inner.n_splits"),
                                      ({"n_splits_out": 2.5}, "outer.n_splits")])
def test_n_splits_below_two_or_not_int(grouped, kw, field):
    raises_on(field, lambda: cv_with(grouped).set_splits(**kw))


def test_params_that_are_not_distributions(grouped):
    err = raises_on("models['Ridge'].params['alpha']",
                    lambda: cv_with(grouped).add_model("Ridge", requires_inner_cv=True, params={"alpha": [0.1, 1.0]}))
    assert "optuna distribution" in err.message


def test_params_that_the_model_does_not_have(grouped):
    err = raises_on("models['Ridge'].params", lambda: cv_with(grouped).add_model(
        "Ridge", requires_inner_cv=True, params={"alpah": optuna.distributions.FloatDistribution(0.1, 1)}))
    assert "did you mean 'alpha'" in err.message


def test_bad_hyperparameter_range_in_yaml(grouped):
    text = "R:\n  model: Ridge\n  requires_inner_cv: true\n  params:\n    alpha: !Float {low: 5, high: 1}\n"
    err = raises_on("models.params", lambda: cv_with(grouped).set_models(text))
    assert "line 5" in err.message


def test_empty_model_list(grouped):
    raises_on("models", cv_with(grouped).perform)
    raises_on("models", lambda: cv_with(grouped).set_models({}))


def test_no_data():
    raises_on("data", CrossValidation().add_model("LinearModel").perform)


def test_mixed_model_without_groups(grouped):
    X, y, _, _ = grouped
    cv = CrossValidation().set_data(X, y).add_model(LinearMixedEffectsModel)
    err = raises_on("data.groups", cv.perform)
    assert "LinearMixedEffectsModel" in err.message


@pytest.mark.parametrize("kw,field", [({"random_seed": -1}, "random_seed"), ({"n_jobs": 0}, "n_jobs"),
                                      ({"random_seed": "42"}, "random_seed")])
def test_bad_run_settings(kw, field):
    raises_on(field, lambda: CrossValidation().set_run(**kw))


def test_bad_merf_settings():
    raises_on("merf.max_iterations", lambda: CrossValidation().set_merf(True, em_max_iterations=0))
    raises_on("merf.stopping_threshold", lambda: CrossValidation().set_merf(True, em_stopping_threshold=-1.0))


def test_bad_inner_cv_settings():
    raises_on("tuning.n_trials", lambda: CrossValidation().set_inner_cv(0))
    raises_on("tuning.objective_scorer", lambda: CrossValidation().set_inner_cv(3, objective_scorer="mse"))


def test_unknown_metric(grouped):
    err = raises_on("metrics", lambda: cv_with(grouped).set_splits(metrics=["r2", "rsme"]))
    assert "rmse" in err.message


def test_errors_are_value_or_type_errors(grouped):
    with pytest.raises(TypeError):
        cv_with(grouped, X=[1, 2, 3], slopes=None)
    with pytest.raises(ValueError):
        cv_with(grouped).set_splits(n_splits_out=1)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5),
                       st.integers(-5, 1), st.lists(st.integers(), max_size=3)))
def test_any_bad_n_splits_is_refused_with_its_field(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_splits(n_splits_out=value)
    assert info.value.field == "outer.n_splits"


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=12).filter(lambda s: s.lower() not in {
    "kfold", "stratifiedkfold", "groupkfold", "stratifiedgroupkfold", "customstratifiedkfold",
    "customstratifiedgroupkfold"}))
def test_any_unknown_split_name_is_refused(name):
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_splits(split_out=name)
    assert info.value.field == "outer.method"


def test_validation_happens_before_any_fit(grouped, monkeypatch):
    calls = []
    from mixcv_core.run import task, tuning
    for module in (task, tuning):  # where fits are called from
        monkeypatch.setattr(module, "fit_estimator", lambda *a, **k: calls.append(1))
    cv = cv_with(grouped).set_splits(split_out="GroupKFold", n_splits_out=7).add_model("LinearModel")
    with pytest.raises(MixcvError):
        cv.perform()
    assert calls == []


def test_seed_beyond_32_bits_is_refused():
    raises_on("random_seed", lambda: CrossValidation().set_run(random_seed=2**32))
