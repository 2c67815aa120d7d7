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


class WaitsForFlag(RegressorMixin, BaseEstimator):
    """Predicts the mean; its ``wait_at``-th fit waits (up to 30 s) for ``flag`` to exist.

    Used to prove that events reach the parent while a worker is still fitting: the
    parent creates the flag when it sees an early event of the same fit.
    """

    def __init__(self, flag: str = "", wait_at: int = 3):
        self.flag = flag
        self.wait_at = wait_at

    def fit(self, X, y):
        self.n_fits_ = getattr(self, "n_fits_", 0) + 1
        if self.flag and self.n_fits_ == self.wait_at:
            deadline = time.time() + 30
            while not os.path.exists(self.flag) and time.time() < deadline:
                time.sleep(0.01)
            self.saw_flag_ = os.path.exists(self.flag)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class DiesInFold(RegressorMixin, BaseEstimator):
    """Kills its own (worker) process when fitted on a training set of ``die_n`` rows."""

    def __init__(self, die_n: int = -1):
        self.die_n = die_n

    def fit(self, X, y):
        if len(y) == self.die_n:
            os._exit(3)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class RecordsThreads(RegressorMixin, BaseEstimator):
    """Predicts the mean; remembers the native thread pools' sizes, mixcv's core share and its
    process while it was fitted."""

    def fit(self, X, y):
        from threadpoolctl import threadpool_info

        from mixcv_core.run import cores
        self.pools_ = {(p["user_api"], p["internal_api"]): p["num_threads"] for p in threadpool_info()}
        self.omp_env_ = os.environ.get("OMP_NUM_THREADS")
        self.cores_ = cores.available()
        self.pid_ = os.getpid()
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class FailsForBigAlpha(RegressorMixin, BaseEstimator):
    """Predicts the mean; refuses ``alpha > 1`` in fit (a corner of a search space that fails)."""

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha

    def fit(self, X, y):
        if self.alpha > 1:
            raise ValueError(f"alpha={self.alpha} is too large")
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class LeavesItsPid(RegressorMixin, BaseEstimator):
    """Predicts ``alpha`` x the training mean; each fit leaves a file named for its process in ``folder``."""

    def __init__(self, alpha: float = 1.0, folder: str = "", delay: float = 0.2):
        self.alpha = alpha
        self.folder = folder
        self.delay = delay

    def fit(self, X, y):
        import uuid
        if self.folder:
            open(os.path.join(self.folder, f"{os.getpid()}-{uuid.uuid4().hex}"), "w").close()
        time.sleep(self.delay)   # long enough for the scheduler to hand the next trial to another worker
        self.mean_ = float(np.mean(y)) * self.alpha
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class WaitsForLentCores(RegressorMixin, BaseEstimator):
    """Predicts the mean. The first fit to take ``folder``'s claim returns once another fit has
    started; that other fit waits (up to ``patience`` seconds) until joblib offers it more threads
    than at its start, and writes what it was offered, first and last, to ``folder/seen``."""

    def __init__(self, folder: str = "", patience: float = 60.0):
        self.folder = folder
        self.patience = patience

    def fit(self, X, y):
        from joblib import effective_n_jobs
        self.mean_ = float(np.mean(y))
        started, end = os.path.join(self.folder, "started"), time.monotonic() + self.patience
        try:
            os.close(os.open(os.path.join(self.folder, "claim"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:   # the short task: it ends while the other runs
            while not os.path.exists(started) and time.monotonic() < end:
                time.sleep(0.05)
            return self
        first = effective_n_jobs(None)
        open(started, "w").close()
        last = first
        while last <= first and time.monotonic() < end:
            time.sleep(0.05)
            last = effective_n_jobs(None)
        with open(os.path.join(self.folder, "seen"), "w") as fh:
            fh.write(f"{first} {last}")
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
