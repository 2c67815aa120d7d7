"""What a run with several grouping factors estimates: which levels are new, which rows sat out.

With one grouping factor "new" means new groups. With several (subjects x items) it means
new levels of the factors the outer split holds out, while the others recur; a split by
every factor (`CrossedGroupKFold`) leaves out the rows that mix a held-out level with a
training one. The report states this in one line (`what_is_new`), and the rows left out
are counted per fold (`unused_rows`), since they are data the estimate did not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["what_is_new", "unused_rows", "plural", "mixed_model_names"]


def plural(name: str) -> str:
    """A column name as a plural noun for a sentence: ``subject`` -> ``subjects``, ``class`` -> ``classes``.

    Examples
    --------
    >>> plural("subject"), plural("class"), plural("box")
    ('subjects', 'classes', 'boxes')
    """
    return name + ("es" if name.endswith(("s", "x", "z", "ch", "sh")) else "s")


def unused_rows(results: RunView) -> pd.Series:
    """Per outer fold, the rows in neither its training part, its test part, nor its known holdout.

    Zero for every ordinary split; with a split by several factors, the rows that mix a
    held-out level of one factor with a training level of another.
    """
    n = len(results._data.y)
    # The held-out known rows are taken from the training part before the fit: the
    # outcomes keep them (any model's outcome of the fold has the same rows).
    known = {o.fold: len(o.known_rows) for o in results.outcomes if o.known_rows is not None}
    counts = [n - len(train) - len(test) - known.get(k, 0) for k, (train, test) in enumerate(results._outer)]
    return pd.Series(counts, index=pd.RangeIndex(len(counts), name="fold"), name="unused_rows", dtype=int)


def what_is_new(results: RunView) -> str | None:
    """One line saying what "new" means in the run's test scores, or None with one grouping factor.

    Examples: ``test folds hold new subjects; items recur``, or ``test folds hold new
    subjects and new items; rows that mix a held-out level with a training one are used for
    neither (40 per fold on average, 120 in all)``.
    """
    data = results.spec.data
    if len(data.group_columns) < 2 or not results.spec.outer.requires_groups:
        return None
    held = data.split_factors
    recur = [c for c in data.group_columns if c not in held]
    line = "test folds hold " + " and ".join(f"new {plural(c)}" for c in held)
    if recur:
        line += "; " + ", ".join(plural(c) for c in recur) + " recur"
    unused = unused_rows(results)
    if unused.sum():
        line += (f"; rows that mix a held-out level with a training one are used for neither "
                 f"({unused.mean():.0f} per fold on average, {int(unused.sum())} in all)")
    return line


def mixed_model_names(results: RunView) -> set[str]:
    """The run's models with random effects: mixed models by class, and every MERF variant."""
    from ..models import is_mixed
    spec = results.spec
    names = {m.name for m in spec.models if is_mixed(m.estimator_class)}
    return names | {n for m in spec.merf_models() for n in spec.task_names(m)[1:]}
