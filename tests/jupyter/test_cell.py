"""The %%mixcv cell text: parsing, errors with line numbers, and spec -> text -> spec round trips."""

from __future__ import annotations

import optuna.distributions as od
import pytest
from _strategies import experiment_specs, several_factor_specs
from hypothesis import HealthCheck, given, settings

from mixcv_core.experiment.cell import CellError, parse_cell, spec_to_cell
from mixcv_core.experiment.spec import DataSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.models import LinearMixedEffectsModel, LinearModel

FULL = """data: df
name: sleep study
target: y
groups: subject
slopes: [days]
features: [days, age]
outer: GroupKFold(4)
inner: StratifiedGroupKFold(3)
scale: {outer: true, inner: false}
trials: 25
metrics: [r2, rmse]
merf: {all: true, iterations: 30, threshold: 1e-4, window: 3}
predict_known_groups: false
seed: 7
n_jobs: 2
models:
  LinearMixedEffectsModel:
    backend: statsmodels
  Forest:
    model: RandomForestRegressor
    n_estimators: 200
    max_depth: int(2, 20)
    min_samples_leaf: int(1, 64, log)
    max_features: float(0.2, 1.0)
    min_impurity_decrease: float(1e-6, 0.1, log)
    criterion: choice(squared_error, absolute_error)
    post_processor: RandomForestModelPostProcessor
"""


def test_full_cell_parses_into_the_expected_spec():
    spec = parse_cell(FULL).spec
    assert spec.data == DataSpec("y", "subject", ("days",), ("days", "age"), frame="df", dataset_name="sleep study")
    assert (spec.outer.method, spec.outer.n_splits, spec.outer.scale) == ("GroupKFold", 4, True)
    assert (spec.inner.method, spec.inner.n_splits, spec.inner.scale) == ("StratifiedGroupKFold", 3, False)
    assert spec.tuning == TuningSpec(25)
    assert list(spec.metrics) == ["r2", "rmse"]
    assert spec.merf == MerfSpec(True, 30, 1e-4, 3)
    assert (spec.predict_known_groups_lmm, spec.seed, spec.n_jobs) == (False, 7, 2)
    lmm, forest = spec.models
    assert lmm.estimator is LinearMixedEffectsModel and dict(lmm.model_kwargs) == {"backend": "statsmodels"}
    assert not lmm.tunes
    assert forest.tunes and forest.model_kwargs["n_estimators"] == 200
    assert forest.params["min_samples_leaf"] == od.IntDistribution(1, 64, log=True)
    assert forest.params["min_impurity_decrease"] == od.FloatDistribution(1e-6, 0.1, log=True)
    assert forest.params["criterion"] == od.CategoricalDistribution(["squared_error", "absolute_error"])


def test_full_cell_round_trips():
    spec = parse_cell(FULL).spec
    assert parse_cell(spec_to_cell(spec)).spec == spec


def test_minimal_cell_uses_the_defaults():
    spec = parse_cell("data: df\ntarget: y\nmodels: [LinearModel]\n").spec
    assert spec.outer == SplitSpec("KFold", 5, _field="outer") and spec.seed == 42
    assert spec.models == (ModelSpec("LinearModel", LinearModel),)


