"""Post-processors: per-fold insight from a fitted model (coefficients, importances).

A post-processor is any callable ``f(model, feature_names) -> pandas.DataFrame``; the
classes here are flexcv's names for the common cases. Pass the class or an instance
as ``post_processor`` to ``add_model``; each outer fold's table ends up in
``Results.insights[(model_name, fold)]``.

flexcv's form works too: a class (or function) whose ``__call__`` is
``(results_all_folds, fold_result, features, run)`` gets, for each outer fold, a
``results_all_folds`` dict holding that model's entry (``results_all_folds[name]
["parameters"][k]`` is the fold's parameters, as flexcv's own post-processors write it), a
`SingleModelFoldResult` with the fold's model, data and predictions, the feature names and
a ``run`` that accepts flexcv's Neptune calls and keeps nothing (mixcv mirrors runs
through observers). What it adds to or changes in its model's entry shows in flexcv's
view of the results (``results[name]["shap_values"][k]``); a DataFrame it returns becomes
the fold's insight table.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ModelPostProcessor",
    "LinearModelPostProcessor",
    "LMERModelPostProcessor",
    "RandomForestModelPostProcessor",
    "XGBoostModelPostProcessor",
    "SVRModelPostProcessor",
    "MERFModelPostProcessor",
    "SingleModelFoldResult",
    "FLEXCV_ARGUMENTS",
    "is_flexcv_style",
    "run_flexcv_style",
]

#: The arguments of flexcv's post-processor ``__call__``.
FLEXCV_ARGUMENTS = ("results_all_folds", "fold_result", "features", "run")


class ModelPostProcessor:
    """Base class: override `__call__`."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        raise NotImplementedError


class LinearModelPostProcessor(ModelPostProcessor):
    """Coefficient table: estimate and standard error (where the model has them)."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        if hasattr(model, "params_"):
            table = pd.DataFrame({"estimate": model.params_})
            if hasattr(model, "bse_"):
                table["std_error"] = model.bse_
            return table
        coef = np.ravel(model.coef_)
        table = pd.DataFrame({"estimate": coef}, index=list(feature_names))
        if hasattr(model, "intercept_"):
            table = pd.concat([pd.DataFrame({"estimate": [float(np.ravel(model.intercept_)[0])]},
                                            index=["Intercept"]), table])
        return table


class LMERModelPostProcessor(ModelPostProcessor):
    """Fixed effects and variance components of a linear mixed model, in one table."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        fe = pd.DataFrame({"estimate": model.fe_params_, "kind": "fixed"})
        cov = model.cov_re_
        rows = {}
        for i, a in enumerate(cov.index):
            for b in cov.columns[: i + 1]:
                rows[f"var({a})" if a == b else f"cov({b},{a})"] = cov.loc[a, b]
        re = pd.DataFrame({"estimate": pd.Series(rows, dtype=float), "kind": "random"})
        resid = pd.DataFrame({"estimate": [model.scale_], "kind": ["residual"]}, index=["var(residual)"])
        return pd.concat([fe, re, resid])


class RandomForestModelPostProcessor(ModelPostProcessor):
    """Impurity-based feature importances, largest first."""

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame:
        estimator = getattr(model, "trained_fe_model", model)  # MERF wraps the forest
        imp = pd.Series(estimator.feature_importances_, index=list(feature_names), name="importance")
        return imp.sort_values(ascending=False).to_frame()


class XGBoostModelPostProcessor(RandomForestModelPostProcessor):
    """Feature importances of a gradient-boosted model (XGBoost's ``importance_type``), largest first."""


class SVRModelPostProcessor(ModelPostProcessor):
    """Permutation importance of each feature on the fold's test rows (mean and sd of the
    drop in R² over 10 seeded shuffles), largest first; flexcv logged the same as a plot.

    A kernel SVR has no coefficients to read, so its importance is measured on held-out
    rows: this post-processor takes flexcv's four arguments to reach them.
    """

    def __call__(self, results_all_folds: dict[str, Any], fold_result: SingleModelFoldResult,  # type: ignore[override]
                 features: Sequence[str], run: Any = None) -> pd.DataFrame:
        from sklearn.inspection import permutation_importance

        imp = permutation_importance(fold_result.best_model, fold_result.X_test, fold_result.y_test,
                                     n_repeats=10, random_state=fold_result.k)
        table = pd.DataFrame({"importance": imp.importances_mean, "sd": imp.importances_std},
                             index=list(features))
        return table.sort_values("importance", ascending=False)


def _cov_rows(terms: Sequence[str], cov: np.ndarray, prefix: str = "") -> dict[str, float]:
    """The lower triangle of ``cov`` named ``var(a)`` / ``cov(b,a)`` by its terms."""
    return {prefix + (f"var({a})" if i == j else f"cov({terms[j]},{a})"): float(cov[i, j])
            for i, a in enumerate(terms) for j in range(i + 1)}


