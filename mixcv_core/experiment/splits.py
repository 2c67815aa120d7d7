"""Cross-validation splitters, by name or object, behind one signature.

Every splitter here is called as ``split(X, y, groups)`` and yields ``(train, test)``
index arrays, whatever it needs: scikit-learn's ``KFold`` ignores ``groups``,
``GroupKFold`` requires them, and the continuous-target stratified splitters below
bin ``y`` first. The engine never has to know which one it is holding.

Continuous targets are stratified as flexcv does it: ``y`` is cut into quantile bins
(10 by default) and the bins' distribution is preserved across folds, while the
folds are of course taken on the original rows. A classification target's classes are
stratified as they are (scikit-learn's ``StratifiedKFold`` and ``StratifiedGroupKFold``):
`make_splitter` picks these with ``classes=True``.

scikit-learn's ``StratifiedGroupKFold`` shuffled groups wrongly before 1.8 (its shuffle
did not change which groups were dealt together); the class-stratified group split then
runs unshuffled, and its repeats, which need the shuffle, are refused
(`check_class_group_shuffle`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import (
    BaseCrossValidator,
    GroupKFold,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

# scikit-learn marks its group splitters with this mixin but does not re-export it;
# its _split module is where GroupKFold and friends get it too.
# _RepeatedSplits is the base of its RepeatedKFold: the repeated group splitters below
# are built on it the same way, so they behave as scikit-learn's own.
from sklearn.model_selection._split import GroupsConsumerMixin, _RepeatedSplits

from ..errors import SpecError, SpecTypeError

__all__ = [
    "SPLIT_METHODS",
    "CrossValMethod",
    "ContinuousStratifiedKFold",
    "ContinuousStratifiedGroupKFold",
    "FixedSplits",
    "CrossedGroupKFold",
    "RepeatedGroupKFold",
    "RepeatedStratifiedGroupKFold",
    "RepeatedContinuousStratifiedKFold",
    "RepeatedClassStratifiedGroupKFold",
    "group_shuffle_works",
    "check_class_group_shuffle",
    "repeat_labels",
    "make_splitter",
    "quantile_bins",
    "split_requires_groups",
    "compute_splits",
    "Splitter",
]

IndexPairs = list[tuple[np.ndarray, np.ndarray]]


@runtime_checkable
class Splitter(Protocol):
    """Anything that splits like scikit-learn: ``split(X, y, groups)`` yields (train, test)."""

    def split(self, X: Any, y: Any = ..., groups: Any = ...) -> Iterable[tuple[Any, Any]]: ...


def quantile_bins(y: np.ndarray, n_bins: int) -> np.ndarray:
    """Label each value of ``y`` with its quantile bin, ``0 .. n_bins - 1``.

    Bins are made from ranks rather than from quantile values, so ties cannot
    collapse bins and every bin holds ``len(y) / n_bins`` values give or take one.

    Examples
    --------
    >>> quantile_bins(np.array([5.0, 1.0, 3.0, 2.0]), 2).tolist()
    [1, 0, 1, 0]
    """
    y = np.asarray(y, dtype=float).ravel()
    n = len(y)
    if n == 0:
        return np.zeros(0, dtype=int)
    n_bins = max(1, min(int(n_bins), n))
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(y, kind="stable")] = np.arange(n)
    return (ranks * n_bins) // n


def _n_bins_for(n_samples: int, n_splits: int, n_bins: int) -> int:
    # Each bin must hold at least n_splits rows, or StratifiedKFold cannot put one of
    # its members in every fold (and warns); fewer, fuller bins keep the guarantee.
    return max(1, min(n_bins, n_samples // max(n_splits, 1)))


class ContinuousStratifiedKFold(BaseCrossValidator):
    """K folds whose target distribution matches the whole's, for a continuous target.

    Parameters
    ----------
    n_splits : int, default=5
    n_bins : int, default=10
        Quantile bins of ``y`` that are stratified; reduced when the data is too small
        to put a member of every bin in every fold.
    shuffle : bool, default=True
    random_state : int or None, default=None

    Examples
    --------
    >>> y = np.arange(20.0)
    >>> folds = list(ContinuousStratifiedKFold(2, random_state=0).split(np.zeros((20, 1)), y))
    >>> [len(test) for _, test in folds]
    [10, 10]
    """

    def __init__(self, n_splits: int = 5, n_bins: int = 10, shuffle: bool = True,
                 random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.n_bins = n_bins
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split(self, X: Any, y: Any, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        y = np.asarray(y, dtype=float).ravel()
        bins = quantile_bins(y, _n_bins_for(len(y), self.n_splits, self.n_bins))
        inner = StratifiedKFold(self.n_splits, shuffle=self.shuffle,
                                random_state=self.random_state if self.shuffle else None)
        yield from inner.split(np.zeros((len(y), 1)), bins)


class ContinuousStratifiedGroupKFold(GroupsConsumerMixin, ContinuousStratifiedKFold):
    """K folds that keep every group whole and stratify a continuous target.

    scikit-learn's ``StratifiedGroupKFold`` does the group-aware assignment; the
    target is binned into quantiles first so that it has classes to stratify.
    Parameters as for `ContinuousStratifiedKFold`.
    """

    def split(self, X: Any, y: Any, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise SpecError("data.groups", "StratifiedGroupKFold needs groups; pass groups to set_data")
        y = np.asarray(y, dtype=float).ravel()
        n_groups = len(np.unique(np.asarray(groups)))
        # Bins are assigned per row but groups move as a whole, so size the bins by
        # the number of groups rather than rows.
        bins = quantile_bins(y, _n_bins_for(n_groups, self.n_splits, self.n_bins))
        inner = StratifiedGroupKFold(self.n_splits, shuffle=self.shuffle,
                                     random_state=self.random_state if self.shuffle else None)
        yield from inner.split(np.zeros((len(y), 1)), bins, groups)


class RepeatedGroupKFold(GroupsConsumerMixin, _RepeatedSplits):
    """Group K-fold repeated ``n_repeats`` times, the groups shuffled anew each time.

    scikit-learn has ``RepeatedKFold`` and ``RepeatedStratifiedKFold`` but no group
    variant (scikit-learn #20520). Each repeat is ``GroupKFold(n_splits, shuffle=True)``
    with its own seed drawn from ``random_state``: every group stays whole in every
    repeat, and the repeats assign groups to folds differently.

    Parameters
    ----------
    n_splits : int, default=5
    n_repeats : int, default=10
    random_state : int or None, default=None

    Examples
    --------
    >>> groups = np.repeat(np.arange(6), 3)
    >>> cv = RepeatedGroupKFold(n_splits=3, n_repeats=2, random_state=0)
    >>> cv.get_n_splits()
    6
    >>> all(not set(groups[tr]) & set(groups[te]) for tr, te in cv.split(np.zeros((18, 1)), groups=groups))
    True
    """

    def __init__(self, n_splits: int = 5, n_repeats: int = 10, random_state: int | None = None) -> None:
        super().__init__(GroupKFold, n_repeats=n_repeats, random_state=random_state, n_splits=n_splits)


class RepeatedStratifiedGroupKFold(GroupsConsumerMixin, _RepeatedSplits):
    """`ContinuousStratifiedGroupKFold` repeated with a new shuffle of the groups each time.

    Groups stay whole and the quantile bins of a continuous target are balanced across
    folds, in every repeat. Parameters as for `RepeatedGroupKFold`, plus ``n_bins``.
    """

    def __init__(self, n_splits: int = 5, n_repeats: int = 10, n_bins: int = 10,
                 random_state: int | None = None) -> None:
        super().__init__(ContinuousStratifiedGroupKFold, n_repeats=n_repeats, random_state=random_state,
                         n_splits=n_splits, n_bins=n_bins)


class RepeatedContinuousStratifiedKFold(_RepeatedSplits):
    """`ContinuousStratifiedKFold` repeated with a new shuffle each time (rows, not groups)."""

    def __init__(self, n_splits: int = 5, n_repeats: int = 10, n_bins: int = 10,
                 random_state: int | None = None) -> None:
        super().__init__(ContinuousStratifiedKFold, n_repeats=n_repeats, random_state=random_state,
                         n_splits=n_splits, n_bins=n_bins)


#: The first scikit-learn whose StratifiedGroupKFold shuffles correctly (scikit-learn #24656).
SHUFFLE_FIXED_IN = (1, 8)


def _sklearn_version() -> tuple[int, int]:
    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def group_shuffle_works() -> bool:
    """Whether the installed scikit-learn's ``StratifiedGroupKFold(shuffle=True)`` shuffles correctly (>= 1.8)."""
    return _sklearn_version() >= SHUFFLE_FIXED_IN


def check_class_group_shuffle(field: str, what: str) -> None:
    """Refuse ``what`` (a shuffled class-stratified group split) on a scikit-learn older than 1.8.

    Raises
    ------
    SpecError
        Naming ``field``, the installed version and the ways out.
    """
    if not group_shuffle_works():
        need = ".".join(map(str, SHUFFLE_FIXED_IN))
        raise SpecError(field, f"{what} needs StratifiedGroupKFold's shuffle, which is broken in scikit-learn "
                               f"{sklearn.__version__} (fixed in {need}); upgrade scikit-learn to {need} or later, "
                               "or use one repeat (unshuffled) or GroupKFold")


class RepeatedClassStratifiedGroupKFold(GroupsConsumerMixin, _RepeatedSplits):
    """scikit-learn's ``StratifiedGroupKFold`` (classes, not bins) repeated with the groups shuffled anew.

    Every group stays whole and every fold keeps the class proportions as well as the
    groups allow, in every repeat. Needs scikit-learn >= 1.8 (`check_class_group_shuffle`).
    Parameters as for `RepeatedGroupKFold`.
    """

    def __init__(self, n_splits: int = 5, n_repeats: int = 10, random_state: int | None = None) -> None:
        super().__init__(StratifiedGroupKFold, n_repeats=n_repeats, random_state=random_state, n_splits=n_splits)


def _class_group_kfold(k: int, seed: int) -> StratifiedGroupKFold:
    # Unshuffled where the shuffle is broken: a deterministic split rather than a wrong one.
    if group_shuffle_works():
        return StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    return StratifiedGroupKFold(k)


def repeat_labels(splitter: object, n_folds: int) -> np.ndarray:
    """Which repeat each of a splitter's ``n_folds`` folds belongs to.

    A repeated splitter (scikit-learn's ``RepeatedKFold`` and friends, mixcv's repeated
    group splitters) yields its repeats one after the other, ``n_splits`` folds each;
    any other splitter is one repeat.

    Examples
    --------
    >>> repeat_labels(RepeatedGroupKFold(3, n_repeats=2), 6).tolist()
    [0, 0, 0, 1, 1, 1]
    >>> repeat_labels(KFold(3), 3).tolist()
    [0, 0, 0]
    """
    r = getattr(splitter, "n_repeats", None)
    if isinstance(r, int) and r > 1 and n_folds % r == 0:
        return np.repeat(np.arange(r), n_folds // r)
    return np.zeros(n_folds, dtype=int)


class FixedSplits(BaseCrossValidator):
    """Precomputed ``(train, test)`` index pairs, used as an outer split.

    Only valid as the outer split: the inner split has to be made afresh on each
    outer training fold. Immutable and compared by value, so a spec holding it stays
    a value too.
    """

    def __init__(self, pairs: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]) -> None:
        self.pairs = tuple(pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixedSplits) and other.pairs == self.pairs

    def __hash__(self) -> int:
        return hash(self.pairs)

    def __repr__(self) -> str:
        return f"FixedSplits({len(self.pairs)} splits)"

    @classmethod
    def from_iterable(cls, pairs: Iterable, field: str = "split_out") -> FixedSplits:
        out = []
        for k, pair in enumerate(pairs):
            try:
                train, test = pair
                train_t = tuple(int(i) for i in np.asarray(train).ravel())
                test_t = tuple(int(i) for i in np.asarray(test).ravel())
            except (TypeError, ValueError) as exc:
                raise SpecTypeError(field, f"split {k} is not a (train_indices, test_indices) pair: {exc}") from None
            out.append((train_t, test_t))
        if len(out) < 1:
            raise SpecError(field, "the iterable of (train, test) splits is empty")
        return cls(tuple(out))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return len(self.pairs)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for train, test in self.pairs:
            yield np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)


