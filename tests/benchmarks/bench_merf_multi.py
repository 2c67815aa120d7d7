"""MERF with several random-effect terms (issue 25): what its EM costs next to the forest and the LMM.

Run::

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_merf_multi.py [--quick]

Per real dataset of tests/data/lmm_multi/ (sleepstudy: one factor with a slope; carrots:
crossed with a correlated slope; ScotsSec: partially crossed; InstEval: three crossed factors,
73,421 rows, skipped by ``--quick``), BLAS limited to one thread, CPU time:

1. MERF(50-tree forest), 5 EM iterations: seconds per iteration in the EM algebra (the PLS
   E-step, the GLS fixed part and the variance updates) and in the forest, and the algebra's
   share of the fit;
2. MERF(constant base model) run to its fixed point (``tol=1e-9``), i.e. lme4's ML fit by EM,
   against `LinearMixedEffectsModel` (ML) fitting the same model by optimising the profiled
   criterion: CPU seconds of each, the ratio, the EM's iterations and the largest relative
   difference of the variance estimates (both estimate the same ML fit).

Nothing here asserts a time; it prints the figures.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from threadpoolctl import threadpool_limits

from mixcv_core.merf import MERFRegressor
from mixcv_core.models import LinearMixedEffectsModel

ROOT = Path(__file__).resolve().parents[2]
CASES = {"sleepstudy": "(1 + Days | Subject)", "carrots": "(1 + sens2 | Consumer) + (1 | Product)",
         "scotssec": "(1 | primary) + (1 | second)", "insteval": "(1 | s) + (1 | d) + (1 | dept)"}
REF = json.loads((ROOT / "tests" / "data" / "lmm_multi" / "lme4_multi.json").read_text())["cases"]


def data(name: str) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    case = REF["sleepstudy_uncorrelated" if name == "sleepstudy" else name]
    d = pd.read_csv(ROOT / case["csv"], dtype={c: str for c in case["group_columns"]})
    cols = [c for c in case["ml"]["fixef"] if c != "(Intercept)"]
    return d[cols], d[case["response"]], d[case["group_columns"]]


def cpu(fn) -> tuple[float, object]:
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip InstEval")
    args = parser.parse_args()
    names = [n for n in CASES if not (args.quick and n == "insteval")]
    print(f"{'data':>10} {'rows':>6} | {'EM s/it':>8} {'RF50 s/it':>9} {'EM share':>8} | {'EM->ML s':>8} "
          f"{'its':>5} {'LMM ML s':>8} {'EM/LMM':>7} {'max rel diff':>12}")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            X, y, G = data(name)
            rf = MERFRegressor(RandomForestRegressor(50, n_jobs=1, random_state=0), max_iterations=5, tol=None,
                               random=CASES[name]).fit(X, y, groups=G)
            h = rf.history_
            em, fe = h["em_time"].mean(), h["fe_time"].mean()
            t_em, m = cpu(lambda: MERFRegressor(DummyRegressor(), max_iterations=20_000, tol=1e-9,
                                                random=CASES[name]).fit(X, y, groups=G))
            t_lmm, lmm = cpu(lambda: LinearMixedEffectsModel(reml=False, random=CASES[name]).fit(X, y, groups=G))
            diff = max(float(np.max(np.abs(m.varcorr_[k].to_numpy() - v.to_numpy())) / np.max(np.abs(v.to_numpy())))
                       for k, v in lmm.varcorr_.items())
            print(f"{name:>10} {len(y):>6} | {em:>8.4f} {fe:>9.3f} {em / (em + fe):>8.1%} | {t_em:>8.2f} "
                  f"{m.merf_.n_iter_:>5} {t_lmm:>8.2f} {t_em / t_lmm:>6.1f}x {diff:>12.1e}", flush=True)


if __name__ == "__main__":
    main()
