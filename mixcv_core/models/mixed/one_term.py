"""The criterion and its gradient for one random-effect term, in as few array operations as the algebra needs.

With one term, block R of `pls` is empty and an evaluation is ``K`` independent
``q x q`` problems plus one ``p x p`` factor: ``O(K q^2 p)`` arithmetic, which on a
thousand rows is microseconds. What an evaluation then costs is the number of numpy
calls, and the general route (`pls.solve` followed by `criterion.gradient`, written for
any number of terms) makes about 160 of them. This module computes the same quantities —
lme4's profiled deviance (``criterion`` module docstring) and its exact gradient — for the
one-term case with about a third as many, and is what the optimiser calls; the fit record
is still read from `pls.solve` at the optimum.

Notation (`pls.Statistics`, algebra order): ``G_k = Z_k'Z_k`` ``(q, q)`` and ``H_k = Z_k'[X y]``
``(q, p+1)`` per level ``k``, ``A_FF = [X y]'[X y]``, ``M_k = Lambda'G_k Lambda + I``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from .. import _batched
from .banded import cho_inverse
from .pls import Statistics

__all__ = ["evaluate"]


def evaluate(st: Statistics, lam: np.ndarray, dof: int, reml: bool, gradient: bool) -> tuple[float, np.ndarray | None]:
    """The profiled (RE)ML criterion at ``Lambda = lam``; with ``gradient``, ``G`` = d crit / d Lambda, transposed.

    The same formulas as `pls.solve` and `criterion.gradient` with block R empty (see
    there); only the order of a few sums differs, so the results agree to rounding.
    Returns ``inf`` (and no gradient) where the criterion is not finite.

    Raises
    ------
    numpy.linalg.LinAlgError
        ``R_X'R_X`` is not positive definite (collinear fixed effects).
    """
    G, H = st.G, st.H
    K, q, p1 = H.shape
    p = p1 - 1
    lamT = lam.T
    # Products with Lambda as single BLAS calls on the stacked levels (`_batched`): a
    # broadcast matmul over the stack pays per level and is slower from a hundred levels.
    LtG = _batched.left(lamT, G)                            # Lambda'G_k
    M = _batched.right(LtG, lam)
    diag = np.arange(q)
    M[:, diag, diag] += 1.0
    LtH = _batched.left(lamT, H)
    sol, logdet_L = _solve(M, np.concatenate((LtH, LtG), axis=2) if gradient else LtH)
    sol1 = sol[..., :p1]                                   # M_k^-1 Lambda'H_k
    # [X y] after eliminating the random effects: A_FF - sum_k H_k'Lambda M_k^-1 Lambda'H_k.
    D = st.A_FF - LtH.reshape(K * q, p1).T @ sol1.reshape(K * q, p1)
    if p:
        LX, info = lapack.dpotrf(D[:p, :p], lower=1, clean=1)
        dX = LX.diagonal()
        if info != 0 or not (dX > 0).all():
            raise np.linalg.LinAlgError("matrix is not positive definite")
        ly = lapack.dtrtrs(LX, D[:p, p], lower=1)[0]
        pwrss = float(D[p, p] - ly @ ly)
        logdet_RX = 2.0 * float(np.log(dX).sum())
    else:
        pwrss, logdet_RX = float(D[0, 0]), 0.0
    if not pwrss > 0:
        return np.inf, None
    value = logdet_L + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
    if reml:
        value += logdet_RX
    if not gradient:
        return float(value), None
    beta = lapack.dtrtrs(LX, ly, lower=1, trans=1)[0] if p else np.zeros(0)
    H_X = H[..., :p]
    u = sol1[..., p] - sol1[..., :p] @ beta                # spherical random effects (K, q)
    # Z'e per level, e the residual y - X beta - Z Lambda u.
    Ztr = H[..., p] - H_X @ beta - (G @ (u @ lamT)[..., None])[..., 0]
    # d log|M| (the sum of M_k^-1 Lambda'G_k) and d r^2 (envelope theorem), as `criterion.gradient`.
    grad = 2.0 * sol[..., p1:].sum(axis=0) - (2.0 * dof / pwrss) * (u.T @ Ztr)
    if reml and p:
        # d log|R_X|^2 = -2 sum_k F_k S^-1 Q_k' with F_k = M_k^-1 Lambda'H_Xk, Q_k = H_Xk - G_k Lambda F_k.
        F1 = sol1[..., :p]
        Q1 = H_X - G @ _batched.left(lam, F1)
        grad -= 2.0 * _batched.sum_products(_batched.right(F1, cho_inverse(LX)), np.swapaxes(Q1, 1, 2))
    return float(value), grad


def _solve(M: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, float]:
    """``M_k^-1 B_k`` for a ``(K, q, q)`` stack of positive definite matrices, and ``sum_k log|M_k|``.

    ``q <= 2`` (a random intercept, with one slope) in closed form: for ``q = 2`` the
    inverse is the adjugate over the determinant, whose ``a c - b^2`` is the product of
    the Cholesky pivots ``a`` and ``c - b^2 / a``, with the same rounding. Larger ``q`` by
    the batched Cholesky factor.

    Raises
    ------
    numpy.linalg.LinAlgError
        Some ``M_k`` is not positive definite.
    """
    q = M.shape[1]
    if q == 1:
        a = M[:, 0, :]                                         # (K, 1)
        if not (a > 0).all():
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return B / a[:, :, None], float(np.log(a).sum())
    if q == 2:
        a, b, c = M[:, 0, 0:1], M[:, 1, 0:1], M[:, 1, 1:2]    # (K, 1): broadcast over B's columns
        det = a * c - b * b
        if not ((a > 0).all() and (det > 0).all()):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        out = np.empty_like(B)
        b0, b1 = B[:, 0, :], B[:, 1, :]
        np.divide(c * b0 - b * b1, det, out=out[:, 0, :])
        np.divide(a * b1 - b * b0, det, out=out[:, 1, :])
        return out, float(np.log(det).sum())
    chol = _batched.cholesky(M)
    return _batched.cho_solve(chol, B), _batched.logdet(chol)
