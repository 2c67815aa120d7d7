"""Per-group kernels shared by MERF and the native LMM: labels to codes, per-group sums.

Both models need sums over the rows of each group (``Z_i'Z_i``, ``Z_i'r_i``...) many
times. Sorting the rows by group once and reducing contiguous segments with
``np.add.reduceat`` does that in one vectorised call per quantity, with no Python
loop over groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError

__all__ = ["ClusterSums", "cluster_codes"]


def cluster_codes(clusters: Any, n: int, field: str = "clusters") -> tuple[np.ndarray, pd.Index]:
    """Integer codes ``0..K-1`` per row and the cluster labels they stand for."""
    values = clusters.to_numpy() if isinstance(clusters, (pd.Series, pd.Index)) else np.asarray(clusters)
    if values.ndim != 1:
        raise SpecError(field, f"expected one label per row (1-D), got shape {values.shape}")
    if len(values) != n:
        raise SpecError(field, f"has {len(values)} labels but X has {n} rows")
    missing = pd.isna(values)
    if missing.any():
        raise SpecError(field, f"{int(missing.sum())} rows have a missing (NaN/None) cluster label")
    try:
        codes, labels = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed, unorderable types
        codes, labels = pd.factorize(values, sort=False)
    return codes.astype(np.int64), pd.Index(labels)


class ClusterSums:
    """Per-cluster sums of row-wise quantities, by one sort and ``np.add.reduceat``."""

    def __init__(self, codes: np.ndarray, n_clusters: int) -> None:
        self.order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=n_clusters)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.counts = counts

    def __call__(self, values: np.ndarray) -> np.ndarray:
        # Every cluster has at least one row (codes come from factorize), so reduceat
        # never meets an empty segment.
        return np.add.reduceat(values[self.order], self.starts, axis=0)
