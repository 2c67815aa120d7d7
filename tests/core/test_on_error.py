"""The failure policy: on_error="keep" records failures and goes on; "raise" stops with the error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, FoldFailedWarning, MixcvError
from mixcv_core.experiment.cell import parse_cell, spec_to_cell


class Explodes(RegressorMixin, BaseEstimator):
    """Raises in fit on every training set larger than ``limit`` rows."""

    def __init__(self, limit: int = 0):
        self.limit = limit

    def fit(self, X, y):
        if len(y) > self.limit:
            raise ArithmeticError(f"cannot fit {len(y)} rows")
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def _cv(grouped, **run):
    X, y, g, _ = grouped
    return (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=3).add_model("LinearModel")
            .add_model(Explodes).set_run(store=False, **run))


def test_keep_records_failures_and_warns_once_loudly_when_every_fold_of_a_model_failed(grouped):
    with pytest.warns(FoldFailedWarning) as caught:
        res = _cv(grouped).perform().get_results()
    assert res.to_frame()["model"].unique().tolist() == ["LinearModel"]  # Explodes has no row...
    assert len(res.failures) == 3              # ...but its three failures are kept
    loud = [str(w.message) for w in caught if "every fold of Explodes failed" in str(w.message)]
    assert len(loud) == 1
    assert "ArithmeticError: cannot fit 40 rows" in loud[0] and "on_error='raise'" in loud[0]


def test_no_loud_warning_when_only_some_folds_fail(grouped):
    X, y, g, _ = grouped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = np.arange(60)
        splits = [(rows[:30], rows[30:]), (rows[:50], rows[50:])]   # 30 and 50 training rows
        res = (CrossValidation().set_data(X, y, g).set_splits(split_out=splits)
               .add_model(Explodes, model_kwargs={"limit": 40}).set_run(store=False).perform().get_results())
    assert len(res.failures) == 1 and len(res.to_frame()) == 1
    texts = [str(w.message) for w in caught]
    assert any("1 model fit(s) failed" in t for t in texts)
    assert not any("every fold of" in t for t in texts)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_raise_stops_the_run_with_the_models_own_error(grouped, n_jobs):
    with pytest.raises(ArithmeticError, match="cannot fit"):
        _cv(grouped, on_error="raise", n_jobs=n_jobs).perform()


def test_raise_also_stops_a_failing_tuning_trial(grouped):
    import optuna
    X, y, g, _ = grouped
    cv = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2, n_splits_in=2)
          .add_model(Explodes, requires_inner_cv=True, params={"limit": optuna.distributions.IntDistribution(0, 1)})
          .set_inner_cv(2).set_run(store=False, on_error="raise"))
    with pytest.raises(ArithmeticError):
        cv.perform()


def test_on_error_in_the_cell_round_trips_and_bad_values_name_the_line():
    text = "data: df\ntarget: y\non_error: raise\nmodels: [LinearModel]\n"
    spec = parse_cell(text).spec
    assert spec.on_error == "raise"
    assert "on_error: raise" in spec_to_cell(spec)
    with pytest.raises(MixcvError) as info:
        parse_cell(text.replace("raise", "rase"))
    assert str(info.value).startswith("line 4, on_error: must be one of 'keep', 'raise'")
