"""Fuzz: random byte and JSON damage to each table and blob of a stored run. Listing never
fails for the whole store; loading either succeeds (and the results display) or refuses
with a `MixcvError` that names the store, never a raw exception (issue 22)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution

from mixcv_core import CrossValidation, MixcvError, RunStore

#: Every column that holds a stored run's data (keys and bookkeeping included).
COLUMNS = {
    "runs": ["id", "created", "status", "host", "pid", "dataset", "target", "n_rows", "n_folds", "models", "metrics",
             "spec", "cell", "wall_time", "error"],
    "run_data": ["run_id", "y", "groups", "row_index", "meta", "group_frame"],
    "splits": ["run_id", "fold", "train", "test"],
    "folds": ["run_id", "model", "fold", "ok", "metrics", "fit_time", "tune_time", "best_params", "converged", "error",
              "traceback", "warnings", "test_rows", "y_pred", "insight", "history", "model_file", "convergence",
              "model_sha256", "known_rows", "y_pred_known"],
    "trials": ["run_id", "model", "fold", "trial", "value", "params"],
}
TARGETS = [(t, c) for t, cols in COLUMNS.items() for c in cols]


@pytest.fixture(scope="module")
def pristine(grouped, tmp_path_factory):
    """A store with one tuned run (trials), one LMM (history) and predictions of known groups."""
    X, y, g, s = grouped
    folder = tmp_path_factory.mktemp("pristine")
    res = (CrossValidation().set_data(X, y, g, s).set_splits("GroupKFold", "GroupKFold", n_splits_out=2,
                                                             n_splits_in=2, known_holdout=0.2)
           .add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 10, log=True)})
           .add_model("LinearMixedEffectsModel").set_inner_cv(n_trials=2)
           .set_run(store=RunStore(folder)).perform().get_results())
    return folder, res.run_id


def _json_values():
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                     st.text(max_size=8))
    return st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=8).map(json.dumps)


def _damage(original):
    """A replacement for one stored value: unrelated bytes, text, JSON, a number, NULL, or
    the original cut short or with one byte changed."""
    options = [st.none(), st.binary(max_size=48), st.text(max_size=24), _json_values(), st.integers(-5, 10**9),
               st.floats(allow_nan=True, allow_infinity=True)]
    if isinstance(original, (bytes, str)) and original:
        raw = original if isinstance(original, bytes) else original.encode()
        options.append(st.integers(0, len(raw) - 1).map(lambda k: raw[:k]))
        options.append(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)).map(
            lambda kb: raw[:kb[0]] + bytes([kb[1]]) + raw[kb[0] + 1:]))
    return st.one_of(options)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_stored_run_is_loaded_or_refused_naming_the_store(pristine, data):
    folder, run_id = pristine
    table, column = data.draw(st.sampled_from(TARGETS), label="where")
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        shutil.copytree(folder, work / "store")
        db = work / "store" / "runs.sqlite"
        with sqlite3.connect(db) as con:
            key = "id" if table == "runs" else "run_id"
            rowids = [r[0] for r in con.execute(f"SELECT rowid FROM {table} WHERE {key} = ?", (run_id,))]  # noqa: S608
            rowid = data.draw(st.sampled_from(rowids), label="row")
            original = con.execute(f"SELECT {column} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()[0]  # noqa: S608
            value = data.draw(_damage(original), label="value")
            try:
                con.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (value, rowid))  # noqa: S608
            except sqlite3.IntegrityError:   # a key made equal to another row's: not a state a store can reach
                return
        store = RunStore(work / "store")
        listing = store.runs()                                     # never a traceback for the whole store
        assert len(listing) == 1
        loaded_id = listing["id"].iloc[0]
        try:
            res = store.load(loaded_id)
        except MixcvError as exc:
            assert str(work / "store") in str(exc), str(exc)
            return
        # Loaded: it must also display and export.
        res._repr_html_()
        res.to_frame()
        res.summary  # noqa: B018
        res.predictions  # noqa: B018
    finally:
        shutil.rmtree(work, ignore_errors=True)
