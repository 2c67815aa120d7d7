"""Evaluation metrics by name, and the summary rule for RMSE.

A metric is any ``f(y_true, y_pred) -> float``. The defaults are flexcv's: r2, mse,
mae. RMSE over folds is reported as the square root of the mean MSE, never as the
mean of per-fold roots (which is biased low by Jensen's inequality).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn import metrics as skm

from .constraints import check_function
from .errors import SpecError, SpecTypeError

__all__ = ["METRICS", "DEFAULT_METRICS", "MetricsDict", "resolve_metrics", "mse_objective", "higher_is_better",
           "metric_label"]

Metric = Callable[[np.ndarray, np.ndarray], float]


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))


METRICS: dict[str, Metric] = {
    "r2": skm.r2_score,
    "mse": skm.mean_squared_error,
    "mae": skm.mean_absolute_error,
    "rmse": _rmse,
    "medae": skm.median_absolute_error,
    "max_error": skm.max_error,
    "mape": skm.mean_absolute_percentage_error,
    "explained_variance": skm.explained_variance_score,
}
DEFAULT_METRICS: tuple[str, ...] = ("r2", "mse", "mae")


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
                    field: str = "metrics") -> dict[str, Metric]:
    """Normalise a metrics argument to ``{name: callable}``.

    Parameters
    ----------
    metrics : mapping, sequence of names/callables, or None
        ``None`` gives the defaults (r2, mse, mae). Names are looked up in `METRICS`;
        callables are named by their ``__name__``.

    Raises
    ------
    SpecError
        Unknown metric name, or an empty selection.
    SpecTypeError
        An entry that is neither a name nor a callable.
    """
    if metrics is None:
        return {name: METRICS[name] for name in DEFAULT_METRICS}
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
    """Default tuning objective: validation mean squared error (minimised)."""
    return float(skm.mean_squared_error(y_valid, y_pred_valid))


# It takes flexcv's four arguments but reads the validation ones only: the inner loop
# then skips predicting every inner training set (`mixcv_core.run.fitting.scorer_uses_train`).
mse_objective.uses_train = False  # type: ignore[attr-defined]


def higher_is_better(metric: str) -> bool:
    """Whether larger values of a metric are better (r2, explained variance, scores).

    Accepts the per-fold column names too (``test_r2``, ``known_r2``, ``train_mse``).

    Examples
    --------
    >>> higher_is_better("test_r2"), higher_is_better("known_r2"), higher_is_better("mse")
    (True, True, False)
    """
    m = metric.removeprefix("test_").removeprefix("known_").removeprefix("train_").lower()
    return m in {"r2", "explained_variance"} or m.endswith("score") or m.startswith("r2")


#: How reports write the built-in metrics' names.
_LABELS = {"r2": "R²", "mse": "MSE", "rmse": "RMSE", "mae": "MAE"}


def metric_label(metric: str) -> str:
    """A metric's name as reports write it (``r2`` -> ``R²``); other names as given.

    Examples
    --------
    >>> metric_label("r2"), metric_label("medae")
    ('R²', 'medae')
    """
    return _LABELS.get(metric, metric)
