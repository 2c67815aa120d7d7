"""Linear mixed models with any number of random-effect terms, shaped like lme4's pipeline.

``terms`` parses the random part of a formula, ``design`` realises the terms on data
(lme4's ``lFormula``), the algebra fits them, ``estimator`` holds the scikit-learn estimator
and ``lmer`` the formula front door (see ``MIXED_CONTRACT`` in the project notes).
"""

from __future__ import annotations

from .design import ReMat, build_remats, fixed_design
from .estimator import LinearMixedEffectsModel
from .lmer import lmer
from .terms import RandomTerm, parse_random, split_formula

__all__ = ["LinearMixedEffectsModel", "RandomTerm", "ReMat", "build_remats", "fixed_design", "lmer", "parse_random",
           "split_formula"]
