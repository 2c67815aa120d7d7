"""Estimators for the front-end tests that must be importable by name."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SlowFit(RegressorMixin, BaseEstimator):
    """Predicts the mean after ``delay`` seconds: a run slow enough to be stopped half-way."""

    def __init__(self, delay: float = 0.4):
        self.delay = delay

    def fit(self, X, y):
        time.sleep(self.delay)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
