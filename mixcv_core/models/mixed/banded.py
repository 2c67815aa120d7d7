"""Block R factored as a block-tridiagonal matrix after a reverse Cuthill-McKee ordering.

Block R of `pls` (every term but the largest) is dense in general, but when its factors are
nested or only partly crossed it is mostly zeros (mlmRev's STAR: 1,454 teachers and schools,
99.2% zeros). Reordered by reverse Cuthill-McKee (Cuthill & McKee 1969; scipy's
``reverse_cuthill_mckee``) its nonzeros lie in a band, which is cut into consecutive blocks
``P_0, P_1, ...`` such that a nonzero links only a block to itself or to its neighbours: the
matrix is block tridiagonal. Its Cholesky factor is then block lower bidiagonal (no fill
outside the blocks), computed with dense LAPACK on blocks of the band's width, and

- the log-determinant is the sum over the diagonal blocks' factors;
- ``C^-1`` on the blocks (its diagonal and first off-diagonal blocks, which hold every entry
  where ``C`` can be nonzero) follows from Takahashi, Fagan & Chen's (1973) recurrence, run
  backwards over the blocks::

      T_k = L_{k+1,k} L_kk^-1
      Z_{k+1,k} = -Z_{k+1,k+1} T_k
      Z_kk = (L_kk L_kk')^-1 + T_k' Z_{k+1,k+1} T_k

  exact, with no entry of ``C^-1`` outside the pattern ever formed.

The cost is ``O(sum_k b_k^3)`` against ``m^3`` for the dense factor; `plan` decides once,
from the pattern, whether that pays.

With scalar terms in block R, `pls.solve` and the gradient hold every ``m x m`` quantity
(``A_RR - A_R1 V A_1R``, ``C``, ``C^-1``) only on the blocks, packed in one vector
(`Layout`): forming, scaling and reading dense ``m x m`` arrays cost more per evaluation
than the factor itself once the factor was by blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.linalg import lapack
from scipy.sparse.csgraph import reverse_cuthill_mckee

__all__ = ["Plan", "Layout", "Factor", "plan", "factor", "factor_packed", "layout", "cho_inverse"]

#: Smallest block R worth a plan: below it the dense factor takes well under a millisecond.
MIN_SIZE = 400
#: The block-tridiagonal route is taken when its estimated work is below this share of the
#: dense route's (dense LAPACK runs near peak; the blocks' loop adds Python and copies).
MAX_WORK_SHARE = 0.4
#: Set-up gives up at once when the pairs of block-R levels met by one level of block 1
#: outnumber this share of the dense block's entries (see `plan`).
MAX_PAIRS_SHARE = 1.0
#: Blocks are merged up to this many levels (see `plan`).
MIN_BLOCK = 48


@dataclass(frozen=True)
class Plan:
    """The ordering and the blocks, fixed at set-up: ``blocks[k]`` are the original indices of block k."""

    blocks: list[np.ndarray]

    @cached_property
    def layout(self) -> Layout:
        """The packed layout of the pattern (`layout`), made on first use."""
        return layout(self)


@dataclass(frozen=True)
class Layout:
    """The entries of an ``m x m`` symmetric matrix on a plan's pattern, packed in one vector.

    The packed vector holds, block after block, the diagonal block ``(k, k)`` (both
    triangles, row-major) and then the block ``(k, k+1)`` above it (row-major); ``(k+1, k)``
    is its transpose and is not stored. Every entry of the pattern then has one place (two
    within a diagonal block), and the blocks are views of the vector, so the factor reads
    them without a gather. ``rows[j], cols[j]``: the original row and column of place ``j``.
    """

    m: int
    diag: list[slice]           # place of the block (k, k)
    off: list[slice]            # place of the block (k, k+1)
    rows: np.ndarray
    cols: np.ndarray
    on_diagonal: np.ndarray     # places of the entries (i, i)
    is_off: np.ndarray          # places in an off-diagonal block (bool)
    block_of: np.ndarray        # per original index, its block
    local: np.ndarray           # per original index, its place in its block
    sizes: np.ndarray

    @property
    def size(self) -> int:
        return len(self.rows)

    def place(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The place of entry ``(a, b)`` (or of ``(b, a)`` across blocks), for entries on the pattern."""
        ka, kb = self.block_of[a], self.block_of[b]
        if np.any(np.abs(ka - kb) > 1):
            raise ValueError("entry outside the plan's pattern")
        swap = ka > kb
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        ka, kb = np.minimum(ka, kb), np.maximum(ka, kb)
        la, lb = self.local[a], self.local[b]
        start_d = np.array([s.start for s in self.diag])
        start_o = np.array([s.start for s in self.off] + [0])
        return np.where(ka == kb, start_d[ka] + la * self.sizes[ka] + lb,
                        start_o[ka] + la * self.sizes[np.minimum(kb, len(self.sizes) - 1)] + lb)


