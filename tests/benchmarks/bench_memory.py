"""Peak memory of a large run, serial and with two worker processes (issue: data shared once).

Sums the resident memory of this process and all its children, sampled every 0.1 s, while
a run of N rows x 20 features (LinearModel + LinearMixedEffectsModel, GroupKFold(5)) runs
with n_jobs=1 and n_jobs=2, each in a fresh process. Memory is PSS (proportional set size): pages that several
processes share, such as the memory-mapped data, are counted once in the total.

    .venv/bin/python tests/benchmarks/bench_memory.py [ROWS [N_JOBS]]   (default 1,000,000; both settings)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd

from mixcv_core import CrossValidation


def tree_pss(pid: int) -> dict[int, int]:
    """Proportional resident bytes (PSS) of ``pid`` and of each of its descendants (Linux /proc):
    a page shared by k processes counts 1/k in each, so shared memory is counted once in the sum."""
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                out[p] = next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) * 1024
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def peak_while(fn) -> tuple[float, float]:
    """Seconds ``fn`` took and the peak PSS (GiB) of the tree; prints each process's share at the peak."""
    seconds, gib, _ = peak_and_cpu_while(fn, shares=True)
    return seconds, gib


def peak_and_cpu_while(fn, shares: bool = False) -> tuple[float, float, float]:
    """Wall seconds of ``fn()``, the peak PSS (GiB) of this process and its children meanwhile, and
    this process's CPU seconds meanwhile less the watcher thread's own (reading smaps costs CPU).
    With ``shares``, prints each process's share at the peak."""
    peak, at_peak, done, watcher_cpu = [0], [{}], threading.Event(), [0.0]

    def watch() -> None:
        while not done.is_set():
            parts = tree_pss(os.getpid())
            if sum(parts.values()) > peak[0]:
                peak[0], at_peak[0] = sum(parts.values()), parts
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
    if shares:
        me = os.getpid()
        parts_text = ", ".join(f"{'this process' if p == me else p}: {b / 2**30:.2f}"
                               for p, b in sorted(at_peak[0].items(), key=lambda kv: kv[0] != me))
        print(f"  at the peak (GiB of PSS): {parts_text}")
    return seconds, peak[0] / 2**30, time.process_time() - c0 - watcher_cpu[0]


def measure(n: int, n_jobs: int) -> float:
    """One run's peak PSS (GiB), in this process."""
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 1000, n)
    X = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"x{j}" for j in range(20)])
    y = pd.Series(X.to_numpy() @ rng.normal(size=20) + rng.normal(size=1000)[groups] + rng.normal(size=n), name="y")
    g = pd.Series(groups, name="g")
    cv = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=5)
          .add_model("LinearModel").add_model("LinearMixedEffectsModel").set_run(n_jobs=n_jobs, store=False))
    seconds, gib = peak_while(cv.perform)
    print(f"n_jobs={n_jobs}: {seconds:6.1f} s, peak {gib:5.2f} GiB (this process and its workers)", flush=True)
    return gib


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if len(sys.argv) > 2:
        measure(n, int(sys.argv[2]))
        return
    print(f"{n} rows x 20 features, 1000 groups; LinearModel + LinearMixedEffectsModel, GroupKFold(5)")
    # Each setting in a fresh process: memory a first run freed but the allocator kept would
    # otherwise count in the second.
    peaks = []
    for n_jobs in (1, 2):
        out = subprocess.run([sys.executable, __file__, str(n), str(n_jobs)], check=True, capture_output=True,
                             text=True).stdout
        print(out, end="", flush=True)
        peaks.append(float(out.rsplit("peak", 1)[1].split()[0]))
    print(f"n_jobs=2 / n_jobs=1: {peaks[1] / peaks[0]:.2f}x the serial peak (target: at most 1.5x)")


if __name__ == "__main__":
    main()
