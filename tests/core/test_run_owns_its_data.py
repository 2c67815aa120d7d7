"""A run owns its data from the moment it starts (issue 22, item 7): a notebook editing the
DataFrame while a run goes on (the form runs in a background thread) changes neither the
later folds nor what is stored."""

from __future__ import annotations

import numpy as np

from mixcv_core import CrossValidation, RunStore
from mixcv_core.engine import run
from mixcv_core.run.events import FoldFinished
from mixcv_core.synthesizer import generate_grouped_regression


def test_editing_the_frame_during_a_run_changes_neither_later_folds_nor_the_stored_target(tmp_path):
    X, y, g, _ = generate_grouped_regression(6, 15, random_seed=3, n_features=2)
    frame = X.assign(y=y.to_numpy(), g=g.to_numpy())
    spec = (CrossValidation().set_data(frame[["X0", "X1"]], frame["y"], frame["g"])
            .set_splits("GroupKFold", n_splits_out=3).add_model("LinearModel").to_spec())
    untouched = run(spec, frame.copy(), store=False)

    def vandal(event):
        if isinstance(event, FoldFinished) and event.fold == 0:
            frame.loc[:, "y"] = 1.0           # in place, as another cell (or thread) may
            frame.loc[:, "X0"] = 0.0

    store = RunStore(tmp_path)
    edited = run(spec, frame, store=store, observers=[vandal])
    assert (frame["y"] == 1.0).all()    # the edit happened while the run went on
    assert edited.to_frame()["test_r2"].tolist() == untouched.to_frame()["test_r2"].tolist()
    assert np.array_equal(store.load(edited.run_id)._data.y, untouched._data.y)
