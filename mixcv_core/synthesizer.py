"""Synthetic grouped regression data with real random intercepts and slopes.

``y_ij = 1 + x_ij' beta + b0_j + b1_j' z_ij + e_ij`` for row ``i`` of group ``j``, with
``b_j ~ N(0, diag(sd_intercept^2, sd_slope^2 ...))`` and ``e ~ N(0, noise_level^2)``.
Unlike flexcv's generator (whose "slopes" never enter y), the slope columns here do
have group-specific effects, so a mixed model has something to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constraints import Integer
from .errors import SpecError

__all__ = ["generate_regression"]


def generate_regression(m_groups: int, n_per_group: int, n_slopes: int = 1, noise_level: float = 0.1,
                        random_seed: int = 42, n_features: int = 5, sd_intercept: float = 1.0,
                        sd_slope: float = 0.5) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """Generate ``m_groups * n_per_group`` rows of grouped data.

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
    >>> X, y, group, slopes = generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
    >>> X.shape, group.nunique(), list(slopes.columns)
    ((300, 5), 3, ['X0'])
    """
    for name, value, low in (("m_groups", m_groups, 2), ("n_per_group", n_per_group, 1),
                             ("n_features", n_features, 1), ("n_slopes", n_slopes, 0)):
        Integer(low).check(value, name)
    if n_slopes > n_features:
        raise SpecError("n_slopes", f"cannot exceed n_features ({n_features}), got {n_slopes}")
    if not noise_level >= 0:
        raise SpecError("noise_level", f"must be >= 0, got {noise_level!r}")
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
