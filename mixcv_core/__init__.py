"""mixcv_core: nested cross validation for grouped data.

Honest estimates of how well a model generalises to new groups (participants,
schools, sites): group-aware and stratified splits, Optuna tuning in the inner loop,
linear mixed models and MERF next to any scikit-learn regressor.

The public API is listed in ``__all__``; everything else may change.
"""

from __future__ import annotations

from .engine import run
from .errors import (
    ConvergenceWarning,
    FoldFailedWarning,
    MixcvError,
    ObserverWarning,
    SpecError,
    SpecTypeError,
)
from .events import Observer, Recorder
from .interface import CrossValidation
from .metrics import METRICS
from .registry import available_models
from .results import Results
from .spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec

__version__ = "0.1.0"

__all__ = [
    "CrossValidation",
    "ExperimentSpec",
    "DataSpec",
    "SplitSpec",
    "ModelSpec",
    "TuningSpec",
    "MerfSpec",
    "Results",
    "run",
    "Observer",
    "Recorder",
    "METRICS",
    "available_models",
    "MixcvError",
    "SpecError",
    "SpecTypeError",
    "FoldFailedWarning",
    "ConvergenceWarning",
    "ObserverWarning",
    "__version__",
]
