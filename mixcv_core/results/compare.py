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

`corrected_resampled_ttest` is the statistic on plain arrays; `compare_models` and
`compare_all` feed it a run's fold scores (`RunView.compare`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import SpecError
from ..metrics import higher_is_better, metric_label
from ..outcome import FoldOutcome

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["CorrectedTTest", "corrected_resampled_ttest", "Comparison", "compare_models", "compare_all",
           "COMPARISON_COLUMNS"]


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


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass(frozen=True, repr=False)
class Comparison:
    """Model ``a`` against model ``b`` on one metric, over the outer folds both finished.

    ``mean_diff`` and the interval are of ``a - b`` in the metric's own units;
    ``wins`` counts the folds where ``a`` scored better (higher R², lower MSE...).
    The test is `corrected_resampled_ttest`.
    """

    a: str
    b: str
    metric: str
    split: str
    mean_diff: float
    t: float
    df: int
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float
    wins: int          # folds where a is better than b
    losses: int        # folds where b is better than a
    n_folds: int
    test_train_ratio: float
    #: The largest difference between the two models' predictions on the compared rows, over
    #: the folds compared (NaN when the predictions are not kept, e.g. a stored run).
    max_prediction_diff: float = math.nan
    #: Whether the two models predict the same values up to rounding (``IDENTICAL`` of the
    #: target's scale): then fold "wins" are rounding noise, and the sentence says so.
    identical: bool = False

    @property
    def sentence(self) -> str:
        """The comparison in plain words, e.g. "A beats B on R² in 14 of 15 folds (...); corrected t-test p = 0.003".

        A difference the test does not support is said as such, whichever way its mean leans.
        """
        label = metric_label(self.metric) + ("" if self.split == "test" else f" ({self.split}-group rows)")
        numbers = (f"mean difference {self.a} − {self.b} {self.mean_diff:.3g}, {self.confidence:.0%} CI "
                   f"[{self.ci_low:.3g}, {self.ci_high:.3g}]")
        if self.identical:
            rows = "" if self.split == "test" else f" for {self.split}-group rows"
            return (f"{self.a} and {self.b} make identical predictions{rows} (largest difference "
                    f"{self.max_prediction_diff:.2g} in {self.n_folds} folds, rounding): the same {label}, nothing "
                    "to choose between them")
        if self.p_value < 0.05:
            a_ahead = (self.mean_diff > 0) == higher_is_better(self.metric)
            winner, loser = (self.a, self.b) if a_ahead else (self.b, self.a)
            won = self.wins if a_ahead else self.losses
            return (f"{winner} beats {loser} on {label} in {won} of {self.n_folds} folds ({numbers}); "
                    f"corrected t-test {_p_text(self.p_value)}")
        return (f"{self.a} and {self.b} are not distinguishable on {label}: {self.a} better in {self.wins} of "
                f"{self.n_folds} folds ({numbers}); corrected t-test {_p_text(self.p_value)}, within "
                "fold-to-fold noise")

    def __str__(self) -> str:
        return self.sentence

    def __repr__(self) -> str:
        return f"<Comparison: {self.sentence}; t = {self.t:.3g}, df = {self.df}>"

    def _repr_html_(self) -> str:
        import html
        return f"<div class='mixcv-comparison'>{html.escape(self.sentence)}</div>"


def _column(results: RunView, metric: str, split: str, table: pd.DataFrame) -> str:
    """The per-fold column compared, checked once: ``<split>_<metric>``."""
    if split not in ("test", "known"):
        raise SpecError("split", f"compare on 'test' (new groups) or 'known' rows, got {split!r}")
    column = f"{split}_{metric}"
    if column not in table.columns:
        raise SpecError("metric", f"no column {column!r} in the results; metrics are {results.metric_names}")
    return column


def _paired_scores(results: RunView, a: str, b: str, column: str, table: pd.DataFrame) -> pd.DataFrame:
    for name in (a, b):
        if name not in results.model_names:
            raise SpecError("model", f"{name!r} is not a model of these results; models are {results.model_names}")
    if a == b:
        raise SpecError("model", f"compare two different models, got {a!r} twice")
    keep = ["fold", column, "n_train", "n_test"]
    pair = table.loc[table["model"] == a, keep].merge(table.loc[table["model"] == b, ["fold", column]],
                                                      on="fold", suffixes=("_a", "_b"))
    return pair.dropna(subset=[f"{column}_a", f"{column}_b"])


