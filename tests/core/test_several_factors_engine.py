"""Several grouping factors through the engine (issue 25, item 5): the mixed model gets every
grouping column and the spec's random part; other models never see grouping columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel

RANDOM = "(1 + days | subject) + (1 | item)"


def crossed(n_subjects: int = 12, n_items: int = 10, seed: int = 0) -> pd.DataFrame:
    """Subjects x items, every subject answering every item; a slope per subject."""
    rng = np.random.default_rng(seed)
    s, i = np.meshgrid(np.arange(n_subjects), np.arange(n_items), indexing="ij")
    s, i = s.ravel(), i.ravel()
    days = rng.normal(size=s.size)
    rt = (1 + (0.5 + 0.3 * rng.normal(size=n_subjects)[s]) * days + rng.normal(size=n_subjects)[s]
          + rng.normal(size=n_items)[i] + 0.5 * rng.normal(size=s.size))
    return pd.DataFrame({"rt": rt, "days": days, "subject": [f"s{k}" for k in s], "item": [f"i{k}" for k in i]})


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
