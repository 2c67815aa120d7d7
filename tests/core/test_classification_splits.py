"""Class-stratified splits (issue 27): properties for any data (hypothesis), and the scikit-learn version rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold, StratifiedKFold
from test_splits import grouped_data

from mixcv_core.errors import SpecError
from mixcv_core.experiment import splits
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.experiment.splits import compute_splits, make_splitter

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def grouped_classes(draw, min_groups=4):
    """`grouped_data`'s groups, its target cut at 0 into two classes: groups with a large effect
    are all one class, others mixed."""
    groups, y = draw(grouped_data(min_groups))
    return groups, (y > 0).astype(float)


def _class_shares_within(pairs, y, tolerance):
    whole = y.mean()
    return all(abs(y[te].mean() - whole) <= tolerance for _, te in pairs)


@pytest.mark.parametrize("n_repeats", [1, 2])
@PROPERTY
@given(data=grouped_classes(), n_splits=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_class_stratified_group_folds_keep_groups_disjoint_and_test_every_row_once_per_repeat(data, n_splits, seed,
                                                                                              n_repeats):
    groups, y = data
    splitter = make_splitter("StratifiedGroupKFold", n_splits, seed, n_repeats, classes=True)
    pairs = compute_splits(splitter, np.zeros((len(y), 1)), y, groups, "split")
    assert len(pairs) == n_splits * n_repeats
    for r in range(n_repeats):
        tested = np.concatenate([te for _, te in pairs[r * n_splits:(r + 1) * n_splits]])
        assert sorted(tested.tolist()) == list(range(len(y)))
    for tr, te in pairs:
        assert not set(groups[tr]) & set(groups[te])


@PROPERTY
@given(data=grouped_classes(min_groups=6), n_splits=st.integers(2, 3), seed=st.integers(0, 10_000))
def test_a_planned_classification_has_every_class_in_every_fold_or_is_refused_naming_the_folds(data, n_splits, seed):
    groups, y = data
    frame = pd.DataFrame({"y": np.where(y == 1, "yes", "no"), "g": groups, "x": np.arange(len(y), dtype=float)})
    spec = ExperimentSpec(DataSpec(target="y", groups="g"), models=(ModelSpec("logit", "LogisticRegression"),),
                          outer=SplitSpec("StratifiedGroupKFold", n_splits=n_splits, _field="outer"), seed=seed)
    present = len(set(y)) == 2
    try:
        plan = plan_experiment(spec, frame)
    except SpecError as err:
        assert err.field in ("outer.n_splits", "task")
        assert ("fewer folds" in err.message) if err.field == "outer.n_splits" else not present
        return
    for tr, te in plan.outer:
        assert not set(groups[tr]) & set(groups[te])
        assert set(plan.data.y[te]) == set(plan.data.y[tr]) == {0.0, 1.0}


def test_stratified_k_fold_of_classes_is_scikit_learns_and_keeps_the_class_share_in_every_fold():
    # Row-level: scikit-learn's StratifiedKFold on the classes, folds within one row of the class share.
    y = np.r_[np.zeros(70), np.ones(30)]
    pairs = compute_splits(make_splitter("StratifiedKFold", 5, 0, classes=True), np.zeros((100, 1)), y, None, "s")
    assert [int(y[te].sum()) for _, te in pairs] == [6] * 5
    assert isinstance(make_splitter("StratifiedKFold", 5, 0, classes=True), StratifiedKFold)
    assert isinstance(make_splitter("StratifiedKFold", 5, 0, 3, classes=True), RepeatedStratifiedKFold)
    assert _class_shares_within(pairs, y, 0.0)


def test_stratified_group_kfold_shuffles_only_where_scikit_learn_shuffles_it_correctly(monkeypatch):
    assert splits.group_shuffle_works() is (splits._sklearn_version() >= (1, 8))
    shuffled = make_splitter("StratifiedGroupKFold", 3, 7, classes=True)
    assert isinstance(shuffled, StratifiedGroupKFold)
    assert shuffled.shuffle is splits.group_shuffle_works()
    monkeypatch.setattr(splits, "_sklearn_version", lambda: (1, 7))
    plain = make_splitter("StratifiedGroupKFold", 3, 7, classes=True)
    assert plain.shuffle is False and plain.random_state is None
    with pytest.raises(SpecError) as info:
        ExperimentSpec(DataSpec(target="y", groups="g"), models=(ModelSpec("logit", "LogisticRegression"),),
                       outer=SplitSpec("StratifiedGroupKFold", n_splits=3, n_repeats=2, _field="outer"),
                       task="classification")
    assert info.value.field == "outer.n_repeats"
    assert "1.8" in info.value.message and "one repeat" in info.value.message
    with pytest.raises(SpecError) as info:
        ExperimentSpec(DataSpec(target="y", groups="g"), models=(ModelSpec("logit", "LogisticRegression"),),
                       outer=SplitSpec(StratifiedGroupKFold(3, shuffle=True, random_state=0), _field="outer"),
                       task="classification")
    assert info.value.field == "outer.method"
