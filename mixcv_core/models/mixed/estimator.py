"""The linear mixed model as a scikit-learn estimator: one or many random-effect terms, native or statsmodels.

The estimator only adapts: it checks and shapes the inputs (the random part through
`terms`/`design`, lme4's ``lFormula``), hands them to the solver of lme4's profiled
criterion (or, for one factor, statsmodels' ``MixedLM``), and exposes the estimates under
one set of names whichever way it was called:

- ``fit(X, y, groups=g, slopes=[...])``: the one-factor shorthand, ``(1 + slopes | g)``.
- ``LinearMixedEffectsModel(random="(1 + days | subject) + (1 | item)")`` with
  ``fit(X, y, groups=<DataFrame of the grouping columns>)``: any number of terms.
- `mixcv_core.models.lmer`: an lme4 formula on a data frame.

Per-term outputs (``varcorr_``, ``theta_``) follow lme4's term order and names; per-factor
outputs (``random_effects_``, ICC) follow ``ranef``'s grouping of terms by factor. With one
grouping factor ``random_effects_``, ``random_effects_sd_`` and ``cov_re_`` are DataFrames as
they always were; with several, ``random_effects_`` and ``random_effects_sd_`` are dicts of
DataFrames keyed by factor (``ranef_`` is always the dict) and ``cov_re_`` is not set.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ...errors import ConvergenceWarning, SpecError, SpecTypeError
from .. import _rows
from .._base import NUMERIC_HINT, MixedEffectsRegressor, as_frame, non_numeric
from .._groups import cluster_codes, conditional_sd
from ..lmm_summary import LMMSummary, decomposition_table, variance_parts
from .design import ReMat, aliased_columns, build_remats, design_on
from .fit import MixedFit, fit_mixed, relative_factor, singular_components
from .terms import Factor, RandomTerm, format_name, parse_random

__all__ = ["LinearMixedEffectsModel"]


def _with_intercept(frame: pd.DataFrame) -> pd.DataFrame:
    """An ``Intercept`` column of ones, then ``frame``'s columns as floats: one float block.

    Built in one array, so the many ``to_numpy()`` calls on it are views, not copies (with a
    million rows each copy is a fold's size again).
    """
    out = np.empty((len(frame), frame.shape[1] + 1))
    out[:, 0] = 1.0
    if frame.shape[1]:
        out[:, 1:] = frame.to_numpy(dtype=float)
    # Index.insert: half the cost of an Index built from a list of the names (pandas' string columns).
    return pd.DataFrame(out, columns=frame.columns.insert(0, "Intercept"), index=frame.index, copy=False)


@dataclass(frozen=True)
class _FixedPart:
    """``[1 X]`` with its column names, the columns of ``X`` never copied beside their intercept.

    The native fit reads it a block of rows at a time (`_rows.WithIntercept`): a million-row
    fold's design with its intercept was 134 MB, made again in ``[X y]`` and in the rank's
    SVD. What needs the whole matrix (statsmodels, the GLMM, an error's diagnosis) gets it
    from `to_numpy`, as the frame this stands in for gave it.
    """

    columns: pd.Index
    X: _rows.WithIntercept

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape

    def to_numpy(self, dtype: Any = float) -> np.ndarray:
        return self.X.toarray().astype(dtype, copy=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.to_numpy(), columns=self.columns, copy=False)


def _fixed_matrix(exog: pd.DataFrame | _FixedPart) -> _rows.Tall:
    """The fixed design as the native algebra reads it: by blocks of rows, or the frame's values."""
    return exog.X if isinstance(exog, _FixedPart) else exog.to_numpy(dtype=float)


@dataclass(frozen=True)
class _FittedTerm:
    """What prediction needs of one fitted term: its factor's training levels and its BLUPs."""

    term: RandomTerm
    name: str
    levels: pd.Index
    b: np.ndarray        # (K, q)


def _factor_labels(frame: pd.DataFrame, factor: Factor) -> pd.Index:
    """Each row's level label of ``factor``, spelt as `design.factor_codes` spells training levels."""
    cols = factor.columns
    if len(cols) == 1:
        return pd.Index(frame[cols[0]].to_numpy(), copy=False)
    joined = frame[cols[0]].astype(str)
    for c in cols[1:]:
        joined = joined + ":" + frame[c].astype(str)
    return pd.Index(joined.to_numpy())


_NATIVE_TAKES_NO_FIT_ARGUMENTS = ("the native backend takes no fit arguments (they are statsmodels' MixedLM.fit's: "
                                  "set backend='statsmodels' to use them); its evaluation limit is max_evals")


class LinearMixedEffectsModel(MixedEffectsRegressor):
    """Linear mixed model: fixed effects for every feature, random intercepts and slopes per grouping factor.

    ``y = X beta + sum_t Z_t b_t + e``, ``b_t ~ N(0, D_t)`` independent between terms,
    ``e ~ N(0, sigma^2)``, fitted by REML (default) or ML, exactly as lme4 defines them.

    Parameters
    ----------
    reml : bool, default=True
    predict_known_groups : bool, default=True
        Rows whose level of a factor was seen in training get that level's random effects
        (BLUPs); a level not seen in training contributes zero for its factor, while the
        row keeps the BLUPs of its other, known factors (a new item answered by a known
        subject). ``False``: the fixed effects alone.
    backend : {"native", "statsmodels"}, default="native"
        ``"native"``: mixcv's solver of lme4's profiled criterion, which agrees with lme4 and
        converges where statsmodels often does not; ``"statsmodels"``: statsmodels'
        ``MixedLM`` (one grouping factor only).
    method : str or list of str, optional
        Optimiser(s) passed to ``MixedLM.fit`` (statsmodels backend only).
    max_evals : int, default=10000
        Criterion evaluations at most (native backend); a fit that reaches the limit is
        reported as not converged.
    random : str, optional
        The random part in lme4's syntax, e.g. ``"(1 + days | subject) + (1 | item)"``,
        ``"(1 | school/class)"``, ``"(days || subject)"``; ``fit`` then takes ``groups`` as a
        DataFrame with the grouping columns (and slope columns that are not in ``X``).
        Without it, ``groups`` is one factor and ``slopes`` its random slopes.

    Attributes
    ----------
    fe_params_ : pandas.Series
        Fixed effects by column name (``Intercept`` first).
    bse_ : pandas.Series
        Their standard errors.
    varcorr_ : dict of str to pandas.DataFrame
        Each term's covariance matrix, keyed by the grouping factor's name as lme4's
        ``VarCorr`` prints it (``"cask:batch"``; ``"Subject"``, ``"Subject.1"`` for two terms
        of one factor), in lme4's term order.
    theta_ : ndarray
        The relative covariance factors, lme4's ``getME(m, "theta")`` (same order).
    cov_re_ : pandas.DataFrame
        With one grouping factor: the covariance of its random effects (its terms' blocks;
        zero between terms). Not set with several factors (see ``varcorr_``).
    scale_ : float
        Residual variance ``sigma^2``.
    random_effects_ : pandas.DataFrame or dict of str to pandas.DataFrame
        Predicted random effects, one row per training level. A DataFrame with one grouping
        factor (as before several were possible); a dict keyed by factor with several.
    random_effects_sd_ : same shape as ``random_effects_``
        Their conditional standard deviations (lme4's ``condVar``).
    ranef_ : dict of str to pandas.DataFrame
        ``random_effects_`` always as a dict by factor, as lme4's ``ranef``.
    converged_ : bool
        True only at a certified optimum; False otherwise, with a `ConvergenceWarning`.
    convergence_ : str
        How the fit ended, in words.
    boundary_ : list of str
        Random effects at which the fit is singular, as lme4's ``isSingular`` (effect names
        with one term; ``"<term>.<effect>"`` with several).
    llf_ : float
        Log-likelihood (the REML log-likelihood when ``reml=True``).
    reml_criterion_ : float
        ``-2 * llf_`` of a REML fit, as lme4's ``REMLcrit`` (NaN for ML fits).
    n_evals_ : int or None
        Criterion evaluations the optimiser used.
    icc_ : float
        Intraclass correlation: all random effects' share of the variance the fixed effects
        leave (Nakagawa et al. 2017).
    icc_by_factor_ : pandas.Series
        Each factor's share of that same variance (they add up to ``icc_``).
    variance_decomposition_ : pandas.DataFrame
        Variance of the fixed part, the random effects (and, with several factors, each
        factor's part of them) and the residual, and each one's share.
    fit_warnings_ : list of str
        Warnings the backend raised during the fit.

    Examples
    --------
    >>> from mixcv_core.synthesizer import generate_grouped_regression
    >>> X, y, g, slopes = generate_grouped_regression(20, 10, n_slopes=1, random_seed=0)
    >>> m = LinearMixedEffectsModel().fit(X, y, groups=g, slopes=slopes)
    >>> list(m.cov_re_.columns), m.converged_
    (['Intercept', 'X0'], True)
    """

    #: Arguments of ``fit`` the native solver itself reads (none for the LMM; the GLMM's
    #: ``weights`` and ``offset``); any other fit argument would be dropped, so it is refused.
    _native_fit_arguments: tuple[str, ...] = ()

    _backends = ("native", "statsmodels")
    #: The model has a residual variance (a GLMM has none: `design.build_remats`).
    _has_residual = True
    #: Fits ``y ~ 1 + (1 | g)`` when X has no columns (the engine reads this).
    intercept_only_ok = True
    #: Constant or collinear features cannot be fitted (the engine checks before any work).
    needs_full_rank = True

    @classmethod
    def check_fit_kwargs(cls, fixed: Mapping[str, Any], tuned: Collection[str], fit_kwargs: Mapping[str, Any]) -> None:
        """Refuse arguments to fit that the model's backend would drop (the engine asks before any work).

        ``fixed`` are the constructor arguments, ``tuned`` the names tuned in the inner
        loop. Only the statsmodels backend takes fit arguments (``MixedLM.fit``'s); the
        native one would ignore them, so a setting the user believes in would do nothing.
        Raises `SpecError` naming the first argument.
        """
        dropped = [k for k in fit_kwargs if k not in cls._native_fit_arguments]
        if dropped and "backend" not in tuned and fixed.get("backend", "native") == "native":
            raise SpecError(dropped[0], _NATIVE_TAKES_NO_FIT_ARGUMENTS)

    def __init__(self, reml: bool = True, predict_known_groups: bool = True,
                 backend: str = "native", method: str | Sequence[str] | None = None,
                 max_evals: int = 10_000, random: str | None = None) -> None:
        self.reml = reml
        self.predict_known_groups = predict_known_groups
        self.backend = backend
        self.method = method
        self.max_evals = max_evals
        self.random = random

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None, **fit_kwargs: Any) -> LinearMixedEffectsModel:
        """Fit by REML (or ML).

        Parameters
        ----------
        X : DataFrame or array of shape (n, p)
            Numeric fixed-effects features; may have no columns (the null model).
        y : array-like of shape (n,)
        groups : array-like of shape (n,), or DataFrame
            Without ``random``: one grouping factor (a label per row). With ``random``: a
            DataFrame holding every column the random part names that is not in ``X``.
        slopes : list of column names of X, or array-like of shape (n, s), optional
            Without ``random`` only: random slopes (a random intercept is always included).

        Raises
        ------
        SpecError, SpecTypeError
            Before any fit, naming ``X``, ``y``, ``groups``, ``slopes`` or ``random`` (and the
            term and column): non-numeric columns, lengths that differ, a column that is not
            there, a slope constant within its factor, a factor with one level or one level
            per row, collinear features.
        """
        if self.backend not in self._backends:
            raise SpecError("backend", f"unknown LMM backend {self.backend!r}; choose one of {self._backends}")
        self.check_fit_kwargs({"backend": self.backend}, (), fit_kwargs)   # the rule the engine asks, for direct calls
        Xf = as_frame(X)
        if not Xf.index.equals(pd.RangeIndex(len(Xf))):   # positions, as y and groups are read (no copy otherwise)
            Xf = Xf.reset_index(drop=True)
        bad = non_numeric(Xf)
        if bad:
            raise SpecTypeError("X", f"features must be numeric; {', '.join(bad)} are not. {NUMERIC_HINT}")
        try:
            yv = np.asarray(y, dtype=float).ravel()
        except (TypeError, ValueError):
            raise SpecTypeError("y", "the target must be numeric") from None
        if self.random is None:
            remats, groups_name = self._shorthand(Xf, yv, groups, slopes)
        else:
            if self.backend != "native":
                raise SpecError("backend", "random= needs the native backend (statsmodels fits one factor only)")
            if slopes is not None:
                raise SpecError("slopes", "with random=..., the slopes are written in the terms, e.g. "
                                          "'(1 + days | subject)'; pass slopes=None")
            frame = self._frame(Xf, groups, len(yv))
            remats = build_remats(parse_random(self.random), frame, field_name="groups",
                                  residual=self._has_residual)
            groups_name = None
        if len(Xf) != len(yv):
            raise SpecError("X", f"X has {len(Xf)} rows but y has {len(yv)}")
        exog = _FixedPart(Xf.columns.insert(0, "Intercept"), _rows.WithIntercept(Xf.to_numpy(dtype=float)))
        self._fit_design(exog, yv, remats, fit_kwargs)
        self.n_features_in_ = Xf.shape[1]
        self.feature_names_in_ = np.asarray(Xf.columns, dtype=object)
        self.response_name_ = str(y.name) if isinstance(y, pd.Series) and y.name is not None else "y"
        self.formula_: str | None = None
        if groups_name is not None:
            self.groups_name_ = groups_name
        return self

    def _shorthand(self, Xf: pd.DataFrame, yv: np.ndarray, groups: Any, slopes: Any) -> tuple[list[ReMat], str]:
        """``groups``/``slopes`` as one term ``(1 + slopes | groups)``, checked as they always were."""
        if groups is None:
            raise SpecError("groups", "LinearMixedEffectsModel needs groups")
        names = [slopes] if isinstance(slopes, str) else slopes
        if (isinstance(names, (list, tuple)) and all(isinstance(s, str) for s in names) and Xf.columns.is_unique
                and all(s in Xf.columns for s in names)):
            # Columns of X (already checked numeric): read from its float block, not selected as
            # a new frame (a fixed cost of every fit, as large as a small fit's algebra).
            columns: list[Any] = list(names)
            # get_loc per name: get_indexer builds an Index of the names first (hundreds of µs).
            values = Xf.to_numpy(dtype=float)[:, [Xf.columns.get_loc(c) for c in columns]]
        else:
            Z = self._slopes(Xf, slopes)
            bad = non_numeric(Z)
            if bad:
                raise SpecTypeError("slopes", f"random slopes must be numeric; {', '.join(bad)} are not. "
                                              f"{NUMERIC_HINT}")
            columns, values = list(Z.columns), Z.to_numpy(dtype=float)
        codes, labels = cluster_codes(groups, len(yv), field="groups")
        design = np.empty((len(values), values.shape[1] + 1))   # [1, slopes], as floats
        design[:, 0] = 1.0
        design[:, 1:] = values
        constant = [c for c, col in zip(columns, values.T, strict=True) if np.ptp(col) == 0]
        if constant:
            raise SpecError("slopes", f"the slope column(s) {constant} are constant: a random slope needs values that "
                                      "vary (a constant is already the random intercept)")
        name = str(groups.name) if isinstance(groups, pd.Series) and groups.name is not None else "group"
        term = RandomTerm(True, tuple(str(c) for c in columns), Factor(column=name))
        self.slope_names_ = columns
        remat = ReMat(term=term, name=term.name, codes=codes, n_levels=len(labels), levels=labels,
                      Z=design, effect_names=["Intercept", *map(str, columns)])
        return [remat], name

    @staticmethod
    def _frame(Xf: pd.DataFrame, groups: Any, n: int) -> pd.DataFrame:
        """X's columns, then the columns of ``groups`` not in X: where the random part's columns are looked up."""
        if isinstance(groups, pd.Series) and groups.name is not None:
            groups = groups.to_frame()
        if not isinstance(groups, pd.DataFrame):
            raise SpecTypeError("groups", "with random=..., groups must be a DataFrame holding the grouping columns "
                                          f"the terms name (and slope columns not in X); got {type(groups).__name__}")
        if len(groups) != n:
            raise SpecError("groups", f"has {len(groups)} rows but y has {n}")
        extra = groups.loc[:, [c for c in groups.columns if c not in Xf.columns]].reset_index(drop=True)
        return pd.concat([Xf, extra], axis=1)

    def _fit_design(self, exog: pd.DataFrame | _FixedPart, yv: np.ndarray, remats: list[ReMat],
                    fit_kwargs: dict) -> None:
        """Fit on a finished fixed design and terms; every way of calling the model ends here."""
        rank = _rows.rank(_fixed_matrix(exog))   # numpy's matrix_rank, without a copy of a tall design
        if rank < exog.shape[1]:
            # Name the columns lme4 would drop (lmer() drops them; here X is the user's own).
            aliased = [str(exog.columns[j]) for j in aliased_columns(exog.to_numpy(dtype=float))]
            why = (f"{', '.join(aliased)} {'is a combination' if len(aliased) == 1 else 'are combinations'} of the "
                   "columns before (a constant column is one of the intercept); drop them, or fit the formula with "
                   "lmer(), which drops them as lme4 does" if aliased else
                   "no column is a combination of the others to lme4's tolerance, so their scales differ too "
                   "much; rescale them")
            raise SpecError("X", f"the fixed-effects design ({', '.join(map(str, exog.columns))}) has rank {rank} "
                                 f"< {exog.shape[1]}: {why}")
        if self.backend == "native":
            self._fit_native(exog, yv, remats)
        else:
            self._fit_statsmodels(exog, yv, remats[0], fit_kwargs)
        if not self.converged_:
            warnings.warn(ConvergenceWarning(
                f"LinearMixedEffectsModel ({self.backend}) did not converge; estimates may be wrong"
                + (": " + "; ".join(self.fit_warnings_[:2]) if self.fit_warnings_ else "")), stacklevel=3)
        if self.boundary_:
            warnings.warn(f"boundary (singular) fit: the random effects {self.boundary_} have zero variance or are "
                          "perfectly correlated with the ones before them; the data do not support that much "
                          "random-effects structure", UserWarning, stacklevel=3)
        self.terms_ = [r.term for r in remats]
        self.n_obs_ = len(yv)
        self.n_groups_ = remats[0].n_levels if len(remats) == 1 else None
        self.n_levels_ = {r.factor_name: r.n_levels for r in remats}
        self._set_variance(exog, remats)

    def _fit_native(self, exog: pd.DataFrame | _FixedPart, yv: np.ndarray, remats: list[ReMat]) -> None:
        fit = fit_mixed(_fixed_matrix(exog), yv, remats, reml=self.reml, max_evals=self.max_evals)
        self._store(exog, remats, fit)

    #: Fitted attributes built from the fit record on first access and then kept (pandas objects
    #: whose construction cost a small fit as much as its algebra; the engine reads few of them).
    #: Same values as when they were built in ``fit``; `_store` forgets them on a refit.
    _LAZY = ("bse_", "varcorr_", "ranef_", "random_effects_", "random_effects_sd_", "cov_re_", "_factor_tables",
             "variance_decomposition_", "icc_by_factor_")

    def _store(self, exog: pd.DataFrame | _FixedPart, remats: list[ReMat], fit: MixedFit) -> None:
        """Keep a fit record (the native solver's, or statsmodels' put in its shape) and name what prediction needs.

        The other estimates are named when first read (`_LAZY`), from the record and the
        terms' names kept here, so a pickled or cloned model builds the same tables.
        """
        for name in self._LAZY:
            self.__dict__.pop(name, None)
        self._record = fit
        self._term_names = [(r.name, r.factor_name, tuple(r.effect_names)) for r in remats]
        self._by_position = self.random is None     # the shorthand's levels are indexed as "group"
        # exog's own Index (immutable): a list of the names would be made into a new one.
        self.fe_params_ = pd.Series(np.asarray(fit.beta, dtype=float), index=exog.columns, name="fe_params")
        self.scale_ = float(fit.sigma2)
        self.llf_ = float(fit.llf)
        self.reml_criterion_ = float(fit.criterion) if self.reml else float("nan")
        self.converged_ = bool(fit.converged)
        self.convergence_ = fit.message
        self.n_evals_: int | None = fit.n_evals
        self.theta_ = np.asarray(fit.theta, dtype=float)
        self.fit_warnings_ = [] if fit.converged else [fit.message]
        self.result_: Any = fit
        one = len(remats) == 1
        self.boundary_ = [remats[t].effect_names[j] if one else f"{remats[t].name}.{remats[t].effect_names[j]}"
                          for t, j in fit.boundary]
        self._fitted_terms = [_FittedTerm(r.term, r.name, r.levels, np.asarray(b, dtype=float))
                              for r, b in zip(remats, fit.b, strict=True)]

    def _fit_record(self) -> MixedFit:
        check_is_fitted(self, "_record")    # NotFittedError is an AttributeError: hasattr() is False before fit
        record: MixedFit = self._record
        return record

    @cached_property
    def bse_(self) -> pd.Series:
        """The fixed effects' standard errors."""
        return pd.Series(np.sqrt(np.diag(self._fit_record().beta_cov)), index=self.fe_params_.index, name="std_error")

    @cached_property
    def varcorr_(self) -> dict[str, pd.DataFrame]:
        """Each term's covariance matrix, keyed as lme4's ``VarCorr`` (see the class docstring)."""
        return {name: pd.DataFrame(cov, index=list(effects), columns=list(effects))
                for (name, _, effects), cov in zip(self._term_names, self._fit_record().covs, strict=True)}

    @cached_property
    def _factor_tables(self) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        """Per factor, its terms side by side as lme4's ``ranef`` shows them: modes, their sds, their covariance."""
        fit = self._fit_record()
        ranef, sds, covs = {}, {}, {}
        for factor in dict.fromkeys(f for _, f, _ in self._term_names):
            idx = [i for i, (_, f, _) in enumerate(self._term_names) if f == factor]
            # Each index built once and shared (an Index is immutable).
            names = pd.Index([n for i in idx for n in self._term_names[i][2]])
            index = pd.Index(self._fitted_terms[idx[0]].levels, name="group" if self._by_position else factor)
            ranef[factor] = pd.DataFrame(np.hstack([fit.b[i] for i in idx]), index=index, columns=names)
            sds[factor] = pd.DataFrame(np.hstack([fit.b_sd[i] for i in idx]), index=index, columns=names)
            covs[factor] = pd.DataFrame(_block_diag([fit.covs[i] for i in idx]), index=names, columns=names)
        return ranef, sds, covs

    @cached_property
    def ranef_(self) -> dict[str, pd.DataFrame]:
        """``random_effects_`` always as a dict by factor, as lme4's ``ranef``."""
        return self._factor_tables[0]

    @cached_property
    def random_effects_(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Each level's predicted random effects: a DataFrame with one grouping factor, a dict of them with several."""
        ranef = self.ranef_
        return next(iter(ranef.values())) if len(ranef) == 1 else dict(ranef)

    @cached_property
    def random_effects_sd_(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Their conditional standard deviations (lme4's ``condVar``), in the same shape."""
        sds = self._factor_tables[1]
        return next(iter(sds.values())) if len(sds) == 1 else sds

    @cached_property
    def cov_re_(self) -> pd.DataFrame:
        """With one grouping factor, the covariance of its random effects; not set with several."""
        covs = self._factor_tables[2]
        if len(covs) != 1:
            raise AttributeError("cov_re_ is set for one grouping factor only; with several, see varcorr_")
        return next(iter(covs.values()))

    def _set_variance(self, exog: pd.DataFrame | _FixedPart, remats: list[ReMat]) -> None:
        """The variance decomposition's numbers and the ICC, over the fitting rows (kept instead of the rows)."""
        fixed_part = _rows.matvec(_fixed_matrix(exog), self.fe_params_.to_numpy())
        covs = self._record.covs
        per_factor = {}
        for factor in dict.fromkeys(r.factor_name for r in remats):
            idx = [i for i, r in enumerate(remats) if r.factor_name == factor]
            per_factor[factor] = (np.hstack([remats[i].Z for i in idx]), _block_diag([covs[i] for i in idx]))
        v_fixed, parts = variance_parts(fixed_part, per_factor)
        self._variance = (v_fixed, parts, self.scale_)
        left = sum(parts.values()) + self.scale_
        self.icc_ = float(sum(parts.values()) / left)

    @cached_property
    def variance_decomposition_(self) -> pd.DataFrame:
        """Variance of the fixed part, the random effects (per factor, with several) and the residual, with shares."""
        check_is_fitted(self, "_variance")
        return decomposition_table(*self._variance)

    @cached_property
    def icc_by_factor_(self) -> pd.Series:
        """Each factor's share of the variance the fixed effects leave (they add up to ``icc_``)."""
        check_is_fitted(self, "_variance")
        _, parts, sigma2 = self._variance
        v_random = sum(parts.values())
        left = v_random + sigma2
        shares = {f: (p if len(parts) > 1 else v_random) / left for f, p in parts.items()}
        return pd.Series({f: float(v) for f, v in shares.items()}, name="icc")

    def _fit_statsmodels(self, exog: pd.DataFrame | _FixedPart, y: np.ndarray, remat: ReMat,
                         fit_kwargs: dict) -> None:
        from statsmodels.regression.mixed_linear_model import MixedLM
        from statsmodels.tools.sm_exceptions import ConvergenceWarning as SMConvergenceWarning

        re_names = remat.effect_names
        exog_re = pd.DataFrame(remat.Z, columns=re_names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = exog.to_frame() if isinstance(exog, _FixedPart) else exog
            model = MixedLM(y, frame, groups=np.asarray(remat.levels)[remat.codes], exog_re=exog_re)
            kwargs = dict(fit_kwargs)
            if self.method is not None:
                kwargs.setdefault("method", self.method)
            else:
                # statsmodels' default BFGS tolerance stops short of the REML optimum of
                # the variance components (0.5% on 2,400 rows); 1e-8 reaches it at little
                # cost, while 1e-10 is beyond what BFGS can certify.
                kwargs.setdefault("gtol", 1e-8)
            result = model.fit(reml=self.reml, **kwargs)
        caught_text = [f"{w.category.__name__}: {w.message}" for w in caught]
        not_converged = any(issubclass(w.category, SMConvergenceWarning) for w in caught)
        converged = bool(getattr(result, "converged", True)) and not not_converged
        cov = np.asarray(result.cov_re, dtype=float)
        scale = float(result.scale)
        re = result.random_effects
        b = np.vstack([np.asarray(re[k], dtype=float) for k in remat.levels])
        lam = relative_factor(cov / scale)
        retvals = getattr(result, "mle_retvals", None) or {}
        n_evals = retvals.get("fcalls") or retvals.get("funcalls")
        llf = float(result.llf)
        p = exog.shape[1]
        # statsmodels' estimates in the native fit record's shape, so both backends are named alike.
        record = MixedFit(
            beta=np.asarray(result.fe_params, dtype=float),
            beta_cov=np.asarray(result.cov_params(), dtype=float)[:p, :p], sigma2=scale, theta=_theta(lam),
            covs=[cov], b=[b],
            b_sd=[conditional_sd(remat.Z, remat.codes, remat.n_levels, cov, scale)], criterion=-2.0 * llf, llf=llf,
            reml=self.reml, converged=converged,
            message="statsmodels reports convergence" if converged else "statsmodels did not converge",
            boundary=[(0, j) for j in singular_components(lam)], n_evals=0 if n_evals is None else int(n_evals),
            gradient_max=float("nan"), newton_decrement=float("nan"))
        self._store(exog, [remat], record)
        self.fit_warnings_ = caught_text
        self.n_evals_ = None if n_evals is None else int(n_evals)
        self.result_ = result

    # -- prediction ------------------------------------------------------------------------
    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """Predict: the fixed effects plus, for every factor, the BLUPs of the row's level if it was seen in training.

        A level not seen in training contributes zero for its factor (its random effect's
        mean); the row keeps the BLUPs of its other factors. Without ``groups`` (or with
        ``predict_known_groups=False``) the fixed effects alone.

        Parameters
        ----------
        X : as in `fit` (for a model fitted by `lmer`: a data frame with the formula's columns,
            which also supplies the grouping columns).
        groups : as in `fit`.
        slopes : as in `fit` (the one-factor shorthand only).
        """
        check_is_fitted(self, "fe_params_")
        if self.formula_ is not None:
            Xf = design_on(self._fixed_spec, X)
            frame = X.reset_index(drop=True)
        else:
            Xf = as_frame(X).reset_index(drop=True)
            frame = None
        beta = self.fe_params_.to_numpy()
        if self.formula_ is not None:
            fixed = Xf.to_numpy(dtype=float) @ beta
        else:
            fixed = Xf.to_numpy(dtype=float) @ beta[1:]
            fixed += beta[0]     # in place: the same sums as beta[0] + X @ beta, without a second vector
        if (groups is None and frame is None) or not self.predict_known_groups:
            return fixed
        if self.random is None and self.formula_ is None:
            Z = self._slopes(Xf, slopes if slopes is not None else (self.slope_names_ or None)).to_numpy(dtype=float)
            # The group labels as given (not copied); each block's slice keeps the whole's dtype, so
            # a label matches a training level exactly as it would in one lookup.
            labels = pd.Index(np.asarray(groups), copy=False)
            for rows in _rows.row_blocks(len(fixed)):
                design = np.column_stack([np.ones(len(Z[rows])), Z[rows]])
                fixed[rows] += self._blups(self._fitted_terms[0], labels[rows], design)
            return fixed
        if frame is None:
            frame = self._frame(Xf, groups, len(Xf))
        needed = {c for ft in self._fitted_terms for c in (*ft.term.columns, *ft.term.factor.columns)}
        missing = sorted(c for c in needed if c not in frame.columns)
        if missing:
            raise SpecError("groups", f"the random terms need the columns {missing}, which are not in the rows to "
                                      "predict (pass them in groups, or in X)")
        for ft in self._fitted_terms:
            labels = _factor_labels(frame, ft.term.factor)
            values = [frame[c].to_numpy(dtype=float) for c in ft.term.columns]
            # A block of rows at a time: the lookup's positions, the design and each row's effects
            # of a million rows would otherwise be a few vectors of the rows' length at once.
            for rows in _rows.row_blocks(len(fixed)):
                ones = [np.ones(len(fixed[rows]))] if ft.term.intercept else []
                fixed[rows] += self._blups(ft, labels[rows], np.column_stack([*ones, *(v[rows] for v in values)]))
        return fixed

    @staticmethod
    def _blups(ft: _FittedTerm, labels: pd.Index, design: np.ndarray) -> np.ndarray:
        # Vectorised BLUP lookup: unseen levels get position -1, whose row of B is zero.
        pos = ft.levels.get_indexer(labels)
        B = np.vstack([ft.b, np.zeros((1, design.shape[1]))])
        return np.einsum("ij,ij->i", design, B[pos])

    # -- reporting -------------------------------------------------------------------------
    def summary(self, confidence: float = 0.95, *, response: str | None = None, groups: str | None = None,
                fitted_on: str = "") -> LMMSummary:
        """The fit as a researcher reports it, like lme4's ``summary``: fixed effects with
        standard errors, t values and Wald confidence intervals; every term's random-effect
        standard deviations and correlations; the residual; the criterion; the variance
        decomposition (ICC, marginal and conditional R²); convergence and boundary status.

        Prints as text; displays as HTML in a notebook.

        Parameters
        ----------
        confidence : float, default=0.95
            Level of the Wald intervals.
        response, groups : str, optional
            The target's and the grouping column's names, for a model fitted on arrays (as
            a cross-validation fits it): the formula then reads ``height ~ age + (1 + age |
            Subject)``, not ``y ~ ... | group``. By default the names seen in ``fit``.
        fitted_on : str, optional
            Which fit this is (``"outer fold 2 of 5: its 150 training rows"``), shown under
            the formula: a cross-validation fits one model per fold.
        """
        check_is_fitted(self, "fe_params_")
        # The shorthand's one grouping factor under its real name (a random= formula has its own).
        rename = ({self.groups_name_: groups} if groups is not None and self.random is None
                  and getattr(self, "groups_name_", None) is not None else {})
        from scipy.stats import norm
        z = float(norm.ppf(0.5 + confidence / 2))
        fe, se = self.fe_params_, self.bse_
        fixed = pd.DataFrame({"estimate": fe, "std_error": se, "t_value": fe / se,
                              "ci_low": fe - z * se, "ci_high": fe + z * se})
        fixed.index = ["(Intercept)" if i == "Intercept" else i for i in fixed.index]
        rows = []
        for name, cov_frame in self.varcorr_.items():
            cov = cov_frame.to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = cov / np.outer(sd, sd)
            effects = ["(Intercept)" if n == "Intercept" else str(n) for n in cov_frame.index]
            for i, effect in enumerate(effects):
                row: dict[str, Any] = {"effect": effect, "group": rename.get(name, name), "variance": cov[i, i],
                                       "std_dev": sd[i]}
                for j in range(i):
                    row[f"corr_{effects[j]}"] = corr[i, j]
                rows.append(row)
        random = pd.DataFrame(rows).set_index("effect")
        random.index.name = None
        crit = self.reml_criterion_ if self.reml else -2.0 * self.llf_
        n_levels = {rename.get(k, k): v for k, v in self.n_levels_.items()}
        return LMMSummary(
            title=f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} "
                  f"(mixcv, {self.backend} solver)",
            formula=self._formula_text(response, groups), fixed=fixed, random=random, residual_variance=self.scale_,
            decomposition=self.variance_decomposition_, icc=self.icc_,
            criterion_name="REML criterion" if self.reml else "-2 log-likelihood", criterion=crit,
            loglik=self.llf_, n_obs=self.n_obs_, n_groups=sum(n_levels.values()), groups_name=", ".join(n_levels),
            convergence=self.convergence_,
            converged=self.converged_, boundary=list(self.boundary_), confidence=confidence, levels=n_levels,
            icc_by_factor={str(rename.get(k, k)): float(v) for k, v in self.icc_by_factor_.items()},
            fitted_on=fitted_on)

    def _formula_text(self, response: str | None = None, groups: str | None = None) -> str:
        if self.formula_ is not None:
            return str(self.formula_)
        fixed = " + ".join(format_name(str(c)) for c in self.feature_names_in_) or "1"
        lhs = format_name(response) if response is not None else self.response_name_
        if self.random is None:
            re_terms = " + ".join(["1"] + [format_name(str(c)) for c in self.slope_names_])
            return f"{lhs} ~ {fixed} + ({re_terms} | {format_name(groups) if groups else self.groups_name_})"
        return f"{lhs} ~ {fixed} + {self.random}"


def _theta(lam: np.ndarray) -> np.ndarray:
    """lme4's theta of one lower-triangular factor: its lower triangle, column by column."""
    rows, cols = np.tril_indices(lam.shape[0])
    order = np.lexsort((rows, cols))
    return lam[rows[order], cols[order]]


def _block_diag(blocks: Sequence[np.ndarray]) -> np.ndarray:
    if len(blocks) == 1:                     # one term per factor, the usual case
        return np.array(blocks[0], dtype=float)
    from scipy.linalg import block_diag
    return np.asarray(block_diag(*blocks), dtype=float)