class MERFModelPostProcessor(ModelPostProcessor):
    """MERF's final variance components: the random effects' covariance ``D`` and the
    residual variance (Hajjem et al. 2014, the EM's last ``D_hat`` and ``sigma2_hat``).

    A model's post-processor also runs on its base estimator (``add_model(...,
    add_merf=True)``); there it gives no table, as flexcv ran this one on MERF only.
    """

    def __call__(self, model: Any, feature_names: Sequence[str]) -> pd.DataFrame | None:
        merf = getattr(model, "merf_", model)   # MERFRegressor wraps a MERF
        if not hasattr(merf, "D_hat_history"):
            return None
        covs = getattr(model, "varcorr_", None)
        rows: dict[str, float] = {}
        if isinstance(covs, dict) and len(covs) > 1:
            # Several terms: each covariance named by its factor and terms, as lme4's VarCorr.
            for factor, cov in covs.items():
                rows.update(_cov_rows([str(c) for c in cov.columns], cov.to_numpy(), f"{factor}: "))
        else:
            D = np.atleast_2d(merf.D_hat_history[-1])
            b = getattr(merf, "trained_b", None)
            terms = [str(c) for c in b.columns] if isinstance(b, pd.DataFrame) else [str(i) for i in range(len(D))]
            rows.update(_cov_rows(terms, D))
        rows["var(residual)"] = float(merf.sigma2_hat_history[-1])
        return pd.DataFrame({"estimate": pd.Series(rows, dtype=float)})
        D = np.atleast_2d(merf.D_hat_history[-1])
        b = getattr(merf, "trained_b", None)
        terms = [str(c) for c in b.columns] if isinstance(b, pd.DataFrame) else [str(i) for i in range(len(D))]
        rows = {}
        for i, a in enumerate(terms):
            for j in range(i + 1):
                rows[f"var({a})" if i == j else f"cov({terms[j]},{a})"] = float(D[i, j])
        rows["var(residual)"] = float(merf.sigma2_hat_history[-1])
        return pd.DataFrame({"estimate": pd.Series(rows, dtype=float)})


@dataclass
class SingleModelFoldResult:
    """One model on one outer fold, as flexcv hands it to a post-processor.

    ``X_train``/``X_test`` are the features the model saw (standardised when the outer
    split scales); ``fit_result`` is the fitted model, as ``best_model``.
    """

    k: int
    model_name: str
    best_model: Any
    best_params: dict[str, Any]
    y_pred: pd.Series
    y_test: pd.Series
    X_test: pd.DataFrame
    y_train: pd.Series
    y_pred_train: pd.Series
    X_train: pd.DataFrame
    fit_result: Any = None
    fit_kwargs: dict[str, Any] | None = None


class _NoRun:
    """Takes flexcv's Neptune calls (``run[key] = v``, ``run[key].append(v)``, ``.upload``...)
    and keeps nothing."""

    def __getitem__(self, key: str) -> _NoRun:
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def is_flexcv_style(post_processor: Any) -> bool:
    """Whether a post-processor (class, instance or function) takes flexcv's four arguments."""
    if isinstance(post_processor, type):
        target, bound = post_processor.__call__, False     # a plain function: self comes first
    elif inspect.isfunction(post_processor) or inspect.ismethod(post_processor):
        target, bound = post_processor, True
    else:
        target, bound = type(post_processor).__call__, False
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return False
    if not bound and params:
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional and positional[0].name == "results_all_folds":
        return True
    required = [p for p in positional if p.default is p.empty]
    return len(required) >= 3


#: The keys of a model's entry that a flexcv-style post-processor finds filled in.
_ENTRY_KEYS = ("model", "parameters", "y_pred", "y_test", "y_pred_train", "y_train")


def run_flexcv_style(post_processor: Any, fold: SingleModelFoldResult, features: Sequence[str]
                     ) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Call a flexcv-style post-processor for one fold.

    Returns
    -------
    table : DataFrame or None
        What it returned, when that is a table (the fold's insight).
    entries : dict
        What it added to or changed in the model's entry for this fold: a new key's value
        (a list it appended to gives its last item), and ``"parameters"`` when it replaced them.
    """
    k = fold.k
    entry: dict[str, Any] = {
        "model": {k: fold.best_model}, "parameters": {k: fold.best_params}, "y_pred": {k: fold.y_pred},
        "y_test": {k: fold.y_test}, "y_pred_train": {k: fold.y_pred_train}, "y_train": {k: fold.y_train},
    }
    before = fold.best_params
    returned = post_processor({fold.model_name: entry}, fold, features, _NoRun())
    if isinstance(returned, dict) and isinstance(returned.get(fold.model_name), dict):
        entry = returned[fold.model_name]
    entries: dict[str, Any] = {}
    for key, value in entry.items():
        if key in _ENTRY_KEYS:
            continue
        entries[key] = value[-1] if isinstance(value, list) and value else value
    params = entry.get("parameters", {})
    if isinstance(params, dict) and k in params and params[k] is not before:
        entries["parameters"] = params[k]
    table = returned if isinstance(returned, pd.DataFrame) else None
    return table, entries
