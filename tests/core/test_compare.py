"""The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mixcv_core import MixcvError
from mixcv_core.results.compare import corrected_resampled_ttest

D = np.array([0.1, 0.2, 0.0, 0.3, 0.1])


def test_equal_folds_match_the_hand_computation():
    # mean 0.14; deviations -.04 .06 -.14 .16 -.04 -> squares sum .052, var .013;
    # (1/5 + 20/80) * .013 = .00585, se = .0764853; t = .14 / .0764853 = 1.830417
    r = corrected_resampled_ttest(D, np.full(5, 80), np.full(5, 20))
    assert r.mean_diff == pytest.approx(0.14)
    assert r.t == pytest.approx(1.830417, abs=1e-6)
    assert r.df == 4 and r.n_folds == 5 and r.wins == 4
    assert r.p_value == pytest.approx(2 * stats.t.sf(1.830417, 4), abs=1e-6)
    half = stats.t.ppf(0.975, 4) * 0.0764853
    assert (r.ci_low, r.ci_high) == pytest.approx((0.14 - half, 0.14 + half), abs=1e-6)


def test_the_correction_is_larger_than_the_plain_paired_test():
    r = corrected_resampled_ttest(D, np.full(5, 80), np.full(5, 20))
    plain = stats.ttest_1samp(D, 0.0)
    assert abs(r.t) < abs(plain.statistic) and r.p_value > plain.pvalue
    # with a vanishing test share the correction vanishes: the plain test
    tiny = corrected_resampled_ttest(D, np.full(5, 1e9), np.full(5, 1))
    assert tiny.t == pytest.approx(plain.statistic, rel=1e-6)


def test_unequal_group_folds_use_the_mean_of_their_own_ratios():
    n_train, n_test = np.array([70, 80, 90, 75, 85]), np.array([30, 20, 10, 25, 15])
    ratio = np.mean(n_test / n_train)        # not sum(n_test) / sum(n_train)
    r = corrected_resampled_ttest(D, n_train, n_test)
    assert r.test_train_ratio == pytest.approx(ratio)
    assert r.t == pytest.approx(0.14 / math.sqrt((1 / 5 + ratio) * 0.013), rel=1e-9)


def test_identical_differences_have_no_spread_to_test():
    same = corrected_resampled_ttest(np.zeros(4), np.full(4, 30), np.full(4, 10))
    assert (same.t, same.p_value) == (0.0, 1.0)
    ahead = corrected_resampled_ttest(np.full(4, 0.1), np.full(4, 30), np.full(4, 10))
    assert ahead.t == math.inf and ahead.p_value == 0.0 and ahead.wins == 4


@pytest.mark.parametrize("diffs,n_train,n_test,words", [
    (np.array([0.1]), np.array([8]), np.array([2]), "at least 2 folds"),
    (np.array([0.1, np.nan]), np.array([8, 8]), np.array([2, 2]), "not finite"),
    (np.array([0.1, 0.2]), np.array([8]), np.array([2, 2]), "shapes"),
    (np.array([0.1, 0.2]), np.array([8, 0]), np.array([2, 2]), "training and test rows"),
])
def test_bad_input_is_named(diffs, n_train, n_test, words):
    with pytest.raises(MixcvError, match=words):
        corrected_resampled_ttest(diffs, n_train, n_test)
