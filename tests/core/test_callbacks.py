"""flexcv's per-model training callbacks: given to the outer fit only, through the
estimator's own ``callbacks`` parameter or its ``fit``; refused before any work otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import FloatDistribution
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation
from mixcv_core.errors import SpecError, SpecTypeError
from mixcv_core.synthesizer import generate_grouped_regression


class Counts:
    """A callback that counts the iterations it is told about."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, iteration: int) -> None:
        self.calls.append(iteration)


class InitCallbacks(RegressorMixin, BaseEstimator):
    """Takes callbacks in its constructor, as XGBoost does; 'trains' for 3 iterations."""

    def __init__(self, alpha: float = 1.0, callbacks=None):
        self.alpha, self.callbacks = alpha, callbacks

    def fit(self, X, y):
        for i in range(3):
            for cb in self.callbacks or []:
                cb(i)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class FitCallbacks(InitCallbacks):
    """Takes callbacks in fit, as LightGBM does."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y, callbacks=None):
        self.callbacks = callbacks
        return super().fit(X, y)


class NoCallbacks(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))


@pytest.mark.parametrize("estimator", [InitCallbacks, FitCallbacks])
def test_callbacks_reach_the_outer_fits_only(estimator):
    X, y, g, _ = generate_grouped_regression(6, 10, random_seed=0, n_features=2)
    counts = Counts()
    (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2)
     .add_model(estimator, requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 1.0)},
                callbacks=[counts])
     .set_inner_cv(n_trials=2).set_run(store=False).perform())
    # 3 outer fits x 3 iterations; the 3 x 2 trials x 2 inner fits never saw it.
    assert counts.calls == [0, 1, 2] * 3


def test_a_model_without_callbacks_is_refused_naming_the_field():
    with pytest.raises(SpecError, match=r"models\['NoCallbacks'\].callbacks: NoCallbacks takes no callbacks"):
        CrossValidation().add_model(NoCallbacks, callbacks=[Counts()])
    with pytest.raises(SpecTypeError, match="callbacks: expected a list"):
        CrossValidation().add_model(InitCallbacks, callbacks="early_stopping")
