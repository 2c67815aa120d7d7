"""`fit_mixed`: a linear mixed model with any number of random-effect terms, and its fit record.

The pipeline is lme4's (``R/modular.R``: ``mkLmerDevfun`` -> ``optimizeLmer`` -> ``mkMerMod``):
the criterion of theta (`criterion.Criterion`, over the blocked PLS of `pls`), its
minimisation and certification (`optimize`), and the record (`MixedFit`) on the scale of
the columns the caller gave. Terms may be crossed, nested or partially crossed, scalar or
vector; with one term this is the one-factor solver behind `LinearMixedEffectsModel`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from ...errors import SpecError
from .. import _rows
from .conditional import conditional_blocks
from .criterion import Criterion
from .optimize import minimise, rough_minimum
from .pls import PLSSolve, cho_inverse

__all__ = ["REBlock", "MixedFit", "fit_mixed", "relative_factor", "singular_components"]


class REBlock(Protocol):
    """What the algebra needs of one random-effect term."""

    codes: np.ndarray   # (n,) intp: each row's level of the term's factor, 0..n_levels-1
    n_levels: int       # K_t
    Z: np.ndarray       # (n, q_t) float64: the term's raw columns (ones for an intercept), in term order


@dataclass
class MixedFit:
    """Everything `fit_mixed` estimates, per term in the order the terms were given, and how sure it is."""

    beta: np.ndarray          # (p,)
    beta_cov: np.ndarray      # (p, p)  sigma^2 (R_X'R_X)^-1 as lme4's vcov
    sigma2: float
    theta: np.ndarray         # lme4's layout: per term, lower triangle of Lambda_t column-major
    covs: list[np.ndarray]    # per term (q_t, q_t): sigma^2 Lambda_t Lambda_t'
    b: list[np.ndarray]       # per term (K_t, q_t): conditional modes (BLUPs) on the raw Z scale
    b_sd: list[np.ndarray]    # per term (K_t, q_t): conditional sds (lme4's condVar diagonal)
    criterion: float          # REML criterion or -2 logLik (ML), exactly lme4's deviance()/REMLcrit()
    llf: float
    reml: bool
    converged: bool           # True only at a certified optimum
    message: str
    boundary: list[tuple[int, int]]   # (term index, component) of singular directions
    n_evals: int
    gradient_max: float
    newton_decrement: float
    restarts: int = 0         # restarts from a descent direction (saddles escaped)


@dataclass
class _Block:
    codes: np.ndarray
    n_levels: int
    Z: np.ndarray


def _check(X: _rows.Tall, y: np.ndarray, blocks: Sequence[REBlock], max_evals: int) -> tuple[
        _rows.Tall, np.ndarray, list[_Block]]:
    if not isinstance(X, _rows.WithIntercept):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise SpecError("X", f"expected a 2-D array (rows x fixed-effect columns), got shape {X.shape}")
    y = np.asarray(y, dtype=float)
    n = X.shape[0]
    if y.shape != (n,):
        raise SpecError("y", f"expected {n} values (one per row of X), got shape {y.shape}")
    if not _rows.all_finite(X) or not np.all(np.isfinite(y)):
        raise SpecError("X" if not _rows.all_finite(X) else "y", "contains NaN or infinite values")
    if not blocks:
        raise SpecError("blocks", "at least one random-effect term is needed (a model without one is OLS)")
    if isinstance(max_evals, bool) or not isinstance(max_evals, (int, np.integer)) or max_evals < 1:
        raise SpecError("max_evals", f"expected a positive integer, got {max_evals!r}")
    out = []
    for i, b in enumerate(blocks):
        codes = np.asarray(b.codes)
        Z = np.asarray(b.Z, dtype=float)
        K = int(b.n_levels)
        if Z.ndim == 1:
            Z = Z[:, None]
        if codes.shape != (n,) or Z.ndim != 2 or Z.shape[0] != n or Z.shape[1] < 1:
            raise SpecError(f"blocks[{i}]", f"codes must have shape ({n},) and Z ({n}, q >= 1); got "
                                            f"{codes.shape} and {Z.shape}")
        if not np.issubdtype(codes.dtype, np.integer) or K < 1 or codes.min() < 0 or codes.max() >= K:
            raise SpecError(f"blocks[{i}].codes", f"expected integer levels in 0..{K - 1} (n_levels={K})")
        if not np.all(np.isfinite(Z)):
            raise SpecError(f"blocks[{i}].Z", "contains NaN or infinite values")
        out.append(_Block(codes.astype(np.intp, copy=False), K, Z))   # not a copy of a fold's codes when they are intp
    return X, y, out


def standardise(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Z_s = Z T`` with the slope columns centred and scaled; returns ``Z_s`` and ``T``.

    Column 0 is the random intercept (a column of ones), which centring needs; a term
    without one is left as it is.
    """
    q = Z.shape[1]
    T = np.eye(q)
    if q == 1 or not np.abs(Z[:, 0] - 1.0).max() <= 1e-8 + 1e-5:    # np.allclose(Z[:, 0], 1), in one pass
        return Z, T
    for k in range(1, q):
        m, s = float(Z[:, k].mean()), float(Z[:, k].std())
        if s > 0:
            T[0, k], T[k, k] = -m / s, 1.0 / s
    return Z @ T, T


