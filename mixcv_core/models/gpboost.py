"""GPBoost (tree boosting with grouped random effects) behind mixcv's mixed-model convention.

GPBoost (Sigrist 2022, JMLR 23(115)) fits ``y = F(X) + Z b + e`` with ``F`` a boosted tree
ensemble and ``b`` grouped random effects (intercept and, optionally, slopes), estimating
the covariance parameters along the boosting — the library a researcher would pick instead
of MERF. `GPBoostRegressor` takes groups and random slopes from the experiment like the
other mixed models, so it runs on the same splits, is tuned by Optuna like any model
(its constructor parameters are its hyperparameters) and is reported side by side.

Needs the optional extra: ``pip install 'mixcv[gpboost]'``. The package is imported
only when a model is fitted, and the engine checks it is installed before any work
(`requires`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ..errors import SpecError
from ._base import MixedEffectsRegressor, as_frame
from ._groups import cluster_codes

__all__ = ["GPBoostRegressor"]


def _gpboost() -> Any:
    try:
        import gpboost
    except ImportError:
        raise SpecError("model", "GPBoostRegressor needs the gpboost package: pip install 'mixcv[gpboost]'") from None
    return gpboost


class GPBoostRegressor(MixedEffectsRegressor):
    """Tree boosting with grouped random effects (GPBoost), as a mixcv mixed model.

    Parameters
    ----------
    num_boost_round : int, default=100
        Boosting iterations.
    learning_rate : float, default=0.1
    max_depth : int, default=6
    min_data_in_leaf : int, default=5
    num_leaves : int, default=31
    lambda_l2 : float, default=0.0
    predict_known_groups : bool, default=True
        Rows of groups seen in training are predicted with their random effects; rows of
        new groups (and all rows when False) with the boosted fixed part alone.
    random_state : int or None, default=None
        Seeds GPBoost (``seed``).
    n_jobs : int or None, default=None
        GPBoost's threads (``num_threads``); None: its default.
    params : dict, optional
        Further GPBoost training parameters, passed as they are.

    Attributes
    ----------
    booster_ : gpboost.Booster
    gp_model_ : gpboost.GPModel
    cov_pars_ : pandas.Series
        Estimated covariance parameters: the error variance and one variance per random effect.

    Examples
    --------
    >>> from mixcv_core.synthesizer import generate_grouped_regression
    >>> X, y, g, _ = generate_grouped_regression(20, 10, random_seed=0)
    >>> m = GPBoostRegressor(num_boost_round=20).fit(X, y, groups=g)
    >>> m.predict(X.iloc[:3], groups=g.iloc[:3]).shape
    (3,)
    """

    #: Python packages the model needs; the engine checks them before any work.
    requires = ("gpboost",)

    def __init__(self, num_boost_round: int = 100, learning_rate: float = 0.1, max_depth: int = 6,
                 min_data_in_leaf: int = 5, num_leaves: int = 31, lambda_l2: float = 0.0,
                 predict_known_groups: bool = True, random_state: int | None = None, n_jobs: int | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.num_boost_round = num_boost_round
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_data_in_leaf = min_data_in_leaf
        self.num_leaves = num_leaves
        self.lambda_l2 = lambda_l2
        self.predict_known_groups = predict_known_groups
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.params = params

    def _train_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"objective": "regression_l2", "learning_rate": self.learning_rate,
                             "max_depth": self.max_depth, "min_data_in_leaf": self.min_data_in_leaf,
                             "num_leaves": self.num_leaves, "lambda_l2": self.lambda_l2, "verbose": -1}
        if self.random_state is not None:
            p["seed"] = int(self.random_state)
        if self.n_jobs is not None:
            p["num_threads"] = int(self.n_jobs)
        p.update(self.params or {})
        return p

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None) -> GPBoostRegressor:
        """Boost ``F`` and estimate the random effects' covariance, GPBoost's way."""
        if groups is None:
            raise SpecError("groups", "GPBoostRegressor needs groups")
        gpb = _gpboost()
        Xf = as_frame(X).reset_index(drop=True)
        codes, labels = cluster_codes(groups, len(Xf), field="groups")
        S = self._slopes(Xf, slopes)
        yv = np.asarray(y, dtype=float).ravel()
        model_kwargs: dict[str, Any] = {"group_data": codes, "likelihood": "gaussian"}
        if S.shape[1]:
            model_kwargs.update(group_rand_coef_data=S.to_numpy(dtype=float),
                                ind_effect_group_rand_coef=[1] * S.shape[1])
        # Said explicitly (also to keep GPBoost from announcing its default on every fit).
        model_kwargs["num_parallel_threads"] = int(self.n_jobs) if self.n_jobs is not None else os.cpu_count() or 1
        self.gp_model_ = gpb.GPModel(**model_kwargs)
        self.gp_model_.set_optim_params(params={"trace": False})
        data = gpb.Dataset(Xf.to_numpy(dtype=float), yv)
        self.booster_ = gpb.train(params=self._train_params(), train_set=data, gp_model=self.gp_model_,
                                  num_boost_round=self.num_boost_round)
        cov = np.asarray(self.gp_model_.get_cov_pars(), dtype=float).ravel()
        self.cov_pars_ = pd.Series(cov, index=["error", "Intercept", *[str(c) for c in S.columns]][:len(cov)],
                                   name="variance")
        self.labels_ = labels
        self.slopes_ = slopes
        self.n_features_in_ = Xf.shape[1]
        self.feature_names_in_ = np.asarray(Xf.columns, dtype=object)
        return self

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """Predict; rows of groups seen in training get their random effects (if enabled)."""
        check_is_fitted(self, "booster_")
        Xf = as_frame(X).reset_index(drop=True)
        data = Xf.to_numpy(dtype=float)
        if groups is None or not self.predict_known_groups:
            return np.asarray(self.booster_.predict(data=data, ignore_gp_model=True), dtype=float).ravel()
        values = groups.to_numpy() if isinstance(groups, (pd.Series, pd.Index)) else np.asarray(groups)
        # Training groups keep their codes; a new group gets a code GPBoost has not seen,
        # which it predicts with the random effects' prior mean, zero.
        pos = self.labels_.get_indexer(pd.Index(values))
        codes = np.where(pos >= 0, pos, len(self.labels_) + 1)
        kwargs: dict[str, Any] = {"data": data, "group_data_pred": codes}
        S = self._slopes(Xf, slopes if slopes is not None else self.slopes_)
        if S.shape[1]:
            kwargs["group_rand_coef_data_pred"] = S.to_numpy(dtype=float)
        pred = self.booster_.predict(**kwargs)
        return np.asarray(pred["response_mean"], dtype=float).ravel()
