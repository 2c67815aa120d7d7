"""The run store: reload equals the run, a killed process keeps its finished folds,
concurrent writers do not corrupt each other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.tracking.store import RunStore

HERE = Path(__file__).parent


def full_run(grouped, store, **run):
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes, dataset_name="toy")
            .set_splits("GroupKFold", "KFold", n_splits_out=3, n_splits_in=2).set_inner_cv(3)
            .add_model("LinearModel", post_processor="mixcv_core.model_postprocessing.LinearModelPostProcessor")
            .add_model(LinearMixedEffectsModel)
            .add_model("DecisionTreeRegressor", requires_inner_cv=True, add_merf=True,
                       params={"max_depth": optuna.distributions.IntDistribution(1, 4)})
            .set_merf(em_max_iterations=3).set_run(store=store, **run).perform().get_results())


def test_a_stored_run_reloads_to_equal_results(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = full_run(grouped, store)
    back = store.load(res.run_id)
    pd.testing.assert_frame_equal(back.to_frame(include_failed=True), res.to_frame(include_failed=True))
    pd.testing.assert_frame_equal(back.summary, res.summary)
    pd.testing.assert_frame_equal(back.predictions, res.predictions)
    assert back.spec == res.spec and back.status == "finished" and back.run_id == res.run_id
    for key, hist in res.histories.items():
        pd.testing.assert_frame_equal(back.histories[key], hist, check_dtype=False)
    for key, table in res.insights.items():
        pd.testing.assert_frame_equal(back.insights[key], table, check_dtype=False)
    for key, study in res.studies.items():
        assert back.studies[key].best_value == study.best_value
        assert back.studies[key].best_params == study.best_params
    assert "mixcv-report" in back._repr_html_()
    listing = store.runs()
    assert listing.loc[0, "status"] == "finished" and listing.loc[0, "fits"] == "12/12"
    # The convergence figure is drawn on demand from the stored histories, not rendered into the store.
    assert not (store.run_dir(res.run_id) / "convergence.png").exists()
    assert len(back.plot_convergence().axes) == len(res.plot_convergence().axes) > 0
    assert store.load(res.run_id[:12]).run_id == res.run_id  # a unique prefix is enough


def test_models_are_saved_on_request_and_loaded_only_when_asked(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = full_run(grouped, store, save_models=True)
    assert store.load(res.run_id).models == {}          # by default nothing is unpickled
    back = store.load(res.run_id, models=True)
    X = grouped[0]
    for key, model in res.models.items():
        if key[0] == "LinearModel":
            np.testing.assert_allclose(back.models[key].predict(X), model.predict(X))


class _Payload:
    """Unpickling this runs code (writes a file): what a hostile model file would do."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_a_swapped_model_file_is_not_unpickled(grouped, tmp_path):
    import sqlite3

    import joblib
    store = RunStore(tmp_path / "store")
    res = full_run(grouped, store, save_models=True)
    with sqlite3.connect(store.db) as con:
        (model_file,) = con.execute("SELECT model_file FROM folds WHERE model_file IS NOT NULL LIMIT 1").fetchone()
    flag = tmp_path / "ran"
    joblib.dump(_Payload(str(flag)), store.path / model_file)    # someone swaps the file
    with pytest.raises(MixcvError, match="does not match the checksum"):
        store.load(res.run_id, models=True)
    assert not flag.exists()
    store.load(res.run_id)                                     # the rest of the run still loads


def test_a_model_path_outside_the_store_is_refused(grouped, tmp_path):
    import sqlite3

    import joblib
    store = RunStore(tmp_path / "store")
    res = full_run(grouped, store, save_models=True)
    outside = tmp_path / "elsewhere.joblib"
    joblib.dump(_Payload(str(tmp_path / "ran")), outside)
    for path in (str(outside), "../elsewhere.joblib"):
        with sqlite3.connect(store.db) as con:
            con.execute("UPDATE folds SET model_file = ? WHERE model_file IS NOT NULL", (path,))
        with pytest.raises(MixcvError, match="outside the store folder"):
            store.load(res.run_id, models=True)
    assert not (tmp_path / "ran").exists()


