"""Generalised linear mixed models: mixcv's ``glmer`` against lme4's and PyPI mixedlm's, side by side.

    .venv/bin/python tests/benchmarks/bench_glmer.py                  # every case
    .venv/bin/python tests/benchmarks/bench_glmer.py --cases cbpp,verbagg
    .venv/bin/python tests/benchmarks/bench_glmer.py --no-mixedlm     # lme4 and mixcv only

The cases are those of the glmer reference (``tests/data/glmm/glmer_battery.json``, written by
``tests/reference/glmer_battery.R``): cbpp (binomial with trials; Laplace, AGQ 9 and 25, probit),
Contraception (Bernoulli; AGQ 9, a random slope, probit), VerbAgg (crossed), grouseticks (three
factors; centred and raw altitude), epil (Poisson with an offset; AGQ 9, a random slope), Mmmec
(nested, offset) and guImmun (nested). Each is fitted

- by lme4 (``Rscript tests/benchmarks/bench_glmer.R``, timed inside R so R's start-up does not
  count; lme4's default control, as an R user runs it),
- by mixedlm 1.3.0 (PyPI, Rust-backed), in the anchors' venv ``.venv-anchors`` through
  ``bench_glmer_mixedlm.py`` (``python3 -m venv .venv-anchors &&
  .venv-anchors/bin/pip install mixedlm``; not a dependency of mixcv),
- by ``mixcv_core.models.glmer(formula, data, family=..., nAGQ=..., offset=..., weights=...)``
  in this process, on the same CSV: a binomial with trials as the proportion with the trials as
  ``weights`` (the same likelihood as lme4's ``cbind(successes, failures)``), the offset column
  as ``offset=``.

    .venv/bin/python tests/benchmarks/bench_glmer.py --repeats 3 --others /tmp/others.json
                                    # lme4 and mixedlm run once (at the same time), then reused

Prints per case: rows, levels, nAGQ, each tool's median CPU time (R: user + system of the R
process; mixedlm: all its threads; mixcv: one BLAS thread, in this process), the ratios lme4/mixcv and
mixedlm/mixcv (above 1: mixcv is faster), and each tool's ``-2 log L`` minus the reference's
(lme4 with bobyqa, rhoend 1e-12 and tolPwrss 1e-12; negative: a better optimum). For nAGQ > 1
lme4's objective leaves out the saturated model's constants; every figure here is put on the
with-constants scale (``minus2loglik_with_constants``) before the difference is taken, and a
tool that reports the other scale is recognised and marked ``*``. Asserts nothing (speed is
measured here, never in a test). Until ``mixcv_core.models.glmer`` exists (issue 26), the
script says so and shows lme4 and mixedlm only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from _timing import median_time, reference_cases  # a sibling module: benchmarks run as scripts from this folder
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFERENCE = ROOT / "tests" / "data" / "glmm" / "glmer_battery.json"
ANCHORS_PYTHON = Path(os.environ.get("MIXCV_ANCHORS_PYTHON", ROOT / ".venv-anchors" / "bin" / "python"))
CANONICAL = {"binomial": "logit", "poisson": "log"}


def load_glmer() -> tuple[Callable[..., Any] | None, str]:
    """mixcv's ``glmer``, or None and the reason (it is being written for issue 26)."""
    try:
        from mixcv_core.models import glmer  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"mixcv_core.models.glmer is NOT importable yet ({exc}); showing lme4 and mixedlm only"
    return glmer, "mixcv_core.models.glmer"


def python_formula(case: dict) -> str:
    """The reference formula without cbind() and offset(): the forms given as arrays instead."""
    rhs = case["formula_no_offset"].split("~", 1)[1].strip()
    lhs = "_proportion" if case["response"]["kind"] == "trials" else case["response"]["columns"][0]
    return f"{lhs} ~ {rhs}"


