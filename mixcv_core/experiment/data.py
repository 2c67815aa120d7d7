"""Checking a DataFrame against a spec, once, before any work starts.

Everything the engine relies on is established here: columns exist and are numeric
and finite, groups are usable by the chosen splits, and every outer and inner split
can be made. Past this point the engine trusts its inputs.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._seeding import derive_seed
from ..errors import SpecError, SpecTypeError
from ..models._base import NUMERIC_HINT, non_numeric
from .spec import DataSpec, ExperimentSpec
from .splits import SPLIT_METHODS, CrossedGroupKFold, compute_splits, make_splitter
from .target import (
    check_class_folds,
    check_known_classes,
    check_models_for_classes,
    check_target_type,
    encode_target,
    infer_task,
    resolve_task,
)

__all__ = ["PreparedData", "Plan", "prepare_data", "plan_experiment", "assemble_frame", "known_holdout_rows",
           "column_fingerprints", "several_groups", "attach_groups", "keep_levels_known"]

IndexPairs = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class PreparedData:
    """Validated arrays for the engine (rows in the frame's order)."""

    X: np.ndarray                 # (n, p) float64 fixed-effects features
    y: np.ndarray                 # (n,) float64 target
    groups: np.ndarray | None     # (n,) original group labels
    feature_names: list[str]
    slope_names: list[str]
    index: pd.Index               # the frame's row labels, for predictions
    target_name: str
    groups_name: str | None
    # Several grouping factors (issue 25): every grouping column, the random part the
    # mixed models fit (None: the one-factor shorthand), the factors the outer split holds new.
    group_frame: pd.DataFrame | None = None
    random: str | None = None
    split_by: tuple[str, ...] = ()
    # Classification (issue 27): y holds class codes (two classes: 1.0 the positive one),
    # ``classes`` their labels in code order; () for regression.
    task: str = "regression"
    classes: tuple = ()

    @property
    def slope_idx(self) -> list[int]:
        return [self.feature_names.index(s) for s in self.slope_names]


#: Feature and target values beyond this overflow float64 when squared and summed.
_HUGE = 1e150


def _short(name: object, limit: int = 60) -> str:
    """A column name for a message: quoted, and cut if huge (a message must stay readable)."""
    text = repr(str(name))
    return text if len(text) <= limit else f"{text[:limit - 5]}…' ({len(str(name))} characters)"


def column_fingerprints(data: PreparedData) -> dict[str, str]:
    """A short hash of every column a run uses (features, target, groups), by name.

    A resumed run must finish on the data it began with: comparing these names the column
    that changed (noise in place of ``x1``, a dropped feature) instead of mixing two data
    sets in one stored run. The hash covers the values as the engine sees them (after
    conversion to float), so a column of the same numbers in another dtype still matches.
    """
    import hashlib

    def digest(values: np.ndarray) -> str:
        values = np.asarray(values)
        if values.dtype.kind == "O":
            raw = "\x1f".join(f"{type(v).__name__}:{v!r}" for v in values).encode()
        else:
            raw = np.ascontiguousarray(values).tobytes() + values.dtype.str.encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    out = {name: digest(data.X[:, j]) for j, name in enumerate(data.feature_names)}
    out[f"{data.target_name} (target)"] = digest(data.y)
    if data.groups is not None:
        out[f"{data.groups_name} (groups)"] = digest(data.groups)
    if data.group_frame is not None:
        # Every other grouping factor too: a resumed crossed run on a changed second factor
        # would otherwise mix two designs in one stored run.
        for name in data.group_frame.columns:
            if name != data.groups_name:
                out[f"{name} (groups)"] = digest(data.group_frame[name].to_numpy())
    return out


@dataclass
class Plan:
    """Validated data plus every split the run will use, computed up front.

    With a known-group holdout, ``outer[k][0]`` is the training part *after* the held-out
    rows were taken out, and ``known[k]`` those rows: the model and its inner loop never
    see them.
    """

    data: PreparedData
    outer: IndexPairs
    inner: list[IndexPairs | None]   # per outer fold: absolute row indices, or None when nothing tunes
    known: list[np.ndarray | None] = field(default_factory=list)   # per outer fold: held-out rows of known groups
    repeats: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))   # per outer fold: its repeat

    def known_rows(self, fold: int) -> np.ndarray | None:
        return self.known[fold] if self.known else None


