"""A damaged, foreign or read-only run store gets one clear error naming its path, never a raw sqlite error;
and a run is written without costs it does not need (an fsync per commit, its labels encoded twice)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mixcv_core import CrossValidation, MixcvError, RunStore


def _run(grouped, store):
    X, y, g, _ = grouped
    return (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
            .set_run(store=store).perform().get_results())


@pytest.fixture
def damaged(tmp_path):
    folder = tmp_path / "my runs"
    folder.mkdir()
    (folder / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    return folder


def test_a_damaged_store_is_one_clear_error_naming_it(damaged, grouped):
    for attempt in (lambda: RunStore(damaged), lambda: _run(grouped, damaged)):
        with pytest.raises(MixcvError) as info:
            attempt()
        assert info.value.field == "store"
        assert str(damaged / "runs.sqlite") in info.value.message
        assert "Move it aside" in info.value.message and "MIXCV_STORE=off" in info.value.message


def test_the_magic_reports_a_damaged_store_in_one_line(damaged, ipython_shell):
    from IPython.core.error import UsageError
    ip = ipython_shell
    ip.run_line_magic("load_ext", "mixcv_jupyter")
    with pytest.raises(UsageError, match="is not a mixcv run store, or it is damaged"):
        ip.run_line_magic("mixcv", f'runs "{damaged}"')


def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path, grouped):
    folder = tmp_path / "other"
    folder.mkdir()
    with sqlite3.connect(folder / "runs.sqlite") as con:
        con.execute("CREATE TABLE runs (athlete TEXT, km REAL)")
    with pytest.raises(MixcvError, match="SQLite database of something else"):
        _run(grouped, folder)
    with sqlite3.connect(folder / "runs.sqlite") as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert tables == {"runs"}


def test_a_read_only_store_can_be_listed_and_loaded_but_not_recorded_to(tmp_path, grouped, monkeypatch):
    folder = tmp_path / "shared"
    res = _run(grouped, RunStore(folder))
    ro = RunStore(folder, read_only=True)
    assert ro.read_only and ro.runs()["id"].tolist() == [res.run_id]
    assert ro.load(res.run_id).summary.equals(res.summary)
    with pytest.raises(MixcvError, match="read-only: its runs can be listed and loaded"):
        _run(grouped, ro)
    # Detected from the file system (root may write anywhere, so the check is simulated here).
    import mixcv_core.tracking.store as store_module
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    assert RunStore(folder).read_only


def test_the_store_writes_ahead_and_syncs_at_checkpoints_not_at_every_commit(tmp_path, grouped):
    # A run commits every trial and every fold; an fsync apiece (5 ms on this disk) was most of
    # the store's time. WAL with synchronous=NORMAL keeps commits through a process crash.
    store = RunStore(tmp_path / "runs")
    with store._connect() as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL (FULL is 2)
    results = _run(grouped, store)
    reader = sqlite3.connect(store.db)   # another connection, as another process reads the store
    assert reader.execute("SELECT status FROM runs WHERE id = ?", (results.run_id,)).fetchone()[0] == "finished"
    assert reader.execute("SELECT count(*) FROM folds WHERE run_id = ?", (results.run_id,)).fetchone()[0] == 2
    reader.close()


def test_a_recorded_run_encodes_its_row_and_group_labels_once(tmp_path, grouped, monkeypatch):
    # The engine encodes them before the run (to refuse labels the store cannot keep) and the
    # record needs them again: one encoding serves both, and what is stored reads back whole.
    import mixcv_core.tracking.store as store_module
    calls: list[int] = []
    real = store_module.encode_index

    def counted(index):
        calls.append(len(index))
        return real(index)
    monkeypatch.setattr(store_module, "encode_index", counted)
    results = _run(grouped, RunStore(tmp_path / "runs"))
    assert calls == [len(grouped[1])]
    loaded = RunStore(tmp_path / "runs").load(results.run_id)
    assert list(loaded._data.index) == list(results._data.index)
    assert np.array_equal(loaded._data.groups, results._data.groups)
