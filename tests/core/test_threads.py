"""Parallel folds never oversubscribe: each worker's OpenMP/BLAS pools are capped at
cores // workers threads, so workers x threads <= cores."""

from __future__ import annotations

from _helpers import RecordsThreads
from joblib import cpu_count

from mixcv_core import CrossValidation
from mixcv_core.run.parallel import worker_threads
from mixcv_core.synthesizer import generate_regression


def test_workers_times_threads_never_exceed_the_cores():
    cores = cpu_count()
    for workers in range(1, 2 * cores + 2):
        assert workers * worker_threads(workers) <= max(cores, workers)
        assert worker_threads(workers) >= 1


def test_a_worker_runs_with_its_share_of_the_cores():
    X, y, g, _ = generate_regression(4, 10, random_seed=0, n_features=2)
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
    X, y, g, _ = generate_regression(4, 10, random_seed=0, n_features=2)
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