#: Block R (every term but the largest, levels x columns) above which a model of scalar
#: terms starts from each term fitted alone. Below it a joint evaluation costs about what a
#: one-term one does, and the joint optimiser from the identity needs no more of them than
#: the starts would (Penicillin: 15 either way, 33 in all with the starts); above it the
#: dense block makes joint evaluations dear and the starts save many (InstEval: 1.4 s with
#: them, 3.3 s without).
PREFIT_MIN_EFFECTS = 200


@functools.lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    # Inspecting the loaded BLAS libraries takes milliseconds: do it once.
    return ThreadpoolController()


def fit_mixed(X: _rows.Tall, y: np.ndarray, blocks: Sequence[REBlock], *, reml: bool = True,
              max_evals: int = 10_000, callback: Callable[[int, float], None] | None = None,
              theta0: np.ndarray | None = None, max_restarts: int = 8) -> MixedFit:
    """Fit a linear mixed model by minimising lme4's profiled (RE)ML criterion, and certify the optimum.

    Parameters
    ----------
    X : (n, p) fixed-effects design, intercept included, full column rank (the caller checks):
        an array, or `_rows.WithIntercept` of the other columns, which is read a block of rows
        at a time and never made whole.
    y : (n,) response.
    blocks : the random-effect terms (`REBlock`: ``codes``, ``n_levels``, ``Z``), in the
        formula's order; theta and every per-term output follow this order.
    reml : REML (default) or ML.
    max_evals : criterion evaluations at most (a fit that reaches it is not converged).
    callback : called as ``callback(n_evals, criterion)`` at each evaluation of the optimiser.
    theta0 : starting theta in lme4's layout for the raw ``Z`` (default: ``Lambda_t = I``
        on the centred and scaled columns).
    max_restarts : restarts from a descent direction (saddles, Newton steps) at most.

    Returns
    -------
    MixedFit

    Raises
    ------
    SpecError
        A shape, a level code or a value that cannot be fitted, naming the argument.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(0)
    >>> a, b = np.repeat(np.arange(20), 10), np.tile(np.arange(10), 20)
    >>> y = rng.normal(size=20)[a] + rng.normal(size=10)[b] + rng.normal(size=200)
    >>> ones = np.ones((200, 1))
    >>> fit = fit_mixed(np.ones((200, 1)), y, [SimpleNamespace(codes=a, n_levels=20, Z=ones),
    ...                                        SimpleNamespace(codes=b, n_levels=10, Z=ones)])
    >>> fit.converged, len(fit.theta)
    (True, 2)
    """
    X, y, checked = _check(X, y, blocks, max_evals)
    # Every BLAS call per level is on matrices of a few columns, where threads only add
    # their start-up cost; the one dense factor of block R is small enough (the sort
    # keeps it the smaller side) that a second thread, on a shared machine, rarely helps.
    with _threadpools().limit(limits=1, user_api="blas"):
        return _fit(X, y, checked, reml, max_evals, callback, theta0, max_restarts)


