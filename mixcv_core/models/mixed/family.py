"""Response families and links of a generalised linear mixed model, as data (lme4's ``glmFamily``).

A `Family` is a distribution (its variance function, deviance residuals and ``aic`` — minus
twice the log-likelihood, which lme4's Laplace deviance uses) paired with a `Link` (the
link, its inverse and the derivative ``dmu/deta``). The formulas are lme4's
(``src/glmFamily.cpp``) and R's ``binomial()``/``poisson()``:

- binomial: ``y`` a proportion in [0, 1], prior weights the numbers of trials (1 for 0/1
  outcomes); ``aic = -2 sum (wt/m) log dbinom(round(m y), m, mu)``.
- Poisson: ``y`` a count; ``aic = -2 sum wt log dpois(y, mu)``.

The inverse links clamp ``mu`` away from 0 and 1 as R's ``make.link`` does (``eta`` beyond
``+-30`` for the logit), so a runaway linear predictor gives a finite deviance; the PIRLS
step (`pirls`) then reports it rather than returning it as a fit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from ...errors import SpecError

__all__ = ["Family", "Link", "LINKS", "FAMILIES", "Response", "get_family"]

_EPS = np.finfo(float).eps
_THRESH = 30.0          # R's logit link: eta clamped to +-30 in linkinv and mu.eta
_MU_EPS = 2.220446e-16  # R's binomial clamp of mu


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)``, its inverse and ``dmu/deta``."""

    name: str
    link: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]


def _logit_inv(eta: np.ndarray) -> np.ndarray:
    return np.asarray(special.expit(np.clip(eta, -_THRESH, _THRESH)))


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    e = np.clip(eta, -_THRESH, _THRESH)
    p = special.expit(e)
    return np.maximum(p * (1 - p), _EPS)


_PROBIT_THRESH = -float(special.ndtri(_EPS))    # R's probit: eta clamped where Phi reaches eps


def _probit_inv(eta: np.ndarray) -> np.ndarray:
    # scipy.special, not scipy.stats: the same functions without the per-call overhead PIRLS pays.
    return np.asarray(special.ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH)))


def _probit_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), _EPS)


def _log_inv(eta: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)


LINKS: dict[str, Link] = {
    "logit": Link("logit", lambda mu: np.asarray(special.logit(mu)), _logit_inv, _logit_mu_eta),
    "probit": Link("probit", lambda mu: np.asarray(special.ndtri(mu)), _probit_inv, _probit_mu_eta),
    "log": Link("log", lambda mu: np.log(mu), _log_inv, _log_inv),
}


def _ylogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``y log(y / mu)`` with ``0 log 0 = 0`` (lme4's ``Y_log_Y``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)


@dataclass(frozen=True)
class Family:
    """A response distribution and its link (see the module docstring)."""

    name: str
    link: Link

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return mu * (1 - mu) if self.name == "binomial" else mu

    def mu(self, eta: np.ndarray) -> np.ndarray:
        mu = self.link.inverse(eta)
        if self.name == "binomial":
            mu = np.clip(mu, _MU_EPS, 1 - _MU_EPS)
        return mu

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Deviance residuals (squared), lme4's ``devResid``."""
        if self.name == "binomial":
            return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1 - y, 1 - mu))
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> float:
        """Minus twice the log-likelihood (lme4's ``aic``, the deviance of the Laplace approximation)."""
        if self.name == "binomial":
            m = np.round(wt)
            k = np.round(m * y)
            # log dbinom(k; m, mu), written out (scipy.stats' logpmf costs more than the fit step)
            ll = (special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
                  + special.xlogy(k, mu) + special.xlog1py(m - k, -mu))
            return float(-2.0 * np.where(m > 0, ll, 0.0).sum())
        ll = special.xlogy(y, mu) - mu - special.gammaln(y + 1)
        return float(-2.0 * (wt * ll).sum())

    def for_response(self, y: np.ndarray, wt: np.ndarray) -> Response:
        """`dev_resid` and `aic` with everything that depends on ``y`` and ``wt`` alone computed once."""
        return Response(self, y, wt)

    def check_response(self, y: np.ndarray, wt: np.ndarray, field: str = "y") -> None:
        """Values the family cannot take, named before any fit."""
        if self.name == "binomial":
            if np.any((y < 0) | (y > 1)):
                raise SpecError(field, "a binomial response must be 0/1 or a proportion in [0, 1] "
                                       "(with the numbers of trials as weights)")
            k = y * wt
            if np.any(np.abs(k - np.round(k)) > 1e-7 * np.maximum(1.0, wt)):
                raise SpecError("weights", "a binomial proportion times its weight (trials) must be a whole "
                                           "number of successes")
        else:
            if np.any(y < 0):
                raise SpecError(field, "a Poisson response must be a non-negative count")
            fractional = int(np.sum(np.abs(y - np.round(y)) > 1e-8))
            if fractional:
                # glmer goes on with R's warning "non-integer x" from dpois: the log-likelihood of a
                # non-integer count is not a Poisson probability, so llf_ and AIC mean little.
                warnings.warn(f"{field}: {fractional} non-integer value(s) in a Poisson response (counts "
                              "are whole numbers); the fit goes on as glmer's does, but its log-likelihood "
                              "is not a Poisson probability", UserWarning, stacklevel=3)


