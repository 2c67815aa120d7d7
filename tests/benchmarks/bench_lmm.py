"""Linear mixed models: mixcv's native solver against statsmodels, lme4 and mixedlm.

    tests/benchmarks/run.sh bench_lmm.py            # full grid (about 2 minutes)
    tests/benchmarks/run.sh bench_lmm.py --quick    # 10^3 and 10^4 rows
    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_lmm.py --small [--repeats N]

``--small``: 1,000 rows in 10, 100 and 300 groups, where a fit's fixed cost (checks, names,
summaries) weighs most: CPU time per fit (``time.process_time``, BLAS held to one thread,
median of N rounds of 10 fits) of the native LMM, statsmodels' MixedLM and PyPI ``mixedlm``
(imported here, or run in ``.venv-anchors`` when only that venv has it), with the ratios
mixedlm / mixcv and statsmodels / mixcv (above 1: mixcv is faster). Each library's inputs (columns
selected, arrays made) are made once outside the timed call, as the mixedlm child makes its frame.

Model: y ~ x1 + ... + x5 + (1 + x1 | g), REML, on generated data with unbalanced
groups, at rows x groups in {10^3, 10^4, 10^5} x {10, 100, 1000}, plus 10^5 rows in
10^4 groups (many small groups of ~10 rows, where mixedlm used to be fastest). Every library gets
the same data. lme4 runs through ``Rscript`` when R and lme4 are installed (Debian:
``r-base-core r-cran-lme4``) and is timed inside R, so R's start-up does not count;
``mixedlm`` runs when importable. Prints wall times (median of 3 for the fast ones),
the ratios to mixcv, whether each fit converged, and the largest relative difference
of mixcv's estimates from lme4's (statsmodels' when lme4 is absent), with the REML
criterion difference (negative: mixcv found a better optimum). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import median_time  # a sibling module: benchmarks run as scripts from this folder

from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.models.lmm import _Criterion, relative_factor

FEATURES = ["x1", "x2", "x3", "x4", "x5"]

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
for (path in args) {
  d <- read.csv(path)
  d$g <- factor(d$g)
  fit <- function() lmer(y ~ x1 + x2 + x3 + x4 + x5 + (1 + x1 | g), d, REML = TRUE)
  m <- tryCatch(fit(), error = function(e) e)   # also a warm-up: the first call loads code
  if (inherits(m, "error")) {
    cat(sprintf('{"path": "%s", "error": "%s"}\n', path, gsub('"', "'", conditionMessage(m))))
    next
  }
  times <- replicate(3, system.time(fit())[["elapsed"]])
  vc <- as.matrix(VarCorr(m)$g)
  conv <- is.null(m@optinfo$conv$lme4$messages)
  cat(sprintf('{"path": "%s", "time": %.6f, "fe": [%s], "vc": [%.12g, %.12g, %.12g], "sigma2": %.12g, "crit": %.12f, "converged": %s}\n',
              path, median(times), paste(sprintf("%.12g", fixef(m)), collapse = ", "),
              vc[1, 1], vc[2, 1], vc[2, 2], sigma(m)^2, REMLcrit(m), tolower(as.character(conv))))
}
"""