@dataclass(frozen=True)
class _Method:
    factory: Callable[[int, int], BaseCrossValidator]
    description: str
    # The same method repeated: (n_splits, n_repeats, seed) -> splitter.
    repeated: Callable[[int, int, int], Any]
    # For a classification target, the method stratifying classes instead of quantile
    # bins (one repeat, then repeated); None: the same splitter for both tasks.
    by_class: Callable[[int, int], BaseCrossValidator] | None = None
    by_class_repeated: Callable[[int, int, int], Any] | None = None

    @property
    def requires_groups(self) -> bool:
        # Read from the splitter's type, like any splitter object (one rule for both).
        return split_requires_groups(self.factory(2, 0))


SPLIT_METHODS: dict[str, _Method] = {
    "KFold": _Method(lambda k, seed: KFold(k, shuffle=True, random_state=seed),
                     "shuffled K folds of rows; ignores groups",
                     lambda k, r, seed: RepeatedKFold(n_splits=k, n_repeats=r, random_state=seed)),
    "StratifiedKFold": _Method(lambda k, seed: ContinuousStratifiedKFold(k, random_state=seed),
                               "K folds with the target's quantile bins (classes) balanced",
                               lambda k, r, seed: RepeatedContinuousStratifiedKFold(k, r, random_state=seed),
                               lambda k, seed: StratifiedKFold(k, shuffle=True, random_state=seed),
                               lambda k, r, seed: RepeatedStratifiedKFold(n_splits=k, n_repeats=r, random_state=seed)),
    # One repeat keeps scikit-learn's size-balanced assignment; repeats shuffle the groups,
    # since the size-balanced one is the same every time.
    "GroupKFold": _Method(lambda k, seed: GroupKFold(k),
                          "K folds keeping every group whole, balanced by size",
                          lambda k, r, seed: RepeatedGroupKFold(k, r, random_state=seed)),
    "StratifiedGroupKFold": _Method(lambda k, seed: ContinuousStratifiedGroupKFold(k, random_state=seed),
                                    "groups kept whole, target quantile bins (classes) balanced",
                                    lambda k, r, seed: RepeatedStratifiedGroupKFold(k, r, random_state=seed),
                                    _class_group_kfold,
                                    lambda k, r, seed: RepeatedClassStratifiedGroupKFold(k, r, random_state=seed)),
}
# flexcv's names for the same continuous-target stratification.
_ALIASES = {
    "CustomStratifiedKFold": "StratifiedKFold",
    "CustomStratifiedGroupKFold": "StratifiedGroupKFold",
    "ContinuousStratifiedKFold": "StratifiedKFold",
    "ContinuousStratifiedGroupKFold": "StratifiedGroupKFold",
}


