"""How much ``import mixcv_core`` costs on top of importing scikit-learn (issue 29: within 0.3 s).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_import.py [REPEATS]

Each import runs in a fresh interpreter (so nothing is cached in the process; the OS file
cache is warm after the first round), the variants alternating round by round. The child
reports the CPU time (``time.process_time``) and the wall time of the import statement
alone; the medians are printed with the difference and the ratio to each scikit-learn
baseline: ``sklearn.base`` (what every estimator needs) and ``sklearn.ensemble`` +
``sklearn.model_selection`` (what the seed's example imports). The heavy optional packages
found in ``sys.modules`` after ``import mixcv_core`` are listed (none is the aim).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

VARIANTS = {
    "sklearn.base": "import sklearn.base",
    "sklearn.ensemble + model_selection": "import sklearn.ensemble, sklearn.model_selection",
    "mixcv_core": "import mixcv_core",
}
HEAVY = ("optuna", "statsmodels", "matplotlib", "distributed", "dask", "jinja2", "IPython")


def child(statement: str) -> dict[str, object]:
    code = (f"import time, sys, json; c, w = time.process_time(), time.perf_counter(); {statement}; "
            "print(json.dumps({'cpu': time.process_time() - c, 'wall': time.perf_counter() - w, "
            f"'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in VARIANTS}
    for statement in VARIANTS.values():   # a first round to warm the file cache, not counted
        child(statement)
    for _ in range(repeats):
        for name, statement in VARIANTS.items():
            runs[name].append(child(statement))
    cpu = {n: statistics.median(float(r["cpu"]) for r in rs) for n, rs in runs.items()}   # type: ignore[arg-type]
    wall = {n: statistics.median(float(r["wall"]) for r in rs) for n, rs in runs.items()}  # type: ignore[arg-type]
    print(f"median of {repeats} fresh interpreters; the machine may be loaded, CPU time is the steadier clock")
    print(f"{'import':<36} {'cpu s':>6} {'wall s':>7}")
    for n in VARIANTS:
        print(f"{n:<36} {cpu[n]:>6.2f} {wall[n]:>7.2f}")
    for base in list(VARIANTS)[:2]:
        print(f"mixcv_core - {base}: {cpu['mixcv_core'] - cpu[base]:+.2f} s CPU "
              f"(ratio {cpu['mixcv_core'] / cpu[base]:.2f}), {wall['mixcv_core'] - wall[base]:+.2f} s wall")
    print(f"heavy modules after import mixcv_core: {runs['mixcv_core'][-1]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
