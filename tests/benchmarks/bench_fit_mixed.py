"""The mixed-model algebra alone: `fit_mixed` on the lme4 battery, timed next to lme4's own time.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_fit_mixed.py                  # every case
    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_fit_mixed.py --cases insteval --ml
    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_fit_mixed.py --one-factor          # against wave 2

The cases and lme4's times are those of ``tests/data/lmm_multi/lme4_multi.json`` (written by
``tests/reference/lme4_multi.R``: lme4's default optimiser, timed inside R on this machine when
the script ran). The blocks are built from the CSV as ``tests/core/test_lmm_multi_battery.py``
builds them, so this times the algebra (criterion, optimiser, certificate, conditional
variances), not formula parsing (``bench_lmer_multi.py`` times ``lmer`` end to end).

Prints per fit: rows, levels per term, mixcv's wall and CPU time (median of ``--repeat``), the
ratio lme4 / mixcv (above 1: mixcv is faster), the number of criterion evaluations, the peak
of Python's and numpy's allocations during one more fit (``tracemalloc``; LAPACK's workspace
is not counted), the criterion's distance from lme4's tight reference, and whether the fit is
certified. Asserts nothing.

``--one-factor [REV]`` times the one-factor fit instead (`mixcv_core.models.lmm.fit_lmm`, which
every LMM of one grouping factor and MERF use) on ``bench_lmm.py``'s data (``y ~ x1 + ... + x5 +
(1 + x1 | g)``, REML, 10^3-10^5 rows in 10-10^4 groups) for this checkout and for the code of
git revision REV (default ``2314a13^``: the wave-2 batched one-factor solver, before the
several-factor algebra replaced it), unpacked with ``git archive`` into a temporary folder. Each
runs in its own process, twice, alternately, with BLAS on one thread; printed: the lower of the
two median CPU times of each, their ratio (above 1: this checkout is faster), the criterion
evaluations, and the difference of the two REML criteria.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from mixcv_core.models.mixed import fit_mixed

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "lmm_multi" / "lme4_multi.json"


def problem(case: dict, ref: dict) -> tuple[np.ndarray, np.ndarray, list[SimpleNamespace]]:
    d = pd.read_csv(ROOT / case["csv"])
    X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in ref["fixef"] if c != "(Intercept)"])
    blocks = []
    for t in ref["terms"]:
        parts = [d[c].astype(str) for c in t["group"].split(":")]
        labels = parts[0].str.cat(parts[1:], sep=":") if len(parts) > 1 else parts[0]
        codes, levels = pd.factorize(labels, sort=True)
        Z = np.column_stack([np.ones(len(d)) if c == "(Intercept)" else d[c].to_numpy(float) for c in t["columns"]])
        blocks.append(SimpleNamespace(codes=codes.astype(np.intp), n_levels=len(levels), Z=Z))
    return X, d[case["response"]].to_numpy(float), blocks


ONE_FACTOR_GRID = [(1_000, 10), (1_000, 100), (10_000, 10), (10_000, 100), (10_000, 1_000),
                   (100_000, 10), (100_000, 100), (100_000, 1_000), (100_000, 10_000)]

# Run in a child process whose PYTHONPATH is one version of mixcv: fit_lmm on bench_lmm's data.
ONE_FACTOR_CHILD = r"""
import json, statistics, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
sys.path.insert(0, sys.argv[1])
from bench_lmm import FEATURES, make_data
from mixcv_core.models.lmm import fit_lmm
n, k, repeat = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = make_data(n, k)
X = np.column_stack([np.ones(n), d[FEATURES].to_numpy()])
Z = np.column_stack([np.ones(n), d["x1"].to_numpy()])
codes, y = d["g"].to_numpy().astype(np.intp), d["y"].to_numpy()
K = int(codes.max()) + 1
with threadpool_limits(1):
    fit = fit_lmm(X, y, Z, codes, K)
    cpus = []
    for _ in range(repeat):
        c = time.process_time()
        fit = fit_lmm(X, y, Z, codes, K)
        cpus.append(time.process_time() - c)
