"""Cholesky factorisation, solves and inverses of a stack of small matrices, vectorised over the stack.

The LMM criterion factors one ``q x q`` matrix per group at every evaluation, with
``q`` (random effects per group) a handful and the number of groups in the thousands.
``np.linalg.cholesky`` on a ``(K, q, q)`` stack calls LAPACK once per matrix, and that
per-call overhead dominates for ``q <= 3``. Here the textbook algorithms run with their
loops over the ``q`` rows and columns and every step done for all ``K`` matrices at
once, so the cost is ``O(q^3)`` numpy operations on arrays of length ``K``: no loop over
groups. For larger ``q`` the per-matrix overhead no longer dominates and LAPACK is used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cholesky", "cho_solve", "cho_inverse", "logdet"]

#: Above this size the stack goes to LAPACK (np.linalg), which is then as fast.
_SMALL = 4


def cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors ``L`` with ``L L' = A`` of a ``(K, q, q)`` stack.

    Raises
    ------
    numpy.linalg.LinAlgError
        Some matrix is not positive definite.
    """
    q = A.shape[-1]
    if q > _SMALL:
        return np.linalg.cholesky(A)
    L = np.zeros_like(A)
    for j in range(q):
        d = A[:, j, j] - np.einsum("kj,kj->k", L[:, j, :j], L[:, j, :j])
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        ljj = np.sqrt(d)
        L[:, j, j] = ljj
        for i in range(j + 1, q):
            L[:, i, j] = (A[:, i, j] - np.einsum("kj,kj->k", L[:, i, :j], L[:, j, :j])) / ljj
    return L


def cho_solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``A X = B`` for each matrix of the stack, given its Cholesky factor ``L``.

    ``L``: ``(K, q, q)``; ``B``: ``(K, q, m)``. Forward then back substitution.
    """
    q = L.shape[-1]
    if q > _SMALL:
        return np.linalg.solve(L @ np.swapaxes(L, 1, 2), B)
    Y = np.empty_like(B)
    for i in range(q):   # L Y = B
        acc = B[:, i, :] - np.einsum("kj,kjm->km", L[:, i, :i], Y[:, :i, :])
        Y[:, i, :] = acc / L[:, i, i, None]
    X = np.empty_like(B)
    for i in range(q - 1, -1, -1):   # L' X = Y
        acc = Y[:, i, :] - np.einsum("kj,kjm->km", L[:, i + 1:, i], X[:, i + 1:, :])
        X[:, i, :] = acc / L[:, i, i, None]
    return X


def cho_inverse(L: np.ndarray) -> np.ndarray:
    """``A^-1`` for each matrix of the stack, given its Cholesky factor ``L``."""
    K, q, _ = L.shape
    return cho_solve(L, np.broadcast_to(np.eye(q), (K, q, q)).copy())


def logdet(L: np.ndarray) -> float:
    """``sum_k log|A_k|`` from the Cholesky factors of the stack."""
    return float(2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
