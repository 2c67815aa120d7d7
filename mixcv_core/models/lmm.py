"""Native linear mixed model solver: lme4's profiled (RE)ML, vectorised over groups, with a certified optimum.

The model, for one grouping factor with ``q`` random effects per group (an intercept
plus slopes)::

    y = X beta + Z b + e,    b_g ~ N(0, sigma^2 Lambda Lambda'),    e ~ N(0, sigma^2 I)

Following lme4 (Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1), sec. 3),
``beta``, ``sigma^2`` and the spherical random effects ``u`` (``b = Lambda u``) are
profiled out, leaving a criterion in the lower-triangular relative covariance factor
``theta`` alone (eqs. 34 and 41)::

    ML:    d(theta)   = log|L|^2 + n [1 + log(2 pi r^2 / n)]
    REML:  d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) [1 + log(2 pi r^2 / (n - p))]

where ``L L' = Lambda'Z'Z Lambda + I`` and ``r^2`` is the penalised residual sum of
squares. With one grouping factor, ``Z'Z`` is block diagonal, so ``L`` is ``K``
independent ``q x q`` Cholesky factors: every quantity comes from per-group sufficient
statistics (``Z_g'Z_g``, ``Z_g'X_g``, ``Z_g'y_g``) computed once, and each criterion
evaluation costs ``O(K q^2 p)`` batched array work (`mixcv_core.models._batched`),
whatever the number of rows.

How the optimum is found — and certified — follows from two invariances of the criterion:

1. It depends on ``Lambda`` only through the relative covariance ``Sigma = Lambda Lambda'``.
   lme4 bounds the diagonal of ``Lambda`` at zero to make ``theta`` unique, but that bound
   is what traps a bounded optimiser: at a zero column of ``Lambda`` the criterion is even
   in that column, its gradient there is exactly zero, and a point on the bound passes a
   first-order test while the criterion still falls into the interior (a saddle).
   Negating a column leaves ``Sigma`` unchanged, so the bound is not needed: ``theta`` is
   optimised *unconstrained* and each column's sign is normalised afterwards.
2. It depends on ``Z`` and ``Lambda`` only through ``Z Lambda``, so with ``Z_s = Z T`` the
   fit in ``Z_s`` maps exactly to the fit in ``Z`` (``Sigma = T Sigma_s T'``,
   ``b = T b_s``). The optimiser works with the slope columns centred and scaled
   (``T`` upper triangular), which makes badly scaled designs (``cake`` with the raw
   temperature in degrees, ``Orange`` with age in days) as easy as well-scaled ones.

After the quasi-Newton optimiser stops, `fit_lmm` certifies the point (`_certify`): the
exact gradient and a Hessian from finite differences of it are computed; the Hessian
block of every zero column of ``Lambda`` (where the gradient vanishes by symmetry) is
``2 dd/dSigma`` restricted to that column, so a negative eigenvalue there is a descent
direction out of a saddle, and the optimiser is restarted from it; on the other
coordinates the Hessian must be positive definite and the Newton decrement
``g' H^-1 g / 2`` (the criterion's predicted distance to the minimum) negligible, which a
few Newton steps achieve. ``converged`` is True only at such a certified point.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from threadpoolctl import ThreadpoolController

from . import _batched
from ._groups import ClusterSums

__all__ = ["LMMFit", "fit_lmm", "relative_factor", "singular_components"]

#: Largest predicted distance to the minimum (criterion units, i.e. twice the
#: log-likelihood) at which a point is certified.
NEWTON_DECREMENT_TOL = 1e-8
#: L-BFGS-B's relative tolerance on the criterion: the certificate's Newton steps finish the job.
FTOL = 1e-12


@dataclass
class LMMFit:
    """Everything the native solver estimates, and how sure it is of it."""

    beta: np.ndarray            # (p,) fixed effects
    beta_cov: np.ndarray        # (p, p) their covariance, sigma^2 (R_X'R_X)^-1
    sigma2: float               # residual variance
    cov_re: np.ndarray          # (q, q) random-effects covariance, sigma^2 Lambda Lambda'
    b: np.ndarray               # (K, q) conditional modes (BLUPs) of the random effects
    theta: np.ndarray           # lower-triangular entries of Lambda (original Z), column-major (lme4's order)
    criterion: float            # minimised deviance: REML criterion or -2 log-likelihood
    llf: float                  # log-likelihood (REML log-likelihood when reml)
    reml: bool
    converged: bool             # True only at a certified optimum
    n_evals: int
    message: str                # how the fit ended, in words
    boundary: list[int] = field(default_factory=list)   # see `singular_components`
    gradient_max: float = float("nan")     # largest |gradient| component at the end
    newton_decrement: float = float("nan")  # predicted criterion decrease still available
    restarts: int = 0                       # restarts from a descent direction (saddles escaped)


@dataclass
class _Solve:
    """The criterion's inner solve at one theta (lme4's ``PLS`` step, Bates et al. sec. 3.3)."""

    lam: np.ndarray         # (q, q) relative covariance factor Lambda
    beta: np.ndarray        # (p,) fixed effects (of y residualised on X)
    u: np.ndarray           # (K, q) spherical random effects
    pwrss: float            # penalised weighted residual sum of squares r^2
    logdet_L: float         # log|L|^2 = sum_g log|A_g|
    logdet_RX: float        # log|R_X|^2
    S: np.ndarray           # (p, p) R_X'R_X
    chol: np.ndarray        # (K, q, q) Cholesky factors of A_g = Lambda'Z_g'Z_g Lambda + I
    F: np.ndarray           # (K, q, p) A_g^-1 Lambda'H_g
    WG: np.ndarray | None   # (K, q, q) A_g^-1 Lambda'G_g (for the gradient)
    LtG: np.ndarray | None  # (K, q, q) Lambda'G_g (for the gradient)


class _Criterion:
    """The profiled deviance as a function of theta, from per-group sufficient statistics."""

    def __init__(self, X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
                 reml: bool) -> None:
        n, p = X.shape
        self.n, self.p, self.q, self.reml = n, p, Z.shape[1], reml
        # Work with y residualised on X: the criterion is unchanged (beta absorbs the
        # shift), and r^2 = y'y - b's below then cancels against the OLS residual sum of
        # squares instead of the raw y'y, which keeps full precision for large means.
        # (Normal equations: X has full column rank, checked by the caller, and only the
        # residual's conditioning matters here; beta itself is solved for exactly below.)
        self.beta_ols = np.linalg.solve(X.T @ X, X.T @ y)
        yr = y - X @ self.beta_ols
        # One pass over the rows for every per-group sum: Z_g'[Z_g | X_g | y_g].
        q = Z.shape[1]
        # Z, X and y apart: stacking them first held two more row-sized copies at once (a
        # million rows: the peak of a whole fit). Each column's sums are the same either way.
        per_cluster = ClusterSums(codes, n_groups)
        sums = np.concatenate([per_cluster(np.einsum("nj,nk->njk", Z, part)) for part in (Z, X, yr[:, None])],
                              axis=2)
        self.G = np.ascontiguousarray(sums[:, :, :q])                     # (K, q, q)
        self.H = np.ascontiguousarray(sums[:, :, q:q + p])                # (K, q, p)
        self.c = np.ascontiguousarray(sums[:, :, q + p])                  # (K, q)
        self.XtX = X.T @ X
        self.Xty = X.T @ yr
        self.yty = float(yr @ yr)
        self.n_evals = 0
        tril = np.tril_indices(self.q)
        # lme4 orders theta column-major; tril_indices is row-major.
        order = sorted(range(len(tril[0])), key=lambda i: (tril[1][i], tril[0][i]))
        self.rows, self.cols = tril[0][order], tril[1][order]
        self.diag = np.flatnonzero(self.rows == self.cols)
        self.dof = self.n - self.p if reml else self.n
        self._last: tuple[bytes, float, np.ndarray] | None = None

    def lam(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta
        return L

    def solve(self, theta: np.ndarray, gradient: bool = False) -> _Solve:
        lam = self.lam(theta)
        K, q, p = self.H.shape
        LtG = _batched.left(lam.T, self.G)                                # Lambda'G_g, (K, q, q)
        A = _batched.right(LtG, lam)                                      # Lambda'G_g Lambda
        A[:, np.arange(q), np.arange(q)] += 1.0
        chol = _batched.cholesky(A)
        LtH = _batched.left(lam.T, self.H)                                # Lambda'Z_g'X_g, (K, q, p)
        Ltc = self.c @ lam                                                # Lambda'Z_g'y_g, (K, q)
        # One solve for everything: A_g^-1 [Lambda'H_g | Lambda'c_g | (Lambda'G_g for the gradient)].
        parts = [LtH, Ltc[..., None]] + ([LtG] if gradient else [])
        sol = _batched.cho_solve(chol, np.concatenate(parts, axis=2))
        F = sol[..., :p]
        # Sums over groups as one matrix product over the stacked (K*q) rows.
        cross = LtH.reshape(K * q, p).T @ sol[..., :p + 1].reshape(K * q, p + 1)
        S = self.XtX - cross[:, :p]                                       # R_X'R_X
        r = self.Xty - cross[:, p]
        RX = np.linalg.cholesky(S)
        beta = np.linalg.solve(S, r)
        u = sol[..., p] - (F.reshape(K * q, p) @ beta).reshape(K, q)     # (K, q)
        pwrss = self.yty - float(Ltc.ravel() @ u.ravel()) - float(self.Xty @ beta)
        logdet_RX = float(2.0 * np.log(np.diag(RX)).sum())
        return _Solve(lam=lam, beta=beta, u=u, pwrss=pwrss, logdet_L=_batched.logdet(chol), logdet_RX=logdet_RX,
                      S=S, chol=chol, F=F, WG=sol[..., p + 1:] if gradient else None,
                      LtG=LtG if gradient else None)

    def __call__(self, theta: np.ndarray) -> float:
        return self.value_and_grad(theta, gradient=False)[0]

    def value_and_grad(self, theta: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in theta.

        The gradient follows from three derivatives (E_k = dLambda/dtheta_k, a single 1
        at (r_k, c_k)), written with F_g = A_g^-1 Lambda'H_g from the solve:

        - d log|A_g| = 2 (A_g^-1 Lambda'G_g)[c_k, r_k];
        - d log|S| = -2 sum_g [F_g S^-1 H_g' - F_g S^-1 F_g' Lambda'G_g][c_k, r_k], with
          S = X'X - sum_g H_g' Lambda A_g^-1 Lambda' H_g;
        - d r^2 = -2 sum_g (Z_g'e_g)[r_k] u_g[c_k] (envelope theorem: u and beta are at
          their optimum), with Z_g'e_g = c_g - H_g beta - G_g Lambda u_g.

        Sums over groups are single matrix products (`_batched.sum_products`); one product
        per evaluation (REML only) is stacked per group.
        """
        key = theta.tobytes()
        if gradient and self._last is not None and self._last[0] == key:
            return self._last[1], self._last[2].copy()   # the certificate asks where the optimiser stopped
        self.n_evals += 1
        nan_grad = np.full(len(self.rows), np.nan)
        try:
            s = self.solve(theta, gradient=gradient)
        except np.linalg.LinAlgError:
            return np.inf, nan_grad
        pwrss = s.pwrss
        if not pwrss > 0:
            return np.inf, nan_grad
        dof = self.dof
        value = s.logdet_L + dof * (1 + np.log(2 * np.pi * pwrss / dof))
        if self.reml:
            value += s.logdet_RX
        if not gradient:
            return float(value), nan_grad
        assert s.WG is not None and s.LtG is not None
        lam, beta, u = s.lam, s.beta, s.u
        K, q, p = self.H.shape
        rows, cols = self.rows, self.cols
        grad = 2.0 * s.WG.sum(axis=0)[cols, rows]                          # d log|L|^2
        b = u @ lam.T                                                      # Lambda u_g, (K, q)
        Zte = self.c - (self.H.reshape(K * q, p) @ beta).reshape(K, q) - (self.G * b[:, None, :]).sum(axis=2)
        d_pwrss = -2.0 * (Zte[:, rows] * u[:, cols]).sum(axis=0)
        grad += dof * d_pwrss / pwrss
        if self.reml:
            FS = _batched.right(s.F, np.linalg.inv(s.S))                   # F_g S^-1, (K, q, p)
            M = FS @ np.swapaxes(s.F, 1, 2)                                # F_g S^-1 F_g', stacked
            term = _batched.sum_products(FS, np.swapaxes(self.H, 1, 2)) - _batched.sum_products(M, s.LtG)
            grad -= 2.0 * term[cols, rows]
        self._last = (key, float(value), grad.copy())
        return float(value), grad

    def normalise(self, theta: np.ndarray) -> np.ndarray:
        """The same Sigma with every column of Lambda turned to a non-negative diagonal."""
        lam = self.lam(theta)
        lam = lam * np.where(np.diag(lam) < 0, -1.0, 1.0)[None, :]
        return lam[self.rows, self.cols]


