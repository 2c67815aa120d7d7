"""Tall matrices read a block of rows at a time, so a fit's memory does not grow with its rows.

A fit on an outer fold of a million rows held the fold's features two and three times
over: the design with its intercept column prepended, then ``[X y]`` for the mixed
model's sums, then LAPACK's own copy for a least-squares solve or a rank (each 134 MB at
800,000 x 21). Everything these fits need of the rows is a sum over them: ``X'X``, a QR
factor's ``R``, per-level sums. So they read the rows in blocks of `ROWS` (a few MB) and
keep only the sums; `WithIntercept` stands for ``[1 X]`` and makes each block's rows when
they are read, never the whole.

On data of at most `ROWS` rows there is one block, and every result is computed exactly as
it was from the whole matrix, to the last bit.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

__all__ = ["ROWS", "WithIntercept", "Tall", "row_blocks", "block", "matvec", "rmatvec", "r_factor", "rank",
           "all_finite"]

#: Rows per block: 32,768 x 22 columns is 5.8 MB.
ROWS = 32_768


class WithIntercept:
    """``[1 X]``, a column of ones then ``X``'s columns, made a block of rows at a time.

    ``X`` is read, never written or copied whole.

    Examples
    --------
    >>> D = WithIntercept(np.array([[2.0], [3.0]]))
    >>> D.shape, D.block(slice(1, 2)).tolist()
    ((2, 2), [[1.0, 3.0]])
    """

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self.shape = (X.shape[0], X.shape[1] + 1)

    def block(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` of ``[1 X]``, as a new C-ordered float array."""
        part = self.X[rows]
        out = np.empty((part.shape[0], self.shape[1]))
        out[:, 0] = 1.0
        out[:, 1:] = part
        return out

    def toarray(self) -> np.ndarray:
        """The whole matrix (for the few uses that need it at once: an error message's diagnosis)."""
        return self.block(slice(None))


#: A tall matrix as the fits read it: an array, or an array with an intercept column prepended.
Tall: TypeAlias = np.ndarray | WithIntercept


def row_blocks(n: int, size: int | None = None) -> list[slice]:
    """The row ranges of ``n`` rows in blocks of ``size`` (default `ROWS`; one, possibly empty, when ``n <= size``)."""
    size = size or ROWS     # read when called: a test may set ROWS
    return [slice(start, start + size) for start in range(0, max(n, 1), size)]


def block(X: Tall, rows: slice) -> np.ndarray:
    """Rows ``rows`` of ``X`` (a view of an array, a new array of a `WithIntercept`)."""
    return X.block(rows) if isinstance(X, WithIntercept) else X[rows]


def matvec(X: Tall, v: np.ndarray, size: int | None = None) -> np.ndarray:
    """``X @ v``, a block of rows at a time for a `WithIntercept` (each row's product as from the whole)."""
    if not isinstance(X, WithIntercept):
        return X @ v
    out = np.empty(X.shape[0])
    for rows in row_blocks(X.shape[0], size):
        out[rows] = X.block(rows) @ v
    return out


def rmatvec(X: Tall, r: np.ndarray, size: int | None = None) -> np.ndarray:
    """``X' r``, a block of rows at a time for a `WithIntercept` (the blocks' products added in row order)."""
    if not isinstance(X, WithIntercept):
        return X.T @ r
    out = np.zeros(X.shape[1])
    for rows in row_blocks(X.shape[0], size):
        out += X.block(rows).T @ r[rows]
    return out


def all_finite(X: Tall, size: int | None = None) -> bool:
    """Whether every entry of ``X`` is finite (a block of rows at a time: no ``(n, p)`` mask)."""
    data = X.X if isinstance(X, WithIntercept) else X
    return all(bool(np.isfinite(data[rows]).all()) for rows in row_blocks(data.shape[0], size))


def r_factor(X: Tall, y: np.ndarray | None = None, size: int | None = None) -> np.ndarray:
    """The triangular factor ``R`` of a QR factorisation of ``[X y]`` (of ``X`` without ``y``).

    Householder QR of the blocks in turn, each stacked under the ``R`` of the rows before
    (TSQR, Demmel, Grigori, Hoemmen & Langou 2012, SIAM J. Sci. Comput. 34(1)): the ``R`` of
    the whole up to the signs of its rows, with the backward stability of Householder QR,
    holding one block at a time. ``[X y] = Q R`` gives all of least squares:
    ``R_X beta = R_Xy`` has the solutions of ``X beta ~ y``, the singular values of ``R_X``
    are those of ``X``, and ``R_X'R_X = X'X``.

    Returns
    -------
    ndarray of shape (min(n, k), k), ``k`` the columns of ``[X y]``; upper trapezoidal.
    """
    n, p = X.shape
    k = p + (y is not None)
    R = np.empty((0, k))
    for rows in row_blocks(n, size):
        part = block(X, rows)
        stack = np.empty((R.shape[0] + part.shape[0], k))
        stack[:R.shape[0]] = R
        stack[R.shape[0]:, :p] = part
        if y is not None:
            stack[R.shape[0]:, p] = y[rows]
        R = np.asarray(np.linalg.qr(stack, mode="r"))
    return R


def rank(X: Tall, size: int | None = None) -> int:
    """The rank of ``X`` as ``numpy.linalg.matrix_rank`` defines it, without its wrapper.

    Singular values above ``S.max() * max(n, p) * eps`` count. In one block (at most
    ``size`` rows) they are ``X``'s own, as ``matrix_rank`` takes them (the wrapper's
    argument handling was a third of the check on a small fit's design); above, those of
    `r_factor`'s ``R``, which are ``X``'s, so no copy of ``X`` is made for the SVD.
    """
    n, p = X.shape
    if n == 0 or p == 0:
        return 0
    rows = row_blocks(n, size)
    S = np.linalg.svd(block(X, rows[0]) if len(rows) == 1 else r_factor(X, size=size), compute_uv=False)
    return int(np.count_nonzero(S > S.max() * max(n, p) * np.finfo(float).eps))
