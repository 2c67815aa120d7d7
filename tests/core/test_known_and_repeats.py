"""New and known groups in one run, repeated group CV, and the one-fold debugging run.

Checked on lme4's sleepstudy (tests/data/sleepstudy.csv, provenance in tests/data/README.md):
18 subjects whose reaction times differ strongly by subject, the textbook case where a
mixed model predicts a known subject far better than a new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation
from mixcv_core.errors import SpecError
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.repeated import RepeatedCV
from mixcv_core.tracking.store import RunStore

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")


def _sleep(known=0.0, repeats=1, k=6, models=("LinearModel", "LinearMixedEffectsModel"), one_fold=False, **run):
    cv = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
          .set_splits("GroupKFold", n_splits_out=k, n_repeats=repeats, known_holdout=known,
                      break_cross_val=one_fold)
          .set_run(store=run.pop("store", False), **run))
    for m in models:
        cv.add_model(m)
    return cv.perform().get_results()


# -- known-group holdout ----------------------------------------------------------------
SEEN: list[frozenset] = []


class RecordsRows(RegressorMixin, BaseEstimator):
    """Predicts the mean; remembers the row ids (the 'rowid' feature) of every fit."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha   # something for the inner loop to tune

    def fit(self, X, y):
        SEEN.append(frozenset(np.asarray(X["rowid"]).astype(int).tolist()))
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_known_rows_never_reach_training_or_the_inner_loop():
    from optuna.distributions import CategoricalDistribution
    frame = SLEEP.assign(rowid=np.arange(len(SLEEP)))
    SEEN.clear()
    cv = (CrossValidation().set_data(frame[["rowid", "Days"]], frame["Reaction"], frame["Subject"])
          .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, scale_out=False, scale_in=False,
                      known_holdout=0.3)
          .add_model(RecordsRows, requires_inner_cv=True, params={"alpha": CategoricalDistribution([1.0])})
          .set_inner_cv(n_trials=1).set_run(store=False))
    res = cv.perform().get_results()
    known = {o.fold: set(o.known_rows.tolist()) for o in res.outcomes}
    assert all(len(rows) > 0 for rows in known.values())
    # Every fit of fold k (3 outer + 2 inner per fold) saw none of fold k's held-out rows;
    # fits are made fold by fold, 2 inner then 1 outer.
    assert len(SEEN) == 9
    for k in range(3):
        for seen in SEEN[3 * k:3 * k + 3]:
            assert not seen & known[k]
    # Held-out rows are of groups in training (known), never of the test groups.
    groups = SLEEP["Subject"].to_numpy()
    for o in res.outcomes:
        train, test = res._outer[o.fold]
        assert set(groups[o.known_rows]) <= set(groups[train])
        assert not set(o.known_rows.tolist()) & set(test.tolist())


def test_the_plan_holds_out_the_fraction_of_every_training_group():
    spec = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
            .set_splits("GroupKFold", n_splits_out=3, known_holdout=0.2).add_model("LinearModel").to_spec())
    plan = plan_experiment(spec, SLEEP)
    groups = SLEEP["Subject"].to_numpy()
    for (train, test), held in zip(plan.outer, plan.known):
        assert not np.intersect1d(train, held).size and not np.intersect1d(test, held).size
        per_group = pd.Series(groups[held]).value_counts()
        assert (per_group == 2).all() and len(per_group) == 12   # 20 % of 10 days, each of 12 subjects


def test_a_mixed_model_predicts_known_subjects_better_than_new_ones():
    res = _sleep(known=0.2)
    table = res.to_frame()
    assert {"known_r2", "known_mse", "n_known"} <= set(table.columns)
    means = table.groupby("model")[["test_r2", "known_r2"]].mean()
    lmm, lm = means.loc["LinearMixedEffectsModel"], means.loc["LinearModel"]
    # The subjects' own intercepts and slopes: a large gain for known subjects only.
    assert lmm["known_r2"] > lmm["test_r2"] + 0.3
    assert lmm["known_r2"] > lm["known_r2"] + 0.3
    mse = table.groupby("model")[["test_mse", "known_mse"]].mean()
    assert mse.loc["LinearMixedEffectsModel", "known_mse"] < 0.5 * mse.loc["LinearMixedEffectsModel", "test_mse"]
    # Without random effects the fixed line is all there is, for new and known alike.
    assert 0.6 < mse.loc["LinearModel", "known_mse"] / mse.loc["LinearModel", "test_mse"] < 1.6
    known_summary = res.summarize("known")
    assert np.isclose(known_summary.loc[("LinearMixedEffectsModel", "r2"), "mean"], lmm["known_r2"])
    preds = res.known_predictions
    assert len(preds) == table["n_known"].sum()   # every held-out row of every fold, per model
    assert set(preds["model"]) == {"LinearModel", "LinearMixedEffectsModel"}


