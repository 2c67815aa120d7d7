"""Estimators for tests that run in other processes (they must be importable by name)."""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SlowMean(RegressorMixin, BaseEstimator):
    """Predicts the training mean; sleeps ``delay`` seconds in fit (to be killed mid-run)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def fit(self, X, y):
        if self.delay:
            time.sleep(self.delay)
        self.mean_ = float(np.mean(y))
        self.pid_ = os.getpid()
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
