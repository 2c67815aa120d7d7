"""The linear mixed model estimator's import path (flexcv's): it lives in `mixcv_core.models.mixed.estimator`."""

from __future__ import annotations

from .mixed.estimator import LinearMixedEffectsModel

__all__ = ["LinearMixedEffectsModel"]