def compare_models(results: RunView, a: str, b: str, metric: str | None = None, split: str = "test",
                   confidence: float = 0.95, table: pd.DataFrame | None = None) -> Comparison:
    """Compare models ``a`` and ``b`` on the outer folds both finished (see `RunView.compare`).

    ``table``: ``results.to_frame()`` when the caller has it already (all pairs at once).
    """
    metric = metric or results.metric_names[0]
    table = results.to_frame() if table is None else table
    column = _column(results, metric, split, table)
    pair = _paired_scores(results, a, b, column, table)
    d = (pair[f"{column}_a"] - pair[f"{column}_b"]).to_numpy(dtype=float)
    r = corrected_resampled_ttest(d, pair["n_train"].to_numpy(), pair["n_test"].to_numpy(), confidence)
    sign = 1 if higher_is_better(metric) else -1
    gap, identical = prediction_gap(results.outcomes, a, b, pair["fold"].tolist(), split, results._data.y)
    return Comparison(a=a, b=b, metric=metric, split=split, mean_diff=r.mean_diff, t=r.t, df=r.df,
                      p_value=r.p_value, ci_low=r.ci_low, ci_high=r.ci_high, confidence=confidence,
                      wins=int(np.sum(sign * d > 0)), losses=int(np.sum(sign * d < 0)), n_folds=r.n_folds,
                      test_train_ratio=r.test_train_ratio, max_prediction_diff=gap, identical=identical)


#: Predictions closer than this share of the target's sd are "identical": what separates
#: two fits of the same linear model by different algorithms (sleepstudy's LMM and linear
#: model for new subjects differ by 1e-15), far below any difference a model makes.
IDENTICAL = 1e-9


def prediction_gap(outcomes: Sequence[FoldOutcome], a: str, b: str, folds: list[int], split: str,
                   y: np.ndarray) -> tuple[float, bool]:
    """The largest |prediction a - prediction b| over ``folds`` and whether that is rounding.

    NaN and False when some fold's predictions are not at hand (a run loaded without them).
    """
    preds = {(o.model, o.fold): (o.y_pred if split == "test" else o.y_pred_known) for o in outcomes if o.ok}
    gap = 0.0
    for fold in folds:
        pa, pb = preds.get((a, fold)), preds.get((b, fold))
        if pa is None or pb is None or len(pa) != len(pb):
            return math.nan, False
        if len(pa):
            gap = max(gap, float(np.max(np.abs(np.asarray(pa, float) - np.asarray(pb, float)))))
    scale = float(np.std(y)) if len(y) else 0.0
    return gap, bool(folds) and gap <= IDENTICAL * max(scale, np.finfo(float).tiny)


COMPARISON_COLUMNS = ["metric", "a", "b", "mean_diff", "ci_low", "ci_high", "t", "df", "p_value", "p_holm",
                      "wins", "losses", "n_folds", "identical"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given.

    The i-th smallest of m p-values is multiplied by m - i (i from 0), made non-decreasing
    in that order, and capped at 1. Written here rather than called from statsmodels'
    ``multipletests``, whose Holm branch runs a full ``gc.collect()`` per call: seconds per
    metric in a notebook with a large heap (tests/core/test_compare.py checks it against it).
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    out = np.empty_like(p)
    out[order] = scaled
    return out


def compare_all(results: RunView, metrics: list[str] | None = None, split: str = "test",
                confidence: float = 0.95) -> pd.DataFrame:
    """Every pair of models on every metric (the primary one first), Holm-adjusted per metric.

    Pairs are ordered by the models' order in the spec; ``a`` is the earlier model. Holm's
    step-down adjustment controls the chance of any false "better" among a metric's pairs.
    """
    names = results.model_names
    table = results.to_frame()
    metrics = metrics or results.metric_names
    for metric in metrics:
        _column(results, metric, split, table)   # a wrong split or metric is an error, not an empty table
    rows = []
    for metric in metrics:
        block: list[dict[str, Any]] = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                try:
                    c = compare_models(results, a, b, metric, split, confidence, table)
                except SpecError as exc:
                    if exc.field != "diffs":
                        raise
                    continue   # fewer than two folds both finished: nothing to test
                block.append({"metric": metric, "a": a, "b": b, "mean_diff": c.mean_diff, "ci_low": c.ci_low,
                              "ci_high": c.ci_high, "t": c.t, "df": c.df, "p_value": c.p_value,
                              "wins": c.wins, "losses": c.losses, "n_folds": c.n_folds,
                              "identical": c.identical})
        if block:
            adjusted = holm([r["p_value"] for r in block])
            for r, p in zip(block, adjusted):
                r["p_holm"] = float(p)
        rows.extend(block)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
