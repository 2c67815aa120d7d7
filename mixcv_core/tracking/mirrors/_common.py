"""What every mirror logs, in tracker-neutral form."""

from __future__ import annotations

import re
from typing import Any

from ...experiment.registry import estimator_name
from ...experiment.spec import ExperimentSpec
from ...secrets import scrub as _scrub


def flat_params(spec: ExperimentSpec) -> dict[str, str]:
    """The experiment's settings as flat ``name -> text`` pairs (tracker parameters)."""
    data = spec.data
    out: dict[str, str] = {
        # Several grouping factors as a reader writes them ("subject, item"), not a tuple's repr.
        "data/target": data.target, "data/groups": ", ".join(data.group_columns) if data.groups is not None else "None",
        "data/slopes": ", ".join(spec.data.slopes), "data/name": spec.data.dataset_name or str(spec.data.frame),
        "outer": spec.outer.label, "inner": spec.inner.label,
        "trials": str(spec.tuning.n_trials), "metrics": ", ".join(spec.metrics), "seed": str(spec.seed),
        "n_jobs": str(spec.n_jobs), "merf/iterations": str(spec.merf.max_iterations),
        "merf/all": str(spec.merf.add_merf_global),
    }
    # A classification says so, with the class whose probability is scored and what tuning
    # optimised: a tracker's reader sees a log loss of 0.6 as a loss of the right model.
    if spec.task is not None:
        out["task"] = spec.task
    if spec.positive_class is not None:
        out["positive_class"] = str(spec.positive_class)
    if spec.tuning_metric is not None:
        out["tuning/metric"] = spec.tuning_metric
    if data.random_terms_text is not None:   # lme4's random part, as typed (absent for the one-factor shorthand)
        out["data/random"] = data.random_terms_text
    if len(data.group_columns) > 1:   # which factors the test folds hold new levels of
        out["data/split_by"] = ", ".join(data.split_factors)
    from ...experiment.cell import param_text
    for m in spec.models:
        out[f"models/{m.name}/estimator"] = estimator_name(m.estimator)  # type: ignore[arg-type]
        for k, v in m.model_kwargs.items():
            out[f"models/{m.name}/{k}"] = param_text(v)
        for k, d in m.params.items():
            out[f"models/{m.name}/{k}"] = param_text(d)
        if m.add_merf:
            out[f"models/{m.name}/merf"] = "True"
    return out


def scrub(text: str) -> str:
    """One line of text with credentials removed (see `mixcv_core.secrets.scrub`)."""
    return _scrub(text, collapse=True)


def safe_key(name: str, allowed: str = r"[^A-Za-z0-9_\-. /:]") -> str:
    """A model name as a tracker key (``MERF(RF)`` -> ``MERF_RF_``)."""
    return re.sub(allowed, "_", name)


def summary_rows(results: Any) -> list[tuple[str, str, str, float]]:
    """(model, metric, statistic, value) for every finite summary cell."""
    rows = []
    for (model, metric), r in results.summary.iterrows():
        for stat in ("mean", "sd", "median"):
            v = r[stat]
            if v == v:
                rows.append((model, metric, stat, float(v)))
    return rows
