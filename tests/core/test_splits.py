"""Splitters: properties that must hold for any data (hypothesis) and a few exact cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import LeaveOneGroupOut

from mixcv_core.experiment.data import plan_experiment
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.experiment.splits import (
    SPLIT_METHODS,
    ContinuousStratifiedKFold,
    compute_splits,
    make_splitter,
    quantile_bins,
    repeat_labels,
)

GROUP_METHODS = [m for m, v in SPLIT_METHODS.items() if v.requires_groups]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def grouped_data(draw, min_groups=4):
    n_groups = draw(st.integers(min_groups, 12))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_groups, max_size=n_groups))
    groups = np.repeat(np.arange(n_groups), sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    y = rng.normal(size=len(groups)) + rng.normal(size=n_groups)[groups]
    return groups, y


@pytest.mark.parametrize("method", list(SPLIT_METHODS))
@PROPERTY
@given(data=grouped_data(), n_splits=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_every_row_tested_exactly_once(method, data, n_splits, seed):
    groups, y = data
    X = np.zeros((len(y), 1))
    pairs = compute_splits(make_splitter(method, n_splits, seed), X, y, groups, "split")
    tested = np.concatenate([te for _, te in pairs])
    assert sorted(tested.tolist()) == list(range(len(y)))
    for tr, te in pairs:
        assert len(np.intersect1d(tr, te)) == 0
        assert len(tr) + len(te) == len(y)


@pytest.mark.parametrize("method", GROUP_METHODS)
@PROPERTY
@given(data=grouped_data(), n_splits=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_group_splits_never_share_a_group(method, data, n_splits, seed):
    groups, y = data
    pairs = compute_splits(make_splitter(method, n_splits, seed), np.zeros((len(y), 1)), y, groups, "split")
    for tr, te in pairs:
        assert not set(groups[tr]) & set(groups[te])


@pytest.mark.parametrize("method", list(SPLIT_METHODS))
@PROPERTY
@given(data=grouped_data(), n_splits=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_same_seed_same_folds(method, data, n_splits, seed):
    groups, y = data
    X = np.zeros((len(y), 1))
    a = compute_splits(make_splitter(method, n_splits, seed), X, y, groups, "split")
    b = compute_splits(make_splitter(method, n_splits, seed), X, y, groups, "split")
    assert all(np.array_equal(t1, t2) and np.array_equal(v1, v2) for (t1, v1), (t2, v2) in zip(a, b))


@PROPERTY
@given(n=st.integers(50, 400), n_splits=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_stratified_folds_keep_the_target_distribution(n, n_splits, seed):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(size=n)  # skewed, so an unstratified fold could easily miss the tail
    pairs = compute_splits(ContinuousStratifiedKFold(n_splits, random_state=seed), np.zeros((n, 1)), y, None, "s")
    bins = quantile_bins(y, 10 if n // n_splits >= 10 else n // n_splits)
    n_bins = bins.max() + 1
    whole = np.bincount(bins, minlength=n_bins) / n
    for _, te in pairs:
        fold = np.bincount(bins[te], minlength=n_bins) / len(te)
        # Each bin is spread over the folds to within one member.
        assert np.all(np.abs(fold - whole) <= 1.0 / len(te) + 1e-12)
    # ...so the folds' quartiles are close to the whole's.
    q_whole = np.quantile(y, [0.25, 0.5, 0.75])
    spread = np.quantile(y, 0.9) - np.quantile(y, 0.1)
    for _, te in pairs:
        if len(te) >= 30:
            assert np.all(np.abs(np.quantile(y[te], [0.25, 0.5, 0.75]) - q_whole) < 0.35 * spread)


@pytest.mark.parametrize("outer", list(SPLIT_METHODS))
@pytest.mark.parametrize("inner", list(SPLIT_METHODS))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=grouped_data(min_groups=9), seed=st.integers(0, 10_000))
def test_inner_folds_never_contain_outer_test_rows(outer, inner, data, seed):
    groups, y = data
    frame = pd.DataFrame({"x": np.arange(len(y), dtype=float), "y": y, "g": groups})
    spec = ExperimentSpec(
        data=DataSpec(target="y", groups="g"),
        models=(ModelSpec("Ridge", "Ridge", params={"alpha": __import__("optuna").distributions.FloatDistribution(0.1, 1)},
                          requires_inner_cv=True),),
        outer=SplitSpec(outer, 3, _field="outer"), inner=SplitSpec(inner, 2, _field="inner"), seed=seed)
    plan = plan_experiment(spec, frame)
    for (train, test), inner_pairs in zip(plan.outer, plan.inner):
        for itr, ite in inner_pairs:
            assert set(itr) | set(ite) <= set(train)
            assert not set(itr) & set(test) and not set(ite) & set(test)
            if SPLIT_METHODS[inner].requires_groups:
                assert not set(groups[itr]) & set(groups[ite])


def test_any_sklearn_splitter_and_fixed_index_pairs():
    groups = np.repeat(np.arange(4), 5)
    y = np.arange(20.0)
    X = np.zeros((20, 1))
    pairs = compute_splits(make_splitter(LeaveOneGroupOut(), 99, 0), X, y, groups, "s")
    assert len(pairs) == 4
    fixed = SplitSpec([(np.arange(10), np.arange(10, 20)), (np.arange(10, 20), np.arange(10))], _field="outer")
    pairs = compute_splits(make_splitter(fixed.method, 2, 0), X, y, groups, "s")
    assert [p[1].tolist() for p in pairs] == [list(range(10, 20)), list(range(10))]


def test_quantile_bins_have_equal_counts_even_with_ties():
    y = np.array([1.0] * 50 + [2.0] * 50)
    assert np.bincount(quantile_bins(y, 10)).tolist() == [10] * 10


def test_flexcv_aliases_and_case_are_accepted():
    assert SplitSpec("CustomStratifiedGroupKFold", _field="outer").method == "StratifiedGroupKFold"
    assert SplitSpec("groupkfold", _field="outer").method == "GroupKFold"


# -- repeated (group) K-fold ----------------------------------------------------------
@pytest.mark.parametrize("method", list(SPLIT_METHODS))
@PROPERTY
@given(data=grouped_data(), n_splits=st.integers(2, 4), n_repeats=st.integers(2, 3), seed=st.integers(0, 10_000))
def test_repeats_test_every_row_once_per_repeat_and_keep_groups_whole(method, data, n_splits, n_repeats, seed):
    groups, y = data
    X = np.zeros((len(y), 1))
    splitter = make_splitter(method, n_splits, seed, n_repeats)
    pairs = compute_splits(splitter, X, y, groups, "split")
    assert len(pairs) == n_splits * n_repeats
    labels = repeat_labels(splitter, len(pairs))
    for r in range(n_repeats):
        tested = np.concatenate([te for (_, te), lab in zip(pairs, labels) if lab == r])
        assert sorted(tested.tolist()) == list(range(len(y)))
    if SPLIT_METHODS[method].requires_groups:
        for tr, te in pairs:
            assert not set(groups[tr]) & set(groups[te])
    again = compute_splits(make_splitter(method, n_splits, seed, n_repeats), X, y, groups, "split")
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(pairs, again))   # same seed, same repeats


@pytest.mark.parametrize("method", list(SPLIT_METHODS))
def test_repeats_differ_from_one_another(method):
    groups = np.repeat(np.arange(12), 4)
    y = np.random.default_rng(0).normal(size=48)
    pairs = compute_splits(make_splitter(method, 3, 7, n_repeats=3), np.zeros((48, 1)), y, groups, "split")

    def partition(r):
        return sorted(tuple(sorted(te.tolist())) for _, te in pairs[3 * r:3 * r + 3])
    assert partition(0) != partition(1) and partition(1) != partition(2) and partition(0) != partition(2)


def test_repeated_group_splitters_are_scikit_learn_splitters():
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    from mixcv_core.experiment.splits import RepeatedGroupKFold, RepeatedStratifiedGroupKFold, split_requires_groups
    rng = np.random.default_rng(1)
    X, y, groups = rng.normal(size=(60, 2)), rng.normal(size=60), np.repeat(np.arange(10), 6)
    for cls in (RepeatedGroupKFold, RepeatedStratifiedGroupKFold):
        cv = cls(n_splits=5, n_repeats=2, random_state=0)
        assert split_requires_groups(cv) and cv.get_n_splits() == 10
        assert len(cross_val_score(LinearRegression(), X, y, groups=groups, cv=cv)) == 10
        assert repr(cv).startswith(cls.__name__ + "(")


def test_repeats_of_a_splitter_object_are_refused_naming_the_field():
    from mixcv_core.errors import SpecError
    with pytest.raises(SpecError, match=r"outer.n_repeats: .*RepeatedGroupKFold"):
        SplitSpec(LeaveOneGroupOut(), n_repeats=2, _field="outer")
    with pytest.raises(SpecError, match=r"inner.n_repeats: .*outer split only"):
        SplitSpec("KFold", n_repeats=2, _field="inner")
    with pytest.raises(SpecError, match=r"inner.known_holdout"):
        SplitSpec("KFold", known_holdout=0.2, _field="inner")


@PROPERTY
@given(n=st.integers(4, 60), data=st.data())
def test_a_splitter_whose_train_and_test_share_a_row_is_refused_naming_the_split(n, data):
    """A user's splitter that puts one row in both parts is refused whichever row it is, and
    one that keeps them apart (and leaves rows out) is taken as it is."""
    from mixcv_core.errors import SpecError
    test = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1))))
    train = np.setdiff1d(np.arange(n), test)
    left_out = data.draw(st.sets(st.sampled_from(train.tolist()), max_size=len(train) - 1))
    train = np.array([r for r in train if r not in left_out], dtype=np.int64)

    class Fixed:
        def __init__(self, pairs):
            self.pairs = pairs

        def split(self, X, y, groups=None):
            return iter(self.pairs)

    X, y = np.zeros((n, 1)), np.zeros(n)
    ok = compute_splits(Fixed([(train, test), (test, train)]), X, y, None, "split")
    assert [(list(a), list(b)) for a, b in ok] == [(list(train), list(test)), (list(test), list(train))]
    shared = data.draw(st.sampled_from(test.tolist()))
    with pytest.raises(SpecError, match="split 1 has rows in both train and test") as err:
        compute_splits(Fixed([(train, test), (np.append(train, shared), test)]), X, y, None, "split")
    assert err.value.field == "split"
