"""Evaluation metrics by name, each with its task and its direction written once.

A metric is any ``f(y_true, y_pred) -> float``. The regression defaults are flexcv's:
r2, mse, mae. RMSE over folds is reported as the square root of the mean MSE, never as
the mean of per-fold roots (which is biased low by Jensen's inequality).

Classification metrics read *predicted probabilities*, never hard labels: ``y_pred`` is
the probability of the positive class (two classes, ``y_true`` coded 0/1) or the
``(n, K)`` matrix of class probabilities (``y_true`` coded ``0 .. K-1``). The threshold
metrics (accuracy, balanced accuracy) take the most probable class, as a classifier's
``predict`` does. Whether larger is better is part of each metric's record
(`MetricInfo.greater_is_better`): summaries, the comparison, the checks and tuning read
it from there (`higher_is_better`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from .constraints import check_function
from .errors import SpecError, SpecTypeError

__all__ = ["METRICS", "METRIC_INFO", "MetricInfo", "DEFAULT_METRICS", "TASK_DEFAULT_METRICS", "TUNING_DEFAULT",
           "MetricsDict", "resolve_metrics", "mse_objective", "higher_is_better", "metric_label", "metric_task",
           "predicted_class"]

Metric = Callable[[np.ndarray, np.ndarray], float]


def _plain_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The pair as float64 vectors when scikit-learn would score them as they are, else None.

    That is one output, at least two rows, numbers that are int or float64 (scikit-learn keeps
    float32 in float32) and all finite. Anything else goes to scikit-learn itself, so its errors
    and warnings (NaN predictions, lengths that differ, one row) stay exactly as they were.
    """
    y, p = np.asarray(y_true), np.asarray(y_pred)
    if y.ndim != 1 or p.shape != y.shape or y.size < 2:
        return None
    if not all(a.dtype.kind in "iu" or a.dtype == np.float64 for a in (y, p)):
        return None
    y, p = y.astype(np.float64, copy=False), p.astype(np.float64, copy=False)
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        return None
    return y, p


