"""Mixed models with several random-effect terms: mixcv's ``lmer`` against lme4, side by side.

    .venv/bin/python tests/benchmarks/bench_lmer_multi.py             # every case, REML and ML
    .venv/bin/python tests/benchmarks/bench_lmer_multi.py --quick     # without InstEval and STAR
    .venv/bin/python tests/benchmarks/bench_lmer_multi.py --cases insteval,penicillin --ml
    .venv/bin/python tests/benchmarks/bench_lmer_multi.py --lme4-json /tmp/lme4.json   # R once, reused after

The cases are those of the lme4 reference (``tests/data/lmm_multi/lme4_multi.json``, written by
``tests/reference/lme4_multi.R``): real datasets with crossed, nested and partially crossed
factors, InstEval (73,421 rows, 2,972 x 1,128 x 14 levels) among them. Each is fitted in one run
by lme4 (through ``Rscript tests/benchmarks/bench_lmer_multi.R``, timed inside R so R's start-up
does not count; lme4's default optimiser, as an R user runs it) and by
``mixcv_core.models.lmer(formula, data, REML=...)`` on the same CSV and the same formula.

Prints per case: rows, levels per factor, both wall times (median of several fits), the ratio
lme4 / mixcv (above 1: mixcv is faster), both CPU times (R's user time, Python's process time;
steadier than wall times on a shared machine; mixcv runs BLAS on one thread, as R's reference
BLAS does) and their ratio, mixcv's peak memory during one more fit (``tracemalloc``:
the bytes Python and numpy allocate, not the process RSS; LAPACK's own workspace is not
counted), both criteria's distance from lme4's tight-optimiser reference (negative: below it,
i.e. a better optimum), whether each says it converged, and whether each found a singular fit
(lme4's isSingular, mixcv's ``boundary_``). Asserts nothing (speed is measured
here, never in a test). Until ``mixcv_core.models.lmer`` exists (issue 25), only lme4's side runs
and the script says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from _timing import median_time, reference_cases  # a sibling module: benchmarks run as scripts from this folder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFERENCE = ROOT / "tests" / "data" / "lmm_multi" / "lme4_multi.json"
BIG = 20_000  # rows above which a case is left out by --quick and timed fewer times


def load_lmer() -> tuple[Callable[..., Any] | None, str]:
    """mixcv's ``lmer``, or None and the reason (it is being written for issue 25)."""
    try:
        from mixcv_core.models import lmer  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"mixcv_core.models.lmer is not importable yet ({exc}); showing lme4 only"
    return lmer, "mixcv_core.models.lmer"


def read_case(case: dict) -> pd.DataFrame:
    """The case's CSV with its grouping factors and fixed factors as text, as lme4 reads them."""
    text = [*case["group_columns"], *case["factor_levels"]]
    return pd.read_csv(ROOT / case["csv"], dtype={c: str for c in text})