def layout(p: Plan) -> Layout:
    """The packed layout of a plan's pattern (see `Layout`)."""
    blocks = p.blocks
    m = int(sum(len(b) for b in blocks))
    sizes = np.array([len(b) for b in blocks])
    diag, off, Is, Js = [], [], [], []
    pos = 0
    block_of, local = np.empty(m, dtype=np.intp), np.empty(m, dtype=np.intp)
    for k, idx in enumerate(blocks):
        block_of[idx], local[idx] = k, np.arange(len(idx))
        diag.append(slice(pos, pos + len(idx) ** 2))
        pos += len(idx) ** 2
        Is.append(np.repeat(idx, len(idx)))
        Js.append(np.tile(idx, len(idx)))
        if k + 1 < len(blocks):
            nxt = blocks[k + 1]
            off.append(slice(pos, pos + len(idx) * len(nxt)))
            pos += len(idx) * len(nxt)
            Is.append(np.repeat(idx, len(nxt)))
            Js.append(np.tile(nxt, len(idx)))
    rows, cols = np.concatenate(Is), np.concatenate(Js)
    is_off = np.zeros(pos, dtype=bool)
    for sl in off:
        is_off[sl] = True
    on_diagonal = np.flatnonzero((rows == cols) & ~is_off)
    return Layout(m, diag, off, rows, cols, on_diagonal, is_off, block_of, local, sizes)


