"""What the report and the checks say about a run with several grouping factors (issue 25, item 6).

Real data: lme4's Pastes (casks labelled a, b, c within each of 10 batches: the classic
nested-labels trap) and Penicillin (24 plates x 6 samples, fully crossed, one row per pair),
as written by tests/reference/lme4_multi.R.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.results.report import render_html

DATA = Path(__file__).parent.parent / "data" / "lmm_multi"


def run(frame: pd.DataFrame, target: str, groups: list[str], model=LinearMixedEffectsModel, n_splits: int = 3,
        **kwargs):
    X = frame.drop(columns=[target, *groups])
    return (CrossValidation().set_data(X, frame[target], groups=frame[groups], **kwargs)
            .set_splits("GroupKFold", n_splits_out=n_splits).add_model(model).perform().get_results())


@pytest.fixture(scope="module")
def penicillin() -> pd.DataFrame:
    return pd.read_csv(DATA / "penicillin.csv")


@pytest.fixture(scope="module")
def pastes() -> pd.DataFrame:
    return pd.read_csv(DATA / "pastes.csv")


def codes(results) -> set[str]:
    return set(results.checks()["code"]) if len(results.checks()) else set()


def test_a_split_by_one_factor_says_which_is_new_and_which_recurs(penicillin):
    res = run(penicillin, "diameter", ["plate", "sample"], split_by="plate")
    line = "test folds hold new plates; samples recur"
    assert res.what_is_new() == line and line in render_html(res)
    assert (res.unused_rows() == 0).all()
    assert "factor-the-split-ignores" in codes(res)   # samples are all seen in training


def test_a_split_by_both_factors_counts_the_rows_it_used_for_neither(penicillin):
    res = run(penicillin, "diameter", ["plate", "sample"], split_by=["plate", "sample"])
    frame = res.to_frame()
    expected = len(penicillin) - frame["n_train"] - frame["n_test"]
    assert (res.unused_rows().to_numpy() == expected.to_numpy()).all() and expected.min() > 0
    line = res.what_is_new()
    assert line.startswith("test folds hold new plates and new samples; rows that mix")
    assert f"{int(expected.sum())} in all" in line and html_escaped(line) in render_html(res)
    assert "factor-the-split-ignores" not in codes(res)


def html_escaped(text: str) -> str:
    import html
    return html.escape(text)


def test_one_grouping_factor_keeps_the_report_as_it_was(penicillin):
    res = run(penicillin.drop(columns="sample"), "diameter", ["plate"], n_splits=3)
    assert res.what_is_new() is None and "test folds hold" not in render_html(res)


def test_cask_labels_repeated_in_every_batch_warn_and_show_how_to_nest(pastes):
    res = run(pastes, "strength", ["batch", "cask"])
    found = res.checks().set_index("code")
    assert "nested-labels-repeat" in found.index
    message = found.loc["nested-labels-repeat", "message"]
    assert "(1 | batch/cask)" in message and "'a' is in 10 batch levels" in message


def test_nested_terms_or_a_crossed_design_raise_no_nesting_warning(pastes, penicillin):
    assert "nested-labels-repeat" not in codes(run(pastes, "strength", ["batch", "cask"],
                                                   random="(1 | batch/cask)"))
    # Every sample on every plate, once: crossed, not nested.
    assert "nested-labels-repeat" not in codes(run(penicillin, "diameter", ["plate", "sample"]))


def test_a_factor_with_a_level_per_row_is_flagged(penicillin):
    df = penicillin.assign(x=np.random.default_rng(0).normal(size=len(penicillin)),
                           row_id=[f"r{k}" for k in range(len(penicillin))])
    res = run(df.drop(columns="sample"), "diameter", ["plate", "row_id"], model="Ridge")
    found = res.checks().set_index("code")
    assert "row_id" in found.loc["one-level-per-row", "message"]
    assert "one-level-per-row" not in codes(run(df.drop(columns="row_id"), "diameter", ["plate", "sample"],
                                                model="Ridge"))


def test_column_names_in_the_new_line_and_the_checks_are_escaped(penicillin):
    df = penicillin.rename(columns={"plate": "<b>plate", "sample": "s&mple"})
    res = run(df, "diameter", ["<b>plate", "s&mple"], split_by="<b>plate")
    page = render_html(res)
    assert "<b>plate" not in page and "test folds hold new &lt;b&gt;plates; s&amp;mples recur" in page
