"""flexcv's import path for the split methods' enum: ``from mixcv_core.split import CrossValMethod``.

The splitters live in `mixcv_core.experiment.splits`.
"""

from __future__ import annotations

from .experiment.splits import CrossValMethod

__all__ = ["CrossValMethod"]
