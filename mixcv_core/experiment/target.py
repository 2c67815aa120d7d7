"""The task (regression or classification) a target calls for, and the target as the engine sees it.

A spec may leave its ``task`` to the data: a target of exactly two values (0/1, a bool,
two labels) is a classification, any other numeric target a regression, and a target of
text labels a classification of several classes. `resolve_task` settles the task and
the positive class once, when the spec first meets the data, and returns the spec with
them written in: what is stored and re-run then says what it was, whatever the next
data look like.

For the engine a classification target is numbers: with two classes 1.0 for the
positive class and 0.0 for the other, with more the class's position among the sorted
labels. Every metric and model reads that coding (`encode_target`), and the labels stay
with the data (`PreparedData.classes`) for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import SpecError, SpecTypeError
from ..models import is_mixed

if TYPE_CHECKING:
    from .spec import ExperimentSpec

__all__ = ["TASKS", "check_task_fields", "infer_task", "resolve_task", "settle_task", "encode_target",
           "target_labels", "check_class_folds", "check_known_classes", "check_models_for_classes",
           "check_target_type"]

#: The tasks a spec may name; None in a spec means "infer it from the target".
TASKS = ("regression", "classification")


def _plain(value: Any) -> Any:
    """A label as a plain Python value (JSON-able: numpy's scalars are not)."""
    return value.item() if isinstance(value, np.generic) else value


def check_task_fields(task: Any, positive_class: Any) -> Any:
    """``task`` and ``positive_class`` checked as far as they can be without the data.

    Returns the positive class as a plain Python value (a numpy scalar's ``item()``).

    Raises
    ------
    SpecError, SpecTypeError
        Naming ``task`` (not one of `TASKS`) or ``positive_class`` (not a label-like value,
        or set for a regression).
    """
    if task is not None and task not in TASKS:
        raise SpecError("task", f"expected 'regression' or 'classification' (or None: inferred from the "
                                f"target), got {task!r}")
    if isinstance(positive_class, np.generic):
        positive_class = positive_class.item()
    elif positive_class is not None and not isinstance(positive_class, (str, int, float, bool)):
        raise SpecTypeError("positive_class", f"expected a label of the target (text, a number or a bool), "
                                              f"got {type(positive_class).__name__}")
    if task == "regression" and positive_class is not None:
        raise SpecError("positive_class", f"a positive class is for classification; this run is regression "
                                          f"(positive_class={positive_class!r}): leave it unset, or set "
                                          "task: classification")
    return positive_class


def target_labels(values: pd.Series) -> list[Any]:
    """The distinct labels of a target column, sorted (missing values left out)."""
    labels = [_plain(v) for v in pd.unique(values.dropna())]
    try:
        return sorted(labels)
    except TypeError:   # labels of mixed types: sorted by their text, still one order for a run
        return sorted(labels, key=str)


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def infer_task(values: pd.Series) -> str:
    """``"classification"`` for two values or for text labels, else ``"regression"``.

    Examples
    --------
    >>> infer_task(pd.Series([0, 1, 1])), infer_task(pd.Series(["no", "yes"])), infer_task(pd.Series([0.5, 2, 3]))
    ('classification', 'classification', 'regression')
    """
    if not _numeric(values):
        return "classification"
    # Counted in pandas' hash table: a continuous target of a million rows never becomes a
    # million Python numbers sorted (about a second, and heap the allocator then kept).
    return "classification" if values.nunique(dropna=True) == 2 else "regression"


def resolve_task(spec: ExperimentSpec, frame: pd.DataFrame) -> ExperimentSpec:
    """``spec`` with its task and (two classes) positive class settled from ``frame``'s target.

    The positive class is ``spec.positive_class`` when set, else the larger of the two
    labels (1 of 0/1, True of a bool, "yes" of "no"/"yes"). A spec whose task is already
    settled, or whose target is not a column of ``frame`` (`prepare_data` says so, naming
    ``data.target``), is returned as it is.

    Raises
    ------
    SpecError
        ``positive_class`` is not a label of the target, or is set for a target of more
        than two classes; or, for classification, the target is continuous (`encode_target`).
    """
    if not isinstance(frame, pd.DataFrame):
        return spec
    column = spec.data.target
    if column not in frame.columns and column in {str(c) for c in frame.columns}:
        frame = frame.rename(columns=str)
    if column not in frame.columns:
        return spec
    values = frame[column]
    if isinstance(values, pd.DataFrame):   # duplicate names: prepare_data refuses them, naming the frame
        return spec
    task, positive = settle_task(values, column, spec.task, spec.positive_class)
    if task != "classification":
        return spec if spec.task == task else _settled(spec, values, task=task)
    if spec.task == task and spec.positive_class == positive and type(spec.positive_class) is type(positive):
        return spec
    return _settled(spec, values, task=task, positive_class=positive)


def settle_task(values: pd.Series, column: str, task: str | None = None, positive_class: Any = None,
                labels: list[Any] | None = None) -> tuple[str, Any]:
    """The task a target is run as and, for two classes, its positive class (the target's own label).

    ``task`` None: inferred (`infer_task`); ``positive_class`` None: the larger of two labels.
    For a regression the positive class is returned as given (the spec refuses one that is set).

    Raises
    ------
    SpecError
        Naming ``task`` (a classification of a continuous target, or of a single class) or
        ``positive_class`` (not a label of the target, or set for more than two classes).
    """
    task = task or infer_task(values)
    if task != "classification":
        return task, positive_class
    labels = target_labels(values) if labels is None else labels
    _check_classes(values, labels, column)
    positive = positive_class
    if len(labels) == 2:
        positive = labels[-1] if positive is None else _match_label(positive, labels)
    elif positive is not None:
        raise SpecError("positive_class", f"a positive class is for a target of two classes; {column!r} has "
                                          f"{len(labels)} ({_shown(labels)}); leave positive_class unset")
    return task, positive


def _settled(spec: ExperimentSpec, values: pd.Series, **changes: Any) -> ExperimentSpec:
    """``spec`` with its task written in; a task inferred here is named in what the spec then refuses."""
    try:
        return spec.replace(**changes)
    except SpecError as exc:
        if spec.task is not None:
            raise
        if changes["task"] == "classification":
            labels = target_labels(values)
            why = f"it has two values ({_shown(labels)})" if len(labels) == 2 else "its values are labels"
        else:
            why = f"it has {values.nunique(dropna=True)} values"
        raise SpecError(exc.field, f"{exc.message} [the task {changes['task']} was inferred from the target "
                                   f"{spec.data.target!r}: {why}; set task to choose another]") from None


def _shown(labels: Sequence[Any], limit: int = 6) -> str:
    text = ", ".join(map(repr, labels[:limit]))
    return text + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _match_label(positive: Any, labels: list[Any]) -> Any:
    """The target's own label that ``positive`` names (a cell writes ``1`` or ``"1"`` alike)."""
    for same in (lambda a, b: type(a) is type(b) and a == b,   # 1 names 1, never True
                 lambda a, b: not isinstance(a, bool) and not isinstance(b, bool) and a == b,   # 1 names 1.0
                 lambda a, b: str(a) == str(b)):        # "1" (a cell's text) names 1
        for label in labels:
            if same(label, positive):
                return label
    raise SpecError("positive_class", f"{positive!r} is not a label of the target; its labels are {_shown(labels)}")


def _check_classes(values: pd.Series, labels: list[Any], column: str) -> None:
    """A classification target must be classes: refused when it is continuous or a single value."""
    if _numeric(values):
        numbers = values.dropna().to_numpy(dtype=float)
        fractional = numbers[np.isfinite(numbers) & (numbers != np.round(numbers))]
        if fractional.size:
            raise SpecError("task", f"task is classification but the target {column!r} is continuous "
                                    f"({len(labels)} distinct values, e.g. {fractional[0]:g}); set task to "
                                    "regression, or make classes of it first")
    if len(labels) < 2:
        raise SpecError("task", f"task is classification but the target {column!r} has a single class "
                                f"({_shown(labels)}): there is nothing to tell apart")


def encode_target(values: pd.Series, column: str, positive_class: Any = None) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The target as the engine's numbers, and the class labels in code order.

    Two classes: 1.0 for ``positive_class`` (None: the larger label), 0.0 for the other
    (labels returned as ``(negative, positive)``). More: each row's position among the
    sorted labels.

    Raises
    ------
    SpecError
        Missing values (naming ``data.target``); a continuous target (naming ``task``).
    """
    if values.isna().any():
        raise SpecError("data.target", f"the target {column!r} has {int(values.isna().sum())} missing values; "
                                       "drop those rows first")
    labels = target_labels(values)
    _check_classes(values, labels, column)
    if len(labels) == 2:
        positive = _match_label(labels[-1] if positive_class is None else positive_class, labels)
        negative = labels[0] if labels[1] is positive else labels[1]
        coded = (values.map(_plain) == positive).to_numpy(dtype=np.float64)
        return coded, (negative, positive)
    codes = pd.Categorical(values.map(_plain), categories=labels).codes
    return codes.astype(np.float64), tuple(labels)


def check_class_folds(pairs: Sequence[tuple[np.ndarray, np.ndarray]], y: np.ndarray, classes: Sequence[Any],
                      level: str, named: bool, outer_fold: int | None = None) -> None:
    """Every fold's training and test part must hold every class; say which does not, before any fit.

    A test part without a class leaves AUC undefined and hides how the model does on that
    class; a training part without one gives a model that cannot predict it.

    Raises
    ------
    SpecError
        Naming ``<level>.n_splits`` (a named method: fewer folds help) or
        ``<level>.method`` (a splitter object), the fold, the part and the class.
    """
    field = f"{level}.n_splits" if named else f"{level}.method"
    where = "" if outer_fold is None else f" of outer fold {outer_fold}"
    n_classes = len(classes)
    for k, (train, test) in enumerate(pairs):
        for part, rows in (("test", test), ("training", train)):
            present = np.bincount(y[rows].astype(np.int64), minlength=n_classes) > 0
            if not present.all():
                missing = [classes[int(c)] for c in np.flatnonzero(~present)]
                raise SpecError(field, f"{level} fold {k}{where}: its {part} part has no rows of class "
                                       f"{_shown(missing)}, so it cannot be scored (or learnt) on every class; use "
                                       "fewer folds, or a split that stratifies the classes (StratifiedGroupKFold, "
                                       "StratifiedKFold)")


def check_known_classes(known: Sequence[np.ndarray | None], y: np.ndarray, classes: Sequence[Any]) -> None:
    """The held-out rows of known groups are scored like a test fold: each needs every class.

    Raises
    ------
    SpecError
        Naming ``outer.known_holdout``, the fold and the class.
    """
    for k, rows in enumerate(known):
        if rows is None:
            continue
        present = np.bincount(y[rows].astype(np.int64), minlength=len(classes)) > 0
        if not present.all():
            missing = [classes[int(c)] for c in np.flatnonzero(~present)]
            raise SpecError("outer.known_holdout", f"the rows held out of known groups in outer fold {k} have no "
                                                   f"rows of class {_shown(missing)}, so they cannot be scored on "
                                                   "every class; hold out a larger fraction, or use fewer folds")


def check_models_for_classes(spec: ExperimentSpec, classes: Sequence[Any]) -> None:
    """Mixed models fit a binary outcome: a target of more classes is refused naming the model."""
    if len(classes) <= 2:
        return
    for m in spec.models:
        if is_mixed(m.estimator):
            raise SpecError(f"models[{m.name!r}].model",
                            f"{m.estimator_class.__name__} models a binary outcome; the target "
                            f"{spec.data.target!r} has {len(classes)} classes ({_shown(list(classes))}). Use a "
                            "scikit-learn classifier (e.g. LogisticRegression) for several classes, or make the "
                            "target two classes")
    for m in spec.merf_models():
        raise SpecError(f"models[{m.name!r}].merf",
                        f"MERF({m.name}) is binary MERF, for a target of two classes; the target "
                        f"{spec.data.target!r} has {len(classes)} classes ({_shown(list(classes))}). Drop MERF for "
                        f"{m.name} (add_merf / merf: false), or make the target two classes")


def check_target_type(values: pd.Series, column: str) -> None:
    """A regression target must be numbers."""
    if not (_numeric(values) or pd.api.types.is_bool_dtype(values)):
        raise SpecTypeError("data.target", f"the target {column!r} must be numeric for regression, it has dtype "
                                           f"{values.dtype}; for classes set task: classification")
