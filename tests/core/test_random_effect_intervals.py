"""The intervals of random effects: conditional modes and sds against lme4's
``ranef(fit, condVar = TRUE)`` (tests/reference/lme4_condvar.R -> tests/data/lmm/lme4_condvar.json,
on the battery's copies of lme4's sleepstudy, nlme's Orthodont and lme4's Dyestuff)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.models.merf import MERFRegressor

DATA = Path(__file__).parents[1] / "data" / "lmm"
REF = json.loads((DATA / "lme4_condvar.json").read_text())
CASES = {"sleepstudy": (["Days"], ["Days"], "Reaction"), "orthodont": (["age", "female"], [], "distance"),
         "dyestuff": ([], [], "Yield")}


def _data(name):
    ref = REF[name]
    d = pd.read_csv(DATA / f"{name}.csv")
    d[ref["group"]] = d[ref["group"]].astype(str)
    return ref, d


@pytest.mark.parametrize("name", list(CASES))
def test_lmm_conditional_sds_match_lme4(name):
    ref, d = _data(name)
    features, slopes, target = CASES[name]
    m = LinearMixedEffectsModel().fit(d[features], d[target], groups=d[ref["group"]], slopes=slopes or None)
    modes = m.random_effects_.loc[ref["groups"]].to_numpy()
    sds = m.random_effects_sd_.loc[ref["groups"]].to_numpy()
    assert np.allclose(modes, np.array(ref["modes"]), rtol=1e-5, atol=1e-6 * np.abs(ref["modes"]).max())
    assert np.allclose(sds, np.array(ref["sds"]), rtol=1e-5)


def test_merf_around_a_linear_model_gives_the_ml_mixed_model_and_its_intervals():
    # With a linear fixed part MERF's EM is the ML fit of the same mixed model: its random
    # effects and their conditional sds must be the LMM's (itself checked against lme4 above).
    ref, d = _data("sleepstudy")
    merf = MERFRegressor(LinearRegression(), max_iterations=1000, tol=1e-10).fit(
        d[["Days"]], d["Reaction"], groups=d["Subject"], slopes=["Days"])
    lmm = LinearMixedEffectsModel(reml=False).fit(d[["Days"]], d["Reaction"], groups=d["Subject"], slopes=["Days"])
    assert list(merf.random_effects_.columns) == ["Intercept", "Days"]
    assert np.allclose(merf.random_effects_.loc[lmm.random_effects_.index], lmm.random_effects_, rtol=1e-4, atol=1e-3)
    assert np.allclose(merf.random_effects_sd_.loc[lmm.random_effects_.index], lmm.random_effects_sd_, rtol=1e-4)


def test_a_singular_fit_has_zero_width_intervals_without_failing():
    # Dyestuff2 (lme4): the batch variance is estimated as exactly zero.
    d = pd.read_csv(DATA / "dyestuff2.csv")
    d["Batch"] = d["Batch"].astype(str)
    with pytest.warns(UserWarning, match="boundary"):
        m = LinearMixedEffectsModel().fit(d[[]], d["Yield"], groups=d["Batch"])
    assert np.allclose(m.random_effects_sd_.to_numpy(), 0.0, atol=1e-8)
