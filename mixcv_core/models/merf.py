"""MERF: mixed effects around any scikit-learn regressor, fitted by EM, vectorised over clusters.

The model (Hajjem, Bellavance & Larocque 2014, eq. 1) is::

    y_i = f(X_i) + Z_i b_i + e_i,    b_i ~ N(0, D),    e_i ~ N(0, sigma^2 I)

for cluster ``i`` with ``n_i`` rows and a ``q``-column random-effects design ``Z_i``.
EM alternates between fitting ``f`` to ``y - Z b`` and updating ``b``, ``D`` and
``sigma^2`` in closed form (the paper's eqs. 6-9, as implemented by the ``merf`` 1.0
package, whose attribute names are kept so code moves over unchanged).

Zero-mean random effects (the default, ``linear_fixed_effects=True``). The model says
``E[b_i] = 0``, and a new cluster is predicted by the fixed part alone. Nothing in the
EM above holds the BLUPs to mean zero when ``f`` is a forest: the random effects absorb
fixed effects (a random slope takes the population slope; a cluster-level covariate
drifts into the random intercepts), and new clusters lose them. So the fixed part gets
a linear component estimated by generalised least squares inside each iteration, as in
a linear mixed model (and in the spirit of Sigrist's GPBoost, JMLR 2022)::

    y_i = W_i beta + f(X_i) + Z_i b_i + e_i,      W_i = [1, X_i]

    1. f     <- base estimator fitted to y - W beta - Z b           (eq. 6, with W beta)
    2. beta  <- (W'V^-1 W)^-1 W'V^-1 (y - f),   V_i = Z_i D Z_i' + sigma^2 I
    3. b_i, sigma^2, D <- eqs. 7-9 on the residual r = y - f - W beta

Step 2's normal equations, ``W'V^-1 (y - f - W beta) = 0``, contain
``sum_i Z_i'V_i^-1 e_i = 0`` for every random effect whose column is in ``W`` (the
intercept and every slope, which are features), and ``b_i = D Z_i'V_i^-1 e_i``: the BLUPs
sum to zero by construction. Steps 2 and 3's ``b`` are one solve of the linear mixed
model's penalised least squares at the current variances (below), and ``V^-1`` never
appears. With a linear base estimator the EM converges to the linear mixed model's
maximum-likelihood fit. ``beta`` starts at OLS, so the forest models what the linear part
leaves; a column of ``W`` collinear with the others (a feature constant in the training
rows) gets no coefficient of its own.

When the EM has converged. A forest step is not an M-step: the GLL may rise, and with
a forest refitted every iteration it need not settle at the 1% level even when the
estimates have (and may creep by 1% while the variance parameters keep climbing). So
``converged`` is judged on what converges, between consecutive iterations, all below
``tol`` for ``gll_early_stop_window`` iterations in a row:

- the variance parameters: ``|d sigma^2| / sigma^2`` and ``|d D_jk| / sqrt(D_jj D_kk)``;
- the BLUPs: the root mean square change of each random effect over clusters, in units of
  its standard deviation ``sqrt(D_jj)``, below ``BLUP_FACTOR * tol`` (a forest refitted on a
  target that moved by a thousandth moves the BLUPs by a few thousandths of an sd at any
  iteration: MathAchieve's 4,800 rows jitter at 0.002-0.004 sd for 200 iterations);
- the GLL (a deviance up to constants) per row, in absolute terms: ``|d GLL| / n``.

The EM stops there (see `DEFAULT_TOL` for how the tolerance was checked against long
runs). Each iteration's changes are kept in ``history_``; the iterations where the GLL
rose are reported in ``stop_reason_`` and ``gll_rises_``, not hidden. The older rule,
"relative GLL change below ``gll_early_stop_threshold``", is kept as an opt-in early stop:
it ends the EM, and the fit is called converged only if the rule above holds too
(otherwise ``stop_reason_`` says "stopped early"). With a forest, EM iterations use a
light forest (``em_estimators`` trees, or a quarter of a forest no larger: `em_trees`) and
the full forest is fitted once at the end, which makes a fit cost little more than a few
fits of the final forest.

Several grouping factors (crossed, nested, partially crossed; slopes; ``||``): the model is
``y = W beta + f(X) + sum_t Z_t b_t + e`` with ``b_tk ~ N(0, D_t)`` independent between terms,
any random part `LinearMixedEffectsModel` takes (`MERFRegressor`'s ``random=``). Hajjem's
updates are per cluster because with one factor ``V`` is block diagonal; with crossed factors
it is not, and no per-cluster formula exists. The EM is the same EM written for the whole
vector of random effects (Laird & Ware 1982; Hajjem's eqs. 7-9 are its one-factor case):

    E-step   at theta = chol(D_t / sigma^2) per term, the PLS of the linear mixed model on the
             partial residual ``r = y - f(X)`` (`mixed.conditional.ConditionalSolver`, the
             blocked Cholesky of `mixed.pls`): GLS ``beta``, conditional modes ``b`` and the
             diagonal blocks of ``M^-1``, ``M = Lambda'Z'Z Lambda + I``;
    M-step   ``D_t = mean over levels k of (b_tk b_tk' + Cov(b_tk | y))`` with
             ``Cov(b_tk | y) = sigma^2 Lambda_t (M^-1)_kk Lambda_t'``, and
             ``sigma^2 = (|r - W beta - Z b|^2 + tr(Z'Z Cov(b | y))) / n`` with
             ``tr(Z'Z Cov(b | y)) = sigma^2 (Q - tr M^-1)`` (``Q`` random effects in all).

With one term these are Hajjem's updates exactly (``Lambda M^-1 Lambda' = D M_i^-1 / sigma^2``
level by level), so one code path serves one factor and many: merf 1.0's updates are still
reproduced to 1e-8 (tests/core/test_merf.py). ``beta`` is a parameter and ``b`` the missing
data, so a fixed point is a maximum of the *ML* likelihood (not REML): with a base estimator
that predicts a constant, MERF's fixed point is lme4's ML fit (tests against lme4 on
Penicillin, Pastes, sleepstudy). The alternative, refitting the LMM to the residual by
optimising its profiled criterion at every iteration, was not taken: each iteration would cost
a full optimisation instead of one PLS solve, and it would stop being an EM (the GLL history,
the convergence rule and merf 1.0's updates would all change meaning).

Why this is fast: the reference implementation builds and pseudo-inverts the dense
``n_i x n_i`` matrix ``V_i = Z_i D Z_i' + sigma^2 I`` for every cluster in a Python loop.
Here ``V^-1`` never appears: the PLS works on ``A = [Z W r]'[Z W r]``, built with sparse
products (no Python loop over levels), and factors ``M`` blockwise, the largest factor's
``q x q`` blocks in one batched Cholesky (with one factor that is all there is). The rows are
touched once per iteration, to form ``A``'s response column; the base estimator's fit
dominates the time.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from ..constraints import Real, check
from ..errors import ConvergenceWarning, SpecError, SpecTypeError
from ._base import MixedEffectsRegressor, as_frame
from ._groups import cluster_codes
from .mixed.conditional import ConditionalSolver
from .mixed.design import ReMat, build_remats
from .mixed.estimator import LinearMixedEffectsModel, _factor_labels
from .mixed.fit import relative_factor
from .mixed.terms import RandomTerm, parse_random

__all__ = ["MERF", "MERFRegressor"]


#: The tolerance of the convergence rule (module docstring): variance parameters changing
#: by less than 0.1% (relative), BLUPs by less than 0.01 of their sd, and the GLL by less
#: than 0.001 per row, for `DEFAULT_WINDOW` iterations in a row. Checked against 200-iteration
#: runs (tests/benchmarks/bench_merf_convergence.py, figures in its docstring): on Oxboys,
#: BodyWeight, sleepstudy and MathAchieve (two folds each) every fit it calls converged (at
#: iterations 5-10) ends within 1% of the long run's sigma^2 and D (at most 0.56%), its BLUPs
#: within 0.05 sd in root mean square (at most 0.021) and each within 0.3 of its own standard
#: error (at most 0.29, MathAchieve, whose BLUPs jitter at that level for all 200 iterations).
#: The 1% GLL rule stopped at iterations 3-5, up to 6.7% from the long run's D. With a row
#: number among the features (BodyWeight, Oxboys), D keeps climbing for 200 iterations and the
#: rule never calls the fit converged.
DEFAULT_TOL = 1e-3
DEFAULT_WINDOW = 2
#: The BLUPs' tolerance is this multiple of ``tol`` (module docstring: the forest's jitter).
BLUP_FACTOR = 10
#: A forest no larger than ``em_estimators`` iterates with this share of its trees (rounded up;
#: `em_trees`). It used to iterate whole: a tuned 20-tree forest cost MERF twenty full fits (the
#: largest item of bench_vs_flexcv's 100 x 100 experiment), now twenty fits of 5 trees and the
#: full forest once. Checked on that experiment's five folds (test R² 0.8700 with full forests,
#: 0.8697 with 5 trees, 0.8699 with 10, at 30 % of the CPU) and on MathAchieve and ChickWeight
#: (bench_merf_vs_gpboost's splits, 20 trees: test RMSE within 0.4 % and 1 %, either way).
#: Larger forests keep ``em_estimators`` trees, the setting `DEFAULT_TOL` was checked with.
EM_TREE_SHARE = 0.25
#: Fewer trees than this average too little for the EM to track ``f``: a forest whose share is
#: smaller iterates whole.
MIN_EM_TREES = 5
#: ``tol``: MERF's own parameter (the engine uses the default), so not a spec rule.
_TOL_RULE = Real(0.0, None, closed="neither", none=True)
#: A variance parameter below this share of sigma^2 counts as zero when changes are scaled
#: by it (an EM approaching the boundary halves it forever; it is settled for prediction).
_VARIANCE_FLOOR = 1e-6


@dataclass(frozen=True)
class _EMTerm:
    """One random-effect term as the EM sees it."""

    name: str                   # lme4's name of the term (unique), or "group" for merf 1.0's call
    factor: str                 # its grouping factor (terms of one factor are shown side by side)
    codes: np.ndarray           # (n,) each row's level
    levels: pd.Index            # level labels
    Z: np.ndarray               # (n, q) raw columns
    effect_names: list[str]
    term: RandomTerm | None     # None for merf 1.0's call (Z given as a matrix)


@dataclass(frozen=True)
class _Changes:
    """How much one EM iteration moved the estimates: what `MERF` judges convergence on.

    ``variance``: largest relative change of sigma^2 and of each entry of each D_t (scaled by
    ``sqrt(D_jj D_kk)`` of the earlier iterate, floored at a tiny share of sigma^2);
    ``blup``: largest, over every term's random effects, root mean square change over levels
    in units of the effect's standard deviation; ``deviance``: ``(gll - gll_old) / n``, signed
    (positive when the GLL rose); ``per_term``: each term's (variance, blup) changes, and
    ``sigma2`` the residual variance's.
    """

    variance: float
    blup: float
    deviance: float
    sigma2: float
    per_term: dict[str, tuple[float, float]]

    @classmethod
    def none(cls, terms: list[_EMTerm]) -> _Changes:
        return cls(np.nan, np.nan, np.nan, np.nan, {t.name: (np.nan, np.nan) for t in terms})

    @classmethod
    def between(cls, terms: list[_EMTerm], sigma2_old: float, Ds_old: list[np.ndarray], bs_old: list[np.ndarray],
                gll_old: float, sigma2: float, Ds: list[np.ndarray], bs: list[np.ndarray], gll: float,
                n: int) -> _Changes:
        floor = _VARIANCE_FLOOR * sigma2_old
        per_term = {}
        for t, D_old, D, b_old, b in zip(terms, Ds_old, Ds, bs_old, bs):
            sd = np.sqrt(np.maximum(np.diag(D_old), floor))
            var = float(np.max(np.abs(D - D_old) / np.outer(sd, sd)))
            blup = float(np.max(np.sqrt(np.mean((b - b_old) ** 2, axis=0)) / sd)) if len(b) else 0.0
            per_term[t.name] = (var, blup)
        s2 = abs(sigma2 - sigma2_old) / sigma2_old
        return cls(max(s2, *(v for v, _ in per_term.values())), max(b for _, b in per_term.values()),
                   (gll - gll_old) / n, s2, per_term)

    def within(self, tol: float) -> bool:
        return max(self.variance, abs(self.deviance), self.blup / BLUP_FACTOR) < tol

    def table(self, tol: float) -> pd.DataFrame:
        """Each term's last changes and whether they are within the rule, and the residual's."""
        rows = {name: {"variance_change": v, "blup_change": b,
                       "settled": bool(v < tol and b / BLUP_FACTOR < tol)} for name, (v, b) in self.per_term.items()}
        rows["residual"] = {"variance_change": self.sigma2, "blup_change": np.nan, "settled": bool(self.sigma2 < tol)}
        return pd.DataFrame.from_dict(rows, orient="index")


def _target(y: Any, n: int) -> np.ndarray:
    yv = np.asarray(y, dtype=float)
    if yv.ndim == 2 and yv.shape[1] == 1:
        yv = yv[:, 0]
    if yv.ndim != 1 or len(yv) != n:
        raise SpecError("y", f"expected {n} target values in one column, got shape {yv.shape}")
    if not np.isfinite(yv).all():
        raise SpecError("y", "contains NaN or infinite values")
    return yv


def _weights(sample_weight: Any, n: int) -> np.ndarray | None:
    """Precision weights, checked: n finite values >= 0, not all zero (None: unweighted)."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=float).ravel()
    except (TypeError, ValueError):
        raise SpecTypeError("sample_weight", "expected numbers, one per row") from None
    if len(w) != n:
        raise SpecError("sample_weight", f"expected {n} weights (one per row), got {len(w)}")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise SpecError("sample_weight", "weights must be finite and >= 0, with at least one above 0")
    return w


