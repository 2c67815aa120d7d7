"""Native linear mixed model solver: lme4's profiled (RE)ML, vectorised over groups.

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
evaluation costs ``O(K q^2 p)`` batched array work, whatever the number of rows.

``theta`` is optimised by L-BFGS-B with the diagonal of ``Lambda`` bounded below by
zero, which keeps the covariance positive semi-definite; an estimate on that bound is a
boundary (singular) fit, reported rather than raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ._groups import ClusterSums

__all__ = ["LMMFit", "fit_lmm"]


@dataclass
class LMMFit:
    """Everything the native solver estimates."""

    beta: np.ndarray            # (p,) fixed effects
    beta_cov: np.ndarray        # (p, p) their covariance, sigma^2 (R_X'R_X)^-1
    sigma2: float               # residual variance
    cov_re: np.ndarray          # (q, q) random-effects covariance, sigma^2 Lambda Lambda'
    b: np.ndarray               # (K, q) conditional modes (BLUPs) of the random effects
    theta: np.ndarray           # lower-triangular entries of Lambda, column-major (lme4's order)
    criterion: float            # minimised deviance: REML criterion or -2 log-likelihood
    llf: float                  # log-likelihood (REML log-likelihood when reml)
    reml: bool
    converged: bool
    n_evals: int
    message: str
    boundary: list[int] = field(default_factory=list)   # see `singular_components`


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
    A: np.ndarray           # (K, q, q) Lambda'Z_g'Z_g Lambda + I


class _Criterion:
    """The profiled deviance as a function of theta, from per-group sufficient statistics."""

    def __init__(self, X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
                 reml: bool) -> None:
        n, p = X.shape
        self.n, self.p, self.q, self.reml = n, p, Z.shape[1], reml
        # Work with y residualised on X: the criterion is unchanged (beta absorbs the
        # shift), and r^2 = y'y - b's below then cancels against the OLS residual sum of
        # squares instead of the raw y'y, which keeps full precision for large means.
        self.beta_ols = np.linalg.lstsq(X, y, rcond=None)[0]
        yr = y - X @ self.beta_ols
        sums = ClusterSums(codes, n_groups)
        self.G = sums(np.einsum("nj,nk->njk", Z, Z))          # (K, q, q)
        self.H = sums(np.einsum("nj,nk->njk", Z, X))          # (K, q, p)
        self.c = sums(Z * yr[:, None])                        # (K, q)
        self.XtX = X.T @ X
        self.Xty = X.T @ yr
        self.yty = float(yr @ yr)
        self.tril = np.tril_indices(self.q)
        # lme4 orders theta column-major; tril_indices is row-major.
        order = sorted(range(len(self.tril[0])), key=lambda i: (self.tril[1][i], self.tril[0][i]))
        self.rows, self.cols = self.tril[0][order], self.tril[1][order]
        self.diag = np.flatnonzero(self.rows == self.cols)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta
        return L

    def solve(self, theta: np.ndarray) -> _Solve:
        lam = self.lam(theta)
        K, p = self.H.shape[0], self.p
        A = lam.T @ self.G @ lam                                          # (K, q, q)
        A[:, np.arange(self.q), np.arange(self.q)] += 1.0
        chol = np.linalg.cholesky(A)
        logdet_L = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
        LtH = lam.T @ self.H                                              # Lambda'Z_g'X_g, (K, q, p)
        Ltc = self.c @ lam                                                # Lambda'Z_g'y_g, (K, q)
        rhs = np.concatenate([LtH, Ltc[..., None]], axis=2)
        sol = np.linalg.solve(A, rhs)                                     # A_g^-1 [LtH | Ltc]
        # Sums over groups as one matrix product over the stacked (K*q) rows.
        flat_LtH = LtH.reshape(K * self.q, p)
        cross = flat_LtH.T @ sol.reshape(K * self.q, p + 1)
        S = self.XtX - cross[:, :p]                                       # R_X'R_X
        r = self.Xty - cross[:, p]
        RX = np.linalg.cholesky(S)
        beta = np.linalg.solve(S, r)
        u = sol[..., p] - sol[..., :p] @ beta                             # (K, q)
        pwrss = self.yty - float(Ltc.ravel() @ u.ravel()) - float(self.Xty @ beta)
        logdet_RX = float(2.0 * np.log(np.diag(RX)).sum())
        return _Solve(lam=lam, beta=beta, u=u, pwrss=pwrss, logdet_L=float(logdet_L), logdet_RX=logdet_RX, S=S, A=A)

    def __call__(self, theta: np.ndarray) -> float:
        return self.value_and_grad(theta, gradient=False)[0]

    def value_and_grad(self, theta: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in theta.

        The gradient follows from three derivatives (E_k = dLambda/dtheta_k, a single 1
        at (r_k, c_k)):

        - d log|A_g| = 2 (A_g^-1 Lambda'G_g)[c_k, r_k];
        - d log|S| = -sum_g 2 [(A_g^-1 Lambda'P_g) - (Q_g Lambda'G_g)][c_k, r_k], with
          S = X'X - sum_g H_g' Lambda A_g^-1 Lambda' H_g, P_g = H_g S^-1 H_g' and
          Q_g = A_g^-1 Lambda'P_g Lambda A_g^-1;
        - d r^2 = -2 sum_g (Z_g'e_g)[r_k] u_g[c_k] (envelope theorem: u and beta are at
          their optimum), with Z_g'e_g = c_g - H_g beta - G_g Lambda u_g.
        """
        nan_grad = np.full(len(self.rows), np.nan)
        try:
            s = self.solve(theta)
        except np.linalg.LinAlgError:
            return np.inf, nan_grad
        pwrss = s.pwrss
        if not pwrss > 0:
            return np.inf, nan_grad
        dof = self.n - self.p if self.reml else self.n
        value = s.logdet_L + dof * (1 + np.log(2 * np.pi * pwrss / dof))
        if self.reml:
            value += s.logdet_RX
        if not gradient:
            return float(value), nan_grad
        lam, beta, u, A = s.lam, s.beta, s.u, s.A
        Ainv = np.linalg.inv(A)                                            # (K, q, q)
        LtG = lam.T @ self.G
        rows, cols = self.rows, self.cols
        grad = 2.0 * (Ainv @ LtG).sum(axis=0)[cols, rows]                 # d log|L|^2
        Zte = self.c - self.H @ beta - (self.G @ lam @ u[..., None])[..., 0]
        d_pwrss = -2.0 * (Zte[:, rows] * u[:, cols]).sum(axis=0)
        grad += dof * d_pwrss / pwrss
        if self.reml:
            HSinv = self.H @ np.linalg.inv(s.S)                         # (K, q, p)
            P = HSinv @ np.swapaxes(self.H, 1, 2)                          # (K, q, q)
            AinvLtP = Ainv @ lam.T @ P
            Q = AinvLtP @ lam @ Ainv
            grad -= 2.0 * (AinvLtP - Q @ LtG).sum(axis=0)[cols, rows]
        return float(value), grad


