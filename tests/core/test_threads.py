"""Parallel folds never oversubscribe: each worker's OpenMP/BLAS pools are capped at
cores // workers threads, so workers x threads <= cores."""

from __future__ import annotations

import pytest
from _helpers import RecordsThreads
from joblib import cpu_count

from mixcv_core import CrossValidation
from mixcv_core.run.parallel import worker_threads
from mixcv_core.synthesizer import generate_grouped_regression


def test_workers_times_threads_never_exceed_the_cores():
    cores = cpu_count()
    for workers in range(1, 2 * cores + 2):
        assert workers * worker_threads(workers) <= max(cores, workers)
        assert worker_threads(workers) >= 1


def test_a_worker_runs_with_its_share_of_the_cores():
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=0, n_features=2)
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=4)
           .add_model(RecordsThreads).set_run(n_jobs=2, store=False, save_models=False).perform().get_results())
    expected = worker_threads(2)
    for est in res.models.values():
        assert est.omp_env_ == str(expected)
        # Every native pool the worker loaded (OpenBLAS, OpenMP...) is held to it.
        assert est.pools_ and all(n <= expected for n in est.pools_.values()), est.pools_


def test_workers_read_the_data_from_one_shared_copy(tmp_path, monkeypatch):
    import tempfile

    import numpy as np

    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    from mixcv_core.run.parallel import SharedData
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=0, n_features=2)
    data = prepare_data(DataSpec("y", "group"), X.assign(y=y, group=g))
    shared = SharedData(data)
    loaded = shared.load()
    assert isinstance(loaded.X, np.memmap) and isinstance(loaded.y, np.memmap)   # mapped, not copied
    assert np.array_equal(loaded.X, data.X) and np.array_equal(loaded.groups, data.groups)
    assert shared.load() is loaded                                                # once per worker
    shared.remove()
    # A parallel run leaves no data folder behind.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=4)
     .add_model("LinearModel").set_run(n_jobs=2, store=False).perform())
    assert not list(tmp_path.glob("mixcv-data-*"))


class RecordsJoblib(RecordsThreads):
    """Remembers, per fit, the joblib backend and n_jobs it would get with n_jobs left at None."""

    seen: list = []

    def fit(self, X, y):
        from joblib import effective_n_jobs
        from joblib.parallel import ThreadingBackend, get_active_backend
        backend, _ = get_active_backend()
        kind = "threads" if isinstance(backend, ThreadingBackend) else type(backend).__name__
        RecordsJoblib.seen.append((kind, effective_n_jobs(None), len(y)))   # what a forest would take
        return super().fit(X, y)


def _forest_run(model, model_kwargs=None, **run):
    from optuna.distributions import IntDistribution
    X, y, g, _ = generate_grouped_regression(8, 15, random_seed=3, n_features=3)
    params = {"max_depth": IntDistribution(2, 6)} if model != "RecordsJoblib" else {}
    est = RecordsJoblib if model == "RecordsJoblib" else model
    return (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", "GroupKFold", n_splits_out=2, n_splits_in=3)
            .add_model(est, requires_inner_cv=bool(params), params=params, add_merf=True,
                       model_kwargs=model_kwargs).set_inner_cv(3)
            .set_merf(em_max_iterations=3).set_run(store=False, **run).perform().get_results()
            .to_frame().drop(columns=["fit_time", "tune_time"]))


def test_fits_get_the_tasks_cores_in_threads_from_enough_rows_on(monkeypatch):
    from mixcv_core.run import cores
    RecordsJoblib.seen.clear()
    with cores.limit(2):
        _forest_run("RecordsJoblib")
    assert RecordsJoblib.seen and all(n_jobs == 1 for _, n_jobs, _ in RecordsJoblib.seen)   # 60 rows: too few
    monkeypatch.setattr(cores, "MIN_ROWS_FOR_THREADS", 50)
    RecordsJoblib.seen.clear()
    with cores.limit(2):
        _forest_run("RecordsJoblib")
    assert {(b, n) for b, n, rows in RecordsJoblib.seen} == {("threads", 2)}   # threads, never processes


def test_a_forest_fitted_in_threads_gives_the_same_results_and_merf_too(monkeypatch):
    from sklearn.ensemble import RandomForestRegressor

    from mixcv_core.run import cores
    monkeypatch.setattr(cores, "MIN_ROWS_FOR_THREADS", 0)
    # 20 trees, ten to a thread, are as good a check of thread-independence as the default
    # 100 (which took 13 s of CPU for the two runs).
    with cores.limit(1):
        alone = _forest_run(RandomForestRegressor, {"n_estimators": 20})
    with cores.limit(2):
        threaded = _forest_run(RandomForestRegressor, {"n_estimators": 20})
    assert set(alone["model"]) == {"RandomForestRegressor", "MERF(RandomForestRegressor)"}
    assert alone.equals(threaded)


def test_a_tasks_fits_count_the_cores_its_run_lends_it_again_at_each_fit(tmp_path):
    from joblib import Parallel, effective_n_jobs

    from mixcv_core.run import cores
    share = str(tmp_path / "cores")
    cores.write_share(share, 1)
    seen = []
    with cores.follow(share), cores.for_fit(cores.MIN_ROWS_FOR_THREADS):
        seen.append((cores.available(), effective_n_jobs(None)))
        cores.write_share(share, 3)   # the calling process lends the task two more cores
        seen.append((cores.available(), effective_n_jobs(None)))
        seen.append(Parallel().n_jobs)   # what a forest's fit starts: a Parallel, its n_jobs left at None
    assert seen == [(1, 1), (3, 3), 3]
    with cores.limit(2), cores.follow(share):
        assert cores.available() == 2          # a limit set inside a task (trials side by side) wins
    with cores.follow(str(tmp_path / "no such file")), cores.limit(5):
        assert cores.available() == 5


@pytest.mark.parametrize(("total", "workers", "running", "each"), [
    (2, 2, 2, 1),    # every worker busy: each its own share
    (2, 2, 1, 2),    # one worker idle: the running task gets its core
    (8, 4, 3, 2),    # 8 cores, 3 tasks left: 2 each (the eighth stays spare)
    (8, 4, 1, 8),
    (4, 2, 0, 2),    # nothing running: the worker's share
])
def test_workers_left_without_a_task_lend_their_cores_to_the_running_ones(total, workers, running, each):
    from mixcv_core.run.parallel import cores_each
    assert cores_each(total, workers, running) == each


def test_the_last_task_running_gets_the_cores_of_the_worker_that_has_nothing_left(tmp_path):
    from _helpers import WaitsForLentCores

    from mixcv_core.run import cores
    if cpu_count() < 2:
        pytest.skip("one core: there is nothing to lend")
    rows = cores.MIN_ROWS_FOR_THREADS * 3   # two outer folds of enough rows for threads
    X, y, g, _ = generate_grouped_regression(30, rows // 30, random_seed=0, n_features=2)
    res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=2)
           .add_model(WaitsForLentCores, model_kwargs={"folder": str(tmp_path)})
           .set_run(n_jobs=2, store=False).perform().get_results())
    assert res.to_frame()["model"].tolist() == ["WaitsForLentCores"] * 2
    first, last = map(int, (tmp_path / "seen").read_text().split())
    assert (first, last) == (worker_threads(2), 2 * worker_threads(2))
