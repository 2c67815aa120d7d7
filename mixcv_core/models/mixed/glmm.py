"""`fit_glmm`: a generalised linear mixed model fitted as lme4's ``glmer`` fits it, and certified.

Two stages, as lme4 (``R/lmer.R``, ``glmer``; ``vignettes/glmer.Rnw``):

1. ``nAGQ = 0``: the Laplace deviance as a function of theta alone, ``beta`` solved for
   jointly with the modes inside PIRLS (`pirls.Problem.modes` with ``beta=None``);
2. the Laplace deviance ``log|L|^2 + ||u||^2 - 2 log p(y | u)`` (or, for one scalar term
   and ``nAGQ > 1``, lme4's adaptive Gauss-Hermite deviance) minimised over ``(theta, beta)``
   from the first stage's optimum.

The gradient is exact where `laplace_gradient` defines it (the Laplace deviance of scalar
terms, or of one term with slopes; logit, probit or log link: one adjoint solve per evaluation;
and of lme4's quadrature deviance, `agq_gradient`); elsewhere (several terms, one of them
with slopes) it is taken by central differences
of the deviance, which is smooth (the modes are converged to ~1e-10, and the deviance is
stationary in them). `_certify` then takes Newton steps (the Hessian by differences at the
start, BFGS updates between, a fresh one by differences for the claim) until the predicted
decrease ``g'H^-1 g/2`` is below `NEWTON_DECREMENT_TOL`; ``converged`` is True only there,
with the Hessian positive definite on the coordinates off the boundary (a zero variance is
the boundary ``theta = 0``, where the gradient must point outwards). ``nAGQ = 0`` is
certified the same way over theta (beta is profiled by PIRLS there).

A point where PIRLS fails (`pirls.PIRLSError`: step halving exhausted, a singular weighted
step) has an infinite deviance, which sends the optimiser back; failing at the starting
values, or at the point returned, is an error naming the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy import optimize

from ...errors import SpecError
from . import pls
from .family import Family
from .fit import REBlock, _conditional_blocks, _threadpools, relative_factor, singular_components
from .laplace_gradient import agq_gradient, laplace_gradient
from .laplace_gradient import available as gradient_available
from .pirls import Mode, PIRLSError, Problem

__all__ = ["GlmmFit", "fit_glmm", "gh_rule", "NEWTON_DECREMENT_TOL", "MAX_NAGQ"]

NEWTON_DECREMENT_TOL = 1e-9
MAX_NAGQ = 25


def gh_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density (weights sum to 1), lme4's ``GHrule``."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    # Symmetrised as lme4 does (z = (z - rev z)/2), so the middle node is exactly 0.
    return (z - z[::-1]) / 2, (w + w[::-1]) / 2


@dataclass
class GlmmFit:
    """Everything `fit_glmm` estimates; per-term entries in the order the terms were given."""

    beta: np.ndarray
    beta_cov: np.ndarray       # (p, p): the inverse of half the deviance's Hessian in beta (lme4's vcov)
    theta: np.ndarray
    covs: list[np.ndarray]     # per term (q_t, q_t): Lambda_t Lambda_t'
    b: list[np.ndarray]        # per term (K_t, q_t): conditional modes
    b_sd: list[np.ndarray]     # per term (K_t, q_t): conditional sds (diagonal of Lambda L^-T L^-1 Lambda')
    criterion: float           # lme4's deviance for this nAGQ (-2 logLik)
    llf: float
    nAGQ: int
    converged: bool
    message: str
    boundary: list[tuple[int, int]]
    n_evals: int
    gradient_max: float
    newton_decrement: float


class _Objective:
    """The deviance to minimise, PIRLS warm-started from the last modes.

    Stage 2 (``joint=False``): ``x = (theta, beta)``, the Laplace or quadrature deviance.
    Stage 1 (``joint=True``, lme4's ``nAGQ = 0``): ``x = theta``, with ``beta`` found by PIRLS
    together with the modes. ``exact``: the gradient is `laplace_gradient`'s (scalar terms,
    or one term) or `agq_gradient`'s (quadrature), else central differences of the deviance.
    ``n_evals`` counts PIRLS runs of every stage against one budget, ``max_evals``.
    """

    def __init__(self, prob: Problem, nAGQ: int, max_evals: int, joint: bool = False,  # noqa: N803 (lme4's name)
                 n_evals: int = 0) -> None:
        self.prob, self.nAGQ, self.max_evals, self.joint = prob, nAGQ, max_evals, joint
        self.rule = gh_rule(nAGQ) if nAGQ > 1 and not joint else None
        self.exact = gradient_available(prob)
        self.u: list[np.ndarray] | None = None
        self.beta: np.ndarray | None = None
        self.n_evals = n_evals
        self.failure: str | None = None      # PIRLS's last failure, for the message of a fit it spoilt
        self.n_failures = 0
        self.best: tuple[float, np.ndarray | None] = (np.inf, None)
        # Finite-difference steps per coordinate: theta as it is; a fixed effect in units of
        # its column's root mean square, so age^2 (in the hundreds) gets a step as small.
        rms = np.sqrt((prob.X ** 2).mean(axis=0))
        self.step_scale = np.ones(prob.dim) if joint else np.concatenate([np.ones(prob.dim),
                                                                          1.0 / np.maximum(rms, 1e-3)])

    def mode(self, x: np.ndarray) -> Mode:
        d = self.prob.dim
        if self.joint:
            m = self.prob.modes(x, None, u0=self.u, beta0=self.beta)
            self.beta = m.beta
        else:
            m = self.prob.modes(x[:d], x[d:], u0=self.u)
        self.u = m.u
        return m

    def value_of(self, x: np.ndarray, m: Mode) -> float:
        if self.rule is None:
            return self.prob.laplace(m)
        return self.prob.agq(x[:self.prob.dim], m, *self.rule)

    def _seen(self, x: np.ndarray, value: float) -> float:
        if value < self.best[0]:
            self.best = (value, np.array(x, dtype=float))
        return value

    def __call__(self, x: np.ndarray) -> float:
        self.n_evals += 1
        try:
            return self._seen(x, self.value_of(x, self.mode(np.asarray(x, dtype=float))))
        except PIRLSError as exc:
            # An infinite deviance sends the optimiser back; the cause is kept for the message.
            self.failure = str(exc)
            self.n_failures += 1
            return np.inf

    def value_and_grad(self, x: np.ndarray, lower: np.ndarray) -> tuple[float, np.ndarray]:
        """The deviance and its gradient (one PIRLS run when `exact`, ``1 + 2 len(x)`` otherwise)."""
        x = np.asarray(x, dtype=float)
        if not self.exact:
            return self(x), _gradient(self, x, lower)
        self.n_evals += 1
        try:
            m = self.mode(x)
        except PIRLSError as exc:
            self.failure = str(exc)
            self.n_failures += 1
            return np.inf, np.zeros(len(x))
        try:
            if self.rule is not None:
                return self._seen(x, self.value_of(x, m)), agq_gradient(self.prob, m, *self.rule)
            g_theta, g_beta = laplace_gradient(self.prob, m, self.joint)
        except np.linalg.LinAlgError:
            # The probit's observed information is not positive here: differences instead.
            return self._seen(x, self.value_of(x, m)), _gradient(self, x, lower)
        return self._seen(x, self.value_of(x, m)), np.concatenate([g_theta, g_beta])


def _gradient(f: _Objective, x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    g = np.empty(len(x))
    for j in range(len(x)):
        h = 1e-5 * max(1.0, abs(x[j]) / f.step_scale[j]) * f.step_scale[j]
        e = np.zeros(len(x))
        e[j] = h
        if x[j] - h < lower[j]:       # at the boundary theta = 0: one-sided
            g[j] = (f(x + e) - f(x)) / h
        else:
            g[j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def _derivatives(f: _Objective, x: np.ndarray, lower: np.ndarray, H_known: np.ndarray | None = None,  # noqa: N803
                 known: tuple[float, np.ndarray] | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """The deviance, its gradient and Hessian at ``x``.

    With the exact gradient: the Hessian from forward differences of it (``len(x)`` more
    PIRLS runs; the step ``1e-5`` leaves an error of that relative order, which neither the
    Newton step nor the sign of its eigenvalues notices). Otherwise one finite-difference
    stencil of the deviance (``1 + 2d + d(d-1)/2`` values): central differences (one-sided
    at the boundary ``theta = 0``) with ``h = 1e-4``. With ``H_known`` (a Hessian from a
    point a small Newton step away, whose curvature is the same to the accuracy the Newton
    step and the test need) only the gradient is taken; ``known``: the value and exact
    gradient at ``x``, already computed.
    """
    d = len(x)
    hs = 1e-4 * np.maximum(1.0, np.abs(x) / f.step_scale) * f.step_scale
    if f.exact:
        f0, g = known if known is not None else f.value_and_grad(x, lower)
        if H_known is not None:
            return f0, g, H_known
        H = np.empty((d, d))
        for j in range(d):
            e = np.zeros(d)
            e[j] = hs[j] / 10          # forward: inwards from the boundary theta = 0 too
            H[:, j] = (f.value_and_grad(x + e, lower)[1] - g) / e[j]
        return f0, g, (H + H.T) / 2
    f0 = f(x)
    E = np.eye(d) * hs
    up = np.array([f(x + E[i]) for i in range(d)])
    g = np.empty(d)
    H = np.empty((d, d))
    for i in range(d):
        if x[i] - hs[i] >= lower[i]:
            down = f(x - E[i])
            g[i] = (up[i] - down) / (2 * hs[i])
            H[i, i] = (up[i] - 2 * f0 + down) / hs[i] ** 2
        else:
            up2 = f(x + 2 * E[i])
            g[i] = (-3 * f0 + 4 * up[i] - up2) / (2 * hs[i])
            H[i, i] = (up2 - 2 * up[i] + f0) / hs[i] ** 2
    if H_known is not None:
        return f0, g, H_known
    for i in range(d):
        for j in range(i + 1, d):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - up[i] - up[j] + f0) / (hs[i] * hs[j])
    return f0, g, H


def _check(X: np.ndarray, y: np.ndarray, blocks: Sequence[REBlock], weights: np.ndarray | None,
           offset: np.ndarray | None, family: Family, nAGQ: int,  # noqa: N803
           names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n = X.shape[0]
    if y.shape != (n,):
        raise SpecError("y", f"expected {n} values (one per row of X), got shape {y.shape}")
    if not np.all(np.isfinite(X)) or not np.all(np.isfinite(y)):
        raise SpecError("X" if not np.all(np.isfinite(X)) else "y", "contains NaN or infinite values")
    wt = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    for name, v in (("weights", wt), ("offset", off)):
        if v.shape != (n,) or not np.all(np.isfinite(v)):
            raise SpecError(name, f"expected {n} finite values, one per row")
    if np.any(wt < 0):
        raise SpecError("weights", "weights must be non-negative")
    family.check_response(y, wt)
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= MAX_NAGQ:
        raise SpecError("nAGQ", f"expected an integer from 0 to {MAX_NAGQ}, got {nAGQ!r}")
    if nAGQ > 1 and (len(blocks) != 1 or np.asarray(blocks[0].Z).reshape(n, -1).shape[1] != 1):
        raise SpecError("nAGQ", "adaptive Gauss-Hermite quadrature (nAGQ > 1) is defined for one scalar random "
                                "effect only, e.g. (1 | g); use nAGQ=1 (Laplace) for this model")
    if family.name == "binomial":
        if np.all(y[wt > 0] == y[wt > 0][0]) and y[wt > 0][0] in (0.0, 1.0):
            raise SpecError("y", f"every outcome is {int(y[wt > 0][0])}: there is nothing to fit")
        _check_separation(X, y, wt, names)
    elif np.all(y[wt > 0] == 0):
        raise SpecError("y", "every count is 0: there is nothing to fit")
    return X, y, wt, off


def _check_separation(X: np.ndarray, y: np.ndarray, wt: np.ndarray, names: Sequence[str] | None = None) -> None:
    """Complete or quasi-complete separation by the fixed effects (Konis 2007's linear programme).

    A direction ``d`` with ``x_i'd >= 0`` for every success, ``<= 0`` for every failure and
    not all zero makes the likelihood grow without bound along ``d``, whatever the random
    effects: the estimate is infinite, so no fit is returned.
    """
    from scipy.optimize import linprog

    keep = wt > 0
    X, y = X[keep], y[keep]
    rows = [X[y > 0], -X[y < 1]]
    S = np.vstack(rows)                          # s_i x_i
    res = linprog(-S.sum(axis=0), A_ub=-S, b_ub=np.zeros(len(S)), bounds=[(-1, 1)] * X.shape[1], method="highs")
    if res.status == 0 and -res.fun > 1e-6 * max(1.0, float(np.abs(S).max())):
        d = res.x
        idx = [int(j) for j in np.flatnonzero(np.abs(d) > 1e-6)]
        cols = [names[j] for j in idx] if names is not None else [f"column {j} (intercept first)" for j in idx]
        raise SpecError("X", f"complete or quasi-complete separation: the fixed effects {cols} separate the "
                             "outcomes (a combination of them is >= 0 for every success and <= 0 for every "
                             "failure), so their estimates are infinite; drop or merge them")


def fit_glmm(X: np.ndarray, y: np.ndarray, blocks: Sequence[REBlock], family: Family, *, nAGQ: int = 1,  # noqa: N803
             weights: np.ndarray | None = None, offset: np.ndarray | None = None,
             max_evals: int = 20_000, names: Sequence[str] | None = None) -> GlmmFit:
    """Fit a GLMM by lme4's two stages and certify the optimum (see the module docstring).

    Parameters
    ----------
    X : (n, p) fixed design (full column rank, the caller checks).
    y : (n,) response: 0/1 or proportions (binomial, with ``weights`` the trials), counts (Poisson).
    blocks : the random-effect terms in the formula's order (`REBlock`).
    family : `family.Family`.
    nAGQ : 0 (stage 1 only), 1 (Laplace), or up to `MAX_NAGQ` for one scalar term.
    weights, offset : prior weights (binomial trials) and an offset on the linear-predictor scale.
    max_evals : deviance evaluations at most (a fit that reaches it is not converged).
    names : the columns of ``X``, for error messages.

    Raises
    ------
    SpecError
        Bad input, naming it (separation, a constant response, ``nAGQ`` for a model it does not fit).
    PIRLSError
        The modes could not be found at the starting values (step halving exhausted, a
        singular weighted step, a deviance that is not finite), the message naming the cause.
    """
    X, y, wt, off = _check(X, y, blocks, weights, offset, family, nAGQ, names)
    # As `fit_mixed`: every BLAS call is on small matrices, where threads only add their
    # start-up (and, on a shared machine, their spinning).
    with _threadpools().limit(limits=1, user_api="blas"):
        return _fit(X, y, wt, off, blocks, family, nAGQ, max_evals)


def _fit(X: np.ndarray, y: np.ndarray, wt: np.ndarray, off: np.ndarray, blocks: Sequence[REBlock], family: Family,
         nAGQ: int, max_evals: int) -> GlmmFit:  # noqa: N803
    codes = [np.asarray(b.codes, dtype=np.intp) for b in blocks]
    Zs = [np.asarray(b.Z, dtype=float).reshape(len(y), -1) for b in blocks]
    prob = Problem(X, y, wt, off, codes, Zs, [int(b.n_levels) for b in blocks], family)
    d, p = prob.dim, prob.p
    lower_theta = np.full(d, -np.inf)
    for t in prob.terms:
        lower_theta[t.offset + np.flatnonzero(t.rows == t.cols)] = 0.0
    theta0 = np.concatenate([np.eye(t.q)[t.rows, t.cols] for t in prob.terms])
    # Stage 1: theta alone, beta in PIRLS.
    s1 = _Objective(prob, 0, max_evals, joint=True)
    try:
        s1.n_evals += 1
        s1.mode(theta0)
    except PIRLSError as exc:
        # Where the optimiser meets a failing point later it steps back (the deviance is
        # infinite there); at the start there is nowhere to step back to.
        raise PIRLSError(f"no conditional modes at the starting values (relative covariances the identity, fixed "
                         f"effects those of the GLM without random effects): {exc}") from None
    bounds1 = [(lo if np.isfinite(lo) else None, None) for lo in lower_theta]
    # For nAGQ = 0 this is the fit; otherwise only the start of stage 2's Newton steps,
    # which need no more than a few digits of it.
    options = {"maxfun": max(1, max_evals // 2), "ftol": 1e-12 if nAGQ == 0 or not s1.exact else 1e-7, "gtol": 1e-8}
    if s1.exact:
        r1 = optimize.minimize(lambda t: s1.value_and_grad(t, lower_theta), theta0, jac=True, method="L-BFGS-B",
                               bounds=bounds1, options=options)
    else:
        r1 = optimize.minimize(s1, theta0, method="L-BFGS-B", bounds=bounds1, options=options)
    theta1 = np.maximum(np.asarray(r1.x), lower_theta)
    if s1.best[1] is not None and not float(r1.fun) <= s1.best[0]:
        # L-BFGS-B can end on a point where PIRLS failed (an infinite value): the best point seen instead.
        theta1 = np.maximum(s1.best[1], lower_theta)
    for _ in range(3):
        # A zero variance where the deviance falls into the interior: the deviance is even in
        # theta there, so its gradient vanishes and L-BFGS-B stops on a saddle. Out, and again.
        inside = _off_zero(s1, theta1, lower_theta)
        if inside is None:
            break
        r1 = optimize.minimize(s1.value_and_grad if s1.exact else s1, inside, jac=s1.exact or None,
                               method="L-BFGS-B", bounds=bounds1, options=options, args=(lower_theta,) * s1.exact)
        theta1 = np.maximum(np.asarray(r1.x), lower_theta)
    H: np.ndarray | None
    if nAGQ == 0:
        # lme4's first stage is the fit: certified as stage 2 is, over theta (beta is profiled).
        theta1, converged, message, gmax, dec, _ = _certify(s1, theta1, lower_theta, d)
        obj = s1
        x = np.concatenate([theta1, s1.mode(theta1).beta])
        H = None
    else:
        obj = _Objective(prob, nAGQ, max_evals, n_evals=s1.n_evals)
        obj.u = s1.mode(theta1).u
        assert s1.beta is not None
        lower = np.concatenate([lower_theta, np.full(p, -np.inf)])
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        x0 = np.concatenate([theta1, s1.beta])
        obj.n_evals = s1.n_evals
        # Stage 1's optimum is close to stage 2's: Newton on the Hessian from there; where
        # that fails (curvature not yet positive), a quasi-Newton run first.
        x, converged, message, gmax, dec, H = _certify(obj, x0, lower, d)
        if not converged and obj.n_evals < max_evals:
            per_eval = 1 if obj.exact else 2 * len(x) + 1
            r2 = optimize.minimize(lambda x: obj.value_and_grad(x, lower), x, jac=True, method="L-BFGS-B",
                                   bounds=bounds, options={"maxfun": max(1, (max_evals - obj.n_evals) // per_eval),
                                                           "ftol": 1e-13, "gtol": 1e-9})
            x = np.maximum(np.asarray(r2.x), lower)
            x, converged, message, gmax, dec, H = _certify(obj, x, lower, d)
    try:
        mode = obj.mode(x[:d] if obj.joint else x)
    except PIRLSError as exc:
        raise PIRLSError(f"no conditional modes at the point the optimiser returned (theta = {x[:d]}): {exc}") \
            from None
    value = obj.value_of(x, mode)
    failures = s1.n_failures + (obj.n_failures if obj is not s1 else 0)
    if not converged and failures:
        last = obj.failure if obj.failure is not None else s1.failure
        message += f" (PIRLS failed at {failures} of the {obj.n_evals} points tried: {last})"
    theta, beta = x[:d], x[d:]
    beta_cov = _beta_cov(prob, mode, H, d)
    lams = prob.lams(theta)
    Minv = _conditional(mode)
    covs, bs, sds, boundary = [], [], [], []
    for i in range(len(prob.terms)):
        pos = prob.order.index(i)
        lam = lams[pos]
        covs.append(lam @ lam.T)
        bs.append(mode.u[pos] @ lam.T)
        var = np.einsum("ij,kjl,il->ki", lam, Minv[pos], lam)
        sds.append(np.sqrt(np.clip(var, 0.0, None)))
        boundary += [(i, j) for j in singular_components(relative_factor(lam @ lam.T))]
    return GlmmFit(beta=beta, beta_cov=beta_cov, theta=theta, covs=covs, b=bs, b_sd=sds, criterion=value,
                   llf=-value / 2.0, nAGQ=nAGQ, converged=converged, message=message, boundary=boundary,
                   n_evals=obj.n_evals, gradient_max=gmax, newton_decrement=dec)


def _certify(obj: _Objective, x: np.ndarray, lower: np.ndarray, d: int, max_steps: int = 20) -> tuple[
        np.ndarray, bool, str, float, float, np.ndarray | None]:
    """Newton steps until the predicted decrease is negligible, certified on a Hessian taken by differences.

    The Hessian is taken by differences (`_derivatives`) at the first point; the Newton
    steps that follow update it by BFGS from the gradients alone, which converges
    superlinearly for a fraction of the cost. The claim is made only on a Hessian taken by
    differences at the point itself, or at the point one full Newton step of predicted
    decrease below 1e-6 before it (same curvature to the accuracy the test needs): when the
    updated one says "done", it is taken afresh and the test repeated.

    Returns the point, whether it is certified (Hessian positive definite off the boundary
    and Newton decrement below `NEWTON_DECREMENT_TOL`), a message, the largest gradient
    entry off the boundary, the decrement and the Hessian.
    """
    H: np.ndarray | None = None
    gmax, dec = np.inf, np.inf
    fresh = False          # H was taken by differences here (or one tiny Newton step before)
    prev: tuple[np.ndarray, np.ndarray] | None = None
    known: tuple[float, np.ndarray] | None = None
    for _ in range(max_steps):
        if obj.n_evals >= obj.max_evals:
            return x, False, f"stopped at the limit of {obj.max_evals} deviance evaluations", gmax, dec, H
        if H is None:
            f0, g, H = _derivatives(obj, x, lower, known=known)
            fresh = True
        else:
            f0, g = known if known is not None else obj.value_and_grad(x, lower)
            if not fresh and prev is not None:
                H = _bfgs(H, x - prev[0], g - prev[1])
        known = None
        if not (np.isfinite(f0) and np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            return x, False, ("not certified: the deviance could not be evaluated at or around this point "
                              f"({obj.failure})"), gmax, dec, None
        # A zero variance held by the boundary: the gradient points outwards, and the deviance
        # does not curve down into the interior (at theta = 0 it is even: the gradient is 0 there).
        at_bound = (x <= lower + 1e-8) & (g >= 0) & (np.diag(H) >= 0)
        free = ~at_bound
        gf, Hf = g[free], H[np.ix_(free, free)]
        gmax = float(np.max(np.abs(gf), initial=0.0))
        w = np.linalg.eigvalsh(Hf) if free.any() else np.ones(1)
        if w[0] <= 1e-10 * max(1.0, float(w[-1])):
            if not fresh:
                H = None
                continue
            lower_point = _descend(obj, x, lower, f0, free, Hf)
            if lower_point is not None:
                # A saddle (or a zero variance the deviance falls away from): out along the
                # most negative curvature, and Newton again from there.
                x, H, prev = lower_point, None, None
                continue
            return x, False, "not certified: the Hessian of the deviance is not positive definite here", gmax, dec, H
        step = np.linalg.solve(Hf, gf)
        dec = float(gf @ step / 2)
        if dec <= NEWTON_DECREMENT_TOL:
            if not fresh:
                H = None          # the claim needs the curvature measured here
                continue
            message = "optimum" if not at_bound[:d].any() else "optimum on the boundary (a zero variance)"
            return x, True, message, gmax, dec, H
        for t in (1.0, 0.5, 0.25, 0.125, 0.0625):
            trial = x.copy()
            trial[free] -= t * step
            trial = np.maximum(trial, lower)
            # With the exact gradient it comes with the value: the accepted point's is kept.
            cand = obj.value_and_grad(trial, lower) if obj.exact else None
            f_trial = cand[0] if cand is not None else obj(trial)
            if f_trial < f0:
                prev, known = (x, g), cand
                x = trial
                # Within 1e-6 of the minimum the curvature is that of this point.
                fresh = fresh and t == 1.0 and dec < 1e-6
                break
        else:
            if not fresh:
                H = None
                continue
            return x, False, f"not certified: stalled {dec:.2g} above the predicted minimum", gmax, dec, H
    return x, False, f"not certified: predicted decrease {dec:.2g} after {max_steps} Newton steps", gmax, dec, H


def _descend(obj: _Objective, x: np.ndarray, lower: np.ndarray, f0: float, free: np.ndarray,
             Hf: np.ndarray) -> np.ndarray | None:  # noqa: N803
    """A lower point along the eigenvector of ``Hf``'s most negative eigenvalue (either sign), or None."""
    w, V = np.linalg.eigh(Hf)
    if w[0] >= 0:
        return None
    direction = np.zeros(len(x))
    direction[free] = V[:, 0]
    scale = max(1.0, float(np.max(np.abs(x[:len(x)]))))
    for step in (1e-2, 0.1, 0.3):
        for sign in (1.0, -1.0):
            trial = np.maximum(x + sign * step * scale * direction, lower)
            if obj(trial) < f0 - 1e-10 * abs(f0):
                return trial
    return None


def _off_zero(obj: _Objective, theta: np.ndarray, lower: np.ndarray) -> np.ndarray | None:
    """A point with a lower deviance than ``theta``, one of its zero variances made positive, or None."""
    zero = np.flatnonzero((lower == 0) & (theta <= 1e-8))
    if not len(zero):
        return None
    f0 = obj(theta)
    scale = max(1.0, float(np.max(np.abs(theta))))
    for j in zero:
        for t in (0.01, 0.1, 0.3, 1.0):
            trial = theta.copy()
            trial[j] = t * scale
            if obj(trial) < f0 - 1e-10 * abs(f0):
                return trial
    return None


def _bfgs(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:  # noqa: N803
    """The BFGS update of a Hessian approximation (skipped when the curvature ``s'y`` is not positive)."""
    sy = float(s @ y)
    if sy <= 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
        return H
    Hs = H @ s
    return H - np.outer(Hs, Hs) / float(s @ Hs) + np.outer(y, y) / sy


def _beta_cov(prob: Problem, mode: Mode, H: np.ndarray | None, d: int) -> np.ndarray:
    """lme4's ``vcov``: the beta block of ``2 H^-1``, ``H`` the deviance's Hessian in (theta, beta)
    (``use.hessian = TRUE``, ``calc.vcov.hess`` in ``R/lmer.R``).

    Without that Hessian (nAGQ = 0), or when it is not positive definite, ``(R_X'R_X)^-1``
    of the joint weighted PLS at the modes, lme4's fallback.
    """
    if H is not None:
        try:
            cov = 2.0 * np.linalg.inv(H)[d:, d:]
            if np.all(np.diag(cov) > 0):
                return (cov + cov.T) / 2
        except np.linalg.LinAlgError:
            pass
    st = prob.weighted(mode.eta, mode.mu, prob.offset, True)
    s = pls.solve(st, mode.solve.lams)
    k = s.LD.shape[0] - prob.p
    return pls.cho_inverse(s.LD[k:, k:])


def _conditional(mode: Mode) -> list[np.ndarray]:
    """Diagonal blocks of ``(Lambda'Z'WZ Lambda + I)^-1`` per term (algebra order), at the modes' weights."""
    return _conditional_blocks(SimpleNamespace(stats=mode.stats), mode.solve)  # type: ignore[arg-type]
