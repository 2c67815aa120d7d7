"""The rules table is the one source of truth: every front end refuses what it refuses, naming the field.

The bad values come from the rules themselves (`Rule.invalid_values`), so a rule added
to `mixcv_core.constraints.RULES` is tested through every path below without a new test.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mixcv_core import CrossValidation, ExperimentSpec, MixcvError
from mixcv_core.constraints import RULES, Boolean, Integer, Options, Real, check
from mixcv_core.interface import ARGUMENTS
from mixcv_core.merf import MERF

BASE = {"format": 2, "data": {"target": "y", "groups": "g"},
        "models": [{"name": "LM", "model": "LinearModel"}]}


def _with(path: str, value: object) -> dict:
    """The base spec dict with ``path`` (a rules key) set to ``value``."""
    d = copy.deepcopy(BASE)
    head, _, tail = path.partition(".")
    if head == "models":
        d["models"][0][tail] = value
    elif tail:
        d.setdefault(head, {})[tail] = value
    else:
        d[head] = value
    return d


def _field(path: str) -> str:
    head, _, tail = path.partition(".")
    return f"models['LM'].{tail}" if head == "models" else path


CASES = [(path, bad) for path, rule in RULES.items() for bad in rule.invalid_values()]


def test_the_base_spec_is_valid():
    ExperimentSpec.from_dict(BASE)


@pytest.mark.parametrize("path,bad", CASES, ids=[f"{p}={b!r}" for p, b in CASES])
def test_every_rule_refuses_its_bad_values_in_the_spec_naming_the_field(path, bad):
    with pytest.raises(MixcvError) as info:
        ExperimentSpec.from_dict(_with(path, bad))
    assert info.value.field == _field(path)
    assert str(info.value).startswith(f"{_field(path)}: ")


# The builder's setter for each rule; its errors name the builder's argument where
# that differs from the spec field (interface.ARGUMENTS), the spec field otherwise.
SETTERS = {
    "outer.n_splits": lambda v: CrossValidation().set_splits(n_splits_out=v),
    "inner.n_splits": lambda v: CrossValidation().set_splits(n_splits_in=v),
    "outer.scale": lambda v: CrossValidation().set_splits(scale_out=v),
    "outer.n_repeats": lambda v: CrossValidation().set_splits(n_repeats=v),
    "outer.known_holdout": lambda v: CrossValidation().set_splits(known_holdout=v),
    "inner.scale": lambda v: CrossValidation().set_splits(scale_in=v),
    "tuning.n_trials": lambda v: CrossValidation().set_inner_cv(n_trials=v),
    "tuning.batch": lambda v: CrossValidation().set_inner_cv(trial_batch=v),
    "merf.add_merf_global": lambda v: CrossValidation().set_merf(add_merf_global=v),
    "merf.max_iterations": lambda v: CrossValidation().set_merf(em_max_iterations=v),
    "merf.stopping_threshold": lambda v: CrossValidation().set_merf(em_stopping_threshold=v),
    "merf.stopping_window": lambda v: CrossValidation().set_merf(em_stopping_window=v),
    "merf.linear_fixed_effects": lambda v: CrossValidation().set_merf(linear_fixed_effects=v),
    "merf.em_estimators": lambda v: CrossValidation().set_merf(em_estimators=v),
    "models.requires_inner_cv": lambda v: CrossValidation().add_model("LinearModel", requires_inner_cv=v),
    "models.add_merf": lambda v: CrossValidation().add_model("LinearModel", add_merf=v),
    "predict_known_groups_lmm": lambda v: CrossValidation().set_lmer(v),
    "seed": lambda v: CrossValidation().set_run(random_seed=v),
    "n_jobs": lambda v: CrossValidation().set_run(n_jobs=v),
    "on_error": lambda v: CrossValidation().set_run(on_error=v),
    "timeout": lambda v: CrossValidation().set_run(timeout=v),
    "backend": lambda v: CrossValidation().set_run(backend=v),
    "scheduler": lambda v: CrossValidation().set_run(backend="dask", scheduler=v),
    "break_cross_val": lambda v: CrossValidation().set_splits(break_cross_val=v),
}


def test_every_rule_has_a_builder_setter():
    assert set(SETTERS) == set(RULES)


@pytest.mark.parametrize("path,bad", CASES, ids=[f"{p}={b!r}" for p, b in CASES])
def test_every_rule_refuses_its_bad_values_in_the_builder(path, bad):
    with pytest.raises(MixcvError) as info:
        SETTERS[path](bad)
    expected = ARGUMENTS.get(path, _field(path).replace("models['LM'].", "models['LinearModel']."))
    assert info.value.field == expected


MERF_PARAMS = {"merf.max_iterations": "max_iterations", "merf.stopping_threshold": "gll_early_stop_threshold",
               "merf.stopping_window": "gll_early_stop_window", "merf.linear_fixed_effects": "linear_fixed_effects",
               "merf.em_estimators": "em_estimators"}


@pytest.mark.parametrize("path,bad", [(p, b) for p, b in CASES if p in MERF_PARAMS])
def test_merf_refuses_what_the_spec_refuses(path, bad):
    rng = np.random.default_rng(0)
    X, clusters = rng.normal(size=(20, 2)), np.repeat(np.arange(4), 5)
    with pytest.raises(MixcvError) as info:
        MERF(LinearRegression(), **{MERF_PARAMS[path]: bad}).fit(X, np.ones((20, 1)), clusters, rng.normal(size=20))
    assert info.value.field == MERF_PARAMS[path]


def test_the_form_refuses_what_the_rules_refuse_in_their_words():
    pd = pytest.importorskip("pandas")
    from mixcv_jupyter import Configurator
    form = Configurator(pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [1.0, 0, 1, 0], "g": [1, 1, 2, 2]}), name="df")
    form.target.value = "y"
    form.cards[0].enabled.value = True
    for control, path in ((form.outer_k, "outer.n_splits"), (form.inner_k, "inner.n_splits"),
                          (form.trials, "tuning.n_trials"), (form.merf_iter, "merf.max_iterations"),
                          (form.seed, "seed"), (form.repeats, "outer.n_repeats")):
        rule = RULES[path]
        assert isinstance(rule, Integer)
        good = control.value
        for bad in [rule.low - 1] + ([rule.high + 1] if rule.high is not None else []):
            control.value = bad
            assert control.value == bad, path                    # kept as typed, never clamped
            assert form.run_button.disabled, path
            assert f"must be {rule.describe()}, got {bad}" in " ".join(form.errors.values()), path
        control.value = good
        assert rule.describe() in control.tooltip                # the bounds are shown on hover
    form.groups.value = "g"
    form.known_holdout.value = 0.9
    assert form.known_holdout.value == 0.9 and form.run_button.disabled
    assert "must be a number >= 0.0 and <= 0.5, got 0.9" in form.errors["known_holdout"]


@pytest.mark.parametrize("rule,good", [
    (Integer(2), [2, np.int64(7)]), (Integer(-1, exclude=(0,)), [-1, 1]),
    (Real(0.0, None, closed="neither", none=True), [None, 1e-9, 3]), (Real(0, 1), [0, 1, 0.5]),
    (Boolean(), [True, False]), (Options(("keep", "raise")), ["keep", "raise"]),
])
def test_rules_accept_what_they_describe_and_refuse_their_own_bad_values(rule, good):
    for value in good:
        assert rule.check(value, "f") == value or (value is None and rule.none)
    for bad in rule.invalid_values():
        with pytest.raises(MixcvError):
            rule.check(bad, "f")


def test_messages_say_what_is_accepted():
    with pytest.raises(MixcvError, match=r"n_jobs: must be a positive number of processes, or -1 for all cores, got 0"):
        check("n_jobs", 0)
    with pytest.raises(MixcvError, match=r"on_error: must be one of 'keep', 'raise', got 'rase' \(did you mean"):
        check("on_error", "rase")
    with pytest.raises(MixcvError, match="must be a number > 0"):
        check("merf.stopping_threshold", math.inf)
