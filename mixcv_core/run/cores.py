"""How many cores the work in this process may use, so that nothing oversubscribes.

A serial run has the machine: ``joblib.cpu_count()`` (which respects cgroup and affinity
limits). A local worker process has its share, ``cores // workers``, written to its
environment as ``MIXCV_CORES`` by the parent before it starts (with the OpenMP/BLAS
variables); at the end of a run, when some workers have nothing left to start, the parent
hands their cores to the tasks still running through a file the workers read (`follow`),
so the last task does not run on one core while the others idle. A task on a Dask worker
has its machine's cores divided by the task threads on that machine, set for the task
with `limit`.

`for_fit` hands those cores to the fits of a task: an estimator that parallelises through
joblib and leaves its ``n_jobs`` at None (scikit-learn's forests, k-nearest neighbours)
then uses them in threads, its parameters untouched, counted again at each fit (so a share that
grows at the end of a run reaches the next fit). Its results do not change — a
forest's trees are seeded one by one before they are built — provided it predicts in one
thread (threads would add the trees' predictions in the order they finish), which
`mixcv_core.run.fitting.predict_estimator` and MERF's EM see to.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator

__all__ = ["available", "own", "limit", "follow", "write_share", "for_fit", "ENVIRONMENT_VARIABLE",
           "MIN_ROWS_FOR_THREADS"]

ENVIRONMENT_VARIABLE = "MIXCV_CORES"
#: Training rows below which a fit stays in one thread. Measured on 2 cores (a 20-tree
#: forest, 5 features): threads were slower at 100 and 300 rows (starting them costs more
#: than the trees), 1.3x faster at 1,000 and 1.6x at 3,000.
MIN_ROWS_FOR_THREADS = 1000
_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("mixcv_cores", default=None)
#: While a task of a run with workers runs in this process: the run's share file and the
#: task's own share (`follow`).
_SHARE: list[tuple[str, int]] = []


def _followed() -> tuple[int, int] | None:
    """The followed run's share now and the task's own share; None outside `follow` or once the run is gone."""
    if not _SHARE:
        return None
    path, started_with = _SHARE[-1]
    try:
        # Read whole at each ask (tens of microseconds, once per fit): the calling
        # process replaces the file, so a reader sees the old figure or the new one.
        with open(path, "rb") as fh:
            return max(1, int(fh.read(32))), started_with
    except (OSError, ValueError):
        return None   # gone with its run: the process's own share


def _process_share() -> int:
    try:
        return max(1, int(os.environ[ENVIRONMENT_VARIABLE]))
    except (KeyError, ValueError):
        from joblib import cpu_count
        return max(1, cpu_count())


def available() -> int:
    """Cores the current task may keep busy (at least 1)."""
    set_here = _LIMIT.get()
    if set_here is not None:
        return max(1, set_here)
    followed = _followed()
    return followed[0] if followed is not None else _process_share()


def own() -> int:
    """The cores the running task was given when it started: the size its fits' native pools keep.

    At the end of a run `available` can grow beyond it (cores lent by idle workers,
    `follow`). Lent cores reach a fit as more joblib threads (`for_fit`) or a batch's
    trials as more threads side by side (`mixcv_core.run.tuning.evaluate_side_by_side`),
    never as a larger OpenMP or BLAS pool: the sum of an OpenMP reduction
    (HistGradientBoosting's root gradients) depends on the pool's size, and a fit's result
    must not depend on when in the run it ran. A `limit` (a trial's or a Dask task's part)
    does not change it; outside a run with workers, the process's cores.
    """
    followed = _followed()
    return followed[1] if followed is not None else _process_share()


def write_share(path: str, cores: int) -> bool:
    """Set the cores each running task of a run may use (the calling process's side of `follow`).

    Returns whether it was written: on Windows a file being read cannot be replaced, and
    the share is only a hint, tried again at the next change.
    """
    part = f"{path}.{os.getpid()}.part"
    try:
        with open(part, "w") as fh:
            fh.write(str(max(1, cores)))
        os.replace(part, path)   # atomic: never a half-written figure
    except OSError:
        return False
    return True


@contextlib.contextmanager
def follow(path: str, started_with: int | None = None) -> Iterator[None]:
    """Within the block (a task in a worker process), `available` answers what ``path`` says.

    The calling process writes there (`write_share`) the cores each running task may use:
    the worker's share while every worker has work, more once some have none. A `limit`
    set inside the block still wins (trials side by side split the share they started with).
    Without the file, the worker's own share from its environment. ``started_with``: the
    task's own share (`own`), by default the worker's, from its environment.
    """
    entry = (path, _process_share() if started_with is None else max(1, started_with))
    _SHARE.append(entry)
    try:
        yield
    finally:
        # This block's own entry, not the last: a task in the calling process, left behind by
        # an interrupt (`mixcv_core.run.parallel.CallerSlot`), can end after the next run's began.
        del _SHARE[len(_SHARE) - 1 - _SHARE[::-1].index(entry)]


@contextlib.contextmanager
def limit(cores: int) -> Iterator[None]:
    """Within the block (this thread's context), `available` answers ``cores``."""
    token = _LIMIT.set(max(1, cores))
    try:
        yield
    finally:
        _LIMIT.reset(token)


@functools.cache
def _task_threads_class() -> type:
    """joblib's threading backend, with ``n_jobs=None`` meaning `available` at each use."""
    from joblib.parallel import ThreadingBackend

    class TaskThreads(ThreadingBackend):
        # joblib resolves a default ``n_jobs`` through the active backend every time a
        # `Parallel` starts (a forest's fit, its tree partition): asking `available` then
        # lets a share that grew since the task started reach its next fit.
        @property
        def default_n_jobs(self) -> int:
            return available()

        def effective_n_jobs(self, n_jobs: int | None) -> int:
            return int(super().effective_n_jobs(available() if n_jobs is None else n_jobs))

    return TaskThreads


@contextlib.contextmanager
def for_fit(n_rows: int) -> Iterator[None]:
    """Within the block, joblib's default is this task's cores in threads (for fits of ``n_rows``).

    Threads, never processes: a worker must not start workers of its own. Below
    `MIN_ROWS_FOR_THREADS` rows, one thread. The cores are counted at each fit (`available`).
    """
    from joblib import parallel_config
    if n_rows < MIN_ROWS_FOR_THREADS:
        with parallel_config(backend="threading", n_jobs=1):
            yield
        return
    with parallel_config(backend=_task_threads_class()()):
        yield
