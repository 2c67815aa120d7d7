"""mixcv_core: nested cross validation for grouped data.

Honest estimates of how well a model generalises to new groups (participants,
schools, sites): group-aware and stratified splits, Optuna tuning in the inner loop,
linear mixed models and MERF next to any scikit-learn regressor.

The public API is listed in ``__all__``; everything else may change. The code is
layered, lowest first — each layer imports only the ones below it (checked in CI):

- leaves: ``errors``, ``constraints`` (validation rules as data), ``metrics``, ``secrets``,
  ``outcome`` (the fold-outcome record), seeding and the frozen mapping;
- ``models/``: linear, the native linear mixed model, MERF, post-processors;
- ``experiment/``: the spec, splits, model registry, data checks, the cell text;
- ``results/``: `Results`, its HTML report and plots;
- ``run/``: events, fitting, tuning, fold tasks, parallel execution;
- ``tracking/``: the run store and the Neptune and MLflow mirrors;
- top: ``engine.run``, the ``CrossValidation`` builder, ``synthesizer``, and the
  flexcv import paths (``merf``, ``model_postprocessing``, ``model_mapping``, ``repeated``,
  ``split``).
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
    StoreWarning,
)
from .experiment.model_mapping import ModelConfigDict, ModelMappingDict
from .experiment.registry import available_models
from .experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from .experiment.splits import CrossValMethod, RepeatedGroupKFold, RepeatedStratifiedGroupKFold
from .interface import CrossValidation
from .metrics import METRICS, MetricsDict
from .repeated import RepeatedCV
from .results import Results
from .run.events import Observer, Recorder
from .tracking.store import RunStore

__version__ = "0.1.0"

__all__ = [
    "CrossValidation",
    "RepeatedCV",
    "ModelMappingDict",
    "ModelConfigDict",
    "CrossValMethod",
    "MetricsDict",
    "ExperimentSpec",
    "DataSpec",
    "SplitSpec",
    "ModelSpec",
    "TuningSpec",
    "MerfSpec",
    "RepeatedGroupKFold",
    "RepeatedStratifiedGroupKFold",
    "Results",
    "RunStore",
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
    "StoreWarning",
    "__version__",
]