@pytest.mark.parametrize("text,line,key,words", [
    ("data: df\ntarget: y\nmodles: [LinearModel]\n", 4, "modles", "did you mean 'models'"),
    ("data: df\ntarget: y\nouter: GroupKFlod(3)\nmodels: [LinearModel]\n", 4, "outer", "GroupKFlod"),
    ("data: df\ntarget: y\nouter: GroupKFold(x)\nmodels: [LinearModel]\n", 4, "outer", "whole number"),
    ("data: df\ntarget: y\nmodels:\n  RandomForestRegressor:\n    max_depth: int(9, 2)\n", 6,
     "models.RandomForestRegressor.max_depth", "empty range"),
    ("data: df\ntarget: y\nmodels:\n  Ridge:\n    alpha: float(0, 1, log)\n", 6, "models.Ridge.alpha", "log"),
    ("data: df\ntarget: y\nmodels:\n  Ridge:\n    alpha: int(1.5, 3)\n", 6, "models.Ridge.alpha", "integer"),
    ("data: df\ntarget: y\nmodels:\n  Ridge:\n    alpah: float(0.1, 1)\n", 6, "models.Ridge.alpah",
     "did you mean 'alpha'"),
    ("data: df\ntarget: y\nmodels:\n  Rigde:\n", 5, "models.Rigde", "did you mean 'Ridge'"),
    # (a classifier is a model name now: a classification cell uses it; issue 27)
    ("data: df\ntarget: y\nmodels:\n  StandardScaler:\n", 5, "models.StandardScaler",
     "StandardScaler is a transformer"),
    ("data: df\ntarget: y\ngroups: [Subject, [a]]\nmodels: [Ridge]\n", 4, "groups", "a list such as [a, b]"),
    ("data: df\ntarget: y\ntrials: 0\nmodels: [Ridge]\n", 4, "trials", ">= 1"),
    ("data: df\ntarget: y\nmerf: {iterations: 0}\nmodels: [Ridge]\n", 4, "merf.iterations", ">= 1"),
    ("data: df\ntarget: y\nmerf: {iters: 3}\nmodels: [Ridge]\n", 4, "merf.iters", "unknown key"),
    ("data: df\nmodels: [Ridge]\n", None, "target", "column to predict"),
    ("data: 3\ntarget: y\nmodels: [Ridge]\n", 2, "data", "DataFrame"),
    ("data: df\ntarget: y\nseed: -1\nmodels: [Ridge]\n", 4, "seed", ">= 0"),
    ("data: df\ntarget: y\n  bad indent: 1\n", 4, "cell", "YAML"),
    ("data: df\ntarget: y\nmodels: [LinearMixedEffectsModel]\n", None, "groups", "grouping column"),
    ("data: df\ntarget: y\nrepeats: 0\nmodels: [Ridge]\n", 4, "repeats", ">= 1"),
    ("data: df\ntarget: y\ngroups: g\nknown_holdout: 0.9\nmodels: [Ridge]\n", 5, "known_holdout", "<= 0.5"),
    ("data: df\ntarget: y\nknown_holdout: 0.2\nmodels: [Ridge]\n", None, "groups", "known_holdout"),
    ("data: df\ntarget: y\nbreak_cross_val: 1\nmodels: [Ridge]\n", 4, "break_cross_val", "True or False"),
])
def test_malformed_cells_name_the_line_and_key(text, line, key, words):
    with pytest.raises(CellError) as info:
        parse_cell(text)
    err = info.value
    assert err.field == key
    assert err.line == line
    assert words in str(err)
    assert str(err).startswith(f"line {line}, {key}:" if line else f"{key}:")


def test_numbers_in_exponent_form_are_numbers():
    spec = parse_cell("data: df\ntarget: y\nmodels:\n  Ridge:\n    alpha: 1e-3\n    tol: float(1e-6, 1e-2, log)\n").spec
    assert spec.models[0].model_kwargs["alpha"] == 0.001


# -- property: spec -> text -> spec ----------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=experiment_specs())
def test_any_spec_survives_text_and_back(spec):
    text = spec_to_cell(spec)
    assert parse_cell(text).spec == spec, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=several_factor_specs())
def test_any_spec_with_several_grouping_factors_survives_text_and_back(spec):
    assert parse_cell(spec_to_cell(spec)).spec == spec


def test_several_mistakes_are_all_reported_with_their_lines():
    text = ("data: df\ntarget: y\nouter: GroupKFold(1)\ntrials: 0\nmerf: {iters: 3}\nmodels:\n  Rigde:\n"
            "  RandomForestRegressor:\n    max_depht: int(2, 5)\n")
    with pytest.raises(CellError) as info:
        parse_cell(text)
    err = info.value
    assert [(p.field, p.line) for p in err.problems] == [
        ("outer", 4), ("trials", 5), ("merf.iters", 6), ("models.Rigde", 8),
        ("models.RandomForestRegressor.max_depht", 10)]
    assert (err.field, err.line) == ("outer", 4)        # a front end pointing at one line points at the first
    lines = str(err).splitlines()
    assert lines[0] == "5 problems in the cell:" and lines[1:] == [f"  {p}" for p in err.problems]


def test_beyond_a_handful_the_rest_are_counted():
    extra = "".join(f"bogus{i}: 1\n" for i in range(7))
    with pytest.raises(CellError) as info:
        parse_cell("data: df\ntarget: y\n" + extra + "models: [Ridge]\n")
    assert len(info.value.problems) == 7
    lines = str(info.value).splitlines()
    assert lines[0] == "7 problems in the cell:" and len(lines) == 1 + 5 + 1 and lines[-1] == "  (and 2 more)"


