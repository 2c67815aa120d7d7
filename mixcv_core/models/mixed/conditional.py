"""The conditional distribution of the random effects at a given theta: what an EM's E-step needs.

For ``r = X beta + sum_t Z_t b_t + e`` with ``b_tk ~ N(0, sigma^2 Lambda_t Lambda_t')`` and
``e ~ N(0, sigma^2 I)``, the blocked PLS of `pls` at one theta gives, with no optimisation:

- ``beta``: the generalised least squares estimate at that theta (``X'V^-1 X beta = X'V^-1 r``);
- ``b``: the conditional modes (= means, the model is Gaussian) of ``b | r`` at that ``beta``;
- the diagonal blocks of ``M^-1``, ``M = Lambda'Z'Z Lambda + I``: the conditional covariance of
  level ``k`` of term ``t`` is ``sigma^2 Lambda_t (M^-1)_tk Lambda_t'`` (lme4's ``condVar``),
  and ``tr(Z'Z Cov(b | r)) = sigma^2 (Q - tr M^-1)`` with ``Q`` random effects in all.

`ConditionalSolver` keeps the terms and the fixed design, and solves for a new response at a
new theta each call: MERF's E-step (its response, ``y - f(X)``, changes every iteration). The
blocked ``A = [Z X y]'[Z X y]`` is built once; a new response replaces only its last column
(``O(n q)`` work), so an iteration costs what one-factor MERF's per-cluster algebra cost.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _batched
from .._groups import ClusterSums
from . import pls
from .pls import PLSSolve, Statistics

__all__ = ["Conditional", "ConditionalSolver", "conditional_blocks"]


def conditional_blocks(st: Statistics, s: PLSSolve) -> list[np.ndarray]:
    """Diagonal blocks of ``M^-1`` per term (algebra order), ``(K_t, q_t, q_t)``: the conditional
    covariance of the spherical effects over ``sigma^2``.

    Block 1: ``M11_k^-1 + P_k' C^-1 P_k`` with ``P = Lambda_R'A_R1 Lambda_1 M11^-1``; block R:
    the diagonal blocks of ``C^-1``.
    """
    m = st.m
    Minv = s.Minv if s.Minv is not None else _batched.cho_inverse(s.chol1)   # kept by the solve when it has it
    if not m:
        return [Minv]
    assert s.lamR is not None
    Cinv = pls.cho_inverse(s.LD[:m, :m])
    W = _batched.left(s.lams[0], Minv)                                    # Lambda_1 M11_k^-1
    lamR = s.lamR
    CS = Cinv * np.outer(lamR, lamR) if st.scalar_R else np.asarray(lamR @ (lamR @ Cinv).T)
    # P_k' C^-1 P_k with P_k = Lambda_R'A_k W_k.
    extra = np.swapaxes(W, 1, 2) @ st.level_blocks(CS) @ W
    out = [Minv + extra]
    for t, (q, k) in enumerate(zip(st.r_q, st.r_levels)):
        o = st.r_offsets[t]
        idx = o + np.arange(k)[:, None] * q + np.arange(q)[None, :]
        out.append(Cinv[idx[:, :, None], idx[:, None, :]])
    return out


@dataclass
class Conditional:
    """`ConditionalSolver.solve`'s answer, per term in the order the terms were given."""

    beta: np.ndarray           # (p,) GLS fixed effects at this theta
    b: list[np.ndarray]        # (K_t, q_t) conditional modes on the raw Z scale
    cov: list[np.ndarray]      # (K_t, q_t, q_t) conditional covariances over sigma^2: Lambda_t M^-1_tk Lambda_t'
    trace_minv: float          # tr(M^-1) over every random effect
    n_effects: int             # Q = sum_t K_t q_t
    pwrss: float               # penalised residual sum of squares ||r - X beta - Z b||^2 + ||u||^2