class CrossValMethod(StrEnum):
    """flexcv's enum of split methods; each member is its method's name (``"GroupKFold"``).

    mixcv's stratified methods are for continuous targets (quantile bins), so flexcv's
    ``STRAT`` and ``CONTISTRAT`` are the same method here. flexcv's
    ``ConcatenatedStratifiedKFold`` has no counterpart.

    Examples
    --------
    >>> canonical_method(CrossValMethod.CONTISTRATGROUP, "split")
    'StratifiedGroupKFold'
    """

    KFOLD = "KFold"
    GROUP = "GroupKFold"
    STRAT = "StratifiedKFold"
    STRATGROUP = "StratifiedGroupKFold"
    CONTISTRAT = "ContinuousStratifiedKFold"
    CONTISTRATGROUP = "ContinuousStratifiedGroupKFold"


def canonical_method(method: str, field: str) -> str:
    """The registered name for ``method``, accepting flexcv's aliases and any letter case."""
    method = str(method)   # a CrossValMethod member is its name
    name = _ALIASES.get(method, method)
    if name in SPLIT_METHODS:
        return name
    by_lower = {k.lower(): k for k in [*SPLIT_METHODS, *_ALIASES]}
    if method.lower() in by_lower:
        return canonical_method(by_lower[method.lower()], field)
    raise SpecError(
        field,
        f"unknown split method {method!r}; choose one of {', '.join(SPLIT_METHODS)}, "
        "or pass a scikit-learn splitter object",
    )