def test_a_misspelt_required_key_is_one_mistake():
    with pytest.raises(CellError) as info:
        parse_cell("data: df\ntarget: y\nmodles: [Ridge]\n")
    assert [p.field for p in info.value.problems] == ["modles"]


def test_a_missing_required_key_is_listed_with_the_cells_other_mistakes():
    with pytest.raises(CellError) as info:
        parse_cell("data: df\ngroups: g\nmodels:\n  RandomForst:\n  Ridge:\n    alpha: int(10, 2)\n")
    problems = info.value.problems
    assert [(p.field, p.line) for p in problems] == [("models.RandomForst", 5), ("models.Ridge.alpha", 7),
                                                     ("target", None)]
    assert "did you mean 'RandomForestRegressor'" in problems[0].message and "empty range" in problems[1].message
    assert str(info.value).splitlines()[0] == "3 problems in the cell:"


def test_missing_data_and_models_are_listed_with_a_bad_split_and_not_twice():
    with pytest.raises(CellError) as info:
        parse_cell("target: y\nouter: GroupKFold(1)\nmodels:\n")
    assert [(p.field, p.line) for p in info.value.problems] == [("outer", 3), ("models", 4), ("data", None)]
    assert "list at least one model" in info.value.problems[1].message


def test_a_timeout_is_read_from_the_cell_written_back_and_checked():
    parsed = parse_cell("data: df\ntarget: y\ntimeout: 90\nmodels: [Ridge]\n")
    assert parsed.spec.timeout == 90.0
    assert "timeout: 90" in spec_to_cell(parsed.spec).splitlines()
    with pytest.raises(CellError, match=r"line 4, timeout: must be .*> 0"):
        parse_cell("data: df\ntarget: y\ntimeout: 0\nmodels: [Ridge]\n")


def test_a_dask_backend_and_scheduler_are_read_written_back_and_checked():
    spec = parse_cell("data: df\ntarget: y\nbackend: dask\nscheduler: tcp://10.0.0.5:8786\nmodels: [Ridge]\n").spec
    assert (spec.backend, spec.scheduler) == ("dask", "tcp://10.0.0.5:8786")
    lines = spec_to_cell(spec).splitlines()
    assert {"backend: dask", 'scheduler: "tcp://10.0.0.5:8786"'} <= set(lines)
    assert parse_cell(spec_to_cell(spec)).spec == spec
    with pytest.raises(CellError, match=r"line 4, backend: must be one of 'local', 'dask', got 'dsk' "
                                        r"\(did you mean 'dask'\?\)"):
        parse_cell("data: df\ntarget: y\nbackend: dsk\nmodels: [Ridge]\n")
    with pytest.raises(CellError, match=r"line 4, scheduler: a scheduler address is for backend='dask'"):
        parse_cell("data: df\ntarget: y\nscheduler: tcp://h:1\nmodels: [Ridge]\n")
    with pytest.raises(CellError, match=r"line 5, scheduler: must be an address such as 'tcp://host:port'"):
        parse_cell("data: df\ntarget: y\nbackend: dask\nscheduler: localhost:8786\nmodels: [Ridge]\n")
    with pytest.raises(CellError, match=r"line 5, timeout: a time limit needs local worker processes"):
        parse_cell("data: df\ntarget: y\nbackend: dask\ntimeout: 5\nmodels: [Ridge]\n")


def test_repeats_known_holdout_and_one_fold_are_read_and_written_back():
    text = ("data: df\ntarget: y\ngroups: g\nouter: GroupKFold(4)\nrepeats: 3\nknown_holdout: 0.2\n"
            "break_cross_val: true\nmodels: [LinearMixedEffectsModel]\n")
    spec = parse_cell(text).spec
    assert (spec.outer.n_repeats, spec.outer.known_holdout, spec.break_cross_val) == (3, 0.2, True)
    lines = spec_to_cell(spec).splitlines()
    assert {"outer: GroupKFold(4)", "repeats: 3", "known_holdout: 0.2", "break_cross_val: true"} <= set(lines)
    assert parse_cell(spec_to_cell(spec)).spec == spec
