"""Peak memory of a large run, serial and with two worker processes (issue: data shared once).

Sums the resident memory of this process and all its children, sampled every 0.1 s, while
a run of N rows x 20 features (LinearModel + LinearMixedEffectsModel, GroupKFold(5)) runs
with n_jobs=1 and n_jobs=2. Memory is PSS (proportional set size): pages that several
processes share, such as the memory-mapped data, are counted once in the total.

    .venv/bin/python tests/benchmarks/bench_memory.py [ROWS]      (default 1,000,000)
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pandas as pd

from mixcv_core import CrossValidation


def tree_rss(pid: int) -> int:
    """Proportional resident bytes (PSS) of ``pid`` and its descendants (Linux /proc): a page
    shared by k processes counts 1/k in each, so shared memory is counted once in the sum."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) * 1024
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total


def peak_while(fn) -> tuple[float, float]:
    seconds, gib, _ = peak_and_cpu_while(fn)
    return seconds, gib


def peak_and_cpu_while(fn) -> tuple[float, float, float]:
    """Wall seconds of ``fn()``, the peak PSS (GiB) of this process and its children meanwhile, and
    this process's CPU seconds meanwhile less the watcher thread's own (reading smaps costs CPU)."""
    peak, done, watcher_cpu = [0], threading.Event(), [0.0]

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(os.getpid()))
            time.sleep(0.1)
        watcher_cpu[0] = time.thread_time()
    t = threading.Thread(target=watch, daemon=True)
    c0 = time.process_time()
    t.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    done.set()
    t.join()
    return seconds, peak[0] / 2**30, time.process_time() - c0 - watcher_cpu[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 1000, n)
    X = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"x{j}" for j in range(20)])
    y = pd.Series(X.to_numpy() @ rng.normal(size=20) + rng.normal(size=1000)[groups] + rng.normal(size=n), name="y")
    g = pd.Series(groups, name="g")
    print(f"{n} rows x 20 features, 1000 groups; LinearModel + LinearMixedEffectsModel, GroupKFold(5)")
    for n_jobs in (1, 2):
        cv = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=5)
              .add_model("LinearModel").add_model("LinearMixedEffectsModel").set_run(n_jobs=n_jobs, store=False))
        seconds, gib = peak_while(cv.perform)
        print(f"n_jobs={n_jobs}: {seconds:6.1f} s, peak {gib:5.2f} GiB (this process and its workers)", flush=True)


if __name__ == "__main__":
    main()