def make_data(n: int, k: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    X = rng.normal(size=(n, 5))
    b = rng.normal(0, [1.0, 0.5], (k, 2))
    y = X @ [1.0, -1.0, 0.5, 2.0, 0.0] + b[g, 0] + b[g, 1] * X[:, 0] + rng.normal(0, 1, n)
    return pd.DataFrame(X, columns=FEATURES).assign(y=y, g=g)


def estimates_native(m: LinearMixedEffectsModel) -> dict:
    c = m.cov_re_.to_numpy()
    return {"fe": m.fe_params_.to_numpy(), "vc": np.array([c[0, 0], c[1, 0], c[1, 1]]), "sigma2": m.scale_}


def run_native(d: pd.DataFrame):
    def fit():
        return LinearMixedEffectsModel().fit(d[FEATURES], d["y"], groups=d["g"], slopes=["x1"])
    t, m = median_time(fit, 3)
    return t, m


def run_statsmodels(d: pd.DataFrame):
    from statsmodels.regression.mixed_linear_model import MixedLM
    exog = np.column_stack([np.ones(len(d)), d[FEATURES]])
    ere = np.column_stack([np.ones(len(d)), d["x1"]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        r = MixedLM(d["y"].to_numpy(), exog, groups=d["g"].to_numpy(), exog_re=ere).fit(reml=True)
        t = time.perf_counter() - t0
    converged = bool(r.converged) and not any("converge" in str(w.message) for w in caught)
    c = np.asarray(r.cov_re)
    return t, {"fe": np.asarray(r.fe_params), "vc": np.array([c[0, 0], c[1, 0], c[1, 1]]),
               "sigma2": float(r.scale), "converged": converged}


def run_mixedlm(d: pd.DataFrame):
    try:
        import mixedlm
    except ImportError:
        return None
    def fit():
        return mixedlm.lmer("y ~ x1 + x2 + x3 + x4 + x5 + (1 + x1 | g)", d.assign(g=d["g"].astype(str)))
    t, m = median_time(fit, 3)
    return t, {"converged": bool(m.converged)}


def run_lme4(frames: dict[tuple[int, int], pd.DataFrame], tmp: Path) -> dict[tuple[int, int], dict]:
    if shutil.which("Rscript") is None:
        return {}
    paths = {}
    for key, d in frames.items():
        p = tmp / f"d_{key[0]}_{key[1]}.csv"
        d.to_csv(p, index=False)
        paths[str(p)] = key
    script = tmp / "bench.R"
    script.write_text(R_SCRIPT)
    proc = subprocess.run(["Rscript", str(script), *paths], capture_output=True, text=True, check=False)
    # lme4 refuses designs with fewer rows than random effects (1,000 rows in 1,000
    # groups with a slope): those come back as {"error": ...} and are shown as refused.
    if proc.returncode != 0:
        print("lme4 failed:", proc.stderr.strip()[-500:])
        return {}
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            out[paths[rec["path"]]] = rec
    return out


def criterion(d: pd.DataFrame, vc: np.ndarray, sigma2: float) -> float:
    exog = np.column_stack([np.ones(len(d)), d[FEATURES]])
    ere = np.column_stack([np.ones(len(d)), d["x1"]])
    codes, labels = pd.factorize(d["g"], sort=True)
    crit = _Criterion(exog, d["y"].to_numpy(float), ere, codes, len(labels), reml=True)
    cov = np.array([[vc[0], vc[1]], [vc[1], vc[2]]]) / sigma2
    lam = relative_factor(cov)
    return crit(lam[[0, 1, 1], [0, 0, 1]])


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3 * np.abs(b).max())))


SMALL_GROUPS = (10, 100, 300)

#: Run by the anchors' interpreter when mixedlm is not importable here: CPU ms per fit for each group count.
MIXEDLM_CHILD = r"""
import json, statistics, sys, time
import numpy as np, pandas as pd
import mixedlm
n_groups, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for k in n_groups:
    rng = np.random.default_rng(0)
    g = rng.integers(0, k, 1000)
    X = rng.normal(size=(1000, 5))
    b = rng.normal(0, [1.0, 0.5], (k, 2))
    y = X @ [1.0, -1.0, 0.5, 2.0, 0.0] + b[g, 0] + b[g, 1] * X[:, 0] + rng.normal(0, 1, 1000)
    d = pd.DataFrame(X, columns=["x1", "x2", "x3", "x4", "x5"]).assign(y=y, g=g.astype(str))
    fit = lambda: mixedlm.lmer("y ~ x1 + x2 + x3 + x4 + x5 + (1 + x1 | g)", d)
    fit()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(10):
            fit()
        times.append((time.process_time() - t) / 10)
    out[k] = statistics.median(times)
print(json.dumps(out))
"""


def cpu_per_fit(fit, repeats: int) -> float:
    """Median over ``repeats`` rounds of the CPU seconds per fit (10 fits a round, after one warm-up)."""
    fit()
    def ten() -> None:
        for _ in range(10):
            fit()
    return median_time(ten, repeats, clock=time.process_time)[0] / 10


