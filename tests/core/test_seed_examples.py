"""The seed guide's examples, with only ``flexcv`` replaced by ``mixcv_core`` in the imports."""

from __future__ import annotations

import numpy as np


def test_seed_example_1_linear_mixed_model():
    # --- verbatim from the guide, imports changed ---
    from mixcv_core import CrossValidation
    from mixcv_core.models import LinearMixedEffectsModel, LinearModel  # noqa: F401
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
    # flexcv's data: 100 rows, 3 integer features, 5 groups with random intercepts.
    assert X.shape == (100, 3) and group.nunique() == 5 and list(random_slopes.columns)[0] in X.columns
    summary = results.summary
    assert "LinearMixedEffectsModel" in summary.index.get_level_values("model")
    row = summary.loc["LinearMixedEffectsModel"]
    assert set(row.index) >= {"r2", "mse", "mae", "rmse"}
    # flexcv printed NaN in every MSE row: every cell here must be a number.
    assert np.isfinite(row[["mean", "median"]].to_numpy()).all()
    assert (row["n_folds"] == 3).all()
    assert np.isclose(row.loc["rmse", "mean"], np.sqrt(row.loc["mse", "mean"]))
    # The LMM is the true model here, so its test MSE is near the noise variance (0.091²),
    # and no worse than a plain least-squares fit with one dummy per group (groups are
    # known to training under KFold), written here with numpy.
    assert 0.8 < row.loc["mse", "mean"] / 9.1e-2**2 < 1.5
    dummies = np.column_stack([np.ones(len(y)), X.to_numpy(float), np.eye(5)[group.to_numpy()][:, 1:]])
    ols_mse = []
    for _, fold in results.predictions.groupby("fold"):
        test = fold["row"].to_numpy()
        train = np.setdiff1d(np.arange(len(y)), test)
        beta = np.linalg.lstsq(dummies[train], y.to_numpy()[train], rcond=None)[0]
        ols_mse.append(np.mean((y.to_numpy()[test] - dummies[test] @ beta) ** 2))
    assert row.loc["mse", "mean"] <= 1.05 * np.mean(ols_mse)


def test_seed_example_2_merf_with_tuned_random_forest():
    # --- verbatim from the guide, imports changed ---
    import optuna
    from sklearn.ensemble import RandomForestRegressor

    from mixcv_core import CrossValidation
    from mixcv_core.merf import MERF  # noqa: F401
    from mixcv_core.model_postprocessing import RandomForestModelPostProcessor
    from mixcv_core.synthesizer import generate_regression


    # lets start with generating some clustered data
    X, y, group, random_slopes =generate_regression(
        3, 50, n_slopes=1, noise_level=9.1e-2
    )
    # define our hyperparameters
    params = {
        "max_depth": optuna.distributions.IntDistribution(5, 100),
        "n_estimators": optuna.distributions.CategoricalDistribution([10]),
    }

    cv =CrossValidation()
    results = (
        cv.set_data(X, y, group, random_slopes)
        .set_inner_cv(3)
        .set_splits(n_splits_out=3)
        .add_model(model_class=RandomForestRegressor, requires_inner_cv=True, params=params, post_processor=RandomForestModelPostProcessor)
        .set_merf(True, em_max_iterations=5)
        .perform()
        .get_results()
    )
    # --- end of the guide's code ---
    models = results.summary.index.get_level_values("model")
    assert "RandomForestRegressor" in models and "MERF(RandomForestRegressor)" in models
    table = results.to_frame().set_index(["model", "fold"])
    for k in range(3):
        # MERF wraps the forest with that fold's tuned parameters.
        tuned = table.loc[("RandomForestRegressor", k), "best_params"]
        assert table.loc[("MERF(RandomForestRegressor)", k), "best_params"] == tuned
        merf = results.models[("MERF(RandomForestRegressor)", k)]
        assert merf.trained_fe_model.get_params()["max_depth"] == tuned["max_depth"]
        assert list(results.histories[("MERF(RandomForestRegressor)", k)]["iteration"]) == [1, 2, 3, 4, 5]
        assert set(results.insights[("MERF(RandomForestRegressor)", k)].index) == set(X.columns)
    assert np.isfinite(results.summary["mean"]).all()
