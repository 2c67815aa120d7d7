"""Outer-fold tasks in worker processes, with their events delivered live.

Workers run `mixcv_core.run.task.run_task` and send every event (trials, EM iterations,
finished folds with their outcomes) over a connection to the calling process
(`mixcv_core.run.channel`), which takes them as they come and hands them to the
observers, so a parallel run shows the same live progress, EM plot and per-fold store
commits as a serial one. Workers come from joblib's loky executor (the same machinery as
``joblib.Parallel``), which can be shut down with its workers killed when the user
interrupts.

Outcomes travel once, inside their `FoldFinished`/`FoldFailed` events; the engine
orders them by task, never by arrival, so results do not depend on ``n_jobs``. A
worker's return value is its task's tuning (`mixcv_core.run.task.Tuned`), which a MERF
task waiting for it is sent with; the next task is taken from the run's `Schedule`
whenever a worker is free.

Workers are started by the engine before it prepares the run (`warm_workers`), so their
imports (two seconds of CPU each) overlap with its validation and splits. Once no task can
start, the cores of the idle workers are lent to the tasks still running (`cores_each`, a
file the workers read before every fit): the last MERF variant of a run does not run on one
core while the others wait for it.

The calling process is one of the ``n_jobs`` (`in_caller`): it would otherwise sit idle
waiting for its workers, holding the run's data beside them. A run of mixcv's and
scikit-learn's own models without a time limit starts ``n_jobs - 1`` workers and runs tasks
in a thread of its own as well, so a first run pays one worker's start-up, not two (about
two seconds of imports each), and holds one interpreter and one fold less. Until a worker
has imported what the run needs (`warm_workers`), no task is handed to the pool: the
caller's slot takes them one after another, so a run shorter than a worker's start-up
ends as soon as a serial run would, not two seconds later behind a task queued for a
process still importing. Any other
model's tasks go to worker processes only: a crash there (a segfault in a native library)
fails one fold, never the notebook's kernel; so do a time limit's tasks, which only a
process can be stopped in.

Everything crosses the process boundary with cloudpickle, as loky sends its tasks: a
``multiprocessing`` queue would use plain pickle, which refuses the classes a notebook
defines (they live in ``__main__``) and estimators holding a lambda, so a run that works with
``n_jobs=1`` would fail with ``n_jobs=2``. What even cloudpickle cannot send is refused
before any work (`check_sendable`), naming the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle  # noqa: S403 - only our own workers' events and data, written by this run
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle
import numpy as np

from ..errors import SpecError
from ..experiment.data import Plan, PreparedData
from ..experiment.spec import ExperimentSpec, ModelSpec
from ..outcome import FoldOutcome
from ..secrets import scrub
from . import cores
from .channel import EventChannel, EventSender, loads
from .events import Event, FoldFailed, FoldFinished
from .schedule import Schedule
from .task import Task, Tuned, record_failed, run_task, skip
from .tuning import quiet_optuna

__all__ = ["check_sendable", "run_parallel", "worker_threads", "pack", "pack_tuned", "fail_missing", "end_task",
           "exit_with_parent", "warm_workers", "pool_size", "cores_each", "in_caller"]

_STARTED = "__mixcv_task_started__"


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Run in every process a run starts (its workers): exit as soon as
    the process that started it is gone.

    A kernel killed with SIGKILL cannot stop its children; without this they are
    re-parented to init and linger for good (seen: over 17 minutes), holding memory and,
    through them, the resource trackers.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="mixcv-exit-with-parent", daemon=True).start()


def _why_workers(spec: ExperimentSpec) -> tuple[str, str]:
    """The setting that sends folds to worker processes, and how to keep them in this one."""
    if spec.backend == "dask":
        return "backend", "run with backend='local' and n_jobs=1"
    if spec.n_jobs == 1:   # only a time limit does, with one job
        return "timeout", "run without a timeout"
    return "n_jobs", "run with n_jobs=1"


def check_sendable(spec: ExperimentSpec, models: Sequence[ModelSpec]) -> None:
    """Refuse, before any work, a model or setting that cannot be sent to a worker process.

    Raises
    ------
    SpecError
        Naming the model (or the setting that needs workers, for the run's own
        settings such as a metric) and what could not be sent.
    """
    setting, way_out = _why_workers(spec)
    why = (f"cannot be sent to a worker process ({setting}={getattr(spec, setting)!r}): {{reason}}. "
           f"{way_out.capitalize()}, or keep what cannot be copied (open files, locks, connections) out of it")
    for m in models:
        try:
            cloudpickle.dumps(m)
        except Exception as exc:  # noqa: BLE001 - any failure to serialise means the same thing
            raise SpecError(f"models[{m.name!r}]", why.format(reason=f"{type(exc).__name__}: {exc}")) from None
    try:
        cloudpickle.dumps(spec)
    except Exception as exc:  # noqa: BLE001
        raise SpecError(setting, "the run's settings (metrics, objective, post-processor) "
                        + why.format(reason=f"{type(exc).__name__}: {exc}")) from None


def pack(event: Event, spec: ExperimentSpec) -> bytes:
    """The event as bytes for the queue; a fitted model that cannot travel stays behind, said so."""
    try:
        return cloudpickle.dumps(event)
    except Exception as exc:  # noqa: BLE001 - any failure to serialise means the same thing
        if not isinstance(event, (FoldFinished, FoldFailed)) or event.outcome is None:
            raise
        outcome = event.outcome
        if outcome.estimator is None and outcome.study is None:
            raise
        note = (f"the fitted model cannot be sent back from the worker process ({type(exc).__name__}: {exc}); "
                f"its metrics and predictions are kept; {_why_workers(spec)[1]} to keep the model")
        slim = dataclasses.replace(outcome, estimator=None, study=None, warnings=[*outcome.warnings, note])
        return cloudpickle.dumps(dataclasses.replace(event, outcome=slim))


class SharedData:
    """The run's data written once to a private folder, read by every worker from there.

    Sending the data with every task copied it into each worker once per task (a 1M-row
    run held three times the serial memory). Workers instead map the feature matrix and
    the target read-only from ``.npy`` files (the operating system shares those pages
    between processes) and load the rest once per worker; a task carries only this
    reference. The folder is mixcv's own, made by this run with owner-only permissions,
    and removed when the run ends.

    The calling process maps the same files in place of its own ``data.X`` and ``data.y``
    while they exist (``data`` is changed in place, so every holder of it lets go of the
    arrays): its copy was the data a second time next to the workers' shared pages (0.16
    GiB at 1M rows x 20 features). `remove` gives it arrays of its own again.

    The folder also holds the run's core share (`cores_file`, `mixcv_core.run.cores.follow`):
    the cores each running task may use, which grows when workers run out of tasks.
    """

    def __init__(self, data: PreparedData, cores_each: int = 1) -> None:
        import tempfile
        self.folder = tempfile.mkdtemp(prefix="mixcv-data-")
        cores.write_share(self.cores_file, cores_each)
        np.save(os.path.join(self.folder, "X.npy"), data.X, allow_pickle=False)
        np.save(os.path.join(self.folder, "y.npy"), data.y, allow_pickle=False)
        rest = dataclasses.replace(data, X=np.empty((0, data.X.shape[1])), y=np.empty(0))
        with open(os.path.join(self.folder, "rest.pkl"), "wb") as fh:
            pickle.dump(rest, fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._data = data
        data.X, data.y = self._mapped("X"), self._mapped("y")

    @property
    def cores_file(self) -> str:
        """The file that says how many cores each running task may use."""
        return os.path.join(self.folder, "cores")

    def _mapped(self, name: str) -> np.ndarray:
        return np.load(os.path.join(self.folder, f"{name}.npy"), mmap_mode="r")

    def load(self) -> PreparedData:
        """The data, in a worker: from this worker's cache after the first task."""
        cached = _DATA_CACHE.get(self.folder)
        if cached is None:
            with open(os.path.join(self.folder, "rest.pkl"), "rb") as fh:
                rest = pickle.load(fh)  # noqa: S301 - written by this run, into its own private folder
            cached = dataclasses.replace(rest, X=self._mapped("X"), y=self._mapped("y"))
            _DATA_CACHE.clear()   # one run's data at a time per worker
            _DATA_CACHE[self.folder] = cached
        return cached

    def remove(self) -> None:
        """Give the calling process's data arrays of its own again, and delete the files."""
        import shutil
        data = self._data
        data.X, data.y = np.array(data.X), np.array(data.y)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __getstate__(self) -> dict[str, Any]:
        # A task carries the folder only, never the calling process's data.
        return {"folder": self.folder}


