"""The generalised linear mixed model as a scikit-learn estimator, and ``glmer(formula, data)``.

`GeneralizedLinearMixedModel` takes its inputs exactly as `LinearMixedEffectsModel` does
(``groups``/``slopes``, or ``random=`` with ``groups`` a DataFrame) and fits them by
`glmm.fit_glmm` (lme4's ``glmer``: Laplace, or adaptive Gauss-Hermite quadrature for one
scalar term). Estimates carry the LMM's names.

Predictions. For a row whose level of every factor was seen in training, the mean is
conditional on those levels' modes: ``g^-1(x'beta + z'b)``. For a row of a level not seen
in training, the prediction is the *marginal* (population-averaged) mean over that
factor's random-effect distribution, ``E g^-1(x'beta + z'b_known + z'b_new)`` with
``z'b_new ~ N(0, s^2)``, ``s^2 = z' Sigma z`` summed over the unseen terms: ``Phi(eta /
sqrt(1 + s^2))`` for the probit, ``exp(eta + s^2 / 2)`` for the log link, and 40-point
Gauss-Hermite quadrature for the logit. Plugging in ``b_new = 0`` instead would give the
mean of a *typical* group, which for a logit is further from 0.5 and for a log link lower
than the average over new groups (lme4 #281).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from ...errors import ConvergenceWarning, SpecError, SpecTypeError
from .. import _rows
from .._base import as_frame
from .design import ReMat, build_remats, design_on, fixed_design
from .estimator import LinearMixedEffectsModel, _factor_labels, _with_intercept
from .family import Family, get_family
from .fit import MixedFit
from .glmm import GlmmFit, fit_glmm, gh_rule
from .lmer import drop_aliased, record_formula, used_columns
from .terms import split_formula

__all__ = ["GeneralizedLinearMixedModel", "glmer", "marginal_mean"]

_GH = gh_rule(40)


def marginal_mean(family: Family, eta: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """``E g^-1(eta + s Z)``, ``Z ~ N(0, 1)``, per row (``s2 = 0``: the plug-in ``g^-1(eta)``)."""
    eta, s2 = np.asarray(eta, dtype=float), np.asarray(s2, dtype=float)
    name = family.link.name
    if name == "probit":
        return np.asarray(stats.norm.cdf(eta / np.sqrt(1.0 + s2)))
    if name == "log":
        return np.exp(eta + s2 / 2)
    z, w = _GH
    return np.asarray(family.link.inverse(eta[:, None] + np.sqrt(s2)[:, None] * z[None, :]) @ w)


class GeneralizedLinearMixedModel(LinearMixedEffectsModel):
    """Generalised linear mixed model (binomial: logit or probit; Poisson: log), fitted as lme4's ``glmer``.

    Parameters
    ----------
    family : {"binomial", "poisson"}, default="binomial"
    link : str, optional
        ``"logit"`` (default) or ``"probit"`` for binomial, ``"log"`` for Poisson.
    nAGQ : int, default=1
        1: the Laplace approximation; 2..25: adaptive Gauss-Hermite quadrature, for one scalar
        random effect only (refused otherwise); 0: lme4's first stage only (beta in PIRLS).
    random : str, optional
        lme4's random part, as for `LinearMixedEffectsModel`.
    predict_known_groups : bool, default=True
        False: every prediction is the marginal mean over all random effects.
    max_evals : int, default=20000

    Attributes
    ----------
    fe_params_, bse_, varcorr_, theta_, random_effects_, random_effects_sd_, boundary_ :
        as for `LinearMixedEffectsModel` (covariances on the linear-predictor scale; the
        conditional modes for ``random_effects_``).
    llf_ : float
        The log-likelihood as lme4 reports it for this ``nAGQ`` (minus half the criterion).
    deviance_ : float
        lme4's criterion: the Laplace (or quadrature) approximation of ``-2 log L``.
    converged_ : bool
        True only at a certified optimum (gradient and Hessian checked); False with a
        `ConvergenceWarning` otherwise.
    classes_ : ndarray
        ``[0, 1]`` for binomial.
    """

    backend = "native"
    _has_residual = False
    _backends = ("native", "native")    # the LMM's shape; only the native solver fits a GLMM
    reml = False

    def __init__(self, family: str = "binomial", link: str | None = None, nAGQ: int = 1,  # noqa: N803
                 random: str | None = None, predict_known_groups: bool = True, max_evals: int = 20_000) -> None:
        self.family = family
        self.link = link
        self.nAGQ = nAGQ
        self.random = random
        self.predict_known_groups = predict_known_groups
        self.max_evals = max_evals

    _native_fit_arguments = ("weights", "offset")

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None,  # type: ignore[override]
            weights: Any = None, offset: Any = None) -> GeneralizedLinearMixedModel:
        """Fit by Laplace (or quadrature).

        Parameters
        ----------
        X, groups, slopes : as for `LinearMixedEffectsModel.fit`.
        y : 0/1 outcomes or proportions (binomial; with ``weights`` the numbers of trials), counts (Poisson).
        weights : prior weights (binomial: trials), optional.
        offset : added to the linear predictor (Poisson: log exposure), optional.
        """
        get_family(self.family, self.link)      # names a bad family or link before any work
        super().fit(X, y, groups=groups, slopes=slopes, weights=weights, offset=offset)
        return self

    def _fit_design(self, exog: pd.DataFrame, yv: np.ndarray, remats: list[ReMat], fit_kwargs: dict) -> None:
        fam = get_family(self.family, self.link)
        rank = _rows.rank(exog.to_numpy())
        if rank < exog.shape[1]:
            raise SpecError("X", f"the fixed-effects design ({', '.join(map(str, exog.columns))}) has rank {rank} "
                                 f"< {exog.shape[1]}: some columns are collinear or constant; drop them")
        weights, offset = (None if fit_kwargs.get(k) is None else np.asarray(fit_kwargs[k], dtype=float).ravel()
                           for k in ("weights", "offset"))
        fit = fit_glmm(exog.to_numpy(dtype=float), yv, remats, fam, nAGQ=self.nAGQ, weights=weights, offset=offset,
                       max_evals=self.max_evals, names=[str(c) for c in exog.columns])
        self._store(exog, remats, _as_mixed(fit))
        self.glmm_fit_: GlmmFit = fit
        self.family_ = fam
        self.deviance_ = float(fit.criterion)
        self.reml_criterion_ = float("nan")
        self.scale_ = 1.0
        self.terms_ = [r.term for r in remats]
        self.n_obs_ = len(yv)
        self.n_levels_ = {r.factor_name: r.n_levels for r in remats}
        self.n_groups_ = remats[0].n_levels if len(remats) == 1 else None
        self._set_variance(exog, remats)
        if fam.name == "binomial":
            self.classes_ = np.array([0, 1])
        if not self.converged_:
            warnings.warn(ConvergenceWarning(f"GeneralizedLinearMixedModel did not converge: {fit.message}; "
                                             "estimates may be wrong"), stacklevel=3)
        if self.boundary_:
            warnings.warn(f"boundary (singular) fit: the random effects {self.boundary_} have zero variance or are "
                          "perfectly correlated with the ones before them", UserWarning, stacklevel=3)

    # -- prediction ------------------------------------------------------------------------
    def _eta(self, X: Any, groups: Any, slopes: Any, offset: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each row's linear predictor (known levels' modes included) and the variance of its unseen part."""
        check_is_fitted(self, "fe_params_")
        if self.formula_ is not None:
            Xf = design_on(self._fixed_spec, X)
            frame: pd.DataFrame | None = X.reset_index(drop=True)
            exog = Xf.to_numpy(dtype=float)
        else:
            Xf = as_frame(X).reset_index(drop=True)
            frame = None
            exog = _with_intercept(Xf).to_numpy(dtype=float)
        n = len(exog)
        eta = exog @ self.fe_params_.to_numpy()
        if offset is not None:
            eta = eta + np.asarray(offset, dtype=float).ravel()
        s2 = np.zeros(n)
        use_groups = self.predict_known_groups and not (groups is None and frame is None)
        if self.random is None and self.formula_ is None:
            Z = self._slopes(Xf, slopes if slopes is not None else (self.slope_names_ or None))
            designs = [np.column_stack([np.ones(n), Z.to_numpy(dtype=float)])]
            labels = [pd.Index(np.asarray(groups)) if use_groups else None]
        else:
            if frame is None and use_groups:
                frame = self._frame(Xf, groups, n)
            designs, labels = [], []
            for ft in self._fitted_terms:
                cols = [np.ones(n)] if ft.term.intercept else []
                if frame is not None:
                    cols += [frame[c].to_numpy(dtype=float) for c in ft.term.columns]
                elif ft.term.columns:
                    cols += [Xf[c].to_numpy(dtype=float) for c in ft.term.columns]
                designs.append(np.column_stack(cols))
                labels.append(_factor_labels(frame, ft.term.factor) if (use_groups and frame is not None) else None)
        for ft, cov, design, lab in zip(self._fitted_terms, self.glmm_fit_.covs, designs, labels):
            pos = ft.levels.get_indexer(lab) if lab is not None else np.full(n, -1)
            known = pos >= 0
            eta[known] += np.einsum("ij,ij->i", design[known], ft.b[pos[known]])
            s2[~known] += np.einsum("ij,jk,ik->i", design[~known], cov, design[~known])
        return eta, s2

    def predict_mean(self, X: Any, groups: Any = None, slopes: Any = None, offset: Any = None) -> np.ndarray:
        """The mean response: conditional on the modes for known levels, marginal over unseen ones (see module)."""
        eta, s2 = self._eta(X, groups, slopes, offset)
        return marginal_mean(self.family_, eta, s2)

    def predict_proba(self, X: Any, groups: Any = None, slopes: Any = None, offset: Any = None) -> np.ndarray:
        """``[P(y=0), P(y=1)]`` per row (binomial only)."""
        if get_family(self.family, self.link).name != "binomial":
            raise SpecError("family", "predict_proba is for the binomial family; use predict for Poisson means")
        p = self.predict_mean(X, groups, slopes, offset)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, groups: Any = None, slopes: Any = None, offset: Any = None) -> np.ndarray:
        """The predicted class (binomial: 1 where P(y=1) > 0.5) or the mean count (Poisson)."""
        p = self.predict_mean(X, groups, slopes, offset)
        return (p > 0.5).astype(int) if self.family_.name == "binomial" else p

    def summary(self, confidence: float = 0.95, *, response: str | None = None, groups: str | None = None,
                fitted_on: str = "") -> Any:
        """As `LinearMixedEffectsModel.summary`, titled as glmer's (z values; no residual variance)."""
        out = super().summary(confidence, response=response, groups=groups, fitted_on=fitted_on)
        approx = "Laplace approximation" if self.nAGQ <= 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {self.nAGQ}"
        out.title = (f"Generalized linear mixed model fit by maximum likelihood ({approx}) "
                     f"[{self.family_.name}, {self.family_.link.name} link] (mixcv)")
        out.criterion_name = "deviance (-2 log-likelihood)"
        out.criterion = self.deviance_
        out.statistic_name = "z value"
        # The variance decomposition's residual: the link's latent one (not a parameter).
        out.residual_name = "Residual (latent)"
        out.residual_variance = self.latent_residual_
        return out

    def _set_variance(self, exog: pd.DataFrame, remats: list[ReMat]) -> None:
        """The variance decomposition on the latent scale: the residual is the link's (pi^2/3 logit, 1 probit).

        For the log link there is no fixed latent residual; the decomposition then uses
        ``log(1 + 1/mean)`` (Nakagawa et al. 2017's lognormal approximation).
        """
        link = self.family_.link.name
        saved = self.scale_
        if link == "logit":
            self.scale_ = float(np.pi ** 2 / 3)
        elif link == "probit":
            self.scale_ = 1.0
        else:
            mean_rate = float(np.exp(exog.to_numpy(dtype=float) @ self.fe_params_.to_numpy()).mean())
            self.scale_ = float(np.log1p(1.0 / mean_rate))
        self.latent_residual_ = self.scale_
        super()._set_variance(exog, remats)
        self.scale_ = saved


