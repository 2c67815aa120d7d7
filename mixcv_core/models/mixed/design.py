"""Random-effect terms realised on data (`ReMat`), and the fixed design through formulaic.

This is lme4's ``lFormula`` step (R/modular.R; ``mkReTrms`` in R/utilities.R): each
`RandomTerm` becomes the factor's integer codes and the term's raw columns, checked the
way lme4 checks them (``check.nlev.gtr.1``, ``check.nobs.vs.nlev``, ``check.nobs.vs.nRE``,
all "stop" by default) plus one check lme4 lacks: a random slope constant within every
level of a factor that has a random intercept is the intercept again, not identified.
Every error names the term and the column before any fit starts.

The terms come out in lme4's order: sorted by decreasing number of levels when they are
not already (``rev(order(nl))``, ties reversed, exactly as ``mkReTrms``), which fixes the
order of ``theta``, ``VarCorr`` and everything per term. Their names are lme4's too:
the grouping factor as printed (``cask:batch``), made unique with R's
``make.names(unique = TRUE)`` when two terms share a factor (``Subject``, ``Subject.1``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...errors import SpecError, SpecTypeError
from .terms import Factor, RandomTerm

__all__ = ["ReMat", "NumericSpec", "build_remats", "factor_codes", "lme4_term_names", "fixed_design", "r_column_name",
           "aliased_columns", "KeptColumns"]


@dataclass(eq=False)
class ReMat:
    """One random-effect term on the data: what the algebra needs (`REBlock`) and how to name it.

    Attributes
    ----------
    term : RandomTerm
    name : str
        The term's name as lme4's ``VarCorr`` prints it (unique across terms).
    codes : ndarray of shape (n,)
        Each row's level of the factor, ``0..n_levels - 1``.
    n_levels : int
    levels : pandas.Index
        The level labels (an interaction's label joins its columns' labels with ``:``).
    Z : ndarray of shape (n, q)
        The term's raw columns: ones for the intercept, then the slopes, in term order.
    effect_names : list of str
        ``Intercept`` (if any) and the slope columns.
    """

    term: RandomTerm
    name: str
    codes: np.ndarray
    n_levels: int
    levels: pd.Index
    Z: np.ndarray
    effect_names: list[str] = field(default_factory=list)

    @property
    def factor_name(self) -> str:
        """The grouping factor as printed (several terms may share it: ``ranef`` groups by it)."""
        return self.term.name


def _column(frame: pd.DataFrame, name: str, term: RandomTerm, field_name: str, role: str) -> pd.Series:
    if name not in frame.columns:
        available = ", ".join(map(repr, list(frame.columns)[:20]))
        raise SpecError(field_name, f"term {term}: the {role} column {name!r} is not in the data "
                                    f"(columns: {available})")
    col = frame[name]
    if isinstance(col, pd.DataFrame):
        raise SpecError(field_name, f"term {term}: the column {name!r} appears more than once")
    missing = int(col.isna().sum())
    if missing:
        raise SpecError(field_name, f"term {term}: the {role} column {name!r} has {missing} missing values")
    return col


def factor_codes(frame: pd.DataFrame, factor: Factor, term: RandomTerm,
                 field_name: str = "groups") -> tuple[np.ndarray, pd.Index]:
    """Codes ``0..K-1`` of a (possibly interaction) factor, and its level labels.

    An interaction's levels are the observed combinations only (R's
    ``interaction(..., drop = TRUE)``), labelled ``a:b`` in the factor's column order.
    """
    parts = []
    for name in factor.columns:
        codes, labels = _factorize(_column(frame, name, term, field_name, "grouping").to_numpy())
        parts.append((codes, labels))
    if len(parts) == 1:
        return parts[0]
    sizes = [len(labels) for _, labels in parts]
    combined = np.ravel_multi_index([c for c, _ in parts], sizes)
    observed, codes = np.unique(combined, return_inverse=True)
    digits = np.unravel_index(observed, sizes)
    labels = [":".join(str(parts[j][1][d[i]]) for j, d in enumerate(digits)) for i in range(len(observed))]
    return codes.astype(np.int64), pd.Index(labels)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, pd.Index]:
    try:
        codes, labels = pd.factorize(values, sort=True)
    except TypeError:   # labels of mixed, unorderable types
        codes, labels = pd.factorize(values, sort=False)
    return codes.astype(np.int64), pd.Index(labels)


def r_make_names(names: Sequence[str]) -> list[str]:
    """R's ``make.names(names, unique = TRUE)``: syntactic names, duplicates suffixed ``.1``, ``.2``."""
    out = []
    for name in names:
        s = re.sub(r"[^A-Za-z0-9._]", ".", name)
        if not s or not (s[0].isalpha() or (s[0] == "." and not (len(s) > 1 and s[1].isdigit()))):
            s = "X" + s
        out.append(s)
    # make.unique: the first keeps its name; later copies get the first free .1, .2, ...
    seen: set[str] = set(out)
    result: list[str] = []
    counts: dict[str, int] = {}
    used: set[str] = set()
    for s in out:
        if s not in used:
            used.add(s)
            result.append(s)
            continue
        k = counts.get(s, 0)
        while True:
            k += 1
            candidate = f"{s}.{k}"
            if candidate not in seen and candidate not in used:
                break
        counts[s] = k
        used.add(candidate)
        result.append(candidate)
    return result


