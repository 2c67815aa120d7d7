"""The form's former module: a thin re-export of `mixcv_jupyter.form`, kept so imports written
against it (``from mixcv_jupyter.configurator import Configurator``) keep working."""

from __future__ import annotations

from .form import CLASSIFIER_MODELS, COMMON_MODELS, Configurator

__all__ = ["Configurator", "COMMON_MODELS", "CLASSIFIER_MODELS"]
