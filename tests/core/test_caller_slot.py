"""With ``n_jobs=2`` the calling process is one of the two: it runs tasks in a thread of its
own beside one worker process, for mixcv's and scikit-learn's models without a time limit
(issue 29: a first run pays one worker's start-up, and the run holds one interpreter less).
Other models keep to worker processes, where a crash fails one fold and not the kernel."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
from _helpers import LeavesItsPid, RecordsThreads

from mixcv_core import CrossValidation
from mixcv_core.run import parallel
from mixcv_core.run.events import FoldFinished
from mixcv_core.run.parallel import in_caller, worker_threads
from mixcv_core.synthesizer import generate_grouped_regression


@pytest.fixture
def grouped():
    X, y, g, _ = generate_grouped_regression(6, 20, random_seed=3, n_features=3)
    return X, y, g


def _spec(grouped, *models, **run):
    X, y, g = grouped
    cv = CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=3)
    for m in models:
        cv = cv.add_model(m[0], model_kwargs=m[1]) if isinstance(m, tuple) else cv.add_model(m)
    return cv.set_run(store=False, **run)


@pytest.mark.parametrize(("models", "run", "expected"), [
    (["LinearModel", "RandomForestRegressor"], {"n_jobs": 2}, True),
    (["LinearMixedEffectsModel"], {"n_jobs": 2}, True),
    (["LinearModel", LeavesItsPid], {"n_jobs": 2}, False),            # a class of the user's own
    (["LinearModel"], {"n_jobs": 2, "timeout": 60}, False),          # only a process can be stopped
    (["LinearModel"], {"n_jobs": 2, "backend": "dask"}, False),
    (["LinearModel", "GPBoostRegressor"], {"n_jobs": 2}, False),     # mixcv's, around GPBoost's C++ library
])
def test_which_runs_use_the_calling_process_as_a_worker(grouped, models, run, expected):
    assert in_caller(_spec(grouped, *models, **run).to_spec()) is expected


def test_a_stack_with_a_member_of_the_users_own_keeps_to_worker_processes(grouped):
    from sklearn.ensemble import StackingRegressor
    from sklearn.linear_model import Ridge
    trusted = [("ridge", Ridge()), ("ridge2", Ridge(alpha=2.0))]
    ok = _spec(grouped, (StackingRegressor, {"estimators": trusted}), n_jobs=2)
    assert in_caller(ok.to_spec())
    mixed = _spec(grouped, (StackingRegressor, {"estimators": [*trusted, ("mine", LeavesItsPid())]}), n_jobs=2)
    assert not in_caller(mixed.to_spec())
    # One level further down: a scikit-learn pipeline, itself trusted, holding the user's step.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    nested = [*trusted, ("piped", make_pipeline(StandardScaler(), LeavesItsPid()))]
    assert not in_caller(_spec(grouped, (StackingRegressor, {"estimators": nested}), n_jobs=2).to_spec())
    piped = [*trusted, ("piped", make_pipeline(StandardScaler(), Ridge()))]
    assert in_caller(_spec(grouped, (StackingRegressor, {"estimators": piped}), n_jobs=2).to_spec())
    # A class of the user's own as an argument (final_estimator given as a class, say).
    assert not in_caller(_spec(grouped, (StackingRegressor, {"estimators": trusted, "final_estimator": LeavesItsPid}),
                               n_jobs=2).to_spec())


def test_tasks_run_in_the_caller_and_in_one_worker_with_the_serial_results(grouped, tmp_path, monkeypatch):
    """LeavesItsPid (counted as trusted here) leaves a file named for the process of each fit:
    with n_jobs=2 some fits are the caller's and the rest one worker's; the predictions are
    those of a serial run."""
    pools = []
    real = parallel._executor
    monkeypatch.setattr(parallel, "_executor", lambda workers, threads: pools.append(workers) or real(workers, threads))
    monkeypatch.setattr(parallel, "TRUSTED_MODULES", (*parallel.TRUSTED_MODULES, "_helpers"))
    X, y, g = grouped

    def spec(**kwargs):
        return (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=6)
                .add_model(LeavesItsPid, model_kwargs=kwargs).add_model("LinearModel"))

    # The worker warm before the run (loky keeps it between runs), as in a notebook's second
    # run: started cold, it may still be importing while the caller does every task.
    spec(delay=0.0).set_run(n_jobs=2, store=False).perform()
    for started in parallel.warm_workers(spec().set_run(n_jobs=2, store=False).to_spec(), 6):
        started.result(timeout=120)
    for name in os.listdir(tmp_path):
        os.remove(tmp_path / name)

    res = spec(folder=str(tmp_path), delay=0.3).set_run(n_jobs=2, store=False).perform().get_results()
    pids = {name.split("-")[0] for name in os.listdir(tmp_path)}
    assert str(os.getpid()) in pids and len(pids) == 2, pids
    assert set(pools) == {1}                                    # one worker process, not two
    serial = spec(delay=0.0).set_run(n_jobs=1, store=False).perform().get_results()
    pd.testing.assert_frame_equal(res.predictions, serial.predictions)
    assert res.status == serial.status == "finished"


def test_while_the_worker_still_imports_the_caller_runs_every_task_on_its_own_share(grouped, monkeypatch):
    """A first run's worker imports for seconds before it can fit. A task handed to it then
    would wait there while the caller could run it: until the worker is ready (here: never, its
    warm-up future is never done) the caller takes every task, one after the other, each on
    its own share of the cores (the importing worker's core is busy, not lent), with a serial
    run's results."""
    from concurrent.futures import Future

    import mixcv_core.engine as engine
    monkeypatch.setattr(engine, "warm_workers", lambda spec, width: [Future()])
    monkeypatch.setattr(parallel, "TRUSTED_MODULES", (*parallel.TRUSTED_MODULES, "_helpers"))
    X, y, g = grouped

    def spec():
        return (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=6)
                .add_model(RecordsThreads))

    res = spec().set_run(n_jobs=2, store=False).perform().get_results()
    fits = list(res.models.values())
    assert len(fits) == 6
    assert {est.pid_ for est in fits} == {os.getpid()}
    assert {est.cores_ for est in fits} == {worker_threads(2)}
    serial = spec().set_run(n_jobs=1, store=False).perform().get_results()
    pd.testing.assert_frame_equal(res.predictions, serial.predictions)
    assert res.status == serial.status == "finished"