print(json.dumps({"cpu": statistics.median(cpus), "evals": fit.n_evals, "criterion": fit.criterion,
                  "converged": bool(fit.converged)}))
"""


def one_factor(rev: str, repeat: int) -> None:
    """This checkout's one-factor fit against revision ``rev``'s, CPU time per fit (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mixcv_core"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

        def child(path: Path, n: int, k: int) -> dict:
            out = subprocess.run([sys.executable, "-c", ONE_FACTOR_CHILD, str(Path(__file__).parent), str(n), str(k),
                                  str(repeat)], capture_output=True, text=True, check=True,
                                 env={**env, "PYTHONPATH": str(path)}, cwd=tmp)
            return json.loads(out.stdout.strip().splitlines()[-1])

        print(f"one-factor fit_lmm, CPU per fit (median of {repeat}, BLAS 1 thread): this checkout vs {rev}")
        print(f"{'rows':>7} {'groups':>6} | {rev + ' ms':>14} {'now ms':>8} {'old/now':>8} | {'evals old/now':>13} | "
              f"{'crit now - old':>14} converged")
        for n, k in ONE_FACTOR_GRID:
            # Alternate so a change in the machine's load falls on both.
            then, now = child(old, n, k), child(ROOT, n, k)
            then2, now2 = child(old, n, k), child(ROOT, n, k)
            t_old, t_new = min(then["cpu"], then2["cpu"]), min(now["cpu"], now2["cpu"])
            print(f"{n:>7} {k:>6} | {1e3 * t_old:14.1f} {1e3 * t_new:8.1f} {t_old / t_new:7.2f}x | "
                  f"{then['evals']:>6}/{now['evals']:<6} | {now['criterion'] - then['criterion']:14.1e} "
                  f"{'yes' if now['converged'] else 'NO'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--ml", action="store_true", help="ML fits only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one-factor", nargs="?", const="2314a13^", metavar="REV",
                        help="time the one-factor fit against git revision REV's (default: the wave-2 solver)")
    args = parser.parse_args()
    if args.one_factor:
        one_factor(args.one_factor, max(args.repeat, 5))
        return
    battery = json.loads(REFERENCE.read_text())
    wanted = [c for c in args.cases.split(",") if c]
    print(f"{'case':<24} {'fit':<4} {'rows':>7} {'levels':>18} | {'wall s':>7} {'cpu s':>7} {'lme4 s':>7} "
          f"{'lme4/mixcv':>10} | {'evals':>5} {'peak MB':>8} | {'crit - lme4':>11} certified")
    for name, case in battery["cases"].items():
        if wanted and name not in wanted:
            continue
        for kind in ("ml",) if args.ml else ("reml", "ml"):
            if kind not in case:
                continue
            ref = case[kind]
            X, y, blocks = problem(case, ref)
            walls, cpus, fit = [], [], None
            for _ in range(args.repeat):
                w, c = time.perf_counter(), time.process_time()
                fit = fit_mixed(X, y, blocks, reml=kind == "reml")
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
            assert fit is not None
            tracemalloc.start()
            fit_mixed(X, y, blocks, reml=kind == "reml")
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            wall = statistics.median(walls)
            lme4 = ref["default"]["time"]["median"]
            levels = "x".join(str(b.n_levels) for b in blocks)
            print(f"{name:<24} {kind:<4} {len(y):>7} {levels:>18} | {wall:7.3f} {statistics.median(cpus):7.3f} "
                  f"{lme4:7.3f} {lme4 / wall:9.1f}x | {fit.n_evals:>5} {peak:8.1f} | "
                  f"{fit.criterion - ref['criterion']:11.2e} {'yes' if fit.converged else 'NO: ' + fit.message}",
                  flush=True)


if __name__ == "__main__":
    main()