# -- certification ---------------------------------------------------------------------
@dataclass
class _Certificate:
    ok: bool
    descent: np.ndarray | None      # a point with a lower criterion, when one was found
    gradient_max: float
    newton_decrement: float
    zero_columns: list[int]
    message: str
    newton: bool = False            # the descent point is a Newton step (near the minimum), not an escape


def _hessian(crit: _Criterion, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Forward differences of the exact gradient, symmetrised (``dim`` gradient evaluations).

    Its use is qualitative (signs of eigenvalues) and the Newton step, both of which a
    relative error of ~1e-6 leaves unchanged.
    """
    dim = len(theta)
    H = np.empty((dim, dim))
    for j in range(dim):
        h = 1e-6 * max(1.0, abs(theta[j]))
        e = np.zeros(dim)
        e[j] = h
        H[:, j] = (crit.value_and_grad(theta + e)[1] - grad) / h
    return (H + H.T) / 2


def _certify(crit: _Criterion, theta: np.ndarray) -> _Certificate:
    """Is ``theta`` a local minimum? If not, a point lower down when one is at hand.

    Zero columns of Lambda (a singular Sigma) are tested to second order on their
    Hessian block: the criterion is even in such a column, so its gradient says
    nothing, and a negative eigenvalue of the block is a descent direction. The other
    coordinates need a positive definite Hessian and a negligible Newton decrement.
    """
    value, grad = crit.value_and_grad(theta)
    if not np.isfinite(value) or not np.all(np.isfinite(grad)):
        return _Certificate(False, None, np.inf, np.inf, [], "the criterion is not finite here")
    lam = crit.lam(theta)
    scale = max(1.0, float(np.max(np.abs(theta))))
    zero_cols = [j for j in range(crit.q) if np.max(np.abs(lam[j:, j])) <= 1e-7 * scale]
    H = _hessian(crit, theta, grad)
    in_zero = np.isin(crit.cols, zero_cols)
    # Second order on each zero column: descend along the most negative curvature.
    for j in zero_cols:
        idx = np.flatnonzero(crit.cols == j)
        w, V = np.linalg.eigh(H[np.ix_(idx, idx)])
        if w[0] < -1e-8 * max(1.0, float(np.max(np.abs(w)))):
            v = V[:, 0] * (1.0 if V[0, 0] >= 0 else -1.0)   # row j first: keep the diagonal >= 0
            best, best_value = None, value - 1e-12 * max(1.0, abs(value))
            for step in (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0):
                trial = theta.copy()
                trial[idx] = step * scale * v
                trial_value = crit(trial)
                if trial_value < best_value:
                    best, best_value = trial, trial_value
            if best is not None:
                return _Certificate(False, best, float(np.max(np.abs(grad))), np.inf, zero_cols,
                                    f"a saddle: the criterion falls along the zero column {j} of Lambda")
    free = ~in_zero
    g, Hf = grad[free], H[np.ix_(free, free)]
    gmax = float(np.max(np.abs(grad))) if len(grad) else 0.0
    if not free.any():
        return _Certificate(True, None, gmax, 0.0, zero_cols, "optimum")
    w, V = np.linalg.eigh(Hf)
    if w[0] <= 1e-10 * max(1.0, float(w[-1])):
        if w[0] < 0:
            # Negative curvature off the boundary: step along it (either sign may descend).
            d = np.zeros(len(theta))
            d[free] = V[:, 0]
            for step in (1e-3, 1e-2, 1e-1, 1.0):
                for sign in (1.0, -1.0):
                    trial = theta + sign * step * scale * d
                    if crit(trial) < value - 1e-12 * max(1.0, abs(value)):
                        return _Certificate(False, trial, gmax, np.inf, zero_cols,
                                            "negative curvature: not a minimum")
        return _Certificate(False, None, gmax, np.inf, zero_cols,
                            "the Hessian is singular: the random-effects covariance is not identified")
    newton = np.linalg.solve(Hf, g)
    decrement = float(g @ newton / 2)
    if decrement <= NEWTON_DECREMENT_TOL:
        return _Certificate(True, None, gmax, decrement, zero_cols, "optimum")
    # Not there yet: offer the Newton point (halved until it descends).
    for t in (1.0, 0.5, 0.25, 0.125):
        trial = theta.copy()
        trial[free] -= t * newton
        if crit(trial) < value:
            return _Certificate(False, trial, gmax, decrement, zero_cols,
                                f"not yet at the minimum (predicted decrease {decrement:.2g})", newton=True)
    return _Certificate(False, None, gmax, decrement, zero_cols,
                        f"stalled {decrement:.2g} above the predicted minimum")


def _standardise_Z(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Z_s = Z T`` with the slope columns centred and scaled; returns ``Z_s`` and ``T``.

    Column 0 is the random intercept (a column of ones), which centring needs.
    """
    q = Z.shape[1]
    T = np.eye(q)
    if q == 1 or not np.allclose(Z[:, 0], 1.0):
        return Z, T
    for k in range(1, q):
        m, s = float(Z[:, k].mean()), float(Z[:, k].std())
        if s > 0:
            T[0, k], T[k, k] = -m / s, 1.0 / s
    return Z @ T, T


@functools.lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    # Inspecting the loaded BLAS libraries takes milliseconds: do it once.
    return ThreadpoolController()


def fit_lmm(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
            reml: bool = True, theta0: np.ndarray | None = None, max_evals: int = 10_000,
            max_restarts: int = 8) -> LMMFit:
    """Fit the LMM by minimising the profiled (RE)ML criterion over theta, and certify the optimum.

    Parameters
    ----------
    X : (n, p) fixed-effects design, intercept included, full column rank.
    y : (n,) response.
    Z : (n, q) random-effects design per row (column 0 a column of ones for the intercept).
    codes : (n,) group index 0..n_groups-1 of each row.
    n_groups : int
    reml : bool
    theta0 : starting theta in lme4's parametrisation of ``Z`` (default: Lambda = I on the
        standardised design).
    max_evals : criterion evaluations at most (a fit that reaches it is not converged).
    max_restarts : restarts from a descent direction (saddles, Newton steps) at most.

    Returns
    -------
    LMMFit
    """
    # Every BLAS call here is on matrices of a few columns: threads only add their
    # start-up cost (2-3x slower on two cores, worse when the machine is busy).
    with _threadpools().limit(limits=1, user_api="blas"):
        return _fit_lmm(X, y, Z, codes, n_groups, reml, theta0, max_evals, max_restarts)


def _fit_lmm(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int, reml: bool,
             theta0: np.ndarray | None, max_evals: int, max_restarts: int) -> LMMFit:
    Zs, T = _standardise_Z(Z)
    Tinv = np.linalg.inv(T)
    crit = _Criterion(X, y, Zs, codes, n_groups, reml)
    if theta0 is None:
        theta = np.where(crit.rows == crit.cols, 1.0, 0.0)
    else:
        # Lambda_s Lambda_s' = T^-1 Lambda Lambda' T^-T; a singular start stays singular.
        lam0 = np.zeros((crit.q, crit.q))
        lam0[crit.rows, crit.cols] = theta0
        theta = relative_factor(Tinv @ lam0 @ lam0.T @ Tinv.T)[crit.rows, crit.cols]
    options = {"ftol": FTOL, "gtol": 1e-12, "maxls": 50}
    restarts, newton_steps, limit = 0, 0, False
    cert = None
    message = ""
    optimise = True
    while True:
        remaining = max_evals - crit.n_evals
        if remaining <= 0:
            limit = True
            break
        if optimise:
            res = optimize.minimize(crit.value_and_grad, theta, jac=True, method="L-BFGS-B",
                                    options={**options, "maxfun": remaining})
            theta = crit.normalise(np.asarray(res.x, dtype=float))
        cert = _certify(crit, theta)
        if cert.ok:
            break
        if cert.descent is None or crit.n_evals >= max_evals:
            limit = crit.n_evals >= max_evals
            break
        if cert.newton and newton_steps < 5:
            # Close to the minimum: Newton converges quadratically from here, so take
            # the step and certify again rather than restart the quasi-Newton method.
            newton_steps += 1
            optimise = False
        elif restarts < max_restarts:
            # A way out of a saddle (or a Newton step that made too little progress):
            # restart the optimiser from the lower point.
            restarts += 1
            optimise = True
        else:
            break
        theta = crit.normalise(cert.descent)
    converged = bool(cert is not None and cert.ok and not limit)
    if cert is not None and converged:
        message = "optimum" if not cert.zero_columns else "optimum on the boundary (a singular covariance)"
    elif limit:
        message = f"stopped at the limit of {max_evals} criterion evaluations"
    else:
        message = f"not certified: {cert.message}" if cert is not None else "not certified"
    value = crit(theta)
    s = crit.solve(theta)
    sigma2 = float(s.pwrss / crit.dof)
    lam_s = s.lam
    # Back to the original Z: Sigma = T Sigma_s T', b = T b_s.
    cov_rel = T @ lam_s @ lam_s.T @ T.T
    lam = relative_factor(cov_rel)
    b = (s.u @ lam_s.T) @ T.T
    return LMMFit(
        beta=crit.beta_ols + s.beta,
        beta_cov=sigma2 * np.linalg.inv(s.S),
        sigma2=sigma2,
        cov_re=sigma2 * cov_rel,
        b=b,
        theta=lam[crit.rows, crit.cols],
        criterion=value,
        llf=-value / 2.0,   # half the criterion is the negative (REML) log-likelihood
        reml=reml,
        converged=converged,
        n_evals=crit.n_evals,
        message=message,
        boundary=singular_components(lam),
        gradient_max=np.nan if cert is None else cert.gradient_max,
        newton_decrement=np.nan if cert is None else cert.newton_decrement,
        restarts=restarts,
    )


def singular_components(lam: np.ndarray, tol: float = 1e-4) -> list[int]:
    """Random effects at which the fit is singular (on the boundary), as lme4's ``isSingular``.

    ``lam`` is a lower-triangular relative covariance factor. A diagonal entry below
    ``tol`` means that effect's variance is zero or that it is a linear combination of
    the ones before it (a correlation of +-1): the covariance matrix is singular.
    """
    return [int(j) for j in range(lam.shape[0]) if lam[j, j] < tol]


def relative_factor(cov_rel: np.ndarray) -> np.ndarray:
    """The lower-triangular factor of a positive semi-definite matrix, zeros allowed.

    A Cholesky factorisation that tolerates singular matrices: a pivot at (or below)
    zero gives a zero column instead of an error. ``q`` is the number of random
    effects, a handful, so the loop is over effects, never over groups.
    """
    q = cov_rel.shape[0]
    L = np.zeros_like(cov_rel, dtype=float)
    for j in range(q):
        d = cov_rel[j, j] - L[j, :j] @ L[j, :j]
        if d <= 1e-14 * max(1.0, abs(cov_rel[j, j])):
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (cov_rel[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L
