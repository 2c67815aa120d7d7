"""The exact gradient of the Laplace deviance of a GLMM (scalar random-effect terms, or one term with slopes).

lme4 differentiates nothing: bobyqa optimises the deviance by its values. Finite
differences cost ``2d`` deviance evaluations (each a PIRLS run) per gradient; the gradient
below costs one extra solve with the factor PIRLS already has.

The Laplace deviance at ``phi`` (``theta`` and, in lme4's second stage, ``beta``) is

    D = aic(mu(eta)) + ||u||^2 + log det M,    M = I + Lambda'Z'WZ Lambda,
    eta = offset + X beta + Z Lambda u,        u = u(phi) the conditional mode.

At the mode ``aic + ||u||^2`` is stationary in ``u`` (PIRLS's fixed point), so only
``log det M`` feels ``du/dphi``. With ``h_i = (Z Lambda M^-1 Lambda'Z')_ii`` (the rows'
leverages) and ``a_i = h_i dw_i/deta_i``, ``d log det M / d eta_i = a_i``. The implicit
function theorem on the mode's equation ``Lambda'Z' r(eta) = u`` (``r_i`` the score,
``wt_i (y_i - mu_i)`` for a canonical link) gives ``du/dphi`` through
``M~ = I + Lambda'Z'W~Z Lambda``, ``W~`` the *observed* information ``-dr/deta`` (the same as
PIRLS's expected ``W`` for the logit and log links, not for the probit, which costs one more
factorisation); one adjoint solve ``M~ v = Lambda'Z'a`` replaces the ``d`` solves. With
``t = -2 r + a - W~ Z Lambda v``:

    dD/dbeta    = X't
    dD/dtheta_k = (Z E_k u)'t + (Z E_k v)'r + 2 tr(M^-1 Lambda'Z'WZ E_k)

(``E_k`` selects term ``k``; for a scalar term ``theta_k`` is its ``lambda``). The trace and
the leverages need only the entries of ``M^-1`` where a row has levels, which the blocked
factor of `pls` gives: block 1's diagonal ``M11^-1 + P C^-1 P'``, the cross block
``-P C^-1`` and ``C^-1`` (``C`` the Schur complement of block R, ``P = M11^-1 M_1R``).
In lme4's first stage (``nAGQ = 0``, ``beta`` solved jointly with ``u``) the same holds with
``(u, beta)`` for ``u``: the adjoint system is the joint one (``X`` included), and the
deviance is a function of ``theta`` alone.

One vector term (intercept and slopes on one factor) is handled too (`_one_vector_term`);
several terms with a vector one, and quadrature (nAGQ > 1), are left to finite differences:
`available` says which.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from .. import _batched
from . import pls
from .pirls import Mode, Problem

__all__ = ["available", "laplace_gradient"]

#: Largest ``K1 x m`` dense cross block of ``M^-1`` the gradient builds (doubles).
MAX_CROSS = 20_000_000


def available(prob: Problem) -> bool:
    """Is the exact gradient defined for this problem (scalar terms with a small enough cross block, or one term)?"""
    m = sum(prob.levels[1:])
    scalar = all(Z.shape[1] == 1 for Z in prob.Zs) and prob.levels[0] * m <= MAX_CROSS
    return scalar or len(prob.Zs) == 1


def _weights(prob: Problem, mode: Mode) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Working weights ``w``, their derivative in ``eta``, the score ``r`` and the observed information.

    ``r = wt (y - mu) mu_eta / V`` (minus half the derivative of the deviance residual in
    eta), ``w = wt mu_eta^2 / V`` (expected information, what PIRLS and ``L`` use) and
    ``-dr/deta`` (observed information, what the modes' implicit derivative needs): for a
    canonical link the two informations are the same; for the probit they differ by
    ``wt (y - mu) phi (eta V + phi (1 - 2 mu)) / V^2``.
    """
    mu, wt, y = mode.mu, prob.wt, prob.y
    if prob.family.link.name == "logit":
        w = wt * mu * (1.0 - mu)
        return w, w * (1.0 - 2.0 * mu), wt * (y - mu), w
    if prob.family.link.name == "log":
        w = wt * mu
        return w, w, wt * (y - mu), w
    eta = mode.eta                                      # probit: mu = Phi(eta), mu_eta = phi(eta)
    phi = prob.family.link.mu_eta(eta)
    V = mu * (1.0 - mu)
    w = wt * phi * phi / V
    bend = eta * V + phi * (1.0 - 2.0 * mu)
    dw = -w * (eta * V + bend) / V                      # d/deta of wt phi^2 / V, phi' = -eta phi
    r = wt * (y - mu) * phi / V
    observed = w + wt * (y - mu) * phi * bend / (V * V)
    return w, dw, r, observed