def is_splitter_object(obj: object) -> bool:
    return callable(getattr(obj, "split", None)) and not isinstance(obj, (str, bytes))


def split_requires_groups(method: str | object) -> bool:
    """Whether a split method keeps groups whole (and so needs groups).

    Read from the registered method, or for a splitter object from its type:
    scikit-learn marks splitters that consume groups with ``GroupsConsumerMixin``
    (``GroupKFold``, ``LeaveOneGroupOut``, ``GroupShuffleSplit``...), and so do mixcv's.
    """
    if isinstance(method, str):
        return SPLIT_METHODS[canonical_method(method, "split")].requires_groups
    return isinstance(method, GroupsConsumerMixin)


def make_splitter(method: str | Splitter, n_splits: int, seed: int, n_repeats: int = 1,
                  classes: bool = False) -> Splitter:
    """Build the splitter for a method name, or return a splitter object as given.

    Parameters
    ----------
    method : str or splitter
        A name in `SPLIT_METHODS` (or flexcv's alias), a scikit-learn splitter, or a
        `FixedSplits`.
    n_splits : int
        Used for named methods only; an object brings its own.
    seed : int
        Seeds shuffling of named methods.
    n_repeats : int, default=1
        Repeat a named method this many times, reshuffled each time.
    classes : bool, default=False
        The target is classes (a classification run): stratified methods balance the
        classes themselves, not quantile bins.
    """
    if isinstance(method, str):
        named = SPLIT_METHODS[canonical_method(method, "split")]
        if classes and named.by_class is not None and named.by_class_repeated is not None:
            return named.by_class(n_splits, seed) if n_repeats == 1 else named.by_class_repeated(n_splits, n_repeats,
                                                                                                 seed)
        return named.factory(n_splits, seed) if n_repeats == 1 else named.repeated(n_splits, n_repeats, seed)
    return method


