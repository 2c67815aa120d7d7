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

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from .. import _batched
from .pls import Statistics

__all__ = ["OneTerm", "Solution"]


class OneTerm:
    """The criterion of one term's ``Lambda``, with the statistics laid out once for its evaluations.

    Layout: every per-level quantity is held *effect-major*, ``(q, K, r)`` with ``r = p + 1 + q``
    the columns of ``[H_k G_k]``, so that ``Lambda'[H_k G_k]`` for all levels is one product
    ``Lambda' Bt`` and each sum over levels below is one matrix product over the ``(effect,
    level)`` rows (at most a few dozen numpy calls an evaluation, whatever ``K``).
    """

    def __init__(self, st: Statistics, dof: int, reml: bool) -> None:
        G, H = st.G, st.H
        K, q, p1 = H.shape
        self.K, self.q, self.p1, self.r = K, q, p1, p1 + q
        self.dof, self.reml, self.A_FF = dof, reml, st.A_FF
        # Bt[i, (k, c)] = [H_k G_k][i, c]: row i of every level's [H_k G_k] side by side.
        self.Bt = np.ascontiguousarray(np.concatenate((H, G), axis=2).transpose(1, 0, 2)).reshape(q, K * self.r)
        self.Gf = G.reshape(K, q * q)                                  # vec(G_k), row-major
        self.eye = np.eye(q).ravel()
        Ht = np.ascontiguousarray(H.transpose(1, 0, 2))                # (q, K, p+1)
        self.Ht2 = Ht.reshape(q * K, p1)
        self.HX = Ht[..., :p1 - 1]                                     # (q, K, p): H_X per effect row

    def solution(self, lam: np.ndarray) -> Solution:
        """The PLS solution at ``Lambda = lam``: what `pls.solve` and `conditional.conditional_blocks` give
        for one term, by this layout (the fit record is read from it: `fit.fit_mixed`)."""
        K, q, p1, r = self.K, self.q, self.p1, self.r
        p = p1 - 1
        Y = (lam.T @ self.Bt).reshape(q, K, r)
        M = self.Gf @ (lam[:, None, :, None] * lam[None, :, None, :]).reshape(q * q, q * q) + self.eye
        # Solved against [Lambda'H_k, I]: the last q columns give M_k^-1 itself.
        eye = np.broadcast_to(np.eye(q)[:, None, :], (q, K, q))
        S, logdet_L = _solve(M, np.concatenate((Y[:, :, :p1], eye), axis=2))
        D = self.A_FF - Y.reshape(q * K, r)[:, :p1].T @ S.reshape(q * K, -1)[:, :p1]
        if p:
            LX, info = lapack.dpotrf(D[:p, :p], lower=1, clean=1)
            if info != 0 or not (LX.diagonal() > 0).all():
                raise np.linalg.LinAlgError("matrix is not positive definite")
            ly = lapack.dtrtrs(LX, D[:p, p], lower=1)[0]
            pwrss = float(D[p, p] - ly @ ly)
            logdet_RX = 2.0 * float(np.log(LX.diagonal()).sum())
            beta = lapack.dtrtrs(LX, ly, lower=1, trans=1)[0]
        else:
            LX, beta = np.zeros((0, 0)), np.zeros(0)
            pwrss, logdet_RX = float(D[0, 0]), 0.0
        value = np.inf
        if pwrss > 0:
            value = logdet_L + self.dof * (1.0 + np.log(2.0 * np.pi * pwrss / self.dof))
            value = float(value + logdet_RX) if self.reml else float(value)
        u = S[:, :, p] - S[:, :, :p] @ beta                   # (q, K): M_k^-1 Lambda'(H_yk - H_Xk beta)
        Minv = np.ascontiguousarray(S[:, :, p1:].transpose(1, 0, 2))
        return Solution(value, pwrss, LX, beta, [lam], [np.ascontiguousarray(u.T)], [Minv])

    def __call__(self, lam: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None]:
        """The profiled (RE)ML criterion at ``Lambda = lam``; with ``gradient``, ``G`` = d crit / d Lambda, transposed.

        The same formulas as `pls.solve` and `criterion.gradient` with block R empty (see
        there); only the order of a few sums differs, so the results agree to rounding.
        Returns ``inf`` (and no gradient) where the criterion is not finite.

        Raises
        ------
        numpy.linalg.LinAlgError
            ``R_X'R_X`` is not positive definite (collinear fixed effects).
        """
        K, q, p1, r = self.K, self.q, self.p1, self.r
        p = p1 - 1
        # Y[a, k, :] = (Lambda'[H_k G_k])[a, :]: Lambda'H_k in columns :p1, Lambda'G_k after.
        Y = (lam.T @ self.Bt).reshape(q, K, r)
        # vec(M_k) = vec(Lambda'G_k Lambda + I) = (Lambda (x) Lambda)' vec(G_k): one product for all levels.
        M = self.Gf @ (lam[:, None, :, None] * lam[None, :, None, :]).reshape(q * q, q * q) + self.eye
        S, logdet_L = _solve(M, Y if gradient else Y[:, :, :p1])     # S[:, k] = M_k^-1 Lambda'[H_k G_k]
        # [X y] after eliminating the random effects: A_FF - sum_k H_k'Lambda M_k^-1 Lambda'H_k,
        # the sum over (effect, level) rows as one product.
        D = self.A_FF - Y.reshape(q * K, r)[:, :p1].T @ S.reshape(q * K, -1)[:, :p1]
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
        dof = self.dof
        value = logdet_L + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
        if self.reml:
            value += logdet_RX
        if not gradient:
            return float(value), None
        w = np.empty(p1)                                       # [-beta, 1]: H_k w = Z_k'(y - X beta)
        w[:p] = -lapack.dtrtrs(LX, ly, lower=1, trans=1)[0] if p else 0.0
        w[p] = 1.0
        S2 = S.reshape(q * K, r)
        u = (S2[:, :p1] @ w).reshape(q, K)                     # spherical random effects, u[a, k]
        GL = Y[:, :, p1:]                                      # GL[a, k, j] = (G_k Lambda)[j, a]
        # Z'e per level (rows: effect j), e the residual y - X beta - Z Lambda u.
        Ztr = (self.Ht2 @ w).reshape(q, K) - np.einsum("akj,ak->jk", GL, u)
        # d log|M| (the sum of M_k^-1 Lambda'G_k) and d r^2 (envelope theorem), as `criterion.gradient`.
        grad = 2.0 * S[:, :, p1:].sum(axis=1) - (2.0 * dof / pwrss) * (u @ Ztr.T)
        if self.reml and p:
            # d log|R_X|^2 = -2 sum_k F_k S^-1 Q_k' with F_k = M_k^-1 Lambda'H_Xk, Q_k = H_Xk - G_k Lambda F_k.
            F = S[:, :, :p]                                     # F[a, k, c] = F_k[a, c]
            Q = self.HX - np.einsum("akj,akc->jkc", GL, F)      # Q[j, k, c] = Q_k[j, c]
            # F_k S^-1 for all levels in one LAPACK solve: (F S^-1)' = S^-1 F', F' Fortran-ordered as it is.
            FSt, info = lapack.dpotrs(LX, F.reshape(q * K, p).T, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("dpotrs failed")
            grad -= 2.0 * (FSt.T.reshape(q, K * p) @ Q.reshape(q, K * p).T)
        return float(value), grad

    def hessian(self, lam: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The exact second derivatives of the criterion in theta (``lam[rows, cols] = theta``).

        In the marginal form: with ``V = I + Z C Z'``, ``C = Lambda Lambda'``, the criterion is
        ``log|V| (+ log|X'V^-1 X|) + dof log(y'Py)``, ``P`` the projection of GLS. With ``C_i``
        and ``C_ij`` the derivatives of ``C`` (``E_i Lambda' + Lambda E_i'`` and ``E_i E_j' +
        E_j E_i'``, ``E_i`` the unit at theta entry i) and ``N = Z'PZ`` (REML; ``Z'V^-1 Z`` for
        the determinant under ML):

        - ``d2 log|.| = tr(N C_ij) - tr(N C_i N C_j)``,
        - ``d2 y'Py = 2 s'C_i N C_j s - s'C_ij s`` with ``s = Z'Py``, ``d y'Py = -s'C_i s``.

        Per level, ``Z_k'V_k^-1 [Z_k F_k] = [G_k H_k] - G_k Lambda M_k^-1 Lambda'[G_k H_k]``
        (``W_k`` and ``B_k``), and ``N = diag(W_k) - Q Q'`` with ``Q_k = B_kX R_X^-1``: every
        sum over pairs of levels is a product of sums over levels (a few matrix products,
        whatever ``K``).

        Raises
        ------
        numpy.linalg.LinAlgError
            Some ``M_k`` or ``R_X'R_X`` is not positive definite.
        """
        K, q, p1, r = self.K, self.q, self.p1, self.r
        p = p1 - 1
        Y = (lam.T @ self.Bt).reshape(q, K, r)
        M = self.Gf @ (lam[:, None, :, None] * lam[None, :, None, :]).reshape(q * q, q * q) + self.eye
        S, _ = _solve(M, Y)
        # [B_k W_k][j, :] = [H_k G_k][j, :] - (G_k Lambda M_k^-1 Lambda'[H_k G_k])[j, :]
        BW = self.Bt.reshape(q, K, r).copy()
        for a in range(q):                                      # q <= a few: broadcasts, not a K-long einsum
            BW -= Y[a, :, p1:].T[:, :, None] * S[a][None, :, :]
        D = self.A_FF - Y.reshape(q * K, r)[:, :p1].T @ S.reshape(q * K, r)[:, :p1]
        w = np.zeros(p1)
        w[p] = 1.0
        if p:
            LX, info = lapack.dpotrf(D[:p, :p], lower=1, clean=1)
            if info != 0 or not (LX.diagonal() > 0).all():
                raise np.linalg.LinAlgError("matrix is not positive definite")
            ly = lapack.dtrtrs(LX, D[:p, p], lower=1)[0]
            w[:p] = -lapack.dtrtrs(LX, ly, lower=1, trans=1)[0]
            # Q_k = B_kX R_X^-1 (R_X = LX'): rows (effect, level), solved for all at once.
            Q = lapack.dtrtrs(LX, BW[:, :, :p].reshape(q * K, p).T, lower=1)[0].T.reshape(q, K, p)
        else:
            Q = np.zeros((q, K, 0))
        pwrss = float(w @ D @ w)
        s = BW[:, :, :p1] @ w                                   # (q, K): Z_k'Py
        W = BW[:, :, p1:].transpose(1, 0, 2).reshape(K, q * q)  # vec(W_k)
        Qm = Q.transpose(1, 0, 2).reshape(K, q * p)             # row k: vec(Q_k)
        dim = len(rows)
        E = np.zeros((dim, q, q))
        E[np.arange(dim), rows, cols] = 1.0
        C1 = E @ lam.T
        C1 = C1 + C1.transpose(0, 2, 1)                         # C_i
        A = C1.reshape(dim, q * q)                              # row i: vec(C_i)
        same = cols[:, None] == cols[None, :]                   # tr(C_ij A) = 2 [c_i = c_j] A[r_i, r_j]
        # Sums over levels, indexed ((a, b), (c, d)): sum_k X_k[a, b] Y_k[c, d].
        WW = (W.T @ W).reshape(q, q, q, q)
        ss = (s[:, None, :] * s[None, :, :]).reshape(q * q, K).T  # vec(s_k s_k')
        sW = (ss.T @ W).reshape(q, q, q, q)                     # sum_k s_k[a] s_k[d] W_k[b, c] at (a, d, b, c)
        Ss = ss.sum(axis=0).reshape(q, q)
        Wsum = W.sum(axis=0).reshape(q, q)
        # tr(C_i A C_j B) summed over levels = C_i[a, b] A[b, c] C_j[c, d] B[d, a].
        tr_WW = A @ WW.transpose(3, 0, 1, 2).reshape(q * q, q * q) @ A.T
        det_part = 2.0 * same * Wsum[rows[:, None], rows[None, :]] - tr_WW
        if self.reml and p:
            # N = diag(W_k) - Q Q' (REML): the terms of Q Q' with P_k = Q_k Q_k' per level.
            Pk = (Q[:, None] * Q[None, :]).sum(axis=3).reshape(q * q, K).T   # vec(Q_k Q_k')
            Psum = Pk.sum(axis=0).reshape(q, q)
            WP = (W.T @ Pk).reshape(q, q, q, q)
            tr_WP = A @ WP.transpose(3, 0, 1, 2).reshape(q * q, q * q) @ A.T
            QQ = (Qm.T @ Qm).reshape(q, p, q, p).transpose(0, 2, 1, 3)   # sum_k Q_k[a, c] Q_k[b, d]
            R = A @ QQ.reshape(q * q, p * p)                    # vec(R_i), R_i = sum_k Q_k'C_i Q_k
            det_part -= 2.0 * same * Psum[rows[:, None], rows[None, :]]
            det_part += tr_WP + tr_WP.T - R @ R.T
        r2_i = -(A @ Ss.ravel())
        sQ = (s @ Qm).reshape(q, q, p)                          # sum_k s_k[a] Q_k[b, :]
        v = A @ sQ.reshape(q * q, p)                            # sum_k s_k'C_i Q_k
        sNs = A @ sW.transpose(0, 2, 3, 1).reshape(q * q, q * q) @ A.T - v @ v.T
        r2_ij = 2.0 * sNs - 2.0 * same * Ss[rows[:, None], rows[None, :]]
        dof = self.dof
        out = det_part + dof * (r2_ij / pwrss - np.outer(r2_i, r2_i) / pwrss ** 2)
        return (out + out.T) / 2


@dataclass
class Solution:
    """What the fit record reads at the optimum (`criterion.Criterion.solution`), algebra order of terms."""

    value: float                 # the criterion (inf where r^2 <= 0)
    pwrss: float                 # r^2
    RX: np.ndarray               # (p, p) lower Cholesky factor of R_X'R_X
    beta: np.ndarray             # (p,) fixed effects of y residualised on X
    lams: list[np.ndarray]       # Lambda_t
    u: list[np.ndarray]          # (K_t, q_t) spherical random effects
    cond: list[np.ndarray]       # (K_t, q_t, q_t) diagonal blocks of M^-1 (`conditional.conditional_blocks`)


def _solve(M: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """``S[:, k] = M_k^-1 Y[:, k]`` for ``M`` the ``(K, q q)`` rows of ``vec(M_k)`` (positive definite)
    and ``Y`` effect-major ``(q, K, m)``; and ``sum_k log|M_k|``. ``S`` is contiguous.

    ``q <= 2`` (a random intercept, with one slope) in closed form: for ``q = 2`` the
    inverse is the adjugate over the determinant, whose ``a c - b^2`` is the product of
    the Cholesky pivots ``a`` and ``c - b^2 / a``. Larger ``q`` by the batched Cholesky factor.

    Raises
    ------
    numpy.linalg.LinAlgError
        Some ``M_k`` is not positive definite.
    """
    q = Y.shape[0]
    if q == 1:
        a = M[:, 0]
        if not (a > 0).all():
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return Y / a[None, :, None], float(np.log(a).sum())
    if q == 2:
        a, b, c = M[:, 0:1], M[:, 1:2], M[:, 3:4]              # (K, 1): broadcast over Y's columns
        det = a * c - b * b
        if not (a.min() > 0 and det.min() > 0):                # a NaN fails too
            raise np.linalg.LinAlgError("matrix is not positive definite")
        # M_k^-1 = [[c, -b], [-b, a]] / det, applied to both rows of Y at once per effect.
        S = np.empty(Y.shape)
        y0, y1 = Y[0], Y[1]
        np.divide(c * y0 - b * y1, det, out=S[0])
        np.divide(a * y1 - b * y0, det, out=S[1])
        return S, float(np.log(det).sum())
    K = M.shape[0]
    chol = _batched.cholesky(M.reshape(K, q, q))
    S = _batched.cho_solve(chol, np.swapaxes(Y, 0, 1))          # (K, q, m)
    return np.ascontiguousarray(np.swapaxes(S, 0, 1)), _batched.logdet(chol)
