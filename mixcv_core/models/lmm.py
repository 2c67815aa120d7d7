"""The one-factor linear mixed model: `fit_lmm`, the same algebra as `fit_mixed` with one term.

The model, for one grouping factor with ``q`` random effects per group (an intercept
plus slopes)::

    y = X beta + Z b + e,    b_g ~ N(0, sigma^2 Lambda Lambda'),    e ~ N(0, sigma^2 I)

is lme4's with one random-effect term; `mixcv_core.models.mixed` fits it, and any number
of terms, with lme4's profiled (RE)ML criterion and a certified optimum (see
`mixcv_core.models.mixed.criterion` and `mixcv_core.models.mixed.optimize`). With one
term the blocked Cholesky factor is ``K`` independent ``q x q`` factors computed for all
groups at once, so an evaluation costs ``O(K q^2 p)`` whatever the number of rows.

This module keeps the one-factor interface that `LinearMixedEffectsModel` and MERF use:
`fit_lmm` and its record `LMMFit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from .mixed.criterion import Criterion
from .mixed.fit import fit_mixed, relative_factor, singular_components
from .mixed.optimize import certify as _certify  # noqa: F401 - the one-factor tests certify points with it

__all__ = ["LMMFit", "fit_lmm", "relative_factor", "singular_components"]


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


def _Criterion(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
               reml: bool) -> Criterion:
    """The one-factor criterion of theta (lme4's layout for ``Z`` as given)."""
    return Criterion(X, y, [np.asarray(codes)], [Z], [n_groups], reml)


def fit_lmm(X: np.ndarray, y: np.ndarray, Z: np.ndarray, codes: np.ndarray, n_groups: int,
            reml: bool = True, theta0: np.ndarray | None = None, max_evals: int = 10_000,
            max_restarts: int = 8) -> LMMFit:
    """Fit the one-factor LMM by minimising the profiled (RE)ML criterion over theta, and certify the optimum.

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
    block = SimpleNamespace(codes=np.asarray(codes, dtype=np.intp), n_levels=int(n_groups), Z=Z)
    fit = fit_mixed(X, y, [block], reml=reml, max_evals=max_evals, theta0=theta0, max_restarts=max_restarts)
    return LMMFit(beta=fit.beta, beta_cov=fit.beta_cov, sigma2=fit.sigma2, cov_re=fit.covs[0], b=fit.b[0],
                  theta=fit.theta, criterion=fit.criterion, llf=fit.llf, reml=fit.reml, converged=fit.converged,
                  n_evals=fit.n_evals, message=fit.message, boundary=[j for _, j in fit.boundary],
                  gradient_max=fit.gradient_max, newton_decrement=fit.newton_decrement, restarts=fit.restarts)