def compute_splits(splitter: Splitter, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None,
                   field: str) -> IndexPairs:
    """Run a splitter once, turning its failures into errors that name ``field``.

    Also checks what every later step relies on: integer indices in range, train
    and test disjoint and non-empty.
    """
    n = len(y)
    try:
        with warnings.catch_warnings():
            # One signature for all: row-wise splitters are handed the groups too, and
            # scikit-learn's notice that they ignore them is expected, not news.
            warnings.filterwarnings("ignore", message="The groups parameter is ignored")
            pairs = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64))
                     for tr, te in splitter.split(X, y, groups)]
    except (ValueError, TypeError) as exc:
        raise SpecError(field, f"{splitter!r} could not split the data: {exc}") from exc
    if not pairs:
        raise SpecError(field, f"{splitter!r} produced no splits")
    in_train = np.zeros(n, dtype=bool)
    for k, (tr, te) in enumerate(pairs):
        if len(tr) == 0 or len(te) == 0:
            raise SpecError(field, f"split {k} has an empty {'train' if len(tr) == 0 else 'test'} set")
        if tr.min() < 0 or te.min() < 0 or tr.max() >= n or te.max() >= n:
            raise SpecError(field, f"split {k} has indices outside 0..{n - 1}")
        # A mask of the rows, not np.intersect1d: that sorts both sides (0.5 s a fold at 1M rows).
        in_train[:] = False
        in_train[tr] = True
        if in_train[te].any():
            raise SpecError(field, f"split {k} has rows in both train and test")
    return pairs


