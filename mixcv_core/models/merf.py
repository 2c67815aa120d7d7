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
sum to zero by construction. ``V^-1`` never appears: with ``M_i = sigma^2 I + G_i D``,
``W'V^-1 W = sigma^-2 sum_i (W_i'W_i - C_i' D M_i^-1 C_i)`` with ``C_i = Z_i'W_i``
(``sigma^-2`` cancels in ``beta``). With a linear base estimator the EM converges to the
linear mixed model's maximum-likelihood fit. ``beta`` starts at OLS, so the forest models
what the linear part leaves.

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
(otherwise ``stop_reason_`` says "stopped early"). With a forest, EM iterations use
``em_estimators`` trees and the full forest is fitted once at the end, which makes a fit
cost little more than the final forest.

Why this is fast: the reference implementation builds and pseudo-inverts the dense
``n_i x n_i`` matrix ``V_i = Z_i D Z_i' + sigma^2 I`` for every cluster in a Python
loop. Everything the updates need from ``V_i^-1`` reduces to ``q x q`` algebra
through the Woodbury identity. With ``G_i = Z_i'Z_i`` and ``M_i = sigma^2 I_q + G_i D``:

- ``Z_i' V_i^-1 r_i = M_i^-1 Z_i' r_i``, so ``b_i = D M_i^-1 Z_i' r_i``;
- ``Z_i' V_i^-1 Z_i = M_i^-1 G_i``, so ``D - D Z_i'V_i^-1 Z_i D = D - D M_i^-1 G_i D``;
- ``sigma^2 tr(V_i^-1) = n_i - tr(D M_i^-1 G_i)``.

``M_i`` is invertible whenever ``sigma^2 > 0`` (``G_i D`` has non-negative eigenvalues),
and needs no inverse of ``D``, which may be singular. Per-cluster sums ``Z_i' r_i``
come from one ``np.add.reduceat`` over rows sorted by cluster, and the ``K`` small
systems are solved in one batched ``np.linalg.solve``. No step loops over clusters.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ..constraints import Real, check
from ..errors import ConvergenceWarning, SpecError, SpecTypeError
from ._base import MixedEffectsRegressor
from ._groups import ClusterSums, cluster_codes

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
#: ``tol``: MERF's own parameter (the engine uses the default), so not a spec rule.
_TOL_RULE = Real(0.0, None, closed="neither", none=True)
#: A variance parameter below this share of sigma^2 counts as zero when changes are scaled
#: by it (an EM approaching the boundary halves it forever; it is settled for prediction).
_VARIANCE_FLOOR = 1e-6


