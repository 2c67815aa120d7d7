"""Minimise the profiled deviance over theta, and certify the point reached.

How the optimum is found — and certified — follows from two invariances of the criterion:

1. It depends on each ``Lambda_t`` only through ``Sigma_t = Lambda_t Lambda_t'``. lme4
   bounds the diagonal of ``Lambda_t`` at zero to make theta unique, but that bound is what
   traps a bounded optimiser: at a zero column of ``Lambda_t`` the criterion is even in
   that column, its gradient there is exactly zero, and a point on the bound passes a
   first-order test while the criterion still falls into the interior (a saddle).
   Negating a column leaves ``Sigma_t`` unchanged, so the bound is not needed: theta is
   optimised *unconstrained* and each column's sign is normalised afterwards
   (`Criterion.normalise`).
2. It depends on ``Z_t`` and ``Lambda_t`` only through ``Z_t Lambda_t``, so the fit works
   with each term's slope columns centred and scaled (`fit.standardise`), which makes
   badly scaled designs as easy as well-scaled ones.

After the quasi-Newton optimiser (L-BFGS-B on the exact gradient) stops, `certify`
computes the gradient and a Hessian from finite differences of it. The Hessian block of
every zero column of a ``Lambda_t`` (where the gradient vanishes by symmetry) is a
second-order test: a negative eigenvalue is a descent direction out of a saddle, and the
optimiser restarts from it. On the other coordinates the Hessian must be positive
definite and the Newton decrement ``g' H^-1 g / 2`` (the criterion's predicted distance
to the minimum) below `NEWTON_DECREMENT_TOL`, which a few Newton steps achieve.
``converged`` is True only at such a certified point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .criterion import Criterion
from .lbfgsb import lbfgsb

__all__ = ["Certificate", "Outcome", "certify", "minimise", "rough_minimum", "NEWTON_DECREMENT_TOL"]

#: Largest predicted distance to the minimum (criterion units, i.e. twice the
#: log-likelihood) at which a point is certified.
NEWTON_DECREMENT_TOL = 1e-8
#: L-BFGS-B's relative tolerance on the criterion: the certificate's Newton steps finish the job.
FTOL = 1e-12
#: The same for a starting point (`rough_minimum`): its scale matters, not its last digits.
ROUGH_FTOL = 1e-7


@dataclass
class Certificate:
    ok: bool
    descent: np.ndarray | None      # a point with a lower criterion, when one was found
    gradient_max: float
    newton_decrement: float
    zero_columns: list[tuple[int, int]]   # (term, column) of Lambda_t that are zero
    message: str
    newton: bool = False            # the descent point is a Newton step (near the minimum), not an escape
    hessian: np.ndarray | None = None


@dataclass
class Outcome:
    theta: np.ndarray
    converged: bool
    message: str
    certificate: Certificate | None
    restarts: int


def hessian(crit: Criterion, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The exact Hessian where the criterion has one (one term), else forward differences of
    the exact gradient, symmetrised (``dim`` gradient evaluations).

    Its use is qualitative (signs of eigenvalues) and the Newton step, both of which a
    relative error of ~1e-6 leaves unchanged.
    """
    exact = crit.hessian(theta)
    if exact is not None:
        return exact
    dim = len(theta)
    H = np.empty((dim, dim))
    for j in range(dim):
        h = 1e-6 * max(1.0, abs(theta[j]))
        e = np.zeros(dim)
        e[j] = h
        H[:, j] = (crit.value_and_grad(theta + e)[1] - grad) / h
    return (H + H.T) / 2


def _zero_columns(crit: Criterion, theta: np.ndarray, scale: float) -> list[tuple[int, int]]:
    out = []
    for i, t in enumerate(crit.terms):
        lam = t.lam(theta)
        out += [(i, j) for j in range(t.q) if np.max(np.abs(lam[j:, j])) <= 1e-7 * scale]
    return out


def certify(crit: Criterion, theta: np.ndarray, H: np.ndarray | None = None) -> Certificate:
    """Is ``theta`` a local minimum? If not, a point lower down when one is at hand.

    Zero columns of a Lambda_t (a singular Sigma_t) are tested to second order on their
    Hessian block: the criterion is even in such a column, so its gradient says
    nothing, and a negative eigenvalue of the block is a descent direction. The other
    coordinates need a positive definite Hessian and a negligible Newton decrement.
    ``H``, when given, is a Hessian from a point a Newton step away (`minimise`), whose
    curvature is the same to the accuracy the test needs; the gradient is always this
    point's own.
    """
    value, grad = crit.value_and_grad(theta)
    if not np.isfinite(value) or not np.all(np.isfinite(grad)):
        return Certificate(False, None, np.inf, np.inf, [], "the criterion is not finite here")
    scale = max(1.0, float(np.max(np.abs(theta))))
    zero_cols = _zero_columns(crit, theta, scale)
    if H is None:
        H = hessian(crit, theta, grad)
    in_zero = np.zeros(len(theta), dtype=bool)
    # Second order on each zero column: descend along the most negative curvature.
    for term, j in zero_cols:
        idx = crit.index(term, j)
        in_zero[idx] = True
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
                return Certificate(False, best, float(np.max(np.abs(grad))), np.inf, zero_cols,
                                   f"a saddle: the criterion falls along the zero column {j} of term {term}'s Lambda")
    free = ~in_zero
    g, Hf = grad[free], H[np.ix_(free, free)]
    gmax = float(np.max(np.abs(grad))) if len(grad) else 0.0
    if not free.any():
        return Certificate(True, None, gmax, 0.0, zero_cols, "optimum")
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
                        return Certificate(False, trial, gmax, np.inf, zero_cols,
                                           "negative curvature: not a minimum")
        return Certificate(False, None, gmax, np.inf, zero_cols,
                           "the Hessian is singular: the random-effects covariance is not identified")
    newton = np.linalg.solve(Hf, g)
    decrement = float(g @ newton / 2)
    if decrement <= NEWTON_DECREMENT_TOL:
        return Certificate(True, None, gmax, decrement, zero_cols, "optimum")
    # Not there yet: offer the Newton point (halved until it descends).
    for t in (1.0, 0.5, 0.25, 0.125):
        trial = theta.copy()
        trial[free] -= t * newton
        if crit(trial) < value:
            return Certificate(False, trial, gmax, decrement, zero_cols,
                               f"not yet at the minimum (predicted decrease {decrement:.2g})", newton=True,
                               hessian=H)
    return Certificate(False, None, gmax, decrement, zero_cols,
                       f"stalled {decrement:.2g} above the predicted minimum")


