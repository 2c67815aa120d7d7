"""A module imported when one of its names is first used, so ``import mixcv_core`` stays light."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Later"]


class Later:
    """Stands for the module ``name`` until an attribute is read, then imports it (once).

    ``import_module`` takes the import lock, so threads that reach it together get one
    module; after the first use each read is a ``sys.modules`` look-up.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported at first use>"