def job_of(name: str, case: dict, repeats: int | None = None) -> dict:
    resp = case["response"]
    trials = resp["kind"] == "trials"
    return {"name": name, "csv": case["csv"], "formula": case["formula"], "formula_py": python_formula(case),
            "family": case["family"], "link": case["link"], "nAGQ": case["nAGQ"],
            "repeats": repeats or (5 if case["n"] > 2000 else 11),
            "character": [*case["group_columns"], *case["factor_levels"]],
            "trials": resp["trials"] if trials else None,
            "successes": resp["columns"][0] if trials else None, "offset": case.get("offset")}


def read_case(job: dict) -> pd.DataFrame:
    data = pd.read_csv(ROOT / job["csv"], dtype={c: str for c in job["character"]})
    if job["trials"]:
        data["_proportion"] = data[job["successes"]] / data[job["trials"]]
    return data


def start_subprocess(cmd: list[str], jobs: list[dict], tmp: Path, who: str) -> tuple[subprocess.Popen, str]:
    path = tmp / f"{who}.json"
    path.write_text(json.dumps(jobs))
    return subprocess.Popen([*cmd, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT), who


def collect(proc: subprocess.Popen, who: str) -> dict[str, dict]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        print(f"{who} failed:", err.strip()[-800:])
    return {rec["name"]: rec for rec in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}


def run_mixcv(glmer: Callable[..., Any], job: dict) -> dict:
    data = read_case(job)
    kwargs: dict[str, Any] = {"family": job["family"], "nAGQ": job["nAGQ"]}
    if job["link"] != CANONICAL[job["family"]]:
        kwargs["link"] = job["link"]
    if job["trials"]:
        kwargs["weights"] = data[job["trials"]].to_numpy(float)
    if job["offset"]:
        kwargs["offset"] = data[job["offset"]].to_numpy(float)
    cpu: list[float] = []

    def timed() -> Any:
        t = time.process_time()
        out = glmer(job["formula_py"], data, **kwargs)
        cpu.append(time.process_time() - t)
        return out

    try:
        # One BLAS thread (fit_glmm limits it too): CPU time is then the work done, which a
        # machine shared with other jobs inflates less than the wall clock.
        with threadpool_limits(limits=1):
            glmer(job["formula_py"], data, **kwargs)          # warm-up, as the R side does
            seconds, m = median_time(timed, job["repeats"])
    except Exception as exc:  # noqa: BLE001 - a benchmark reports a failing fit and goes on
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"time": statistics.median(cpu), "wall": seconds, "minus2loglik": -2.0 * float(m.llf_),
            "converged": bool(m.converged_)}


