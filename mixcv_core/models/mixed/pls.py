"""Blocked penalised least squares at one theta: the Cholesky factor of ``Lambda'Z'Z Lambda + I``.

This is lme4's PLS step (Bates, Maechler, Bolker & Walker 2015, J. Stat. Softw. 67(1),
sec. 3.3) written, as MixedModels.jl writes it (``src/linearmixedmodel.jl``, ``updateL!``),
on the blocked matrix ``A = [Z X y]'[Z X y]`` computed once. The random-effect terms are
sorted by their number of levels, largest first, and split into

- block 1, the first term: ``Z_1'Z_1`` is block diagonal (a row has one level), so its
  Cholesky factor is ``K_1`` independent ``q_1 x q_1`` factors, computed for all levels at
  once (`mixcv_core.models._batched`);
- block R, every other term: after eliminating block 1 it is dense in general (two crossed
  factors fill each other in), and small next to block 1 because of the sort;
- block F, the fixed effects and the response ``[X y]``.

Eliminating block 1 leaves one dense symmetric matrix ``D`` over ``[R, X, y]`` (a Schur
complement); its Cholesky factor holds ``L_RR``, ``R_X`` and, in its last row, the
penalised residual (``r^2``), so one dense factorisation gives every quantity of the
profiled criterion. With one term, block R is empty and ``D`` is ``(p+1) x (p+1)``: the
one-factor fit is this same algebra with ``O(K q^2 p)`` work per evaluation.

Only ``L`` changes with theta; ``A`` (`Statistics`) is built once. The rows are touched
only there: an evaluation costs nothing in ``n``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from ...errors import SpecError
from .. import _batched, _rows
from . import banded

#: Largest block R (random effects of every term but the largest) held dense: four copies of
#: a 12,000 x 12,000 matrix are 4.3 GiB.
MAX_DENSE = 12_000
#: Largest ``A_R1`` (entries, ``m x K1 q1``) whose products are taken as a dense array. On
#: small data (Penicillin: 6 x 24) a scipy.sparse product costs tens of microseconds of
#: set-up for nanoseconds of arithmetic, and an evaluation takes a dozen of them.
DENSE_PRODUCTS = 40_000

__all__ = ["Statistics", "level_sums", "PLSSolve", "TermShape", "solve", "term_shapes", "cho_inverse", "right_blocks",
           "scale_rows"]


@dataclass(frozen=True)
class TermShape:
    """One term as the algebra sees it: ``q`` columns on ``K`` levels, and where its theta lives."""

    q: int
    n_levels: int
    offset: int             # first index of the term's entries in the full theta
    rows: np.ndarray        # row of each theta entry in Lambda_t (lme4: lower triangle, column-major)
    cols: np.ndarray        # column of each theta entry

    @property
    def size(self) -> int:
        return len(self.rows)

    def lam(self, theta: np.ndarray) -> np.ndarray:
        L = np.zeros((self.q, self.q))
        L[self.rows, self.cols] = theta[self.offset:self.offset + self.size]
        return L


def term_shapes(qs: Sequence[int], levels: Sequence[int]) -> list[TermShape]:
    """The theta layout of terms with ``qs`` columns on ``levels`` levels, in the given order."""
    shapes, offset = [], 0
    for q, k in zip(qs, levels):
        rows, cols = _lower_triangle(int(q))
        shapes.append(TermShape(q, int(k), offset, rows, cols))
        offset += len(rows)
    return shapes


@functools.lru_cache(maxsize=16)
def _lower_triangle(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a q x q lower triangle in lme4's theta order (column-major); read-only, shared."""
    tril = np.tril_indices(q)
    # lme4 orders theta column-major; tril_indices is row-major.
    order = np.lexsort((tril[0], tril[1]))          # by column, then row
    rows, cols = tril[0][order], tril[1][order]
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def _indicator(codes: np.ndarray, Z: np.ndarray, n_levels: int, offset: int = 0,
               width: int | None = None) -> sparse.csr_matrix:
    """The term's columns of the sparse ``Z``: row i has ``Z[i]`` at level ``codes[i]``'s columns."""
    n, q = Z.shape
    cols = offset + codes[:, None] * q + np.arange(q)[None, :]
    return sparse.csr_matrix((Z.ravel(), cols.ravel(), np.arange(0, n * q + 1, q)),
                             shape=(n, width if width is not None else n_levels * q))


