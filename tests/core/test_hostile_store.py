"""A run store someone else wrote is data only: loading imports nothing it names, paths it
holds stay inside it, damage is refused naming the run and the store, and a read-only store
can be read (issue 22, items 1, 2, 3, 9, 10)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, MixcvError, RunStore
from mixcv_core.experiment.cell import parse_cell
from mixcv_core.metrics import TASK_DEFAULT_METRICS


def _run(grouped, store, **run):
    X, y, g, _ = grouped
    return (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
            .set_run(store=store, **run).perform().get_results())


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module that, if imported, leaves a file behind: the proof that its code ran."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "planted_module.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("ran")
        from sklearn.linear_model import Ridge as Evil
        def evil_metric(y_true, y_pred):
            return 0.0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("planted_module", None)


def _edit_spec(store, run_id, edit):
    with sqlite3.connect(store.db) as con:
        spec = json.loads(con.execute("SELECT spec FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
        edit(spec)
        con.execute("UPDATE runs SET spec = ? WHERE id = ?", (json.dumps(spec), run_id))


def test_loading_a_stored_run_imports_no_module_its_spec_names(grouped, tmp_path, planted):
    store = RunStore(tmp_path / "store")
    res = _run(grouped, store)

    def plant(spec):
        spec["models"][0]["model"] = "planted_module.Evil"
        # A run whose metrics follow its task stores them as null: plant a table of them.
        spec["metrics"] = {**(spec["metrics"] or {m: m for m in TASK_DEFAULT_METRICS["regression"]}),
                           "odd": "planted_module.evil_metric"}
    _edit_spec(store, res.run_id, plant)
    back = store.load(res.run_id)
    assert not planted.exists() and "planted_module" not in sys.modules
    # The names stay names: shown as written, and the results are all there.
    assert back.spec.unresolved_names() == ["models['LinearModel'].model", "metrics['odd']"]
    assert back.spec.to_dict()["models"][0]["model"] == "planted_module.Evil"
    assert back.to_frame()["test_r2"].tolist() == res.to_frame()["test_r2"].tolist()
    # Re-running or restoring models needs names the user could have typed.
    with pytest.raises(MixcvError, match="is not imported in this session.*import planted_module"):
        back.spec.resolve_names()
    with pytest.raises(MixcvError, match="is not imported"):
        store.load(res.run_id, models=True)
    assert not planted.exists()
    # Once the user imports it themselves, the name is theirs and resolves.
    import planted_module  # noqa: F401
    assert planted.exists()
    assert back.spec.resolve_names().models[0].estimator_class.__name__ == "Ridge"


def test_a_dotted_model_name_in_a_cell_imports_nothing_while_parsed(planted):
    with pytest.raises(MixcvError, match="is not imported in this session"):
        parse_cell("data: df\ntarget: y\nmodels: [planted_module.Evil]\n")
    with pytest.raises(MixcvError, match="is not imported in this session"):
        parse_cell("data: df\ntarget: y\nmodels: [LinearModel]\nmetrics: [planted_module.evil_metric]\n")
    assert not planted.exists()


def test_scikit_learn_and_mixcv_names_still_resolve_without_an_import():
    spec = parse_cell("data: df\ntarget: y\nmodels: [sklearn.svm.SVR]\nmetrics: [sklearn.metrics.r2_score]\n").spec
    assert spec.models[0].estimator_class.__name__ == "SVR" and "r2_score" in spec.metrics


def test_deleting_a_run_whose_stored_id_points_outside_the_store_touches_nothing(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = _run(grouped, store)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    with sqlite3.connect(store.db) as con:
        con.execute("UPDATE runs SET id = '../../victim' WHERE id = ?", (res.run_id,))
    with pytest.raises(MixcvError, match="outside the store"):
        store.delete("../../victim")
    assert (victim / "precious.txt").read_text() == "keep me"


def test_deleting_a_run_whose_folder_is_a_symlink_out_of_the_store_touches_nothing(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = _run(grouped, store)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (store.path / "runs").mkdir(exist_ok=True)
    shutil.rmtree(store.path / "runs" / res.run_id, ignore_errors=True)
    (store.path / "runs" / res.run_id).symlink_to(victim)
    with pytest.raises(MixcvError, match="outside the store"):
        store.delete(res.run_id)
    assert (victim / "precious.txt").exists() and store.runs()["id"].tolist() == [res.run_id]


def test_run_ids_are_matched_as_text_not_as_sql_wildcards(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = _run(grouped, store)
    for pattern in ("_", "%", res.run_id[:3] + "%"):
        with pytest.raises(MixcvError, match="no run"):
            store.delete(pattern)
    assert store.runs()["id"].tolist() == [res.run_id]
    assert store.load(res.run_id[:8]).run_id == res.run_id


def test_two_models_whose_names_read_alike_keep_their_own_model_files(grouped, tmp_path):
    X, y, g, _ = grouped
    store = RunStore(tmp_path / "store")
    res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2)
           .add_model("LinearModel", model_name="m.1").add_model("Ridge", model_name="m_1")
           .set_run(store=store, save_models=True).perform().get_results())
    back = store.load(res.run_id, models=True)
    kinds = {o.model: type(o.estimator).__name__ for o in back.outcomes}
    assert kinds == {"m.1": "LinearModel", "m_1": "Ridge"}


# -- damage inside an otherwise valid store (item 9) ---------------------------------------

def _two_runs(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    return store, _run(grouped, store), _run(grouped, store)


@pytest.mark.parametrize("damage", [
    "UPDATE folds SET metrics = 'not json' WHERE run_id = :rid",
    "UPDATE runs SET models = '{broken' WHERE id = :rid",
    "UPDATE runs SET created = 'yesterday' WHERE id = :rid",
])
def test_one_damaged_run_leaves_the_other_runs_listable(grouped, tmp_path, damage):
    store, bad, good = _two_runs(grouped, tmp_path)
    with sqlite3.connect(store.db) as con:
        con.execute(damage, {"rid": bad.run_id})
    listing = store.runs().set_index("id")
    assert listing.loc[bad.run_id, "status"] == "damaged"
    assert listing.loc[good.run_id, "status"] == "finished"
    assert store.load(good.run_id).summary.equals(good.summary)


@pytest.mark.parametrize("damage", [
    "UPDATE folds SET metrics = 'not json' WHERE run_id = :rid",
    "DELETE FROM splits WHERE run_id = :rid AND fold = 1",
    "UPDATE folds SET fold = 7 WHERE run_id = :rid AND fold = 1",
    "UPDATE folds SET y_pred = x'00ff' WHERE run_id = :rid",
    "UPDATE run_data SET meta = '{}' WHERE run_id = :rid",
    "UPDATE run_data SET row_index = '[1, 2' WHERE run_id = :rid",
    "DELETE FROM run_data WHERE run_id = :rid",
    "UPDATE runs SET spec = '{\"data\": 3}' WHERE id = :rid",
    "UPDATE folds SET best_params = '[1]' WHERE run_id = :rid",
])
def test_loading_a_damaged_run_names_the_run_the_store_and_the_way_out(grouped, tmp_path, damage):
    store, bad, good = _two_runs(grouped, tmp_path)
    with sqlite3.connect(store.db) as con:
        con.execute(damage, {"rid": bad.run_id})
    with pytest.raises(MixcvError) as info:
        store.load(bad.run_id)
    message = info.value.message
    assert bad.run_id in message and str(store.db) in message and "store.delete" in message
    assert store.load(good.run_id).summary.equals(good.summary)


def test_the_runs_command_lists_a_store_with_one_damaged_run(grouped, tmp_path, ipython_shell, capsys):
    store, bad, good = _two_runs(grouped, tmp_path)
    with sqlite3.connect(store.db) as con:
        con.execute("UPDATE folds SET metrics = 'not json' WHERE run_id = ?", (bad.run_id,))
    ipython_shell.run_line_magic("load_ext", "mixcv_jupyter")
    shown = ipython_shell.run_line_magic("mixcv", f'runs "{store.path}"')
    text = shown.to_string() if isinstance(shown, pd.DataFrame) else str(shown) + capsys.readouterr().out
    assert bad.run_id in text and good.run_id in text and "damaged" in text


# -- a store on a read-only file system (item 10) ------------------------------------------

def test_a_store_on_a_read_only_file_system_can_be_listed_and_loaded(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = _run(grouped, store)
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = (f"import sys; sys.path.insert(0, {str(sys.path[0])!r}); from mixcv_core import RunStore; "
              f"s = RunStore({str(mount)!r}); assert s.read_only; "
              f"print(s.runs()['id'].tolist()[0], s.load({res.run_id!r}).summary.shape)")
    # A real read-only mount (a private mount namespace): SQLite cannot make its -shm file there.
    shell = (f"mount --bind {store.path} {mount} && mount -o remount,ro,bind {mount} && "
             f"{sys.executable} -c \"{script}\"")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {tmp_path} {mount} && echo ok"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.strip()}")
    out = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == res.run_id


def test_a_store_path_starting_with_a_tilde_means_the_home_folder(tmp_path, monkeypatch):
    from mixcv_core.tracking.store import default_store
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MIXCV_STORE", "~/runs")
    monkeypatch.chdir(tmp_path)
    store = default_store()
    assert store is not None and store.path == tmp_path / "runs" and (tmp_path / "runs" / "runs.sqlite").exists()
    assert not (tmp_path / "~").exists()


class _Unpicklable(RegressorMixin, BaseEstimator):
    """A fitted model holding a lock (joblib cannot pickle it)."""

    def fit(self, X, y):
        import threading
        self.lock_ = threading.Lock()
        self.mean_ = float(y.mean())
        return self

    def predict(self, X):
        import numpy as np
        return np.full(len(X), self.mean_)


def test_a_model_that_cannot_be_saved_is_said_at_run_time(grouped, tmp_path):
    from mixcv_core import StoreWarning
    X, y, g, _ = grouped
    store = RunStore(tmp_path / "store")
    with pytest.warns(StoreWarning, match="model not saved: TypeError"):
        res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model(_Unpicklable)
               .set_run(store=store, save_models=True).perform().get_results())
    assert all(o.ok for o in res.outcomes)


class _Exits(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        raise SystemExit("the model called sys.exit")

    def predict(self, X):
        return X[:, 0]


def test_a_model_calling_sys_exit_fails_only_its_folds_in_a_serial_run(grouped):
    from mixcv_core import FoldFailedWarning
    X, y, g, _ = grouped
    with pytest.warns(FoldFailedWarning):
        res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
               .add_model(_Exits).set_run(store=False).perform().get_results())
    ok = {o.model: o.ok for o in res.outcomes}
    assert ok == {"LinearModel": True, "_Exits": False}
    assert res.status == "finished" and "SystemExit" in res.failures["error"].iloc[0]
