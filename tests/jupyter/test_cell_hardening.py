"""Cells that used to pass validation and then fail, or escape as raw errors, are refused up front
with the line and key; column names are matched as written."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.engine import run
from mixcv_core.experiment.cell import CellError, parse_cell
from mixcv_core.models import LinearMixedEffectsModel

HEAD = "data: df\ntarget: y\n"


@pytest.mark.parametrize("body,line,key,words", [
    ("models:\n  Ridge:\n    alpha: !Float {low: 1, high: 2}\n", 6, "models.Ridge.alpha", "YAML tags such as !Float"),
    ("models:\n  Ridge:\n    alpha: !!python/name:os.system\n", 6, "models.Ridge.alpha", "!!python/name:os.system"),
    ("models:\n  Ridge:\n    fit: &a {b: *a}\n", 6, "cell", "anchors and aliases"),
    ("models:\n  Ridge:\n    alpha: float(.nan, 1)\n", 6, "models.Ridge.alpha", "finite"),
    ("models:\n  Ridge:\n    alpha: float(0, .inf)\n", 6, "models.Ridge.alpha", "finite"),
    ("groups: g\nslopes: [y]\nmodels: [LinearMixedEffectsModel]\n", 5, "slopes", "'y' is the target"),
])
def test_cells_are_refused_with_line_and_key(body, line, key, words):
    with pytest.raises(CellError) as info:
        parse_cell(HEAD + body)
    assert (info.value.field, info.value.line) == (key, line)
    assert words in str(info.value)


def test_nested_aliases_are_refused_at_once():
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcde", "bcdef"))
    t0 = time.perf_counter()
    with pytest.raises(CellError, match="anchors and aliases"):
        parse_cell(laughs)
    assert time.perf_counter() - t0 < 5.0     # a blow-up guard: was 11 s to minutes; parsing takes ms


@pytest.mark.parametrize("written,column", [("yes", "yes"), ("007", "007"), ("1e3", "1e3"), ('"null"', "null")])
def test_column_names_are_read_as_written(written, column):
    spec = parse_cell(f"data: df\ntarget: {written}\nmodels: [Ridge]\n").spec
    assert spec.data.target == column


def test_integer_column_names_can_be_named():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({0: rng.normal(size=60), 1: rng.normal(size=60), "g": np.repeat(range(6), 10)})
    df["y"] = 2 * df[0] + rng.normal(size=60)
    spec = parse_cell("data: df\ntarget: y\ngroups: g\nslopes: [0]\nouter: GroupKFold(3)\n"
                      "models: [LinearMixedEffectsModel]\n").spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run(spec, df, store=False)
    assert res.to_frame()["converged"].all()


def test_a_constant_or_collinear_feature_is_refused_before_any_fit():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "c": 1.0})
    y, g = rng.normal(size=60), np.repeat(range(6), 10)
    with pytest.raises(MixcvError, match=r"\['c'\] is constant"):
        CrossValidation().set_data(X, y, g).add_model(LinearMixedEffectsModel).perform()
    with pytest.raises(MixcvError, match="collinear"):
        CrossValidation().set_data(X.assign(c=2 * X["a"]), y, g).add_model(LinearMixedEffectsModel).perform()
    # ...but a forest is happy with a constant column:
    CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("RandomForestRegressor") \
        .set_run(store=False).perform()