#: In a worker process: the data of the run it works for, by folder.
_DATA_CACHE: dict[str, PreparedData] = {}


def pack_tuned(task: Task, tuned: Tuned) -> bytes:
    """A base task's tuning as bytes for the calling process; a study that cannot travel stays behind.

    A MERF task's (the one it was given) is of no use there: it goes back empty.
    """
    if task.merf:
        tuned = Tuned()
    try:
        return cloudpickle.dumps(tuned)
    except Exception:  # noqa: BLE001 - its parameters still can (they were sent to the worker's estimator)
        return cloudpickle.dumps(dataclasses.replace(tuned, study=None))


def _worker(i: int, spec: ExperimentSpec, task: Task, shared: SharedData, outer, inner, q: EventSender, known=None,
            tuned: Tuned | None = None) -> bytes:
    q.put((_STARTED, i, os.getpid()))   # the clock of a time limit starts now, in this process
    data = shared.load()
    with quiet_optuna(), cores.follow(shared.cores_file):
        _, tuned = run_task(spec, task, data, outer, inner, lambda event: q.put(pack(event, spec)), known,
                            tuned=tuned)
    return pack_tuned(task, tuned)


#: The variables OpenMP and the BLAS libraries read for their thread count (as joblib's loky
#: backend sets them for its workers).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def worker_threads(workers: int) -> int:
    """Native threads each of ``workers`` processes may use: workers x threads <= cores."""
    from joblib import cpu_count
    return max(1, cpu_count() // max(workers, 1))


def pool_size(n_jobs: int, width: int) -> int:
    """The worker processes of a local run: ``n_jobs`` (-1: the cores), at most ``width``.

    No more workers than tasks that can run at once: each then gets a larger share of the
    cores, which a task's batches of tuning trials use side by side
    (`mixcv_core.run.tuning.evaluate_side_by_side`).
    """
    from joblib import cpu_count
    return max(1, min(cpu_count() if n_jobs == -1 else n_jobs, width))


def _executor(workers: int, threads: int) -> Any:
    """The reusable loky executor with ``workers`` processes of ``threads`` native threads each
    (the same one for the same size). ``threads`` is the share of one of the run's slots, the
    calling process's included (`in_caller`): `worker_threads` of the slots, not of the processes."""
    from joblib.externals.loky import get_reusable_executor
    # Each worker's OpenMP/BLAS pools get cores // workers threads, set in its environment
    # before it starts (so before any native library reads it): two workers with a full
    # set of threads each on two cores ran 7x slower than one.
    return get_reusable_executor(max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),),
                                 env=dict.fromkeys((*_THREAD_VARIABLES, cores.ENVIRONMENT_VARIABLE), str(threads)))


