"""How a model class is written in a stored spec: its registered name, told without walking scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble._forest import BaseForest

from mixcv_core.experiment import registry


def _registered(cls: type) -> bool:
    # The definition the quick answer must agree with: the full registry built by all_estimators.
    return registry._registry().get(cls.__name__) is cls


def test_every_registered_class_is_named_as_the_registry_names_it():
    classes = set(registry._registry().values())
    assert len(classes) > 50
    for cls in classes:
        assert registry._is_registered(cls) == _registered(cls), cls
        # The quick path answers False for any other package: true only while the registry holds none.
        assert cls.__module__.split(".")[0] in ("sklearn", "mixcv_core"), cls


class LocalRegressor(RegressorMixin, BaseEstimator):
    pass


class RandomForestRegressor(RegressorMixin, BaseEstimator):   # a user's class with a registered name
    pass


@pytest.mark.parametrize("cls", [LocalRegressor, RandomForestRegressor, BaseForest, BaseEstimator])
def test_classes_outside_the_registry_are_written_as_dotted_paths(cls):
    assert registry._is_registered(cls) == _registered(cls) is False
    assert registry.estimator_name(cls) == f"{cls.__module__}.{cls.__qualname__}"


def test_naming_a_scikit_learn_model_does_not_walk_every_scikit_learn_module():
    code = ("import sys; from sklearn.ensemble import RandomForestRegressor; "
            "from mixcv_core.experiment.registry import estimator_name, _registry; "
            "name = estimator_name(RandomForestRegressor); print(name, _registry.cache_info().currsize, "
            "'sklearn.cluster' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["RandomForestRegressor", "0", "False"]


def test_parameter_names_are_read_once_per_class_and_handed_out_as_fresh_sets():
    from sklearn.ensemble import ExtraTreesRegressor
    registry._param_names.cache_clear()
    first = registry.param_names(ExtraTreesRegressor)
    assert first == set(ExtraTreesRegressor().get_params())
    first.add("not_a_parameter")   # a caller's change must not reach the cache
    assert registry.param_names(ExtraTreesRegressor) == set(ExtraTreesRegressor().get_params())
    assert registry._param_names.cache_info().hits == 1


def test_mixcvs_own_names_resolve_without_walking_scikit_learn():
    """A builder's first add_model("LinearModel") does not build the registry (every scikit-learn
    module imported, a second); a scikit-learn name does, and mixcv's names resolve to the same
    classes either way."""
    from mixcv_core.experiment import registry
    registry._registry.cache_clear()
    own = {name: registry.resolve_estimator(name) for name, cls in registry._own_models().items()
           if all(callable(getattr(cls, m, None)) for m in ("fit", "predict"))}   # not the abstract bases
    assert registry._registry.cache_info().currsize == 0
    assert registry.resolve_estimator("Ridge").__name__ == "Ridge"
    assert registry._registry.cache_info().currsize == 1
    assert all(registry._registry()[name] is cls for name, cls in own.items())
    assert own["GLMM"] is own["GeneralizedLinearMixedModel"]