def _adjoint_system(prob: Problem, mode: Mode, w: np.ndarray, observed: np.ndarray,
                    joint: bool) -> tuple[pls.Statistics, pls.PLSSolve]:
    """The factor of ``I + Lambda'Z'W~Z Lambda`` (with ``X`` when joint), ``W~`` the observed information.

    PIRLS's own factor when the two informations agree (canonical links), else one more
    weighted problem.
    """
    if observed is w:
        return mode.stats, mode.solve
    if np.any(observed <= 0):
        raise np.linalg.LinAlgError("the observed information is not positive")
    st = prob.statistics(np.sqrt(observed), np.zeros(len(w)), joint)
    return st, pls.solve(st, mode.solve.lams)


def laplace_gradient(prob: Problem, mode: Mode, joint: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(dD/dtheta, dD/dbeta)`` at ``mode`` (``dD/dbeta`` empty when ``joint``: beta is then profiled).

    ``theta`` in lme4's layout (the formula's order of terms), as `Problem.lams` reads it.
    """
    if mode.u[0].shape[1] > 1:
        return _one_vector_term(prob, mode, joint)
    st, s = mode.stats, mode.solve
    lam = [float(x[0, 0]) for x in s.lams]                  # algebra order
    z = [Z[:, 0] for Z in prob.Zs]
    codes = prob.codes
    K1, m = st.K1, st.m
    w, dw, r, observed = _weights(prob, mode)
    M11 = s.chol1[:, 0, 0] ** 2
    c0 = codes[0]
    zl = [lt * zt for lt, zt in zip(lam, z)]
    inv_m = 1.0 / M11[c0]
    # e[k]_i = z_k,i sum_t' lambda_t' z_t',i (M^-1)[level of i in k, level of i in t']
    if m:
        lamR = np.asarray(s.lamR, dtype=float)
        Cinv = pls.cho_inverse(s.LD[:m, :m])
        # B = Lambda_R A_R1 lambda_1 (m, K1), kept sparse: a level of block 1 meets few of block R's.
        A = st.A_R1.tocoo() if hasattr(st.A_R1, "tocoo") else sparse.coo_matrix(st.A_R1)
        b_data = A.data * lamR[A.row] * lam[0]
        B = sparse.csr_matrix((b_data, (A.row, A.col)), shape=(m, K1))
        Y = np.asarray(B.T @ Cinv)                               # B' C^-1 = M11 P C^-1, (K1, m)
        # diag of M11^-1 + P C^-1 P'
        S11 = 1.0 / M11 + np.bincount(A.col, weights=Y[A.col, A.row] * b_data, minlength=K1) / M11 ** 2
        rp = [st.r_offsets[t] + codes[t + 1] for t in range(len(codes) - 1)]
        cross = [-Y[c0, p] * inv_m for p in rp]             # (M^-1)[block 1, R term t] per row
        e = [z[0] * (S11[c0] * zl[0] + sum(cx * zt for cx, zt in zip(cross, zl[1:])))]
        for t, p in enumerate(rp):
            acc = cross[t] * zl[0]
            for t2, p2 in enumerate(rp):
                acc = acc + Cinv[p, p2] * zl[t2 + 1]
            e.append(z[t + 1] * acc)
    else:
        e = [z[0] * zl[0] * inv_m]
    h = sum(lt * et for lt, et in zip(lam, e))
    trace = np.array([float(w @ et) for et in e])
    a = h * dw
    # Adjoint: M v = Lambda'Z'a (joint: with X, the system of (u, beta)).
    b1 = lam[0] * np.bincount(c0, weights=z[0] * a, minlength=K1)
    bR = np.concatenate([lam[t] * np.bincount(codes[t], weights=z[t] * a, minlength=prob.levels[t])
                         for t in range(1, len(codes))]) if m else np.zeros(0)
    bX = prob.X.T @ a if joint else np.zeros(0)
    st_a, s_a = _adjoint_system(prob, mode, w, observed, joint)
    v1, vR, vX = _solve(st_a, s_a, lam[0], s_a.chol1[:, 0, 0] ** 2, b1, bR, bX)
    Zv = zl[0] * v1[c0]
    vs = [v1]
    for t in range(1, len(codes)):
        vt = vR[st.r_offsets[t - 1]:st.r_offsets[t]]
        vs.append(vt)
        Zv = Zv + zl[t] * vt[codes[t]]
    if joint:
        Zv = Zv + prob.X @ vX
    tvec = -2.0 * r + a - observed * Zv
    g_alg = np.array([float((z[t] * mode.u[t][codes[t], 0]) @ tvec + (z[t] * vs[t][codes[t]]) @ r) + 2.0 * trace[t]
                      for t in range(len(codes))])
    g_theta = np.empty(len(codes))
    for pos, i in enumerate(prob.order):
        g_theta[prob.terms[i].offset] = g_alg[pos]
    return g_theta, (np.zeros(0) if joint else prob.X.T @ tvec)


def _one_vector_term(prob: Problem, mode: Mode, joint: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same gradient for one term of ``q > 1`` columns (intercept and slopes): ``M`` block diagonal.

    With ``Lambda`` lower triangular, ``E_ab = d Lambda / d theta_ab`` has a single 1 at ``(a, b)``:
    the trace is ``sum_i w_i z_ia psi_ib`` with ``psi_i = M_k^-1 Lambda'z_i`` (``k`` the row's level),
    the leverage ``h_i = (Lambda'z_i)'psi_i``.
    """
    st, s = mode.stats, mode.solve
    lam1 = s.lams[0]
    Z, c = prob.Zs[0], prob.codes[0]
    K1 = st.K1
    w, dw, r, observed = _weights(prob, mode)
    Minv = _batched.cho_inverse(s.chol1)                                 # (K1, q, q)
    Vz = Z @ lam1                                                        # rows: (Lambda'z_i)'
    psi = np.einsum("ijk,ik->ij", Minv[c], Vz)
    h = np.einsum("ij,ij->i", Vz, psi)
    trace = (Z * w[:, None]).T @ psi                                     # [a, b]
    a = h * dw
    b1 = _level_sums(c, Z * a[:, None], K1) @ lam1                      # Lambda'Z'a per level
    p = prob.p if joint else 0
    st_a, s_a = _adjoint_system(prob, mode, w, observed, joint)
    y1 = _batched.cho_solve(s_a.chol1, b1[..., None])[..., 0]
    vX = np.zeros(0)
    if p:
        HX = st_a.H[..., :p]                                             # (K1, q, p): Z_k'W~ X
        rhs = prob.X.T @ a - np.einsum("kq,kqp->p", y1 @ lam1.T, HX)
        vX = linalg.cho_solve((s_a.LD, True), rhs, check_finite=False)
        b1 = b1 - (HX @ vX) @ lam1
    v1 = _batched.cho_solve(s_a.chol1, b1[..., None])[..., 0]
    Zv = np.einsum("ij,ij->i", Z, (v1 @ lam1.T)[c])
    if p:
        Zv = Zv + prob.X @ vX
    tvec = -2.0 * r + a - observed * Zv
    u1 = mode.u[0]
    G = (Z * tvec[:, None]).T @ u1[c] + (Z * r[:, None]).T @ v1[c] + 2.0 * trace
    term = prob.terms[0]
    g_theta = G[term.rows, term.cols]
    return g_theta, (np.zeros(0) if joint else prob.X.T @ tvec)


