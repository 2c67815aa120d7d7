"""Mirrors: observers that copy a run to an experiment tracker as it happens.

Each mirror is an ordinary engine observer (``on_event``), knows nothing of the others,
and imports its tracker's client only when created. A mirror that fails is detached by
the engine with one warning; the run and the local run store are not affected.

- `NeptuneMirror` — Neptune (``pip install mixcv[neptune]``): async, offline or debug
  mode, or a run you created (``set_run(run=neptune_run)``).
- `MlflowMirror` — MLflow (``pip install mixcv[mlflow]``), a local SQLite tracking store
  by default.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NeptuneMirror", "MlflowMirror", "flat_params"]


def __getattr__(name: str) -> Any:
    if name == "NeptuneMirror":
        from .neptune import NeptuneMirror
        return NeptuneMirror
    if name == "MlflowMirror":
        from .mlflow import MlflowMirror
        return MlflowMirror
    if name == "flat_params":
        from ._common import flat_params
        return flat_params
    raise AttributeError(f"module 'mixcv_core.mirrors' has no attribute {name!r}")
