"""Cell and data mistakes from issue 22's rough edges, each named plainly: every mistake of a
cell listed at once (up to five), a negative fold count, a control character, a huge column
name, infinite or overflowing values, infinite group labels."""

from __future__ import annotations

import numpy as np
import pytest

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.experiment.cell import MAX_REPORTED, CellError, parse_cell
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.synthesizer import generate_grouped_regression

SEVEN = ("data: df\ntarget: y\nseed: -1\nn_jobs: 0\non_error: maybe\ntimeout: -5\nbackend: spark\n"
         "metrics: [nope]\nmodels: [Nope]\n")


def test_every_mistake_of_a_cell_is_found_and_five_are_listed():
    with pytest.raises(CellError) as info:
        parse_cell(SEVEN)
    err = info.value
    assert sorted(p.field for p in err.problems) == sorted(
        ["seed", "n_jobs", "on_error", "timeout", "backend", "metrics", "models.Nope"])
    text = str(err)
    assert text.startswith("7 problems in the cell:") and "(and 2 more)" in text
    assert text.count("\n  line ") == MAX_REPORTED == 5


def test_a_negative_number_of_folds_is_called_too_few_not_a_fraction():
    with pytest.raises(CellError, match="must be at least 2, got -3"):
        parse_cell("data: df\ntarget: y\nouter: KFold(-3)\nmodels: [LinearModel]\n")


def test_a_control_character_is_named_by_its_code_point():
    with pytest.raises(CellError, match=r"U\+0007"):
        parse_cell("data: df\ntarget: y\x07\nmodels: [LinearModel]\n")


@pytest.fixture
def data():
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
    return X, y, g


def _refusal(X, y, g):
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, y, g).add_model("LinearModel").set_run(store=False).perform()
    return info.value


def test_an_infinite_feature_is_called_infinite_not_nan(data):
    X, y, g = data
    err = _refusal(X.assign(X0=np.where(np.arange(len(X)) < 3, np.inf, X["X0"])), y, g)
    assert "'X0' (3 infinite)" in err.message and "NaN" not in err.message


def test_a_feature_that_overflows_when_squared_is_refused_naming_it(data):
    X, y, g = data
    err = _refusal(X.assign(X1=1e308), y, g)
    assert "'X1'" in err.message and "overflow" in err.message


def test_infinite_group_labels_are_blamed_on_the_groups(data):
    X, y, g = data
    labels = g.astype(float).where(g != g.iloc[0], np.inf)
    err = _refusal(X, y, labels)
    assert err.field.endswith("groups") and "infinite labels" in err.message


def test_a_huge_column_name_gives_a_short_message(data):
    X, y, g = data
    big = "x" * 1_000_000
    frame = X.assign(y=y, g=g, **{big: 1.0})
    spec = parse_cell("data: df\ntarget: yy\ngroups: g\nmodels: [LinearModel]\n").spec
    with pytest.raises(MixcvError) as info:
        plan_experiment(spec, frame)
    assert len(str(info.value)) < 1000 and "1000000 characters" in str(info.value)
