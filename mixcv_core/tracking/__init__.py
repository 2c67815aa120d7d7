"""Where runs are kept: the local run store and the mirrors to experiment trackers.

`RunStore` records every run fold by fold in ``.mixcv/runs.sqlite``; `NeptuneMirror`
and `MlflowMirror` copy a run to those trackers as it happens. All are observers of
the engine's events and know nothing of each other.
"""

from __future__ import annotations

from typing import Any

from .store import SCHEMA_VERSION, RunStore, StoreObserver, default_store, resolve_store

__all__ = ["RunStore", "StoreObserver", "default_store", "resolve_store", "SCHEMA_VERSION",
           "NeptuneMirror", "MlflowMirror"]


def __getattr__(name: str) -> Any:
    # The mirrors import their tracker's client only when asked for.
    if name in ("NeptuneMirror", "MlflowMirror"):
        from . import mirrors
        return getattr(mirrors, name)
    raise AttributeError(f"module 'mixcv_core.tracking' has no attribute {name!r}")