def _snap_to_boundary(crit: Criterion, theta: np.ndarray) -> np.ndarray:
    """Columns of a Lambda_t that the optimiser left nearly zero, set to zero where that is no worse.

    The criterion is even in each column of Lambda_t, so near a singular optimum it is
    flat in that column (its gradient is proportional to the column): the quasi-Newton
    method stops some 1e-7 away from zero, which is no loss in the criterion but
    leaves a variance of 1e-14 where lme4 reports 0. A zeroed column goes to `certify`,
    which tests it to second order (a saddle sends the optimiser back out).
    """
    value = None
    scale = max(1.0, float(np.max(np.abs(theta))))
    for i, t in enumerate(crit.terms):
        for j in range(t.q):
            idx = crit.index(i, j)
            if 0 < np.max(np.abs(theta[idx])) <= 1e-5 * scale:
                value = crit(theta) if value is None else value
                trial = theta.copy()
                trial[idx] = 0.0
                trial_value = crit(trial)
                if trial_value <= value:
                    theta, value = trial, trial_value
    return theta


def rough_minimum(crit: Criterion, theta: np.ndarray, max_evals: int) -> np.ndarray:
    """A point near the minimum, to start from: L-BFGS-B to a loose tolerance, not certified.

    What a start needs is the scale of each variance (orders of magnitude apart between
    terms, see `fit`); certifying it (a Hessian, Newton steps) cost more evaluations than
    the fit it prepares.
    """
    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = crit.value_and_grad(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return value, grad

    def run(start: np.ndarray) -> tuple[np.ndarray, float]:
        # scipy's defaults for the rest (gtol 1e-5, maxls 20).
        x, value, _ = lbfgsb(objective, start, ftol=ROUGH_FTOL, gtol=1e-5, maxls=20,
                             maxfun=max(1, max_evals - crit.n_evals))
        return crit.normalise(x), value

    x, value = run(theta)
    # L-BFGS-B's first step has unit length along the gradient: from Lambda = 1 it lands on
    # Lambda = 0 exactly, where the gradient vanishes by symmetry (a saddle, see above). The
    # columns left at zero are tried at a few fractions of their start, and the optimiser
    # runs again from the lowest point if one is lower; they stay at zero otherwise.
    zero = _zero_columns(crit, x, max(1.0, float(np.max(np.abs(x)))))
    if zero and crit.n_evals + 3 < max_evals:
        best, best_value = None, value
        for fraction in (0.03, 0.1, 0.3):
            trial = x.copy()
            for term, j in zero:
                idx = crit.index(term, j)
                trial[idx] = fraction * theta[idx]
            trial_value = crit(trial)
            if trial_value < best_value:
                best, best_value = trial, trial_value
        if best is not None:
            x, value = run(best)
    return x


class _Budget(Exception):
    """The evaluation budget ran out inside the optimiser."""


def minimise(crit: Criterion, theta: np.ndarray, max_evals: int, max_restarts: int = 8,
             callback: Callable[[int, float], None] | None = None) -> Outcome:
    """L-BFGS-B from ``theta``, then certify; Newton steps and saddle escapes until certified.

    The optimiser's own stopping rule is not trusted: the budget of evaluations ends it
    (then the best point seen is kept), and `certify` decides.
    """
    best: list = [np.inf, theta]

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        if crit.n_evals >= max_evals:
            raise _Budget
        value, grad = crit.value_and_grad(x)
        if value < best[0]:
            best[0], best[1] = value, np.array(x, dtype=float)
        if callback is not None:
            callback(crit.n_evals, value)
        return value, grad

    def run(start: np.ndarray) -> np.ndarray:
        best[0], best[1] = np.inf, start
        try:
            x, value, _ = lbfgsb(objective, start, ftol=FTOL, gtol=1e-12, maxls=50,
                                 maxfun=max(1, max_evals - crit.n_evals))
            return x if value <= best[0] else best[1]
        except _Budget:
            return best[1]

    restarts, newton_steps, limit = 0, 0, False
    cert = None
    optimise = True
    H_prev = None
    while True:
        if crit.n_evals >= max_evals:
            limit = True
            break
        if optimise:
            theta = _snap_to_boundary(crit, crit.normalise(run(theta)))
            H_prev = None
        cert = certify(crit, theta, H_prev)
        if cert.ok:
            break
        if cert.descent is None or crit.n_evals >= max_evals:
            limit = crit.n_evals >= max_evals
            break
        H_prev = None
        if cert.newton and newton_steps < 5:
            # Close to the minimum: Newton converges quadratically from here, so take
            # the step and certify again rather than restart the quasi-Newton method.
            newton_steps += 1
            optimise = False
            step = cert.descent - theta
            if np.max(np.abs(step)) <= 1e-3 * max(1.0, float(np.max(np.abs(theta)))):
                H_prev = cert.hessian
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
    return Outcome(theta, converged, message, cert, restarts)