def lme4_term_names(terms: Sequence[RandomTerm]) -> list[str]:
    """The names lme4's ``VarCorr`` gives terms (in their final order): the factor, unique if need be."""
    names = [t.name for t in terms]
    return r_make_names(names) if len(set(names)) < len(names) else names


def lme4_order(n_levels: Sequence[int]) -> list[int]:
    """lme4's ``mkReTrms`` term order: by decreasing number of levels, if not so already.

    ``rev(order(nl))`` reverses ties too (levels 5, 10, 5 -> terms 2, 3, 1), which decides
    the order of ``theta``; it is reproduced exactly.
    """
    nl = list(n_levels)
    if len(nl) > 1 and any(b > a for a, b in zip(nl, nl[1:], strict=False)):
        return list(np.argsort(nl, kind="stable")[::-1])
    return list(range(len(nl)))


def _numeric_column(frame: pd.DataFrame, name: str, term: RandomTerm, field_name: str) -> np.ndarray:
    col = _column(frame, name, term, field_name, "slope")
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise SpecTypeError(field_name, f"term {term}: the slope column {name!r} is not numeric ({col.dtype}); "
                                        "a random slope needs numbers (encode a category as 0/1 columns first)")
    return col.to_numpy(dtype=float)


def build_remats(terms: Sequence[RandomTerm], frame: pd.DataFrame, field_name: str = "groups",
                 residual: bool = True) -> list[ReMat]:
    """Realise the terms on ``frame``, check them as lme4 does, and order and name them as lme4 does.

    Parameters
    ----------
    terms : RandomTerm, as parsed (`parse_random`).
    frame : DataFrame with the grouping and slope columns, one row per observation.
    field_name : the argument the columns came from, for error messages (``groups``, ``data``).
    residual : the model has a residual variance (an LMM). A GLMM of binomial or Poisson
        responses has none, so a factor with one level per row (an observation-level random
        effect, for overdispersion) is identified and allowed, as glmer allows it.

    Returns
    -------
    list of ReMat, in lme4's order.

    Raises
    ------
    SpecError, SpecTypeError
        Naming the term and the column: a column that is not there or has missing values,
        a non-numeric slope, a factor with one level or with as many levels as rows, more
        random effects than rows, a slope constant within every level of its factor.
    """
    n = len(frame)
    built: list[tuple[RandomTerm, np.ndarray, pd.Index, np.ndarray]] = []
    intercept_factors = {t.factor.columns for t in terms if t.intercept}
    for term in terms:
        codes, levels = factor_codes(frame, term.factor, term, field_name)
        k = len(levels)
        if k < 2:
            raise SpecError(field_name, f"term {term}: the grouping factor {term.name!r} has {k} level; a random "
                                        "effect needs at least 2 (lme4: grouping factors must have > 1 sampled level)")
        if k >= n + (0 if residual else 1):
            raise SpecError(field_name, f"term {term}: the grouping factor {term.name!r} has {k} levels for {n} "
                                        "rows; its variance cannot be told from the residual's (lme4: the number of "
                                        "levels of each grouping factor must be < the number of observations)")
        cols = [np.ones(n)] if term.intercept else []
        counts = np.bincount(codes, minlength=k)
        for name in term.columns:
            x = _numeric_column(frame, name, term, field_name)
            if term.factor.columns in intercept_factors:
                lo = np.full(k, np.inf)
                hi = np.full(k, -np.inf)
                np.minimum.at(lo, codes, x)
                np.maximum.at(hi, codes, x)
                if np.all((hi - lo)[counts > 0] == 0):
                    raise SpecError(field_name, f"term {term}: the slope column {name!r} is constant within every "
                                                f"level of {term.name!r}; its random slope would be the random "
                                                "intercept again (not identified). Drop it from the term")
            cols.append(x)
        Z = np.column_stack(cols) if cols else np.empty((n, 0))
        q = Z.shape[1]
        if k * q >= n + (0 if residual else 1):
            raise SpecError(field_name, f"term {term}: {k} levels x {q} random effects = {k * q} random effects "
                                        f"for {n} rows; they cannot be told from the residual (lme4: number of "
                                        "observations <= number of random effects)")
        built.append((term, codes, levels, Z))
    order = lme4_order([len(levels) for _, _, levels, _ in built])
    ordered = [built[i] for i in order]
    names = lme4_term_names([t for t, _, _, _ in ordered])
    return [ReMat(term=t, name=name, codes=codes, n_levels=len(levels), levels=levels, Z=np.ascontiguousarray(Z),
                  effect_names=t.effect_names)
            for (t, codes, levels, Z), name in zip(ordered, names, strict=True)]


