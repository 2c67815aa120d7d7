"""A tuned or fixed value the estimator would refuse is refused before any fit; a trial that
still fails is said in the results, the report and a warning (issue 22, item 8)."""

from __future__ import annotations

import pytest
from _helpers import FailsForBigAlpha
from optuna.distributions import CategoricalDistribution, FloatDistribution

from mixcv_core import CrossValidation, FoldFailedWarning, MixcvError
from mixcv_core.experiment.cell import CellError, parse_cell
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
