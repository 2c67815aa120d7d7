"""mixcv against flexcv 24.0b0 on the same experiments, side by side in one run.

    tests/benchmarks/run.sh bench_vs_flexcv.py [--quick] [--cases seed|large|seed,large]

Two experiments, the same data for both libraries (seeded):

- seed: the seed guide's MERF example — 50 rows of 3 features in 5 groups (flexcv's generator), KFold(3) outer and KFold(5)
  inner, a random forest (10 trees, max_depth tuned in 3 trials) and MERF around it (5 EM
  iterations): 63 forest fits in all, about 1 s of scikit-learn, so this measures each
  library's own overhead.
- large: 100 groups x 100 rows (10,000 rows, one random slope; `generate_grouped_regression`), GroupKFold(5) outer and
  GroupKFold(3) inner, 20 trials; a random forest (20 trees; max_depth and
  min_samples_leaf tuned), MERF around it (20 EM iterations at most) and the LMM with the
  random slope.

Every run is a fresh Python process (so one library's imports and caches do not help the
other); its wall time counts ``perform()`` only (and so does its CPU time, this process's, less the
memory watcher's: on a shared machine the fairer clock), its memory is the peak PSS of the process
and any workers it starts, sampled every 0.1 s. The test R² (mean over outer folds) of each
model is printed next to the time, so a speed-up cannot come from a different experiment.

mixcv runs three ways: its defaults (MERF with its linear fixed part, light forests while the
EM iterates and early stopping), the same with two worker processes, and "merf 1.0 MERF"
(``linear_fixed_effects=False, em_estimators=None``, no early stopping): flexcv's MERF
algorithm, for a like-for-like time.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {"seed": ["RandomForestRegressor", "MERF(RandomForestRegressor)"],
          "large": ["RandomForestRegressor", "MERF(RandomForestRegressor)", "LinearMixedEffectsModel"]}
WAYS = [("flexcv", "flexcv 24.0b0"), ("mixcv", "mixcv"), ("mixcv2", "mixcv, n_jobs=2"),
        ("mixcv_same", "mixcv, merf 1.0 MERF")]


def experiment(lib: str, case: str, quick: bool):
    """A CrossValidation of ``lib`` set up for ``case``, not yet performed."""
    import optuna
    from sklearn.ensemble import RandomForestRegressor

    from mixcv_core.synthesizer import generate_grouped_regression, generate_regression
    if lib == "flexcv":
        from flexcv import CrossValidation
        from flexcv.models import LinearMixedEffectsModel
    else:
        from mixcv_core import CrossValidation
        from mixcv_core.models import LinearMixedEffectsModel
    if case == "seed":
        X, y, group, slopes = generate_regression(3, 50, n_slopes=1, noise_level=9.1e-2, random_seed=42)
        params = {"max_depth": optuna.distributions.IntDistribution(5, 100),
                  "n_estimators": optuna.distributions.CategoricalDistribution([10])}
        cv = (CrossValidation().set_data(X, y, group, slopes).set_inner_cv(3).set_splits(n_splits_out=3)
              .add_model(model_class=RandomForestRegressor, requires_inner_cv=True, params=params, add_merf=True))
        iterations, trials = 5, 3   # the seed's set_inner_cv(3): three trials
    else:
        n_groups = 30 if quick else 100
        X, y, group, slopes = generate_grouped_regression(n_groups, 100, n_slopes=1, noise_level=0.5, random_seed=42)
        params = {"max_depth": optuna.distributions.IntDistribution(2, 20),
                  "min_samples_leaf": optuna.distributions.IntDistribution(1, 20),
                  "n_estimators": optuna.distributions.CategoricalDistribution([20])}
        cv = (CrossValidation().set_data(X, y, group, slopes)
              .set_splits(split_out="GroupKFold", split_in="GroupKFold", n_splits_out=5, n_splits_in=3)
              .add_model(model_class=RandomForestRegressor, requires_inner_cv=True, params=params, add_merf=True)
              .add_model(LinearMixedEffectsModel, add_merf=False))
        iterations, trials = 20, (5 if quick else 20)
    cv = cv.set_inner_cv(trials)
    # MERF around the forest only (add_merf above): flexcv's global switch would wrap the LMM too.
    if lib == "flexcv":
        return cv.set_merf(False, em_max_iterations=iterations)
    if lib == "mixcv_same":
        cv = cv.set_merf(False, em_max_iterations=iterations, em_stopping_threshold=None, em_stopping_window=None,
                         linear_fixed_effects=False, em_estimators=None)
    else:
        cv = cv.set_merf(False, em_max_iterations=iterations)
    return cv.set_run(store=False, n_jobs=2 if lib == "mixcv2" else 1)


def test_r2(lib: str, results, model: str) -> float:
    if lib != "flexcv":
        return float(results.summary.loc[(model, "r2"), "mean"])
    s = results.summary   # flexcv: rows (aggregate, metric), a column per model
    try:
        return float(s.loc[("mean", "r2"), model])
    except (KeyError, TypeError):
        return float(s[model].loc[s.index.get_level_values(-1) == "r2"].iloc[0])


def child(lib: str, case: str, quick: bool) -> None:
    """Run one (library, experiment) in this fresh process; print one JSON line."""
    from bench_memory import peak_and_cpu_while  # a sibling module: benchmarks run as scripts from this folder
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cv = experiment(lib, case, quick)
    seconds, gib, cpu = peak_and_cpu_while(cv.perform)
    results = cv.get_results() if hasattr(cv, "get_results") else cv.results
    print(json.dumps({"seconds": seconds, "gib": gib, "cpu": cpu,
                      "r2": {m: test_r2(lib, results, m) for m in MODELS[case]}}))


def main() -> None:
    quick = "--quick" in sys.argv
    print("Each line: a fresh process; time of perform(); peak PSS of the process and its workers; mean test R².")
    cases = tuple(sys.argv[sys.argv.index("--cases") + 1].split(",")) if "--cases" in sys.argv else ("seed", "large")
    for case in cases:
        if case not in MODELS:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(MODELS)}")
        rows = {}
        for lib, label in WAYS:
            if case == "seed" and lib == "mixcv2":
                continue   # 3 folds of 150 rows: nothing for a second process to win
            t = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", lib, case] + (["--quick"] if quick else []),
                                 capture_output=True, text=True, cwd=HERE)
            if out.returncode != 0:
                print(f"{case} {label}: failed\n{out.stderr[-2000:]}")
                continue
            rows[lib] = json.loads(out.stdout.strip().splitlines()[-1])
            rows[lib]["label"], rows[lib]["total"] = label, time.perf_counter() - t
        if "flexcv" not in rows:
            continue
        base, base_cpu = rows["flexcv"]["seconds"], rows["flexcv"]["cpu"]
        names = MODELS[case]
        short = {"RandomForestRegressor": "RF", "MERF(RandomForestRegressor)": "MERF(RF)",
                 "LinearMixedEffectsModel": "LMM"}
        print(f"\n{case}: " + ("50 rows, 3 features, 5 groups, KFold(3)/(5), 3 trials" if case == "seed" else
                               f"{30 if quick else 100} groups x 100 rows, GroupKFold(5)/(3), "
                               f"{5 if quick else 20} trials"))
        print(f"{'':24} {'perform s':>9} {'speed-up':>8} {'CPU s':>7} {'CPU speed-up':>12} {'peak GiB':>8}  "
              + "  ".join(f"{'R² ' + short[n]:>10}" for n in names))
        for r in rows.values():
            # CPU of this process only: for n_jobs=2 the workers' is not in it (no CPU speed-up shown).
            cpu_ratio = f"{base_cpu / r['cpu']:>11.1f}x" if r["label"] != "mixcv, n_jobs=2" else f"{'-':>12}"
            print(f"{r['label']:24} {r['seconds']:>9.2f} {base / r['seconds']:>7.1f}x {r['cpu']:>7.2f} {cpu_ratio} "
                  f"{r['gib']:>8.2f}  " + "  ".join(f"{r['r2'][n]:>10.3f}" for n in names), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], "--quick" in sys.argv)
    else:
        main()
