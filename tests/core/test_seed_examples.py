"""The seed guide's examples, with only ``flexcv`` replaced by ``mixcv_core`` in the imports."""

from __future__ import annotations

import numpy as np


def test_seed_example_1_linear_mixed_model():
    # --- verbatim from the guide, imports changed ---
    from mixcv_core import CrossValidation
    from mixcv_core.models import LinearModel, LinearMixedEffectsModel  # noqa: F401
    from mixcv_core.synthesizer import generate_regression

    X, y, group, random_slopes =generate_regression(
        3,100,n_slopes=1,noise_level=9.1e-2
    )

    cv =CrossValidation()
    results = (
        cv.set_data(X, y, group, random_slopes)
        .set_splits(n_splits_out=3)
        .add_model(LinearMixedEffectsModel)
        .perform()
        .get_results()
    )
    # --- end of the guide's code ---
    summary = results.summary
    assert "LinearMixedEffectsModel" in summary.index.get_level_values("model")
    row = summary.loc["LinearMixedEffectsModel"]
    assert set(row.index) >= {"r2", "mse", "mae", "rmse"}
    # flexcv printed NaN in every MSE row: every cell here must be a number.
    assert np.isfinite(row[["mean", "median"]].to_numpy()).all()
    assert (row["n_folds"] == 3).all()
    # Groups are known to training under KFold, so the LMM should explain nearly all
    # variance with noise sd 0.091.
    assert row.loc["r2", "mean"] > 0.95
    assert np.isclose(row.loc["rmse", "mean"], np.sqrt(row.loc["mse", "mean"]))