def _level_sums(codes: np.ndarray, values: np.ndarray, n_levels: int) -> np.ndarray:
    """Column sums of ``values`` per level, ``(n_levels, columns)``."""
    return np.column_stack([np.bincount(codes, weights=values[:, j], minlength=n_levels)
                            for j in range(values.shape[1])])


def _solve(st: pls.Statistics, s: pls.PLSSolve, lam1: float, M11: np.ndarray, b1: np.ndarray, bR: np.ndarray,
           bX: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[M11 M1R M1X; MR1 MRR MRX; MX1 MXR MXX] x = b`` with the blocked factor of `pls.solve` (scalar block 1).

    Block 1 is eliminated level by level (``M11`` diagonal), the rest goes through ``LD``,
    the Cholesky factor of the Schur complement over ``[R, X]``.
    """
    m, p = st.m, len(bX)
    y1 = b1 / M11
    parts = []
    lamR = np.asarray(s.lamR, dtype=float) if m else np.zeros(0)
    if m:
        parts.append(bR - lamR * (st.A_R1 @ (lam1 * y1)))
    if p:
        parts.append(bX - (lam1 * y1) @ st.H[:, 0, :p])
    if parts:
        x = linalg.cho_solve((s.LD, True), np.concatenate(parts), check_finite=False)
    else:
        x = np.zeros(0)
    xR, xX = x[:m], x[m:]
    back = np.zeros(len(b1))
    if m:
        back += st.A_R1.T @ (lamR * xR)
    if p:
        back += st.H[:, 0, :p] @ xX
    return (b1 - lam1 * back) / M11, xR, xX


def agq_gradient(prob: Problem, mode: Mode, nodes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``dD/d(theta, beta)`` of lme4's adaptive Gauss-Hermite deviance (`Problem.agq`), one scalar term.

    ``D = sum_k [log L_k^2 - 2 log sum_j w_j exp(z_j^2/2 - devc_kj/2)]`` with
    ``devc_kj = u_kj^2 + sum_(i in k) devres_i(base_i + z_i lambda u_kj)``,
    ``u_kj = u0_k + z_j / L_k`` and ``L_k^2 = 1 + lambda^2 sum_(i in k) w_i z_i^2``: the mode ``u0_k``
    moves with the parameters by the implicit function theorem on its own level's equation
    (``M`` is diagonal), the scale ``1/L_k`` through the weights at the mode. Each node's
    ``devc_kj`` is differentiated with both, and weighted by its share ``pi_kj`` of the sum.
    """
    (c,), (Zm,), (K,) = prob.codes, prob.Zs, prob.levels
    z = Zm[:, 0]
    lam = float(mode.solve.lams[0][0, 0])
    u0 = mode.u[0][:, 0]
    n, p = prob.X.shape
    P = 1 + p
    w, dw, r, observed = _weights(prob, mode)
    dbase = np.zeros((n, P))
    dbase[:, 1:] = prob.X
    e0 = np.zeros(P)
    e0[0] = 1.0

    S = sparse.csr_matrix((np.ones(n), (c, np.arange(n))), shape=(K, n))     # sums over each level's rows

    def level_sum(values: np.ndarray) -> np.ndarray:
        return np.asarray(S @ values)

    G = np.bincount(c, weights=w * z * z, minlength=K)
    L2 = 1.0 + lam * lam * G
    Mt = 1.0 + lam * lam * np.bincount(c, weights=observed * z * z, minlength=K)
    # du0/dphi from lambda sum z r(eta) = u0 at the mode
    dF = -lam * level_sum((observed * z)[:, None] * (dbase + np.outer(z * u0[c], e0)))
    dF[:, 0] += np.bincount(c, weights=z * r, minlength=K)
    du0 = dF / Mt[:, None]
    deta = dbase + (z * lam)[:, None] * du0[c] + np.outer(z * u0[c], e0)
    dL2 = lam * lam * level_sum((dw * z * z)[:, None] * deta)
    dL2[:, 0] += 2.0 * lam * G
    sd = 1.0 / np.sqrt(L2)
    dsd = -(sd / (2.0 * L2))[:, None] * dL2
    base = mode.eta - z * lam * u0[c]
    fam = prob.family
    J = len(nodes)
    logs = np.empty((J, K))
    ddevc = np.empty((J, K, P))
    # The nodes together, in chunks of a few million numbers (nodes x rows x parameters).
    for js in np.array_split(np.arange(J), max(1, int(np.ceil(J * n * P / 2e6)))):
        zj = nodes[js]
        u = u0[None, :] + zj[:, None] * sd[None, :]                    # (j, K)
        uc = u[:, c]                                                     # (j, n)
        eta = base[None, :] + z * lam * uc
        mu = fam.mu(eta)
        devc = u * u + level_sum(prob.response.dev_resid(mu).T).T
        logs[js] = np.log(weights[js])[:, None] + (zj * zj / 2)[:, None] - devc / 2
        du = du0[None] + zj[:, None, None] * dsd[None]                   # (j, K, P)
        de = dbase[None] + (z * lam)[None, :, None] * du[:, c, :] + (z[None, :] * uc)[..., None] * e0
        d = fam.link.mu_eta(eta)
        score = prob.wt * (prob.y - mu) * d / fam.variance(mu)
        per_row = ((-2.0 * score)[..., None] * de).transpose(1, 0, 2).reshape(n, -1)
        ddevc[js] = 2.0 * u[..., None] * du + level_sum(per_row).reshape(K, len(js), P).transpose(1, 0, 2)
    pi = np.exp(logs - logs.max(axis=0))
    pi /= pi.sum(axis=0)
    return (dL2 / L2[:, None]).sum(axis=0) + np.einsum("jk,jkp->p", pi, ddevc)