def distance(value: float | None, fit: dict) -> str:
    """``value`` minus the reference on the with-constants scale; ``*``: the tool left them out."""
    if value is None:
        return f"{'-':>10}"
    full, dropped = fit["minus2loglik_with_constants"], fit["objective"]
    if abs(value - dropped) < abs(value - full):
        return f"{value - dropped:9.2e}*"
    return f"{value - full:9.2e} "


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--no-mixedlm", action="store_true", help="leave PyPI mixedlm out")
    parser.add_argument("--repeats", type=int, help="timed fits per case and tool (default: 5 above 2,000 rows, "
                                                      "else 11)")
    parser.add_argument("--others", type=Path, help="a JSON file of lme4's and mixedlm's results: read when it "
                                                     "exists (only mixcv is run), else written after running them")
    args = parser.parse_args()
    ref, names = reference_cases(REFERENCE, args.cases)
    cases = ref["cases"]
    jobs = [job_of(n, cases[n], args.repeats) for n in names]

    glmer, status = load_glmer()
    print(f"mixcv: {status}")
    if args.others is not None and args.others.exists():
        others = json.loads(args.others.read_text())
        lme4, mixedlm = others["lme4"], others["mixedlm"]
        print(f"lme4 and mixedlm: results read from {args.others}")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            # Both at once: their own clocks (R's system.time, mixedlm's perf_counter) time them.
            running = []
            if shutil.which("Rscript") is None:
                print("lme4: Rscript not found (Debian: apt-get install r-base-core r-cran-lme4)")
            else:
                running.append(start_subprocess(["Rscript", str(HERE / "bench_glmer.R")], jobs, Path(tmp), "lme4"))
            if args.no_mixedlm:
                pass
            elif not ANCHORS_PYTHON.exists():
                print(f"mixedlm: {ANCHORS_PYTHON} not found (python3 -m venv .venv-anchors && "
                      ".venv-anchors/bin/pip install mixedlm, or set MIXCV_ANCHORS_PYTHON)")
            else:
                running.append(start_subprocess([str(ANCHORS_PYTHON), str(HERE / "bench_glmer_mixedlm.py")], jobs,
                                                Path(tmp), "mixedlm"))
            results = {who: collect(proc, who) for proc, who in running}
        lme4, mixedlm = results.get("lme4", {}), results.get("mixedlm", {})
        if args.others is not None:
            args.others.write_text(json.dumps({"lme4": lme4, "mixedlm": mixedlm}, indent=1))
    first = next(iter(lme4.values()), {})
    mfirst = next((r for r in mixedlm.values() if "mixedlm" in r), {})
    print(f"lme4 {first.get('lme4', '-')} on {first.get('r', 'R not run')}, default control; "
          f"mixedlm {mfirst.get('mixedlm', '-')}; reference: lme4 {ref['meta']['lme4']}, {ref['meta']['optimizer']}")
    print("times: median CPU seconds of each process (R: user + system; mixedlm: all its threads; mixcv: one BLAS "
          "thread), which a loaded machine inflates less than wall time; ratios above 1: mixcv is faster")
    print(f"{'case':<22} {'rows':>5} {'levels':<12} {'AGQ':>3} | {'lme4 s':>7} {'mixedlm s':>9} {'mixcv s':>8} "
          f"{'lme4/mx':>8} {'mlm/mx':>7} {'mx wall':>7} | {'-2LL-ref lme4':>13} {'mixedlm':>10} {'mixcv':>10} "
          "| conv l/m/x")
    for job in jobs:
        case = cases[job["name"]]
        fit = case["fit"]
        levels = "x".join(str(v) for v in fit["n_levels"].values())
        r, ml = lme4.get(job["name"], {}), mixedlm.get(job["name"], {})
        mx = run_mixcv(glmer, job) if glmer is not None else {}

        def t(rec: dict, width: int) -> str:
            return f"{rec['time']:{width}.3f}" if "time" in rec else f"{'error' if 'error' in rec else '-':>{width}}"

        def ratio(a: dict, b: dict, width: int) -> str:
            return f"{a['time'] / b['time']:{width - 1}.1f}x" if "time" in a and "time" in b else f"{'-':>{width}}"

        # lme4's objective for nAGQ > 1 has no constants: distance() recognises that scale.
        d_r = distance(r.get("objective"), fit)
        d_ml = distance(ml.get("minus2loglik"), fit)
        d_mx = distance(mx.get("minus2loglik"), fit)
        conv = "/".join("-" if "converged" not in x else ("yes" if x["converged"] else "NO") for x in (r, ml, mx))
        print(f"{job['name']:<22} {case['n']:>5} {levels:<12} {case['nAGQ']:>3} | {t(r, 7)} {t(ml, 9)} {t(mx, 8)} "
              f"{ratio(r, mx, 8)} {ratio(ml, mx, 7)} {mx.get('wall', float('nan')):7.3f} | {d_r:>13} {d_ml:>10} "
              f"{d_mx:>10} | {conv}", flush=True)
        for side, rec in (("lme4", r), ("mixedlm", ml), ("mixcv", mx)):
            if "error" in rec:
                print(f"    {side} failed: {rec['error']}")


if __name__ == "__main__":
    main()
