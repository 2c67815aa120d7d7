"""Per-group kernels shared by MERF and the native LMM: labels to codes, per-group sums.

Both models need sums over the rows of each group (``Z_i'Z_i``, ``Z_i'r_i``...) many
times. A sparse ``K x n`` indicator matrix built once turns each such sum into one
sparse-dense product, with no Python loop over groups and no sorting of the rows
(faster than ``np.add.reduceat`` on rows sorted by group, which needs a gather first).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError

__all__ = ["ClusterSums", "cluster_codes"]


def cluster_codes(clusters: Any, n: int, field: str = "clusters") -> tuple[np.ndarray, pd.Index]:
    """Integer codes ``0..K-1`` per row and the cluster labels they stand for."""
    if isinstance(clusters, pd.DataFrame) and clusters.shape[1] == 1:
        clusters = clusters.iloc[:, 0]
    values = clusters.to_numpy() if isinstance(clusters, (pd.Series, pd.Index, pd.DataFrame)) else np.asarray(clusters)
    if values.ndim == 2 and values.shape[1] > 1:
        names = (f" ({', '.join(map(repr, clusters.columns))})" if isinstance(clusters, pd.DataFrame) else "")
        raise SpecError(field, f"one grouping factor is supported, got {values.shape[1]} columns{names}. For "
                               "several factors say how they enter with random=, in lme4's syntax: "
                               "'(1 | subject) + (1 | item)' (crossed), '(1 | school/class)' (nested)")
    if values.ndim != 1:
        raise SpecError(field, f"expected one label per row (1-D), got shape {values.shape}")
    if len(values) != n:
        raise SpecError(field, f"has {len(values)} labels but X has {n} rows")
    if values.dtype.kind in "iu" and n:
        # Integer labels cannot be missing, and sort as factorize(sort=True) sorts them. Small
        # non-negative ones (the usual 0..K-1) are coded by counting, without a sort.
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 4 * n:
            present = np.bincount(values, minlength=high + 1) > 0
            codes = (np.cumsum(present) - 1)[values]
            return codes.astype(np.int64), pd.Index(np.flatnonzero(present).astype(values.dtype))
        labels, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), pd.Index(labels)
    missing = pd.isna(values)
    if missing.any():
        raise SpecError(field, f"{int(missing.sum())} rows have a missing (NaN/None) cluster label")
    try:
        codes, labels = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, labels = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), pd.Index(labels)


class ClusterSums:
    """Per-cluster sums of row-wise quantities: ``sums(values)[k] = values[codes == k].sum(0)``."""

    def __init__(self, codes: np.ndarray, n_clusters: int) -> None:
        from scipy import sparse
        n = len(codes)
        self.counts = np.bincount(codes, minlength=n_clusters)
        self._indicator = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_clusters, n))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(len(values), -1)
        return np.asarray(self._indicator @ flat).reshape((self._indicator.shape[0],) + values.shape[1:])


def conditional_sd(Z: np.ndarray, codes: np.ndarray, n_clusters: int, cov_re: np.ndarray,
                   sigma2: float) -> np.ndarray:
    """Conditional standard deviations of each cluster's random effects, ``(K, q)``.

    The covariance of ``b_i`` given the data (at the estimated variances) is
    ``(Z_i'Z_i / sigma2 + D^-1)^-1``, written as ``sigma2 D (sigma2 I + Z_i'Z_i D)^-1`` so
    that a singular ``D`` (a boundary fit) needs no inverse. This is lme4's
    ``ranef(fit, condVar = TRUE)`` and what the interval of a random effect is made from.
    """
    q = Z.shape[1]
    G = ClusterSums(codes, n_clusters)(Z[:, :, None] * Z[:, None, :])          # (K, q, q) Z_i'Z_i
    M = sigma2 * np.eye(q) + G @ cov_re                                        # (K, q, q)
    # cov_i = sigma2 D M_i^-1; only the diagonal is needed.
    cov = sigma2 * np.einsum("ij,kjl->kil", cov_re, np.linalg.inv(M))
    return np.sqrt(np.clip(np.einsum("kii->ki", cov), 0.0, None))
