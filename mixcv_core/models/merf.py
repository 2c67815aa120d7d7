"""MERF: mixed effects around any scikit-learn regressor, fitted by EM, vectorised over clusters.

The model (Hajjem, Bellavance & Larocque 2014, eq. 1) is::

    y_i = f(X_i) + Z_i b_i + e_i,    b_i ~ N(0, D),    e_i ~ N(0, sigma^2 I)

for cluster ``i`` with ``n_i`` rows and a ``q``-column random-effects design ``Z_i``.
EM alternates between fitting ``f`` to ``y - Z b`` and updating ``b``, ``D`` and
``sigma^2`` in closed form (the paper's eqs. 6-9, as implemented by the ``merf`` 1.0
package, whose attribute names are kept so code moves over unchanged).

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

from ..constraints import check
from ..errors import ConvergenceWarning, SpecError, SpecTypeError
from ._base import MixedEffectsRegressor
from ._groups import ClusterSums, cluster_codes

__all__ = ["MERF", "MERFRegressor"]


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


class MERF(BaseEstimator):
    """Mixed Effects Random Forest — or mixed effects around any regressor — fitted by EM.

    Parameters
    ----------
    fixed_effects_model : regressor, optional
        The model of ``f``; a fresh clone is fitted (the object passed in is never
        changed). Default: ``RandomForestRegressor(n_estimators=300)``.
    max_iterations : int, default=20
        EM iterations at most (>= 1).
    gll_early_stop_threshold : float, optional
        Stop once the relative change of the generalised log-likelihood (GLL) between
        iterations is below this...
    gll_early_stop_window : int, default=1
        ...for this many consecutive iterations.
    callback : callable, optional
        Called after every iteration with a dict ``{"iteration", "gll", "sigma2", "D"}``,
        e.g. to plot convergence live.

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
        One row per iteration: ``iteration``, ``gll``, ``sigma2``, ``D`` entries,
        ``fe_time`` and ``em_time`` (seconds in the base estimator and in the EM steps).
    n_iter_ : int
    stop_reason_ : str
    converged_ : bool or None
        True when the early stop fired, False when a threshold was set but never met,
        None when no threshold was set (a fixed number of iterations).

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

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 20,
                 gll_early_stop_threshold: float | None = None, gll_early_stop_window: int = 1,
                 callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback

    def _check_params(self) -> None:
        # The same rules as the engine's MERF settings (merf.max_iterations...), so a
        # value the spec refuses is refused here too, and the other way round.
        check("merf.max_iterations", self.max_iterations, "max_iterations")
        check("merf.stopping_threshold", self.gll_early_stop_threshold, "gll_early_stop_threshold")
        if self.gll_early_stop_window is None:
            raise SpecTypeError("gll_early_stop_window", "expected an integer >= 1, got None")
        check("merf.stopping_window", self.gll_early_stop_window, "gll_early_stop_window")
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

        K, q = len(labels), Zm.shape[1]
        sums = ClusterSums(codes, K)
        # G_i = Z_i'Z_i never changes: computed once, (K, q, q).
        G = sums(np.einsum("nj,nk->njk", Zm, Zm))
        eye_q = np.eye(q)

        b = np.zeros((K, q))
        sigma2 = 1.0
        D = np.eye(q)
        self.b_hat_history = [pd.DataFrame(b.copy(), index=labels)]
        self.sigma2_hat_history = [sigma2]
        self.D_hat_history = [D.copy()]
        self.gll_history: list[float] = []
        self.val_loss_history: list[float] = []
        rows: list[dict[str, Any]] = []
        self.stop_reason_ = f"reached max_iterations={self.max_iterations}"
        self.converged_ = None if self.gll_early_stop_threshold is None else False
        below = 0

        for iteration in range(1, self.max_iterations + 1):
            t0 = time.perf_counter()
            # E-step (Hajjem et al. eq. 6): remove the current random part from y.
            y_star = yv - np.einsum("nj,nj->n", Zm, b[codes])
            t1 = time.perf_counter()
            fe.fit(X, y_star)
            f_hat = np.asarray(fe.predict(X), dtype=float).ravel()
            t2 = time.perf_counter()

            # M-step (eqs. 7-9) with the previous sigma2 and D, via q x q systems.
            r = yv - f_hat
            u = sums(Zm * r[:, None])                                  # Z_i' r_i, (K, q)
            M = sigma2 * eye_q + G @ D                                 # (K, q, q)
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

            b_df = pd.DataFrame(b.copy(), index=labels)
            self.b_hat_history.append(b_df)
            self.sigma2_hat_history.append(sigma2)
            self.D_hat_history.append(D.copy())
            self.gll_history.append(gll)
            self.trained_fe_model = fe
            self.trained_b = b_df.copy()
            self.n_iter_ = iteration
            if validate:
                pred = self.predict(X_val, Z_val, clusters_val)
                self.val_loss_history.append(float(np.mean((y_val - pred) ** 2)))
            row = {"iteration": iteration, "gll": gll, "sigma2": sigma2}
            row.update({f"D[{j},{k}]": D[j, k] for j in range(q) for k in range(j + 1)})
            row.update(fe_time=t2 - t1, em_time=(t1 - t0) + (t3 - t2))
            rows.append(row)
            if self.callback is not None:
                self.callback({"iteration": iteration, "gll": gll, "sigma2": sigma2, "D": D.copy()})

            if self.gll_early_stop_threshold is not None and iteration > 1:
                prev = self.gll_history[-2]
                change = abs((gll - prev) / prev) if prev != 0 else np.inf
                below = below + 1 if change < self.gll_early_stop_threshold else 0
                if below >= self.gll_early_stop_window:
                    self.stop_reason_ = (f"relative GLL change {change:.3g} < {self.gll_early_stop_threshold} "
                                         f"for {below} iteration(s), at iteration {iteration}")
                    self.converged_ = True
                    break
        self.history_ = pd.DataFrame(rows)
        self.cluster_counts = pd.Series(sums.counts, index=labels)
        self.n_features_in_ = np.asarray(X).shape[1] if np.asarray(X).ndim == 2 else 1
        return self

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
        y_hat = np.asarray(self.trained_fe_model.predict(X), dtype=float).ravel()
        pos = self.trained_b.index.get_indexer(pd.Index(values))
        B = np.vstack([self.trained_b.to_numpy(), np.zeros((1, Zm.shape[1]))])  # row -1: unseen
        return y_hat + np.einsum("nj,nj->n", Zm, B[pos])

    def get_bhat_history_df(self) -> pd.DataFrame:
        """``b_hat_history`` as one frame indexed by (iteration, cluster), as in merf 1.0."""
        return pd.concat(self.b_hat_history, keys=range(len(self.b_hat_history)), names=["iteration", "cluster"])


