"""Resume: an interrupted stored run is finished by fitting only what it lacks, and the
results equal an uninterrupted run's. Data: lme4's sleepstudy (tests/data/sleepstudy.csv)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from optuna.distributions import FloatDistribution

from mixcv_core import CrossValidation, RunStore
from mixcv_core.engine import run
from mixcv_core.errors import SpecError
from mixcv_core.run.events import FoldFinished, FoldStarted, TrialFinished

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
TIMES = ["fit_time", "tune_time"]


def _cv():
    return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, known_holdout=0.2)
            .add_model("LinearMixedEffectsModel")
            .add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 10, log=True)})
            .set_inner_cv(n_trials=3))


def test_a_resumed_run_equals_an_uninterrupted_one_and_fits_only_what_was_missing(tmp_path):
    store = RunStore(tmp_path)
    cv = _cv()
    finished: list[tuple[str, int]] = []
    stopped = run(cv.to_spec(), cv._frame, store=store, observers=[
        lambda e: finished.append((e.model, e.fold)) if isinstance(e, FoldFinished) else None],
        stop=lambda: len(finished) >= 3)
    assert stopped.status == "interrupted" and len(stopped.to_frame()) == 3
    assert store.runs().set_index("id").loc[stopped.run_id, "status"] == "interrupted"

    started: list[tuple[str, int]] = []
    resumed = CrossValidation.resume(store, stopped.run_id[:15], cv._frame, observers=[
        lambda e: started.append((e.model, e.fold)) if isinstance(e, FoldStarted) else None])
    whole = _cv().set_run(store=False).perform().get_results()

    assert resumed.status == "finished" and resumed.run_id == stopped.run_id
    assert not set(started) & set(finished)                       # nothing fitted twice
    assert len(started) == 6 - 3
    pd.testing.assert_frame_equal(resumed.to_frame().drop(columns=TIMES), whole.to_frame().drop(columns=TIMES))
    pd.testing.assert_frame_equal(resumed.predictions, whole.predictions)
    back = store.load(stopped.run_id)                              # the stored run is whole now
    assert back.status == "finished"
    pd.testing.assert_frame_equal(back.to_frame().drop(columns=TIMES), whole.to_frame().drop(columns=TIMES))


def test_resume_refuses_other_data(tmp_path):
    store = RunStore(tmp_path)
    cv = _cv()
    res = run(cv.to_spec(), cv._frame, store=store, stop=lambda: True)
    other = cv._frame.assign(Reaction=cv._frame["Reaction"] + 1.0)
    with pytest.raises(SpecError, match="resume: run .* other data"):
        CrossValidation.resume(store, res.run_id, other)


def test_resume_refuses_other_settings(tmp_path):
    store = RunStore(tmp_path)
    cv = _cv()
    res = run(cv.to_spec(), cv._frame, store=store, stop=lambda: True)
    other = cv.to_spec().replace(seed=7)
    with pytest.raises(SpecError, match="resume: run .* other settings"):
        run(other, cv._frame, store=store, resume=res.run_id)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_run_stopped_between_a_tuned_model_and_its_merf_variant_resumes_only_the_variant(tmp_path, n_jobs):
    store = RunStore(tmp_path)
    cv = _cv().add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 10, log=True)},
                         add_merf=True, model_name="tuned").set_merf(False, em_max_iterations=3)
    # Serially, fold 0 is the LMM, Ridge, tuned, then MERF(tuned): stop as tuned's fit is recorded.
    finished: list[tuple[str, int]] = []
    stopped = run(cv.to_spec(), cv._frame, store=store, observers=[
        lambda e: finished.append((e.model, e.fold)) if isinstance(e, FoldFinished) else None],
        stop=lambda: ("tuned", 0) in finished)
    assert stopped.status == "interrupted"
    assert {(o.model, o.fold) for o in stopped.outcomes} == {("LinearMixedEffectsModel", 0), ("Ridge", 0), ("tuned", 0)}

    seen: list = []
    resumed = CrossValidation.resume(store, stopped.run_id, cv._frame, n_jobs=n_jobs, observers=[seen.append])
    whole = cv.set_run(store=False).perform().get_results()
    started = {(e.model, e.fold) for e in seen if isinstance(e, FoldStarted)}
    assert ("MERF(tuned)", 0) in started and ("tuned", 0) not in started
    # Fold 0 is not tuned again: the variant takes the parameters stored with its base's fit.
    assert not [e for e in seen if isinstance(e, TrialFinished) and e.fold == 0]
    assert resumed.status == "finished"
    pd.testing.assert_frame_equal(resumed.to_frame().drop(columns=TIMES), whole.to_frame().drop(columns=TIMES))
    pd.testing.assert_frame_equal(resumed.predictions, whole.predictions)

