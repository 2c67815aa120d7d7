"""Several grouping factors through the engine (issue 25, item 5): the mixed model gets every
grouping column and the spec's random part; other models never see grouping columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from _crossed import crossed
from sklearn.linear_model import Ridge

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel

RANDOM = "(1 + days | subject) + (1 | item)"



def test_the_mixed_model_fits_the_spec_random_part_on_each_fold_with_every_grouping_column():
    df = crossed()
    res = (CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]], random=RANDOM)
           .set_splits("GroupKFold", n_splits_out=3, scale_out=False)
           .add_model(LinearMixedEffectsModel).perform().get_results())
    assert res.failures.empty
    preds = res.predictions
    for k in range(3):
        m = res.models[("LinearMixedEffectsModel", k)]
        assert m.random == RANDOM and set(m.varcorr_) == {"subject", "item"}
        # The fold's rows fitted by hand with the same terms: the engine handed over exactly these.
        fold = preds[(preds["model"] == "LinearMixedEffectsModel") & (preds["fold"] == k)]
        test = df.index.isin(fold["row"])
        train = ~test
        ref = LinearMixedEffectsModel(random=RANDOM).fit(df.loc[train, ["days"]], df.loc[train, "rt"],
                                                         groups=df.loc[train, ["subject", "item"]])
        np.testing.assert_allclose(m.fe_params_.to_numpy(), ref.fe_params_.to_numpy(), rtol=1e-10)
        expected = ref.predict(df.loc[fold["row"], ["days"]], groups=df.loc[fold["row"], ["subject", "item"]])
        np.testing.assert_allclose(fold["y_pred"].to_numpy(), expected, rtol=1e-10)
        # Test subjects are new, items known: the item BLUPs are used.
        assert not set(df.loc[test, "subject"]) & set(df.loc[train, "subject"])
        assert set(df.loc[test, "item"]) <= set(df.loc[train, "item"])


def test_models_that_are_not_mixed_never_see_the_grouping_columns():
    df = crossed()
    res = (CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]])
           .set_splits("GroupKFold", n_splits_out=3).add_model(Ridge).perform().get_results())
    assert all(m.n_features_in_ == 1 for m in (res.models[("Ridge", k)] for k in range(3)))


def test_known_holdout_rows_are_predicted_with_every_factor_s_blups():
    df = crossed()
    res = (CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]], random=RANDOM,
                                      split_by="item")
           .set_splits("GroupKFold", n_splits_out=3, scale_out=False, known_holdout=0.25)
           .add_model(LinearMixedEffectsModel).perform().get_results())
    known = res.known_predictions
    test = res.predictions
    for k in range(3):
        rows = known.loc[known["fold"] == k, "row"].to_numpy()
        tested = test.loc[test["fold"] == k, "row"].to_numpy()
        train = np.setdiff1d(np.arange(len(df)), np.concatenate([rows, tested]))
        assert rows.size and set(df["item"].iloc[rows]) <= set(df["item"].iloc[train])
        assert set(df["subject"].iloc[rows]) <= set(df["subject"].iloc[train])
        ref = LinearMixedEffectsModel(random=RANDOM).fit(df.loc[train, ["days"]], df.loc[train, "rt"],
                                                         groups=df.loc[train, ["subject", "item"]])
        expected = ref.predict(df.loc[rows, ["days"]], groups=df.loc[rows, ["subject", "item"]])
        np.testing.assert_allclose(known.loc[known["fold"] == k, "y_pred"].to_numpy(), expected, rtol=1e-10)


def test_a_random_part_of_one_factor_reaches_the_model_too():
    # sleepstudy with uncorrelated intercept and slope: lme4's (Days || Subject), two terms of one factor.
    d = pd.read_csv(Path(__file__).parent.parent / "data" / "lmm_multi" / "sleepstudy.csv")
    res = (CrossValidation().set_data(d[["Days"]], d["Reaction"], groups=d["Subject"], random="(Days || Subject)")
           .set_splits("GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel).perform().get_results())
    assert res.failures.empty and res.what_is_new() is None
    assert all(list(res.models[("LinearMixedEffectsModel", k)].varcorr_) == ["Subject", "Subject.1"]
               for k in range(3))