class ConditionalSolver:
    """Conditional modes and covariances of the random effects for any response at any theta.

    Parameters
    ----------
    X : (n, p) fixed design of full column rank (``p`` may be 0).
    codes, Zs, levels : per term, each row's level, the term's raw columns and its number of
        levels (the `REBlock` fields), in any order; answers follow it.

    Raises
    ------
    SpecError
        The terms after the one with the most levels hold more random effects than the
        dense block of `pls` supports (raised here, before any work).
    """

    def __init__(self, X: np.ndarray, codes: Sequence[np.ndarray], Zs: Sequence[np.ndarray],
                 levels: Sequence[int]) -> None:
        self.X = np.ascontiguousarray(X, dtype=float)
        self.codes, self.Zs, self.levels = list(codes), list(Zs), [int(k) for k in levels]
        # lme4's algebra order: most levels first, so block 1 stays block diagonal.
        self.order = [int(i) for i in np.argsort(-np.asarray(self.levels), kind="stable")]
        p = self.X.shape[1]
        if p:
            self._q, self._r = np.linalg.qr(self.X)
        o = self.order
        # ``A = [Z X y]'[Z X y]`` is built once with y = 0 (this also checks the sizes before any
        # work); a new response changes only its last column, ``[Z X]'y`` and ``y'y``.
        self._base = Statistics(self.X, np.zeros(len(self.X)), [self.codes[i] for i in o], [self.Zs[i] for i in o],
                                [self.levels[i] for i in o])
        self._sums = [ClusterSums(self.codes[i], self.levels[i]) for i in o]

    def statistics(self, y: np.ndarray) -> Statistics:
        """`pls.Statistics` of the terms, ``X`` and the response ``y``, from the ones built once."""
        st = copy.copy(self._base)
        o = self.order
        Zty = [self._sums[pos](self.Zs[i] * y[:, None]) for pos, i in enumerate(o)]    # (K_t, q_t) per term
        st.H = self._base.H.copy()
        st.H[..., -1] = Zty[0]
        st.A_FF = self._base.A_FF.copy()
        st.A_FF[:-1, -1] = st.A_FF[-1, :-1] = self.X.T @ y
        st.A_FF[-1, -1] = y @ y
        if st.m:
            st.A_RF = self._base.A_RF.copy()
            st.A_RF[:, -1] = np.concatenate([z.ravel() for z in Zty[1:]])   # level-major, as pls lays out block R
        return st

    def solve(self, y: np.ndarray, lams: Sequence[np.ndarray]) -> Conditional:
        """For the response ``y`` at ``Cov(b_t) = sigma^2 lams[t] lams[t]'`` (``lams[t]``: lower triangular,
        `fit.relative_factor` of the relative covariance; zero columns allowed)."""
        # y residualised on X first (as `criterion.Criterion` does): beta absorbs the shift and
        # the squares stay small, which keeps precision when y has a large mean.
        beta_ols = np.linalg.solve(self._r, self._q.T @ y) if self.X.shape[1] else np.zeros(0)
        yr = y - self.X @ beta_ols
        st = self.statistics(yr)
        ordered = [np.asarray(lams[i], dtype=float) for i in self.order]
        s = pls.solve(st, ordered)
        blocks = conditional_blocks(st, s)
        b: list[np.ndarray] = [np.empty(0)] * len(self.order)
        cov: list[np.ndarray] = [np.empty(0)] * len(self.order)
        for pos, i in enumerate(self.order):
            lam = ordered[pos]
            b[i] = s.u[pos] @ lam.T
            cov[i] = _batched.right(_batched.left(lam, blocks[pos]), lam.T)
        trace = float(sum(np.einsum("kii->", blk) for blk in blocks))
        n_effects = sum(K * Z.shape[1] for K, Z in zip(self.levels, self.Zs))
        return Conditional(beta=beta_ols + s.beta, b=b, cov=cov, trace_minv=trace, n_effects=n_effects,
                           pwrss=s.pwrss)
