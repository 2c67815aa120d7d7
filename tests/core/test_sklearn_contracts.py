"""mixcv's splitters and estimators keep scikit-learn's contracts.

Splitters subclass ``BaseCrossValidator`` (``GroupsConsumerMixin`` where they need
groups) and whether a split needs groups is read from its type, never from its name.
Estimators pass scikit-learn's own ``estimator_checks`` where those apply: all of them
for `LinearModel`; the API checks for the mixed models, whose ``fit`` needs groups.
"""

from __future__ import annotations

import pytest
from sklearn.model_selection import (
    BaseCrossValidator,
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    LeaveOneGroupOut,
    ShuffleSplit,
    StratifiedKFold,
)
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import estimator_checks_generator

from mixcv_core.experiment.splits import (
    SPLIT_METHODS,
    ContinuousStratifiedGroupKFold,
    ContinuousStratifiedKFold,
    FixedSplits,
    make_splitter,
    split_requires_groups,
)
from mixcv_core.merf import MERF, MERFClassifier, MERFRegressor
from mixcv_core.models import LinearMixedEffectsModel, LinearModel


@pytest.mark.parametrize("splitter", [ContinuousStratifiedKFold(3), ContinuousStratifiedGroupKFold(3),
                                      FixedSplits((((0, 1), (2,)),))])
def test_mixcv_splitters_are_scikit_learn_cross_validators(splitter):
    assert isinstance(splitter, BaseCrossValidator)
    assert splitter.get_n_splits() >= 1


@pytest.mark.parametrize("splitter,needs", [
    (GroupKFold(3), True), (LeaveOneGroupOut(), True), (GroupShuffleSplit(), True),
    (ContinuousStratifiedGroupKFold(3), True),
    (KFold(3), False), (StratifiedKFold(3), False), (ShuffleSplit(), False), (ContinuousStratifiedKFold(3), False),
    (FixedSplits((((0,), (1,)),)), False),
])
def test_whether_a_splitter_needs_groups_is_read_from_its_type(splitter, needs):
    assert split_requires_groups(splitter) is needs


def test_a_splitter_is_not_judged_by_its_name():
    class GroupwiseLookingName(KFold):
        """Named like a group splitter, but it is a KFold."""

    class Plain(GroupKFold):
        """Named like nothing, but it is a GroupKFold."""

    assert not split_requires_groups(GroupwiseLookingName(3))
    assert split_requires_groups(Plain(3))


@pytest.mark.parametrize("name", list(SPLIT_METHODS))
def test_named_methods_need_groups_exactly_when_their_splitter_does(name):
    assert SPLIT_METHODS[name].requires_groups is split_requires_groups(make_splitter(name, 3, 0))
    assert SPLIT_METHODS[name].requires_groups is ("Group" in name)


def test_reprs_come_from_scikit_learn():
    assert " ".join(repr(ContinuousStratifiedGroupKFold(4, random_state=1)).split()) == (
        "ContinuousStratifiedGroupKFold(n_bins=10, n_splits=4, random_state=1, shuffle=True)")


def _checks(estimator):
    # Every check scikit-learn has for a regressor, but the array-API ones: they need
    # SciPy started in array-API mode (SCIPY_ARRAY_API=1) and test GPU-style inputs
    # that a statistics library on numpy does not claim to take.
    for est, check in estimator_checks_generator(estimator, mark="skip"):
        name = getattr(check, "func", check).__name__
        if "array_api" not in name:
            yield pytest.param(est, check, id=f"{est!r}-{name}")


@pytest.mark.parametrize("estimator,check", [*_checks(LinearModel()), *_checks(LinearModel(fit_intercept=False))])
def test_linear_model_passes_every_scikit_learn_check(estimator, check):
    check(estimator)


API_CHECKS = [ec.check_no_attributes_set_in_init, ec.check_parameters_default_constructible,
              ec.check_get_params_invariance, ec.check_set_params, ec.check_estimator_cloneable,
              ec.check_estimator_repr, ec.check_estimator_tags_renamed, ec.check_valid_tag_types,
              ec.check_mixin_order]


@pytest.mark.parametrize("estimator", [LinearMixedEffectsModel(), LinearMixedEffectsModel(backend="statsmodels"),
                                       MERF(), MERFRegressor(), MERFClassifier()], ids=repr)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_mixed_models_pass_the_api_checks(estimator, check):
    check(type(estimator).__name__, estimator)
