"""Resume finishes only the run it began, on the data it began with (issue 22, items 5 and 6):
a changed or dropped feature column is named, a differing setting is named, a finished run
or one still running elsewhere is refused and its stored status left as it was."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mixcv_core import CrossValidation, MixcvError, RunStore
from mixcv_core.engine import run
from mixcv_core.run.events import FoldFinished


def _cv(frame):
    return (CrossValidation().set_data(frame[["x1", "x2"]], frame["y"], frame["g"])
            .set_splits("GroupKFold", n_splits_out=3).add_model("LinearModel"))


@pytest.fixture
def frame(grouped):
    X, y, g, _ = grouped
    return X.iloc[:, :2].set_axis(["x1", "x2"], axis=1).assign(y=y.to_numpy(), g=g.to_numpy())


def _interrupted(frame, store):
    cv = _cv(frame)
    seen = []
    res = run(cv.to_spec(), cv._frame, store=store, stop=lambda: len(seen) >= 1,
              observers=[lambda e: seen.append(e) if isinstance(e, FoldFinished) else None])
    assert res.status == "interrupted"
    return res


def _status(store, run_id):
    return store.runs().set_index("id").loc[run_id, "status"]


def test_resume_names_a_feature_column_replaced_by_noise(frame, tmp_path):
    store = RunStore(tmp_path)
    res = _interrupted(frame, store)
    noisy = frame.assign(x1=np.random.default_rng(0).normal(size=len(frame)))
    with pytest.raises(MixcvError, match="other data: column 'x1' has other values"):
        CrossValidation.resume(store, res.run_id, noisy)
    assert _status(store, res.run_id) == "interrupted"
    assert CrossValidation.resume(store, res.run_id, frame).status == "finished"


def test_resume_names_a_setting_that_differs(frame, tmp_path):
    store = RunStore(tmp_path)
    res = _interrupted(frame, store)
    other = _cv(frame).set_splits("GroupKFold", n_splits_out=4).to_spec()
    with pytest.raises(MixcvError, match=r"other settings \(outer.n_splits: 3 then, 4 now\)"):
        run(other, _cv(frame)._frame, store=store, resume=res.run_id)


def test_resuming_a_finished_run_is_refused_and_leaves_it_finished(frame, tmp_path):
    store = RunStore(tmp_path)
    res = _cv(frame).set_run(store=store).perform().get_results()
    for n_jobs in (None, 2):
        with pytest.raises(MixcvError, match="is finished; there is nothing to resume"):
            CrossValidation.resume(store, res.run_id, frame, n_jobs=n_jobs)
    assert _status(store, res.run_id) == "finished"


def test_a_run_still_running_in_another_process_cannot_be_resumed(frame, tmp_path):
    import os
    store = RunStore(tmp_path)
    res = _interrupted(frame, store)
    with sqlite3.connect(store.db) as con:   # as a live process on this machine leaves it
        con.execute("UPDATE runs SET status = 'running', pid = ? WHERE id = ?", (os.getppid(), res.run_id))
    with pytest.raises(MixcvError, match="is still running"):
        CrossValidation.resume(store, res.run_id, frame)
    assert _status(store, res.run_id) == "running"
