"""Unbounded L-BFGS-B on a function that returns its value and gradient: scipy's routine, driven directly.

``scipy.optimize.minimize(method="L-BFGS-B")`` drives the reverse-communication routine
``setulb`` (Byrd, Lu, Nocedal & Zhu 1995; scipy's C translation since 1.15) in a Python loop,
behind a ``ScalarFunction`` that copies, counts and caches every evaluation and an
``OptimizeResult`` with an inverse-Hessian operator built at the end. On a one-term mixed
model of a thousand rows an evaluation costs about 0.15 ms and a fit takes some fifteen, so
that wrapper (about 1 ms a fit) cost as much as seven evaluations. `lbfgsb` runs the same
loop over the same routine with the same arguments, so it visits the same points and stops
at the same one; only the wrapper is gone. When the installed scipy's ``setulb`` has another
calling convention (before 1.15), it calls ``minimize`` instead, with the same result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import optimize

try:
    from scipy.optimize import _lbfgsb
except ImportError:  # pragma: no cover - a scipy without the compiled module
    _lbfgsb = None

__all__ = ["lbfgsb"]

#: The calling convention the direct loop is written for (scipy >= 1.15): integer task codes.
_SIGNATURE = "setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,lsave,isave,dsave,maxls,ln_task)"
#: The ``task`` codes of that convention: evaluate f and g at x; a new iterate; stop (502: too many evaluations).
_FG, _NEW_X, _STOP, _TOO_MANY_EVALS = 3, 1, 5, 502
#: scipy's defaults: corrections kept (``maxcor``) and iterations at most (``maxiter``).
_MAXCOR, _MAXITER = 10, 15_000


def _direct_available() -> bool:
    setulb = getattr(_lbfgsb, "setulb", None)
    doc = getattr(setulb, "__doc__", None) or ""
    return doc.strip().splitlines()[:1] == [_SIGNATURE]


DIRECT = _direct_available()


def lbfgsb(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *, ftol: float,
           gtol: float, maxls: int, maxfun: int) -> tuple[np.ndarray, float, int]:
    """Minimise without bounds from ``x0``; ``minimize(..., method="L-BFGS-B")`` with these options.

    Parameters
    ----------
    fun_and_grad : the function, returning its value and gradient at a point (given a copy).
    x0 : the start.
    ftol, gtol, maxls, maxfun : as scipy's L-BFGS-B options.

    Returns
    -------
    (x, f, nfev) : the point where the routine stopped, its value, and the evaluations made.
    Exceptions raised by ``fun_and_grad`` propagate (the caller's evaluation budget).
    """
    if not DIRECT:
        res = optimize.minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B",
                                options={"ftol": ftol, "gtol": gtol, "maxls": maxls, "maxfun": maxfun})
        return np.asarray(res.x, dtype=float), float(res.fun), int(res.nfev)
    m = _MAXCOR
    x = np.array(x0, dtype=np.float64).ravel()
    n = len(x)
    bounds = np.zeros(n)                       # unused: nbd = 0 says no bound on any coordinate
    nbd = np.zeros(n, np.int32)
    f = np.array(0.0)
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, np.int32)
    task, ln_task = np.zeros(2, np.int32), np.zeros(2, np.int32)
    lsave, isave, dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)
    factr = ftol / np.finfo(float).eps
    nfev = iterations = 0
    while True:
        _lbfgsb.setulb(m, x, bounds, bounds, nbd, f, g, factr, gtol, wa, iwa, task, lsave, isave, dsave, maxls,
                       ln_task)
        if task[0] == _FG:
            value, grad = fun_and_grad(x.copy())
            nfev += 1
            f = np.array(value, dtype=np.float64)
            g = np.array(grad, dtype=np.float64)
        elif task[0] == _NEW_X:
            # As minimize: the budget is checked between iterations, never inside a line search.
            iterations += 1
            if iterations >= _MAXITER or nfev > maxfun:
                task[0], task[1] = _STOP, _TOO_MANY_EVALS
        else:
            return x, float(f), nfev
