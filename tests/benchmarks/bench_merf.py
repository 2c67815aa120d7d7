"""MERF: mixcv's vectorised EM against merf 1.0, side by side in one run.

Run (sets up the anchors' venv on first use, then times both in one process)::

    tests/benchmarks/run.sh bench_merf.py            # full grid, a few minutes
    tests/benchmarks/run.sh bench_merf.py --quick    # 10^4 rows only

What is measured, per (rows, clusters), q = 2 (random intercept + one slope):

1. EM bookkeeping per iteration — everything in ``fit`` except the base estimator's
   own ``fit``/``predict`` — for both implementations, on the same data with the same
   cheap deterministic base estimator (``LinearRegression``, timed from outside), and
   the ratio merf 1.0 / mixcv. Both must give the same GLL (checked, printed).
2. The share of mixcv's MERF fit time spent outside a 50-tree random forest.

Nothing here asserts a time; it prints the figures.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

from mixcv_core.merf import MERF as MixcvMERF

BASE_SECONDS = {"t": 0.0}


class Timed(RegressorMixin, BaseEstimator):
    """Wraps a regressor and adds the time of its fit/predict to BASE_SECONDS."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        t = time.perf_counter()
        self.fitted_ = clone(self.estimator).fit(X, y)
        BASE_SECONDS["t"] += time.perf_counter() - t
        return self

    def predict(self, X):
        t = time.perf_counter()
        out = self.fitted_.predict(X)
        BASE_SECONDS["t"] += time.perf_counter() - t
        return out


def make_data(n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, k, n)
    X = rng.normal(size=(n, 5))
    Z = np.column_stack([np.ones(n), X[:, 0]])
    b = rng.normal(0, [1.0, 0.5], (k, 2))
    y = X @ [1.0, -1.0, 0.5, 2.0, 0.0] + np.einsum("nj,nj->n", Z, b[clusters]) + rng.normal(0, 0.5, n)
    return X, Z, pd.Series(clusters), y


def bookkeeping(fit, iterations: int) -> tuple[float, float]:
    """(seconds per iteration outside the base estimator, total seconds)."""
    BASE_SECONDS["t"] = 0.0
    t = time.perf_counter()
    fit()
    total = time.perf_counter() - t
    return (total - BASE_SECONDS["t"]) / iterations, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10^4 rows only")
    args = parser.parse_args()
    try:
        from merf import MERF as MerfMERF
    except ImportError:
        raise SystemExit("merf 1.0 is not installed here; run through tests/benchmarks/run.sh") from None
    logging.getLogger().setLevel(logging.WARNING)  # importing merf 1.0 sets the root logger to INFO

    grid = [(10_000, 100), (10_000, 1000)] + ([] if args.quick else [(100_000, 100), (100_000, 1000)])
    print(f"{'rows':>8} {'clusters':>8} | {'merf1.0 s/it':>12} {'mixcv s/it':>11} {'ratio':>8} {'same GLL':>9} | "
          f"{'RF50 s/it':>9} {'mixcv EM share':>14}")
    for n, k in grid:
        X, Z, clusters, y = make_data(n, k)
        # merf 1.0 costs ~1 min per iteration at 1000-row clusters; 2 iterations suffice.
        it_ref = 2 if n // k >= 1000 else 3
        ref = MerfMERF(Timed(LinearRegression()), max_iterations=it_ref)
        ref_s, _ = bookkeeping(lambda: ref.fit(X, Z, clusters, y), it_ref)
        ours = MixcvMERF(Timed(LinearRegression()), max_iterations=it_ref)
        ours_s, _ = bookkeeping(lambda: ours.fit(X, Z, clusters, y), it_ref)
        # Best of 3 for the fast side: single runs of a few ms are noisy.
        for _ in range(2):
            again = MixcvMERF(Timed(LinearRegression()), max_iterations=it_ref)
            ours_s = min(ours_s, bookkeeping(lambda: again.fit(X, Z, clusters, y), it_ref)[0])
        same = np.allclose(ref.gll_history, ours.gll_history, rtol=1e-9)

        rf = MixcvMERF(RandomForestRegressor(n_estimators=50, n_jobs=-1, random_state=0), max_iterations=2)
        rf.fit(X, Z, clusters, y)
        h = rf.history_
        share = h["em_time"].sum() / (h["em_time"].sum() + h["fe_time"].sum())
        print(f"{n:>8} {k:>8} | {ref_s:>12.4f} {ours_s:>11.5f} {ref_s / ours_s:>7.0f}x {str(same):>9} | "
              f"{h['fe_time'].mean():>9.2f} {share:>13.2%}", flush=True)


if __name__ == "__main__":
    main()
