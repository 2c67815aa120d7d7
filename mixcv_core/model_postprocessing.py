"""flexcv's import path for post-processors: ``from mixcv_core.model_postprocessing import ...``.

The implementation lives in `mixcv_core.models.postprocessing`.
"""

from __future__ import annotations

from .models.postprocessing import (
    LinearModelPostProcessor,
    LMERModelPostProcessor,
    MERFModelPostProcessor,
    ModelPostProcessor,
    RandomForestModelPostProcessor,
    SingleModelFoldResult,
    SVRModelPostProcessor,
    XGBoostModelPostProcessor,
)

__all__ = ["ModelPostProcessor", "LinearModelPostProcessor", "LMERModelPostProcessor",
           "RandomForestModelPostProcessor", "XGBoostModelPostProcessor", "SVRModelPostProcessor",
           "MERFModelPostProcessor", "SingleModelFoldResult"]