FAMILIES: dict[str, tuple[str, ...]] = {"binomial": ("logit", "probit"), "poisson": ("log",)}


def get_family(family: str, link: str | None = None) -> Family:
    """The `Family` named ``family`` with ``link`` (default: the canonical one), or a SpecError naming the field."""
    if family not in FAMILIES:
        raise SpecError("family", f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    allowed = FAMILIES[family]
    link = allowed[0] if link is None else link
    if link not in allowed:
        raise SpecError("link", f"the {family} family takes the link(s) {list(allowed)}, not {link!r}")
    return Family(family, LINKS[link])


class Response:
    """A `Family` bound to one response: the same numbers as `Family.dev_resid` and `Family.aic`, cheaper.

    PIRLS evaluates both a few times per deviance evaluation. The terms in ``y`` alone
    (``y log y``, the binomial coefficients, ``log y!``) are computed here once; for 0/1
    outcomes the binomial deviance residual is ``-2 wt log(mu)`` or ``-2 wt log(1 - mu)``.
    """

    def __init__(self, family: Family, y: np.ndarray, wt: np.ndarray) -> None:
        self.family, self.y, self.wt = family, y, wt
        self.binomial = family.name == "binomial"
        if self.binomial:
            self.binary = bool(np.all((y == 0) | (y == 1)))
            self.success = y == 1
            self.sat = _ylogy(y, np.ones_like(y)) + _ylogy(1 - y, np.ones_like(y))   # y log y + (1-y) log(1-y)
            m = np.round(wt)
            k = np.round(m * y)
            self.k, self.m_k = k, m - k
            self.keep = m > 0
            self.lchoose = float(np.where(self.keep, special.gammaln(m + 1) - special.gammaln(k + 1)
                                          - special.gammaln(m - k + 1), 0.0).sum())
        else:
            self.ylogy = special.xlogy(y, y)
            self.lfact = float((wt * special.gammaln(y + 1)).sum())

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        y, wt = self.y, self.wt
        if self.binomial:
            if self.binary:
                return -2.0 * wt * np.log(np.where(self.success, mu, 1.0 - mu))
            return 2.0 * wt * (self.sat - special.xlogy(y, mu) - special.xlog1py(1.0 - y, -mu))
        return 2.0 * wt * (self.ylogy - special.xlogy(y, mu) - (y - mu))

    def aic(self, mu: np.ndarray) -> float:
        if self.binomial:
            ll = special.xlogy(self.k, mu) + special.xlog1py(self.m_k, -mu)
            return float(-2.0 * (self.lchoose + np.where(self.keep, ll, 0.0).sum()))
        return float(-2.0 * ((self.wt * (special.xlogy(self.y, mu) - mu)).sum() - self.lfact))