def _fit(X: _rows.Tall, y: np.ndarray, blocks: list[_Block], reml: bool, max_evals: int,
         callback: Callable[[int, float], None] | None, theta0: np.ndarray | None, max_restarts: int) -> MixedFit:
    scaled = [standardise(b.Z) for b in blocks]
    Ts = [T for _, T in scaled]
    crit = Criterion(X, y, [b.codes for b in blocks], [Z for Z, _ in scaled], [b.n_levels for b in blocks], reml)
    theta = np.zeros(crit.dim)
    pre_evals = 0
    # Each term alone first when that pays (see `PREFIT_MIN_EFFECTS`).
    prefit = theta0 is None and len(blocks) > 1 and (crit.stats.m > PREFIT_MIN_EFFECTS
                                                     or any(t.q > 1 for t in crit.terms))
    for i, (t, T) in enumerate(zip(crit.terms, Ts)):
        if prefit:
            # One block: O(K q^2 p) per evaluation, milliseconds. Its optimum carries the
            # term's scale, which the identity start lacks by orders of magnitude when
            # terms differ (InstEval: departments vs lecturers), and a vector term's
            # correlations.
            alone = Criterion(X, y, [blocks[i].codes], [scaled[i][0]], [blocks[i].n_levels], reml)
            start = np.eye(t.q)[t.rows, t.cols]
            first = rough_minimum(alone, start, max_evals=200)
            pre_evals += alone.n_evals
            lam = t.lam(np.concatenate([np.zeros(t.offset), first]))
        elif theta0 is None:
            lam = np.eye(t.q)
        else:
            # Lambda_s Lambda_s' = T^-1 Lambda Lambda' T^-T; a singular start stays singular.
            Tinv = np.linalg.inv(T)
            lam0 = t.lam(np.asarray(theta0, dtype=float))
            lam = relative_factor(Tinv @ lam0 @ lam0.T @ Tinv.T)
        theta[t.offset:t.offset + t.size] = lam[t.rows, t.cols]
    out = minimise(crit, theta, max_evals, max_restarts, callback)
    theta = out.theta
    s = crit.solution(theta)
    value = s.value
    sigma2 = float(s.pwrss / crit.dof)
    beta_cov = sigma2 * cho_inverse(s.RX) if crit.p else np.zeros((0, 0))
    cond = s.cond
    covs, bs, sds, thetas, boundary = [], [], [], [], []
    for i, (t, T) in enumerate(zip(crit.terms, Ts)):
        pos = crit.order.index(i)
        lam_s = s.lams[pos]
        # Back to the raw Z: Sigma = T Sigma_s T', b = T b_s.
        cov_rel = T @ lam_s @ lam_s.T @ T.T
        lam = relative_factor(cov_rel)
        covs.append(sigma2 * cov_rel)
        bs.append((s.u[pos] @ lam_s.T) @ T.T)
        TL = T @ lam_s
        var = sigma2 * np.einsum("ij,kjl,il->ki", TL, cond[pos], TL)        # diag of T L Minv_k L' T'
        sds.append(np.sqrt(np.clip(var, 0.0, None)))
        thetas.append(lam[t.rows, t.cols])
        boundary += [(i, j) for j in singular_components(lam)]
    cert = out.certificate
    message = out.message
    if out.converged:
        # The claim follows what is reported: a fit with a singular covariance says so.
        message = "optimum on the boundary (a singular covariance)" if boundary else "optimum"
    return MixedFit(
        beta=crit.beta_ols + s.beta, beta_cov=beta_cov, sigma2=sigma2, theta=np.concatenate(thetas), covs=covs,
        b=bs, b_sd=sds, criterion=value, llf=-value / 2.0, reml=reml, converged=out.converged,
        message=message, boundary=boundary, n_evals=crit.n_evals + pre_evals,
        gradient_max=np.nan if cert is None else cert.gradient_max,
        newton_decrement=np.nan if cert is None else cert.newton_decrement, restarts=out.restarts)


def _conditional_blocks(crit: Criterion, s: PLSSolve) -> list[np.ndarray]:
    """Diagonal blocks of ``M^-1`` per term (algebra order): `conditional.conditional_blocks`."""
    return conditional_blocks(crit.stats, s)


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
