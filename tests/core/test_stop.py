"""A front end's Stop: ``run(..., stop=...)`` ends the run like Ctrl-C, keeping finished folds."""

from __future__ import annotations

import pytest
from _helpers import SlowMean

from mixcv_core import CrossValidation
from mixcv_core.engine import run
from mixcv_core.run.events import FoldFinished
from mixcv_core.synthesizer import generate_grouped_regression


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_stop_keeps_what_finished_and_says_interrupted(n_jobs):
    X, y, g, _ = generate_grouped_regression(8, 10, random_seed=0, n_features=2)
    cv = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=8)
          .add_model(SlowMean, model_kwargs={"delay": 0.2}).set_run(n_jobs=n_jobs))
    finished: list[int] = []

    def watch(event):
        if isinstance(event, FoldFinished):
            finished.append(event.fold)

    res = run(cv.to_spec(), cv._frame, observers=[watch], store=False, stop=lambda: len(finished) >= 2)
    assert res.status == "interrupted"
    assert 2 <= len(res.to_frame()) < 8
    # Every fit announced as finished is in the results, even the one whose event the
    # stop came with (its task never returned).
    assert set(finished) <= set(res.to_frame()["fold"])
