"""mixcv's ``glmer`` on the tight glmer references, timed next to glmer's own recorded time.

    .venv/bin/python tests/benchmarks/bench_glmm_tight.py [--repeats 3] [--cases cbpp,verbagg]

The cases and glmer's times come from ``tests/data/glmm/tight/glmer_tight.json`` (written by
``Rscript tests/reference/glmer_tight.R``: one ``system.time`` per fit, bobyqa in both stages at
rhoend 1e-10 and tolPwrss 1e-12, i.e. glmer run as tightly as the comparison needs, on this
machine, while other jobs loaded it: contraception's 100 s is such a run, lme4's default
control takes ~3 s there). Prints per case: mixcv's median time, glmer's time, the ratio glmer / mixcv (above
1: mixcv is faster), the deviance's relative distance from glmer's (negative: lower), and
mixcv's convergence flag. Asserts nothing. (A side-by-side run at lme4's default control, and
mixedlm, is the job of the reference helper's bench_glmer.py.)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import pandas as pd
from _timing import median_time  # a sibling module: benchmarks run as scripts from this folder

from mixcv_core.models import glmer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "glmm" / "tight"
GROUPS = {"herd", "district", "id", "item", "BROOD", "INDEX", "LOCATION"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="")
    args = parser.parse_args()
    ref = json.loads((DATA / "glmer_tight.json").read_text())["cases"]
    names = [c for c in args.cases.split(",") if c] or list(ref)
    print(f"{'case':22s} {'mixcv s':>9s} {'glmer s':>9s} {'ratio':>7s} {'deviance rel':>13s} converged")
    for name in names:
        case = ref[name]
        head = pd.read_csv(DATA / case["csv"], nrows=0).columns
        data = pd.read_csv(DATA / case["csv"], dtype={c: str for c in head if c in GROUPS})
        link = None if case["link"] in ("logit", "log") else case["link"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, m = median_time(lambda: glmer(case["formula"], data, family=case["family"], link=link,
                                             nAGQ=case["nAGQ"]), args.repeats)
        rel = (m.deviance_ - case["objective"]) / case["objective"]
        print(f"{name:22s} {t:9.3f} {case['time']:9.3f} {case['time'] / t:7.2f} {rel:13.2e} {m.converged_}")


if __name__ == "__main__":
    main()
