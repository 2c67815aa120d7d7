"""Linear mixed models with any number of random-effect terms, lme4's pipeline (issue 25).

The algebra (`pls`, `criterion`, `optimize`, `fit`): `fit_mixed` and its record `MixedFit`.
"""

from __future__ import annotations

from .fit import MixedFit, REBlock, fit_mixed

__all__ = ["MixedFit", "REBlock", "fit_mixed"]