def fit_lmm(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
            reml: bool = True, theta0: np.ndarray | None = None, tol: float = 1e-10,
            max_evals: int = 10_000) -> LMMFit:
    """Fit the LMM by minimising the profiled (RE)ML criterion over theta.

    Parameters
    ----------
    X : (n, p) fixed-effects design, intercept included, full column rank.
    y : (n,) response.
    Z : (n, q) random-effects design per row (a column of ones for the intercept).
    codes : (n,) group index 0..n_groups-1 of each row.
    n_groups : int
    reml : bool
    theta0 : starting theta (default: Lambda = I, as lme4).
    tol : convergence tolerance on the criterion and projected gradient.
    max_evals : int

    Returns
    -------
    LMMFit
    """
    crit = _Criterion(X, y, Z, codes, n_groups, reml)
    if theta0 is None:
        theta0 = np.where(crit.rows == crit.cols, 1.0, 0.0)
    bounds = [(0.0, None) if r == c else (None, None) for r, c in zip(crit.rows, crit.cols)]
    options = {"ftol": 1e-15, "gtol": tol, "maxls": 50}
    res = optimize.minimize(crit.value_and_grad, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={**options, "maxfun": max_evals})
    n_evals = int(res.nfev)
    # Close to the optimum the line search can give up ("ABNORMAL_TERMINATION") where the
    # criterion's rounding hides further descent; a fresh start from there (new curvature
    # memory) either finishes the job or confirms the point. Limits reached are final.
    for _ in range(3):
        if res.success or res.status == 1 or n_evals >= max_evals:
            break
        res = optimize.minimize(crit.value_and_grad, res.x, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={**options, "maxfun": max_evals - n_evals})
        n_evals += int(res.nfev)
    theta = np.asarray(res.x, dtype=float)
    theta[crit.diag] = np.maximum(theta[crit.diag], 0.0)
    value = crit(theta)
    converged = bool(np.isfinite(value)) and _converged(res, crit, theta, tol)
    s = crit.solve(theta)
    dof = crit.n - crit.p if reml else crit.n
    sigma2 = float(s.pwrss / dof)
    lam = s.lam
    boundary = singular_components(lam)
    # Half the criterion is the negative log-likelihood (REML log-likelihood for REML).
    return LMMFit(
        beta=crit.beta_ols + s.beta,
        beta_cov=sigma2 * np.linalg.inv(s.S),
        sigma2=sigma2,
        cov_re=sigma2 * lam @ lam.T,
        b=s.u @ lam.T,
        theta=theta,
        criterion=value,
        llf=-value / 2.0,
        reml=reml,
        converged=converged,
        n_evals=n_evals,
        message=f"L-BFGS-B: {res.message}",
        boundary=boundary,
    )


def _converged(res: optimize.OptimizeResult, crit: _Criterion, theta: np.ndarray, tol: float) -> bool:
    """Whether ``theta`` is an optimum, judged by the projected gradient.

    The optimiser's own flag is not enough either way: L-BFGS-B reports success when
    the criterion merely stops decreasing, and failure when its line search cannot
    resolve a descent below rounding at the optimum. So: an iteration or evaluation
    limit is never convergence; otherwise every gradient component must be near zero,
    except a diagonal element held at its zero bound with the criterion increasing
    into the interior.
    """
    if res.status == 1:   # maxiter / maxfun reached
        return False
    _, grad = crit.value_and_grad(theta)
    at_bound = np.zeros(len(theta), dtype=bool)
    at_bound[crit.diag] = theta[crit.diag] <= 1e-12
    free = np.where(at_bound, np.minimum(grad, 0.0), grad)
    return bool(np.all(np.abs(free) <= max(1e-3, 1e-6 * crit.n)))


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