def mixedlm_small(repeats: int) -> dict[int, float] | None:
    try:
        import mixedlm  # noqa: F401
    except ImportError:
        # $MIXCV_ANCHORS_PYTHON, else .venv-anchors next to this checkout or next to the running venv.
        candidates = [Path(os.environ.get("MIXCV_ANCHORS_PYTHON", "/nonexistent")),
                      *(root / ".venv-anchors" / "bin" / "python"
                        for root in (Path(__file__).resolve().parents[2], Path(sys.executable).parents[2]))]
        anchors = next((c for c in candidates if c.exists()), None)
        if anchors is None:
            return None
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        proc = subprocess.run([str(anchors), "-c", MIXEDLM_CHILD, json.dumps(list(SMALL_GROUPS)), str(repeats)],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            print("mixedlm failed:", proc.stderr.strip()[-300:])
            return None
        return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    out = {}
    for k in SMALL_GROUPS:
        d = make_data(1000, k)
        out[k] = cpu_per_fit(lambda d=d: mixedlm.lmer("y ~ x1 + x2 + x3 + x4 + x5 + (1 + x1 | g)",
                                                      d.assign(g=d["g"].astype(str))), repeats)
    return out


def small(repeats: int) -> None:
    """1,000 rows: CPU time per fit, mixcv against mixedlm and statsmodels, one BLAS thread."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    from threadpoolctl import threadpool_limits
    ml = mixedlm_small(repeats)
    print(f"1,000 rows, y ~ x1..x5 + (1 + x1 | g), REML; CPU ms per fit (median of {repeats} x 10 fits), "
          "one BLAS thread; the machine may be loaded")
    print(f"{'groups':>6} | {'mixcv':>7} {'statsm.':>8} {'mixedlm':>8} | {'sm/mixcv':>8} {'mixedlm/mixcv':>13}")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in SMALL_GROUPS:
            d = make_data(1000, k)
            # Each library's inputs are made once, outside the timed call, as the mixedlm child
            # makes its frame: selecting the columns (d[FEATURES], about 0.6 ms) is the caller's work.
            X, y, g = d[FEATURES], d["y"], d["g"]
            t_nat = cpu_per_fit(lambda X=X, y=y, g=g: LinearMixedEffectsModel().fit(X, y, groups=g, slopes=["x1"]),
                                repeats)
            exog = np.column_stack([np.ones(len(d)), d[FEATURES]])
            ere = np.column_stack([np.ones(len(d)), d["x1"]])
            yv, gv = y.to_numpy(), g.to_numpy()
            t_sm = cpu_per_fit(lambda exog=exog, ere=ere, yv=yv, gv=gv: MixedLM(yv, exog, groups=gv, exog_re=ere).fit(
                reml=True), repeats)
            t_ml = None if ml is None else ml.get(k)
            ml_text = f"{t_ml * 1e3:8.2f}" if t_ml else f"{'-':>8}"
            ratio = f"{t_ml / t_nat:12.2f}x" if t_ml else f"{'-':>13}"
            print(f"{k:>6} | {t_nat * 1e3:7.2f} {t_sm * 1e3:8.2f} {ml_text} | {t_sm / t_nat:7.2f}x {ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--small", action="store_true", help="1,000 rows: CPU per fit against mixedlm")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.small:
        small(args.repeats)
        return
    rows = [1_000, 10_000] + ([] if args.quick else [100_000])
    grid = [(n, k) for n in rows for k in (10, 100, 1000)] + ([] if args.quick else [(100_000, 10_000)])
    frames = {key: make_data(*key) for key in grid}
    with tempfile.TemporaryDirectory() as tmp:
        lme4 = run_lme4(frames, Path(tmp))
    print("lme4:", "via Rscript" if lme4 else "not available", "| mixedlm:",
          "installed" if run_mixedlm(frames[grid[0]]) is not None else "not installed")
    head = (f"{'rows':>7} {'groups':>6} | {'mixcv':>7} {'statsm.':>8} {'lme4':>7} {'mixedlm':>8} | "
            f"{'sm/mixcv':>8} {'lme4/mixcv':>10} {'mixedlm/mixcv':>13} | {'conv mixcv/sm/lme4':>18} | "
            f"{'max rel diff fe, vc':>20} {'crit diff':>10}")
    print(head)
    for key in grid:
        d = frames[key]
        t_nat, m = run_native(d)
        t_sm, sm = run_statsmodels(d)
        ml = run_mixedlm(d)
        ref = lme4.get(key)
        refused = ref is not None and "error" in ref
        if refused:
            ref = None
        nat = estimates_native(m)
        if ref is not None:
            fe_d = rel_diff(nat["fe"], ref["fe"])
            vc_d = rel_diff(np.append(nat["vc"], nat["sigma2"]), np.append(ref["vc"], ref["sigma2"]))
            crit_d = m.reml_criterion_ - ref["crit"]
            conv_ref = "yes" if ref["converged"] else "NO"
        else:
            fe_d = rel_diff(nat["fe"], sm["fe"])
            vc_d = rel_diff(np.append(nat["vc"], nat["sigma2"]), np.append(sm["vc"], sm["sigma2"]))
            crit_d = m.reml_criterion_ - criterion(d, sm["vc"], sm["sigma2"])
            conv_ref = "refused" if refused else "-"
        t_ref = f"{ref['time']:7.3f}" if ref else f"{'refused' if refused else '-':>7}"
        t_ml = f"{ml[0]:8.3f}" if ml else f"{'-':>8}"
        r_ref = f"{ref['time'] / t_nat:9.1f}x" if ref else f"{'-':>10}"
        r_ml = f"{ml[0] / t_nat:12.2f}x" if ml else f"{'-':>13}"
        conv = f"{'yes' if m.converged_ else 'NO'}/{'yes' if sm['converged'] else 'NO'}/{conv_ref}"
        print(f"{key[0]:>7} {key[1]:>6} | {t_nat:7.3f} {t_sm:8.3f} {t_ref} {t_ml} | {t_sm / t_nat:7.1f}x {r_ref} {r_ml} | "
              f"{conv:>18} | {fe_d:9.1e} {vc_d:10.1e} {crit_d:10.2e}", flush=True)


if __name__ == "__main__":
    main()
