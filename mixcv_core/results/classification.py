"""Curves of a binary classification run: ROC, precision-recall and calibration, per model.

Every curve is drawn from the stored out-of-fold predictions (the probability of the
positive class): once pooled over the outer test folds (each row predicted once per
repeat, by a model that never saw its group), and once per fold, so the figure shows
how much the curve moves from fold to fold. The points are returned as tables too
(`roc_points`, `precision_recall_points`, `calibration_table`) so they can be read,
exported and checked against scikit-learn's own functions.

A regression run, or one with more than two classes, is refused with a `SpecError`
naming the task: these curves are about the probability of one class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..errors import SpecError
from .plots import MixcvFigure, _figure, positive_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ._run import RunView

__all__ = ["roc_points", "precision_recall_points", "calibration_table", "plot_roc", "plot_precision_recall",
           "plot_calibration"]


def _binary_predictions(results: RunView, split: str, what: str) -> pd.DataFrame:
    """The out-of-fold predictions of a binary classification run (``split``: test or known)."""
    if results.spec.task != "classification":
        raise SpecError("task", f"{what} needs a classification run; this one is a regression "
                                "(its predictions are values, not probabilities of a class)")
    classes = results._data.classes
    if len(classes) > 2:
        raise SpecError("task", f"{what} is drawn for two classes (the probability of the positive one); "
                                f"this run has {len(classes)} classes")
    if split not in ("test", "known"):
        raise SpecError("split", f"expected 'test' (new groups) or 'known', got {split!r}")
    if split == "known" and not results.has_known:
        raise SpecError("split", "this run held out no rows of known groups; set known_holdout to score them")
    return results.predictions if split == "test" else results.known_predictions


def _models(results: RunView, model: str | None) -> list[str]:
    if model is None:
        return list(results.model_names)
    if model not in results.model_names:
        raise SpecError("model", f"{model!r} is not a model of these results; models are {results.model_names}")
    return [model]


def _curves(results: RunView, model: str | None, split: str, what: str,
            curve: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]) -> pd.DataFrame:
    """``curve(y, p) -> dict of columns`` per model: pooled over folds (fold <NA>), then per fold."""
    pred = _binary_predictions(results, split, what)
    parts = []
    for m in _models(results, model):
        p = pred[pred["model"] == m]
        if p.empty:
            continue
        chunks = [(pd.NA, p)] + [(k, part) for k, part in p.groupby("fold", sort=True)]
        for fold, part in chunks:
            y, prob = part["y_true"].to_numpy(dtype=int), part["y_pred"].to_numpy(dtype=float)
            cols = curve(y, prob)
            parts.append(pd.DataFrame({"model": m, "fold": pd.array([fold] * len(next(iter(cols.values()))),
                                                                     dtype="Int64"), **cols}))
    return pd.concat(parts, ignore_index=True)


def roc_points(results: RunView, model: str | None = None, split: str = "test") -> pd.DataFrame:
    """The ROC curve of each model: scikit-learn's ``roc_curve`` on the out-of-fold probabilities.

    Returns a long table: ``model``, ``fold`` (``<NA>`` for the curve pooled over every outer
    test fold, then each fold's own), ``fpr``, ``tpr``, ``threshold``.
    """
    def curve(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
        fpr, tpr, thr = skm.roc_curve(y, p)
        return {"fpr": fpr, "tpr": tpr, "threshold": thr}
    return _curves(results, model, split, "a ROC curve", curve)


def precision_recall_points(results: RunView, model: str | None = None, split: str = "test") -> pd.DataFrame:
    """The precision-recall curve of each model (``precision_recall_curve``), long form as `roc_points`.

    Columns ``model``, ``fold``, ``precision``, ``recall``, ``threshold`` (NaN on the last
    point, precision 1 at recall 0, which scikit-learn adds without a threshold).
    """
    def curve(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
        precision, recall, thr = skm.precision_recall_curve(y, p)
        return {"precision": precision, "recall": recall, "threshold": np.append(thr, np.nan)}
    return _curves(results, model, split, "a precision-recall curve", curve)


def calibration_table(results: RunView, n_bins: int = 10, strategy: str = "uniform",
                      split: str = "test") -> pd.DataFrame:
    """A reliability table per model, on the predictions pooled over the outer test folds.

    The probabilities are cut into ``n_bins`` bins (``"uniform"``: equal width on [0, 1];
    ``"quantile"``: equal counts), a probability on an edge falling into the bin below,
    as in scikit-learn's ``calibration_curve``; empty bins are left out, as there.

    Returns
    -------
    DataFrame
        ``model``, ``bin`` (0-based), ``mean_predicted``, ``fraction_positive``, ``count``.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise SpecError("n_bins", f"must be an integer of at least 2, got {n_bins!r}")
    if strategy not in ("uniform", "quantile"):
        raise SpecError("strategy", f"expected 'uniform' or 'quantile', got {strategy!r}")
    pred = _binary_predictions(results, split, "a calibration plot")
    rows = []
    for m in results.model_names:
        p = pred[pred["model"] == m]
        if p.empty:
            continue
        y, prob = p["y_true"].to_numpy(dtype=float), p["y_pred"].to_numpy(dtype=float)
        edges = (np.linspace(0.0, 1.0, n_bins + 1) if strategy == "uniform"
                 else np.percentile(prob, np.linspace(0, 100, n_bins + 1)))
        bins = np.searchsorted(edges[1:-1], prob)
        count = np.bincount(bins, minlength=n_bins)
        total = np.bincount(bins, weights=prob, minlength=n_bins)
        positive = np.bincount(bins, weights=y, minlength=n_bins)
        for b in np.flatnonzero(count):
            rows.append({"model": m, "bin": int(b), "mean_predicted": total[b] / count[b],
                         "fraction_positive": positive[b] / count[b], "count": int(count[b])})
    return pd.DataFrame(rows, columns=["model", "bin", "mean_predicted", "fraction_positive", "count"])


def _per_fold_spread(table: pd.DataFrame, model: str, score: Callable[[pd.DataFrame], float]) -> str:
    """``pooled value; per fold mean ± sd`` of one model's score, for the legend."""
    own = table[table["model"] == model]
    folds = [score(part) for _, part in own[own["fold"].notna()].groupby("fold")]
    pooled = score(own[own["fold"].isna()])
    spread = f", folds {np.mean(folds):.3f} ± {np.std(folds, ddof=1):.3f}" if len(folds) > 1 else ""
    return f"{pooled:.3f}{spread}"


def _draw_curves(table: pd.DataFrame, x: str, y: str, score: Callable[[pd.DataFrame], float], score_name: str,
                 title: str, steps: bool) -> tuple[MixcvFigure, Axes]:
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    # Precision-recall as steps, as average precision sums it (scikit-learn's display does the same);
    # ROC joined by lines, whose area is the AUC.
    style = "steps-post" if steps else "default"
    for i, m in enumerate(dict.fromkeys(table["model"])):
        colour = f"C{i % 10}"
        own = table[table["model"] == m]
        # Each fold faint: their spread is the fold-to-fold uncertainty of the pooled curve.
        for _, part in own[own["fold"].notna()].groupby("fold"):
            ax.plot(part[x], part[y], "-", color=colour, lw=0.7, alpha=0.3, drawstyle=style)
        pooled = own[own["fold"].isna()]
        ax.plot(pooled[x], pooled[y], "-", color=colour, lw=1.8, drawstyle=style,
                label=f"{m} ({score_name} {_per_fold_spread(table, m, score)})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_title(title, fontsize=9)
    return fig, ax


def _average_precision(t: pd.DataFrame) -> float:
    """Average precision from a precision-recall curve: sum over thresholds of the recall gained times
    the precision there (scikit-learn's definition; recall falls along the curve)."""
    recall, precision = t["recall"].to_numpy(), t["precision"].to_numpy()
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def plot_roc(results: RunView, model: str | None = None, split: str = "test") -> MixcvFigure:
    """ROC curves per model, pooled over the outer test folds (bold), each fold's own faint.

    The legend gives each model's AUC pooled and the mean ± sd of its per-fold AUCs.
    """
    table = roc_points(results, model, split)
    fig, ax = _draw_curves(table, "fpr", "tpr", lambda t: skm.auc(t["fpr"], t["tpr"]), "AUC",
                           f"ROC, {'new groups' if split == 'test' else 'known groups'}: pooled over folds (bold), "
                           f"each fold (faint); positive class {positive_label(results)}", steps=False)
    ax.plot([0, 1], [0, 1], ":", color="0.5", lw=0.8)   # chance
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def plot_precision_recall(results: RunView, model: str | None = None, split: str = "test") -> MixcvFigure:
    """Precision-recall curves per model, pooled (bold) and per fold (faint); the dotted line is the
    share of the positive class, what a model that ranks at random reaches."""
    table = precision_recall_points(results, model, split)
    fig, ax = _draw_curves(table, "recall", "precision", _average_precision, "AP",
                           f"precision-recall, {'new groups' if split == 'test' else 'known groups'}: pooled "
                           f"(bold), each fold (faint); positive class {positive_label(results)}", steps=True)
    ax.axhline(float(np.mean(results._data.y == 1)), ls=":", color="0.5", lw=0.8)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="lower left", fontsize=7)
    return fig


def plot_calibration(results: RunView, n_bins: int = 10, strategy: str = "uniform",
                     split: str = "test") -> MixcvFigure:
    """A reliability diagram per model (the observed share of the positive class against the mean
    predicted probability, per bin, pooled over the outer test folds), and the rows per bin below.

    A calibrated model lies on the diagonal; points below it over-predict the positive class.
    """
    table = calibration_table(results, n_bins, strategy, split)
    fig = _figure(6.0, 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / max(n_bins, 1) / max(len(models), 1)
    for i, m in enumerate(models):
        own = table[table["model"] == m]
        top.plot(own["mean_predicted"], own["fraction_positive"], "o-", ms=4, color=f"C{i % 10}", label=m)
        bottom.bar(own["mean_predicted"] + (i - (len(models) - 1) / 2) * width, own["count"], width=width,
                   color=f"C{i % 10}")
    top.plot([0, 1], [0, 1], ":", color="0.5", lw=0.8)
    top.set_ylabel(f"observed share of {positive_label(results)}")
    top.set_title(f"calibration ({n_bins} {strategy} bins, pooled over outer test folds)", fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    bottom.set_xlabel(f"mean predicted probability of {positive_label(results)}")
    bottom.set_ylabel("rows per bin")
    bottom.set_xlim(-0.01, 1.01)
    return fig
