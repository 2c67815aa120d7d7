"""Post-processors: per-fold insight from a fitted model (coefficients, importances).

A post-processor is any callable ``f(model, feature_names) -> pandas.DataFrame``; the
classes here are flexcv's names for the common cases. Pass the class or an instance
as ``post_processor`` to ``add_model``; each outer fold's table ends up in
``Results.insights[(model_name, fold)]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ModelPostProcessor",
    "LinearModelPostProcessor",
    "LMERModelPostProcessor",
    "RandomForestModelPostProcessor",
]


class ModelPostProcessor:
    """Base class: override `__call__`."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        raise NotImplementedError


class LinearModelPostProcessor(ModelPostProcessor):
    """Coefficient table: estimate and standard error (where the model has them)."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        if hasattr(model, "params_"):
            table = pd.DataFrame({"estimate": model.params_})
            if hasattr(model, "bse_"):
                table["std_error"] = model.bse_
            return table
        coef = np.ravel(model.coef_)
        table = pd.DataFrame({"estimate": coef}, index=list(feature_names))
        if hasattr(model, "intercept_"):
            table = pd.concat([pd.DataFrame({"estimate": [float(np.ravel(model.intercept_)[0])]},
                                            index=["Intercept"]), table])
        return table


class LMERModelPostProcessor(ModelPostProcessor):
    """Fixed effects and variance components of a linear mixed model, in one table."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        fe = pd.DataFrame({"estimate": model.fe_params_, "kind": "fixed"})
        cov = model.cov_re_
        rows = {}
        for i, a in enumerate(cov.index):
            for b in cov.columns[: i + 1]:
                rows[f"var({a})" if a == b else f"cov({b},{a})"] = cov.loc[a, b]
        re = pd.DataFrame({"estimate": pd.Series(rows, dtype=float), "kind": "random"})
        resid = pd.DataFrame({"estimate": [model.scale_], "kind": ["residual"]}, index=["var(residual)"])
        return pd.concat([fe, re, resid])


class RandomForestModelPostProcessor(ModelPostProcessor):
    """Impurity-based feature importances, largest first."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        estimator = getattr(model, "trained_fe_model", model)  # MERF wraps the forest
        imp = pd.Series(estimator.feature_importances_, index=list(feature_names), name="importance")
        return imp.sort_values(ascending=False).to_frame()
