"""mixcv's ``glmer`` on the tight glmer references, timed next to glmer's own recorded time.

    .venv/bin/python tests/benchmarks/bench_glmm_tight.py [--repeats 3] [--cases cbpp,verbagg]

The cases and glmer's times come from ``tests/data/glmm/glmer_battery.json`` (written by
``Rscript tests/reference/glmer_battery.R``: ``time_tight``, one ``system.time`` per fit, bobyqa
in both stages at rhoend 1e-12 and tolPwrss 1e-12, i.e. glmer run as tightly as the comparison
needs, on this machine, while other jobs loaded it; lme4's default control is far faster). Prints per case: mixcv's median time, glmer's time, the ratio glmer / mixcv (above
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
DATA = ROOT / "tests" / "data" / "glmm"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="")
    args = parser.parse_args()
    ref = json.loads((DATA / "glmer_battery.json").read_text())["cases"]
    names = [c for c in args.cases.split(",") if c] or list(ref)
    print(f"{'case':22s} {'mixcv s':>9s} {'glmer s':>9s} {'ratio':>7s} {'deviance rel':>13s} converged")
    for name in names:
        case = ref[name]
        data = pd.read_csv(DATA / Path(case["csv"]).name, dtype={c: str for c in case["group_columns"]})
        link = None if case["link"] in ("logit", "log") else case["link"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, m = median_time(lambda: glmer(case["formula"], data, family=case["family"], link=link,
                                             nAGQ=case["nAGQ"]), args.repeats)
        fit = case["fit"]
        rel = (m.deviance_ - fit["objective"]) / fit["objective"]
        print(f"{name:22s} {t:9.3f} {fit['time_tight']:9.3f} {fit['time_tight'] / t:7.2f} {rel:13.2e} {m.converged_}")


if __name__ == "__main__":
    main()
