"""MERF against GPBoost, the library a researcher would pick instead: accuracy for known and new groups, and time.

    tests/benchmarks/run.sh bench_merf_vs_gpboost.py

1. GPBoost's own published example (python-guide/GPBoost_algorithm_blog_post_example.py
   in the GPBoost repository): Friedman3 with random intercepts, 500 groups, 5,000
   training rows; of the 5,000 test rows half belong to training groups and half to new
   ones. Its settings are kept: GPBoost with learning_rate 0.1, max_depth 6,
   min_data_in_leaf 5 and the number of rounds chosen by its 4-fold CV (31 in the
   example); forests of 300 trees of depth 6, as the example gives merf.
2. Two real datasets (lme4's data in tests/data/lmm): MathAchieve (7,185 students in 160
   schools, random slope on SES) and ChickWeight (578 weights of 50 chicks, random slope
   on Time). A fifth of the groups are held out whole (new groups), and a fifth of the
   rows of every other group (known groups).

Prints test RMSE (all rows, known groups, new groups) and fit time for GPBoost, MERF(RF)
(mixcv's default: linear fixed part, early stopping, lighter EM forests), MERF(RF)
classic (merf 1.0's algorithm, 20 iterations), the random forest alone and the native
LMM, side by side, with the ratios to GPBoost. Asserts nothing.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn.datasets as skdata
from sklearn.ensemble import RandomForestRegressor

from mixcv_core.merf import MERFRegressor
from mixcv_core.models import GPBoostRegressor, LinearMixedEffectsModel

DATA = Path(__file__).parents[1] / "data" / "lmm"
GPB_PARAMS = {"learning_rate": 0.1, "max_depth": 6, "min_data_in_leaf": 5}


def gpboost_example():
    """The data of GPBoost's blog-post example, generated exactly as its script does."""
    ntrain, m = 5000, 500
    n = 2 * ntrain
    np.random.seed(1)  # noqa: NPY002 - the example's own global seeding, kept to reproduce its data
    X, F = skdata.make_friedman3(n_samples=n)
    X = pd.DataFrame(X, columns=["variable_1", "variable_2", "variable_3", "variable_4"])
    F = F * 10**0.5
    group_train = np.arange(ntrain)
    for i in range(m):
        group_train[int(i * ntrain / m):int((i + 1) * ntrain / m)] = i
    group_test = np.arange(ntrain)
    for i in range(2 * m):
        group_test[int(i * ntrain / (2 * m)):int((i + 1) * ntrain / (2 * m))] = i
    group = np.concatenate((group_train, group_test))
    b = np.random.normal(size=2 * m)  # noqa: NPY002
    y = F + b[group] + np.random.normal(size=n)  # noqa: NPY002
    return (X.iloc[:ntrain], y[:ntrain], group_train, None), (X.iloc[ntrain:], y[ntrain:], group_test, None)


def real(name: str, target: str, group: str, slope: str, seed: int = 0):
    d = pd.read_csv(DATA / f"{name}.csv")
    rng = np.random.default_rng(seed)
    groups = d[group].astype(str)
    labels = groups.unique()
    new = set(rng.choice(labels, size=len(labels) // 5, replace=False))
    is_new = groups.isin(new).to_numpy()
    held = (~is_new) & (rng.random(len(d)) < 0.2)
    train, test = ~(is_new | held), is_new | held
    feats = [c for c in d.columns if c not in (target, group)]
    part = lambda m: (d.loc[m, feats].reset_index(drop=True), d.loc[m, target].to_numpy(float),  # noqa: E731
                      groups[m].to_numpy(), [slope])
    return part(train), part(test)


def gpboost_rounds(train) -> tuple[int, float]:
    """GPBoost's number of rounds by its own 4-fold CV with early stopping, as the example does."""
    import gpboost as gpb
    X, y, g, slopes = train
    kwargs = {"group_data": pd.factorize(g)[0], "num_parallel_threads": 2}
    if slopes:
        kwargs.update(group_rand_coef_data=X[slopes].to_numpy(float), ind_effect_group_rand_coef=[1] * len(slopes))
    t = time.perf_counter()
    cv = gpb.cv(params={**GPB_PARAMS, "objective": "regression_l2", "verbose": -1},
                train_set=gpb.Dataset(X.to_numpy(float), y), gp_model=gpb.GPModel(**kwargs),
                use_gp_model_for_validation=False, num_boost_round=100, early_stopping_rounds=5, nfold=4,
                verbose_eval=False, show_stdv=False, seed=1, metric="l2")
    return int(np.argmin(cv["l2-mean"])) + 1, time.perf_counter() - t


def rmse(y, pred, mask):
    return float(np.sqrt(np.mean((y[mask] - pred[mask]) ** 2))) if mask.any() else float("nan")


def evaluate(name: str, train, test) -> None:
    Xtr, ytr, gtr, slopes = train
    Xte, yte, gte, _ = test
    known = np.isin(gte, gtr)
    rounds, cv_time = gpboost_rounds(train)
    forest = RandomForestRegressor(300, max_depth=6, n_jobs=2, random_state=0)
    models = {
        f"GPBoost ({rounds} rounds)": GPBoostRegressor(num_boost_round=rounds, random_state=0, n_jobs=2, **GPB_PARAMS),
        "MERF(RF)": MERFRegressor(forest),
        "MERF(RF) classic": MERFRegressor(forest, max_iterations=20, gll_early_stop_threshold=None,
                                          linear_fixed_effects=False, em_estimators=None),
        "RF": forest,
        "LMM": LinearMixedEffectsModel(),
    }
    print(f"\n{name}: {len(ytr)} training rows in {len(np.unique(gtr))} groups; test rows {len(yte)} "
          f"({known.sum()} of known groups, {(~known).sum()} of new ones)")
    print(f"{'model':22} {'RMSE all':>9} {'known':>7} {'new':>7} | {'fit s':>7} {'x GPBoost':>9} {'x GPB+CV':>8}")
    base = None
    for label, model in models.items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if label == "RF":
                model.fit(Xtr, ytr)
                pred = model.predict(Xte)
            else:
                model.fit(Xtr, ytr, groups=gtr, slopes=slopes)
                pred = model.predict(Xte, groups=gte, slopes=slopes)
        fit_s = time.perf_counter() - t
        if base is None:
            base = fit_s
        print(f"{label:22} {rmse(yte, pred, np.ones(len(yte), bool)):9.3f} {rmse(yte, pred, known):7.3f} "
              f"{rmse(yte, pred, ~known):7.3f} | {fit_s:7.2f} {fit_s / base:8.1f}x {fit_s / (base + cv_time):7.1f}x",
              flush=True)
    print(f"(GPBoost's CV to choose its rounds took {cv_time:.2f} s; 'x GPB+CV' counts it.)")


def main() -> None:
    train, test = gpboost_example()
    evaluate("GPBoost's example (Friedman3, 500 groups)", train, test)
    evaluate("MathAchieve (nlme)", *real("mathachieve", "MathAch", "School", "SES"))
    evaluate("ChickWeight (datasets)", *real("chickweight", "weight", "Chick", "Time"))


if __name__ == "__main__":
    main()