def test_known_scores_survive_the_run_store(tmp_path):
    res = _sleep(known=0.2, store=RunStore(tmp_path))
    back = RunStore(tmp_path).load(res.run_id)
    pd.testing.assert_frame_equal(back.to_frame().drop(columns=["fit_time", "tune_time"]),
                                  res.to_frame().drop(columns=["fit_time", "tune_time"]))
    pd.testing.assert_frame_equal(back.known_predictions, res.known_predictions)


def test_known_holdout_needs_groups_and_known_summary_needs_a_holdout():
    X = SLEEP[["Days"]]
    with pytest.raises(SpecError, match="data.groups: .*known_holdout"):
        CrossValidation().set_data(X, SLEEP["Reaction"]).set_splits(known_holdout=0.2).add_model(
            "LinearModel").to_spec()
    with pytest.raises(SpecError, match="split: this run held out no rows"):
        _sleep(models=("LinearModel",), k=3).summarize("known")


def test_known_holdout_too_small_to_hold_anything_is_refused_naming_the_field():
    frame = pd.DataFrame({"x": np.arange(8.0), "y": np.arange(8.0) ** 1.5, "g": np.repeat(np.arange(4), 2)})
    cv = (CrossValidation().set_data(frame[["x"]], frame["y"], frame["g"])
          .set_splits("GroupKFold", n_splits_out=2, known_holdout=0.1).add_model("LinearModel").set_run(store=False))
    with pytest.raises(SpecError, match="outer.known_holdout: holds out no rows"):
        cv.perform()


# -- repeats ------------------------------------------------------------------------------
def test_repeated_group_cv_runs_every_repeat_and_aggregates_over_all_folds():
    res = _sleep(repeats=3, k=3)
    table = res.to_frame()
    assert sorted(table["repeat"].unique()) == [0, 1, 2]
    assert table.groupby("model").size().tolist() == [9, 9]
    assert (table.groupby(["model", "repeat"]).size() == 3).all()
    assert res.summary.loc[("LinearModel", "r2"), "n_folds"] == 9
    groups = SLEEP["Subject"].to_numpy()
    for train, test in res._outer:
        assert not set(groups[train]) & set(groups[test])
    tests = [frozenset(groups[te].tolist()) for _, te in res._outer]
    assert set(tests[:3]) != set(tests[3:6])   # the repeats assign subjects differently
    again = _sleep(repeats=3, k=3)
    pd.testing.assert_frame_equal(table.drop(columns=["fit_time"]), again.to_frame().drop(columns=["fit_time"]))
    assert "GroupKFold(3) × 3" in res._repr_html_()


def test_flexcv_repeated_cv_form():
    res = (RepeatedCV().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
           .set_splits("GroupKFold", n_splits_out=3).add_model("LinearModel").set_n_repeats(2)
           .set_run(store=False).perform().get_results())
    assert res.to_frame()["repeat"].tolist() == [0, 0, 0, 1, 1, 1]
    default = (RepeatedCV().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
               .set_splits("GroupKFold", n_splits_out=3).add_model("LinearModel").to_spec())
    assert default.outer.n_repeats == 3   # flexcv's default
    with pytest.raises(SpecError, match="n_repeats: must be an integer >= 1"):
        RepeatedCV().set_n_repeats(0)
    with pytest.raises(SpecError, match="NEPTUNE_API_TOKEN"):
        RepeatedCV().set_neptune({"api_token": "secret", "project": "p"})


def test_break_cross_val_fits_the_first_fold_only():
    res = _sleep(k=3, one_fold=True)
    assert res.to_frame()["fold"].tolist() == [0, 0]
    full = _sleep(k=3)
    first = full.to_frame().query("fold == 0")
    assert np.allclose(res.to_frame()["test_r2"], first["test_r2"])


def test_break_cross_val_in_flexcvs_place_set_splits():
    cv = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
          .set_splits("GroupKFold", "KFold", 3, 5, True, True, True)   # flexcv's positional order
          .add_model("LinearModel"))
    assert cv.to_spec().break_cross_val
    assert cv.set_run(store=False).to_spec().break_cross_val      # other setters leave it alone