# -- the fixed part ------------------------------------------------------------------------
_CONTRAST = re.compile(r"^(?P<var>.+?)\[(?:T\.)?(?P<level>[^\]]*)\]$")


def r_column_name(name: str) -> str:
    """formulaic's column name in R's ``model.matrix`` spelling: ``sex[T.M]`` -> ``sexM``, per factor of ``a:b``."""
    if name == "Intercept":
        return name
    parts = []
    for part in name.split(":"):
        m = _CONTRAST.match(part)
        parts.append(m["var"] + m["level"] if m else part)
    return ":".join(parts)


_ADDITIVE = re.compile(r"^\s*(?P<lhs>[A-Za-z_]\w*)\s*~\s*(?P<rhs>[A-Za-z_1]\w*(?:\s*\+\s*[A-Za-z_1]\w*)*)\s*$")


@dataclass(frozen=True)
class NumericSpec:
    """The fixed design of ``y ~ a + b + ...`` with numeric columns: formulaic's for it, without formulaic.

    formulaic's model matrix of such a formula is the intercept, then the columns as given
    (a repeated one once); building it through formulaic costs milliseconds per formula
    (12 ms for cake's 17 columns), more than the mixed-model fit of a small data set. Made by
    `fixed_design` only when every term is ``1`` or a numeric, non-boolean column of the
    data; anything else (factors, interactions, functions, ``- 1``) goes to formulaic.
    """

    columns: tuple[str, ...]

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "raise") -> pd.DataFrame:
        """The design on ``data``, as formulaic's ``ModelSpec.get_model_matrix`` (``na_action="raise"`` only)."""
        missing = [c for c in self.columns if c not in data.columns]
        if missing:
            raise KeyError(f"the columns {missing} are not in the data")
        part = data[list(self.columns)]
        wrong = [c for c, dtype in part.dtypes.items() if not _numeric_dtype(dtype)]
        if wrong:
            raise TypeError(f"the columns {wrong} were numeric when the model was fitted and are not now")
        X = np.ones((len(data), len(self.columns) + 1))
        X[:, 1:] = part.to_numpy(dtype=float)
        if na_action == "raise" and np.isnan(X).any():
            raise ValueError("missing values in the columns " + ", ".join(
                repr(c) for j, c in enumerate(self.columns, start=1) if np.isnan(X[:, j]).any()))
        return pd.DataFrame(X, columns=["Intercept", *self.columns], index=data.index)