def plan(codes: Sequence[np.ndarray], qs: Sequence[int], levels: Sequence[int], codes1: np.ndarray,
         n_levels1: int) -> Plan | None:
    """A plan for block R (terms 2.. with ``codes``, ``qs``, ``levels``; block 1 on ``codes1``), or None.

    The pattern is taken over levels from the rows' codes alone (not from values, which may
    cancel to an exact zero), so it holds every entry where ``C = Lambda_R'(A_RR - A_R1 V
    A_1R) Lambda_R + I`` can be nonzero for any theta: two levels of block R that share a row,
    or that share a level of block 1. Each level's ``q`` effects are kept together.
    """
    n = len(codes1)
    n_lev = int(sum(levels))
    if n_lev == 0 or sum(q * k for q, k in zip(qs, levels)) < MIN_SIZE:
        return None
    offsets = np.concatenate([[0], np.cumsum(levels)]).astype(int)
    rows = np.arange(n)
    cols = np.concatenate([o + np.asarray(c) for o, c in zip(offsets[:-1], codes)])
    ZR = sparse.csr_matrix((np.ones(len(cols)), (np.tile(rows, len(codes)), cols)), shape=(n, n_lev))
    Z1 = sparse.csr_matrix((np.ones(n), (rows, np.asarray(codes1))), shape=(n, n_levels1))
    R1 = (ZR.T @ Z1).tocsc()
    # Levels of block R met by each level of block 1: a level meeting c of them puts c^2
    # entries in C. When these alone outnumber the entries of the dense block (InstEval:
    # students rate dozens of lecturers), no ordering makes the pattern narrow enough to pay,
    # and forming it would cost more than it could save.
    met = np.diff(R1.indptr)
    if float((met.astype(float) ** 2).sum()) > MAX_PAIRS_SHARE * float(n_lev) ** 2:
        return None
    R1.data[:] = 1.0
    pattern = (ZR.T @ ZR + R1 @ R1.T).tocsr()
    pattern.data[:] = 1.0
    order = reverse_cuthill_mckee(pattern, symmetric_mode=True)
    permuted = pattern[order][:, order].tocoo()
    # first[r]: the leftmost column reached by row r of the permuted lower triangle.
    low = permuted.row >= permuted.col
    first = np.arange(n_lev)
    np.minimum.at(first, permuted.row[low], permuted.col[low])
    # reach[s]: the last row reaching left of column s; block k+1 starts after it.
    last_row = np.full(n_lev + 1, -1)
    np.maximum.at(last_row, first + 1, np.arange(n_lev))
    reach = np.maximum.accumulate(last_row)
    # Each block as small as the band allows (block k+1 ends after the last row reaching
    # left of block k's start), then neighbours merged up to MIN_BLOCK levels, which keeps
    # the matrix block tridiagonal and saves the loop's overhead on tiny blocks.
    starts = [0]
    while starts[-1] < n_lev:
        starts.append(max(starts[-1] + 1, int(reach[starts[-1]]) + 1))
    merged = [0]
    for a, b in zip(starts[1:-1], starts[2:]):
        if b - merged[-1] > MIN_BLOCK:
            merged.append(a)
    starts = merged + [n_lev]
    # A level's effects: the term's offset in block R plus the level's q columns.
    level_q = np.repeat(np.asarray(qs), levels)
    level_start = np.concatenate([[0], np.cumsum(level_q)[:-1]])
    blocks = []
    for a, b in zip(starts[:-1], starts[1:]):
        lev = order[a:b]
        blocks.append(np.concatenate([level_start[i] + np.arange(level_q[i]) for i in lev]).astype(np.intp))
    sizes = np.array([len(b) for b in blocks], dtype=float)
    m = float(sizes.sum())
    # Factor, solves and the selected inverse: about 4 b_k^3 per block, against about
    # m^3 for dense dpotrf + dpotri.
    work = 4.0 * float((sizes ** 3).sum())
    if work > MAX_WORK_SHARE * m ** 3:
        return None
    return Plan(blocks)


