"""Is model A better than model B, or is it fold noise? The corrected resampled t-test.

Fold scores of cross validation are not independent: every two training sets share most
of their rows, so the plain paired t-test over folds understates the variance of the
mean difference and declares differences that are not there. Nadeau & Bengio (2003)
correct the variance by the ratio of test to training rows; Bouckaert & Frank (2004)
give the form for ``r`` repetitions of ``k``-fold CV::

    t = mean(d) / sqrt((1 / (k r) + n_test / n_train) * var(d)),   df = k r - 1

with ``d`` the per-fold differences of the two models' scores and ``var`` the sample
variance (ddof=1). Group folds have unequal sizes, so ``n_test / n_train`` is the mean of
the folds' own ratios.

This module is the statistic only, on plain arrays; `Results` feeds it fold scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import SpecError

__all__ = ["CorrectedTTest", "corrected_resampled_ttest"]


@dataclass(frozen=True)
class CorrectedTTest:
    """The corrected resampled t-test of one difference of fold scores (a - b)."""

    mean_diff: float
    t: float
    df: int
    p_value: float              # two-sided
    ci_low: float
    ci_high: float
    wins: int                   # folds where a - b > 0
    n_folds: int
    test_train_ratio: float     # the mean of the folds' n_test / n_train


def corrected_resampled_ttest(diffs: np.ndarray, n_train: np.ndarray, n_test: np.ndarray,
                              confidence: float = 0.95) -> CorrectedTTest:
    """Test whether the mean of per-fold score differences is zero, corrected for CV.

    Parameters
    ----------
    diffs : array of shape (n_folds,)
        Score of model a minus score of model b, one per outer fold (over all repeats).
    n_train, n_test : arrays of shape (n_folds,)
        Training and test rows of each fold.
    confidence : float, default=0.95
        Level of the confidence interval of the mean difference.

    Returns
    -------
    CorrectedTTest

    Raises
    ------
    SpecError
        Fewer than two folds, mismatched lengths, non-finite differences, or folds without
        training or test rows.

    Examples
    --------
    >>> r = corrected_resampled_ttest(np.array([0.1, 0.2, 0.0, 0.3, 0.1]), np.full(5, 80), np.full(5, 20))
    >>> round(r.t, 4), r.df
    (1.8304, 4)
    """
    d = np.asarray(diffs, dtype=float)
    tr = np.asarray(n_train, dtype=float)
    te = np.asarray(n_test, dtype=float)
    if d.ndim != 1 or d.shape != tr.shape or d.shape != te.shape:
        raise SpecError("diffs", f"expected one difference, training size and test size per fold; got shapes "
                                 f"{d.shape}, {tr.shape}, {te.shape}")
    n = d.size
    if n < 2:
        raise SpecError("diffs", f"a comparison needs at least 2 folds, got {n}")
    if not np.all(np.isfinite(d)):
        raise SpecError("diffs", "some fold scores are missing or not finite (a failed fold?); compare "
                                 "on the folds both models finished")
    if np.any(tr <= 0) or np.any(te <= 0):
        raise SpecError("n_train", "every fold needs training and test rows")
    if not 0.0 < confidence < 1.0:
        raise SpecError("confidence", f"must be between 0 and 1, got {confidence!r}")
    ratio = float(np.mean(te / tr))
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    df = n - 1
    se = math.sqrt((1.0 / n + ratio) * var)
    if se > 0:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
    else:
        # Every fold gave the same difference: no spread to test against.
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return CorrectedTTest(mean_diff=mean, t=t, df=df, p_value=p, ci_low=mean - half, ci_high=mean + half,
                          wins=int(np.sum(d > 0)), n_folds=n, test_train_ratio=ratio)
