"""How the tasks of a parallel run are laid out: a model and its MERF variant in one task
(before), or MERF as a task of its own started once its base model's tuning is known (now).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_schedule.py [--quick] [--save FILE | --times FILE]

Runs bench_vs_flexcv's large experiment (100 groups x 100 rows, GroupKFold 5 x 3, 20 trials,
RF + MERF(RF) + LMM; --quick: 30 groups, 5 trials) once serially, takes each task's time from
its outcomes (a model: its tuning and outer fit; a MERF variant: its fit), and replays the
run on 2 and 4 workers that each take the next task when free:

- one task per (fold, model) holding the model and its MERF variant, in fold-major order and
  longest first (the schedules before MERF became a task of its own);
- MERF as its own task, started when its base task has returned (`Schedule`, as the local
  and Dask executors run it).

The printed makespans are what the layout and the order alone change, free of the machine's
load (the task times themselves were measured on whatever machine ran the serial run).
``--save FILE`` keeps the measured times as CSV, ``--times FILE`` replays such a file
without running anything. Also prints the cost estimate next to each task's time.
"""

from __future__ import annotations

import heapq
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def makespan(times: list[float], order: list[int], workers: int) -> float:
    """Tasks without dependencies, started in ``order`` by whichever worker is free first."""
    free = [0.0] * workers
    for i in order:
        heapq.heappush(free, heapq.heappop(free) + times[i])
    return max(free)


def replay(schedule, times: list[float], tuned: list, workers: int) -> float:
    """The run's own `Schedule` driven by a clock: a free worker takes `next`, a finished task
    `returned` with the tuning (and timings) the serial run's task returned."""
    clock, running = 0.0, []
    while schedule or running:
        while schedule and len(running) < workers:
            i = schedule.next()
            heapq.heappush(running, (clock + times[i], i))
        clock, i = heapq.heappop(running)
        schedule.returned(i, tuned[i])
    return clock


def main() -> None:
    import pandas as pd
    from bench_overhead import experiment

    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.run.schedule import Schedule, plan_tasks, task_cost
    from mixcv_core.run.task import Tuned
    warnings.filterwarnings("ignore")
    cv, _ = experiment("large", "--quick" in sys.argv)
    cv = cv.set_run(store=False, n_jobs=1)
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    tasks, tuned = plan_tasks(spec, plan)
    if "--times" in sys.argv:
        frame = pd.read_csv(sys.argv[sys.argv.index("--times") + 1])
    else:
        frame = cv.perform().get_results().to_frame()[["model", "fold", "fit_time", "tune_time"]]
        if "--save" in sys.argv:
            frame.to_csv(sys.argv[sys.argv.index("--save") + 1], index=False)
    row = frame.set_index(["model", "fold"])
    times = [float(row.loc[(t.name, t.fold), "fit_time"]) + (0.0 if t.merf else float(row.loc[(t.name, t.fold),
                                                                                              "tune_time"]))
             for t in tasks]
    cost = [task_cost(spec, plan, t) for t in tasks]
    returned = [Tuned(tune_time=float(row.loc[(t.name, t.fold), "tune_time"]),
                      fit_time=float(row.loc[(t.name, t.fold), "fit_time"])) for t in tasks]
    print(f"{'task':<40} {'seconds':>8} {'estimate':>12}")
    for t, s, c in zip(tasks, times, cost):
        print(f"{t.name + ' fold ' + str(t.fold):<40} {s:>8.2f} {c:>12.0f}")
    serial = sum(times)
    # Before: a model and its variants in one task, its cost the sum of theirs.
    whole: dict[tuple[int, str], list[int]] = {}
    for i, t in enumerate(tasks):
        whole.setdefault((t.fold, t.model.name), []).append(i)
    groups = list(whole.values())
    joined = [sum(times[i] for i in g) for g in groups]
    joined_cost = [sum(cost[i] for i in g) for g in groups]
    fold_major = list(range(len(groups)))
    longest = sorted(fold_major, key=lambda n: (-joined_cost[n], n))
    print(f"serial: {serial:.2f} s ({len(groups)} tasks before, {len(tasks)} now)")
    for w in (2, 4):
        a, b = makespan(joined, fold_major, w), makespan(joined, longest, w)
        c = replay(Schedule(spec, plan, tasks, tuned), times, returned, w)
        bound = max(serial / w, max(times[g[0]] + max((times[i] for i in g[1:]), default=0.0) for g in groups))
        print(f"{w} workers: model+MERF in one task: fold-major {a:.2f} s, longest first {b:.2f} s; MERF its own task, "
              f"longest path first: {c:.2f} s. Speed-up over serial {serial / a:.2f}x, {serial / b:.2f}x -> "
              f"{serial / c:.2f}x (bound {serial / bound:.2f}x: cores, or the longest model + MERF chain)")


if __name__ == "__main__":
    main()
