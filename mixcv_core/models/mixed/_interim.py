"""INTERIM, to be deleted when issue-25alg's algebra is merged: `fit_mixed` for one term via `fit_lmm`.

It implements the contract (`MIXED_CONTRACT.md`) for a single term with a random intercept
only, so the estimator and the formula layer can be built and tested before the blocked
algebra exists; several terms raise NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._groups import conditional_sd
from ..lmm import fit_lmm


class REBlock(Protocol):
    codes: np.ndarray
    n_levels: int
    Z: np.ndarray


@dataclass
class MixedFit:
    beta: np.ndarray
    beta_cov: np.ndarray
    sigma2: float
    theta: np.ndarray
    covs: list[np.ndarray]
    b: list[np.ndarray]
    b_sd: list[np.ndarray]
    criterion: float
    llf: float
    reml: bool
    converged: bool
    message: str
    boundary: list[tuple[int, int]]
    n_evals: int
    gradient_max: float
    newton_decrement: float


def fit_mixed(X: np.ndarray, y: np.ndarray, blocks: Sequence[REBlock], *, reml: bool = True,
              max_evals: int = 10_000, callback: Callable[[int, float], None] | None = None) -> MixedFit:
    if len(blocks) != 1 or not np.all(blocks[0].Z[:, 0] == 1.0):
        raise NotImplementedError("several random-effect terms need issue-25alg's fit_mixed")
    block = blocks[0]
    fit = fit_lmm(X, y, block.Z, block.codes, block.n_levels, reml=reml, max_evals=max_evals)
    sd = conditional_sd(block.Z, block.codes, block.n_levels, fit.cov_re, fit.sigma2)
    return MixedFit(beta=fit.beta, beta_cov=fit.beta_cov, sigma2=fit.sigma2, theta=fit.theta, covs=[fit.cov_re],
                    b=[fit.b], b_sd=[sd], criterion=fit.criterion, llf=fit.llf, reml=reml, converged=fit.converged,
                    message=fit.message, boundary=[(0, j) for j in fit.boundary], n_evals=fit.n_evals,
                    gradient_max=fit.gradient_max, newton_decrement=fit.newton_decrement)
