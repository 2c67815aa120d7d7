"""mixcv's models: linear, linear mixed (native LMM), MERF, and post-processors.

Every model is a scikit-learn estimator. Mixed models (`MixedEffectsRegressor`) take
``groups`` and ``slopes`` in ``fit`` and ``predict``; `LinearMixedEffectsModel` also takes
lme4's random part (``random="(1 + days | subject) + (1 | item)"``, with ``groups`` a
DataFrame of the grouping columns), and `lmer` fits a whole lme4 formula on a data frame. Models know nothing of the
engine: a MERF fit reports its EM iterations through a plain callback.

``mixcv_core.models`` is also flexcv's import path for ``LinearModel`` and
``LinearMixedEffectsModel``, so the seed's examples run unchanged.
"""

from __future__ import annotations

from ._base import MixedEffectsRegressor, is_mixed
from .gpboost import GPBoostClassifier, GPBoostRegressor
from .linear import LinearModel
from .linear_mixed import LinearMixedEffectsModel
from .mixed import GeneralizedLinearMixedModel, glmer, lmer

__all__ = ["LinearModel", "LinearMixedEffectsModel", "GPBoostRegressor", "GPBoostClassifier", "MixedEffectsRegressor",
           "is_mixed", "lmer", "glmer", "GeneralizedLinearMixedModel"]
