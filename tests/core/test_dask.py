"""The Dask backend: a real LocalCluster of worker processes (and one reached by its
scheduler's address) gives the serial run's results, with live events from the workers
reaching the observers and the run store. Data: lme4's sleepstudy (tests/data/sleepstudy.csv).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import RecordsThreads
from optuna.distributions import FloatDistribution

from mixcv_core import CrossValidation, RunStore
from mixcv_core.engine import run
from mixcv_core.errors import SpecError
from mixcv_core.run import cluster
from mixcv_core.run.events import EMIteration, FoldFinished, FoldStarted, RunStarted, TrialFinished

distributed = pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
TIMES = ["fit_time", "tune_time"]


def _cv(**run_settings):
    return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, known_holdout=0.2)
            .add_model("LinearMixedEffectsModel")
            .add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 10, log=True)},
                       add_merf=True)
            .set_inner_cv(n_trials=3).set_merf(em_max_iterations=4).set_run(**{"store": False, **run_settings}))


@pytest.fixture(scope="module")
def serial():
    return _cv().perform().get_results()


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMES), b.to_frame().drop(columns=TIMES))
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    pd.testing.assert_frame_equal(a.known_predictions, b.known_predictions)


def test_a_local_dask_cluster_gives_the_serial_results_with_live_events_and_a_whole_store(serial, tmp_path):
    events: list = []
    store = RunStore(tmp_path)
    res = _cv(backend="dask", n_jobs=2, store=store, observers=[events.append]).perform().get_results()
    _same(res, serial)
    kinds = Counter(type(e).__name__ for e in events)
    # Progress from inside the workers' tasks reached this process: every trial of the
    # tuned Ridge (3 folds x 3 trials) and MERF's EM iterations.
    assert kinds["TrialFinished"] == 9 and kinds["EMIteration"] >= 3 and kinds["FoldFinished"] == 9
    assert all(e.fold in (0, 1, 2) for e in events if isinstance(e, (TrialFinished, EMIteration)))
    back = store.load(res.run_id)
    assert back.status == "finished" and back.spec.backend == "dask"
    pd.testing.assert_frame_equal(back.to_frame().drop(columns=TIMES), serial.to_frame().drop(columns=TIMES))


def test_on_one_dask_thread_the_tuned_model_starts_first_and_its_merf_variant_after_it(serial):
    events: list = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        res = _cv(backend="dask", scheduler=lc.scheduler_address, observers=[events.append]).perform().get_results()
    _same(res, serial)
    started = {(e.model, e.fold): n for n, e in enumerate(events) if isinstance(e, FoldStarted)}
    finished = {(e.model, e.fold): n for n, e in enumerate(events) if isinstance(e, FoldFinished)}
    # In task order the LMM of fold 0 would come first; the schedule starts the tuned Ridge,
    # whose variant waits for it, and submits the variant once Ridge's task has returned.
    first = min(started, key=started.get)
    assert first[0] == "Ridge"
    assert all(started[("MERF(Ridge)", k)] > finished[("Ridge", k)] for k in range(3))

def test_an_existing_cluster_by_its_scheduler_address(serial):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc, set_as_default=False) as client:
        res = _cv(backend="dask", scheduler=lc.scheduler_address).perform().get_results()
        _same(res, serial)
        # The run's progress topic is removed from the scheduler when the run ends.
        topics = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler._broker._topics))
        assert not [t for t in topics if t.startswith("mixcv-")]
        # Two task threads on this worker: each task's native pools get cores // 2.
        cap = max(1, __import__("joblib").cpu_count() // 2)
        threads = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
                   .set_splits("GroupKFold", n_splits_out=3).add_model(RecordsThreads)
                   .set_run(backend="dask", scheduler=lc.scheduler_address, store=False).perform().get_results())
        for est in threads.models.values():
            assert est.pools_ and all(n <= cap for n in est.pools_.values()), est.pools_


def test_a_local_cluster_worker_runs_with_its_share_of_the_cores():
    from mixcv_core.run.parallel import worker_threads
    res = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
           .set_splits("GroupKFold", n_splits_out=4).add_model(RecordsThreads)
           .set_run(backend="dask", n_jobs=2, store=False).perform().get_results())
    for est in res.models.values():
        assert est.omp_env_ == str(worker_threads(2))
        assert est.pools_ and all(n <= worker_threads(2) for n in est.pools_.values()), est.pools_


def test_starting_a_local_cluster_leaves_the_calling_process_environment_as_it_was():
    """distributed's nannies set their workers' OMP_NUM_THREADS=1, PYTHONHASHSEED and others in
    the parent's environment: a kernel's later OpenMP runtime and subprocesses would inherit them.
    The workers still start with their share of the cores in theirs."""
    import os

    from mixcv_core.run.parallel import worker_threads
    cluster.close_local_cluster()   # a cluster started here, not one a test before kept
    before = dict(os.environ)
    res = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
           .set_splits("GroupKFold", n_splits_out=2).add_model(RecordsThreads)
           .set_run(backend="dask", n_jobs=2, store=False).perform().get_results())
    assert dict(os.environ) == before
    assert {est.omp_env_ for est in res.models.values()} == {str(worker_threads(2))}


def test_an_unreachable_scheduler_is_refused_before_the_run_starts(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    events: list = []
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as info:
        _cv(backend="dask", scheduler="tcp://127.0.0.1:9", observers=[events.append]).perform()
    assert info.value.field == "scheduler" and "could not reach the Dask scheduler at 'tcp://127.0.0.1:9'" in str(
        info.value)
    assert not [e for e in events if isinstance(e, RunStarted)]   # nothing started, nothing stored
    assert time.perf_counter() - t0 < 60   # not a hang (the bound is loose: it is the connect timeout's)


def test_failures_on_dask_are_kept_or_raised_as_locally():
    from test_on_error import Explodes
    X = SLEEP[["Days"]]

    def cv(on_error):
        return (CrossValidation().set_data(X, SLEEP["Reaction"], SLEEP["Subject"]).set_splits("GroupKFold",
                                                                                               n_splits_out=3)
                .add_model("LinearModel").add_model(Explodes, model_kwargs={"limit": 100})
                .set_run(backend="dask", n_jobs=2, store=False, on_error=on_error))

    with pytest.warns(Warning, match="model fit"):
        res = cv("keep").perform().get_results()
    assert len(res.failures) == 3 and "ArithmeticError: cannot fit" in res.failures.iloc[0]["error"]
    assert sorted(res.to_frame()["model"]) == ["LinearModel"] * 3
    with pytest.raises(ArithmeticError, match="cannot fit"):
        cv("raise").perform()


def test_an_interrupted_dask_run_keeps_its_finished_folds_and_the_next_run_works(serial):
    finished: list = []
    cv = _cv(backend="dask", n_jobs=2)
    res = run(cv.to_spec(), cv._frame, store=False,
              observers=[lambda e: finished.append(e) if isinstance(e, FoldFinished) else None],
              stop=lambda: len(finished) >= 1)
    assert res.status == "interrupted"
    kept = res.to_frame()
    assert 1 <= len(kept) < 9
    whole = serial.to_frame().set_index(["model", "fold"])
    for _, row in kept.iterrows():   # what was kept is what the serial run computed
        assert np.isclose(row["test_r2"], whole.loc[(row["model"], row["fold"]), "test_r2"])
    # The interrupted run's workers were stopped with their cluster; the next run starts another.
    _same(_cv(backend="dask", n_jobs=2).perform().get_results(), serial)


def test_a_run_stopped_locally_is_finished_on_dask_with_the_same_results(serial, tmp_path):
    store = RunStore(tmp_path)
    finished: list = []
    cv = _cv(store=store)
    stopped = run(cv.to_spec(), cv._frame, store=store,
                  observers=[lambda e: finished.append(e) if isinstance(e, FoldFinished) else None],
                  stop=lambda: len(finished) >= 3)
    assert stopped.status == "interrupted"
    resumed = CrossValidation.resume(store, stopped.run_id, cv._frame, backend="dask", n_jobs=2)
    assert resumed.status == "finished"
    _same(resumed, serial)


class DiesOnBigFolds(RecordsThreads):
    """Kills its own process (as the out-of-memory killer would) when fitted on more than 100 rows."""

    def fit(self, X, y):
        if len(y) > 100:
            import os
            os._exit(3)
        return super().fit(X, y)


def test_a_worker_that_dies_fails_its_fold_loudly_and_the_other_folds_are_kept():
    import dask
    rows = np.arange(len(SLEEP))
    # Two small folds (90 training rows) and one big one (170): only the big one kills its worker.
    splits = [(rows[:90], rows[90:]), (rows[90:], rows[:90]), (rows[10:], rows[:10])]
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        with pytest.warns(Warning, match="1 model fit"):
            res = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
                   .set_splits(split_out=splits).add_model(DiesOnBigFolds)
                   .set_run(backend="dask", scheduler=lc.scheduler_address, store=False).perform().get_results())
    assert res.status == "finished" and sorted(res.to_frame()["fold"]) == [0, 1]
    failure = res.failures.iloc[0]
    assert failure["fold"] == 2 and "the Dask worker running it died" in failure["error"]


class _Done:
    """A done future as the client sees it: a status, and what fetching its result does."""

    def __init__(self, status, result=None, exc=None, forgotten=False):
        self.status, self._result, self._exc, self._forgotten = status, result, exc, forgotten

    def result(self):
        if self._forgotten:
            raise distributed.client.FutureCancelledError("k", reason="already forgotten")
        return self._result

    def exception(self):
        if self._forgotten:
            raise distributed.client.FutureCancelledError("k", reason="already forgotten")
        return self._exc


def test_how_a_done_task_ended_is_read_safely_even_when_the_scheduler_forgot_it():
    from mixcv_core.run.cluster import _settle
    killed = distributed.KilledWorker("k", "tcp://w", 0)
    assert _settle(_Done("finished", result=[b"x"]), distributed) == ("finished", [b"x"])
    assert _settle(_Done("error", exc=killed), distributed) == ("killed", killed)
    boom = ArithmeticError("boom")
    assert _settle(_Done("error", exc=boom), distributed) == ("error", boom)
    assert _settle(_Done("cancelled"), distributed) == ("cancelled", None)
    # Seen after a worker died: done, then gone before its result could be fetched.
    assert _settle(_Done("finished", forgotten=True), distributed) == ("cancelled", None)
    assert _settle(_Done("error", forgotten=True), distributed) == ("cancelled", None)