@dataclass
class Factor:
    """The block lower-bidiagonal Cholesky factor of ``C`` (blocks in the plan's order)."""

    plan: Plan
    diag: list[np.ndarray]      # L_kk, lower
    sub: list[np.ndarray]       # L_{k+1,k}

    @property
    def logdet(self) -> float:
        """``log|C|``."""
        return float(2.0 * sum(np.log(np.diag(L)).sum() for L in self.diag))

    def forward(self, B: np.ndarray) -> list[np.ndarray]:
        """``L^-1 B`` per block, ``B`` (m, c) in the original order."""
        out: list[np.ndarray] = []
        for k, (idx, L) in enumerate(zip(self.plan.blocks, self.diag)):
            rhs = B[idx]
            if k:
                rhs = rhs - self.sub[k - 1] @ out[-1]
            out.append(lapack.dtrtrs(L, rhs, lower=1)[0])
        return out

    def backward(self, W: list[np.ndarray], m: int) -> np.ndarray:
        """``L'^-1 W`` (``W`` per block), returned in the original order, (m, c)."""
        nb = len(self.diag)
        out = np.empty((m,) + W[0].shape[1:])
        x = None
        for k in range(nb - 1, -1, -1):
            rhs = W[k] if x is None else W[k] - self.sub[k].T @ x
            x = lapack.dtrtrs(self.diag[k], rhs, lower=1, trans=1)[0]
            out[self.plan.blocks[k]] = x
        return out

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``C^-1 B`` in the original order."""
        return self.backward(self.forward(B), B.shape[0])

    def selected_inverse(self, m: int) -> np.ndarray:
        """``C^-1`` on the blocks' pattern (diagonal and neighbouring blocks), zero elsewhere, (m, m)."""
        blocks = self.plan.blocks
        out = np.zeros((m, m))
        for k, Z, Zsub in self._takahashi():
            out[np.ix_(blocks[k], blocks[k])] = Z
            if Zsub is not None:
                out[np.ix_(blocks[k + 1], blocks[k])] = Zsub
                out[np.ix_(blocks[k], blocks[k + 1])] = Zsub.T
        return out

    def selected_inverse_packed(self, lay: Layout) -> np.ndarray:
        """``C^-1`` on the pattern, packed as `Layout` says (no ``m x m`` array formed)."""
        out = np.empty(lay.size)
        for k, Z, Zsub in self._takahashi():
            out[lay.diag[k]] = Z.ravel()
            if Zsub is not None:
                out[lay.off[k]] = Zsub.T.ravel()
        return out

    def _takahashi(self) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """Per block k, last first: ``Z_kk`` and ``Z_{k+1,k}`` (None for the last block)."""
        nb = len(self.diag)
        Z = cho_inverse(self.diag[-1])
        yield nb - 1, Z, None
        for k in range(nb - 2, -1, -1):
            # T_k = L_{k+1,k} L_kk^-1, as (L_kk^-T L_{k+1,k}')'.
            T = lapack.dtrtrs(self.diag[k], self.sub[k].T, lower=1, trans=1)[0].T
            Zsub = -(Z @ T)
            Z = cho_inverse(self.diag[k]) - T.T @ Zsub
            yield k, Z, Zsub


def factor(C: np.ndarray, p: Plan) -> Factor:
    """Factor the symmetric ``C`` (only its entries on the plan's blocks are read).

    Raises
    ------
    numpy.linalg.LinAlgError
        ``C`` is not positive definite.
    """
    blocks = p.blocks
    return _factor(p, lambda k: C[np.ix_(blocks[k], blocks[k])], lambda k: C[np.ix_(blocks[k], blocks[k + 1])])


def factor_packed(c: np.ndarray, p: Plan, lay: Layout) -> Factor:
    """Factor the symmetric matrix held packed in ``c`` (see `Layout`); raises as `factor`."""
    sizes = lay.sizes
    return _factor(p, lambda k: c[lay.diag[k]].reshape(sizes[k], sizes[k]),
                   lambda k: c[lay.off[k]].reshape(sizes[k], sizes[k + 1]))


def _factor(p: Plan, diag_block: Callable[[int], np.ndarray], off_block: Callable[[int], np.ndarray]) -> Factor:
    diag: list[np.ndarray] = []
    sub: list[np.ndarray] = []
    nb = len(p.blocks)
    for k in range(nb):
        Ckk = diag_block(k)
        if k:
            Ckk = Ckk - sub[-1] @ sub[-1].T
        L, info = lapack.dpotrf(Ckk, lower=1, clean=1)
        if info != 0 or not np.all(np.diag(L) > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        diag.append(L)
        if k + 1 < nb:
            # L_{k+1,k} = C_{k+1,k} L_kk^-T, as (L_kk^-1 C_{k,k+1})'.
            sub.append(lapack.dtrtrs(L, off_block(k), lower=1)[0].T)
    return Factor(p, diag, sub)


def cho_inverse(L: np.ndarray) -> np.ndarray:
    """``(L L')^-1`` from a lower Cholesky factor (LAPACK dpotri), both triangles filled."""
    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("dpotri failed")
    # dpotri fills the lower triangle; the upper one is L's, zero (dpotrf's clean=1).
    full = inv + inv.T
    full.flat[::len(full) + 1] *= 0.5
    return full
