"""What every mixcv model shares: the mixed-model calling convention and frame handling.

Mixed models take the grouping labels and the random-slope design in ``fit`` and
``predict`` (keyword arguments ``groups`` and ``slopes``); the engine recognises them
by `MixedEffectsRegressor` (through `is_mixed`) and passes both. Everything else
follows the scikit-learn contract, so ``clone``, ``get_params`` and ``set_params`` work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from ..errors import SpecError

__all__ = ["MixedEffectsRegressor", "is_mixed", "as_frame", "non_numeric", "NUMERIC_HINT"]

#: How to fix a non-numeric feature; the engine's data check and the models say the same.
NUMERIC_HINT = "Encode categories first, e.g. with pandas.get_dummies"


def non_numeric(frame: pd.DataFrame, columns: list[Any] | None = None) -> list[str]:
    """The columns of ``frame`` (all, or ``columns``) that are not numeric, as ``'name' (dtype)``."""
    # The dtypes in one read: selecting each column builds a Series (an index look-up and an
    # object per column), a fixed cost of every mixed-model fit.
    pairs: Iterable[tuple[Any, Any]]
    if columns is None:
        pairs = zip(frame.columns, frame.dtypes, strict=True)
    else:
        pairs = ((c, frame[c].dtype) for c in columns)
    return [f"{c!r} ({dtype})" for c, dtype in pairs
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))]


def as_frame(X: Any, prefix: str = "x") -> pd.DataFrame:
    """``X`` as a DataFrame: frames pass through, arrays get columns ``x0, x1, ...``."""
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return pd.DataFrame(arr, columns=[f"{prefix}{j}" for j in range(arr.shape[1])])


def is_mixed(estimator: object) -> bool:
    """Whether an estimator (class or instance) takes ``groups``/``slopes`` in fit and predict."""
    return bool(getattr(estimator, "_mixcv_mixed_effects", False))


class MixedEffectsRegressor(RegressorMixin, BaseEstimator):
    """Base class of estimators whose ``fit``/``predict`` take ``groups`` and ``slopes``.

    ``slopes`` is the random-slope design: the values of the slope columns (an array
    or DataFrame with one column per slope) or, for convenience, the names of columns
    of ``X``. A random intercept is always included.
    """

    _mixcv_mixed_effects = True

    @staticmethod
    def _slopes(X: pd.DataFrame, slopes) -> pd.DataFrame:
        if slopes is None:
            return pd.DataFrame(index=X.index)
        if isinstance(slopes, str):
            slopes = [slopes]
        if isinstance(slopes, (list, tuple)) and all(isinstance(s, str) for s in slopes):
            missing = [s for s in slopes if s not in X.columns]
            if missing:
                raise SpecError("slopes", f"slope columns {missing} are not columns of X")
            return X[list(slopes)]
        Z = as_frame(slopes, prefix="z")
        if len(Z) != len(X):
            raise SpecError("slopes", f"has {len(Z)} rows but X has {len(X)}")
        return Z.set_axis(X.index, axis=0)
