"""GPBoost (tree boosting with grouped random effects) behind mixcv's mixed-model convention.

GPBoost (Sigrist 2022, JMLR 23(115)) fits ``y = F(X) + Z b + e`` with ``F`` a boosted tree
ensemble and ``b`` grouped random effects (intercept and, optionally, slopes), estimating
the covariance parameters along the boosting — the library a researcher would pick instead
of MERF. `GPBoostRegressor` takes groups and random slopes from the experiment like the
other mixed models, so it runs on the same splits, is tuned by Optuna like any model
(its constructor parameters are its hyperparameters) and is reported side by side.

Several grouping factors (``random=``, lme4's syntax) go to GPBoost's 2-D ``group_data``, one
column per factor (crossed, nested through ``a/b`` = ``(1 | b:a) + (1 | a)``, interactions):
a random intercept per factor. GPBoost's grouped random slopes (``group_rand_coef_data``) are
independent of the intercept and of each other, so a slope is taken as lme4 writes an
uncorrelated one, ``(1 + x || g)`` or ``(0 + x | g)``; a correlated block such as
``(1 + x | g)`` is refused before any fit, naming the term (the LMM and MERF fit it).

`GPBoostClassifier` is the same model for a binary outcome: GPBoost's Bernoulli likelihood
(``bernoulli_logit``, or ``bernoulli_probit``), ``P(y = 1) = g^-1(F(X) + Z b)``, the covariance
parameters estimated by GPBoost's Laplace approximation (as lme4's ``glmer`` with nAGQ = 1).
Its probabilities are GPBoost's predictive means of the response, which integrate the inverse
link over the latent predictive distribution ``N(F + mu, v)`` (its ``predict`` with ``pred_latent=False``):

- a row of a group seen in training: ``mu, v`` the posterior mean and variance of the group's
  effect given its training rows (GPBoost's answer, returned as it is);
- a row of a new group (a level not seen in training, every row when ``groups`` is None or
  ``predict_known_groups=False``): ``mu = 0`` and ``v = z' Sigma z``, the estimated random-effect
  variance(s), so ``E g^-1(F + b)`` over ``b ~ N(0, v)`` -- the *marginal* (population-averaged)
  probability, as `GeneralizedLinearMixedModel` gives new groups. Plugging in ``b = 0`` would be
  the probability of a *typical* group instead, further from 0.5 (lme4 #281). gpboost 1.8 returns
  this marginal for an unseen level itself (checked against quadrature in the tests), so the
  adapter hands new levels to GPBoost as unseen codes and does not change its answer.

Needs the optional extra: ``pip install 'mixcv[gpboost]'``. The package is imported
only when a model is fitted, and the engine checks it is installed before any work
(`requires`).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import SpecError, SpecTypeError
from ._base import MixedEffectsRegressor, as_frame
from ._groups import cluster_codes
from .mixed.design import build_remats
from .mixed.estimator import LinearMixedEffectsModel, _factor_labels
from .mixed.terms import Factor, RandomTerm, parse_random

__all__ = ["GPBoostRegressor", "GPBoostClassifier"]

#: Bernoulli likelihoods GPBoostClassifier fits (GPBoost's names).
BINARY_LIKELIHOODS = ("bernoulli_logit", "bernoulli_probit")


def _gpboost() -> Any:
    try:
        import gpboost
    except ImportError:
        raise SpecError("model", "GPBoostRegressor needs the gpboost package: pip install 'mixcv[gpboost]'") from None
    return gpboost



class _GPBoost(MixedEffectsRegressor):
    """What both GPBoost adapters share: the constructor, the layout of the random part onto
    GPBoost's ``group_data``, the fit and the grouping data of the rows to predict."""

    #: Python packages the model needs; the engine checks them before any work.
    requires = ("gpboost",)
    #: GPBoost's likelihood and its booster objective (set by each adapter).
    _objective = "regression_l2"

    def __init__(self, num_boost_round: int = 100, learning_rate: float = 0.1, max_depth: int = 6,
                 min_data_in_leaf: int = 5, num_leaves: int = 31, lambda_l2: float = 0.0,
                 predict_known_groups: bool = True, random_state: int | None = None, n_jobs: int | None = None,
                 params: dict[str, Any] | None = None, random: str | None = None) -> None:
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
        self.random = random

    def _likelihood(self) -> str:
        return "gaussian"

    def _train_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"objective": self._objective, "learning_rate": self.learning_rate,
                             "max_depth": self.max_depth, "min_data_in_leaf": self.min_data_in_leaf,
                             "num_leaves": self.num_leaves, "lambda_l2": self.lambda_l2, "verbose": -1}
        if self.random_state is not None:
            p["seed"] = int(self.random_state)
        if self.n_jobs is not None:
            p["num_threads"] = int(self.n_jobs)
        p.update(self.params or {})
        return p

    def _fit(self, X: Any, yv: np.ndarray, groups: Any, slopes: Any) -> None:
        """Boost ``F`` and estimate the random effects' covariance, GPBoost's way (``yv`` as GPBoost takes it)."""
        name = type(self).__name__
        if groups is None:
            raise SpecError("groups", f"{name} needs groups")
        Xf = as_frame(X).reset_index(drop=True)
        if self.random is None:
            codes, labels = cluster_codes(groups, len(Xf), field="groups")
            S = self._slopes(Xf, slopes)
            group_data = codes
            coef = S.to_numpy(dtype=float) if S.shape[1] else None
            self.layout_: _Layout = _Layout([None], [labels], [0] * S.shape[1], [False])
            names = ["Intercept", *[str(c) for c in S.columns]]
        else:
            if slopes is not None:
                raise SpecError("slopes", "with random=..., the slopes are written in the terms, e.g. "
                                          "'(1 + days || subject)'; pass slopes=None")
            layout, slope_terms = _layout(self.random)
            frame = LinearMixedEffectsModel._frame(Xf, groups, len(yv))
            remats = build_remats([t for f in layout for t in f.terms], frame, field_name="groups")
            by_term = {id(r.term): r for r in remats}
            self.layout_ = _Layout([f.factor for f in layout], [by_term[id(f.terms[0])].levels for f in layout],
                                   [k for k, _ in slope_terms], [f.intercept is None for f in layout])
            group_data = np.column_stack([by_term[id(f.terms[0])].codes for f in layout])
            coef = (np.column_stack([frame[t.columns[0]].to_numpy(dtype=float) for _, t in slope_terms])
                    if slope_terms else None)
            self.coef_columns_ = [t.columns[0] for _, t in slope_terms]
            names = ([f"{f.factor}.Intercept" for f in layout if f.intercept is not None]
                     + [f"{layout[k].factor}.{t.columns[0]}" for k, t in slope_terms])
        likelihood = self._likelihood()
        if likelihood == "gaussian":
            names = ["error", *names]       # only a Gaussian likelihood has an error variance
        gpb = _gpboost()
        model_kwargs: dict[str, Any] = {"group_data": group_data, "likelihood": likelihood}
        if coef is not None:
            model_kwargs.update(group_rand_coef_data=coef,
                                ind_effect_group_rand_coef=[k + 1 for k in self.layout_.coef_factor])
            if any(self.layout_.drop_intercept):
                model_kwargs["drop_intercept_group_rand_effect"] = list(self.layout_.drop_intercept)
        # Said explicitly (also to keep GPBoost from announcing its default on every fit).
        model_kwargs["num_parallel_threads"] = int(self.n_jobs) if self.n_jobs is not None else os.cpu_count() or 1
        self.gp_model_ = gpb.GPModel(**model_kwargs)
        self.gp_model_.set_optim_params(params={"trace": False})
        data = gpb.Dataset(Xf.to_numpy(dtype=float), yv)
        self.booster_ = gpb.train(params=self._train_params(), train_set=data, gp_model=self.gp_model_,
                                  num_boost_round=self.num_boost_round)
        cov = np.asarray(self.gp_model_.get_cov_pars(), dtype=float).ravel()
        self.cov_pars_ = pd.Series(cov, index=names[:len(cov)], name="variance")
        self.labels_ = self.layout_.levels[0]
        self.slopes_ = slopes
        self.n_features_in_ = Xf.shape[1]
        self.feature_names_in_ = np.asarray(Xf.columns, dtype=object)

    def _group_data(self, Xf: pd.DataFrame, groups: Any, slopes: Any) -> dict[str, Any]:
        """GPBoost's grouping data for the rows ``Xf``: a level seen in training keeps its code, any
        other level (every level when ``groups`` is None) a code GPBoost has not seen."""
        n = len(Xf)
        if self.random is None:
            if groups is None:
                pos = np.full(n, -1)
            else:
                values = groups.to_numpy() if isinstance(groups, (pd.Series, pd.Index)) else np.asarray(groups)
                pos = self.labels_.get_indexer(pd.Index(values))
            kwargs: dict[str, Any] = {"group_data_pred": np.where(pos >= 0, pos, len(self.labels_) + 1)}
            S = self._slopes(Xf, slopes if slopes is not None else self.slopes_)
            if S.shape[1]:
                kwargs["group_rand_coef_data_pred"] = S.to_numpy(dtype=float)
            return kwargs
        frame = Xf if groups is None else LinearMixedEffectsModel._frame(Xf, groups, n)
        cols = []
        for factor, levels in zip(self.layout_.factors, self.layout_.levels):
            assert factor is not None
            if groups is None:
                cols.append(np.full(n, len(levels) + 1))
                continue
            missing = [c for c in factor.columns if c not in frame.columns]
            if missing:
                raise SpecError("groups", f"the grouping columns {missing} are not in the rows to predict")
            # A level not seen in training gets a code GPBoost has not seen: zero for that
            # factor, while the row keeps the BLUPs of its other factors.
            pos = levels.get_indexer(_factor_labels(frame, factor))
            cols.append(np.where(pos >= 0, pos, len(levels) + 1))
        kwargs = {"group_data_pred": np.column_stack(cols)}
        if self.coef_columns_:
            missing = [c for c in self.coef_columns_ if c not in frame.columns]
            if missing:
                raise SpecError("X", f"the random-slope columns {missing} are not in the rows to predict")
            kwargs["group_rand_coef_data_pred"] = frame[self.coef_columns_].to_numpy(dtype=float)
        return kwargs


