"""The record of one (model, outer fold): what it produced, or how it failed.

A plain data record shared by the layers that make outcomes (the fold task), keep
them (`Results`) and store them (the run store), so none of them has to import the
others to know its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FoldOutcome"]


@dataclass
class FoldOutcome:
    """What one model produced on one outer fold (or how it failed)."""

    model: str
    fold: int
    ok: bool
    metrics: dict[str, float] = field(default_factory=dict)      # test_<m>, train_<m>, known_<m>
    fit_time: float = float("nan")        # seconds for the outer fit
    tune_time: float = 0.0                # seconds for the inner loop
    best_params: dict[str, Any] = field(default_factory=dict)
    test_rows: np.ndarray | None = None   # positions in the data
    y_pred: np.ndarray | None = None      # predictions for test_rows
    known_rows: np.ndarray | None = None  # held-out rows of known groups (outer known_holdout)
    y_pred_known: np.ndarray | None = None   # predictions for known_rows
    y_pred_train: np.ndarray | None = None   # predictions for the training rows (in memory, not stored)
    estimator: Any = None
    study: Any = None
    insight: pd.DataFrame | None = None
    # What a flexcv-style post-processor added to its model's entry for this fold (in memory).
    post_processed: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None   # MERF's EM history
    converged: bool | None = None
    convergence: str = ""                 # how an iterative fit ended, in the model's words
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
