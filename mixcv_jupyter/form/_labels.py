"""What the form calls a spec field, so every message says which control it is about (also in
the status line far below the control), and which message slot shows a field's problem."""

from __future__ import annotations

from collections.abc import Collection

from mixcv_core.experiment.cell import cell_key

__all__ = ["LABELS", "label", "slot_for"]

#: A spec field (or a message slot) -> the words the form shows on its control.
LABELS: dict[str, str] = {
    "data.target": "target", "target": "target", "data.groups": "groups", "groups": "groups",
    "data.slopes": "random slopes", "slopes": "random slopes", "data.features": "features", "features": "features",
    "data.random": "random part", "random": "random part", "data.split_by": "split by", "split_by": "split by",
    "data.frame": "data", "data.dataset_name": "name",
    "outer.method": "outer split", "outer": "outer split", "outer.n_splits": "outer folds",
    "inner.method": "inner split", "inner": "inner split", "inner.n_splits": "inner folds",
    "outer.n_repeats": "repeats", "repeats": "repeats", "outer.known_holdout": "known holdout",
    "known_holdout": "known holdout", "tuning.n_trials": "trials", "trials": "trials",
    "tuning.batch": "trial batch", "trial_batch": "trial batch",
    "tuning.objective_scorer": "objective", "objective": "objective", "metrics": "metrics",
    "merf.max_iterations": "EM iterations", "merf.stopping_threshold": "stop early below",
    "merf.stopping_window": "for iterations", "merf.em_estimators": "EM trees", "merf": "MERF",
    "seed": "seed", "n_jobs": "n_jobs", "timeout": "timeout (s)", "backend": "run on", "scheduler": "scheduler",
    "output": "store as", "tracking": "Neptune project", "models": "models",
    "task": "task", "positive_class": "positive class", "tuning.metric": "tune for", "tuning": "tune for",
}


def label(field: str) -> str:
    """The form's name for a spec field: ``outer.n_splits`` -> ``outer folds``,
    ``models['RF'].params['max_depth']`` -> ``model RF, max_depth``."""
    if field in LABELS:
        return LABELS[field]
    key = cell_key(field)
    if key.startswith("models."):
        _, model, *rest = key.split(".")
        what = ".".join(rest).replace("fit", "fit args") if rest == ["fit"] else ".".join(rest)
        return f"model {model}" + (f", {what}" if what else "")
    return LABELS.get(key, key)


def slot_for(field: str, slots: Collection[str]) -> str:
    """The message slot (one of ``slots``) that shows a problem of the spec field ``field``.

    The field path -> the cell key (one table, in mixcv_core's cell module) -> the message
    next to the control of the same name; a data field without a control of its own goes to
    the target's, anything else to the models'."""
    key = cell_key(field).split(".")[0]
    if key in slots:
        return key
    return "target" if key == "data" else "models"
