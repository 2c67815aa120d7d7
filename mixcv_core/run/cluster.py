"""Outer-fold tasks on a Dask cluster, with their events delivered live.

``backend="dask"`` sends the same tasks as the local worker processes
(`mixcv_core.run.parallel`) to Dask's distributed scheduler: a `LocalCluster` of
``n_jobs`` worker processes started on first use and kept for the next run, or an
existing cluster by its scheduler's address. Nothing else about a run changes: every
split is made here first, the tasks are the engine's, and results are assembled in task
order, so they equal a serial run's.

How the parts travel
--------------------
- The data is scattered once to every worker (``Client.scatter(broadcast=True)``); a
  task carries a reference to it, never a copy.
- Progress events (trials, EM iterations, a fold starting) are published by the worker
  on a topic of this run (``Worker.log_event``) and reach the calling process through
  ``Client.subscribe_topic``: the live dashboard and the mirrors see them as they
  happen. They are small; the topic is emptied on the scheduler when the run ends.
- A task's outcomes (predictions, the fitted model) come back as the task's result,
  worker to client, not through the scheduler's event log; their ``FoldFinished`` /
  ``FoldFailed`` events are emitted here when the task returns, so the store commits a
  fold as its task ends.
- Each worker's native thread pools get its cores divided by its threads
  (threadpoolctl, inside the task), so workers x threads never exceed the cores of a
  worker's machine.
- With fewer tasks than worker threads, a task's batches of tuning trials are submitted
  from the task (``worker_client``, which secedes it while it waits) and run on the
  idle threads, each trial in its thread's share of the cores; the task asks and tells
  them, in order, so the study is the one a serial run makes.

- A task's tuning (`mixcv_core.run.task.Tuned`) comes back with its outcome; the MERF
  task waiting for it is submitted then. Tasks are submitted with the run's
  `Schedule` priority, so the scheduler starts the longest work first, as the local
  backend does.

What Dask cannot do that local processes can: stop a task inside native code (its
workers run tasks in threads), so a time limit is refused with this backend.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle  # noqa: S403 - only our own tasks' results, packed by them
import queue as queue_module
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

import cloudpickle

from ..errors import SpecError
from ..experiment.data import Plan
from ..experiment.spec import ExperimentSpec
from ..outcome import FoldOutcome
from ..secrets import scrub
from . import cores
from .events import Event, FoldFailed, FoldFinished
from .parallel import _THREAD_VARIABLES, end_task, exit_with_parent, pack, pack_tuned, worker_threads
from .schedule import Schedule
from .task import Task, Tuned, run_task
from .tuning import quiet_optuna

__all__ = ["require_distributed", "connect", "run_dask", "close_local_cluster"]

#: Seconds to wait for a scheduler given by address before saying it cannot be reached.
CONNECT_TIMEOUT = 10.0


def require_distributed() -> Any:
    """The ``distributed`` module, or an error naming the setting and the install command."""
    try:
        import distributed
    except ImportError:
        raise SpecError("backend", "backend='dask' needs Dask's distributed scheduler, which is not installed: "
                                   "pip install 'mixcv[dask]'") from None
    return distributed


# -- clients ------------------------------------------------------------------------------
_LOCAL_LOCK = threading.Lock()
#: The local cluster this process started, by its number of workers, and its client:
#: reused by the next run (starting one costs a few seconds), closed at exit.
_LOCAL: dict[int, tuple[Any, Any]] = {}


def _local_client(workers: int) -> Any:
    distributed = require_distributed()
    with _LOCAL_LOCK:
        cached = _LOCAL.get(workers)
        if cached is not None and cached[1].status == "running" \
                and len(cached[1].scheduler_info(n_workers=-1)["workers"]) == workers:
            return cached[1]
        close_local_cluster()   # one local cluster at a time (two would share the cores), or a broken one
        threads = worker_threads(workers)
        # Processes with one thread each: a fit holds the GIL between native calls.
        # The environment caps each worker's native pools before it starts (as the
        # local backend does); the task caps them again with threadpoolctl.
        with _environment_kept():
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=40,
                                               env=dict.fromkeys(_THREAD_VARIABLES, str(threads)))
        client = distributed.Client(cluster, set_as_default=False)
        # A kernel killed with SIGKILL cannot close its cluster: its worker processes
        # (this process's children; the nannies live in this process) then exit on their own.
        client.run(exit_with_parent, os.getpid())
        _LOCAL[workers] = (cluster, client)
        return client


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """Give this process its environment back after the block.

    distributed's nannies pass their workers' "pre-spawn" variables (``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``,
    ``PYTHONHASHSEED``) by setting them in the parent's own environment, and leave them
    there: a kernel's later work (an OpenMP runtime loaded after the run, any process it
    starts) would inherit one thread and a fixed hash seed from a Dask run. The workers
    have started once the cluster is made, so what they inherited is unchanged.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name not in saved]:
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