def run_lme4(jobs: list[dict], tmp: Path, saved: Path | None) -> dict[tuple[str, bool], dict]:
    """lme4's records per (case, REML); from ``saved`` when it holds every job, else from R (and saved there)."""
    if saved is not None and saved.exists():
        records = {(r["name"], r["reml"]): r for r in json.loads(saved.read_text())}
        if all((j["name"], j["reml"]) in records for j in jobs):
            return records
    if shutil.which("Rscript") is None:
        print("lme4: Rscript not found (Debian: apt-get install r-base-core r-cran-lme4)")
        return {}
    path = tmp / "jobs.json"
    path.write_text(json.dumps(jobs))
    proc = subprocess.run(["Rscript", str(HERE / "bench_lmer_multi.R"), str(path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        print("lme4 failed:", proc.stderr.strip()[-800:])
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            out[rec["name"], rec["reml"]] = rec
    if saved is not None:
        saved.write_text(json.dumps(list(out.values())))
    return out


def run_mixcv(lmer: Callable[..., Any], formula: str, data: pd.DataFrame, reml: bool,
              repeats: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular fit warns on every repeat; shown in the table
        try:
            cpu, m = median_time(lambda: lmer(formula, data, REML=reml), repeats, clock=time.process_time)
            seconds, m = median_time(lambda: lmer(formula, data, REML=reml), repeats)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports a failing fit and goes on
            return {"error": f"{type(exc).__name__}: {exc}"}
        tracemalloc.start()
        lmer(formula, data, REML=reml)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # lme4's criterion is -2 logLik for ML and the REML criterion (-2 REML logLik) for REML;
    # mixcv's llf_ follows lme4's logLik, so both are -2 llf_.
    return {"time": seconds, "cpu": cpu, "peak_mb": peak / 2**20, "criterion": -2.0 * float(m.llf_),
            "converged": bool(m.converged_), "singular": bool(m.boundary_)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help=f"leave out cases above {BIG:,} rows")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--ml", action="store_true", help="ML only")
    parser.add_argument("--reml", action="store_true", help="REML only")
    parser.add_argument("--lme4-json", type=Path, help="lme4's results: read from this file when it has every "
                                                       "case asked for, else measured and written there")
    args = parser.parse_args()
    ref, names = reference_cases(REFERENCE, args.cases)
    cases = ref["cases"]
    if args.quick:
        names = [n for n in names if cases[n]["n"] <= BIG]
    modes = [m for m in (True, False) if not (args.ml and m) and not (args.reml and not m)]
    jobs = [{"name": n, "csv": cases[n]["csv"], "formula": cases[n]["formula"], "reml": reml,
             "repeats": 3 if cases[n]["n"] > BIG else 7,
             "character": [*cases[n]["group_columns"], *cases[n]["factor_levels"]]}
            for n in names for reml in modes if ("reml" if reml else "ml") in cases[n]]

    lmer, status = load_lmer()
    print(f"mixcv: {status}")
    with tempfile.TemporaryDirectory() as tmp:
        lme4 = run_lme4(jobs, Path(tmp), args.lme4_json)
    first = next(iter(lme4.values()), {})
    print(f"lme4: {first.get('lme4', '-')} on {first.get('r', 'R not run')}, default optimiser;"
          f" reference: lme4 {ref['meta']['lme4']}, {ref['meta']['optimizer']}")
    print(f"{'case':<24} {'fit':<4} {'rows':>6} {'levels':<16} | {'lme4 s':>8} {'mixcv s':>8} "
          f"{'lme4/mixcv':>10} | {'lme4 cpu':>8} {'mixcv cpu':>9} {'ratio':>6} | {'mixcv MB':>8} | "
          f"{'crit-ref lme4':>13} {'crit-ref mixcv':>14} | "
          f"{'conv lme4/mixcv':<15} singular lme4/mixcv")
    for job in jobs:
        case, reml = cases[job["name"]], job["reml"]
        fit_ref = case["reml" if reml else "ml"]
        levels = "x".join(str(v) for v in fit_ref["n_levels"].values())
        r = lme4.get((job["name"], reml), {})
        mx = (run_mixcv(lmer, case["formula"], read_case(case), reml, job["repeats"])
              if lmer is not None else {})
        t_r = f"{r['time']:8.3f}" if "time" in r else f"{'error' if 'error' in r else '-':>8}"
        t_m = f"{mx['time']:8.3f}" if "time" in mx else f"{'error' if 'error' in mx else '-':>8}"
        ratio = f"{r['time'] / mx['time']:9.1f}x" if "time" in r and "time" in mx else f"{'-':>10}"
        mem = f"{mx['peak_mb']:8.1f}" if "peak_mb" in mx else f"{'-':>8}"
        c_r = f"{r['user']:8.3f}" if "user" in r else f"{'-':>8}"
        c_m = f"{mx['cpu']:9.3f}" if "cpu" in mx else f"{'-':>9}"
        c_ratio = f"{r['user'] / mx['cpu']:5.1f}x" if "user" in r and mx.get("cpu") else f"{'-':>6}"
        d_r = f"{r['criterion'] - fit_ref['criterion']:13.2e}" if "criterion" in r else f"{'-':>13}"
        d_m = f"{mx['criterion'] - fit_ref['criterion']:14.2e}" if "criterion" in mx else f"{'-':>14}"
        conv = "/".join("-" if "converged" not in x else ("yes" if x["converged"] else "NO")
                        for x in (r, mx))
        sing = "/".join("-" if "singular" not in x else ("yes" if x["singular"] else "no") for x in (r, mx))
        print(f"{job['name']:<24} {'REML' if reml else 'ML':<4} {case['n']:>6} {levels:<16} | {t_r} {t_m} "
              f"{ratio} | {c_r} {c_m} {c_ratio} | {mem} | {d_r} {d_m} | {conv:<15} {sing}", flush=True)
        for side, rec in (("lme4", r), ("mixcv", mx)):
            if "error" in rec:
                print(f"    {side} failed: {rec['error']}")


if __name__ == "__main__":
    main()