#: Rows whose products `level_sums` holds at once: a few MB, whatever the number of rows.
LEVEL_SUM_ROWS = 32_768


def level_sums(codes: np.ndarray, n_levels: int, left: np.ndarray, right: np.ndarray,
               chunk: int = LEVEL_SUM_ROWS, out: np.ndarray | None = None) -> np.ndarray:
    """Per level, the sum over its rows of ``left[i]' right[i]``: ``(K, a, b)`` from ``(n, a)`` and ``(n, b)``.

    The products of a chunk of rows at a time are added into the sums, so the ``(n, a b)``
    array of all of them is never held: on an 800,000-row fold with 21 fixed effects it was
    141 MB, the largest piece of the fit. Every sum is taken in row order, one row after the
    other, starting from zero, exactly as the product with the level indicator matrix that
    this replaces took it (scipy's ``csc_matvecs``), so the sums are the same to the last bit.
    ``out``, the ``(K, a, b)`` sums of the rows before, is added to in place and returned:
    the rows can come in blocks, with the same sums to the last bit.

    Examples
    --------
    >>> codes = np.array([0, 1, 0]); ones = np.ones((3, 1)); x = np.array([[1.0], [2.0], [3.0]])
    >>> level_sums(codes, 2, ones, x, chunk=2).ravel().tolist()
    [4.0, 2.0]
    """
    n, a, b = len(codes), left.shape[1], right.shape[1]
    codes = np.asarray(codes)
    if n <= chunk and out is None:
        # One chunk: np.bincount adds the weights into their bins in the order given, from
        # zero, as np.add.at does, at a third of its cost (a fixed cost of every small fit).
        # Bin (level, entry) of row i's product entry e is level * a b + e.
        bins = (codes[:, None] * (a * b) + np.arange(a * b)[None, :]).ravel()
        whole = np.bincount(bins, weights=np.einsum("nj,nk->njk", left, right).ravel(), minlength=n_levels * a * b)
        return whole.reshape(n_levels, a, b)
    sums = np.zeros((n_levels, a * b)) if out is None else out.reshape(n_levels, a * b)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        # np.add.at adds the rows one by one in the order given (a buffered ``out[codes] +=``
        # would keep only the last row of a level that repeats in the chunk).
        np.add.at(sums, codes[rows], np.einsum("nj,nk->njk", left[rows], right[rows]).reshape(-1, a * b))
    return sums.reshape(n_levels, a, b)