def _warm(spec: bytes, modules: tuple[str, ...]) -> None:
    """In a worker, before its first task: what every task of the run imports."""
    import importlib
    cloudpickle.loads(spec)   # the models' classes, from their modules
    for name in modules:
        importlib.import_module(name)


def warm_workers(spec: ExperimentSpec, width: int) -> list[Any]:
    """Start the worker processes of a local run now, importing what its tasks need.

    Called by the engine as soon as it knows a run goes to worker processes, before it
    prepares the data, the store and the first events: a fresh worker spends about two
    seconds of CPU importing numpy, pandas, SciPy, scikit-learn and Optuna before its first
    fit, which then overlaps with that preparation rather than following it. `run_parallel`
    takes the same workers (loky's reusable executor, asked for the same size). ``width``:
    the tasks that can run at once (`mixcv_core.run.schedule.Schedule.width`).

    Returns the futures of the imports (empty when nothing could be started): done once a
    worker is ready, which `run_parallel` waits for before it hands the pool a task while
    the calling process can run it.
    """
    slots = pool_size(spec.n_jobs, width)
    workers = worker_processes(slots, spec)
    modules = tuple(name for name, wanted in (("optuna", any(m.tunes for m in spec.models)),
                                              ("mixcv_core.models.merf",
                                               any(len(spec.task_names(m)) > 1 for m in spec.models)))
                    if wanted)
    try:
        blob = cloudpickle.dumps(spec)   # what cannot be sent is refused by `check_sendable`, later
        executor = _executor(workers, worker_threads(slots))
        # loky starts its processes with the first submissions
        return [executor.submit(_warm, blob, modules) for _ in range(workers)]
    except Exception:  # noqa: BLE001 - only a head start: the run starts its workers again if need be
        return []


