"""How many cores the work in this process may use, so that nothing oversubscribes.

A serial run has the machine: ``joblib.cpu_count()`` (which respects cgroup and affinity
limits). A local worker process has its share, ``cores // workers``, written to its
environment as ``MIXCV_CORES`` by the parent before it starts (with the OpenMP/BLAS
variables). A task on a Dask worker has its machine's cores divided by the task threads
on that machine, set for the task with `limit`.

`for_fit` hands those cores to the fits of a task: an estimator that parallelises through
joblib and leaves its ``n_jobs`` at None (scikit-learn's forests, k-nearest neighbours)
then uses them in threads, its parameters untouched. Its results do not change — a
forest's trees are seeded one by one before they are built — provided it predicts in one
thread (threads would add the trees' predictions in the order they finish), which
`mixcv_core.run.fitting.predict_estimator` and MERF's EM see to.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

__all__ = ["available", "limit", "for_fit", "ENVIRONMENT_VARIABLE", "MIN_ROWS_FOR_THREADS"]

ENVIRONMENT_VARIABLE = "MIXCV_CORES"
#: Training rows below which a fit stays in one thread. Measured on 2 cores (a 20-tree
#: forest, 5 features): threads were slower at 100 and 300 rows (starting them costs more
#: than the trees), 1.3x faster at 1,000 and 1.6x at 3,000.
MIN_ROWS_FOR_THREADS = 1000
_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("mixcv_cores", default=None)


def available() -> int:
    """Cores the current task may keep busy (at least 1)."""
    set_here = _LIMIT.get()
    if set_here is not None:
        return max(1, set_here)
    try:
        return max(1, int(os.environ[ENVIRONMENT_VARIABLE]))
    except (KeyError, ValueError):
        from joblib import cpu_count
        return max(1, cpu_count())


@contextlib.contextmanager
def limit(cores: int) -> Iterator[None]:
    """Within the block (this thread's context), `available` answers ``cores``."""
    token = _LIMIT.set(max(1, cores))
    try:
        yield
    finally:
        _LIMIT.reset(token)


@contextlib.contextmanager
def for_fit(n_rows: int) -> Iterator[None]:
    """Within the block, joblib's default is this task's cores in threads (for fits of ``n_rows``).

    Threads, never processes: a worker must not start workers of its own. Below
    `MIN_ROWS_FOR_THREADS` rows, one thread.
    """
    from joblib import parallel_config
    n_jobs = available() if n_rows >= MIN_ROWS_FOR_THREADS else 1
    with parallel_config(backend="threading", n_jobs=n_jobs):
        yield
