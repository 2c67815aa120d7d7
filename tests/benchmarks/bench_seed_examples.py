"""The seed guide's two examples on flexcv 24.0b0 and on mixcv, side by side in one run.

    tests/benchmarks/run.sh bench_seed_examples.py

Prints import time, ``perform()`` time (median of repeats) and the test R² each library
reports, and the ratio flexcv / mixcv. Same data for both (flexcv's own generator, as
in the guide); nothing here asserts a time.
"""

from __future__ import annotations

import logging
import time
import warnings

from _timing import median_time  # a sibling module: benchmarks run as scripts from this folder


def example_1(CrossValidation, LinearMixedEffectsModel, data):
    X, y, group, random_slopes = data
    return (CrossValidation().set_data(X, y, group, random_slopes).set_splits(n_splits_out=3)
            .add_model(LinearMixedEffectsModel).perform().get_results())


def example_2(CrossValidation, RandomForestModelPostProcessor, data):
    import optuna
    from sklearn.ensemble import RandomForestRegressor
    X, y, group, random_slopes = data
    params = {"max_depth": optuna.distributions.IntDistribution(5, 100),
              "n_estimators": optuna.distributions.CategoricalDistribution([10])}
    return (CrossValidation().set_data(X, y, group, random_slopes).set_inner_cv(3).set_splits(n_splits_out=3)
            .add_model(model_class=RandomForestRegressor, requires_inner_cv=True, params=params,
                       post_processor=RandomForestModelPostProcessor)
            .set_merf(True, em_max_iterations=5).perform().get_results())


def flexcv_r2(results, model: str) -> float:
    try:
        return float(results.summary.loc[("mean", "r2"), model]) if hasattr(results, "summary") else float("nan")
    except Exception:  # noqa: BLE001 - flexcv's summary layout varies; report what we can
        try:
            s = results.summary
            return float(s[model].loc[s.index.get_level_values(-1) == "r2"].iloc[0])
        except Exception:  # noqa: BLE001
            return float("nan")


def main() -> None:
    warnings.filterwarnings("ignore")
    t = time.perf_counter()
    import flexcv  # noqa: F401
    from flexcv import CrossValidation as FCV
    from flexcv.model_postprocessing import RandomForestModelPostProcessor as FRF
    from flexcv.models import LinearMixedEffectsModel as FLMM
    from flexcv.synthesizer import generate_regression
    t_flexcv = time.perf_counter() - t
    logging.getLogger().setLevel(logging.WARNING)
    t = time.perf_counter()
    from mixcv_core import CrossValidation as MCV
    from mixcv_core.model_postprocessing import RandomForestModelPostProcessor as MRF
    from mixcv_core.models import LinearMixedEffectsModel as MLMM
    t_mixcv = time.perf_counter() - t
    print(f"import: flexcv {t_flexcv:.2f} s, mixcv {t_mixcv:.2f} s (flexcv is imported first, so shared "
          "dependencies count against it)")

    d1 = generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
    d2 = generate_regression(3, 50, n_slopes=1, noise_level=9.1e-2)
    print(f"{'example':<28} {'flexcv s':>9} {'mixcv s':>8} {'ratio':>7} | {'flexcv R2':>10} {'mixcv R2':>9}")
    for label, fn_f, fn_m, model in (
        ("1: LMM, 100 rows", lambda: example_1(FCV, FLMM, d1), lambda: example_1(MCV, MLMM, d1),
         "LinearMixedEffectsModel"),
        ("2: RF + MERF, tuned", lambda: example_2(FCV, FRF, d2), lambda: example_2(MCV, MRF, d2),
         "MERF(RandomForestRegressor)"),
    ):
        tf, rf = median_time(fn_f, 3)
        tm, rm = median_time(fn_m, 3)
        r2_m = float(rm.summary.loc[(model, "r2"), "mean"])
        print(f"{label:<28} {tf:>9.2f} {tm:>8.2f} {tf / tm:>6.1f}x | {flexcv_r2(rf, model):>10.3f} {r2_m:>9.3f}",
              flush=True)


if __name__ == "__main__":
    main()
