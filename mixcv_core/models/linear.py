"""Ordinary least squares with standard errors, as a scikit-learn estimator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _rows

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
        D: _rows.Tall = A
        if self.fit_intercept:
            D = _rows.WithIntercept(A)
            names = ["Intercept"] + names
        n, p = D.shape
        # Least squares through the R of a QR factorisation of [1 X y], read a block of rows
        # at a time (`_rows.r_factor`): no copy of X with its intercept, nor LAPACK's own
        # copy of that (134 MB each on an 800,000-row fold). With [X y] = QR,
        # ||X b - y|| differs from ||R_X b - R_Xy|| by a constant: the same solutions and
        # the same singular values, so numpy's lstsq on R_X gives the minimum-norm solution
        # and the rank it gives on X (with its default cut-off for X's shape, eps max(n, p)).
        R = _rows.r_factor(D, yv)
        RX = R[:p, :p]
        cut = np.finfo(float).eps * max(n, p)
        beta, _, rank, _ = np.linalg.lstsq(R[:, :p], R[:, p], rcond=cut)
        if rank == p:
            # One step of refinement by the corrected seminormal equations (Bjorck 1996,
            # Numerical Methods for Least Squares Problems, sec. 6.6.5): R_X'R_X d = X'(y - X b).
            # Householder QR by blocks is backward stable but lost up to a digit against
            # LAPACK's QR of the whole matrix (1e-13 vs 1e-14 relative at condition 7e3);
            # this step makes it more accurate than that (1e-15). Rank-deficient X keeps the
            # minimum-norm solution, which the step would leave.
            c = _rows.rmatvec(D, yv - _rows.matvec(D, beta))
            beta = beta + linalg.solve_triangular(RX, linalg.solve_triangular(RX, c, trans="T"))
        resid = yv - _rows.matvec(D, beta)
        dof = max(len(yv) - rank, 1)
        self.scale_ = float(resid @ resid / dof)
        # (X'X)^+ = R_X^+ R_X^+' (X'X = R_X'R_X), from R_X itself: forming X'X squares the
        # condition number, and pinv(X'X) cut off Longley's real singular values (condition
        # 5e9), its standard errors off by 100 %. pinv rather than inv: collinear features
        # give finite (if uninformative) errors; the cut-off is lstsq's, so the columns it
        # treats as dependent are the ones the degrees of freedom count as such.
        P = np.linalg.pinv(RX, rcond=cut)
        cov = self.scale_ * (P @ P.T)
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
