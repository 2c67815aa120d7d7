"""A stored run with several grouping factors keeps every grouping column (issue 25, item 5).

Real data: lme4's Penicillin (24 plates x 6 samples, crossed) and Pastes (casks labelled
a, b, c within each batch), as written by tests/reference/lme4_multi.R. What the report
and the checks say about a run must be the same after it went through the store.
"""

from __future__ import annotations

import html
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.results.report import render_html
from mixcv_core.tracking.store import RunStore

DATA = Path(__file__).parent.parent / "data" / "lmm_multi"


def run(frame: pd.DataFrame, target: str, groups: list[str], store: RunStore, **kwargs):
    X = frame.drop(columns=[target, *groups])
    return (CrossValidation().set_data(X, frame[target], groups=frame[groups], **kwargs)
            .set_splits("GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel)
            .set_run(store=store).perform().get_results())


def said(results) -> tuple:
    """Everything the run says about its factors: the line, the unused rows, the checks."""
    checks = results.checks()
    return (results.what_is_new(), results.unused_rows().tolist(),
            checks[["code", "severity", "message", "evidence"]].to_dict("records") if len(checks) else [])


def lme4(name: str) -> pd.DataFrame:
    """One of lme4's datasets as the R script wrote it (small: read where used)."""
    return pd.read_csv(DATA / f"{name}.csv")


@pytest.mark.parametrize("split_by", ["plate", ["plate", "sample"]])
def test_a_reloaded_run_of_crossed_factors_says_what_the_run_said(tmp_path, split_by):
    store = RunStore(tmp_path)
    res = run(lme4("penicillin"), "diameter", ["plate", "sample"], store, split_by=split_by)
    back = store.load(res.run_id)
    pd.testing.assert_frame_equal(back._data.group_frame, res._data.group_frame.reset_index(drop=True))
    assert said(back) == said(res)
    codes = {c["code"] for c in said(back)[2]}
    # The check that needs every grouping column, not only the split's: it fires after reload too.
    assert ("factor-the-split-ignores" in codes) == (split_by == "plate")
    assert html.escape(back.what_is_new()) in render_html(back)


def test_a_reloaded_run_still_warns_of_nested_labels_that_repeat(tmp_path):
    store = RunStore(tmp_path)
    res = run(lme4("pastes"), "strength", ["batch", "cask"], store)
    back = store.load(res.run_id)
    assert "nested-labels-repeat" in set(back.checks()["code"])
    assert said(back) == said(res)


def test_a_stored_run_without_its_grouping_columns_loads_as_it_ran_before_they_were_kept(tmp_path):
    # A format-7 run stored before schema 5 (or one factor): no grouping columns, only the split's labels.
    store = RunStore(tmp_path)
    res = run(lme4("penicillin"), "diameter", ["plate", "sample"], store, split_by="plate")
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:
        con.execute("UPDATE run_data SET group_frame = NULL")
    back = store.load(res.run_id)
    assert back._data.group_frame is None
    assert back.what_is_new() == res.what_is_new() == "test folds hold new plates; samples recur"
    assert "factor-the-split-ignores" not in set(back.checks()["code"])   # it cannot know: silent, not wrong


def test_a_read_only_store_of_schema_4_loads_without_the_new_column(tmp_path):
    store = RunStore(tmp_path)
    res = run(lme4("penicillin"), "diameter", ["plate", "sample"], store, split_by="plate")
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:   # the layout of schema 4, as an older mixcv left it
        con.execute("ALTER TABLE run_data DROP COLUMN group_frame")
        con.execute("PRAGMA user_version = 4")
    back = RunStore(tmp_path, read_only=True).load(res.run_id)
    assert back._data.group_frame is None and back.summary.equals(res.summary)


def test_damaged_grouping_columns_refuse_that_run_only(tmp_path):
    from mixcv_core import MixcvError
    store = RunStore(tmp_path)
    res = run(lme4("penicillin"), "diameter", ["plate", "sample"], store, split_by="plate")
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:
        con.execute("""UPDATE run_data SET group_frame = '{"columns": ["plate", "plate"], "values": []}'""")
    with pytest.raises(MixcvError, match="damaged or was edited") as info:
        store.load(res.run_id)
    assert info.value.field == "store"


def test_labels_of_a_second_factor_the_store_cannot_keep_are_refused_before_any_fit(tmp_path):
    from mixcv_core import MixcvError
    frame = lme4("penicillin")
    frame["sample"] = [("s", k % 6) for k in range(len(frame))]   # tuples: JSON would give lists back
    with pytest.raises(MixcvError) as info:
        run(frame, "diameter", ["plate", "sample"], RunStore(tmp_path), split_by="plate")
    assert info.value.field == "store" and "'sample'" in info.value.message and "tuple" in info.value.message
    assert RunStore(tmp_path).runs().empty    # nothing was started


def test_resuming_a_crossed_run_refuses_a_changed_second_factor_naming_it(tmp_path):
    from mixcv_core.engine import run as run_engine
    from mixcv_core.errors import SpecError

    store = RunStore(tmp_path)
    frame = lme4("penicillin")
    cv = (CrossValidation().set_data(frame.drop(columns=["diameter", "plate", "sample"]), frame["diameter"], groups=frame[["plate", "sample"]],
                                     split_by="plate")
          .set_splits("GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel))
    stopped = run_engine(cv.to_spec(), cv._frame, store=store, stop=lambda: True)
    # The split's factor is unchanged, so the folds are the same: only the fingerprint of
    # the second factor can tell the two designs apart.
    shuffled = cv._frame.assign(sample=cv._frame["sample"].sample(frac=1.0, random_state=0).to_numpy())
    with pytest.raises(SpecError, match="resume: run .* other data: column 'sample \\(groups\\)' has other values"):
        CrossValidation.resume(store, stopped.run_id, shuffled)
    resumed = CrossValidation.resume(store, stopped.run_id, cv._frame)
    assert resumed.status == "finished"