class Statistics:
    """``A = [Z X y]'[Z X y]`` in blocks, for terms given in *algebra* order (largest first).

    ``y`` is expected residualised on ``X`` by the caller (see `criterion.Criterion`).
    """

    def __init__(self, X: _rows.Tall, y: np.ndarray, codes: Sequence[np.ndarray], Zs: Sequence[np.ndarray],
                 levels: Sequence[int], like: Statistics | None = None) -> None:
        # ``like``: a Statistics of the same terms on the same rows (only the values of the
        # columns differ, as in PIRLS's reweighted rows), whose list of pairs is reused.
        n, p = X.shape
        self.n, self.p = n, p
        q1, K1 = Zs[0].shape[1], int(levels[0])
        self.q1, self.K1 = q1, K1
        self._pair_index: tuple[np.ndarray, ...] | None = None
        Z1 = Zs[0]
        blocks = _rows.row_blocks(n)
        if len(blocks) > 1:
            # Z and [X y] apart: stacking them first held more row-sized copies at once.
            self.G = level_sums(codes[0], K1, Z1, Z1)
        # Block R: the other terms side by side, each level's q_t columns together.
        self.r_q = [Z.shape[1] for Z in Zs[1:]]
        self.r_levels = [int(k) for k in levels[1:]]
        widths = [q * k for q, k in zip(self.r_q, self.r_levels)]
        self.r_offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        self.m = m = int(self.r_offsets[-1])
        if m > MAX_DENSE:
            raise SpecError("blocks", f"the random-effect terms after the one with the most levels have {m:,} "
                                      f"effects together (levels x columns); the algebra holds them in one dense "
                                      f"block of {m:,} x {m:,} ({8 * m * m / 2**30:.1f} GiB per copy), which is "
                                      f"more than it supports ({MAX_DENSE:,}). Crossed factors with this many "
                                      "levels on both sides need a sparse factorisation that mixcv does not have yet")
        ZR = None
        if m:
            ZR = sparse.hstack([_indicator(c, Z, k) for c, Z, k in zip(codes[1:], Zs[1:], levels[1:])]).tocsr()
            Z1s = _indicator(codes[0], Z1, K1)
            self.A_R1 = (ZR.T @ Z1s).tocsr()                      # (m, K1 q1), sparse: crossings seen
            self.A_RR = np.asarray((ZR.T @ ZR).todense())          # (m, m)
        # The sums over the rows that involve [X y], a block of rows at a time (`_rows`): F
        # = [X y] whole was 141 MB on an 800,000-row fold, next to the fold itself. With
        # one block (up to `_rows.ROWS` rows) every product is the one of the whole F.
        self.H = np.zeros((K1, q1, p + 1))
        A_FF: np.ndarray | None = None
        A_RF: np.ndarray | None = None
        for rows in blocks:
            F = np.column_stack([_rows.block(X, rows), y[rows]])
            if len(blocks) == 1:
                # One block (a small fit): G and H in one pass over [Z X y], the same sums row by row.
                GH = level_sums(codes[0], K1, Z1, np.column_stack([Z1, F]))
                self.G, self.H = np.ascontiguousarray(GH[..., :q1]), np.ascontiguousarray(GH[..., q1:])
            else:
                level_sums(codes[0][rows], K1, Z1[rows], F, out=self.H)
            A_FF = F.T @ F if A_FF is None else A_FF + F.T @ F
            if ZR is not None:
                part = np.asarray(ZR[rows].T @ F)                  # (m, p+1)
                A_RF = part if A_RF is None else A_RF + part
        assert A_FF is not None
        self.A_FF = A_FF
        if A_RF is not None:
            self.A_RF = A_RF
        if m:
            self.scalar_R = all(q == 1 for q in self.r_q)
            self._like = like
            self._pairs = self._pair_map()
            self.has_pairs = self._pairs is not None

    def _pair_map(self) -> sparse.csc_matrix | None:
        """``A_R1 V A_1R`` as one sparse matrix-vector product in the entries of ``V``.

        ``(A_R1 V A_1R)[i, i'] = sum_k sum_ab A_R1[i, ka] V_k[a, b] A_R1[i', kb]``: the
        pattern and the products of ``A_R1`` entries never change, only ``V``. Listing
        every pair of entries of each level once (the lower triangle: ``V`` is symmetric)
        makes the update one sparse product of ``sum_k nnz_k^2 / 2`` terms (InstEval: 1.8
        million, a few milliseconds), instead of a sparse matrix product that rebuilds its
        pattern at every evaluation. None when the list would be too long (a level of
        block 1 crossed with most of block R).
        """
        q1, m, like = self.q1, self.m, self._like
        self._like = None    # not kept alive
        if like is not None and like.m and like._pair_index is not None and like.A_R1.nnz == self.A_R1.nnz \
                and np.array_equal(like.A_R1.indices, self.A_R1.indices) \
                and np.array_equal(like.A_R1.indptr, self.A_R1.indptr):
            # Same pattern: only the products of the entries change.
            self._pair_index = like._pair_index
            perm, e, f, half, indices, indptr = like._pair_index
            vals = self.A_R1.tocoo().data[perm]
            return sparse.csc_matrix((vals[e] * vals[f] * half, indices, indptr), shape=(m * m, self.K1 * q1 * q1))
        self._pair_index = None
        coo = self.A_R1.tocoo()
        level = coo.col // q1
        order = np.argsort(level, kind="stable")      # within a level, rows stay increasing
        perm = order
        rows, cols, vals, level = coo.row[order], coo.col[order], coo.data[order], level[order]
        counts = np.bincount(level, minlength=self.K1).astype(np.int64)
        tri = counts * (counts + 1) // 2
        n_pairs = int(tri.sum())
        if n_pairs > max(2 * m * m, 5_000_000) or n_pairs > 20_000_000:
            return None
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pair_level = np.repeat(np.arange(self.K1), tri)
        t = np.arange(n_pairs) - np.repeat(np.concatenate([[0], np.cumsum(tri)[:-1]]), tri)
        # t -> (i >= j) in the lower triangle of the level's entries.
        i = ((np.sqrt(8.0 * t + 1.0) - 1.0) / 2.0).astype(np.int64)
        i -= (i * (i + 1) // 2 > t)
        i += ((i + 1) * (i + 2) // 2 <= t)
        j = t - i * (i + 1) // 2
        e, f = starts[pair_level] + i, starts[pair_level] + j
        a, b = cols[e] % q1, cols[f] % q1
        # The product fills the lower triangle; `eliminated` adds its transpose, so a
        # pair of an entry with itself counts half.
        half = np.where(e == f, 0.5, 1.0)
        key = pair_level * q1 * q1 + a * q1 + b
        if q1 > 1:
            order = np.argsort(key, kind="stable")
            key, half, e, f = key[order], half[order], e[order], f[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=self.K1 * q1 * q1))])
        indices = rows[e] * m + rows[f]
        self._pair_index = (perm, e, f, half, indices, indptr)
        return sparse.csc_matrix((vals[e] * vals[f] * half, indices, indptr), shape=(m * m, self.K1 * q1 * q1))

    def products(self) -> tuple[np.ndarray | sparse.csr_matrix, np.ndarray | sparse.csr_matrix]:
        """``A_R1`` and ``A_1R`` as the evaluation multiplies by them: dense arrays when small, else CSR.

        Made on first use and kept (scipy builds a new matrix for every ``.T``), and made
        again if ``A_R1`` was replaced (PIRLS reweights it in a `Statistics` of its own).
        """
        cached = self.__dict__.get("_products")
        if cached is None or cached[0] is not self.A_R1:
            A = self.A_R1
            if isinstance(A, np.ndarray) or self.m * A.shape[1] <= DENSE_PRODUCTS:
                # The GLMM's reweighting keeps A_R1 dense itself when that is cheaper (pirls).
                dense = A if isinstance(A, np.ndarray) else A.toarray()
                cached = (A, dense, np.ascontiguousarray(dense.T))
            else:
                cached = (A, A.tocsr(), A.T.tocsr())
            self.__dict__["_products"] = cached
        return cached[1], cached[2]

    def _pairs_T(self) -> sparse.csr_matrix:
        """The transpose of the pair list, kept (see `products`)."""
        cached = self.__dict__.get("_pairsT")
        if cached is None or cached[0] is not self._pairs:
            assert self._pairs is not None
            cached = (self._pairs, self._pairs.T.tocsr())
            self.__dict__["_pairsT"] = cached
        return cached[1]

    def level_blocks(self, CS: np.ndarray) -> np.ndarray:
        """``A_k' CS A_k`` for every level k of block 1 (``A_k``: its ``q1`` columns of ``A_R1``), ``(K1, q1, q1)``.

        The transpose of `eliminated`, for a symmetric ``CS``: one sparse product with the
        same list of pairs.
        """
        K1, q1 = self.K1, self.q1
        R1, R1T = self.products()
        if isinstance(R1, np.ndarray):
            # Dense and small: (A_k' CS A_k)[a, b] = sum_i A[i, ka] (CS A)[i, kb].
            Y = CS @ R1
            if q1 == 1:
                return np.einsum("ik,ik->k", R1, Y)[:, None, None]
            return np.einsum("ika,ikb->kab", R1.reshape(-1, K1, q1), Y.reshape(-1, K1, q1))
        if self._pairs is not None:
            low = (self._pairs_T() @ CS.ravel()).reshape(K1, q1, q1)
            return low + np.swapaxes(low, 1, 2)
        Yt = np.asarray(R1T @ CS)                                      # (K1 q1, m)
        coo = self.A_R1.tocoo()
        level, b = coo.col // q1, coo.col % q1
        out = np.zeros((K1, q1, q1))
        for a in range(q1):
            np.add.at(out, (level, a, b), coo.data * Yt[level * q1 + a, coo.row])
        return out

    def packed(self, lay: banded.Layout) -> tuple[np.ndarray, sparse.csc_matrix, sparse.csr_matrix, sparse.csr_matrix]:
        """For block R packed on a plan's pattern (`banded.Layout`): ``A_RR`` there, the pairs and ``A_RR`` sparse.

        The list of pairs (`_pair_map`) with each pair's entry ``(i, i')`` sent to its place in
        the packed vector, and its transpose; every pair lies on the pattern, which holds every
        two levels of block R that share a level of block 1. Made once per layout and kept.
        """
        cached = self.__dict__.get("_packed")
        if cached is None or cached[0] is not lay or cached[1] is not self._pairs:
            assert self._pairs is not None
            pairs = self._pairs
            places = lay.place(pairs.indices // self.m, pairs.indices % self.m)
            P = sparse.csc_matrix((pairs.data, places, pairs.indptr), shape=(lay.size, pairs.shape[1]))
            cached = (lay, pairs, (self.A_RR[lay.rows, lay.cols], P, P.T.tocsr(), sparse.csr_matrix(self.A_RR)))
            self.__dict__["_packed"] = cached
        return cached[2]

    def eliminated_packed(self, V: np.ndarray, lay: banded.Layout) -> np.ndarray:
        """`eliminated` on the pattern only, packed as ``lay`` says."""
        low = self.packed(lay)[1] @ V.ravel()
        # A pair's entry went to one place; within a diagonal block the matrix is low + low'.
        for sl, b in zip(lay.diag, lay.sizes):
            block = low[sl].reshape(b, b)
            block += block.T.copy()
        return low

    def level_blocks_packed(self, CS: np.ndarray, lay: banded.Layout) -> np.ndarray:
        """`level_blocks` of a symmetric matrix given packed on ``lay``."""
        low = (self.packed(lay)[2] @ CS).reshape(self.K1, self.q1, self.q1)
        return low + np.swapaxes(low, 1, 2)

    def eliminated(self, V: np.ndarray) -> np.ndarray:
        """``A_R1 BD(V) A_1R`` (dense ``m x m``) for a ``(K1, q1, q1)`` stack ``V`` of symmetric matrices."""
        R1, R1T = self.products()
        if isinstance(R1, np.ndarray):
            if self.q1 == 1:
                return (R1 * V[:, 0, 0]) @ R1T
            K1, q1 = self.K1, self.q1
            AV = np.einsum("ika,kab->ikb", R1.reshape(-1, K1, q1), V).reshape(-1, K1 * q1)
            return AV @ R1T
        if self._pairs is not None:
            low = (self._pairs @ V.ravel()).reshape(self.m, self.m)
            return low + low.T
        AV = self.A_R1.multiply(V[:, 0, 0][None, :]).tocsr() if self.q1 == 1 else self.A_R1 @ _block_diag(V)
        return np.asarray((AV @ R1T).todense())


@dataclass
class PLSSolve:
    """The PLS solution at one theta (algebra order of terms, standardised columns)."""

    lams: list[np.ndarray]     # Lambda_t per term (algebra order)
    chol1: np.ndarray          # (K1, q1, q1) Cholesky factors of block 1
    sol1: np.ndarray           # (K1, q1, p+1) M11_k^-1 Lambda_1' Z_1k'[X y]
    LtH: np.ndarray            # (K1, q1, p+1) Lambda_1' Z_1k'[X y]
    LtG: np.ndarray            # (K1, q1, q1) Lambda_1' Z_1k'Z_1k
    WG: np.ndarray | None      # (K1, q1, q1) M11_k^-1 Lambda_1' Z_1k'Z_1k (when solved for the gradient)
    LD: np.ndarray             # (m+p, m+p) lower Cholesky factor of D without its y row; (p, p) R_X alone
                               # when block R was factored by blocks (``band``)
    D: np.ndarray              # (m+p+1, m+p+1) the Schur complement over [R, X, y]
    beta: np.ndarray           # (p,)
    u: list[np.ndarray]        # spherical random effects per term (K_t, q_t), algebra order
    pwrss: float               # r^2
    logdet_L: float            # log|L|^2 (the random-effects part)
    logdet_RX: float           # log|R_X|^2
    RRu: np.ndarray | None = None      # (m, m) A_RR - A_R1 V A_1R, before Lambda_R (for the gradient)
    lamR: np.ndarray | sparse.csr_matrix | None = None   # Lambda_R (see `_lambda_R`)
    V: np.ndarray | None = None        # (K1, q1, q1) Lambda_1 M11_k^-1 Lambda_1'
    Minv: np.ndarray | None = None     # (K1, q1, q1) M11_k^-1 (when block R is not empty)
    band: banded.Factor | None = None  # block R's block-tridiagonal factor, when `solve` was given a plan
    layout: banded.Layout | None = None   # when block R was held packed on the plan's pattern: then RRu is
                                          # packed, D is (p+1, p+1) (D_FF) and RF holds D_RF
    RF: np.ndarray | None = None          # (m, p+1) Lambda_R'(A_RF - A_R1 M11^-1-part), packed route only
    lamIJ: np.ndarray | None = None       # Lambda_R[i] Lambda_R[j] per packed place, packed route only

    @property
    def RX(self) -> np.ndarray:
        """``R_X``: the lower Cholesky factor of the fixed effects' block, whichever route made it."""
        if self.band is not None:
            return self.LD
        m = len(self.LD) - len(self.beta)
        return self.LD[m:, m:]


def _lambda_R(stats: Statistics, lams: Sequence[np.ndarray]) -> np.ndarray | sparse.csr_matrix:
    """Block R's ``Lambda_R``: a vector of its diagonal when every term is scalar, else sparse."""
    if stats.scalar_R:
        return np.concatenate([np.full(k, lam[0, 0]) for lam, k in zip(lams, stats.r_levels)])
    # Block diagonal with each term's q x q block repeated per level: only the values change
    # with theta, so the pattern is made once (scipy's block_diag of krons took milliseconds).
    pattern = stats.__dict__.get("_lamR_pattern")
    if pattern is None:
        indices, lengths = [], []
        for q, k, o in zip(stats.r_q, stats.r_levels, stats.r_offsets):
            start = o + np.arange(k) * q                                  # first column of each level
            indices.append((start[:, None, None] + np.zeros((1, q, 1), dtype=int) + np.arange(q)).ravel())
            lengths.append(np.full(k * q, q))
        pattern = (np.concatenate(indices), np.concatenate([[0], np.cumsum(np.concatenate(lengths))]))
        stats.__dict__["_lamR_pattern"] = pattern
    data = np.concatenate([np.tile(lam.ravel(), k) for lam, k in zip(lams, stats.r_levels)])
    return sparse.csr_matrix((data, pattern[0], pattern[1]), shape=(stats.m, stats.m))


def _block_diag(blocks: np.ndarray) -> sparse.csr_matrix:
    """A sparse block-diagonal matrix from a ``(K, q, q)`` stack."""
    K, q, _ = blocks.shape
    idx = np.arange(K * q).reshape(K, q)
    rows = np.repeat(idx, q, axis=1).ravel()
    cols = np.tile(idx, (1, q)).ravel()
    return sparse.csr_matrix((blocks.ravel(), (rows, cols)), shape=(K * q, K * q))


def solve(stats: Statistics, lams: Sequence[np.ndarray], gradient: bool = False,
          band: banded.Plan | None = None) -> PLSSolve:
    """Factor ``Lambda'Z'Z Lambda + I`` at the given ``Lambda_t`` and solve the PLS problem.

    With ``band`` (`banded.plan` of block R), block R is factored by blocks instead of
    densely; the result is the same to rounding, but its ``LD`` holds ``R_X`` alone (see
    `PLSSolve`).

    Raises
    ------
    numpy.linalg.LinAlgError
        ``R_X'R_X`` is not positive definite (collinear fixed effects at this theta).
    """
    lam1 = lams[0]
    K1, q1, p1 = stats.H.shape
    p = p1 - 1
    m = stats.m
    LtG = _batched.left(lam1.T, stats.G)                                  # Lambda_1'G_k
    M11 = _batched.right(LtG, lam1)
    M11[:, np.arange(q1), np.arange(q1)] += 1.0
    chol1 = _batched.cholesky(M11)
    LtH = _batched.left(lam1.T, stats.H)                                  # (K1, q1, p+1)
    if gradient:
        # One batched solve for both right-hand sides: the gradient needs M11^-1 Lambda_1'G too.
        both = _batched.cho_solve(chol1, np.concatenate([LtH, LtG], axis=2))
        sol1, WG = both[..., :p1], both[..., p1:]
    else:
        sol1, WG = _batched.cho_solve(chol1, LtH), None                   # M11^-1 Lambda_1'H
    # With a plan, scalar terms in block R and the list of pairs, block R is held only on the
    # plan's pattern, packed (`banded.Layout`): no m x m array is formed at all.
    lay = band.layout if band is not None and m and stats.scalar_R and stats._pairs is not None else None
    # [X y] after eliminating block 1: A_FF - sum_k H_k' Lambda_1 M11_k^-1 Lambda_1' H_k.
    DFF = stats.A_FF - LtH.reshape(K1 * q1, p1).T @ sol1.reshape(K1 * q1, p1)
    if lay is not None:
        D = DFF
    else:
        D = np.empty((m + p1, m + p1))
        D[m:, m:] = DFF
    RF, C, lamIJ = None, None, None
    if m:
        lamR = _lambda_R(stats, lams[1:])
        R1, R1T = stats.products()
        # V_k = Lambda_1 M11_k^-1 Lambda_1'; eliminating block 1 subtracts A_R1 V A_1R.
        Minv = _batched.cho_inverse(chol1)
        V = _batched.right(_batched.left(lam1, Minv), lam1.T)
        RF = stats.A_RF - R1 @ _batched.left(lam1, sol1).reshape(K1 * q1, p1)
    if lay is not None:
        assert isinstance(lamR, np.ndarray)
        RRu = stats.packed(lay)[0] - stats.eliminated_packed(V, lay)
        lamIJ = lamR[lay.rows] * lamR[lay.cols]
        C = RRu * lamIJ
        C[lay.on_diagonal] += 1.0
        RF *= lamR[:, None]
    elif m:
        RRu = stats.eliminated(V)
        np.subtract(stats.A_RR, RRu, out=RRu)
        RR = D[:m, :m]
        if stats.scalar_R:
            assert isinstance(lamR, np.ndarray)
            np.multiply(RRu, lamR[:, None], out=RR)
            RR *= lamR[None, :]
            RF *= lamR[:, None]
        else:
            assert sparse.issparse(lamR)
            RR[...] = np.asarray(lamR.T @ (lamR.T @ RRu).T)             # Lambda_R' RRu Lambda_R (RRu symmetric)
            RF = np.asarray(lamR.T @ RF)
        RR[np.arange(m), np.arange(m)] += 1.0
        D[:m, m:] = RF
        D[m:, :m] = RF.T
    n_lead = m + p
    fac = None
    if band is not None and m:
        if lay is not None:
            assert C is not None and RF is not None
            fac = banded.factor_packed(C, band, lay)
            W = fac.forward(RF)                                         # L_RR^-1 D_RF, block by block
        else:
            fac = banded.factor(D, band)
            W = fac.forward(D[:m, m:])
        Wst = np.concatenate(W)
        S = DFF - Wst.T @ Wst                                           # D_FF after eliminating block R
        if p:
            LD, info = lapack.dpotrf(S[:p, :p], lower=1, clean=1)
            if info != 0 or not np.all(np.diag(LD) > 0):
                raise np.linalg.LinAlgError("matrix is not positive definite")
            ly_X = lapack.dtrtrs(LD, S[:p, p], lower=1)[0]
            beta = lapack.dtrtrs(LD, ly_X, lower=1, trans=1)[0]
        else:
            LD, ly_X, beta = np.zeros((0, 0)), np.zeros(0), np.zeros(0)
        pwrss = float(S[p, p] - ly_X @ ly_X)
        diag = np.diag(LD)
    elif n_lead:
        # LAPACK directly (dpotrf, dtrtrs): the one dense factorisation per evaluation, and
        # with one term a (p x p) one, where scipy.linalg's checks would cost more than it.
        LD, info = lapack.dpotrf(D[:n_lead, :n_lead], lower=1, clean=1)
        diag = np.diag(LD)
        if info != 0 or not np.all(diag > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        ly = lapack.dtrtrs(LD, D[:n_lead, -1], lower=1)[0]
        beta = lapack.dtrtrs(LD[m:, m:], ly[m:], lower=1, trans=1)[0] if p else np.zeros(0)
    else:
        LD, diag, ly, beta = np.zeros((0, 0)), np.zeros(0), np.zeros(0), np.zeros(0)
    if fac is None:
        pwrss = float(D[-1, -1] - ly @ ly)
    u: list[np.ndarray] = []
    RRu_out, lamR_out, V_out, Minv_out = None, None, None, None
    if m:
        RRu_out, lamR_out, V_out, Minv_out = RRu, lamR, V, Minv
        if fac is not None:
            uR = fac.backward([w[:, p] - w[:, :p] @ beta for w in W], m)
        else:
            uR = lapack.dtrtrs(LD[:m, :m], ly[:m] - LD[m:, :m].T @ beta, lower=1, trans=1)[0]
        bR = (lamR * uR) if stats.scalar_R else np.asarray(lamR @ uR)
        coupling = (R1T @ bR).reshape(K1, q1)                           # Z_1'Z_R b_R per level
        rhs = sol1[..., p] - sol1[..., :p] @ beta - _batched.cho_solve(chol1, (coupling @ lam1)[..., None])[..., 0]
        u.append(rhs)
        for t, (q, k) in enumerate(zip(stats.r_q, stats.r_levels)):
            u.append(uR[stats.r_offsets[t]:stats.r_offsets[t + 1]].reshape(k, q))
    else:
        u.append(sol1[..., p] - sol1[..., :p] @ beta)
    if fac is not None:
        logdet_L = _batched.logdet(chol1) + fac.logdet
        logdet_RX = float(2.0 * np.log(diag).sum())
    else:
        logdet_L = _batched.logdet(chol1) + float(2.0 * np.log(diag[:m]).sum())
        logdet_RX = float(2.0 * np.log(diag[m:]).sum())
    return PLSSolve(lams=list(lams), chol1=chol1, sol1=sol1, LtH=LtH, LtG=LtG, WG=WG, LD=LD, D=D, beta=beta, u=u,
                    pwrss=pwrss, logdet_L=logdet_L, logdet_RX=logdet_RX, RRu=RRu_out, lamR=lamR_out, V=V_out,
                    Minv=Minv_out, band=fac, layout=lay, RF=RF if lay is not None else None, lamIJ=lamIJ)


def cho_inverse(L: np.ndarray) -> np.ndarray:
    """``(L L')^-1`` from a lower Cholesky factor (LAPACK dpotri), both triangles filled."""
    return banded.cho_inverse(L)


def right_blocks(A: sparse.csr_matrix, blocks: np.ndarray) -> sparse.csr_matrix:
    """``A BD(blocks)`` for a sparse ``A`` whose columns are levels of ``q`` columns each."""
    K, q, _ = blocks.shape
    if q == 1:
        return A.multiply(blocks[:, 0, 0][None, :]).tocsr()
    return (A @ _block_diag(blocks)).tocsr()


def scale_rows(A: sparse.csr_matrix, lamR: np.ndarray | sparse.csr_matrix, scalar: bool) -> sparse.csr_matrix:
    """``Lambda_R' A``."""
    if scalar:
        assert isinstance(lamR, np.ndarray)
        return A.multiply(lamR[:, None]).tocsr()
    return (lamR.T @ A).tocsr()
