"""Which order parallel tasks start in: fold-major (before) or longest first (`longest_first`).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_schedule.py [--quick]

Runs bench_vs_flexcv's large experiment (100 groups x 100 rows, GroupKFold 5 x 3, 20 trials,
RF + MERF(RF) + LMM; --quick: 30 groups, 5 trials) once serially, takes each task's time
from its outcomes (tuning + outer fits of the model and of its MERF variant), and replays the
tasks on 2 and 4 workers that each take the next task when free, in either order: the
printed makespans are what the order alone changes, free of the machine's load (the task
times themselves were measured on a shared machine). Also prints the cost estimate next to
each task's time, to show how well it ranks them.
"""

from __future__ import annotations

import heapq
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def makespan(times: list[float], order: list[int], workers: int) -> float:
    free = [0.0] * workers
    for i in order:
        heapq.heappush(free, heapq.heappop(free) + times[i])
    return max(free)


def main() -> None:
    from bench_overhead import experiment

    from mixcv_core.engine import _tasks
    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.run.parallel import longest_first, task_cost
    warnings.filterwarnings("ignore")
    cv, _ = experiment("large", "--quick" in sys.argv)
    cv = cv.set_run(store=False, n_jobs=1)
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    tasks = _tasks(spec, plan)
    frame = cv.perform().get_results().to_frame()
    times = []
    for k, m in tasks:
        rows = frame[(frame["fold"] == k) & frame["model"].isin(spec.task_names(m))]
        times.append(float(rows["fit_time"].sum() + rows["tune_time"].iloc[0]))
    cost = [task_cost(spec, plan, k, m) for k, m in tasks]
    print(f"{'task':<32} {'seconds':>8} {'estimate':>12}")
    for (k, m), t, c in zip(tasks, times, cost):
        print(f"{m.name + ' fold ' + str(k):<32} {t:>8.2f} {c:>12.0f}")
    fold_major, longest = list(range(len(tasks))), longest_first(spec, plan, tasks)
    print(f"serial: {sum(times):.2f} s")
    for w in (2, 4):
        a, b = makespan(times, fold_major, w), makespan(times, longest, w)
        print(f"{w} workers: fold-major {a:.2f} s, longest first {b:.2f} s (speed-up over serial {sum(times) / a:.2f}x "
              f"-> {sum(times) / b:.2f}x; the bound is {min(w, sum(times) / max(times)):.2f}x)")


if __name__ == "__main__":
    main()