def _numeric_dtype(dtype: object) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)


def _additive_numeric(formula: str, data: pd.DataFrame) -> tuple[str, tuple[str, ...]] | None:
    """The response and columns of a formula `NumericSpec` builds exactly as formulaic would, else None."""
    match = _ADDITIVE.match(formula)
    if match is None or not data.columns.is_unique:
        return None
    columns = tuple(t for t in dict.fromkeys(t.strip() for t in match["rhs"].split("+")) if t != "1")
    used = [match["lhs"], *columns]
    if match["lhs"] in columns or not all(c in data.columns for c in used):
        return None
    dtypes = data.dtypes
    if not all(_numeric_dtype(dtypes[c]) for c in used):
        return None
    return match["lhs"], columns


def fixed_design(formula: str, data: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame, object]:
    """The response and the fixed-effects design of ``formula`` on ``data``, as R's ``model.matrix``.

    formulaic reads the formula: factors (text or categorical columns) get treatment
    contrasts against their first level, interactions and ``- 1`` work as in R. Columns are
    renamed to R's spelling (``sexM``, ``x:sexM``); the intercept is ``Intercept``, as
    everywhere in mixcv.

    Returns
    -------
    y : Series
    X : DataFrame (float)
    spec : formulaic's model spec of the right-hand side, to build the same design on new data.

    Raises
    ------
    SpecError
        Field ``formula``: a response of more than one column, or a formula formulaic cannot read.
    """
    additive = _additive_numeric(formula, data)
    if additive is not None:
        response, columns = additive
        spec = NumericSpec(columns)
        X = spec.get_model_matrix(data, na_action="none")
        y = data[response].to_numpy(dtype=float)
        if not (np.isnan(X.to_numpy()).any() or np.isnan(y).any()):    # else formulaic's own error below
            return pd.Series(y, index=data.index, name=response), X, spec
    import formulaic

    try:
        matrices = formulaic.model_matrix(formula, data, na_action="raise")
    except Exception as err:   # formulaic raises many types; the user needs the formula and its message
        raise SpecError("formula", f"the fixed part {formula!r} cannot be built: {err}") from err
    lhs, rhs = matrices.lhs, matrices.rhs
    if lhs.shape[1] != 1:
        raise SpecError("formula", f"the response of {formula!r} must be one numeric column, got {lhs.shape[1]}")
    X = pd.DataFrame(np.asarray(rhs, dtype=float), columns=[r_column_name(c) for c in rhs.columns],
                     index=data.index)
    y = pd.Series(np.asarray(lhs, dtype=float).ravel(), index=data.index, name=str(lhs.columns[0]))
    return y, X, rhs.model_spec


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """The columns a rank-deficient design loses, as lme4 finds them: positions, in order.

    lme4's ``chkRank.drop.cols`` (R/modular.R) takes R's LINPACK QR, ``qr(X, tol = 1e-7,
    LAPACK = FALSE)`` (``dqrdc2``), and keeps the first ``rank`` columns of its pivot. That QR
    pivots only a little: going left to right, a column whose norm, once the columns kept
    before it are projected out, has fallen below ``tol`` times its original norm is moved
    to the end. So the kept columns stay in order, and what is dropped is each column that
    is (to ``tol``) a combination of the columns before it. This is ``dqrdc2`` itself —
    Householder steps with its norm downdating, recomputed when it loses accuracy (the
    "9/99" fix) — so a borderline column falls on the same side as in R.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    tol : float, default=1e-7
        lme4's tolerance.

    Returns
    -------
    list of int
        The 0-based positions lme4 drops (empty for a full-rank design).

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 7.0])
    >>> aliased_columns(np.column_stack([np.ones(4), x, np.zeros(4), 2 * x + 1, x**2]))
    [2, 3]
    """
    a = np.array(X, dtype=float).T.copy()     # row j of a is column j of X (contiguous)
    p, n = a.shape
    order = list(range(p))
    qraux = np.sqrt(np.einsum("ij,ij->i", a, a))     # the remaining norms, downdated step by step
    work2 = np.where(qraux == 0.0, 1.0, qraux)        # the original norms (dqrdc2's work(, 2))
    k = p + 1                                  # 1-based, as in dqrdc2: columns k.. are negligible
    for l in range(min(n, p)):                 # noqa: E741 (dqrdc2's name)
        # Move negligible columns to the end (the l + 1 >= k test stops the cycling).
        while l + 1 < k and qraux[l] < work2[l] * tol:
            perm = [*range(l), *range(l + 1, p), l]
            a, qraux, work2 = a[perm], qraux[perm], work2[perm]
            order = [order[i] for i in perm]
            k -= 1
        if l == n - 1:
            break
        v = a[l, l:]
        nrm = float(np.sqrt(v @ v))
        if nrm == 0.0:
            continue
        if v[0] != 0.0:
            nrm = np.copysign(nrm, v[0])
        v /= nrm
        v[0] += 1.0
        rest = a[l + 1:, l:]                   # the later columns, rows l.. (a view)
        rest -= np.outer(rest @ v / v[0], v)
        # Downdate the later columns' norms; recompute those that lost accuracy (t < 1e-6).
        js = np.arange(l + 1, p)
        js = js[qraux[js] != 0.0]
        t = np.maximum(1.0 - (np.abs(a[js, l]) / qraux[js]) ** 2, 0.0)
        lost = t < 1e-6
        qraux[js[~lost]] *= np.sqrt(t[~lost])
        redo = js[lost]
        qraux[redo] = np.sqrt(np.einsum("ij,ij->i", a[redo, l + 1:], a[redo, l + 1:]))
        qraux[l] = v[0]
        a[l, l] = -nrm
    rank = min(k - 1, n)
    return sorted(order[rank:])


@dataclass(frozen=True)
class KeptColumns:
    """A formula's fixed part after lme4 dropped aliased columns: the formulaic spec and what was kept.

    `design_on` builds the full design on new rows and keeps these columns, so a model that
    dropped columns predicts with the coefficients it has.
    """

    spec: object
    columns: tuple[str, ...]


def design_on(spec: object, data: pd.DataFrame) -> pd.DataFrame:
    """The fixed design a formula fit was made with (`fixed_design`'s ``spec``), built on new rows."""
    if isinstance(spec, KeptColumns):
        return design_on(spec.spec, data).loc[:, list(spec.columns)]
    if not isinstance(data, pd.DataFrame):
        raise SpecTypeError("X", f"a model fitted from a formula predicts from a DataFrame with the formula's "
                                 f"columns; got {type(data).__name__}")
    try:
        rhs = spec.get_model_matrix(data, na_action="raise")  # type: ignore[attr-defined]
    except Exception as err:   # formulaic's own message names what is missing or wrong
        raise SpecError("X", f"the fixed part cannot be built on these rows: {err}") from err
    return pd.DataFrame(np.asarray(rhs, dtype=float), columns=[r_column_name(c) for c in rhs.columns])