def test_a_task_in_the_caller_holds_its_native_pools_to_a_workers_share(grouped, monkeypatch):
    """RecordsThreads (trusted here) reads every native pool's size while it fits: in the
    caller as in the worker, at most cores // 2 threads, so the two never oversubscribe.
    The caller's pools are given back their size after the run."""
    from threadpoolctl import threadpool_info
    before = {(p["user_api"], p["internal_api"]): p["num_threads"] for p in threadpool_info()}
    monkeypatch.setattr(parallel, "TRUSTED_MODULES", (*parallel.TRUSTED_MODULES, "_helpers"))
    X, y, g = grouped
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=6)
           .add_model(RecordsThreads).set_run(n_jobs=2, store=False).perform().get_results())
    share = worker_threads(2)
    in_this_process = [est for est in res.models.values() if est.omp_env_ != str(share)]
    assert in_this_process, "no fit ran in the calling process"
    for est in res.models.values():
        assert est.pools_ and all(n <= share for n in est.pools_.values()), est.pools_
    after = {(p["user_api"], p["internal_api"]): p["num_threads"] for p in threadpool_info()}
    assert after == before


def test_an_interrupt_stops_the_callers_task_at_its_next_event_and_drops_its_events(grouped, monkeypatch):
    """Ctrl-C at the first finished fold: the run says interrupted and keeps that fold; the task
    still running in the caller's thread ends soon after, and no observer hears of it again."""
    monkeypatch.setattr(parallel, "TRUSTED_MODULES", (*parallel.TRUSTED_MODULES, "_helpers"))
    heard = []

    class StopAtFirst:
        def on_event(self, event):
            heard.append(type(event).__name__)
            if isinstance(event, FoldFinished):
                raise KeyboardInterrupt

    X, y, g = grouped
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=6)
           .add_model(LeavesItsPid, model_kwargs={"delay": 0.5}).set_run(n_jobs=2, store=False)
           .perform(observers=[StopAtFirst()]).get_results())
    assert res.status == "interrupted" and len(res.to_frame()) >= 1
    count = len(heard)
    deadline = time.monotonic() + 10
    while any(t.name.startswith("mixcv-task-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("mixcv-task-") for t in threading.enumerate())
    assert len(heard) == count


def test_mixcvs_own_models_give_the_serial_numbers_with_the_caller_as_a_worker(grouped):
    """LMM, forest and linear model (trusted: no patching) with n_jobs=2 equal n_jobs=1."""
    models = ["LinearModel", ("RandomForestRegressor", {"n_estimators": 20}), "LinearMixedEffectsModel"]
    two = _spec(grouped, *models, n_jobs=2).perform().get_results()
    one = _spec(grouped, *models, n_jobs=1).perform().get_results()
    pd.testing.assert_frame_equal(two.predictions, one.predictions)
    assert np.array_equal(two.to_frame().filter(like="test_").to_numpy(), one.to_frame().filter(like="test_").to_numpy())


def test_a_share_file_followed_in_two_threads_is_each_ones_own_when_they_end_out_of_order(tmp_path):
    """A caller's task abandoned by an interrupt may end after the next run's task began: each
    takes its own share file away, whatever the order."""
    from mixcv_core.run import cores
    a, b = tmp_path / "a", tmp_path / "b"
    cores.write_share(str(a), 1)
    cores.write_share(str(b), 2)
    first = cores.follow(str(a))
    first.__enter__()
    with cores.follow(str(b)):
        assert cores.available() == 2
        first.__exit__(None, None, None)     # the older one ends first
        assert cores.available() == 2
    assert cores._SHARE == []


def test_one_slot_on_one_core_is_a_worker_process_not_the_caller(grouped, monkeypatch):
    """n_jobs=-1 on a one-core machine: one slot, which must be a worker (a run's processes are
    then never zero)."""
    import joblib
    pools = []
    real = parallel._executor
    monkeypatch.setattr(joblib, "cpu_count", lambda *a, **k: 1)
    monkeypatch.setattr(parallel, "_executor", lambda workers, threads: pools.append(workers) or real(workers, threads))
    spec = _spec(grouped, "LinearModel", n_jobs=-1, timeout=600).to_spec()   # a timeout: workers even for one job
    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.run.schedule import Schedule, plan_tasks
    X, y, g = grouped
    frame = X.assign(y=y, group=g)
    plan = plan_experiment(spec, frame)
    tasks, tuned = plan_tasks(spec, plan)
    by_task = {}
    parallel.run_parallel(spec, plan, tasks, Schedule(spec, plan, tasks, tuned), -1, lambda e: None, by_task)
    assert pools == [1] and len(by_task) == len(tasks)
    # Without the timeout the calling process could run tasks, but one slot is still a worker.
    spec = _spec(grouped, "LinearModel", n_jobs=-1).to_spec()
    assert in_caller(spec)
    pools.clear()
    by_task = {}
    parallel.run_parallel(spec, plan, tasks, Schedule(spec, plan, tasks, tuned), -1, lambda e: None, by_task)
    assert pools == [1] and len(by_task) == len(tasks)
