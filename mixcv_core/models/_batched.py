"""Linear algebra on a stack of small matrices, vectorised over the stack.

The LMM criterion works with one ``q x q`` matrix per group at every evaluation, with
``q`` (random effects per group) a handful and the number of groups in the thousands.
Two costs dominate such stacks in numpy, and both are avoided here:

- ``np.linalg`` on a ``(K, q, q)`` stack calls LAPACK once per matrix; that per-call
  overhead is most of the time for ``q <= 3``. `cholesky` and `cho_solve` run the
  textbook algorithms with their loops over the ``q`` rows and columns and every step
  done for all ``K`` matrices at once: ``O(q^3)`` array operations of length ``K``, no
  loop over groups. Past ``q = 4`` LAPACK is as fast and is used.
- A stacked ``matmul`` or ``einsum`` pays per matrix too. A product with one *constant*
  matrix (`right`, `left`) or a sum of products over the stack (`sum_products`) is a
  single BLAS call once the stack is laid out as one tall matrix.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cholesky", "cho_solve", "cho_inverse", "logdet", "right", "left", "sum_products"]

#: Above this size the stack goes to LAPACK (np.linalg), which is then as fast.
_SMALL = 4


def right(M: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``M_k C`` for every k: ``(K, a, b) @ (b, c) -> (K, a, c)`` as one BLAS call."""
    K, a, b = M.shape
    return (M.reshape(K * a, b) @ C).reshape(K, a, C.shape[1])


def left(C: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``C M_k`` for every k: ``(a, b) @ (K, b, c) -> (K, a, c)`` as one BLAS call."""
    K, b, c = M.shape
    out = np.swapaxes(M, 1, 2).reshape(K * c, b) @ C.T        # rows: (k, column of M_k)
    return np.swapaxes(out.reshape(K, c, C.shape[0]), 1, 2)


def sum_products(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_k A_k B_k`` for ``(K, a, b)`` and ``(K, b, c)`` stacks, as one BLAS call."""
    K, a, b = A.shape
    return np.swapaxes(A, 0, 1).reshape(a, K * b) @ B.reshape(K * b, B.shape[2])


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
        d = A[:, j, j].copy()
        for m in range(j):
            d -= L[:, j, m] ** 2
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        ljj = np.sqrt(d)
        L[:, j, j] = ljj
        for i in range(j + 1, q):
            acc = A[:, i, j].copy()
            for m in range(j):
                acc -= L[:, i, m] * L[:, j, m]
            L[:, i, j] = acc / ljj
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
        acc = B[:, i, :].copy()
        for m in range(i):
            acc -= L[:, i, m, None] * Y[:, m, :]
        Y[:, i, :] = acc / L[:, i, i, None]
    X = np.empty_like(B)
    for i in range(q - 1, -1, -1):   # L' X = Y
        acc = Y[:, i, :].copy()
        for m in range(i + 1, q):
            acc -= L[:, m, i, None] * X[:, m, :]
        X[:, i, :] = acc / L[:, i, i, None]
    return X


def cho_inverse(L: np.ndarray) -> np.ndarray:
    """``A^-1`` for each matrix of the stack, given its Cholesky factor ``L``."""
    K, q, _ = L.shape
    return cho_solve(L, np.broadcast_to(np.eye(q), (K, q, q)).copy())


def logdet(L: np.ndarray) -> float:
    """``sum_k log|A_k|`` from the Cholesky factors of the stack."""
    return float(2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