def describe_methods() -> dict[str, str]:
    """Split method names with a one-line description each (for listings in front ends)."""
    return {name: m.description for name, m in SPLIT_METHODS.items()}



def _deal_levels(codes: np.ndarray, n_levels: int, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """Each level's fold: largest levels first (ties in random order), each to the lightest fold.

    GroupKFold's balancing rule, with the random tie-break that makes repeats differ.
    """
    sizes = np.bincount(codes, minlength=n_levels)
    order = np.lexsort((rng.random(n_levels), -sizes))
    fold_of = np.empty(n_levels, dtype=np.intp)
    load = np.zeros(n_splits, dtype=np.int64)
    for level in order:
        k = int(np.argmin(load))
        fold_of[level] = k
        load[k] += sizes[level]
    return fold_of


class CrossedGroupKFold(GroupsConsumerMixin, BaseCrossValidator):
    """K folds whose test rows hold new levels of EVERY grouping factor (crossed designs).

    Each factor's levels are dealt to ``n_splits`` folds on their own (balanced by rows,
    as GroupKFold does). Fold ``k`` tests the rows whose levels are all in fold ``k`` and
    trains on the rows whose levels are all elsewhere: a test row's subject and item were
    both never seen in training. A row that mixes a held-out level with a training level
    (a held-out subject answering a training item) is used for neither, since in training
    it would reveal the held-out subject, and in testing it would not be new in both
    (`unused_rows` counts them). With two factors each fold trains on about
    ``(1 - 1/K)**2`` of the rows and the folds together test about ``1/K`` of them.

    Parameters
    ----------
    n_splits : int, default=5
    n_repeats : int, default=1
        Deal the levels anew this many times (the folds of each repeat follow each other).
    random_state : int or None, default=None

    Examples
    --------
    >>> subject = np.repeat(np.arange(6), 6); item = np.tile(np.arange(6), 6)
    >>> folds = list(CrossedGroupKFold(3, random_state=0).split(None, None, np.c_[subject, item]))
    >>> all(not set(subject[te]) & set(subject[tr]) and not set(item[te]) & set(item[tr]) for tr, te in folds)
    True
    >>> [len(te) for _, te in folds], [len(tr) for tr, _ in folds]
    ([4, 4, 4], [16, 16, 16])
    """

    def __init__(self, n_splits: int = 5, n_repeats: int = 1, random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits * self.n_repeats

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise SpecError("data.split_by", "CrossedGroupKFold needs the labels of every factor it holds out")
        labels = np.asarray(groups, dtype=object)
        if labels.ndim != 2 or labels.shape[1] < 2:
            raise SpecError("data.split_by", f"CrossedGroupKFold needs two or more factors (an (n, m) array of "
                                             f"labels), got shape {labels.shape}")
        codes = [pd.factorize(labels[:, j])[0] for j in range(labels.shape[1])]
        rng = np.random.default_rng(self.random_state)
        for _ in range(self.n_repeats):
            folds = np.column_stack([_deal_levels(c, int(c.max()) + 1, self.n_splits, rng)[c] for c in codes])
            for k in range(self.n_splits):
                in_k = folds == k
                yield np.flatnonzero(~in_k.any(axis=1)), np.flatnonzero(in_k.all(axis=1))
