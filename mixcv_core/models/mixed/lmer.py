"""``lmer(formula, data)``: lme4's way of fitting a linear mixed model, returning mixcv's estimator.

The formula is split into its fixed part (built by formulaic as R's ``model.matrix`` would:
treatment contrasts, interactions, ``- 1``) and its random terms (parsed by mixcv,
`terms`); rows with a missing value in any column the formula uses are dropped first, as
lme4's default ``na.action = na.omit`` does. The result is a fitted
`LinearMixedEffectsModel` whose ``predict`` takes a data frame like ``data``.

A rank-deficient fixed part is handled as lme4 handles it (``chkRank.drop.cols``, its
default ``check.rankX = "message+drop.cols"``): the columns that are combinations of the
columns before them (an empty cell of an interaction, a variable coded twice) are dropped,
the rest is fitted, and a warning names what was dropped. The estimator form
``LinearMixedEffectsModel().fit(X, ...)`` keeps refusing such an ``X``, naming the same
columns: there the columns are the user's own, and dropping them silently would hide a
mistake in data prepared by hand.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

from ...errors import SpecError, SpecTypeError
from .design import KeptColumns, aliased_columns, build_remats, fixed_design
from .estimator import LinearMixedEffectsModel
from .terms import RandomTerm, split_formula

__all__ = ["lmer", "record_formula", "used_columns", "drop_aliased"]

M = TypeVar("M", bound=LinearMixedEffectsModel)


def used_columns(fixed: str, terms: Sequence[RandomTerm], data: pd.DataFrame) -> list[str]:
    """The columns of ``data`` a formula uses (its fixed part and its random terms), each checked to be there."""
    import formulaic

    try:
        fixed_vars = set(formulaic.Formula(fixed).required_variables)
    except Exception as err:   # formulaic's parser errors carry the position of the problem
        raise SpecError("formula", f"the fixed part {fixed!r} cannot be read: {err}") from err
    random_vars = {c for t in terms for c in (*t.columns, *t.factor.columns)}
    missing = sorted(v for v in fixed_vars | random_vars if v not in data.columns)
    if missing:
        raise SpecError("data", f"the formula uses {missing}, which are not columns of data "
                                f"(columns: {list(data.columns)[:20]})")
    return [c for c in data.columns if c in fixed_vars | random_vars]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, max_evals: int = 10_000) -> LinearMixedEffectsModel:  # noqa: N803 (lme4's argument name)
    """Fit a linear mixed model written as an lme4 formula.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``,
        ``"attain ~ verbal + sex + (1 | primary) + (1 | second)"``, ``"y ~ 1 + (1 | batch/cask)"``.
    data : DataFrame
    REML : bool, default=True
        REML (True) or maximum likelihood (False), as lme4's argument.
    max_evals : int, default=10000
        Criterion evaluations at most.

    Returns
    -------
    LinearMixedEffectsModel
        Fitted; ``fe_params_`` in R's column order and spelling (``Intercept``, ``sexM``...),
        ``varcorr_`` keyed as lme4's ``VarCorr``, ``formula_`` the formula,
        ``aliased_columns_`` the fixed-effect columns dropped as aliased (lme4's
        ``attr(getME(m, "X"), "col.dropped")``; empty when the design has full rank).

    Warns
    -----
    UserWarning
        When the fixed-effects design is rank deficient, naming the columns dropped.

    Raises
    ------
    SpecError, SpecTypeError
        Before any fit, naming ``formula`` or ``data`` (and the term and column): a formula
        that cannot be read, a column that is not there, a term lme4 would refuse.

    Examples
    --------
    >>> import pandas as pd
    >>> from mixcv_core.models import lmer
    >>> d = pd.DataFrame({"y": [1.1, 1.9, 6.2, 6.8, 3.1, 3.9, 8.2, 8.8], "x": [1, 2, 3, 4, 5, 6, 7, 8],
    ...                   "g": list("aabbccdd")})
    >>> m = lmer("y ~ x + (1 | g)", d)
    >>> list(m.fe_params_.index), list(m.varcorr_)
    (['Intercept', 'x'], ['g'])
    """
    if not isinstance(data, pd.DataFrame):
        raise SpecTypeError("data", f"expected a pandas DataFrame, got {type(data).__name__}")
    fixed, terms = split_formula(formula)
    used = used_columns(fixed, terms, data)
    rows = data.dropna(subset=used).reset_index(drop=True)   # lme4's na.omit
    if rows.empty:
        raise SpecError("data", f"no row has a value in every column the formula uses ({used})")
    y, X, spec = fixed_design(fixed, rows)
    remats = build_remats(terms, rows, field_name="data")
    X, spec, aliased = drop_aliased(X, spec)
    model = LinearMixedEffectsModel(reml=REML, max_evals=max_evals,
                                    random=" + ".join(str(t) for t in terms))
    model._fit_design(X, y.to_numpy(), remats, {})
    model = record_formula(model, formula, spec, y, X, len(data) - len(rows))
    model.aliased_columns_ = aliased
    return model


def drop_aliased(X: pd.DataFrame, spec: object) -> tuple[pd.DataFrame, object, list[str]]:
    """The fixed design without the columns lme4 drops as aliased, the spec that rebuilds it, and their names.

    Warns (lme4's message, with the names lme4 keeps in ``col.dropped``) when it drops any.
    """
    drop = aliased_columns(X.to_numpy(dtype=float))
    if not drop:
        return X, spec, []
    names = [str(X.columns[j]) for j in drop]
    kept = X.drop(columns=names)
    s = "" if len(names) == 1 else "s"
    warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(names)} column{s} / "
                  f"coefficient{s}: {', '.join(names)} (each a combination of the columns before it, e.g. an "
                  "empty cell of an interaction)", UserWarning, stacklevel=3)
    return kept, KeptColumns(spec, tuple(map(str, kept.columns))), names


def record_formula(model: M, formula: str, spec: object, y: pd.Series, X: pd.DataFrame, n_dropped: int) -> M:
    """What a model fitted from a formula keeps of it, to predict from data frames and report."""
    model.formula_ = formula
    model._fixed_spec = spec
    model.response_name_ = str(y.name)
    features = [c for c in X.columns if c != "Intercept"]
    model.n_features_in_ = len(features)
    model.feature_names_in_ = np.asarray(features, dtype=object)
    model.n_dropped_ = n_dropped
    return model
