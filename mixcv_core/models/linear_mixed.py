"""The linear mixed model as a scikit-learn estimator, on the native solver or statsmodels.

The estimator only adapts: it checks and shapes the inputs, hands them to the solver
(`mixcv_core.models.lmm`, lme4's profiled criterion) or to statsmodels' ``MixedLM``,
and exposes the estimates under one set of names whichever backend ran.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ..errors import ConvergenceWarning, SpecError, SpecTypeError
from ._base import NUMERIC_HINT, MixedEffectsRegressor, as_frame, non_numeric
from ._groups import cluster_codes, conditional_sd
from .lmm import fit_lmm, relative_factor, singular_components
from .lmm_summary import LMMSummary, variance_decomposition

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
    return pd.DataFrame(out, columns=["Intercept", *frame.columns], index=frame.index, copy=False)


class LinearMixedEffectsModel(MixedEffectsRegressor):
    """Linear mixed model: fixed effects for every feature, a random intercept and random slopes per group.

    ``y = X beta + Z b_g + e``, ``b_g ~ N(0, D)``, ``e ~ N(0, sigma^2)``, fitted by REML
    (default) or ML.

    Parameters
    ----------
    reml : bool, default=True
    predict_known_groups : bool, default=True
        Rows whose group was seen in training are predicted with that group's random
        effects (BLUPs); rows of unseen groups always get the fixed effects alone.
    backend : {"native", "statsmodels"}, default="native"
        ``"native"``: mixcv's solver of lme4's profiled criterion (`mixcv_core.lmm`),
        which agrees with lme4 and converges where statsmodels often does not;
        ``"statsmodels"``: statsmodels' ``MixedLM``.
    method : str or list of str, optional
        Optimiser(s) passed to ``MixedLM.fit`` (statsmodels backend only).
    max_evals : int, default=10000
        Criterion evaluations at most (native backend); a fit that reaches the limit is
        reported as not converged.

    Attributes
    ----------
    fe_params_ : pandas.Series
        Fixed effects by column name (``Intercept`` first).
    bse_ : pandas.Series
        Their standard errors.
    cov_re_ : pandas.DataFrame
        Covariance matrix ``D`` of the random effects.
    scale_ : float
        Residual variance ``sigma^2``.
    random_effects_ : pandas.DataFrame
        One row per training group: its predicted random effects.
    converged_ : bool
        True only at a certified optimum (native backend: the exact gradient and a
        Hessian show a minimum, no descent out of a boundary, Newton decrement below
        1e-8); False otherwise, with a `ConvergenceWarning`.
    convergence_ : str
        How the fit ended, in words: ``"optimum"``, ``"optimum on the boundary (a singular
        covariance)"``, ``"stopped at the limit of N criterion evaluations"``, ...
    boundary_ : list of str
        Random effects at which the fit is singular, as lme4's ``isSingular``: zero
        variance, or a correlation of +-1 with the effects before them (a boundary fit;
        reported with a warning, not an error).
    llf_ : float
        Log-likelihood (the REML log-likelihood when ``reml=True``).
    reml_criterion_ : float
        ``-2 * llf_`` of a REML fit, as lme4's ``REMLcrit`` (NaN for ML fits).
    n_evals_ : int or None
        Criterion evaluations the optimiser used.
    icc_ : float
        Intraclass correlation: the random effects' share of the variance the fixed effects
        leave, ``mean(z'Dz) / (mean(z'Dz) + sigma^2)`` over the fitting rows (Nakagawa et al.
        2017; with a random intercept only, ``tau^2 / (tau^2 + sigma^2)``).
    variance_decomposition_ : pandas.DataFrame
        Variance of the fixed part, the random effects and the residual, and each one's share
        (`mixcv_core.models.lmm_summary.variance_decomposition`).
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

    _backends = ("native", "statsmodels")
    #: Fits ``y ~ 1 + (1 | g)`` when X has no columns (the engine reads this).
    intercept_only_ok = True
    #: Constant or collinear features cannot be fitted (the engine checks before any work).
    needs_full_rank = True

    def __init__(self, reml: bool = True, predict_known_groups: bool = True,
                 backend: str = "native", method: str | Sequence[str] | None = None,
                 max_evals: int = 10_000) -> None:
        self.reml = reml
        self.predict_known_groups = predict_known_groups
        self.backend = backend
        self.method = method
        self.max_evals = max_evals

    def fit(self, X: Any, y: Any, groups: Any, slopes: Any = None, **fit_kwargs: Any) -> LinearMixedEffectsModel:
        """Fit by REML (or ML).

        Parameters
        ----------
        X : DataFrame or array of shape (n, p)
            Numeric fixed-effects features; may have no columns (the null model,
            ``y ~ 1 + (1 | g)``).
        y : array-like of shape (n,)
        groups : array-like of shape (n,)
            One grouping factor (a label per row).
        slopes : list of column names of X, or array-like of shape (n, s), optional
            Random slopes (a random intercept is always included).

        Raises
        ------
        SpecError, SpecTypeError
            Naming ``X``, ``y``, ``groups`` or ``slopes``: non-numeric columns, lengths that
            differ, more than one grouping factor, a constant slope, collinear features.
        """
        if self.backend not in self._backends:
            raise SpecError("backend", f"unknown LMM backend {self.backend!r}; choose one of {self._backends}")
        if groups is None:
            raise SpecError("groups", "LinearMixedEffectsModel needs groups")
        Xf = as_frame(X).reset_index(drop=True)
        bad = non_numeric(Xf)
        if bad:
            raise SpecTypeError("X", f"features must be numeric; {', '.join(bad)} are not. {NUMERIC_HINT}")
        Z = self._slopes(Xf, slopes).reset_index(drop=True)
        bad = non_numeric(Z)
        if bad:
            raise SpecTypeError("slopes", f"random slopes must be numeric; {', '.join(bad)} are not. {NUMERIC_HINT}")
        try:
            yv = np.asarray(y, dtype=float).ravel()
        except (TypeError, ValueError):
            raise SpecTypeError("y", "the target must be numeric") from None
        codes, labels = cluster_codes(groups, len(yv), field="groups")
        if len(Xf) != len(yv):
            raise SpecError("X", f"X has {len(Xf)} rows but y has {len(yv)}")
        constant = [c for c in Z.columns if np.ptp(Z[c].to_numpy(dtype=float)) == 0]
        if constant:
            raise SpecError("slopes", f"the slope column(s) {constant} are constant: a random slope needs values that "
                                      "vary (a constant is already the random intercept)")
        exog, exog_re = _with_intercept(Xf), _with_intercept(Z)
        rank = np.linalg.matrix_rank(exog.to_numpy())
        if rank < exog.shape[1]:
            raise SpecError("X", f"the fixed-effects design (intercept + {Xf.shape[1]} features) has rank {rank}: "
                                 "some columns are collinear or constant; drop them")
        if self.backend == "native":
            self._fit_native(exog, exog_re, yv, codes, labels)
        else:
            self._fit_statsmodels(exog, exog_re, yv, labels[codes], fit_kwargs)
        if not self.converged_:
            warnings.warn(ConvergenceWarning(
                f"LinearMixedEffectsModel ({self.backend}) did not converge; estimates may be wrong"
                + (": " + "; ".join(self.fit_warnings_[:2]) if self.fit_warnings_ else "")), stacklevel=2)
        if self.boundary_:
            warnings.warn(f"boundary (singular) fit: the random effects {self.boundary_} have zero variance or are "
                          "perfectly correlated with the ones before them; the data do not support that much "
                          "random-effects structure", UserWarning, stacklevel=2)
        self.n_features_in_ = Xf.shape[1]
        self.feature_names_in_ = np.asarray(Xf.columns, dtype=object)
        self.slope_names_ = list(Z.columns)
        self.response_name_ = str(y.name) if isinstance(y, pd.Series) and y.name is not None else "y"
        self.groups_name_ = (str(groups.name) if isinstance(groups, pd.Series) and groups.name is not None
                             else "group")
        self.n_obs_, self.n_groups_ = len(yv), len(labels)
        # The variance decomposition is a property of the fitting rows: keep it, not them.
        self.variance_decomposition_ = variance_decomposition(
            exog.to_numpy(dtype=float) @ self.fe_params_.to_numpy(), exog_re.to_numpy(dtype=float),
            self.cov_re_.to_numpy(), self.scale_)
        v = self.variance_decomposition_["variance"]
        self.icc_ = float(v["random effects"] / (v["random effects"] + v["residual"]))
        sd = conditional_sd(exog_re.to_numpy(dtype=float), codes, len(labels), self.cov_re_.to_numpy(), self.scale_)
        self.random_effects_sd_ = pd.DataFrame(sd, index=pd.Index(labels, name="group"),
                                               columns=self.random_effects_.columns).reindex(self.random_effects_.index)
        return self

    def summary(self, confidence: float = 0.95) -> LMMSummary:
        """The fit as a researcher reports it, like lme4's ``summary``: fixed effects with
        standard errors, t values and Wald confidence intervals; random-effect standard
        deviations and correlations; the residual; the criterion; the variance
        decomposition (ICC, marginal and conditional R²); convergence and boundary status.

        Prints as text; displays as HTML in a notebook.
        """
        check_is_fitted(self, "fe_params_")
        from scipy.stats import norm
        z = float(norm.ppf(0.5 + confidence / 2))
        fe, se = self.fe_params_, self.bse_
        fixed = pd.DataFrame({"estimate": fe, "std_error": se, "t_value": fe / se,
                              "ci_low": fe - z * se, "ci_high": fe + z * se})
        fixed.index = ["(Intercept)" if i == "Intercept" else i for i in fixed.index]
        cov = self.cov_re_.to_numpy()
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sd, sd)
        names = ["(Intercept)" if n == "Intercept" else str(n) for n in self.cov_re_.index]
        random = pd.DataFrame({"variance": np.diag(cov), "std_dev": sd}, index=names)
        for j, name in enumerate(names[:-1]):
            random[f"corr_{name}"] = corr[:, j]
        fe_terms = " + ".join(str(c) for c in self.feature_names_in_) or "1"
        re_terms = " + ".join(["1"] + [str(c) for c in self.slope_names_])
        crit = self.reml_criterion_ if self.reml else -2.0 * self.llf_
        return LMMSummary(
            title=f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} "
                  f"(mixcv, {self.backend} solver)",
            formula=f"{self.response_name_} ~ {fe_terms} + ({re_terms} | {self.groups_name_})",
            fixed=fixed, random=random, residual_variance=self.scale_, decomposition=self.variance_decomposition_,
            icc=self.icc_, criterion_name="REML criterion" if self.reml else "-2 log-likelihood", criterion=crit,
            loglik=self.llf_, n_obs=self.n_obs_, n_groups=self.n_groups_, groups_name=self.groups_name_,
            convergence=self.convergence_, converged=self.converged_, boundary=list(self.boundary_),
            confidence=confidence)

    def _fit_native(self, exog: pd.DataFrame, exog_re: pd.DataFrame, y: np.ndarray, codes: np.ndarray,
                    labels: pd.Index) -> None:
        fit = fit_lmm(exog.to_numpy(dtype=float), y, exog_re.to_numpy(dtype=float), codes, len(labels),
                      reml=self.reml, max_evals=self.max_evals)
        fe_names, re_names = list(exog.columns), list(exog_re.columns)
        self.fe_params_ = pd.Series(fit.beta, index=fe_names, name="fe_params")
        self.bse_ = pd.Series(np.sqrt(np.diag(fit.beta_cov)), index=fe_names, name="std_error")
        self.cov_re_ = pd.DataFrame(fit.cov_re, index=re_names, columns=re_names)
        self.scale_ = fit.sigma2
        self.random_effects_ = pd.DataFrame(fit.b, index=pd.Index(labels, name="group"), columns=re_names)
        self.llf_ = fit.llf
        self.reml_criterion_ = fit.criterion if self.reml else float("nan")
        self.converged_ = fit.converged
        self.convergence_ = fit.message
        self.boundary_ = [re_names[j] for j in fit.boundary]
        self.n_evals_: int | None = fit.n_evals
        self.theta_ = fit.theta
        self.fit_warnings_ = [] if fit.converged else [fit.message]
        self.result_ = fit

    def _fit_statsmodels(self, exog: pd.DataFrame, exog_re: pd.DataFrame, y: np.ndarray, g: np.ndarray,
                         fit_kwargs: dict) -> None:
        from statsmodels.regression.mixed_linear_model import MixedLM
        from statsmodels.tools.sm_exceptions import ConvergenceWarning as SMConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = MixedLM(y, exog, groups=g, exog_re=exog_re)
            kwargs = dict(fit_kwargs)
            if self.method is not None:
                kwargs.setdefault("method", self.method)
            else:
                # statsmodels' default BFGS tolerance stops short of the REML optimum of
                # the variance components (0.5% on 2,400 rows); 1e-8 reaches it at little
                # cost, while 1e-10 is beyond what BFGS can certify.
                kwargs.setdefault("gtol", 1e-8)
            result = model.fit(reml=self.reml, **kwargs)
        self.fit_warnings_ = [f"{w.category.__name__}: {w.message}" for w in caught]
        not_converged = any(issubclass(w.category, SMConvergenceWarning) for w in caught)
        self.converged_ = bool(getattr(result, "converged", True)) and not not_converged
        self.convergence_ = ("statsmodels reports convergence" if self.converged_
                             else "statsmodels did not converge")
        re_names, fe_names = list(exog_re.columns), list(exog.columns)
        self.fe_params_ = pd.Series(np.asarray(result.fe_params), index=fe_names, name="fe_params")
        self.bse_ = pd.Series(np.asarray(result.bse_fe), index=fe_names, name="std_error")
        self.cov_re_ = pd.DataFrame(np.asarray(result.cov_re), index=re_names, columns=re_names)
        self.scale_ = float(result.scale)
        re = result.random_effects
        labels = list(re.keys())
        self.random_effects_ = pd.DataFrame(np.vstack([np.asarray(re[k], dtype=float) for k in labels]),
                                            index=pd.Index(labels, name="group"), columns=re_names)
        self.llf_ = float(result.llf)
        self.reml_criterion_ = -2.0 * self.llf_ if self.reml else float("nan")
        lam = relative_factor(self.cov_re_.to_numpy() / self.scale_)
        self.boundary_ = [re_names[j] for j in singular_components(lam)]
        retvals = getattr(result, "mle_retvals", None) or {}
        n_evals = retvals.get("fcalls") or retvals.get("funcalls")
        self.n_evals_ = None if n_evals is None else int(n_evals)
        self.result_ = result

    def predict(self, X, groups=None, slopes=None) -> np.ndarray:
        """Predict; rows of groups seen in training get their random effects (if enabled)."""
        check_is_fitted(self, "fe_params_")
        Xf = as_frame(X).reset_index(drop=True)
        fixed = self.fe_params_.iloc[0] + Xf.to_numpy(dtype=float) @ self.fe_params_.iloc[1:].to_numpy()
        if groups is None or not self.predict_known_groups:
            return fixed
        Z = self._slopes(Xf, slopes if slopes is not None else (self.slope_names_ or None))
        design = np.column_stack([np.ones(len(Xf)), Z.to_numpy(dtype=float)])
        # Vectorised BLUP lookup: unseen groups get position -1 and contribute zero.
        pos = self.random_effects_.index.get_indexer(pd.Index(np.asarray(groups)))
        B = np.vstack([self.random_effects_.to_numpy(), np.zeros((1, design.shape[1]))])
        return fixed + np.einsum("ij,ij->i", design, B[pos])