def _as_mixed(fit: GlmmFit) -> MixedFit:
    """The GLMM's estimates in the LMM's record, so both name them alike (sigma^2 = 1)."""
    return MixedFit(beta=fit.beta, beta_cov=fit.beta_cov, sigma2=1.0, theta=fit.theta, covs=fit.covs, b=fit.b,
                    b_sd=fit.b_sd, criterion=fit.criterion, llf=fit.llf, reml=False, converged=fit.converged,
                    message=fit.message, boundary=fit.boundary, n_evals=fit.n_evals, gradient_max=fit.gradient_max,
                    newton_decrement=fit.newton_decrement)


_OFFSET = re.compile(r"offset\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
_CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def _split_args(text: str) -> list[str]:
    depth, parts, cur = 0, [], ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    return [*parts, cur]


def glmer(formula: str, data: pd.DataFrame, family: str = "binomial", nAGQ: int = 1,  # noqa: N803
          offset: Any = None, weights: Any = None, link: str | None = None,
          max_evals: int = 20_000) -> GeneralizedLinearMixedModel:
    """Fit a generalised linear mixed model written as an lme4 formula (lme4's ``glmer``).

    Parameters
    ----------
    formula : str
        e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"`` (binomial with
        trials: successes and failures, each a column or an expression of columns),
        ``"use ~ age + urban + (1 | district)"``, ``"TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)"``.
    data : DataFrame
    family : {"binomial", "poisson"}
    nAGQ : int, default=1
    offset : column name of ``data`` or array, optional (on the linear-predictor scale).
    weights : column name or array, optional (prior weights; binomial: trials for a proportion).
    link : optional, the family's link (default canonical).

    Returns
    -------
    GeneralizedLinearMixedModel
        Fitted; ``aliased_columns_`` names the fixed-effect columns dropped as aliased
        (lme4's ``col.dropped``), with lme4's warning, as `lmer` does.

    Raises
    ------
    SpecError, SpecTypeError
        Before any fit, naming ``formula``, ``data``, ``family``, ``link``, ``nAGQ``, ``offset`` or ``weights``.
    """
    if not isinstance(data, pd.DataFrame):
        raise SpecTypeError("data", f"expected a pandas DataFrame, got {type(data).__name__}")
    get_family(family, link)
    if "~" not in formula:
        raise SpecError("formula", f"expected 'response ~ terms', got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    rows = data.reset_index(drop=True).copy()

    def column(value: Any, name: str) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, str):
            if value not in rows.columns:
                raise SpecError(name, f"{value!r} is not a column of data")
            return rows[value].to_numpy(dtype=float)
        arr = np.asarray(value, dtype=float).ravel()
        if len(arr) != len(rows):
            raise SpecError(name, f"expected {len(rows)} values (one per row of data), got {len(arr)}")
        return arr

    off, wt = column(offset, "offset"), column(weights, "weights")
    match = _CBIND.match(lhs)
    if match:
        if family != "binomial":
            raise SpecError("formula", "cbind(successes, failures) is a binomial response")
        args = _split_args(match.group(1))
        if len(args) != 2:
            raise SpecError("formula", f"cbind() takes two arguments (successes, failures), got {len(args)}")
        try:
            s, f = (np.asarray(rows.eval(a.strip()), dtype=float) for a in args)
        except Exception as err:   # pandas' eval names the unknown column
            raise SpecError("formula", f"the response {lhs.strip()!r} cannot be computed: {err}") from err
        for name, part in (("successes", s), ("failures", f)):
            bad = int(np.sum(part < 0))
            if bad:
                raise SpecError("formula", f"cbind()'s {name} {args[0 if name == 'successes' else 1].strip()!r} "
                                           f"are negative in {bad} row(s); both must be non-negative counts")
        trials = s + f
        rows["__glmer_y__"] = np.divide(s, trials, out=np.zeros_like(s), where=trials > 0)
        wt = trials if wt is None else wt * trials
        lhs = "__glmer_y__"
    # offset(<column or expression>) in the formula, as lme4 writes it: added to any offset= given.
    for expr in _OFFSET.findall(rhs):
        try:
            extra = np.asarray(rows.eval(expr), dtype=float).ravel()
        except Exception as err:   # pandas' eval names the unknown column
            raise SpecError("formula", f"offset({expr}) cannot be computed: {err}") from err
        off = extra if off is None else off + extra
    rhs = re.sub(r"\+\s*" + _OFFSET.pattern, "", rhs)
    rhs = re.sub(_OFFSET.pattern + r"\s*\+?", "", rhs)
    rhs = rhs if rhs.strip() else "1"
    fixed, terms = split_formula(f"{lhs} ~{rhs}")
    used = used_columns(fixed, terms, rows)
    keep = rows[used].notna().all(axis=1).to_numpy()
    rows = rows[keep].reset_index(drop=True)
    off = None if off is None else off[keep]
    wt = None if wt is None else wt[keep]
    if rows.empty:
        raise SpecError("data", f"no row has a value in every column the formula uses ({used})")
    y, X, spec = fixed_design(fixed, rows)
    remats = build_remats(terms, rows, field_name="data", residual=False)
    # As glmer: aliased columns (an empty cell of an interaction, a variable coded twice) are
    # dropped with lme4's message, or the PIRLS normal equations would be singular.
    X, spec, aliased = drop_aliased(X, spec)
    model = GeneralizedLinearMixedModel(family=family, link=link, nAGQ=nAGQ,
                                        random=" + ".join(str(t) for t in terms), max_evals=max_evals)
    model._fit_design(X, y.to_numpy(), remats, {"weights": wt, "offset": off})
    model = record_formula(model, formula, spec, y, X, int((~keep).sum()))
    model.aliased_columns_ = aliased
    return model
