"""The mixed-model algebra alone: `fit_mixed` on the lme4 battery, timed next to lme4's own time.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_fit_mixed.py                  # every case
    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_fit_mixed.py --cases insteval --ml

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
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--ml", action="store_true", help="ML fits only")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
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
