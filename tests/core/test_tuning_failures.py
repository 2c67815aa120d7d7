"""A tuned or fixed value, or a fit argument, the estimator would refuse is refused before any
fit; a trial that still fails is said in the results, the report and a warning (issue 22, item 8)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FailsForBigAlpha
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import StrOptions, validate_params

from mixcv_core import CrossValidation, FoldFailedWarning, MixcvError
from mixcv_core.experiment.cell import CellError, parse_cell
from mixcv_core.experiment.spec import ModelSpec
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.run.events import FoldStarted


def test_a_typo_in_a_choice_is_refused_before_any_fit_naming_its_line():
    with pytest.raises(CellError) as info:
        parse_cell("data: df\ntarget: y\nmodels:\n  RandomForestRegressor:\n"
                   "    criterion: choice(absolute_error, absolute_errr)\n")
    assert info.value.line == 6 and "absolute_errr" in info.value.message


@pytest.mark.parametrize("how", ["fixed", "range"])
def test_a_fixed_value_or_a_range_end_out_of_bounds_is_refused_in_python(grouped, how):
    X, y, g, _ = grouped
    started = []
    cv = CrossValidation().set_data(X, y, g).set_run(store=False, observers=[
        lambda e: started.append(e) if isinstance(e, FoldStarted) else None])
    with pytest.raises(MixcvError, match="is not a value") as info:   # as the model is added
        if how == "fixed":
            cv.add_model("RandomForestRegressor", model_kwargs={"max_depth": -3}).perform()
        else:
            cv.add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(-1.0, 1.0)}).perform()
    assert info.value.field.endswith("['max_depth']" if how == "fixed" else "['alpha']")
    assert started == []


def test_trials_that_fail_are_reported_in_results_report_and_a_warning(grouped):
    X, y, g, _ = grouped
    with pytest.warns(FoldFailedWarning, match=r"tuning trials failed.*alpha=5.0 is too large"):
        res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", "GroupKFold", n_splits_out=2,
                                                              n_splits_in=2)
               .add_model(FailsForBigAlpha, requires_inner_cv=True,
                          params={"alpha": CategoricalDistribution([0.5, 5.0])})
               .set_inner_cv(n_trials=6).set_run(store=False).perform().get_results())
    assert res.status == "finished" and all(o.ok for o in res.outcomes)
    notes = res.warnings["warning"].tolist()
    assert notes and all("tuning trials failed" in n for n in notes)
    assert "tuning trials failed" in res._repr_html_()


# -- fit arguments (``fit:`` in a cell, ``fit_kwargs`` in Python) ------------------------
class WeighsRows(RegressorMixin, BaseEstimator):
    """Predicts the mean; its fit declares what ``weighting`` accepts, scikit-learn's way."""

    @validate_params({"weighting": [StrOptions({"uniform", "by_group"})]}, prefer_skip_nested_validation=True)
    def fit(self, X, y, weighting="uniform"):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class TakesAnything(RegressorMixin, BaseEstimator):
    """Predicts the mean; its fit takes any keyword argument (and records them)."""

    def fit(self, X, y, **kwargs):
        self.kwargs_ = kwargs
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_a_misspelt_fit_argument_in_a_cell_is_refused_naming_its_line_and_the_argument_meant():
    with pytest.raises(CellError) as info:
        parse_cell("data: df\ntarget: y\nmodels:\n  RandomForestRegressor:\n"
                   "    n_estimators: 10\n    fit: {sample_wieght: null}\n")
    assert info.value.line == 7 and info.value.field == "models.RandomForestRegressor.fit.sample_wieght"
    assert "did you mean 'sample_weight'" in info.value.message


@pytest.mark.parametrize(("model", "fit_kwargs", "merf", "field", "says"), [
    ("RandomForestRegressor", {"sample_wieght": None}, False, "sample_wieght", "not an argument of"),
    ("Ridge", {"X": [1.0]}, False, "X", "mixcv passes 'X'"),
    ("LinearMixedEffectsModel", {"groups": "g"}, False, "groups", "mixcv passes 'groups'"),
    # The native LMM would drop them: only the statsmodels backend's fit takes any.
    ("LinearMixedEffectsModel", {"maxiter": 500}, False, "maxiter", "native backend takes no fit arguments"),
    (WeighsRows, {"weighting": "by_grup"}, False, "weighting", "is not a value"),
    # MERF(<model>) is fitted with the model's fit arguments too, and its fit takes sample_weight
    # (binary MERF's working weights) but not the base model's validation set.
    ("HistGradientBoostingRegressor", {"X_val": None}, True, "X_val", "MERF(m)"),
])
def test_a_fit_argument_every_fit_would_refuse_is_refused_before_any_fit_naming_the_field(
        grouped, model, fit_kwargs, merf, field, says):
    X, y, g, _ = grouped
    started = []
    cv = CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=2).set_run(
        store=False, observers=[lambda e: started.append(e) if isinstance(e, FoldStarted) else None])
    if merf:
        cv = cv.set_merf(add_merf_global=True)
    with pytest.raises(MixcvError) as info:
        cv.add_model(model, model_name="m", fit_kwargs=fit_kwargs).perform()
    assert info.value.field == f"models['m'].fit_kwargs[{field!r}]" and says in info.value.message
    assert started == []


def test_fit_arguments_a_fit_accepts_reach_every_fit(grouped):
    X, y, g, _ = grouped
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=2)
           .add_model(TakesAnything, model_name="any", fit_kwargs={"anything": 3})
           .add_model(WeighsRows, model_name="weighs", fit_kwargs={"weighting": "by_group"})
           .set_run(store=False, save_models=True).perform().get_results())
    assert all(o.ok for o in res.outcomes)
    assert [o.estimator.kwargs_ for o in res.outcomes if o.model == "any"] == [{"anything": 3}] * 2


def test_the_native_lmm_refuses_fit_arguments_it_would_drop_and_statsmodels_takes_them(grouped):
    X, y, g, _ = grouped
    with pytest.raises(MixcvError, match="native backend takes no fit arguments") as info:
        LinearMixedEffectsModel().fit(X, y, groups=g, maxiter=3)
    assert info.value.field == "maxiter"
    spec = ModelSpec("lmm", LinearMixedEffectsModel, model_kwargs={"backend": "statsmodels"},
                     fit_kwargs={"maxiter": 3})
    assert spec.fit_kwargs == {"maxiter": 3}
    assert LinearMixedEffectsModel(backend="statsmodels").fit(X, y, groups=g, maxiter=300).converged_


def test_callbacks_given_both_as_callbacks_and_as_a_fit_argument_are_refused():
    with pytest.raises(MixcvError, match="given twice") as info:
        CrossValidation().add_model(TakesAnythingWithCallbacks, model_name="m", callbacks=[print],
                                    fit_kwargs={"callbacks": [print]})
    assert info.value.field == "models['m'].fit_kwargs['callbacks']"


class TakesAnythingWithCallbacks(TakesAnything):
    def fit(self, X, y, callbacks=None, **kwargs):
        return super().fit(X, y, **kwargs)
