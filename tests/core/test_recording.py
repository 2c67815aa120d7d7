"""Recording is part of the run: nothing is lost silently when the store or a model file fails."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, RunStore, StoreWarning
from mixcv_core.tracking import store as store_module


class HoldsALambda(RegressorMixin, BaseEstimator):
    """Fits fine, cannot be pickled (so its model file cannot be saved)."""

    def fit(self, X, y):
        self.mean_ = float(np.mean(y))
        self.f_ = lambda v: v
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def _cv(grouped, store, **run):
    X, y, g, _ = grouped
    return (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=3).add_model("LinearModel")
            .add_model(HoldsALambda).set_run(store=store, **run))


def test_a_model_that_cannot_be_saved_loses_only_its_file(grouped, tmp_path):
    store = RunStore(tmp_path / "store")
    res = _cv(grouped, store, save_models=True).perform().get_results()
    assert res.recorded and res.record_error is None
    folds = store.folds(res.run_id)
    assert len(folds) == 6 and folds["ok"].all()                    # every metric is stored
    with sqlite3.connect(store.db) as con:
        rows = con.execute("SELECT model, model_file, warnings FROM folds WHERE run_id = ?", (res.run_id,)).fetchall()
    for model, model_file, warns in rows:
        if model == "HoldsALambda":
            assert model_file is None and "model not saved" in warns   # ...with the reason
        else:
            assert model_file is not None
    assert store.runs().loc[0, "status"] == "finished"
    assert not list((store.path / "runs" / res.run_id / "models").glob("HoldsALambda*"))  # no truncated file


def test_a_store_that_fails_mid_run_makes_the_run_say_so(grouped, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "store")
    real = store_module.StoreObserver._fold
    calls = {"n": 0}

    def full_disk(self, outcome):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, outcome)

    monkeypatch.setattr(store_module.StoreObserver, "_fold", full_disk)
    with pytest.warns(StoreWarning, match="stopped recording this run: OperationalError: database or disk is full"):
        res = _cv(grouped, store).perform().get_results()
    assert res.status == "finished" and len(res.to_frame()) == 6     # the run itself is whole
    assert not res.recorded and "disk is full" in res.record_error
    status = store.runs().loc[0, "status"]
    assert status.startswith("incomplete: OperationalError: database or disk is full")
    assert len(store.folds(res.run_id)) == 2                          # what came before is kept
    assert "Not fully recorded in the run store" in res._repr_html_()


def test_quiet_cells_still_say_when_the_store_failed(grouped, tmp_path, monkeypatch, ipython_shell, capsys):
    X, y, g, _ = grouped
    ip = ipython_shell
    ip.run_line_magic("load_ext", "mixcv_jupyter")
    ip.user_ns["df"] = X.assign(y=y, group=g)
    monkeypatch.setattr(store_module.StoreObserver, "_fold",
                        lambda self, o: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    with pytest.warns(StoreWarning):
        ip.run_cell_magic("mixcv", f"-o quiet_res --quiet --store {tmp_path / 's'}",
                          "data: df\ntarget: y\ngroups: group\nouter: KFold(2)\nmodels: [LinearModel]\n")
    err = capsys.readouterr().err
    assert "the run store did not record all of this run" in err and "disk I/O error" in err