def em_changes(sigma2_old: float, D_old: np.ndarray, b_old: np.ndarray, gll_old: float,
               sigma2: float, D: np.ndarray, b: np.ndarray, gll: float, n: int) -> tuple[float, float, float]:
    """How much one EM iteration moved the estimates: the quantities `MERF` judges convergence on.

    Returns
    -------
    variance_change : float
        Largest relative change of sigma^2 and of each entry of D (scaled by
        ``sqrt(D_jj D_kk)`` of the earlier iterate, floored at a tiny share of sigma^2).
    blup_change : float
        Largest, over random effects, root mean square change over clusters in units of
        the effect's standard deviation.
    deviance_change : float
        ``(gll - gll_old) / n``, signed: positive when the GLL rose.
    """
    floor = _VARIANCE_FLOOR * sigma2_old
    sd = np.sqrt(np.maximum(np.diag(D_old), floor))
    var = max(abs(sigma2 - sigma2_old) / sigma2_old, float(np.max(np.abs(D - D_old) / np.outer(sd, sd))))
    blup = float(np.max(np.sqrt(np.mean((b - b_old) ** 2, axis=0)) / sd)) if len(b) else 0.0
    return var, blup, (gll - gll_old) / n


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
        trees during EM; the full estimator is fitted once at the end. None: the full
        estimator at every iteration.
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
            clusters_val: Any = None, y_val: Any = None) -> MERF:
        """Fit by EM.

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

        Raises
        ------
        SpecError, SpecTypeError
            Naming ``Z``, ``clusters``, ``y`` or a parameter, before any fitting.
        """
        self._check_params()
        n = len(X)
        Zm = _as_2d_numeric(Z, n, "Z")
        codes, labels = cluster_codes(clusters, n)
        yv = np.asarray(y, dtype=float)
        if yv.ndim == 2 and yv.shape[1] == 1:
            yv = yv[:, 0]
        if yv.ndim != 1 or len(yv) != n:
            raise SpecError("y", f"expected {n} target values in one column, got shape {yv.shape}")
        if not np.isfinite(yv).all():
            raise SpecError("y", "contains NaN or infinite values")
        validate = X_val is not None
        if validate:
            if y_val is None or Z_val is None or clusters_val is None:
                raise SpecError("X_val", "validation needs X_val, Z_val, clusters_val and y_val together")
            y_val = np.asarray(y_val, dtype=float).ravel()

        from sklearn.ensemble import RandomForestRegressor
        base = self.fixed_effects_model
        if base is None:
            base = RandomForestRegressor(n_estimators=300)
        fe = clone(base)
        # Cheaper early iterations: during EM, f only has to track a slowly moving target,
        # so a forest with fewer trees does; the full estimator is fitted once at the end.
        trees = fe.get_params().get("n_estimators")
        light = (self.linear_fixed_effects and self.em_estimators is not None and isinstance(trees, int)
                 and trees > self.em_estimators)
        fe_em = clone(fe).set_params(n_estimators=self.em_estimators) if light else fe

        K, q = len(labels), Zm.shape[1]
        sums = ClusterSums(codes, K)
        # G_i = Z_i'Z_i never changes: computed once, (K, q, q).
        G = sums(np.einsum("nj,nk->njk", Zm, Zm))
        eye_q = np.eye(q)
        if self.linear_fixed_effects:
            W = _linear_design(X, n)
            WtW = W.T @ W
            C = sums(np.einsum("nj,nk->njk", Zm, W))                   # Z_i'W_i, (K, q, pw)
            beta = np.linalg.lstsq(W, yv, rcond=None)[0]                 # start: OLS
            lin = W @ beta
        else:
            lin = np.zeros(n)

        b = np.zeros((K, q))
        sigma2 = 1.0
        D = np.eye(q)
        self.b_hat_history = [pd.DataFrame(b.copy(), index=labels)]
        self.sigma2_hat_history = [sigma2]
        self.D_hat_history = [D.copy()]
        self.gll_history: list[float] = []
        self.val_loss_history: list[float] = []
        rows: list[dict[str, Any]] = []
        threshold = self.gll_early_stop_threshold
        window = self.gll_early_stop_window
        tol = self.tol if self.tol is not None else DEFAULT_TOL
        self.converged_ = False
        self.gll_rises_: list[tuple[int, float]] = []
        settled = below = 0          # consecutive iterations within tol / below the GLL threshold
        changes = (np.nan, np.nan, np.nan)
        ended = ""                   # "converged", "early" or "" (out of iterations)
        final = False
        em_iterations = 0

        for iteration in range(1, self.max_iterations + 2):
            if iteration > self.max_iterations:
                if not light:
                    break
                final = True   # one more iteration with the full estimator
            model = fe if (final or not light) else fe_em
            t0 = time.perf_counter()
            # E-step (Hajjem et al. eq. 6): remove the current random (and linear) part from y.
            y_star = yv - lin - np.einsum("nj,nj->n", Zm, b[codes])
            t1 = time.perf_counter()
            model.fit(X, y_star)
            f_hat = _predict_exactly(model, X)
            t2 = time.perf_counter()

            # M-step (eqs. 7-9) with the previous sigma2 and D, via q x q systems.
            M = sigma2 * eye_q + G @ D                                 # (K, q, q)
            r = yv - f_hat
            u = sums(Zm * r[:, None])                                  # Z_i' r_i, (K, q)
            if self.linear_fixed_effects:
                # GLS for the linear part given f: with V_i^-1 = (I - Z_i D M_i^-1 Z_i') / sigma^2,
                # W'V^-1W = sum_i W_i'W_i - C_i' D M_i^-1 C_i (and likewise W'V^-1 r). Its normal
                # equations make the BLUPs of every effect in span(W) sum to zero.
                DMinvC = np.linalg.solve(M, C) if q else C
                DMinvC = D @ DMinvC
                DMinvu = D @ np.linalg.solve(M, u[..., None])[..., 0].T  # (q, K)
                A = WtW - np.einsum("kqi,kqj->ij", C, DMinvC)
                rhs = W.T @ r - np.einsum("kqi,qk->i", C, DMinvu)
                beta = np.linalg.lstsq(A, rhs, rcond=None)[0]
                lin = W @ beta
                r = r - lin
                u = u - C @ beta
            Minv_u = np.linalg.solve(M, u[..., None])[..., 0]
            Minv_G = np.linalg.solve(M, G)
            b = Minv_u @ D.T                                           # b_i = D M_i^-1 u_i
            eps = r - np.einsum("nj,nj->n", Zm, b[codes])
            tr_DMG = np.einsum("jk,ikj->i", D, Minv_G)                 # tr(D M_i^-1 G_i)
            sigma2_new = (eps @ eps + sigma2 * tr_DMG.sum()) / n
            D_new = (b.T @ b + K * D - D @ Minv_G.sum(axis=0) @ D) / K
            D_new = (D_new + D_new.T) / 2  # symmetric up to rounding; keep it exactly so
            sigma2, D = float(sigma2_new), D_new

            # Generalised log-likelihood (the quantity merf 1.0 reports), with the new values.
            _, logdet_D = np.linalg.slogdet(D)
            D_pinv = np.linalg.pinv(D)
            gll = float(eps @ eps / sigma2 + np.einsum("ij,jk,ik->", b, D_pinv, b)
                        + K * logdet_D + n * np.log(sigma2))
            t3 = time.perf_counter()

            if iteration > 1 and not final:
                changes = em_changes(self.sigma2_hat_history[-1], self.D_hat_history[-1],
                                     self.b_hat_history[-1].to_numpy(), self.gll_history[-1], sigma2, D, b, gll, n)
            b_df = pd.DataFrame(b.copy(), index=labels)
            self.b_hat_history.append(b_df)
            self.sigma2_hat_history.append(sigma2)
            self.D_hat_history.append(D.copy())
            self.gll_history.append(gll)
            self.trained_fe_model = model
            self.trained_b = b_df.copy()
            self.fe_linear_ = (pd.Series(beta, index=["Intercept", *_feature_names(X, W.shape[1] - 1)],
                                         name="fe_linear") if self.linear_fixed_effects else None)
            self.n_iter_ = iteration
            if validate:
                pred = self.predict(X_val, Z_val, clusters_val)
                self.val_loss_history.append(float(np.mean((y_val - pred) ** 2)))
            row = {"iteration": iteration, "gll": gll, "sigma2": sigma2}
            row.update({f"D[{j},{k}]": D[j, k] for j in range(q) for k in range(j + 1)})
            if not final:
                row.update(variance_change=changes[0], blup_change=changes[1], deviance_change=changes[2])
            row.update(fe_time=t2 - t1, em_time=(t1 - t0) + (t3 - t2), full_forest=model is fe)
            rows.append(row)
            if self.callback is not None:
                self.callback({"iteration": iteration, "gll": gll, "sigma2": sigma2, "D": D.copy()})
            if final:
                break
            em_iterations = iteration
            if iteration == 1:
                continue
            variance, blups, deviance = changes
            if deviance > tol:
                # Not an M-step: the forest fits y - Zb by its own criterion, not the likelihood.
                self.gll_rises_.append((iteration, deviance * n))
            settled = settled + 1 if max(variance, abs(deviance), blups / BLUP_FACTOR) < tol else 0
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
        self.stop_reason_ = self._stop_reason(ended, em_iterations, changes, tol, window, threshold)
        self.history_ = pd.DataFrame(rows)
        # How sure each cluster's random effects are (the interval of a random effect): the
        # conditional sd at the final variance estimates, sigma2 D (sigma2 I + Z_i'Z_i D)^-1.
        cov = sigma2 * np.einsum("ij,kjl->kil", D, np.linalg.inv(sigma2 * eye_q + G @ D))
        self.b_sd_ = pd.DataFrame(np.sqrt(np.clip(np.einsum("kii->ki", cov), 0.0, None)), index=labels)
        self.cluster_counts = pd.Series(sums.counts, index=labels)
        self.n_features_in_ = np.asarray(X).shape[1] if np.asarray(X).ndim == 2 else 1
        return self

    def _stop_reason(self, ended: str, at: int, changes: tuple[float, float, float], tol: float, window: int,
                     threshold: float | None) -> str:
        """The sentence that says how the EM ended, for the fold table and the warning."""
        variance, blups, deviance = changes
        last = (f"the last iteration changed the variance parameters by {variance:.2%}, the BLUPs by "
                f"{blups:.3g} sd and the GLL by {abs(deviance):.3g} per row")
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
        check_is_fitted(self, "trained_fe_model")
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
        return y_hat + np.einsum("nj,nj->n", Zm, B[pos])

    def predict_fixed(self, X: Any) -> np.ndarray:
        """The fixed part alone, ``f(X)`` plus the linear part: the prediction for a new group."""
        check_is_fitted(self, "trained_fe_model")
        y_hat = _predict_exactly(self.trained_fe_model, X)
        linear = getattr(self, "fe_linear_", None)
        if linear is not None:
            y_hat = y_hat + _linear_design(X, len(y_hat)) @ linear.to_numpy()
        return y_hat

    def get_bhat_history_df(self) -> pd.DataFrame:
        """``b_hat_history`` as one frame indexed by (iteration, cluster), as in merf 1.0."""
        return pd.concat(self.b_hat_history, keys=range(len(self.b_hat_history)), names=["iteration", "cluster"])