# r2, mse and mae score every fold's test and training predictions. Through scikit-learn each
# call costs about a millisecond of input validation around a few microseconds of arithmetic
# (a sixth of the seed example's time outside the fits), so the plain case is computed here, with
# scikit-learn's own formulas in its order of operations: the results are bit for bit its own.
def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (constant ``y_true``: 1.0 if
    every prediction is exact, else 0.0)."""
    pair = _plain_pair(y_true, y_pred)
    if pair is None:
        return float(skm.r2_score(y_true, y_pred))
    y, p = pair
    numerator, denominator = np.sum((y - p) ** 2), np.sum((y - np.mean(y)) ** 2)
    if numerator == 0:
        return 1.0
    if denominator == 0:
        return 0.0
    return float(1 - numerator / denominator)


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared error, as ``sklearn.metrics.mean_squared_error``."""
    pair = _plain_pair(y_true, y_pred)
    if pair is None:
        return float(skm.mean_squared_error(y_true, y_pred))
    y, p = pair
    return float(np.mean((y - p) ** 2))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, as ``sklearn.metrics.mean_absolute_error``."""
    pair = _plain_pair(y_true, y_pred)
    if pair is None:
        return float(skm.mean_absolute_error(y_true, y_pred))
    y, p = pair
    return float(np.mean(np.abs(p - y)))


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


def _labels(y_pred: np.ndarray) -> list[int]:
    # Every class the probabilities are of, not only those in y_true: a fold's scores
    # then mean the same thing whichever classes its rows happen to hold.
    return list(range(y_pred.shape[1])) if np.ndim(y_pred) == 2 else [0, 1]


def predicted_class(y_pred: np.ndarray) -> np.ndarray:
    """The most probable class (ties to the lower class, as ``predict`` of scikit-learn's classifiers)."""
    p = np.asarray(y_pred, dtype=float)
    return np.argmax(p, axis=1) if p.ndim == 2 else (p > 0.5).astype(int)


def roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Area under the ROC curve (several classes: one-vs-rest, macro-averaged)."""
    if np.ndim(y_pred) == 2:
        return float(skm.roc_auc_score(y_true, y_pred, multi_class="ovr", labels=_labels(y_pred)))
    return float(skm.roc_auc_score(y_true, y_pred))


def log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean negative log-likelihood of the predicted probabilities (a proper scoring rule)."""
    return float(skm.log_loss(y_true, y_pred, labels=_labels(y_pred)))


def brier(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean squared distance of the probabilities from the outcome (several classes: summed over classes)."""
    if np.ndim(y_pred) == 2:
        return float(skm.brier_score_loss(y_true, y_pred, labels=_labels(y_pred)))
    return float(skm.brier_score_loss(y_true, y_pred, pos_label=1))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of rows whose most probable class is the observed one."""
    return float(skm.accuracy_score(np.asarray(y_true).astype(int), predicted_class(y_pred)))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy averaged over the classes (a rare class counts as much as a common one)."""
    return float(skm.balanced_accuracy_score(np.asarray(y_true).astype(int), predicted_class(y_pred)))


def average_precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Area under the precision-recall curve (several classes: one-vs-rest, macro-averaged)."""
    if np.ndim(y_pred) == 2:
        onehot = np.eye(y_pred.shape[1])[np.asarray(y_true).astype(int)]
        return float(skm.average_precision_score(onehot, y_pred))
    return float(skm.average_precision_score(y_true, y_pred))


def poisson_deviance(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean Poisson deviance of predicted means (count targets; predictions must be > 0)."""
    return float(skm.mean_poisson_deviance(y_true, y_pred))


@dataclass(frozen=True)
class MetricInfo:
    """A built-in metric: its function, the task it scores, and whether larger is better."""

    function: Metric
    task: str                  # "regression" or "classification"
    greater_is_better: bool
    label: str = ""            # how reports write it ("" : its name)


#: Every built-in metric, the one place its task and direction are written.
METRIC_INFO: dict[str, MetricInfo] = {
    "r2": MetricInfo(r2, "regression", True, "R²"),
    "mse": MetricInfo(mse, "regression", False, "MSE"),
    "mae": MetricInfo(mae, "regression", False, "MAE"),
    "rmse": MetricInfo(_rmse, "regression", False, "RMSE"),
    "medae": MetricInfo(skm.median_absolute_error, "regression", False),
    "max_error": MetricInfo(skm.max_error, "regression", False),
    "mape": MetricInfo(skm.mean_absolute_percentage_error, "regression", False),
    "explained_variance": MetricInfo(skm.explained_variance_score, "regression", True),
    "poisson_deviance": MetricInfo(poisson_deviance, "regression", False, "Poisson deviance"),
    "roc_auc": MetricInfo(roc_auc, "classification", True, "ROC AUC"),
    "log_loss": MetricInfo(log_loss, "classification", False, "log loss"),
    "brier": MetricInfo(brier, "classification", False, "Brier score"),
    "accuracy": MetricInfo(accuracy, "classification", True),
    "balanced_accuracy": MetricInfo(balanced_accuracy, "classification", True, "balanced accuracy"),
    "average_precision": MetricInfo(average_precision, "classification", True, "average precision"),
}
METRICS: dict[str, Metric] = {name: info.function for name, info in METRIC_INFO.items()}
DEFAULT_METRICS: tuple[str, ...] = ("r2", "mse", "mae")
#: The metrics a run reports when none are chosen, per task.
TASK_DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "regression": DEFAULT_METRICS,
    "classification": ("roc_auc", "log_loss", "brier", "accuracy", "balanced_accuracy", "average_precision"),
}
#: What tuning optimises when neither a metric nor a scorer is chosen, per task: the
#: validation MSE (flexcv's objective) and the log loss (a proper scoring rule: it
#: rewards calibrated probabilities, which AUC and accuracy do not).
TUNING_DEFAULT: dict[str, str] = {"regression": "mse", "classification": "log_loss"}


def metric_task(name: str) -> str | None:
    """The task a built-in metric scores, or None for a user's metric."""
    info = METRIC_INFO.get(name)
    return None if info is None else info.task


class MetricsDict(dict):
    """flexcv's mapping of metric name to ``f(y_true, y_pred)``, starting with r2, mse and mae.

    Add a metric and the defaults stay, as in flexcv:

    >>> metrics = MetricsDict()
    >>> metrics["medae"] = METRICS["medae"]
    >>> list(metrics)
    ['r2', 'mse', 'mae', 'medae']
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__({name: METRICS[name] for name in DEFAULT_METRICS})
        self.update(*args, **kwargs)


def resolve_metrics(metrics: Mapping[str, Metric | str] | Sequence[str | Metric] | str | None,
                    field: str = "metrics", task: str = "regression") -> dict[str, Metric]:
    """Normalise a metrics argument to ``{name: callable}``.

    Parameters
    ----------
    metrics : mapping, sequence of names/callables, or None
        ``None`` gives the task's defaults (`TASK_DEFAULT_METRICS`: r2, mse, mae for
        regression). Names are looked up in `METRICS`; callables are named by their
        ``__name__``.
    task : {"regression", "classification"}
        Whose defaults ``None`` gives.

    Raises
    ------
    SpecError
        Unknown metric name, or an empty selection.
    SpecTypeError
        An entry that is neither a name nor a callable.
    """
    if metrics is None:
        return {name: METRICS[name] for name in TASK_DEFAULT_METRICS[task]}
    if isinstance(metrics, str):
        metrics = [metrics]
    items: list[tuple[str, str | Metric]] = []
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, (list, tuple)):
        for m in metrics:
            if isinstance(m, str):
                items.append((m, m))
            elif callable(m):
                items.append((getattr(m, "__name__", repr(m)), m))
            else:
                raise SpecTypeError(field, f"expected metric names or callables, got {m!r}")
    else:
        raise SpecTypeError(field, f"expected a dict of name -> callable or a list of names, "
                                   f"got {type(metrics).__name__}")
    out: dict[str, Metric] = {}
    for name, fn in items:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(field, f"metric names must be identifiers, got {name!r}")
        if isinstance(fn, str):
            if fn not in METRICS:
                raise SpecError(field, f"unknown metric {fn!r}; choose from {', '.join(METRICS)} "
                                       "or pass a callable f(y_true, y_pred)")
            fn = METRICS[fn]
        check_function(fn, f"{field}[{name!r}]", ("y_true", "y_pred"))
        out[name] = fn
    if not out:
        raise SpecError(field, "no metrics selected; leave it as None for r2, mse and mae")
    return out


def mse_objective(y_valid: np.ndarray, y_pred_valid: np.ndarray,
                  y_train: np.ndarray | None = None, y_pred_train: np.ndarray | None = None) -> float:
    """Default tuning objective: validation mean squared error (minimised).

    Written in NumPy, not through scikit-learn's ``mean_squared_error``: it is called once per
    inner fold of every trial, and the input validation around that one mean cost more than
    the mean itself (a tenth of a small run's time outside the fits). A NaN prediction gives
    NaN, which the tuning loop refuses as it refuses any non-finite objective.
    """
    y, p = np.asarray(y_valid, dtype=float).ravel(), np.asarray(y_pred_valid, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"mse_objective: {y.size} targets but {p.size} predictions")
    return float(np.mean((y - p) ** 2))


# It takes flexcv's four arguments but reads the validation ones only: the inner loop
# then skips predicting every inner training set (`mixcv_core.run.fitting.scorer_uses_train`).
mse_objective.uses_train = False  # type: ignore[attr-defined]


def higher_is_better(metric: str) -> bool:
    """Whether larger values of a metric are better, as its `MetricInfo` says.

    Accepts the per-fold column names too (``test_r2``, ``known_log_loss``, ``train_mse``).
    A metric mixcv does not know is read by its name: r2 and explained variance, and
    names ending in "score", are better larger; anything else (an error, a loss) smaller.

    Examples
    --------
    >>> higher_is_better("test_r2"), higher_is_better("known_log_loss"), higher_is_better("roc_auc")
    (True, False, True)
    """
    m = metric.removeprefix("test_").removeprefix("known_").removeprefix("train_")
    info = METRIC_INFO.get(m) or METRIC_INFO.get(m.lower())
    if info is not None:
        return info.greater_is_better
    m = m.lower()
    return m in {"r2", "explained_variance"} or m.endswith("score") or m.startswith("r2")


def metric_label(metric: str) -> str:
    """A metric's name as reports write it (``r2`` -> ``R²``); other names as given.

    Examples
    --------
    >>> metric_label("r2"), metric_label("medae")
    ('R²', 'medae')
    """
    info = METRIC_INFO.get(metric)
    return info.label if info is not None and info.label else metric