def test_store_can_be_switched_off(grouped, tmp_path, monkeypatch):
    monkeypatch.setenv("MIXCV_STORE", "off")
    res = full_run(grouped, None)
    assert res.run_id is None
    monkeypatch.setenv("MIXCV_STORE", str(tmp_path / "env-store"))
    res = full_run(grouped, None)
    assert RunStore(tmp_path / "env-store").runs()["id"].tolist() == [res.run_id]


SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from mixcv_core import CrossValidation
from mixcv_core.synthesizer import generate_grouped_regression
from _helpers import SlowMean
X, y, g, _ = generate_grouped_regression(6, 10, random_seed={seed})
(CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=3)
 .add_model("LinearModel").add_model(SlowMean, model_kwargs={{"delay": {delay}}})
 .set_run(store={store!r}).perform())
"""


def start(store: Path, delay: float, seed: int = 0) -> subprocess.Popen:
    code = textwrap.dedent(SCRIPT.format(helpers=str(HERE), store=str(store), delay=delay, seed=seed))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def fits_done(store: RunStore) -> int:
    runs = store.runs()
    return 0 if runs.empty else int(runs.loc[0, "fits"].split("/")[0])


def test_a_killed_process_keeps_its_finished_folds(tmp_path):
    path = tmp_path / "store"
    store = RunStore(path)
    proc = start(path, delay=1.0)
    deadline = time.time() + 120
    while fits_done(store) < 3 and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = store.runs()
    assert runs.loc[0, "status"] == "interrupted"
    res = store.load(runs.loc[0, "id"])
    table = res.to_frame()
    assert len(table) >= 3 and len(table) < 6
    assert res.status == "interrupted"
    # Everything that finished is complete: metrics and the out-of-fold predictions.
    assert table[["test_r2", "test_mse"]].notna().all().all()
    assert len(res.predictions) == table["n_test"].sum()


def test_two_processes_write_runs_at_once(tmp_path):
    path = tmp_path / "store"
    RunStore(path)
    procs = [start(path, delay=0.05, seed=s) for s in (1, 2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    store = RunStore(path)
    runs = store.runs()
    assert len(runs) == 2 and (runs["status"] == "finished").all() and (runs["fits"] == "6/6").all()
    for rid in runs["id"]:
        assert len(store.load(rid).to_frame()) == 6


def test_unknown_run_id(tmp_path):
    from mixcv_core import MixcvError
    with pytest.raises(MixcvError) as info:
        RunStore(tmp_path).load("nope")
    assert info.value.field == "run_id"


def test_fold_rows_are_readable_without_rebuilding(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = full_run(grouped, store)
    rows = store.folds(res.run_id)
    table = res.to_frame()
    assert len(rows) == len(table) and rows["ok"].all()
    merged = rows.merge(table, on=["model", "fold"], suffixes=("", "_res"))
    np.testing.assert_allclose(merged["test_r2"], merged["test_r2_res"])


PARALLEL_SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from mixcv_core import CrossValidation
from mixcv_core.synthesizer import generate_grouped_regression
from _helpers import SlowMean
X, y, g, _ = generate_grouped_regression(6, 10, random_seed=0)
(CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=3)
 .add_model(SlowMean, model_kwargs={{"delay": 5.0}}).set_run(store={store!r}, n_jobs=2).perform())
"""


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        out |= {int(c) for c in text.split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"   # a zombie has exited; only its parent's bookkeeping is left


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from Linux's /proc")
def test_no_process_of_a_killed_parallel_run_outlives_it(tmp_path):
    code = textwrap.dedent(PARALLEL_SCRIPT.format(helpers=str(HERE), store=str(tmp_path / "store")))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    children: set[int] = set()
    while len(children) < 3 and time.time() < deadline:   # two workers, loky's resource tracker
        assert proc.poll() is None, proc.stderr.read().decode()
        children = _children(proc.pid)
        time.sleep(0.1)
    assert len(children) >= 3, children
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while any(_alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.2)
    left = [c for c in children if _alive(c)]
    for c in left:   # do not leave them behind even when the test fails
        os.kill(c, signal.SIGKILL)
    assert left == [], f"still running {time.time() - deadline + 15:.0f} s after the kill: {left}"