def _unseen_variance(Z: np.ndarray, pos: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``z' D z`` for rows whose level was not seen (``pos == -1``), 0 for the others."""
    out = np.zeros(len(Z))
    new = pos < 0
    out[new] = np.einsum("ij,jk,ik->i", Z[new], D, Z[new])
    return out


def _independent_columns(W: np.ndarray) -> np.ndarray:
    """Columns of ``W`` that are linearly independent (QR with pivoting), in their order.

    A feature constant in the training rows (or collinear with others) has no coefficient of
    its own; R's ``lm`` reports it as NA, here it gets zero and the others carry the fit.
    """
    from scipy.linalg import qr
    _, R, piv = qr(W, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int(np.sum(d > d.max() * max(W.shape) * np.finfo(float).eps)) if len(d) else 0
    return np.sort(piv[:rank])


def _random_part(terms: list[_EMTerm], b: list[np.ndarray]) -> np.ndarray:
    """``sum_t Z_t b_t`` row by row."""
    out = np.zeros(len(terms[0].codes))
    for t, bt in zip(terms, b):
        out += np.einsum("nj,nj->n", t.Z, bt[t.codes])
    return out


def _block_diag(blocks: list[np.ndarray]) -> np.ndarray:
    """The covariance of every random effect, terms side by side (one term: its own D)."""
    if len(blocks) == 1:
        return blocks[0].copy()
    from scipy.linalg import block_diag
    return np.asarray(block_diag(*blocks), dtype=float)


def _linear_design(X: Any, n: int) -> np.ndarray:
    """``W = [1, X]`` for the linear fixed part (numeric X only)."""
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise SpecTypeError("X", "the linear fixed part needs numeric features; encode categories first "
                                 "(e.g. pandas.get_dummies) or pass linear_fixed_effects=False") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if not np.isfinite(arr).all():
        raise SpecError("X", "contains NaN or infinite values (the linear fixed part needs finite features)")
    return np.column_stack([np.ones(n), arr])


def _feature_names(X: Any, p: int) -> list[str]:
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{j}" for j in range(p)]


def _as_2d_numeric(Z: Any, n: int, field: str) -> np.ndarray:
    if isinstance(Z, pd.Series):
        Z = Z.to_frame()
    if isinstance(Z, pd.DataFrame):
        bad = [c for c in Z.columns if not pd.api.types.is_numeric_dtype(Z[c])]
        if bad:
            raise SpecTypeError(field, f"must be numeric; columns {bad} are not")
    try:
        arr = np.asarray(Z, dtype=float)
    except (TypeError, ValueError):
        raise SpecTypeError(field, f"must be numeric, got values of type {np.asarray(Z).dtype}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise SpecError(field, f"expected a 2-D array (rows x random effects), got shape {arr.shape}")
    if len(arr) != n:
        raise SpecError(field, f"has {len(arr)} rows but X has {n}")
    if arr.shape[1] == 0:
        raise SpecError(field, "needs at least one column (a column of ones for a random intercept)")
    if not np.isfinite(arr).all():
        raise SpecError(field, "contains NaN or infinite values")
    return arr


def em_trees(trees: Any, em_estimators: int | None) -> int | None:
    """How many trees the EM iterates with for a forest of ``trees``, or None for the whole forest.

    ``em_estimators`` for a forest with more trees; a smaller forest's share (`EM_TREE_SHARE`,
    rounded up) when that is at least `MIN_EM_TREES`. None (iterate with the whole forest) when
    the share is smaller, when ``trees`` is not a count (a model without ``n_estimators``), or
    with ``em_estimators=None``.

    >>> em_trees(300, 50), em_trees(50, 50), em_trees(20, 50), em_trees(16, 50), em_trees(20, None)
    (50, 13, 5, None, None)
    """
    if em_estimators is None or isinstance(trees, bool) or not isinstance(trees, int):
        return None
    if trees > em_estimators:
        return em_estimators
    light = math.ceil(trees * EM_TREE_SHARE)
    return light if light >= MIN_EM_TREES else None


def em_fits(trees: Any, em_estimators: int | None, max_iterations: int, linear: bool = True) -> float:
    """What a MERF fit costs at most, in fits of its whole base model (a scheduler's estimate).

    ``max_iterations`` of them; with a light forest (`em_trees`, the linear part only) as many
    light ones, each ``light / trees`` of a whole one, and the whole forest once.

    >>> em_fits(20, 50, 20), em_fits(300, 50, 20), em_fits(None, 50, 20), em_fits(20, 50, 20, linear=False)
    (6.0, 4.333333333333334, 20.0, 20.0)
    """
    light = em_trees(trees, em_estimators) if linear else None
    return float(max_iterations) if light is None else max_iterations * light / trees + 1.0


def _predict_exactly(model: Any, X: Any) -> np.ndarray:
    """``model.predict(X)`` in one thread.

    A forest predicting in several threads adds its trees' predictions in whatever order
    the threads finish, so the last bits of the sum (and everything the EM builds on it)
    would change from run to run; fitting in threads is exact, so only the fit gets them.
    """
    from joblib import parallel_config
    with parallel_config(n_jobs=1):
        return np.asarray(model.predict(X), dtype=float).ravel()


class MERF(BaseEstimator):
    """Mixed Effects Random Forest — or mixed effects around any regressor — fitted by EM.

    Parameters
    ----------
    fixed_effects_model : regressor, optional
        The model of ``f``; a fresh clone is fitted (the object passed in is never
        changed). Default: ``RandomForestRegressor(n_estimators=300)``.
    max_iterations : int, default=100
        EM iterations at most (>= 1); a fit that reaches it before the convergence rule
        holds is not converged.
    gll_early_stop_threshold : float or None, default=None
        An early stop: end the EM once the relative change of the generalised
        log-likelihood (GLL) between iterations is below this (relative to
        ``max(|GLL|, n)``)... The fit counts as converged only if the convergence rule
        holds too. None: no early stop.
    gll_early_stop_window : int, default=2
        ...for this many consecutive iterations; the convergence rule must hold for as many.
    callback : callable, optional
        Called after every iteration with a dict ``{"iteration", "gll", "sigma2", "D"}``,
        e.g. to plot convergence live.
    linear_fixed_effects : bool, default=True
        Estimate a linear fixed part by GLS inside the EM (zero-mean random effects; see
        the module docstring). False is merf 1.0's algorithm, update for update.
    em_estimators : int or None, default=50
        With a forest base estimator (anything with ``n_estimators``) and the linear part:
        trees during EM (a forest no larger: a quarter of its trees, if that is at least 5;
        `em_trees`); the full estimator is fitted once at the end. None: the full estimator
        at every iteration.
    tol : float or None, default=1e-3
        The convergence rule's tolerance (module docstring): stop when the variance
        parameters, the BLUPs and the GLL per row have settled. None: run every
        iteration; convergence is still judged, at `DEFAULT_TOL`, over the last ones.

    Attributes
    ----------
    trained_fe_model : regressor
        The fitted fixed-effects model.
    trained_b : pandas.DataFrame
        Random effects per cluster (index: cluster label; one column per Z column).
    gll_history : list of float
        GLL after each iteration.
    sigma2_hat_history, D_hat_history, b_hat_history : list
        Residual variance, random-effects covariance and random effects, starting with
        the initial values (so one entry longer than ``gll_history``, as in merf 1.0).
    val_loss_history : list of float
        Validation MSE per iteration when validation data were given to ``fit``.
    history_ : pandas.DataFrame
        One row per iteration: ``iteration``, ``gll``, ``sigma2``, ``D`` entries, the
        changes the convergence rule reads (``variance_change``, ``blup_change``,
        ``deviance_change`` per row; NaN in the first iteration), ``fe_time`` and
        ``em_time`` (seconds in the base estimator and in the EM steps).
    n_iter_ : int
    stop_reason_ : str
        How the EM ended: converged, stopped early, or out of iterations, and where the
        GLL rose.
    gll_rises_ : list of (int, float)
        Iterations where the GLL rose by more than ``tol`` per row, with the rise.
    fe_linear_ : pandas.Series or None
        The linear fixed part's coefficients (``Intercept`` and one per feature), or None
        with ``linear_fixed_effects=False``.
    converged_ : bool
        True when the convergence rule held at the end of the EM: not when it stopped
        early, nor when ``max_iterations`` ran out first.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> clusters = np.repeat(np.arange(20), 10)
    >>> X = rng.normal(size=(200, 2))
    >>> y = X @ [1.0, -2.0] + rng.normal(0, 2, 20)[clusters] + rng.normal(0, 0.1, 200)
    >>> m = MERF(LinearRegression(), max_iterations=30).fit(X, np.ones((200, 1)), clusters, y)
    >>> bool(m.sigma2_hat_history[-1] < 0.05)
    True
    """

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 100,
                 gll_early_stop_threshold: float | None = None,
                 gll_early_stop_window: int = DEFAULT_WINDOW,
                 callback: Callable[[dict[str, Any]], None] | None = None, linear_fixed_effects: bool = True,
                 em_estimators: int | None = 50, tol: float | None = DEFAULT_TOL) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback
        self.linear_fixed_effects = linear_fixed_effects
        self.em_estimators = em_estimators
        self.tol = tol

    def _check_params(self) -> None:
        # The same rules as the engine's MERF settings (merf.max_iterations...), so a
        # value the spec refuses is refused here too, and the other way round.
        check("merf.max_iterations", self.max_iterations, "max_iterations")
        check("merf.stopping_threshold", self.gll_early_stop_threshold, "gll_early_stop_threshold")
        if self.gll_early_stop_window is None:
            raise SpecTypeError("gll_early_stop_window", "expected an integer >= 1, got None")
        check("merf.stopping_window", self.gll_early_stop_window, "gll_early_stop_window")
        check("merf.linear_fixed_effects", self.linear_fixed_effects, "linear_fixed_effects")
        check("merf.em_estimators", self.em_estimators, "em_estimators")
        _TOL_RULE.check(self.tol, "tol")
        fe = self.fixed_effects_model
        if fe is not None and not all(callable(getattr(fe, m, None)) for m in ("fit", "predict")):
            raise SpecTypeError("fixed_effects_model",
                                f"expected a regressor instance with fit and predict, got {fe!r}")

    def fit(self, X: Any, Z: Any, clusters: Any, y: Any, X_val: Any = None, Z_val: Any = None,
            clusters_val: Any = None, y_val: Any = None, sample_weight: Any = None,
            start: MERF | None = None) -> MERF:
        """Fit by EM, with one grouping factor (merf 1.0's call).

        Parameters
        ----------
        X : array-like or DataFrame, shape (n, p)
            Fixed-effects features, passed to the base estimator as given.
        Z : array-like, shape (n, q)
            Random-effects design (a column of ones for a random intercept, plus slopes).
        clusters : array-like of hashable, shape (n,)
            Cluster label per row.
        y : array-like, shape (n,)
        X_val, Z_val, clusters_val, y_val : optional
            Validation data; its MSE per iteration goes to ``val_loss_history``.
        sample_weight : array-like, shape (n,), optional
            Precision weights: row ``i``'s error has variance ``sigma^2 / w_i`` (see `fit_terms`).
        start : MERF, optional
            A fit on the same clusters whose estimates start the EM (see `fit_terms`).

        Raises
        ------
        SpecError, SpecTypeError
            Naming ``Z``, ``clusters``, ``y`` or a parameter, before any fitting.
        """
        self._check_params()
        n = len(X)
        Zm = _as_2d_numeric(Z, n, "Z")
        codes, labels = cluster_codes(clusters, n)
        yv = _target(y, n)
        weights = _weights(sample_weight, n)
        validate = None
        if X_val is not None:
            if y_val is None or Z_val is None or clusters_val is None:
                raise SpecError("X_val", "validation needs X_val, Z_val, clusters_val and y_val together")
            y_val = np.asarray(y_val, dtype=float).ravel()

            def validate() -> float:
                return float(np.mean((y_val - self.predict(X_val, Z_val, clusters_val)) ** 2))
        term = _EMTerm("group", "group", codes, labels, Zm, [f"{j}" for j in range(Zm.shape[1])], None)
        return self._em(X, yv, [term], validate, weights, start)

    def fit_terms(self, X: Any, y: Any, remats: Sequence[ReMat], sample_weight: Any = None,
                  start: MERF | None = None) -> MERF:
        """Fit by EM with any random-effect terms, realised on the data (`mixed.design.build_remats`).

        Crossed, nested and partially crossed factors, slopes, ``||``: whatever the linear
        mixed model takes (see the module docstring for the algebra).

        ``sample_weight``: precision weights, ``e_i ~ N(0, sigma^2 / w_i)`` (nlme's
        ``varFixed(~1/w)``): the base estimator gets them as its ``sample_weight`` when its
        ``fit`` takes one (``weighted_base_`` says whether it did), and the GLS/conditional
        step is the unweighted one on rows scaled by ``sqrt(w)`` (``sqrt(w) r = sqrt(w) W beta
        + sqrt(w) Z b + N(0, sigma^2)``). Binary MERF's working responses come this way
        (`merf_binary`). ``start``: a MERF fitted on the same terms, whose random effects,
        covariances and residual variance start the EM (binary MERF's outer loop, where the
        working response moves little between calls).
        """
        self._check_params()
        yv = _target(y, len(X))
        weights = _weights(sample_weight, len(yv))
        if remats and len(remats[0].codes) != len(yv):
            raise SpecError("groups", f"the random-effect terms have {len(remats[0].codes)} rows but y has {len(yv)}")
        terms = [_EMTerm(r.name, r.factor_name, r.codes, r.levels, r.Z, list(r.effect_names), r.term)
                 for r in remats]
        return self._em(X, yv, terms, None, weights, start)

    def _em(self, X: Any, yv: np.ndarray, terms: list[_EMTerm], validate: Callable[[], float] | None,
            weights: np.ndarray | None = None, start: MERF | None = None) -> MERF:
        n = len(yv)
        # Precision weights enter the algebra as rows scaled by sqrt(w) (`fit_terms`); 1 without.
        root = np.ones(n) if weights is None else np.sqrt(weights)
        from sklearn.ensemble import RandomForestRegressor
        base = self.fixed_effects_model
        if base is None:
            base = RandomForestRegressor(n_estimators=300)
        fe = clone(base)
        # Cheaper early iterations: during EM, f only has to track a slowly moving target,
        # so a forest with fewer trees does; the full estimator is fitted once at the end.
        small = em_trees(fe.get_params().get("n_estimators"), self.em_estimators) if self.linear_fixed_effects else None
        light = small is not None
        fe_em = clone(fe).set_params(n_estimators=small) if light else fe
        self.weighted_base_ = weights is not None and has_fit_parameter(fe, "sample_weight")
        fit_kw = {"sample_weight": weights} if self.weighted_base_ else {}

        if self.linear_fixed_effects:
            W = _linear_design(X, n)
            keep = _independent_columns(W)
            Wk = W[:, keep]
            beta_k = np.linalg.lstsq(Wk * root[:, None], yv * root, rcond=None)[0]   # start: (weighted) OLS
            lin = Wk @ beta_k
        else:
            W, keep, Wk, beta_k, lin = np.empty((n, 0)), np.zeros(0, dtype=int), np.empty((n, 0)), np.zeros(0), 0.0
        # Built before any fit: it refuses terms too big for the algebra (naming them) up front.
        solver = ConditionalSolver(Wk * root[:, None], [t.codes for t in terms], [t.Z * root[:, None] for t in terms],
                                   [len(t.levels) for t in terms])
        several = len(terms) > 1

        b = [np.zeros((len(t.levels), t.Z.shape[1])) for t in terms]
        sigma2 = 1.0
        Ds = [np.eye(t.Z.shape[1]) for t in terms]
        if start is not None:
            # Same terms, same levels (binary MERF refits on the same training rows): its estimates.
            earlier: Any = start      # a fitted MERF: its attributes are set by fit
            b = [np.array(bt) for _, bt in earlier._fitted]
            Ds = [earlier.covs_[t.name].to_numpy() for t in terms]
            sigma2 = float(earlier.sigma2_hat_history[-1])
        self.terms_ = [t.name for t in terms]
        self.b_hat_history: list[Any] = [self._per_term(terms, b)]
        self.sigma2_hat_history = [sigma2]
        self.D_hat_history = [_block_diag(Ds)]
        self.gll_history: list[float] = []
        self.val_loss_history: list[float] = []
        rows: list[dict[str, Any]] = []
        threshold = self.gll_early_stop_threshold
        window = self.gll_early_stop_window
        tol = self.tol if self.tol is not None else DEFAULT_TOL
        self.converged_ = False
        self.gll_rises_: list[tuple[int, float]] = []
        settled = below = 0          # consecutive iterations within tol / below the GLL threshold
        changes = _Changes.none(terms)
        ended = ""                   # "converged", "early" or "" (out of iterations)
        final = False
        em_iterations = 0
        Ds_prev, b_prev, sigma2_prev, gll_prev = Ds, b, sigma2, np.nan

        for iteration in range(1, self.max_iterations + 2):
            if iteration > self.max_iterations:
                if not light:
                    break
                final = True   # one more iteration with the full estimator
            model = fe if (final or not light) else fe_em
            t0 = time.perf_counter()
            # E-step (Hajjem et al. eq. 6): remove the current random (and linear) part from y.
            y_star = yv - lin - _random_part(terms, b)
            t1 = time.perf_counter()
            model.fit(X, y_star, **fit_kw)
            f_hat = _predict_exactly(model, X)
            t2 = time.perf_counter()

            # GLS fixed part and conditional modes of every term at the previous sigma2 and D
            # (eqs. 7 and step 2 of the module docstring): one PLS solve at theta = chol(D / sigma2).
            r = yv - f_hat
            cond = solver.solve(r * root, [relative_factor(D / sigma2) for D in Ds])
            if self.linear_fixed_effects:
                beta_k = cond.beta
                lin = Wk @ beta_k
            b = cond.b
            eps = (r - lin - _random_part(terms, b)) * root
            # M-step (eqs. 8-9, for any number of terms): E[e'e | y] = e'e + tr(Z'Z Cov(b | y)),
            # and tr(Z'Z Cov(b | y)) = sigma^2 (Q - tr M^-1); E[b_tk b_tk' | y] = b b' + Cov.
            sigma2_new = (eps @ eps + sigma2 * (cond.n_effects - cond.trace_minv)) / n
            Ds_new = []
            for bt, cov in zip(b, cond.cov):
                Dt = (bt.T @ bt + sigma2 * cov.sum(axis=0)) / len(bt)
                Ds_new.append((Dt + Dt.T) / 2)   # symmetric up to rounding; keep it exactly so
            sigma2, Ds = float(sigma2_new), Ds_new

            # Generalised log-likelihood (the quantity merf 1.0 reports), with the new values.
            gll = float(eps @ eps / sigma2 + n * np.log(sigma2))
            for bt, Dt in zip(b, Ds):
                gll += float(np.einsum("ij,jk,ik->", bt, np.linalg.pinv(Dt), bt) + len(bt) * np.linalg.slogdet(Dt)[1])
            t3 = time.perf_counter()

            if iteration > 1 and not final:
                changes = _Changes.between(terms, sigma2_prev, Ds_prev, b_prev, gll_prev, sigma2, Ds, b, gll, n)
            Ds_prev, b_prev, sigma2_prev, gll_prev = Ds, b, sigma2, gll
            self.b_hat_history.append(self._per_term(terms, b))
            self.sigma2_hat_history.append(sigma2)
            D_all = _block_diag(Ds)
            self.D_hat_history.append(D_all)
            self.gll_history.append(gll)
            self.trained_fe_model = model
            self.trained_b = self._per_term(terms, b)
            if self.linear_fixed_effects:
                beta = np.zeros(W.shape[1])
                beta[keep] = beta_k
                self.fe_linear_: pd.Series | None = pd.Series(
                    beta, index=["Intercept", *_feature_names(X, W.shape[1] - 1)], name="fe_linear")
            else:
                self.fe_linear_ = None
            self.n_iter_ = iteration
            if validate is not None:
                self.val_loss_history.append(validate())
            row: dict[str, Any] = {"iteration": iteration, "gll": gll, "sigma2": sigma2}
            for t, Dt in zip(terms, Ds):
                at = f"[{t.name}]" if several else ""
                row.update({f"D{at}[{j},{k}]": Dt[j, k] for j in range(len(Dt)) for k in range(j + 1)})
            if not final:
                row.update(variance_change=changes.variance, blup_change=changes.blup,
                           deviance_change=changes.deviance)
                if several:
                    for name, (var_t, blup_t) in changes.per_term.items():
                        row[f"variance_change[{name}]"] = var_t
                        row[f"blup_change[{name}]"] = blup_t
            row.update(fe_time=t2 - t1, em_time=(t1 - t0) + (t3 - t2), full_forest=model is fe)
            rows.append(row)
            if self.callback is not None:
                self.callback({"iteration": iteration, "gll": gll, "sigma2": sigma2, "D": D_all.copy()})
            if final:
                break
            em_iterations = iteration
            if iteration == 1:
                continue
            if changes.deviance > tol:
                # Not an M-step: the forest fits y - Zb by its own criterion, not the likelihood.
                self.gll_rises_.append((iteration, changes.deviance * n))
            settled = settled + 1 if changes.within(tol) else 0
            self.converged_ = settled >= window
            if self.converged_ and self.tol is not None:
                ended = "converged"
            elif threshold is not None:
                # Relative to the GLL, or to the number of rows where the GLL is near zero:
                # it is a sum over rows (a deviance up to constants) and can cross zero.
                prev = self.gll_history[-2]
                below = below + 1 if abs(gll - prev) / max(abs(prev), n) < threshold else 0
                if below >= window:
                    ended = "early"
            if ended:
                if not light:
                    break
                final = True    # one more iteration with the full estimator
        # What prediction needs of each term: its levels and BLUPs, not the training rows (a
        # fitted model is kept per fold, and travels between processes).
        self._fitted = [(replace(t, codes=np.zeros(0, dtype=np.int64), Z=np.zeros((0, t.Z.shape[1]))), np.array(bt))
                        for t, bt in zip(terms, b)]
        self.convergence_by_term_ = changes.table(tol)
        self.stop_reason_ = self._stop_reason(ended, em_iterations, changes, tol, window, threshold)
        self.history_ = pd.DataFrame(rows)
        # How sure each level's random effects are (the interval of a random effect): the
        # conditional sd at the final variance estimates (lme4's condVar), one more PLS solve.
        final_cov = solver.solve((yv - f_hat) * root, [relative_factor(D / sigma2) for D in Ds]).cov
        self.b_sd_ = self._per_term(terms, [np.sqrt(np.clip(sigma2 * np.einsum("kii->ki", c), 0.0, None))
                                            for c in final_cov])
        self.covs_ = {t.name: pd.DataFrame(Dt, index=t.effect_names, columns=t.effect_names)
                      for t, Dt in zip(terms, Ds)}
        counts = [pd.Series(np.bincount(t.codes, minlength=len(t.levels)), index=t.levels) for t in terms]
        self.cluster_counts = counts[0] if not several else {t.name: c for t, c in zip(terms, counts)}
        self.n_features_in_ = np.asarray(X).shape[1] if np.asarray(X).ndim == 2 else 1
        return self

    @staticmethod
    def _per_term(terms: list[_EMTerm], values: list[np.ndarray]) -> Any:
        """One term: a DataFrame by level (merf 1.0's form); several: a dict of them by term name."""
        frames = {t.name: pd.DataFrame(np.array(v), index=t.levels, columns=None if t.term is None else t.effect_names)
                  for t, v in zip(terms, values)}
        return next(iter(frames.values())) if len(frames) == 1 else frames

    def _stop_reason(self, ended: str, at: int, changes: _Changes, tol: float, window: int,
                     threshold: float | None) -> str:
        """The sentence that says how the EM ended, for the fold table and the warning."""
        last = (f"the last iteration changed the variance parameters by {changes.variance:.2%}, the BLUPs by "
                f"{changes.blup:.3g} sd and the GLL by {abs(changes.deviance):.3g} per row")
        if len(changes.per_term) > 1:
            # Which term is still moving, when several are fitted (convergence_by_term_ has them all).
            last += " (" + "; ".join(f"{name}: variances {v:.2%}, BLUPs {b:.3g} sd"
                                     for name, (v, b) in changes.per_term.items()) + \
                f"; residual variance {changes.sigma2:.2%})"
        if self.converged_:
            reason = (f"converged at iteration {at}: the variance parameters changed by less than {tol:.2g} "
                      f"(relative), the BLUPs by less than {BLUP_FACTOR * tol:.2g} sd and the GLL by less than "
                      f"{tol:.2g} per row, for {window} iteration(s)")
        elif ended == "early":
            reason = (f"stopped early at iteration {at} (relative GLL change < {threshold:g} for {window} "
                      f"iteration(s)), before the EM converged: {last}")
        elif self.max_iterations == 1:
            reason = "reached max_iterations=1: one iteration cannot show convergence"
        else:
            reason = f"reached max_iterations={self.max_iterations} before the EM converged: {last}"
        if self.gll_rises_:
            worst = max(self.gll_rises_, key=lambda r: r[1])
            reason += (f"; the GLL rose in {len(self.gll_rises_)} iteration(s) (most: +{worst[1]:.3g} at iteration "
                       f"{worst[0]}; a forest step is not an M-step, so the EM need not be monotone)")
        return reason

    def predict(self, X: Any, Z: Any, clusters: Any) -> np.ndarray:
        """Fixed effects plus, for clusters seen in training, their random effects.

        Rows of clusters unseen in training get the fixed-effects prediction alone.
        """
        return self._known(X, Z, clusters)[0]

    def predict_parts(self, X: Any, Z: Any, clusters: Any) -> tuple[np.ndarray, np.ndarray]:
        """`predict`, and per row the variance ``z' D z`` of the random part it left out (a cluster
        unseen in training; 0 for a known one): what a marginal mean over new clusters needs."""
        y_hat, Zm, pos = self._known(X, Z, clusters)
        (D,) = self.covs_.values()
        return y_hat, _unseen_variance(Zm, pos, D.to_numpy())

    def _known(self, X: Any, Z: Any, clusters: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict` (during the EM too, for validation rows), the rows' Z and their clusters' positions."""
        check_is_fitted(self, "trained_fe_model")
        if isinstance(self.trained_b, dict):
            raise SpecError("clusters", f"the model was fitted with several random-effect terms {self.terms_}; "
                                        "predict with predict_terms(X, frame)")
        n = len(X)
        Zm = _as_2d_numeric(Z, n, "Z")
        if Zm.shape[1] != self.trained_b.shape[1]:
            raise SpecError("Z", f"has {Zm.shape[1]} columns but the model was fitted with {self.trained_b.shape[1]}")
        values = clusters.to_numpy() if isinstance(clusters, (pd.Series, pd.Index)) else np.asarray(clusters)
        if len(values) != n:
            raise SpecError("clusters", f"has {len(values)} labels but X has {n} rows")
        y_hat = self.predict_fixed(X)
        pos = self.trained_b.index.get_indexer(pd.Index(values))
        B = np.vstack([self.trained_b.to_numpy(), np.zeros((1, Zm.shape[1]))])  # row -1: unseen
        return y_hat + np.einsum("nj,nj->n", Zm, B[pos]), Zm, pos

    def predict_terms(self, X: Any, frame: pd.DataFrame) -> np.ndarray:
        """Fixed part plus, for every term fitted by `fit_terms`, the BLUPs of the row's level if it was seen.

        A level not seen in training contributes zero for its term (its random effect's
        mean); the row keeps the BLUPs of its other, known factors. ``frame`` holds the
        grouping and slope columns the terms name, one row per row of ``X``.
        """
        return self.predict_terms_parts(X, frame)[0]

    def predict_terms_parts(self, X: Any, frame: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """`predict_terms`, and per row the variance of the random part it left out: ``z_t' D_t z_t``
        summed over the terms whose level the row's was not seen in training. ``frame`` None: no
        level is known (every term left out; its slope columns are looked up in ``X``)."""
        check_is_fitted(self, "trained_fe_model")
        out = self.predict_fixed(X)
        s2 = np.zeros(len(out))
        source = as_frame(X).reset_index(drop=True) if frame is None else frame
        for t, b in self._fitted:
            assert t.term is not None, "fitted by fit(X, Z, clusters, y): predict with predict(X, Z, clusters)"
            cols = [np.ones(len(source))] if t.term.intercept else []
            cols += [source[c].to_numpy(dtype=float) for c in t.term.columns]
            Zt = np.column_stack(cols)
            pos = (np.full(len(source), -1) if frame is None
                   else t.levels.get_indexer(_factor_labels(frame, t.term.factor)))
            B = np.vstack([b, np.zeros((1, b.shape[1]))])      # row -1: a level not seen in training
            out += np.einsum("nj,nj->n", Zt, B[pos])
            s2 += _unseen_variance(Zt, pos, self.covs_[t.name].to_numpy())
        return out, s2

    def predict_fixed(self, X: Any) -> np.ndarray:
        """The fixed part alone, ``f(X)`` plus the linear part: the prediction for a new group."""
        check_is_fitted(self, "trained_fe_model")
        y_hat = _predict_exactly(self.trained_fe_model, X)
        linear = getattr(self, "fe_linear_", None)
        if linear is not None:
            y_hat = y_hat + _linear_design(X, len(y_hat)) @ linear.to_numpy()
        return y_hat

    def get_bhat_history_df(self) -> pd.DataFrame:
        """``b_hat_history`` as one frame indexed by (iteration, cluster), as in merf 1.0; with several
        terms by (iteration, term, level)."""
        if isinstance(self.b_hat_history[0], dict):
            return pd.concat({(i, name): f for i, h in enumerate(self.b_hat_history) for name, f in h.items()},
                             names=["iteration", "term", "level"])
        return pd.concat(self.b_hat_history, keys=range(len(self.b_hat_history)), names=["iteration", "cluster"])


#: A label no training cluster has: every row predicted as of a new cluster.
_NO_LEVEL = object()


class MERFRegressor(MixedEffectsRegressor):
    """`MERF` behind mixcv's mixed-model convention, ``fit(X, y, groups, slopes)``.

    Without ``random``, the random-effects design is a column of ones (random intercept)
    plus the slope columns, within one grouping factor ``groups``. With ``random`` (lme4's
    syntax, as `LinearMixedEffectsModel` takes it: ``"(1 + days | subject) + (1 | item)"``,
    ``"(1 | school/class)"``, ``"(days || subject)"``), any number of crossed, nested or
    partially crossed factors, and ``groups`` is a DataFrame of the grouping columns (and
    slope columns not in ``X``). Used by the engine for ``MERF(<model>)``; the fitted
    `MERF` is ``merf_``.

    Prediction: a row gets the fixed part plus, for each factor, the BLUPs of its level if
    that level was seen in training, and zero for that factor if not (a new item answered
    by a known subject keeps the subject's BLUPs).
    """

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 100,
                 gll_early_stop_threshold: float | None = None,
                 gll_early_stop_window: int = DEFAULT_WINDOW,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 predict_known_groups: bool = True, linear_fixed_effects: bool = True,
                 em_estimators: int | None = 50, tol: float | None = DEFAULT_TOL, random: str | None = None) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback
        self.predict_known_groups = predict_known_groups
        self.linear_fixed_effects = linear_fixed_effects
        self.em_estimators = em_estimators
        self.tol = tol
        self.random = random

    def _design(self, X: pd.DataFrame, slopes: Any) -> np.ndarray:
        Xf = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        S = self._slopes(Xf, slopes)
        return np.column_stack([np.ones(len(Xf)), S.to_numpy(dtype=float)])

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None, sample_weight: Any = None,
            start: MERFRegressor | None = None) -> MERFRegressor:
        """Fit MERF's EM (``sample_weight``: precision weights; ``start``: an earlier fit on the same
        groups whose estimates start the EM; see `MERF.fit_terms`).

        Raises
        ------
        SpecError, SpecTypeError
            Before any fit, naming ``random`` (a term that cannot be read), ``groups`` (a
            column that is not there, a factor with one level...), ``slopes`` or ``y``.
        """
        if groups is None:
            raise SpecError("groups", "MERF needs groups")
        self.merf_ = MERF(self.fixed_effects_model, self.max_iterations, self.gll_early_stop_threshold,
                          self.gll_early_stop_window, self.callback, self.linear_fixed_effects, self.em_estimators,
                          self.tol)
        if self.random is None:
            if isinstance(groups, pd.DataFrame) and groups.shape[1] > 1:
                cols = list(groups.columns)
                raise SpecError("groups", f"several grouping columns {cols}: say how they enter with random=, "
                                          f"e.g. random='(1 | {cols[0]}) + (1 | {cols[1]})' (crossed) or "
                                          f"'(1 | {cols[0]}/{cols[1]})' (nested)")
            Z = self._design(X, slopes)
            self.merf_.fit(X, Z, groups, y, sample_weight=sample_weight, start=None if start is None else start.merf_)
            Xf = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
            self.re_names_: list[str] | None = ["Intercept", *[str(c) for c in self._slopes(Xf, slopes).columns]]
        else:
            self.merf_.fit_terms(X, y, self._remats(X, groups, slopes, len(X)), sample_weight=sample_weight,
                                 start=None if start is None else start.merf_)
            self.re_names_ = None
        self.slopes_ = slopes
        if not self.merf_.converged_:
            warnings.warn(ConvergenceWarning(f"MERF's EM did not converge: {self.merf_.stop_reason_}"), stacklevel=2)
        return self

    def _frame(self, X: Any, groups: Any, n: int) -> pd.DataFrame:
        """Where the random part's columns are looked up: X's, then those of ``groups`` (as the LMM does)."""
        return LinearMixedEffectsModel._frame(as_frame(X).reset_index(drop=True), groups, n)

    def _remats(self, X: Any, groups: Any, slopes: Any, n: int) -> list[ReMat]:
        if not isinstance(self.random, str):
            raise SpecTypeError("random", f"expected lme4 random-effect terms as text such as "
                                          f"'(1 + days | subject) + (1 | item)', got {self.random!r}")
        terms = parse_random(self.random)
        if slopes is not None:
            raise SpecError("slopes", "with random=..., the slopes are written in the terms, e.g. "
                                      "'(1 + days | subject)'; pass slopes=None")
        return build_remats(terms, self._frame(X, groups, n), field_name="groups")

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """Fixed part plus the BLUPs of every known level (zero for a level not seen in training)."""
        check_is_fitted(self, "merf_")
        if groups is None or not self.predict_known_groups:
            return self.merf_.predict_fixed(X)
        return self.predict_parts(X, groups, slopes)[0]

    def predict_parts(self, X: Any, groups: Any = None, slopes: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """`predict`, and per row the variance of the random part it left out (levels not seen in
        training; every term without ``groups`` or with ``predict_known_groups=False``)."""
        check_is_fitted(self, "merf_")
        use_groups = groups is not None and self.predict_known_groups
        if self.random is None:
            Z = self._design(X, slopes if slopes is not None else self.slopes_)
            labels = groups if use_groups else np.full(len(X), _NO_LEVEL, dtype=object)
            return self.merf_.predict_parts(X, Z, labels)
        if not use_groups:
            return self.merf_.predict_terms_parts(X, None)
        frame = self._frame(X, groups, len(X))
        needed = {c for t, _ in self.merf_._fitted if t.term is not None
                  for c in (*t.term.columns, *t.term.factor.columns)}
        missing = sorted(c for c in needed if c not in frame.columns)
        if missing:
            raise SpecError("groups", f"the random terms need the columns {missing}, which are not in the rows to "
                                      "predict (pass them in groups, or in X)")
        return self.merf_.predict_terms_parts(X, frame)

    # The merf attributes that post-processors and users look for.
    @property
    def trained_fe_model(self) -> Any:
        return self.merf_.trained_fe_model

    @property
    def trained_b(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        return self.merf_.trained_b

    @property
    def history_(self) -> pd.DataFrame:
        return self.merf_.history_

    @property
    def ranef_(self) -> dict[str, pd.DataFrame]:
        """Each factor's random effects by level, its terms side by side (lme4's ``ranef``)."""
        return self._by_factor(self.merf_.trained_b)

    @property
    def random_effects_(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Each level's random effects (intercept, then slopes), as the LMM names them: a
        DataFrame with one grouping factor, a dict of them by factor with several."""
        out = self.ranef_
        return next(iter(out.values())) if len(out) == 1 else out

    @property
    def random_effects_sd_(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Their conditional standard deviations at the final variance estimates (same shape)."""
        out = self._by_factor(self.merf_.b_sd_)
        return next(iter(out.values())) if len(out) == 1 else out

    @property
    def varcorr_(self) -> dict[str, pd.DataFrame]:
        """Each term's covariance matrix, keyed as the LMM's ``varcorr_`` (lme4's ``VarCorr`` names)."""
        if self.re_names_ is None:
            return dict(self.merf_.covs_)
        (cov,) = self.merf_.covs_.values()
        return {"group": pd.DataFrame(cov.to_numpy(), index=self.re_names_, columns=self.re_names_)}

    @property
    def scale_(self) -> float:
        """Residual variance sigma^2."""
        return float(self.merf_.sigma2_hat_history[-1])

    def _by_factor(self, per_term: pd.DataFrame | dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        tables = per_term if isinstance(per_term, dict) else {self.merf_.terms_[0]: per_term}
        if self.re_names_ is not None:
            (table,) = tables.values()
            out = table.copy()
            out.columns = self.re_names_
            out.index.name = "group"
            return {"group": out}
        factors: dict[str, list[pd.DataFrame]] = {}
        for t, _ in self.merf_._fitted:
            factors.setdefault(t.factor, []).append(tables[t.name])
        result = {}
        for factor, parts in factors.items():
            frame = pd.concat(parts, axis=1)
            frame.index.name = factor
            result[factor] = frame
        return result

    @property
    def converged_(self) -> bool:
        return self.merf_.converged_

    @property
    def convergence_(self) -> str:
        return self.merf_.stop_reason_

    @property
    def fe_linear_(self) -> pd.Series | None:
        return self.merf_.fe_linear_

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.merf_.trained_fe_model.feature_importances_