def _numeric_problem(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def prepare_data(spec: DataSpec, frame: pd.DataFrame, frame_field: str = "data",
                 experiment: ExperimentSpec | None = None) -> PreparedData:
    """Check ``frame`` against ``spec`` and extract the engine's arrays.

    ``experiment`` (its task settled by `resolve_task`): a classification target is coded
    as classes (`encode_target`), a regression target must be numeric. Without it the task
    is the one the target suggests (`infer_task`).

    Raises
    ------
    SpecTypeError
        ``frame`` is not a DataFrame, or a feature/target column is not numeric.
    SpecError
        A missing column, NaN or infinite values, fewer than two groups.
    """
    if not isinstance(frame, pd.DataFrame):
        if type(frame).__module__.split(".")[0] == "polars":
            raise SpecTypeError(frame_field, "expected a pandas DataFrame, got a polars DataFrame; convert it with "
                                             ".to_pandas()")
        raise SpecTypeError(frame_field, f"expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise SpecError(frame_field, "the data has no rows")
    if not all(isinstance(c, str) for c in frame.columns):
        # A spec names columns as text (a cell's `target: 0` is the column 0), so the
        # frame's labels are matched as text too.
        frame = frame.rename(columns=str)
    columns = list(frame.columns)
    dupes = sorted({str(c) for c in columns if columns.count(c) > 1})
    if dupes:
        raise SpecError(frame_field, f"duplicate column names {dupes}: every column needs its own name "
                                     "(after reading names as text, 0 and '0' are the same)")

    def need(col: str, fld: str) -> None:
        if col not in frame.columns:
            import difflib
            close = difflib.get_close_matches(str(col), [str(c) for c in columns], 1)
            hint = f" (did you mean {_short(close[0])}?)" if close else ""
            shown = ", ".join(_short(c) for c in columns[:20]) + (f" and {len(columns) - 20} more"
                                                                  if len(columns) > 20 else "")
            raise SpecError(fld, f"column {_short(col)} is not in the data{hint}; columns are {shown}")

    need(spec.target, "data.target")
    for gc in spec.group_columns:
        need(gc, "data.groups")
    roles = {spec.target, *spec.group_columns}
    features = list(spec.features) if spec.features is not None else [c for c in columns if c not in roles]
    for c in features:
        need(c, "data.features")
    for c in spec.slopes:
        need(c, "data.slopes")

    y_col = frame[spec.target]
    task = experiment.task if experiment is not None and experiment.task else infer_task(y_col)
    classify = task == "classification"
    if not classify:
        check_target_type(y_col, spec.target)
    bad = non_numeric(frame, features)
    if bad:
        field = "data.slopes" if all(c in spec.slopes for c in features if _numeric_problem(frame[c])) else \
            "data.features"
        raise SpecTypeError(field, f"features must be numeric; {', '.join(bad)} are not. "
                                   f"{NUMERIC_HINT}")
    # Copies, never views of the frame: the run owns its data from here on, so a notebook
    # that edits the DataFrame while a background run (the form's Run button) is going
    # changes neither the later folds nor what is stored.
    X = frame[features].to_numpy(dtype=np.float64, copy=True)
    classes: tuple = ()
    if classify:
        y, classes = encode_target(y_col, spec.target, None if experiment is None else experiment.positive_class)
    else:
        y = y_col.to_numpy(dtype=np.float64, copy=True)

    not_finite = ~np.isfinite(X)
    if not_finite.any():
        # Each column says what it holds: an infinite value reported as "NaN" sends the
        # user looking for missing data that is not there.
        cols = []
        for j in np.flatnonzero(not_finite.any(axis=0)):
            n_nan, n_inf = int(np.isnan(X[:, j]).sum()), int(np.isinf(X[:, j]).sum())
            what = " and ".join(part for part in (f"{n_nan} NaN" if n_nan else "",
                                                  f"{n_inf} infinite" if n_inf else "") if part)
            cols.append(f"{_short(features[j])} ({what})")
        raise SpecError("data.features", f"values that are not finite in {', '.join(cols)}; drop or impute them "
                                         "first")
    # Values this large overflow once squared (scaling, least squares): every fold would
    # fail with "contains NaN" instead of the column being named here.
    huge = np.flatnonzero(np.abs(X).max(axis=0, initial=0.0) > _HUGE) if X.size else np.zeros(0, dtype=int)
    if len(huge):
        raise SpecError("data.features", f"{', '.join(_short(features[j]) for j in huge)} hold values beyond "
                                         f"{_HUGE:.0e}, which overflow when squared; rescale them (e.g. divide "
                                         "by a power of ten)")
    if not np.isfinite(y).all():
        n_nan, n_inf = int(np.isnan(y).sum()), int(np.isinf(y).sum())
        raise SpecError("data.target", f"the target {spec.target!r} has {n_nan} NaN and {n_inf} infinite values; "
                                       "drop those rows first")
    if np.abs(y).max(initial=0.0) > _HUGE:
        raise SpecError("data.target", f"the target {spec.target!r} holds values beyond {_HUGE:.0e}, which "
                                       "overflow when squared; rescale it")
    if len(y) > 1 and np.ptp(y) == 0:
        raise SpecError("data.target", f"the target {spec.target!r} is constant ({y[0]:g} in every row): there is "
                                       "nothing to predict, and every score would be meaningless")

    labels: dict[str, np.ndarray] = {}
    for gc in spec.group_columns:
        g = frame[gc]
        if g.isna().any():
            raise SpecError("data.groups", f"the groups column {gc!r} has {int(g.isna().sum())} missing "
                                      "labels; every row needs a group")
        labels[gc] = g.to_numpy(copy=True)   # the run owns its data (a frame edited mid-run changes nothing)
        if labels[gc].dtype.kind == "f" and np.isinf(labels[gc]).any():
            raise SpecError("data.groups", f"the groups column {gc!r} has {int(np.isinf(labels[gc]).sum())} "
                                           "infinite labels; every row needs a real group label")
        kinds = {type(v).__name__ for v in pd.unique(labels[gc])} if labels[gc].dtype == object else set()
        if {"int", "str"} <= kinds or {"float", "str"} <= kinds:
            raise SpecError("data.groups", f"the labels of {gc!r} mix numbers and text ({sorted(kinds)}); "
                                           f"make them one type, e.g. df[{gc!r}].astype(str)")
        if len(pd.unique(labels[gc])) < 2:
            raise SpecError("data.groups", f"the groups column {gc!r} has a single group; "
                                      "grouped cross validation and mixed models need at least two")
    # `groups` (what splits, checks and one-factor models use) is the split's first factor;
    # the mixed model with a random part gets every grouping column (`group_frame`).
    split_col = spec.split_factors[0] if spec.split_factors else None
    group_frame = None
    if spec.random_terms_text is not None:
        group_frame = pd.DataFrame({gc: labels[gc] for gc in spec.group_columns})
    return PreparedData(X=X, y=y, groups=None if split_col is None else labels[split_col],
                        feature_names=[str(c) for c in features],
                        slope_names=list(spec.slopes), index=frame.index,
                        target_name=spec.target, groups_name=split_col, group_frame=group_frame,
                        random=spec.random_terms_text, split_by=spec.split_factors,
                        task="classification" if classify else "regression", classes=classes)


def plan_experiment(spec: ExperimentSpec, frame: pd.DataFrame) -> Plan:
    """Validate ``frame`` for ``spec`` and compute all outer and inner splits.

    Making the splits here means that a split that cannot be made (too few groups
    for the folds, too few rows in a training fold) is reported before any model is
    fitted, naming the split.
    """
    for m in spec.models:
        for package in getattr(m.estimator_class, "requires", ()):
            if importlib.util.find_spec(package) is None:
                raise SpecError(f"models[{m.name!r}].model", f"{m.estimator_class.__name__} needs the {package} "
                                                             f"package: pip install 'mixcv[{package}]'")
    spec = resolve_task(spec, frame)
    data = prepare_data(spec.data, frame, experiment=spec)
    classify = data.task == "classification"
    if classify:
        check_models_for_classes(spec, data.classes)
    if not data.feature_names:
        # The null model y ~ 1 + (1 | group): only models that fit an intercept alone can run.
        need = [m.name for m in spec.models if not getattr(m.estimator_class, "intercept_only_ok", False)]
        need += [f"MERF({m.name})" for m in spec.merf_models()]
        if need:
            raise SpecError("data.features", f"no feature columns are left after removing target and groups; "
                                             f"{', '.join(need)} cannot be fitted without one. Only "
                                             "LinearMixedEffectsModel fits the intercept-only (null) model "
                                             "y ~ 1 + (1 | group)")
    full_rank = [m.name for m in spec.models if getattr(m.estimator_class, "needs_full_rank", False)]
    if full_rank and data.feature_names:
        _check_full_rank(data, full_rank)
    n = len(data.y)
    n_groups = 0 if data.groups is None else len(pd.unique(data.groups))
    _check_split_size(spec.outer.method, spec.outer.n_splits, n, n_groups, "outer", spec.outer.is_named)
    outer_splitter = make_splitter(spec.outer.method, spec.outer.n_splits, spec.seed, spec.outer.n_repeats,
                                   classes=classify)
    if len(data.split_by) > 1:
        outer = _crossed_outer(spec, data)
    else:
        outer = compute_splits(outer_splitter, data.X, data.y, data.groups, "outer.method")
    repeats = np.asarray(spec.outer.repeat_labels(len(outer)))
    if spec.break_cross_val:
        # flexcv's one-fold debugging run: every split was made (and checked) above.
        outer, repeats = outer[:1], repeats[:1]
    known: list[np.ndarray | None] = []
    if spec.outer.known_holdout:
        assert data.groups is not None   # the spec requires groups for a known holdout
        for k, (train, test) in enumerate(outer):
            held = known_holdout_rows(train, data.groups, spec.outer.known_holdout,
                                      derive_seed(spec.seed, "known", k))
            if held.size == 0:
                raise SpecError("outer.known_holdout", f"holds out no rows in outer fold {k}: its groups have too "
                                                       "few rows to leave one in training and hold out "
                                                       f"{spec.outer.known_holdout:g} of them; raise the fraction "
                                                       "or set it to 0")
            if data.group_frame is not None:
                held = keep_levels_known(train, held, data.group_frame)
            known.append(held)
            outer[k] = (np.setdiff1d(train, held, assume_unique=True), test)

    if classify:   # every fold scored, and learnt, on every class: said before any fit
        check_class_folds(outer, data.y, data.classes, "outer", spec.outer.is_named)
        check_known_classes(known, data.y, data.classes)
    inner: list[IndexPairs | None] = []
    tunes = any(m.tunes for m in spec.models)
    for k, (train, _test) in enumerate(outer):
        if not tunes:
            inner.append(None)
            continue
        g_train = None if data.groups is None else data.groups[train]
        n_g = 0 if g_train is None else len(pd.unique(g_train))
        _check_split_size(spec.inner.method, spec.inner.n_splits, len(train), n_g,
                          "inner", spec.inner.is_named, outer_fold=k)
        splitter = make_splitter(spec.inner.method, spec.inner.n_splits, derive_seed(spec.seed, "inner", k),
                                 classes=classify)
        if len(data.split_by) > 1 and spec.inner.method == "GroupKFold":
            # Tuning validates as the outer split tests: on subjects AND items the fit never saw.
            rel = _crossed_inner(spec, data, train, k)
        else:
            rel = compute_splits(splitter, data.X[train], data.y[train], g_train, "inner.method")
        # Inner indices are kept absolute: a fold task then cannot mix up frames.
        inner.append([(train[tr], train[te]) for tr, te in rel])
        if classify:
            check_class_folds(inner[-1] or [], data.y, data.classes, "inner", spec.inner.is_named, outer_fold=k)
    return Plan(data=data, outer=outer, inner=inner, known=known, repeats=repeats)


def _crossed_outer(spec: ExperimentSpec, data: PreparedData) -> IndexPairs:
    """The outer folds of a split by several factors: test rows new in every one of them.

    Each factor needs a level per fold, and every fold needs training and test rows;
    otherwise the split cannot be made and the error names ``data.split_by``.
    """
    assert data.group_frame is not None   # several split factors are several grouping columns
    labels = data.group_frame[list(data.split_by)]
    for col in labels.columns:
        n_levels = labels[col].nunique()
        if n_levels < spec.outer.n_splits:
            raise SpecError("data.split_by", f"{spec.outer.n_splits} folds of new levels need {spec.outer.n_splits} "
                                             f"levels of {col!r}, there are {n_levels}; use fewer folds")
    splitter = CrossedGroupKFold(spec.outer.n_splits, spec.outer.n_repeats, random_state=spec.seed)
    outer = [(tr, te) for tr, te in splitter.split(None, None, labels.to_numpy())]
    names = " and ".join(repr(c) for c in data.split_by)
    for k, (train, test) in enumerate(outer):
        if len(test) == 0 or len(train) == 0:
            raise SpecError("data.split_by", f"outer fold {k} has no {'test' if len(test) == 0 else 'training'} "
                                             f"rows: no row combines that fold's levels of {names} (the factors are "
                                             "not crossed enough); split by one factor or use fewer folds")
    return outer


def _crossed_inner(spec: ExperimentSpec, data: PreparedData, train: np.ndarray, k: int) -> IndexPairs:
    """Inner folds of outer fold ``k``'s training rows, new in every split factor (relative rows)."""
    assert data.group_frame is not None
    labels = data.group_frame[list(data.split_by)].to_numpy()[train]
    splitter = CrossedGroupKFold(spec.inner.n_splits, random_state=derive_seed(spec.seed, "inner", k))
    rel = list(splitter.split(None, None, labels))
    for j, (tr, te) in enumerate(rel):
        if len(tr) == 0 or len(te) == 0:
            raise SpecError("inner.n_splits", f"inner fold {j} of outer fold {k} has no "
                                              f"{'test' if len(te) == 0 else 'training'} rows new in "
                                              f"{' and '.join(map(repr, data.split_by))}; use fewer inner folds")
    return rel


def keep_levels_known(train: np.ndarray, held: np.ndarray, groups: pd.DataFrame) -> np.ndarray:
    """``held`` without the rows whose level of some grouping factor would then not be in training.

    The known-group holdout scores rows of *known* levels: with several factors every
    level of a held-out row (its item as well as its subject) must stay in the training
    rows. Rows put back only add levels to training, so this ends; returned sorted.

    Examples
    --------
    >>> g = pd.DataFrame({"s": ["a", "a", "b", "b"], "i": ["x", "y", "x", "z"]})
    >>> keep_levels_known(np.arange(4), np.array([1, 3]), g).tolist()   # y and z only in the held rows
    []
    """
    held = np.sort(held)
    while held.size:
        kept = np.setdiff1d(train, held, assume_unique=True)
        known = np.ones(held.size, dtype=bool)
        for col in groups.columns:
            values = groups[col].to_numpy()
            known &= np.isin(values[held], values[kept])
        if known.all():
            break
        held = held[known]
    return held


def known_holdout_rows(train: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows of ``train`` held out as known-group test rows: ``fraction`` of each group's rows.

    Each group of the training part gives ``round(fraction * n_g)`` of its ``n_g`` rows,
    chosen at random, but always leaves at least one row in training (a group that left
    no row would not be known). Returned sorted.

    Examples
    --------
    >>> g = np.repeat(["a", "b"], 10)
    >>> held = known_holdout_rows(np.arange(20), g, 0.2, seed=0)
    >>> len(held), sorted(set(g[held].tolist()))
    (4, ['a', 'b'])
    """
    rng = np.random.default_rng(seed)
    _, codes, sizes = np.unique(groups[train], return_inverse=True, return_counts=True)
    n_hold = np.minimum(np.floor(fraction * sizes + 0.5).astype(int), sizes - 1)
    # Rank the rows of each group in a random order; the first n_hold of each are held out.
    order = np.lexsort((rng.random(len(train)), codes))
    rank = np.empty(len(train), dtype=int)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank[order] = np.arange(len(train)) - starts[codes[order]]
    return np.sort(train[rank < n_hold[codes]])


#: Bytes of the block of centred rows `_check_full_rank` holds at a time.
_GRAM_BLOCK_BYTES = 8 * 2**20


def _check_full_rank(data: PreparedData, models: list[str]) -> None:
    """Constant or collinear features make a model that needs a full-rank design fail in
    every fold; say so now, naming the columns. (O(n p^2): the Gram matrix, not an SVD of X.)"""
    constant = [name for name, span in zip(data.feature_names, np.ptp(data.X, axis=0)) if span == 0]
    if constant:
        raise SpecError("data.features", f"{constant} {'is' if len(constant) == 1 else 'are'} constant: the same as "
                                         f"the intercept for {', '.join(models)}; drop "
                                         f"{'it' if len(constant) == 1 else 'them'}")
    # The centred Gram matrix summed a block of rows at a time: the centred copy of X, its
    # square and its scaled copy were three more copies of the data (0.45 GiB at 1M x 20).
    X = data.X
    n, p = X.shape
    rows = max(1, _GRAM_BLOCK_BYTES // (8 * max(p, 1)))
    mean = X.mean(axis=0)
    gram = np.zeros((p, p))
    for a in range(0, n, rows):
        centred = X[a:a + rows] - mean
        gram += centred.T @ centred
    scale = np.sqrt(np.diag(gram))
    eig = np.linalg.eigvalsh(gram / np.outer(scale, scale))
    if eig[0] < 1e-10 * max(eig[-1], 1.0):
        raise SpecError("data.features", f"the features are collinear (one is a combination of others), which "
                                         f"{', '.join(models)} cannot fit; drop the redundant columns")


def _check_split_size(method: object, n_splits: int, n_rows: int, n_groups: int, level: str,
                      named: bool, outer_fold: int | None = None) -> None:
    if not named:
        return
    where = "" if outer_fold is None else f" (in the training part of outer fold {outer_fold})"
    if n_rows < n_splits:
        raise SpecError(f"{level}.n_splits", f"{n_splits} folds need at least {n_splits} rows, "
                                             f"there are {n_rows}{where}")
    if isinstance(method, str) and SPLIT_METHODS[method].requires_groups and n_groups < n_splits:
        raise SpecError(f"{level}.n_splits", f"{method} with {n_splits} folds needs at least {n_splits} groups, "
                                             f"there are {n_groups}{where}; use fewer folds")


def assemble_frame(X: pd.DataFrame, y: pd.Series | pd.DataFrame | np.ndarray | Sequence[float],
                   groups: pd.Series | pd.DataFrame | np.ndarray | None = None,
                   slopes: pd.Series | pd.DataFrame | Sequence[str] | str | None = None,
                   ) -> tuple[pd.DataFrame, DataSpec]:
    """Combine the seed-style ``X, y, groups, slopes`` arguments into one frame and a `DataSpec`.

    ``slopes`` may be the slope columns themselves (a Series/DataFrame cut from ``X``)
    or their names. Raises errors naming ``X``, ``y``, ``groups`` or ``slopes``.
    """
    if not isinstance(X, pd.DataFrame):
        raise SpecTypeError("X", f"expected a pandas DataFrame of features, got {type(X).__name__}")
    if not all(isinstance(c, str) for c in X.columns):
        # Specs name columns as text; 0, 1, 2... become "0", "1", "2".
        X = X.rename(columns=str)
        if isinstance(slopes, (pd.Series, pd.DataFrame)):
            slopes = slopes.rename(str) if isinstance(slopes, pd.Series) else slopes.rename(columns=str)
        elif isinstance(slopes, (list, tuple)):
            slopes = [str(s) for s in slopes]
        elif slopes is not None and not isinstance(slopes, str):
            slopes = str(slopes)
    n = len(X)

    def as_series(obj: object, fld: str, default_name: str) -> pd.Series:
        if isinstance(obj, pd.DataFrame):
            if obj.shape[1] != 1:
                raise SpecError(fld, f"expected one column, got {obj.shape[1]}")
            obj = obj.iloc[:, 0]
        if isinstance(obj, pd.Series):
            s = obj
        elif isinstance(obj, (np.ndarray, list, tuple)):
            arr = np.asarray(obj)
            if arr.ndim != 1:
                raise SpecError(fld, f"expected a 1-D array, got shape {arr.shape}")
            s = pd.Series(arr, index=X.index)
        else:
            raise SpecTypeError(fld, f"expected a pandas Series or 1-D array, got {type(obj).__name__}")
        if len(s) != n:
            raise SpecError(fld, f"has {len(s)} rows but X has {n}")
        name = s.name if s.name is not None else default_name
        if isinstance(obj, pd.Series) and not s.index.equals(X.index):
            # Positional alignment, as flexcv does; index labels that disagree would
            # otherwise silently turn into NaN on concatenation. Said out loud when the
            # labels are the same set in another order: then matching by position is
            # almost certainly not what was meant.
            if s.index.sort_values().equals(X.index.sort_values()):
                warnings.warn(f"{fld} carries the same index labels as X in another order; it is matched to X by "
                              f"position, as flexcv does. If you meant to match by label, pass "
                              f"{fld}.reindex(X.index).", UserWarning, stacklevel=4)
            s = pd.Series(s.to_numpy(), index=X.index)
        return s.rename(str(name))

    y_s = as_series(y, "y", "y")
    if y_s.name in X.columns:
        raise SpecError("y", f"the target's name {y_s.name!r} is also a column of X; X must not contain the target")
    parts = [X, y_s]
    groups_name = None
    if groups is not None:
        g_s = as_series(groups, "groups", "group")
        if g_s.name in X.columns or g_s.name == y_s.name:
            raise SpecError("groups", f"the groups' name {g_s.name!r} is also a column of X or the target; "
                                      "X must not contain the groups")
        parts.append(g_s)
        groups_name = g_s.name

    if slopes is None:
        slope_names: list[str] = []
    elif isinstance(slopes, str):
        slope_names = [slopes]
    elif isinstance(slopes, pd.Series):
        slope_names = [slopes.name]
    elif isinstance(slopes, pd.DataFrame):
        slope_names = list(slopes.columns)
    elif isinstance(slopes, (list, tuple)):
        slope_names = list(slopes)
    else:
        raise SpecTypeError("slopes", f"expected slope columns (Series/DataFrame cut from X) or their names, "
                                      f"got {type(slopes).__name__}")
    for s in slope_names:
        if s not in X.columns:
            raise SpecError("slopes", f"slope column {s!r} is not a column of X; random slopes must be features")
        if isinstance(slopes, (pd.Series, pd.DataFrame)) and len(slopes) != n:
            raise SpecError("slopes", f"has {len(slopes)} rows but X has {n}")
    if slope_names and groups is None:
        raise SpecError("slopes", "random slopes need groups; pass groups to set_data")

    frame = pd.concat(parts, axis=1)
    spec = DataSpec(target=y_s.name, groups=groups_name, slopes=tuple(str(s) for s in slope_names),
                    features=tuple(str(c) for c in X.columns))
    return frame, spec


def several_groups(X: object, groups: object) -> pd.DataFrame | None:
    """The grouping columns when ``groups`` names several factors, else None (one factor).

    ``groups`` is several factors when it is a DataFrame of more than one column, or a
    list or tuple of names that are all columns of ``X`` (shorter than ``X``: a list as
    long as ``X`` is one label per row). Raises naming ``groups`` for a DataFrame of the
    wrong length.
    """
    if isinstance(groups, pd.DataFrame) and groups.shape[1] > 1:
        if isinstance(X, pd.DataFrame) and len(groups) != len(X):
            raise SpecError("groups", f"has {len(groups)} rows but X has {len(X)}")
        return groups.rename(columns=str)
    if (isinstance(groups, (list, tuple)) and groups and isinstance(X, pd.DataFrame) and len(groups) < len(X)
            and all(isinstance(c, str) and c in X.columns for c in groups)):
        return X[list(groups)]
    return None


def attach_groups(frame: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the grouping columns ``groups`` added, matched by position (as flexcv matches y).

    Raises naming ``groups`` when a grouping column's name is already a column of ``frame``.
    """
    clash = [c for c in groups.columns if c in frame.columns]
    if clash:
        raise SpecError("groups", f"the grouping columns {clash} are also columns of X or the target; "
                                  "X must not contain the groups")
    g = groups.set_axis(frame.index, axis=0)
    return pd.concat([frame, g], axis=1)