class MERFRegressor(MixedEffectsRegressor):
    """`MERF` behind mixcv's mixed-model convention, ``fit(X, y, groups, slopes)``.

    The random-effects design is a column of ones (random intercept) plus the slope
    columns. Used by the engine for ``MERF(<model>)``; the fitted `MERF` is ``merf_``.
    """

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 20,
                 gll_early_stop_threshold: float | None = None, gll_early_stop_window: int = 1,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 predict_known_groups: bool = True) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback
        self.predict_known_groups = predict_known_groups

    def _design(self, X: pd.DataFrame, slopes: Any) -> np.ndarray:
        Xf = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        S = self._slopes(Xf, slopes)
        return np.column_stack([np.ones(len(Xf)), S.to_numpy(dtype=float)])

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None) -> MERFRegressor:
        if groups is None:
            raise SpecError("groups", "MERF needs groups")
        self.merf_ = MERF(self.fixed_effects_model, self.max_iterations, self.gll_early_stop_threshold,
                          self.gll_early_stop_window, self.callback)
        self.merf_.fit(X, self._design(X, slopes), groups, y)
        self.slopes_ = slopes
        if self.merf_.converged_ is False:
            warnings.warn(ConvergenceWarning(f"MERF stopped without meeting its GLL threshold: "
                                             f"{self.merf_.stop_reason_}"), stacklevel=2)
        return self

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        check_is_fitted(self, "merf_")
        if groups is None or not self.predict_known_groups:
            return np.asarray(self.merf_.trained_fe_model.predict(X), dtype=float).ravel()
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
    def converged_(self) -> bool | None:
        return self.merf_.converged_

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.merf_.trained_fe_model.feature_importances_