class GPBoostRegressor(_GPBoost):
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
    random : str, optional
        Random-effect terms in lme4's syntax, e.g. ``"(1 | subject) + (1 | item)"`` or
        ``"(1 + days || subject) + (1 | item)"``; ``fit`` then takes ``groups`` as a DataFrame
        of the grouping columns. Intercepts per factor, and slopes uncorrelated with them
        (GPBoost's random coefficients); see the module docstring.

    Attributes
    ----------
    booster_ : gpboost.Booster
    gp_model_ : gpboost.GPModel
    cov_pars_ : pandas.Series
        Estimated covariance parameters: the error variance and one variance per random effect
        (with ``random``: ``"<factor>.Intercept"``, then ``"<factor>.<slope>"``, GPBoost's order).

    Examples
    --------
    >>> from mixcv_core.synthesizer import generate_grouped_regression
    >>> X, y, g, _ = generate_grouped_regression(20, 10, random_seed=0)
    >>> m = GPBoostRegressor(num_boost_round=20).fit(X, y, groups=g)
    >>> m.predict(X.iloc[:3], groups=g.iloc[:3]).shape
    (3,)
    """

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None) -> GPBoostRegressor:
        """Boost ``F`` and estimate the random effects' covariance, GPBoost's way.

        Raises
        ------
        SpecError, SpecTypeError
            Before any fit: ``random`` with a term GPBoost cannot fit (naming it), ``groups``
            without a column the terms need, ``slopes`` given with ``random``.
        """
        self._fit(X, np.asarray(y, dtype=float).ravel(), groups, slopes)
        return self

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """Predict; rows of groups seen in training get their random effects (if enabled)."""
        check_is_fitted(self, "booster_")
        Xf = as_frame(X).reset_index(drop=True)
        data = Xf.to_numpy(dtype=float)
        if groups is None or not self.predict_known_groups:
            # With an identity link the mean over the random effects is the fixed part itself.
            return np.asarray(self.booster_.predict(data=data, ignore_gp_model=True), dtype=float).ravel()
        pred = self.booster_.predict(data=data, **self._group_data(Xf, groups, slopes))
        return np.asarray(pred["response_mean"], dtype=float).ravel()


class GPBoostClassifier(ClassifierMixin, _GPBoost):
    """Tree boosting with grouped random effects for a binary outcome (GPBoost, Bernoulli likelihood).

    ``P(y = 1 | x, group) = g^-1(F(x) + z'b)``, ``g`` the logit (or probit) link, ``F`` a boosted
    tree ensemble and ``b`` grouped random effects, as `GPBoostRegressor` lays them out. Rows
    of groups seen in training get GPBoost's predictive probability given the group's rows;
    rows of new groups the marginal probability over the estimated random-effect variance(s)
    (module docstring).

    Parameters
    ----------
    likelihood : {"bernoulli_logit", "bernoulli_probit"}, default="bernoulli_logit"
        GPBoost's Bernoulli likelihood (its link).
    num_boost_round, learning_rate, max_depth, min_data_in_leaf, num_leaves, lambda_l2, random_state, n_jobs, \
params, random :
        As for `GPBoostRegressor`.
    predict_known_groups : bool, default=True
        False: every row gets the marginal probability over all random effects.

    Attributes
    ----------
    classes_ : ndarray
        The two classes, sorted; the second is the one whose probability is modelled.
    booster_, gp_model_ :
        As for `GPBoostRegressor`.
    cov_pars_ : pandas.Series
        One variance per random effect (no error variance: a Bernoulli outcome has none).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(20), 10)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (rng.random(200) < 1 / (1 + np.exp(-X[:, 0] - rng.normal(size=20)[g]))).astype(int)
    >>> m = GPBoostClassifier(num_boost_round=10, n_jobs=1).fit(X, y, groups=g)
    >>> m.predict_proba(X[:3], groups=g[:3]).shape, m.classes_.tolist()
    ((3, 2), [0, 1])
    """

    _objective = "binary"

    def __init__(self, likelihood: str = "bernoulli_logit", num_boost_round: int = 100, learning_rate: float = 0.1,
                 max_depth: int = 6, min_data_in_leaf: int = 5, num_leaves: int = 31, lambda_l2: float = 0.0,
                 predict_known_groups: bool = True, random_state: int | None = None, n_jobs: int | None = None,
                 params: dict[str, Any] | None = None, random: str | None = None) -> None:
        super().__init__(num_boost_round=num_boost_round, learning_rate=learning_rate, max_depth=max_depth,
                         min_data_in_leaf=min_data_in_leaf, num_leaves=num_leaves, lambda_l2=lambda_l2,
                         predict_known_groups=predict_known_groups, random_state=random_state, n_jobs=n_jobs,
                         params=params, random=random)
        self.likelihood = likelihood

    def _likelihood(self) -> str:
        if self.likelihood not in BINARY_LIKELIHOODS:
            raise SpecError("likelihood", f"GPBoostClassifier fits a Bernoulli likelihood: one of "
                                          f"{', '.join(BINARY_LIKELIHOODS)}, got {self.likelihood!r}")
        return str(self.likelihood)

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None) -> GPBoostClassifier:
        """Boost ``F`` on the Bernoulli likelihood and estimate the random-effect variances (Laplace).

        Raises
        ------
        SpecError, SpecTypeError
            Before any fit: a ``likelihood`` that is not Bernoulli, a target without exactly
            two classes (naming ``y``), and what `GPBoostRegressor.fit` refuses.
        """
        self._likelihood()
        yv = np.asarray(y).ravel()
        classes = np.unique(yv)
        if len(classes) != 2:
            raise SpecError("y", f"GPBoostClassifier models a binary outcome; the target has {len(classes)} "
                                 f"class(es) ({', '.join(map(str, classes[:6]))}). Use a scikit-learn classifier "
                                 "(e.g. LogisticRegression) for several classes")
        self.classes_ = classes
        self._fit(X, (yv == classes[1]).astype(float), groups, slopes)
        return self

    def predict_proba(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """``[P(classes_[0]), P(classes_[1])]`` per row: conditional on the group for groups seen in
        training, marginal over the random effects for new ones (and for all with ``groups=None`` or
        ``predict_known_groups=False``)."""
        check_is_fitted(self, "booster_")
        Xf = as_frame(X).reset_index(drop=True)
        # An unseen level is GPBoost's marginal (see the module docstring): None stands for every row new.
        pred = self.booster_.predict(data=Xf.to_numpy(dtype=float),
                                     **self._group_data(Xf, groups if self.predict_known_groups else None, slopes))
        p = np.asarray(pred["response_mean"], dtype=float).ravel()
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """The more probable class (``classes_[1]`` where its probability is above 0.5)."""
        p = self.predict_proba(X, groups=groups, slopes=slopes)[:, 1]
        return self.classes_[(p > 0.5).astype(int)]


class _Layout(NamedTuple):
    """How the random part maps onto GPBoost: one ``group_data`` column per factor."""

    factors: list[Factor | None]      # per group_data column (None: the one-factor shorthand)
    levels: list[pd.Index]            # training levels per column
    coef_factor: list[int]            # per random coefficient, its group_data column (0-based)
    drop_intercept: list[bool]        # per column: slopes only, no random intercept


class _FactorTerms(NamedTuple):
    factor: Factor
    intercept: RandomTerm | None
    terms: list[RandomTerm]           # the intercept term (if any) first, then the slope terms


def _layout(random: str) -> tuple[list[_FactorTerms], list[tuple[int, RandomTerm]]]:
    """Group the terms by factor, refusing what GPBoost cannot fit (before any data is read)."""
    if not isinstance(random, str):
        raise SpecTypeError("random", f"expected lme4 random-effect terms as text such as "
                                      f"'(1 | subject) + (1 | item)', got {random!r}")
    factors: dict[Factor, tuple[list[RandomTerm], list[RandomTerm]]] = {}
    for t in parse_random(random):
        if len(t.effect_names) > 1:
            raise SpecError("random", f"term {t}: GPBoost's random slopes are independent of the intercept and "
                                      "of each other, so it cannot fit this correlated block; write it with '||' "
                                      f"({str(t).replace(' | ', ' || ')}) for uncorrelated effects, or fit it with "
                                      "LinearMixedEffectsModel or MERF")
        intercepts, slopes = factors.setdefault(t.factor, ([], []))
        (intercepts if t.intercept else slopes).append(t)
    out, slope_terms = [], []
    for factor, (intercepts, slopes) in factors.items():
        if len(intercepts) > 1:
            raise SpecError("random", f"term {intercepts[1]}: the factor {str(factor)!r} has a random intercept "
                                      "twice")
        if len({t.columns[0] for t in slopes}) < len(slopes):
            raise SpecError("random", f"a random slope of {str(factor)!r} is written twice in {random!r}")
        out.append(_FactorTerms(factor, intercepts[0] if intercepts else None, intercepts + slopes))
        slope_terms += [(len(out) - 1, t) for t in slopes]
    return out, slope_terms
