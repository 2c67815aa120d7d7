"""Linear mixed models with any number of random-effect terms, shaped like lme4's pipeline (issue 25).

``terms`` parses the random part of a formula and ``design`` realises the terms on data
(lme4's ``lFormula``); the algebra (``pls``, ``criterion``, ``optimize``, ``fit``) fits them
(`fit_mixed`, its record `MixedFit`); ``estimator`` holds the scikit-learn estimator and
``lmer`` the formula front door.
"""

from __future__ import annotations

from .design import ReMat, build_remats, fixed_design
from .estimator import LinearMixedEffectsModel
from .family import Family, get_family
from .fit import MixedFit, REBlock, fit_mixed
from .glmer import GeneralizedLinearMixedModel, glmer
from .glmm import GlmmFit, fit_glmm
from .lmer import lmer
from .terms import RandomTerm, parse_random, split_formula

__all__ = ["Family", "GeneralizedLinearMixedModel", "GlmmFit", "LinearMixedEffectsModel", "MixedFit", "REBlock",
           "RandomTerm", "ReMat", "build_remats", "fit_mixed", "fit_glmm", "fixed_design", "get_family", "glmer",
           "lmer", "parse_random", "split_formula"]
