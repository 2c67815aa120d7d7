"""Outer splits chosen by factor, and the crossed split whose test rows are new in every factor
(issue 25, item 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _crossed import crossed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.experiment.data import keep_levels_known, plan_experiment
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.experiment.splits import CrossedGroupKFold


def plan(df: pd.DataFrame, n_splits: int = 3, known: float = 0.0, **data):
    spec = ExperimentSpec(data=DataSpec(target="rt", groups=("subject", "item"), **data),
                          models=(ModelSpec("Ridge", "Ridge"),),
                          outer=SplitSpec("GroupKFold", n_splits, known_holdout=known, _field="outer"))
    return plan_experiment(spec, df)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_a=st.integers(2, 12), n_b=st.integers(2, 12), n_splits=st.integers(2, 4), seed=st.integers(0, 10**6),
       repeats=st.integers(1, 2), data=st.data())
def test_a_crossed_split_never_trains_on_a_level_it_tests_and_uses_a_row_once_at_most(n_a, n_b, n_splits, seed,
                                                                                       repeats, data):
    n = data.draw(st.integers(1, 80))
    labels = np.c_[data.draw(st.lists(st.integers(0, n_a - 1), min_size=n, max_size=n)),
                   data.draw(st.lists(st.integers(0, n_b - 1), min_size=n, max_size=n))]
    folds = list(CrossedGroupKFold(n_splits, repeats, random_state=seed).split(None, None, labels))
    assert len(folds) == n_splits * repeats
    for r in range(repeats):
        tested = np.concatenate([te for _, te in folds[r * n_splits:(r + 1) * n_splits]])
        assert len(tested) == len(set(tested.tolist()))   # each row tested once per repeat at most
    for train, test in folds:
        assert not set(train) & set(test)
        for j in range(2):
            assert not set(labels[test, j]) & set(labels[train, j])
        # A row left out has a level the training rows never show (a held-out one): training
        # on it would leak that level. None is dropped for nothing.
        seen = [set(labels[train, j]) for j in range(2)]
        neither = np.setdiff1d(np.arange(n), np.concatenate([train, test]))
        for row in neither:
            assert any(labels[row, j] not in seen[j] for j in range(2))


def test_split_by_one_factor_holds_its_levels_out_while_the_other_recurs():
    df = crossed()
    for new, recurs in (("subject", "item"), ("item", "subject")):
        p = plan(df, split_by=new)
        for train, test in p.outer:
            assert not set(df[new].iloc[test]) & set(df[new].iloc[train])
            assert set(df[recurs].iloc[test]) <= set(df[recurs].iloc[train])
            assert len(train) + len(test) == len(df)


def test_split_by_both_factors_tests_new_subjects_and_new_items_and_drops_the_mixed_rows():
    df = crossed()
    p = plan(df, split_by=("subject", "item"))
    assert len(p.outer) == 3
    for train, test in p.outer:
        for col in ("subject", "item"):
            assert not set(df[col].iloc[test]) & set(df[col].iloc[train])
        # 12 x 10 fully crossed, 4 subjects and 3-4 items per fold: about 1/9 tested, 4/9 trained.
        assert 0 < len(test) < len(df) / 5 and len(train) + len(test) < len(df)


def test_a_crossed_split_that_cannot_find_rows_for_a_fold_is_refused_naming_split_by():
    # Nested, not crossed: each item belongs to one subject, so few rows combine a fold's levels.
    df = pd.DataFrame({"rt": np.arange(12.0), "days": np.arange(12.0) % 5, "subject": np.repeat(["a", "b", "c"], 4),
                       "item": [f"i{k // 2}" for k in range(12)]})
    with pytest.raises(MixcvError) as info:
        plan(df, split_by=("subject", "item"))
    assert info.value.field == "data.split_by" and "not crossed enough" in info.value.message
    with pytest.raises(MixcvError) as info:
        plan(crossed(10, 2), split_by=("subject", "item"))
    assert info.value.field == "data.split_by" and "levels of 'item'" in info.value.message


@pytest.mark.parametrize("method, words", [("KFold", "ignores groups"), ("StratifiedGroupKFold", "GroupKFold")])
def test_split_by_needs_a_group_split_and_several_factors_need_group_kfold(method, words):
    with pytest.raises(MixcvError) as info:
        ExperimentSpec(data=DataSpec(target="rt", groups=("subject", "item"), split_by=("subject", "item")),
                       models=(ModelSpec("Ridge", "Ridge"),), outer=SplitSpec(method, 3, _field="outer"))
    assert info.value.field == "data.split_by" and words in info.value.message


def test_the_known_holdout_keeps_every_level_of_its_rows_in_training():
    # Partially crossed: some items are rare, and a rare item's only training row must stay.
    df = crossed(10, 30, keep=0.25, seed=3)
    p = plan(df, known=0.5, split_by="subject")
    total = 0
    for (train, _test), held in zip(p.outer, p.known):
        assert held.size and not set(held) & set(train)
        total += held.size
        for col in ("subject", "item"):
            assert set(df[col].iloc[held]) <= set(df[col].iloc[train])
    assert total > 0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 60), frac=st.floats(0.05, 0.95))
def test_held_out_known_rows_have_all_their_levels_in_the_remaining_training_rows(seed, n, frac):
    rng = np.random.default_rng(seed)
    g = pd.DataFrame({"a": rng.integers(0, 5, n), "b": rng.integers(0, 9, n)})
    train = np.arange(n)
    held = np.flatnonzero(rng.random(n) < frac)
    kept = keep_levels_known(train, held, g)
    rest = np.setdiff1d(train, kept)
    assert set(kept) <= set(held)
    for col in g:
        assert set(g[col].iloc[kept]) <= set(g[col].iloc[rest])


def test_the_fluent_api_runs_a_crossed_split_end_to_end():
    df = crossed()
    res = (CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]],
                                      split_by=["subject", "item"])
           .set_splits("GroupKFold", n_splits_out=3).add_model("Ridge").perform().get_results())
    frame = res.to_frame()
    assert len(frame) == 3 and (frame["n_train"] + frame["n_test"] < len(df)).all()


def test_tuning_validates_on_subjects_and_items_the_inner_fit_never_saw():
    from optuna.distributions import FloatDistribution
    df = crossed(15, 12)
    spec = ExperimentSpec(data=DataSpec(target="rt", groups=("subject", "item"), split_by=("subject", "item")),
                          models=(ModelSpec("Ridge", "Ridge", params={"alpha": FloatDistribution(0.1, 10)},
                                            requires_inner_cv=True),),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"),
                          inner=SplitSpec("GroupKFold", 2, _field="inner"))
    p = plan_experiment(spec, df)
    for (outer_train, _), inner in zip(p.outer, p.inner):
        assert inner is not None and len(inner) == 2
        for train, test in inner:
            assert set(train) <= set(outer_train) and set(test) <= set(outer_train) and len(test)
            for col in ("subject", "item"):
                assert not set(df[col].iloc[test]) & set(df[col].iloc[train])
