"""flexcv's and merf's import path for MERF: ``from mixcv_core.merf import MERF``.

The implementation lives in `mixcv_core.models.merf`.
"""

from __future__ import annotations

from .models.merf import MERF, MERFRegressor
from .models.merf_binary import MERFClassifier

__all__ = ["MERF", "MERFRegressor", "MERFClassifier"]
