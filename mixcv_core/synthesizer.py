"""Synthetic grouped regression data: flexcv's generator and mixcv's richer one.

`generate_regression` keeps flexcv's signature and meaning, so flexcv code (and the
seed guide) gets the data it always got: ``n_samples`` rows of ``m_features`` integer
features in ``n_groups`` groups, with random *intercepts* only; the "random slopes" it
returns are columns picked from ``X`` that carry no group-specific effect in ``y``.

`generate_grouped_regression` is mixcv's own: ``m_groups * n_per_group`` rows whose
slope columns do have group-specific effects,
``y_ij = 1 + x_ij' beta + b0_j + b1_j' z_ij + e_ij`` with
``b_j ~ N(0, diag(sd_intercept^2, sd_slope^2 ...))`` and ``e ~ N(0, noise_level^2)``,
so a mixed model has something to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constraints import Integer
from .errors import SpecError

__all__ = ["generate_regression", "generate_grouped_regression"]


def _check(counts: dict[str, tuple[int, int]], slopes: tuple[str, int], noise_level: float) -> None:
    """Counts (``name: (value, lowest)``), ``n_slopes`` against the number of features, the noise."""
    for name, (value, low) in counts.items():
        Integer(low).check(value, name)
    features, n_features = slopes
    if counts["n_slopes"][0] > n_features:
        raise SpecError("n_slopes", f"cannot exceed {features} ({n_features}), got {counts['n_slopes'][0]}")
    if not noise_level >= 0:
        raise SpecError("noise_level", f"must be >= 0, got {noise_level!r}")


def generate_regression(m_features: int, n_samples: int, n_groups: int = 5, n_slopes: int = 1,
                        random_seed: int = 42, noise_level: float = 0.1, fixed_random_ratio: float = 0.01
                        ) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """flexcv's generator: ``n_samples`` rows, ``m_features`` features, ``n_groups`` groups.

    The model is ``y_i = 1 + x_i' beta + b_{g(i)} + e_i`` with integer features
    ``x ~ U{-10..9}``, fixed effects ``beta ~ U(0, 1) * fixed_random_ratio``, group labels
    drawn uniformly (so a group may be absent from a small sample), random intercepts
    ``b ~ U(0.9, 1.0)`` and ``e ~ N(0, noise_level^2)``. The draws are made in flexcv's
    order, so a seed gives flexcv's numbers. For data whose slopes matter, see
    `generate_grouped_regression`.

    Parameters
    ----------
    m_features : int
        Number of feature columns ``X0 .. X{m_features-1}`` (>= 1).
    n_samples : int
        Number of rows (>= 2).
    n_groups : int, default=5
        Number of group labels ``0 .. n_groups-1`` to draw from (>= 1).
    n_slopes : int, default=1
        How many feature columns to return as "random slopes" (picked at random from
        ``X``; ``0 <= n_slopes <= m_features``). They get no random effect in ``y``.
    random_seed : int, default=42
    noise_level : float, default=0.1
        Standard deviation of the residual noise.
    fixed_random_ratio : float, default=0.01
        Scale of the fixed-effect coefficients relative to the random intercepts.

    Returns
    -------
    X : DataFrame of int
    y : Series named "y"
    group : Series named "group"
    random_slopes : DataFrame
        ``n_slopes`` columns of ``X``.

    Examples
    --------
    >>> X, y, group, random_slopes = generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
    >>> X.shape, len(y), group.nunique(), random_slopes.shape
    ((100, 3), 100, 5, (100, 1))
    """
    _check({"m_features": (m_features, 1), "n_samples": (n_samples, 2), "n_groups": (n_groups, 1),
            "n_slopes": (n_slopes, 0)}, ("m_features", m_features), noise_level)
    rng = np.random.default_rng(random_seed)
    X = rng.integers(-10, 10, (n_samples, m_features))
    beta = rng.random(m_features) * fixed_random_ratio
    noise = rng.standard_normal(n_samples) * noise_level
    group = rng.integers(0, n_groups, n_samples)
    intercepts = rng.uniform(0.9, 1.0, size=n_groups)
    y = 1 + X @ beta + intercepts[group] + noise
    X_df = pd.DataFrame(X, columns=[f"X{j}" for j in range(m_features)])
    slope_columns = rng.choice(X_df.columns.tolist(), size=n_slopes, replace=False)
    return X_df, pd.Series(y, name="y"), pd.Series(group, name="group"), X_df[list(slope_columns)]


def generate_grouped_regression(m_groups: int, n_per_group: int, n_slopes: int = 1, noise_level: float = 0.1,
                                random_seed: int = 42, n_features: int = 5, sd_intercept: float = 1.0,
                                sd_slope: float = 0.5) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """Generate ``m_groups * n_per_group`` rows of grouped data with real random slopes.

    Parameters
    ----------
    m_groups : int
        Number of groups (>= 2).
    n_per_group : int
        Rows per group (>= 1).
    n_slopes : int, default=1
        How many of the features also get a random slope (the first ``n_slopes``).
    noise_level : float, default=0.1
        Residual standard deviation.
    random_seed : int, default=42
    n_features : int, default=5
        Fixed-effects features ``X0 .. X{n_features-1}``, standard normal.
    sd_intercept, sd_slope : float
        Standard deviations of the random intercepts and slopes.

    Returns
    -------
    X : DataFrame
        Features.
    y : Series named "y"
    group : Series named "group"
        Group labels ``0 .. m_groups-1``.
    random_slopes : DataFrame
        The random-slope columns, cut from ``X``.

    Examples
    --------
    >>> X, y, group, slopes = generate_grouped_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
    >>> X.shape, group.nunique(), list(slopes.columns)
    ((300, 5), 3, ['X0'])
    """
    _check({"m_groups": (m_groups, 2), "n_per_group": (n_per_group, 1), "n_features": (n_features, 1),
            "n_slopes": (n_slopes, 0)}, ("n_features", n_features), noise_level)
    rng = np.random.default_rng(random_seed)
    n = m_groups * n_per_group
    group = np.repeat(np.arange(m_groups), n_per_group)
    X = rng.standard_normal((n, n_features))
    beta = rng.uniform(0.5, 2.0, n_features) * rng.choice([-1.0, 1.0], n_features)
    b0 = rng.normal(0.0, sd_intercept, m_groups)
    b1 = rng.normal(0.0, sd_slope, (m_groups, n_slopes))
    random_part = b0[group] + np.einsum("ij,ij->i", X[:, :n_slopes], b1[group])
    y = 1.0 + X @ beta + random_part + rng.normal(0.0, noise_level, n)
    X_df = pd.DataFrame(X, columns=[f"X{j}" for j in range(n_features)])
    return (X_df, pd.Series(y, name="y"), pd.Series(group, name="group"),
            X_df.iloc[:, :n_slopes].copy())
