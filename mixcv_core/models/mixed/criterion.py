"""The profiled deviance of a linear mixed model as a function of theta, lme4's definitions.

The model, with any number of random-effect terms ``t`` (``q_t`` columns on ``K_t`` levels)::

    y = X beta + sum_t Z_t b_t + e,    b_tk ~ N(0, sigma^2 Lambda_t Lambda_t'),    e ~ N(0, sigma^2 I)

Following lme4 (Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1), sec. 3),
``beta``, ``sigma^2`` and the spherical random effects ``u`` (``b = Lambda u``) are
profiled out, leaving a criterion in ``theta`` alone (eqs. 34 and 41)::

    ML:    d(theta)   = log|L|^2 + n [1 + log(2 pi r^2 / n)]
    REML:  d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) [1 + log(2 pi r^2 / (n - p))]

where ``L L' = Lambda'Z'Z Lambda + I`` (`pls.solve`) and ``r^2`` is the penalised
residual sum of squares. ``theta`` is lme4's: per term the lower triangle of
``Lambda_t`` column-major, terms in the order given.

The gradient is exact for any number of terms (`gradient`), at about twice the cost of
the criterion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _batched, _rows
from . import banded, one_term, pls
from .conditional import conditional_blocks
from .pls import PLSSolve, Statistics, TermShape

__all__ = ["Criterion"]

class Criterion:
    """The profiled (RE)ML deviance of theta, from ``A = [Z X y]'[Z X y]`` computed once.

    Parameters
    ----------
    X : (n, p) fixed-effects design, full column rank: an array, or `_rows.WithIntercept`
        (an intercept column and the columns of an array, never made whole).
    y : (n,) response.
    codes : per term, (n,) level of each row, 0..K_t-1.
    Zs : per term, (n, q_t) the term's columns.
    levels : per term, K_t.
    reml : bool
    """

    def __init__(self, X: _rows.Tall, y: np.ndarray, codes: Sequence[np.ndarray], Zs: Sequence[np.ndarray],
                 levels: Sequence[int], reml: bool) -> None:
        n, p = X.shape
        self.n, self.p, self.reml = n, p, reml
        self.terms: list[TermShape] = pls.term_shapes([Z.shape[1] for Z in Zs], levels)
        self.dim = sum(t.size for t in self.terms)
        # The algebra's order: most levels first, so block 1 stays block diagonal
        # (ties keep the given order).
        self.order = [int(i) for i in np.argsort(-np.asarray(levels), kind="stable")]
        # Work with y residualised on X: the criterion is unchanged (beta absorbs the
        # shift), and r^2 then cancels against the OLS residual sum of squares instead
        # of the raw y'y, which keeps full precision for large means. (Normal equations:
        # X has full column rank, checked by the caller; beta is solved for exactly.)
        # X'X and X'y a block of rows at a time (`_rows`), added in row order; from the whole X
        # when it is one block.
        self.beta_ols = np.linalg.solve(*_gram(X, y)) if p else np.zeros(0)
        yr = y - _rows.matvec(X, self.beta_ols)
        self.stats = Statistics(X, yr, [codes[i] for i in self.order], [Zs[i] for i in self.order],
                                [levels[i] for i in self.order])
        # Block R by blocks when its pattern is narrow after reordering (`banded`); decided
        # once, here, from the codes. The optimiser's evaluations take it; `solve` stays
        # dense, so what is read from the final solve (the whole ``LD``) is as before.
        r_order = self.order[1:]
        self.band = banded.plan([codes[i] for i in r_order], [Zs[i].shape[1] for i in r_order],
                                [levels[i] for i in r_order], codes[self.order[0]],
                                levels[self.order[0]]) if len(levels) > 1 else None
        self.n_evals = 0
        self.dof = n - p if reml else n
        # One term: the optimiser's evaluations take `one_term`'s short route (same values;
        # the fit record is still read from `pls.solve`).
        self.single_term = len(levels) == 1
        self._one = one_term.OneTerm(self.stats, self.dof, reml) if self.single_term else None
        self._last: tuple[bytes, float, np.ndarray] | None = None

    # -- theta layout ------------------------------------------------------------------
    def lams(self, theta: np.ndarray) -> list[np.ndarray]:
        """``Lambda_t`` per term, in the given order."""
        return [t.lam(theta) for t in self.terms]

    def index(self, term: int, col: int) -> np.ndarray:
        """Indices in theta of column ``col`` of ``Lambda_term``."""
        t = self.terms[term]
        return t.offset + np.flatnonzero(t.cols == col)

    def normalise(self, theta: np.ndarray) -> np.ndarray:
        """The same covariances with every column of every Lambda_t turned to a non-negative diagonal.

        The criterion depends on ``Lambda_t`` only through ``Lambda_t Lambda_t'``, which a
        column's sign leaves unchanged: the optimiser runs unconstrained (see `optimize`).
        """
        out = np.array(theta, dtype=float)
        for t in self.terms:
            lam = t.lam(theta)
            lam = lam * np.where(np.diag(lam) < 0, -1.0, 1.0)[None, :]
            out[t.offset:t.offset + t.size] = lam[t.rows, t.cols]
        return out

    # -- evaluation --------------------------------------------------------------------
    def solve(self, theta: np.ndarray, gradient: bool = False, banded: bool = False) -> PLSSolve:
        """`pls.solve` at theta; ``banded``: through the block-tridiagonal factor when there is a plan."""
        lams = self.lams(theta)
        return pls.solve(self.stats, [lams[i] for i in self.order], gradient, self.band if banded else None)

    def solution(self, theta: np.ndarray) -> one_term.Solution:
        """What the fit record reads at theta: the PLS solution, the criterion and the conditional blocks."""
        theta = np.asarray(theta, dtype=float)
        if self._one is not None:
            return self._one.solution(self.terms[0].lam(theta))
        s = self.solve(theta)
        LX = s.LD[self.stats.m:, self.stats.m:]
        return one_term.Solution(self.value_of(s), float(s.pwrss), LX, s.beta, s.lams, s.u,
                                 conditional_blocks(self.stats, s))

    def value_of(self, s: PLSSolve) -> float:
        if not s.pwrss > 0:
            return np.inf
        dof = self.dof
        value = s.logdet_L + dof * (1 + np.log(2 * np.pi * s.pwrss / dof))
        if self.reml:
            value += s.logdet_RX
        return float(value)

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        theta = np.asarray(theta, dtype=float)
        try:
            if self._one is not None:
                return self._one(self.terms[0].lam(theta), False)[0]
            return self.value_of(self.solve(theta, banded=True))
        except np.linalg.LinAlgError:
            return np.inf

    def hessian(self, theta: np.ndarray) -> np.ndarray | None:
        """With one term, the exact Hessian in theta (`one_term.OneTerm.hessian`); None otherwise or where
        it cannot be formed (the caller then takes differences of the gradient)."""
        if self._one is None:
            return None
        t = self.terms[0]
        try:
            H = self._one.hessian(t.lam(np.asarray(theta, dtype=float)), t.rows, t.cols)
        except np.linalg.LinAlgError:
            return None
        return H if np.all(np.isfinite(H)) else None

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in theta (see `gradient`)."""
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        last = self._last
        if last is not None and last[0] == key:
            return last[1], last[2].copy()   # the certificate asks where the optimiser stopped
        self.n_evals += 1
        try:
            if self._one is not None:
                # One term: the short route, and its one gradient matrix read in theta's order.
                t = self.terms[0]
                value, G = self._one(t.lam(theta), True)
                if G is None or not math.isfinite(value):
                    return value, np.full(self.dim, np.nan)
                grad = G[t.cols, t.rows]
                self._last = (key, value, grad.copy())
                return value, grad
            s = self.solve(theta, gradient=True, banded=True)
            value = self.value_of(s)
            per_term = gradient(self.stats, s, self.dof, self.reml) if np.isfinite(value) else []
        except np.linalg.LinAlgError:
            return np.inf, np.full(self.dim, np.nan)
        if not np.isfinite(value) or not per_term:
            return value, np.full(self.dim, np.nan)
        grad = np.empty(self.dim)
        for pos, i in enumerate(self.order):
            t = self.terms[i]
            grad[t.offset:t.offset + t.size] = per_term[pos][t.cols, t.rows]
        self._last = (key, value, grad.copy())
        return value, grad


