"""The whole engine against lme4, fold by fold, on crossed real data (issue 25).

tests/reference/lme4_multi.R fitted lme4 (REML, bobyqa with rhoend 1e-12) on the training
rows of fixed folds and predicted the test rows with ``allow.new.levels = TRUE``; the folds,
estimates and predictions are in tests/data/lmm_multi/lme4_multi.json (``folds`` of each case).
Here the same folds go through `CrossValidation` as a predefined outer split, unscaled (lme4
saw the raw columns), with the spec's random part: every fold's fixed effects, standard
errors, theta and test predictions must be lme4's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.models.mixed import split_formula

ROOT = Path(__file__).parent.parent.parent
CASES = json.loads((ROOT / "tests" / "data" / "lmm_multi" / "lme4_multi.json").read_text())["cases"]
SCHEMES = [(name, scheme) for name, case in CASES.items() for scheme in case.get("folds", {})]


@pytest.mark.parametrize("name, scheme", SCHEMES)
def test_the_engine_on_lme4s_folds_gives_lme4s_per_fold_estimates_and_predictions(name, scheme):
    case = CASES[name]
    groups = case["group_columns"]
    d = pd.read_csv(ROOT / case["csv"], dtype={c: str for c in [*groups, *case["factor_levels"]]})
    features = [c for c in case["fixed_names"] if c != "(Intercept)"]
    _, terms = split_formula(case["formula"])
    random = " + ".join(str(t) for t in terms)
    fits = case["folds"][scheme]["fits"]
    folds = [(np.asarray(f["train"]), np.asarray(f["test"])) for f in fits]
    res = (CrossValidation().set_data(d[features], d[case["response"]], groups=d[groups], random=random)
           .set_splits(folds, scale_out=False).add_model(LinearMixedEffectsModel).perform().get_results())
    assert res.failures.empty
    preds = res.predictions
    for k, f in enumerate(fits):
        m = res.models[("LinearMixedEffectsModel", k)]
        assert m.converged_
        np.testing.assert_allclose(m.fe_params_.to_numpy(), list(f["fixef"].values()), rtol=1e-5)
        np.testing.assert_allclose(m.bse_.to_numpy(), list(f["se"].values()), rtol=1e-5)
        np.testing.assert_allclose(m.theta_, list(f["theta"].values()), rtol=1e-4, atol=1e-6)
        fold = preds[(preds["model"] == "LinearMixedEffectsModel") & (preds["fold"] == k)].sort_values("row")
        assert fold["row"].tolist() == list(f["test"])
        np.testing.assert_allclose(fold["y_pred"].to_numpy(), f["predict"], rtol=1e-5)
    # Rows in neither part of a fold (the new-plate-and-new-sample scheme) are counted.
    expected = [len(d) - len(f["train"]) - len(f["test"]) for f in fits]
    assert res.unused_rows().tolist() == expected