class MERFRegressor(MixedEffectsRegressor):
    """`MERF` behind mixcv's mixed-model convention, ``fit(X, y, groups, slopes)``.

    The random-effects design is a column of ones (random intercept) plus the slope
    columns. Used by the engine for ``MERF(<model>)``; the fitted `MERF` is ``merf_``.
    """

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 100,
                 gll_early_stop_threshold: float | None = None,
                 gll_early_stop_window: int = DEFAULT_WINDOW,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 predict_known_groups: bool = True, linear_fixed_effects: bool = True,
                 em_estimators: int | None = 50, tol: float | None = DEFAULT_TOL) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback
        self.predict_known_groups = predict_known_groups
        self.linear_fixed_effects = linear_fixed_effects
        self.em_estimators = em_estimators
        self.tol = tol

    def _design(self, X: pd.DataFrame, slopes: Any) -> np.ndarray:
        Xf = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        S = self._slopes(Xf, slopes)
        return np.column_stack([np.ones(len(Xf)), S.to_numpy(dtype=float)])

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None) -> MERFRegressor:
        if groups is None:
            raise SpecError("groups", "MERF needs groups")
        self.merf_ = MERF(self.fixed_effects_model, self.max_iterations, self.gll_early_stop_threshold,
                          self.gll_early_stop_window, self.callback, self.linear_fixed_effects, self.em_estimators,
                          self.tol)
        Z = self._design(X, slopes)
        self.merf_.fit(X, Z, groups, y)
        self.slopes_ = slopes
        Xf = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        self.re_names_ = ["Intercept", *[str(c) for c in self._slopes(Xf, slopes).columns]]
        if not self.merf_.converged_:
            warnings.warn(ConvergenceWarning(f"MERF's EM did not converge: {self.merf_.stop_reason_}"), stacklevel=2)
        return self

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        check_is_fitted(self, "merf_")
        if groups is None or not self.predict_known_groups:
            return self.merf_.predict_fixed(X)
        return self.merf_.predict(X, self._design(X, slopes if slopes is not None else self.slopes_), groups)

    # The merf attributes that post-processors and users look for.
    @property
    def trained_fe_model(self) -> Any:
        return self.merf_.trained_fe_model

    @property
    def trained_b(self) -> pd.DataFrame:
        return self.merf_.trained_b

    @property
    def history_(self) -> pd.DataFrame:
        return self.merf_.history_

    @property
    def random_effects_(self) -> pd.DataFrame:
        """Each group's random effects (intercept, then slopes), as the LMM names them."""
        return self._named(self.merf_.trained_b)

    @property
    def random_effects_sd_(self) -> pd.DataFrame:
        """Their conditional standard deviations at the final variance estimates."""
        return self._named(self.merf_.b_sd_)

    def _named(self, table: pd.DataFrame) -> pd.DataFrame:
        out = table.copy()
        out.columns = self.re_names_
        out.index.name = "group"
        return out

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
