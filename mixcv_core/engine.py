"""The engine: validate and plan, then run every task (a model or its MERF variant on an outer fold), then collect.

``run`` does all validation and computes every split before the first fit, so bad
input fails in milliseconds with an error naming the field. Tasks then run inline
(``n_jobs=1``) or in worker processes (`mixcv_core.run.parallel`); either way observers get
the events live, in this process. Results are assembled in
task order, never completion order, so they are identical for any ``n_jobs``.

An interrupted run (Ctrl-C, the Jupyter stop button) returns the tasks that finished,
marked ``status="interrupted"``.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConvergenceWarning, FoldFailedWarning, SpecError, SpecTypeError, StoreWarning
from .experiment.data import Plan, column_fingerprints, plan_experiment
from .experiment.spec import EXECUTION_SETTINGS, ExperimentSpec
from .experiment.target import resolve_task
from .outcome import FoldOutcome
from .results import Results
from .run.cluster import connect, run_dask
from .run.events import Event, EventBus, FoldFailed, FoldFinished, Observer, RunFailed, RunFinished, RunStarted
from .run.parallel import check_sendable, run_parallel, warm_workers
from .run.schedule import Schedule, expected_width, plan_tasks
from .run.task import TRIALS_FAILED, run_task
from .run.tuning import quiet_optuna
from .secrets import scrub
from .tracking.store import RunStore, StoreObserver, resolve_store

__all__ = ["run"]


def run(spec: ExperimentSpec, frame: pd.DataFrame,
        observers: Iterable[Observer | Callable[[Event], None]] = (),
        store: RunStore | str | Path | bool | None = None, save_models: bool = False,
        plan: Plan | None = None, stop: Callable[[], bool] | None = None, resume: str | None = None) -> Results:
    """Run a nested cross validation.

    Parameters
    ----------
    spec : ExperimentSpec
        What to run.
    frame : pandas.DataFrame
        The data; ``spec.data`` names its columns.
    observers : iterable of Observer or callable
        Receive the run's events in order, in this process.
    store : RunStore, path, bool or None
        Where the run is recorded fold by fold: ``None`` the default store
        (``$MIXCV_STORE`` or ``./.mixcv``), ``False`` nowhere.
    save_models : bool, default=False
        Also store the fitted models.
    plan : Plan, optional
        ``plan_experiment(spec, frame)`` already computed by the caller (a front end that
        validated first), so the splits are not made twice.
    stop : callable, optional
        Asked after every event; when it returns True the run stops as on Ctrl-C: the
        finished folds are kept and the results say ``"interrupted"`` (a front end's Stop
        button). It takes effect at the next event: a trial, an EM iteration, a fold.
    resume : str, optional
        The id of a stored run of this same experiment (``store`` must hold it) that was
        interrupted: only the (model, fold) fits it lacks are run, into that stored run,
        and the results are those of an uninterrupted run. The spec and the data must be
        the ones it ran with (checked).

    Returns
    -------
    Results
        Every finished (model, fold), including failures; ``status`` is ``"finished"``
        or ``"interrupted"``.

    Raises
    ------
    SpecError, SpecTypeError
        Before any fitting, for data or settings that cannot work.
    Exception
        With ``spec.on_error == "raise"``, the first error a fit raises, as raised.
    """
    if not isinstance(spec, ExperimentSpec):
        raise SpecTypeError("spec", f"expected an ExperimentSpec, got {type(spec).__name__}")
    spec = spec.resolve_names()   # a loaded spec's names, now only from modules the user imported
    # The task and positive class settled from the target, and written into the spec that
    # is stored and re-run (a task left to the data is inferred once, here).
    spec = resolve_task(spec, frame)
    width = expected_width(spec)
    warming: list = []
    if spec.backend == "local" and spec.n_jobs != 1 and resume is None and width is not None and width > 1:
        # Worker processes import for about two seconds before their first fit: started
        # now, they do so while this process validates, splits and opens the store.
        warming = warm_workers(spec, width)
    if plan is None:
        plan = plan_experiment(spec, frame)
    run_store = resolve_store(store)
    done: dict[tuple[str, int], FoldOutcome] = {}
    if resume is not None:
        done = _stored_outcomes(spec, plan, run_store, resume)
    recording = _Recording(StoreObserver(run_store, save_models, resume_id=resume) if run_store is not None
                           else None)
    if recording.recorder is not None:
        recording.recorder.encode_labels(plan.data)   # labels the store cannot keep: refused before any work
    observer_bus = EventBus(list(observers))
    # Every outcome as it is announced: an interrupt (Ctrl-C, Stop) can come after a fit's
    # FoldFinished but before its task returns, and that fit must not be lost.
    announced: dict[tuple[str, int], FoldOutcome] = {}

    class _Bus:
        # Recording is part of the run, not a bystander: it sees every event first (a fold
        # is on disk before any observer hears of it), and its failure is the run's news.
        @staticmethod
        def emit(event: Event) -> None:
            if isinstance(event, (FoldFinished, FoldFailed)) and event.outcome is not None:
                announced[(event.model, event.fold)] = event.outcome
            recording(event)
            observer_bus.emit(event)
            if stop is not None and not isinstance(event, (RunStarted, RunFailed, RunFinished)) and stop():
                raise KeyboardInterrupt("stopped on request")

    bus = _Bus()
    # A resumed run skips the fits the stored run already has (`plan_tasks`).
    tasks, tuned = plan_tasks(spec, plan, done)
    schedule = Schedule(spec, plan, tasks, tuned)
    # A time limit needs worker processes even for one job: only a process can be
    # stopped in the middle of native code (a forest, BLAS).
    # One task at a time (a model and the variant waiting for it) gains nothing from processes.
    parallel = bool(tasks) and (spec.backend == "dask" or spec.timeout is not None
                                or not (spec.n_jobs == 1 or schedule.width == 1))
    if parallel:
        check_sendable(spec, list({id(t.model): t.model for t in tasks}.values()))
    # A cluster that cannot be reached is refused before the run starts.
    cluster = connect(spec) if spec.backend == "dask" else None
    bus.emit(RunStarted(spec=spec, n_folds=len(plan.outer), model_names=tuple(spec.model_names()),
                        n_rows=len(plan.data.y), data=plan.data, outer=plan.outer))
    by_task: dict[int, list[FoldOutcome]] = {}
    status = "finished"
    t0 = time.perf_counter()
    try:
        if not parallel:
            with quiet_optuna():
                # In planned order: a MERF task right after its base, whose tuning it takes.
                for i, t in enumerate(tasks):
                    outcome, done_tuning = run_task(spec, t, plan.data, plan.outer[t.fold], plan.inner[t.fold],
                                                    bus.emit, plan.known_rows(t.fold), tuned=schedule.tuned.get(i))
                    by_task[i] = [outcome]
                    schedule.returned(i, done_tuning)
        elif cluster is not None:   # backend="dask"
            run_dask(spec, plan, tasks, schedule, bus.emit, by_task, cluster)
        else:
            run_parallel(spec, plan, tasks, schedule, spec.n_jobs, bus.emit, by_task, warming)
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:
        bus.emit(RunFailed(error=scrub(f"{type(exc).__name__}: {exc}"), traceback=scrub(traceback.format_exc())))
        raise
    rank = spec.result_rank()
    returned = {**done, **{(o.model, o.fold): o for task in by_task.values() for o in task}}
    if status == "interrupted":
        # What finished (and was recorded) but whose task was cut short before returning.
        returned = {**done, **announced, **returned}
    outcomes = sorted(returned.values(), key=lambda o: (o.fold, rank[o.model]))
    results = Results(spec=spec, outcomes=outcomes, data=plan.data, outer=plan.outer,
                      status=status, wall_time=time.perf_counter() - t0)
    results.inner = plan.inner
    results.run_id = recording.run_id
    results.recorded = recording.recorder is not None and recording.error is None
    results.record_error = recording.error
    _warn_about(results)
    if status == "interrupted":
        bus.emit(RunFailed(error="interrupted; the finished folds are kept in the results", traceback=""))
    bus.emit(RunFinished(results=results))
    # The store writes the run's end too: read its state once more.
    results.recorded = recording.recorder is not None and recording.error is None
    results.record_error = recording.error
    return results


def _stored_outcomes(spec: ExperimentSpec, plan: Plan, store: RunStore | None,
                     run_id: str) -> dict[tuple[str, int], FoldOutcome]:
    """The fits a stored run already has, after checking it ran this experiment on this data."""
    if store is None:
        raise SpecError("resume", "resuming needs the run store that holds the run; do not pass store=False")
    stored = store.load(run_id, models=False)
    rid = stored.run_id or run_id
    # A finished run has nothing left to fit, and one still running belongs to its process:
    # finishing it here would write a second run's fits under it.
    if stored.status == "finished":
        raise SpecError("resume", f"run {rid} is finished; there is nothing to resume. Load it with "
                                  f"store.load({rid!r}) or %mixcv load {rid}")
    if stored.status == "running":
        raise SpecError("resume", f"run {rid} is still running (in another process or notebook); resume it "
                                  "only once that process has stopped")

    def estimated(d: dict) -> dict:   # how it ran (processes, a cluster) may change; what it estimates not
        return {k: v for k, v in d.items() if k not in EXECUTION_SETTINGS}

    differences = _differences(estimated(stored.spec.to_dict()), estimated(spec.to_dict()))
    if differences:
        raise SpecError("resume", f"run {rid} was made with other settings ({'; '.join(differences[:5])}); resume "
                                  "it with its own (CrossValidation.resume reads them from the store)")
    recorded = store.fingerprints(rid)
    if recorded is not None:
        now = column_fingerprints(plan.data)
        changed = [f"column {name!r} " + ("is missing" if name not in now else "has other values")
                   for name in recorded if now.get(name) != recorded[name]]
        # Runs recorded before every grouping factor was fingerprinted hold one "(groups)"
        # entry; the others cannot be compared with anything, so they are not "new" columns.
        only_first = sum(name.endswith(" (groups)") for name in recorded) == 1
        changed += [f"column {name!r} is new" for name in now if name not in recorded
                    and not (only_first and name.endswith(" (groups)"))]
        if changed:
            raise SpecError("resume", f"run {rid} was made on other data: {'; '.join(changed[:5])}. Resume it "
                                      "with the DataFrame it ran on")
    same_data = np.array_equal(stored._data.y, plan.data.y) and len(stored._outer) == len(plan.outer) and all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(stored._outer, plan.outer))
    if not same_data:
        raise SpecError("resume", f"run {rid} was made on other data (its target or splits differ); resume it "
                                  "with the DataFrame it ran on")
    return {(o.model, o.fold): o for o in stored.outcomes}


def _differences(stored: object, given: object, path: str = "") -> list[str]:
    """Where two spec dicts differ, as ``field: stored -> given`` (so a refused resume names the setting)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        out: list[str] = []
        for key in dict.fromkeys([*stored, *given]):
            out += _differences(stored.get(key), given.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        return [d for i, (a, b) in enumerate(zip(stored, given)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if stored == given else [f"{path}: {stored!r} then, {given!r} now"]


class _Recording:
    """Feeds the run store, and turns its failure into the run's news instead of a silent detach.

    A store that cannot be written (a full disk, a file that went away) stops recording
    with one loud `StoreWarning`; the stored run is marked ``incomplete: <reason>`` as far
    as the store still allows; the results say ``recorded = False`` and why.
    """

    def __init__(self, recorder: StoreObserver | None) -> None:
        self.recorder = recorder
        self.error: str | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.recorder is None else self.recorder.run_id

    def __call__(self, event: Event) -> None:
        if self.recorder is None or self.error is not None:
            return
        try:
            self.recorder.on_event(event)
        except Exception as exc:  # noqa: BLE001 - whatever stops the store, the run goes on and says so
            self.error = scrub(f"{type(exc).__name__}: {exc}")
            self.recorder.abandon(self.error)
            where = self.recorder.store.path
            warnings.warn(StoreWarning(
                f"the run store at {str(where)!r} stopped recording this run: {self.error}. The run goes on and "
                "its results are complete in memory, but the store has only what came before (results.recorded "
                "is False)."), stacklevel=4)


def _warn_about(results: Results) -> None:
    base_names = {m.name for m in results.spec.models}   # MERF variants repeat their base's note
    failed = [o for o in results.outcomes if not o.ok]
    for model in dict.fromkeys(o.model for o in failed):
        mine = [o for o in results.outcomes if o.model == model]
        if all(not o.ok for o in mine):
            # Nothing of this model survived: say so once, loudly, with the error most
            # folds share, rather than let a table without its row pass unnoticed.
            error, count = Counter(o.error for o in mine).most_common(1)[0]
            warnings.warn(FoldFailedWarning(
                f"every fold of {model} failed ({count} of {len(mine)} with the same error): {error}. "
                "Nothing of this model is in the results. To see where it fails, run again with "
                "on_error='raise' (set_run(on_error='raise'), or 'on_error: raise' in the cell)."), stacklevel=3)
    if failed:
        lines = "; ".join(f"{o.model} fold {o.fold}: {o.error}" for o in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        warnings.warn(FoldFailedWarning(
            f"{len(failed)} model fit(s) failed and are listed in results.failures; the other folds "
            f"were kept. {lines}{more}"), stacklevel=3)
    tuning = [(o, w) for o in results.outcomes for w in o.warnings if TRIALS_FAILED in w and o.model in base_names]
    if tuning:
        o, w = tuning[0]
        more = f" (and in {len(tuning) - 1} more fold(s); see results.warnings)" if len(tuning) > 1 else ""
        warnings.warn(FoldFailedWarning(f"{o.model} fold {o.fold}: {w}{more}"), stacklevel=3)
    unconverged = [o for o in results.outcomes if o.ok and o.converged is False]
    if unconverged:
        names = sorted({o.model for o in unconverged})
        warnings.warn(ConvergenceWarning(
            f"{len(unconverged)} fit(s) of {', '.join(names)} did not converge; see the 'converged' column "
            "of results.to_frame()"), stacklevel=3)