def close_local_cluster() -> None:
    """Close the local cluster a run started (the next ``backend="dask"`` run starts a new one)."""
    for cluster, client in list(_LOCAL.values()):
        for part in (client, cluster):
            try:
                part.close()
            except Exception:  # noqa: BLE001, S110 - closing at exit or after an interrupt: nothing left to save
                pass
    _LOCAL.clear()


atexit.register(close_local_cluster)


def _remote_client(address: str) -> Any:
    """A client of the scheduler at ``address``, or a `SpecError` within about `CONNECT_TIMEOUT` seconds.

    ``Client(timeout=...)`` bounds the TCP connect but not the handshake after it: an
    address that accepts and never answers (a firewall, a stopped process's port) would
    hang the run forever. So the client is made in a thread that is waited for a bounded
    time; one that never answers is left behind, as a daemon thread. An address that
    answers in another protocol (an HTTP port) makes distributed read a garbage frame
    length and try to allocate exabytes: that is said as what it is.
    """
    distributed = require_distributed()
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["client"] = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 - reported below, in this thread's caller
            outcome["error"] = exc

    thread = threading.Thread(target=attempt, name="mixcv-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 5.0)
    if thread.is_alive():
        raise SpecError("scheduler", f"the address {address!r} accepted the connection but no Dask scheduler "
                                     f"answered within {CONNECT_TIMEOUT + 5.0:g} s; check that it is the "
                                     "scheduler's address and port (8786 by default, not the dashboard's)")
    if "client" in outcome:
        return outcome["client"]
    exc = outcome.get("error")
    if isinstance(exc, (MemoryError, OverflowError, ValueError)) or "protocol" in type(exc).__name__.lower():
        raise SpecError("scheduler", f"something answered at {address!r}, but not as a Dask scheduler (it sent "
                                     "data Dask cannot read); check the address and port (8786 by default)") from None
    raise SpecError("scheduler", f"could not reach the Dask scheduler at {address!r} within "
                                 f"{CONNECT_TIMEOUT:g} s ({type(exc).__name__}: {scrub(str(exc))[:300]}); start it "
                                 "(dask scheduler) or check the address") from None


def check_script_guard() -> None:
    """Refuse a local cluster started from a script's top level outside ``if __name__ == "__main__":``.

    Dask's local workers are new processes that import the main script again (as
    multiprocessing's spawn does); a run started at the top level of an unguarded script
    then starts again in every worker: hundreds of lines of tracebacks, the script run
    three times, ``Nanny failed to start``, and once a store deleted under the run. Said
    here in one line with the fix, before anything starts. Only a script's top level is
    judged (the frame of ``__main__``'s own code); notebooks and imported code are not.
    """
    import ast
    import sys
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return
    frame = sys._getframe()
    while frame is not None and not (frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>"):
        frame = frame.f_back   # type: ignore[assignment]
    if frame is None:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return

    def is_main_test(test: ast.expr) -> bool:
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
            return False
        sides = [test.left, test.comparators[0]]
        return any(isinstance(n, ast.Name) and n.id == "__name__" for n in sides) and any(
            isinstance(n, ast.Constant) and n.value == "__main__" for n in sides)

    line = frame.f_lineno
    if not any(isinstance(node, ast.If) and is_main_test(node.test)
               and node.lineno <= line <= (node.end_lineno or node.lineno) for node in tree.body):
        raise SpecError("backend", f"backend='dask' starts worker processes that import {path} again, so a run "
                                   f"started at its top level (line {line}) would start again in each of them; put "
                                   "the script's work under 'if __name__ == \"__main__\":'")


def connect(spec: ExperimentSpec) -> tuple[Any, bool]:
    """A client for the run, and whether it is this process's own local cluster."""
    if spec.scheduler is not None:
        return _remote_client(spec.scheduler), False
    check_script_guard()
    from joblib import cpu_count
    # Not fewer workers for fewer tasks: the same cluster then serves the next run too.
    return _local_client(cpu_count() if spec.n_jobs == -1 else spec.n_jobs), True


# -- on a worker --------------------------------------------------------------------------
def _task_cores(threads_by_host: dict[str, int]) -> int:
    """The cores of one task thread of this worker: its machine's cores over the task threads there."""
    from distributed import get_worker
    from joblib import cpu_count

    worker = get_worker()
    sharing = threads_by_host.get(worker.ip, worker.state.nthreads)
    return max(1, cpu_count() // max(sharing, 1))


def _dask_trial(evaluate: Callable[[dict[str, Any]], Any], params: dict[str, Any], n_rows: int,
                threads_by_host: dict[str, int]) -> Any:
    """One tuning trial of a task's batch, on whichever worker thread the scheduler chose, in its share of the cores."""
    import warnings

    from threadpoolctl import threadpool_limits

    threads = _task_cores(threads_by_host)
    with warnings.catch_warnings(), threadpool_limits(limits=threads), cores.limit(threads), \
            cores.for_fit(n_rows), quiet_optuna():
        warnings.simplefilter("ignore")   # as in the task: trial warnings would repeat n_trials times
        return evaluate(params)


class _TrialsOnTheCluster:
    """A task's batches of trials sent to the cluster's idle worker threads (`mixcv_core.run.tuning.SideBySide`).

    The task secedes from its worker thread while it waits (``worker_client``), so the
    thread it held runs trials too and no thread is idle or doubly used. The trial's
    data (the scaled inner folds, inside ``evaluate``) goes to every worker once per
    task, not once per trial. The batch was asked before and is told after, in order, by
    the task: where a trial ran changes nothing in the study.
    """

    def __init__(self, threads_by_host: dict[str, int]) -> None:
        self.threads_by_host = threads_by_host
        self._shipped: tuple[Any, Any] | None = None   # (evaluate, its future on the cluster)

    def __call__(self, evaluate: Callable[[dict[str, Any]], Any], batch: Sequence[dict[str, Any]],
                 n_rows: int) -> list[Any]:
        from distributed import worker_client

        with worker_client() as client:
            if self._shipped is None or self._shipped[0] is not evaluate:
                # To every worker: a copy held by this task's worker alone would draw every
                # trial there (the scheduler places a task next to its data), not to the idle ones.
                self._shipped = (evaluate, client.scatter(evaluate, hash=False, broadcast=True))
            futures = [client.submit(_dask_trial, self._shipped[1], params, n_rows, self.threads_by_host, pure=False)
                       for params in batch]
            return list(client.gather(futures))


def _dask_task(spec: ExperimentSpec, task: Task, data: Any, outer: Any, inner: Any, known: Any, tuned: Tuned | None,
               topic: str, threads_by_host: dict[str, int], spread: bool = False) -> tuple[list[bytes], bytes]:
    """One task on a Dask worker: progress published live; its outcome and its tuning returned.

    ``threads_by_host``: the task threads of all workers on each machine of the cluster
    when the run started; this task's native pools get its machine's cores divided by
    them (a worker that joined later: by its own threads). ``spread``: the run has fewer
    tasks than worker threads, so batches of tuning trials go to the idle ones.
    """
    from distributed import get_worker
    from threadpoolctl import threadpool_limits

    worker = get_worker()
    threads = _task_cores(threads_by_host)
    side_by_side = _TrialsOnTheCluster(threads_by_host) if spread and spec.tuning.batch > 1 else None
    finished: list[Event] = []

    def emit(event: Event) -> None:
        if isinstance(event, (FoldFinished, FoldFailed)):
            finished.append(event)   # with its outcome, as the task's result
        else:
            worker.log_event(topic, cloudpickle.dumps(event))

    with threadpool_limits(limits=threads), cores.limit(threads), quiet_optuna():
        _, tuned = run_task(spec, task, data, outer, inner, emit, known, side_by_side, tuned)
    return [pack(e, spec) for e in finished], pack_tuned(task, tuned)


def _forget_topic(topic: str, dask_scheduler: Any = None) -> None:
    # The scheduler keeps every topic's events; a run's are of no use once it ended.
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", None)
    if isinstance(topics, dict):
        topics.pop(topic, None)


# -- in the calling process ---------------------------------------------------------------
def run_dask(spec: ExperimentSpec, plan: Plan, tasks: Sequence[Task], schedule: Schedule,
             emit: Callable[[Event], None], by_task: dict[int, list[FoldOutcome]],
             connection: tuple[Any, bool]) -> None:
    """Run ``tasks`` on a Dask cluster, emitting their events as they happen.

    Every task that may start is submitted at once, with ``schedule``'s priority (the
    scheduler starts the highest first as workers free up); a MERF task is submitted
    when its base task has returned its tuning.

    ``connection`` is `connect`'s answer: the caller connects before the run starts, so an
    unreachable scheduler is refused before any work.

    ``by_task`` is filled as tasks return, so an interrupt (re-raised here after the
    tasks are cancelled) leaves every finished fold in it.
    """
    distributed = require_distributed()
    client, local = connection
    topic = f"mixcv-{uuid.uuid4().hex}"
    inbox: queue_module.SimpleQueue = queue_module.SimpleQueue()
    task_of = {(t.fold, t.name): i for i, t in enumerate(tasks)}
    arrived: set[tuple[int, str]] = set()

    def deliver(event: Event) -> None:
        if isinstance(event, (FoldFinished, FoldFailed)):
            if (event.fold, event.model) in arrived:
                return   # a task the scheduler ran again after its worker died
            arrived.add((event.fold, event.model))
            if event.outcome is not None:
                by_task.setdefault(task_of[(event.fold, event.model)], []).append(event.outcome)
        emit(event)

    def drain() -> None:
        while True:
            try:
                packed = inbox.get_nowait()
            except queue_module.Empty:
                return
            deliver(pickle.loads(packed))  # noqa: S301 - published by our own task on this run's topic

    futures: dict[Any, int] = {}
    try:
        client.subscribe_topic(topic, lambda event: inbox.put(event[1]))
        data = client.scatter(plan.data, broadcast=True, hash=False)
        threads_by_host: dict[str, int] = {}
        for info in client.scheduler_info(n_workers=-1)["workers"].values():
            threads_by_host[info["host"]] = threads_by_host.get(info["host"], 0) + info["nthreads"]
        # Fewer tasks that can run at once than worker threads (3 outer folds on 8 workers):
        # the tasks' batches of trials keep the others busy.
        spread = schedule.width < sum(threads_by_host.values())
        def submit(i: int, attempt: str = "") -> Any:
            nonlocal data
            if data.status != "finished":   # every worker holding it died
                data = client.scatter(plan.data, broadcast=True, hash=False)
            t = tasks[i]
            future = client.submit(_dask_task, spec, t, data, plan.outer[t.fold], plan.inner[t.fold],
                                   plan.known_rows(t.fold), schedule.tuned.get(i), topic, threads_by_host, spread,
                                   pure=False, key=f"mixcv-task-{i}{attempt}-{topic}", priority=schedule.priority(i))
            futures[future] = i
            return future

        pending: set = set()

        def release() -> None:
            while schedule:
                pending.add(submit(schedule.next()))

        release()
        retried: set[int] = set()
        suspects: list[int] = []
        while pending or suspects:
            if not pending:
                # Tasks whose worker died run again one at a time, after the rest, as on
                # the local backend: alone, a bystander cannot be taken down by the
                # culprit again, and only the culprit's own folds fail.
                pending.add(submit(suspects.pop(0), "-alone"))
            time.sleep(0.05)
            drain()
            for f in [f for f in pending if f.done()]:
                pending.discard(f)
                i = futures[f]
                state, value = _settle(f, distributed)
                if state in ("killed", "cancelled") and i not in retried:
                    # A worker died: with this task (the culprit, or a bystander that
                    # was assigned to it) or with the data.
                    retried.add(i)
                    suspects.append(i)
                    continue
                _finished(state, value, i, tasks, spec, schedule, by_task, deliver)
            release()
        # Progress published just before a task returned may still be on its way.
        time.sleep(0.1)
        drain()
    except BaseException:
        client.cancel(list(futures), force=True)
        if local:
            # Cancelling does not stop a task a worker thread is running; this
            # process's own workers are stopped with their cluster.
            close_local_cluster()
        raise
    finally:
        try:
            client.unsubscribe_topic(topic)
            client.run_on_scheduler(_forget_topic, topic)
        except Exception:  # noqa: BLE001, S110 - a cluster already closed after an interrupt
            pass
        if not local:
            client.close()


def _settle(future: Any, distributed: Any) -> tuple[str, Any]:
    """How a done task ended: ("finished", its result), ("error", the exception), ("killed", the
    KilledWorker) or ("cancelled", None) — also when the scheduler forgot it between the
    status and the fetch (seen after a worker died)."""
    try:
        if future.status == "finished":
            return "finished", future.result()
        if future.status == "error":
            exc = future.exception()
            return ("killed" if isinstance(exc, distributed.KilledWorker) else "error"), exc
    except CancelledError:   # distributed's FutureCancelledError is one
        pass
    return "cancelled", None


def _finished(state: str, value: Any, i: int, tasks: Sequence[Task], spec: ExperimentSpec, schedule: Schedule,
              by_task: dict[int, list[FoldOutcome]], deliver: Callable[[Event], None]) -> None:
    """Deliver a returned task's outcome and tuning, or fail the fold it owed."""
    if state == "finished":
        events, tuned = value
        for packed in events:
            deliver(pickle.loads(packed))  # noqa: S301 - our own task's result
        end_task(i, tasks, schedule, by_task, deliver, pickle.loads(tuned))  # noqa: S301
        return
    if state == "error" and spec.on_error == "raise":
        raise value   # the model's own error, as on_error="raise" asks
    if state == "killed":
        msg = (f"the Dask worker running it died (every worker it was tried on: {value}); often out of memory. "
               "The other folds were kept")
    elif state == "cancelled":
        msg = ("the Dask task was lost again when it ran alone: its worker died (a crash in this model: a segfault, "
               "os._exit, the out-of-memory killer) or it was cancelled outside this run. The other folds were kept")
    else:
        msg = f"Dask task failed: {type(value).__name__}: {value}"
    tb = "" if value is None else "".join(traceback.format_exception(value))
    end_task(i, tasks, schedule, by_task, deliver, None, scrub(msg), scrub(tb))
