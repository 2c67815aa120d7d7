"""Ordinary least squares with standard errors, as a scikit-learn estimator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LinearModel"]


class LinearModel(RegressorMixin, BaseEstimator):
    """Ordinary least squares with an intercept, with standard errors.

    Parameters
    ----------
    fit_intercept : bool, default=True

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    params_ : pandas.Series
        Intercept (if fitted) and coefficients, indexed by feature name.
    bse_ : pandas.Series
        Their standard errors, ``sqrt(diag(sigma^2 (X'X)^-1))``.
    scale_ : float
        Residual variance with ``n - p`` degrees of freedom.

    Examples
    --------
    >>> X = pd.DataFrame({"a": [0.0, 1, 2, 3]}); y = 1 + 2 * X["a"]
    >>> LinearModel().fit(X, y).params_.round(6).tolist()
    [1.0, 2.0]
    """

    def __init__(self, fit_intercept: bool = True) -> None:
        self.fit_intercept = fit_intercept

    def fit(self, X: Any, y: Any) -> LinearModel:
        """Fit by least squares.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        """
        # scikit-learn's own checks: finite numeric 2-D X, 1-D y of the same length,
        # n_features_in_ and feature_names_in_ set, clear errors for sparse or empty input.
        A, yv = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{j}" for j in range(A.shape[1])])]
        if self.fit_intercept:
            A = np.column_stack([np.ones(len(A)), A])
            names = ["Intercept"] + names
        beta, _, rank, _ = np.linalg.lstsq(A, yv, rcond=None)
        resid = yv - A @ beta
        dof = max(len(yv) - rank, 1)
        self.scale_ = float(resid @ resid / dof)
        # pinv rather than inv: collinear features give finite (if uninformative) errors.
        cov = self.scale_ * np.linalg.pinv(A.T @ A)
        self.params_ = pd.Series(beta, index=names, name="estimate")
        self.bse_ = pd.Series(np.sqrt(np.clip(np.diag(cov), 0, None)), index=names, name="std_error")
        self.intercept_ = float(beta[0]) if self.fit_intercept else 0.0
        self.coef_ = beta[1:] if self.fit_intercept else beta
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predict ``X @ coef_ + intercept_``."""
        check_is_fitted(self, "coef_")
        A = validate_data(self, X, reset=False, dtype=np.float64)
        return A @ self.coef_ + self.intercept_