#: Where the estimators come from that a run trusts to fit in the calling process: mixcv's
#: own and scikit-learn's (pure Python over numpy, SciPy and scikit-learn's own compiled code)...
TRUSTED_MODULES = ("mixcv_core", "sklearn")
#: ...but for mixcv's wrappers of another library's native code (GPBoost's C++ library).
FOREIGN_MODULES = ("mixcv_core.models.gpboost",)


def _trusted(obj: object) -> bool:
    module = (obj if isinstance(obj, type) else type(obj)).__module__ or ""
    if any(module == f or module.startswith(f + ".") for f in FOREIGN_MODULES):
        return False
    return module.split(".", 1)[0] in TRUSTED_MODULES


def in_caller(spec: ExperimentSpec) -> bool:
    """Whether the calling process runs tasks beside its ``n_jobs - 1`` workers.

    Only for a local run without a time limit (a task in the caller cannot be stopped)
    whose every model, and every estimator among its arguments (a stack's members), is
    mixcv's or scikit-learn's: another library's crash there would take the kernel with it.
    """
    if spec.backend != "local" or spec.timeout is not None:
        return False
    return all(_trusted(m.estimator_class) and not _foreign_inside(m.model_kwargs) for m in spec.models)


def _foreign_inside(value: Any) -> bool:
    """Whether ``value`` holds an estimator that is not `_trusted`: itself, in a list, tuple or
    mapping (a stack's ``(name, estimator)`` pairs), or among a trusted estimator's parameters."""
    if isinstance(value, Mapping):   # a spec's model_kwargs (a FrozenMap), a parameter's dict
        return any(_foreign_inside(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_foreign_inside(v) for v in value)
    if not hasattr(value, "fit"):
        return False
    if not _trusted(value):   # an instance or a class
        return True
    return not isinstance(value, type) and hasattr(value, "get_params") and \
        _foreign_inside(value.get_params(deep=False))


def worker_processes(slots: int, spec: ExperimentSpec) -> int:
    """The worker processes of a run of ``slots`` tasks at a time: one fewer when the calling
    process is one of them (`in_caller`); one slot (one core, ``n_jobs=-1``) is always a worker.
    `warm_workers` and `run_parallel` ask for the same pool through this."""
    return slots - (slots > 1 and in_caller(spec))


def cores_each(cores_total: int, workers: int, running: int) -> int:
    """Cores each of ``running`` tasks may use in a pool of ``workers`` sharing ``cores_total``.

    Called once no more tasks can start (``running`` < ``workers``: the others have run,
    or wait for a running task): the cores of the workers left without work go to the tasks
    still running, so the last long task (a MERF variant released by the last tuning) does
    not run on one core while the others wait for it. With every worker busy, each has its
    own share.
    """
    return max(1, cores_total // max(1, min(running, workers)) if running else cores_total // max(1, workers))


class _Abandoned(BaseException):
    """Raised in the caller's task thread at its next event once the run was interrupted:
    a BaseException, so that the task's own error handling does not record it as the
    model's failure."""


class CallerSlot:
    """The calling process as one more worker: one task at a time, in a thread of its own.

    The task runs as it would in a worker (`run_task` on the run's mapped data, the
    run's core share followed, native thread pools held to a worker's share), and ends in
    a `concurrent.futures.Future` the run waits on beside the workers' ones. Its events
    are queued and delivered by the run's own thread with the workers' (`drain`), so the
    observers are only ever called from that thread. After an interrupt the thread stops
    at its next event (a trial, an EM iteration, the fold's end), its events dropped: a
    fit in native code cannot be cut short from another thread.
    """

    def __init__(self, spec: ExperimentSpec, plan: Plan, tasks: Sequence[Task], cores_file: str,
                 threads: int) -> None:
        import queue
        self._spec, self._plan, self._tasks = spec, plan, tasks
        self._cores_file, self._threads = cores_file, threads
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._abandoned = threading.Event()
        #: The running task's future; None when the slot is free (cleared by the run's thread
        #: once it has taken the task's end, so a slot never holds two tasks).
        self.future: Any = None

    def start(self, i: int, tuned: Tuned | None) -> Any:
        """Run task ``i`` (with the MERF variant's ``tuned`` answer) now; its future."""
        from concurrent.futures import Future

        from threadpoolctl import threadpool_limits
        future: Future = Future()
        future.set_running_or_notify_cancel()
        task, plan = self._tasks[i], self._plan

        def put(event: Event) -> None:
            if self._abandoned.is_set():
                raise _Abandoned
            self._events.put(event)

        def body() -> None:
            try:
                with quiet_optuna(), cores.follow(self._cores_file, self._threads), threadpool_limits(self._threads):
                    _, done = run_task(self._spec, task, plan.data, plan.outer[task.fold], plan.inner[task.fold], put,
                                       plan.known_rows(task.fold), tuned=tuned)
                result, error = pack_tuned(task, done), None
            except BaseException as exc:  # noqa: BLE001 - handed to the run's thread, as a worker's would be
                result, error = None, exc
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self.future = future
        threading.Thread(target=body, name=f"mixcv-task-{i}", daemon=True).start()
        return future

    def drain(self, deliver: Callable[[Event], None]) -> None:
        """Deliver the events the caller's task has queued, in order."""
        import queue
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            deliver(event)

    def abandon(self) -> None:
        """The run was interrupted: the task stops at its next event, which is dropped."""
        self._abandoned.set()


def run_parallel(spec: ExperimentSpec, plan: Plan, tasks: Sequence[Task], schedule: Schedule, n_jobs: int,
                 emit: Callable[[Event], None], by_task: dict[int, list[FoldOutcome]],
                 warming: Sequence[Any] = ()) -> None:
    """Run ``tasks`` in ``n_jobs`` processes in ``schedule``'s order, emitting their events as they happen.

    A MERF task starts once its base task has returned its tuning. ``by_task`` is filled
    as outcomes arrive, so an interrupt (re-raised here after the workers are killed)
    leaves every finished fold in it. ``warming``: the workers' imports (`warm_workers`);
    while none is done, tasks go to the calling process's slot only.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    workers = pool_size(n_jobs, schedule.width)   # the caller's slot (`in_caller`) is one of them
    threads = worker_threads(workers)
    task_of = {(t.fold, t.name): i for i, t in enumerate(tasks)}
    processes = worker_processes(workers, spec)
    executor = _executor(processes, threads)   # the warm one, when the engine started it (`warm_workers`)

    running: dict[int, tuple[int, float]] = {}   # task -> (worker pid, start on the monotonic clock)
    timed_out: set[int] = set()
    arrived: set[tuple[int, str]] = set()        # (fold, model) whose outcome was delivered

    def deliver(event: Any) -> None:
        if isinstance(event, tuple) and event[0] == _STARTED:
            running[event[1]] = (event[2], time.monotonic())
            return
        if isinstance(event, (FoldFinished, FoldFailed)):
            if (event.fold, event.model) in arrived:
                # A task run again after its pool broke (a crash, a timeout) repeats the
                # folds it had finished: the first arrival stands, once in store and results.
                return
            arrived.add((event.fold, event.model))
            if event.outcome is not None:
                by_task.setdefault(task_of[(event.fold, event.model)], []).append(event.outcome)
        emit(event)

    with contextlib.ExitStack() as cleanup:
        shared = SharedData(plan.data, threads)
        cleanup.callback(shared.remove)
        share = threads   # what the share file says now
        q = EventChannel()
        cleanup.callback(q.close)
        caller = CallerSlot(spec, plan, tasks, shared.cores_file, threads) if processes < workers else None
        futures: dict = {}
        retried: set[int] = set()

        def submit(i: int, in_pool: bool = False) -> Any:
            nonlocal executor
            t = tasks[i]
            if caller is not None and caller.future is None and not in_pool:
                future = caller.start(i, schedule.tuned.get(i))
                futures[future] = i
                return future
            args = (_worker, i, spec, t, shared, plan.outer[t.fold], plan.inner[t.fold], q.sender,
                    plan.known_rows(t.fold), schedule.tuned.get(i))
            try:
                future = executor.submit(*args)
            except Exception:  # noqa: BLE001 - a pool broken by a dead worker: take a fresh one
                executor = _executor(processes, threads)
                future = executor.submit(*args)
            futures[future] = i
            return future

        # At most one task per worker in flight: an interrupt then finds nothing queued
        # inside the executor, which shuts down cleanly with its workers killed; and the
        # next task is chosen when a worker is free, among the tasks that may start then.
        pending: set = set()

        def booted() -> bool:
            # A task handed to a worker still importing waits there, seconds at a first run,
            # while the caller's slot could run it: the pool gets none before it is ready.
            # (A warm-up that failed is done too: the pool is then used as before.)
            return caller is None or not warming or any(f.done() for f in warming)

        def fill() -> None:
            nonlocal share
            while schedule and len(pending) < workers:
                if (caller is None or caller.future is not None) and not booted():
                    break
                pending.add(submit(schedule.next()))
            # Workers left without a task lend their cores to the running ones; a task that
            # starts takes them back. The running tasks' next fits see it (joblib threads only:
            # a forest's results do not depend on them; native pools keep their size). A worker
            # still importing is busy: its core is not free to lend.
            now = cores_each(workers * threads, workers, len(pending) + (0 if booted() else processes))
            if now != share and cores.write_share(shared.cores_file, now):
                share = now

        fill()
        suspects: list[int] = []
        try:
            while pending or suspects:
                if not pending:
                    # Tasks whose pool crashed run again one at a time, after the rest:
                    # alone, a bystander cannot be taken down by the culprit twice.
                    # In a worker: whatever brought its process down must not reach this one.
                    pending.add(submit(suspects.pop(0), in_pool=True))
                done, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                _drain(q, deliver)
                if caller is not None:
                    caller.drain(deliver)   # all of a finished task's events come before its end
                for f in done:
                    i = futures[f]
                    running.pop(i, None)
                    exc = f.exception()
                    here = caller is not None and f is caller.future
                    if caller is not None and here:   # (the first test for mypy's sake)
                        caller.future = None   # the slot takes its next task in `fill`, below
                    if i in timed_out:
                        msg = f"timed out after {spec.timeout:g} s (the run's timeout); its worker process was stopped"
                        if spec.on_error == "raise":
                            raise TimeoutError(f"{tasks[i].name} fold {tasks[i].fold}: {msg}")
                        end_task(i, tasks, schedule, by_task, deliver, None, msg, "")
                    elif isinstance(exc, BrokenProcessPool) and i not in retried:
                        # A worker died: this task or a neighbour that took the pool down.
                        retried.add(i)
                        suspects.append(i)
                    elif exc is not None and not isinstance(exc, BrokenProcessPool) and spec.on_error == "raise":
                        _drain(q, deliver)
                        raise exc  # the model's own error, as on_error="raise" asks
                    elif exc is not None:
                        # It crashed again when run alone, or its results could not be sent.
                        end_task(i, tasks, schedule, by_task, deliver, None,
                                 scrub(f"{'failed in the calling process' if here else 'worker process failed'}: "
                                       f"{type(exc).__name__}: {exc}"),
                                 scrub("".join(traceback.format_exception(exc))))
                    else:
                        end_task(i, tasks, schedule, by_task, deliver, pickle.loads(f.result()))  # noqa: S301
                fill()   # a suspect runs alone: nothing is ready while it does (all else has run)
                if spec.timeout is not None:   # after the finished ones are out of `running`
                    _stop_overdue(running, timed_out, spec.timeout)
            _drain(q, deliver)
            if caller is not None:
                caller.drain(deliver)
        except BaseException:
            # Ctrl-C (or an observer-independent failure): stop the workers now, keep
            # what has arrived.
            if caller is not None:
                caller.abandon()
            executor.shutdown(wait=True, kill_workers=True)
            raise


def _drain(q: EventChannel, deliver: Callable[[Event], None]) -> None:
    for packed in q.receive():
        deliver(loads(packed))


def fail_missing(i: int, tasks: Sequence[Task], by_task: dict[int, list[FoldOutcome]],
                 deliver: Callable[[Event], None], msg: str, tb: str) -> None:
    """Record task ``i``'s fold as failed with ``msg``, unless its outcome was delivered."""
    if by_task.get(i):
        return
    record_failed(tasks[i].name, tasks[i].fold, msg, tb, deliver)


def end_task(i: int, tasks: Sequence[Task], schedule: Schedule, by_task: dict[int, list[FoldOutcome]],
             deliver: Callable[[Event], None], tuned: Tuned | None, msg: str = "", tb: str = "") -> None:
    """Task ``i`` ended: with its ``tuned`` answer, or lost (``tuned`` None) with ``msg``.

    A lost task fails its own fold if that had not arrived; either way the MERF tasks
    waiting for it may now start, or fail saying their base has no tuning.
    """
    if tuned is None:
        fail_missing(i, tasks, by_task, deliver, msg, tb)
        tuned = Tuned(failure=f"that task failed ({msg})", traceback=tb)
    for j in schedule.returned(i, tuned):
        skip(tasks[j], schedule.tuned[j], deliver)


def _stop_overdue(running: dict[int, tuple[int, float]], timed_out: set[int], limit: float) -> None:
    """Kill the worker of every task past ``limit`` seconds.

    The pool then breaks: the overdue task is recorded as timed out, the tasks that
    shared the pool with it run again (the crash path of `run_parallel`).
    """
    now = time.monotonic()
    for i, (pid, started) in list(running.items()):
        if i not in timed_out and now - started > limit:
            timed_out.add(i)
            try:
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            except ProcessLookupError:   # it finished in the meantime; its result decides
                timed_out.discard(i)