def _gram(X: _rows.Tall, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X'X`` and ``X'y``, summed over blocks of rows in order."""
    XtX = Xty = None
    for rows in _rows.row_blocks(X.shape[0]):
        part = _rows.block(X, rows)
        a, b = part.T @ part, part.T @ y[rows]
        XtX, Xty = (a, b) if XtX is None else (XtX + a, Xty + b)
    assert XtX is not None and Xty is not None
    return XtX, Xty


def gradient(st: Statistics, s: PLSSolve, dof: int, reml: bool) -> list[np.ndarray]:
    """Per term (algebra order), the ``q_t x q_t`` matrix ``G_t`` with d criterion / d Lambda_t[r, c] = G_t[c, r].

    Three derivatives, with ``E`` = dLambda/dLambda_t[r, c] (a 1 at (r, c) in every level's
    block of term t), ``M = Lambda'Z'Z Lambda + I`` and ``A = Z'Z``:

    - d log|M| = 2 tr(M^-1 Lambda'A E): the sum over the term's levels of the diagonal
      blocks of ``N = M^-1 Lambda'A``. With block 1 eliminated (``C`` the Schur complement
      of block R, ``P = M_R1 M11^-1``) these are, for block 1,
      ``M11_k^-1 Lambda_1'G_k + P_k' C^-1 U_k`` with ``U = Lambda_R'A_R1 (V G - I)``, and for
      block R the diagonal blocks of ``C^-1 Lambda_R'(A_RR - A_R1 V A_1R)``. Only ``C^-1``
      (one LAPACK ``dpotri`` on the factor already at hand) and products with the sparse
      ``A_R1`` are needed; no Lambda^-1, so the formula holds on the boundary too.
    - d r^2 = -2 sum_levels (Z'e)[r] u[c] (envelope theorem: u and beta are at their
      optimum), with the residual ``e = y - X beta - Z b``.
    - d log|R_X|^2 = -2 sum_levels (F S^-1 Q')[c, r] with ``F = M^-1 Lambda'Z'X``,
      ``Q = Z'X - Z'Z Lambda F`` and ``S = R_X'R_X`` (REML only).

    Sums over levels are single matrix products (`_batched.sum_products`).
    """
    lam1 = s.lams[0]
    K1, q1, p1 = st.H.shape
    p, m = p1 - 1, st.m
    LtG = s.LtG
    WG = s.WG if s.WG is not None else _batched.cho_solve(s.chol1, LtG)
    N = [WG.sum(axis=0)]                                                  # block 1's own part
    u1 = s.u[0]
    b1 = u1 @ lam1.T
    H_X, c = st.H[..., :p], st.H[..., p]
    Ztr1 = c - (H_X.reshape(K1 * q1, p) @ s.beta).reshape(K1, q1) - (st.G * b1[:, None, :]).sum(axis=2)
    Ztr: list[np.ndarray] = [Ztr1]
    Cinv = None
    if m:
        assert s.RRu is not None and s.lamR is not None and s.V is not None
        lamR, scalar = s.lamR, st.scalar_R
        R1, R1T = st.products()
        # C^-1 is read only where C can be nonzero (see the uses below), so the block
        # factor's selected inverse serves as well as the dense one.
        lay = s.layout
        if lay is not None:
            assert s.band is not None
            Cinv = s.band.selected_inverse_packed(lay)                    # packed like RRu
            A_RR = st.packed(lay)[3]                                      # sparse
        else:
            Cinv = s.band.selected_inverse(m) if s.band is not None else pls.cho_inverse(s.LD[:m, :m])
            A_RR = st.A_RR
        uR = np.concatenate([x.ravel() for x in s.u[1:]])
        bR = lamR * uR if scalar else np.asarray(lamR @ uR)
        coupling = (R1T @ bR).reshape(K1, q1)
        Ztr[0] = Ztr1 - coupling
        ZtrR = st.A_RF[:, p] - st.A_RF[:, :p] @ s.beta - R1 @ b1.ravel() - A_RR @ bR
        # Block 1: P_k' C^-1 U_k, summed over levels.
        Minv = s.Minv if s.Minv is not None else _batched.cho_inverse(s.chol1)
        W = _batched.left(lam1, Minv)                                    # Lambda_1 M11_k^-1
        VG = s.V @ st.G - np.eye(q1)
        # sum_k P_k' C^-1 U_k with P_k = Lambda_R'A_k W_k, U_k = Lambda_R'A_k (V G - I)_k:
        # W_k' (A_k' CS A_k) (V G - I)_k with CS = Lambda_R C^-1 Lambda_R'.
        if lay is not None:
            assert s.lamIJ is not None
            levels = st.level_blocks_packed(Cinv * s.lamIJ, lay)
        else:
            CS = Cinv * np.outer(lamR, lamR) if scalar else np.asarray(lamR @ (lamR @ Cinv).T)
            levels = st.level_blocks(CS)
        block = (np.swapaxes(W, 1, 2) @ levels @ VG).sum(axis=0)
        N[0] = N[0] + block
        # Block R: diagonal blocks of C^-1 Lambda_R' RRu.
        if lay is not None:
            # Packed: a place (i, j) adds to row i with Lambda_j and, off the diagonal blocks
            # (where (j, i) is not stored), to row j with Lambda_i.
            prod = Cinv * s.RRu
            off = lay.is_off
            row = np.bincount(lay.rows, prod * lamR[lay.cols], minlength=m) \
                + np.bincount(lay.cols[off], prod[off] * lamR[lay.rows[off]], minlength=m)
        elif scalar:
            row = (Cinv * s.RRu) @ lamR                                    # diag(C^-1 Lambda_R RRu)
        else:
            CL = np.asarray((lamR @ Cinv).T)
        for t, (q, k) in enumerate(zip(st.r_q, st.r_levels)):
            o = st.r_offsets[t]
            idx = o + np.arange(k)[:, None] * q + np.arange(q)[None, :]       # (k, q)
            if scalar:
                Nt = np.array([[row[idx[:, 0]].sum()]])
            else:
                Nt = np.empty((q, q))
                for aa in range(q):
                    for bb in range(q):
                        Nt[aa, bb] = float((CL[idx[:, aa]] * s.RRu[idx[:, bb]]).sum())
            N.append(Nt)
            Ztr.append(ZtrR[idx])
    grads = [2.0 * Nt for Nt in N]
    us = s.u
    for t in range(len(grads)):
        # d r^2 / d Lambda_t[r, c] = -2 sum_j Ztr_j[r] u_j[c]; stored transposed ([c, r]).
        grads[t] += dof * (-2.0 * us[t].T @ Ztr[t]) / s.pwrss
    if reml and p:
        LX = s.RX
        Sinv = pls.cho_inverse(LX)
        sol_X = s.sol1[..., :p]
        if m:
            assert Cinv is not None and s.lamR is not None
            DRX = s.RF[:, :p] if s.RF is not None else s.D[:m, m:m + p]
            FR = s.band.solve(DRX) if s.band is not None else Cinv @ DRX   # (m, p)
            bFR = s.lamR[:, None] * FR if st.scalar_R else np.asarray(s.lamR @ FR)
            coupX = (R1T @ bFR).reshape(K1, q1, p)
            F1 = sol_X - _batched.cho_solve(s.chol1, _batched.left(lam1.T, coupX))
        else:
            coupX = None
            F1 = sol_X
        Q1 = H_X - st.G @ _batched.left(lam1, F1)
        if coupX is not None:
            Q1 -= coupX
        grads[0] -= 2.0 * _batched.sum_products(_batched.right(F1, Sinv), np.swapaxes(Q1, 1, 2))
        if m:
            QR = st.A_RF[:, :p] - R1 @ _batched.left(lam1, F1).reshape(K1 * q1, p) - A_RR @ bFR
            for t, (q, k) in enumerate(zip(st.r_q, st.r_levels)):
                o, e = st.r_offsets[t], st.r_offsets[t + 1]
                Ft, Qt = FR[o:e].reshape(k, q, p), QR[o:e].reshape(k, q, p)
                grads[t + 1] -= 2.0 * _batched.sum_products(_batched.right(Ft, Sinv), np.swapaxes(Qt, 1, 2))
    return grads
