"""One task of the engine: one model, or its MERF variant, on one outer fold.

A task is self-contained and deterministic: everything it needs comes in as
arguments, every seed is derived from the run seed and the task's identity, and it
returns its outcome as plain data. That is what lets the engine run tasks in any
order, in any process, with identical results. A model that raises is caught here
and reported as a failed outcome; it never takes other folds or models with it.

A model's MERF variant is a task of its own: of the base model's task it needs only
the parameters tuning chose on that fold (`Tuned`), which the base task returns. So
the variant starts as soon as those are known (at once for an untuned model) and
runs next to other work, instead of holding its base's worker for both fits.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..experiment.data import PreparedData
from ..experiment.spec import ExperimentSpec, ModelSpec
from ..models.postprocessing import SingleModelFoldResult, is_flexcv_style, run_flexcv_style
from ..outcome import FoldOutcome
from ..secrets import scrub
from . import cores
from .events import Event, FoldFailed, FoldFinished, FoldStarted
from .fitting import SplitData, build_estimator, build_merf, fit_estimator, predict_estimator, split_data
from .tuning import SideBySide, tune

__all__ = ["Task", "Tuned", "run_task", "skip", "record_failed"]


def _post_process(model: ModelSpec, estimator: Any, feature_names: list[str],
                  fold: Callable[[], SingleModelFoldResult]) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    pp: Any = model.post_processor
    if pp is None:
        return None, {}
    if isinstance(pp, type):
        pp = pp()   # flexcv passes post-processor classes
    if is_flexcv_style(pp):
        return run_flexcv_style(pp, fold(), feature_names)
    table = pp(estimator, feature_names)
    if table is None:
        return None, {}
    return (table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)), {}


def _fold_result(name: str, fold: int, estimator: Any, best_params: dict[str, Any], s: SplitData,
                 pred_test: np.ndarray, pred_train: np.ndarray) -> SingleModelFoldResult:
    """What flexcv hands a post-processor about one fold."""
    y_test, y_train = pd.Series(s.y_test, index=s.X_test.index), pd.Series(s.y_train, index=s.X_train.index)
    return SingleModelFoldResult(
        k=fold, model_name=name, best_model=estimator, best_params=dict(best_params),
        y_pred=pd.Series(pred_test, index=y_test.index), y_test=y_test, X_test=s.X_test,
        y_train=y_train, y_pred_train=pd.Series(pred_train, index=y_train.index), X_train=s.X_train,
        fit_result=estimator)


def _scores(spec: ExperimentSpec, part: str, y: np.ndarray | None, pred: np.ndarray) -> dict[str, float]:
    """Every metric of one part's predictions (``part`` is "test", "train" or "known"), as ``<part>_<metric>``."""
    return {f"{part}_{name}": float(fn(y, pred)) for name, fn in spec.metrics.items()}


def _build_base(model: ModelSpec, spec: ExperimentSpec, params: dict[str, Any], fold: int) -> Any:
    """The outer fit's estimator with the model's training callbacks, when it takes them itself."""
    estimator: Any = build_estimator(model, spec, params, fold)
    if model.callbacks and model.callbacks_via == "init":
        estimator.set_params(callbacks=list(model.callbacks))
    return estimator


def _failed(name: str, fold: int, exc: BaseException, caught: list[warnings.WarningMessage],
            emit: Callable[[Event], None]) -> FoldOutcome:
    # Scrubbed once, here: the error is stored, shown, mirrored and warned about from now on.
    tb = scrub("".join(traceback.format_exception(exc)))
    msg = scrub(f"{type(exc).__name__}: {exc}")
    return record_failed(name, fold, msg, tb, emit, [_warning_text(w) for w in caught])


def record_failed(name: str, fold: int, msg: str, tb: str, emit: Callable[[Event], None],
                  warning_texts: list[str] | None = None) -> FoldOutcome:
    """Record ``name``'s fit on fold ``fold`` as failed with ``msg``: its outcome, announced by a `FoldFailed`."""
    out = FoldOutcome(model=name, fold=fold, ok=False, error=msg, traceback=tb, warnings=list(warning_texts or []))
    emit(FoldFailed(fold=fold, model=name, error=msg, traceback=tb, outcome=out))
    return out


def _warning_text(w: warnings.WarningMessage) -> str:
    return f"{w.category.__name__}: {w.message}"


def _fit_one(name: str, make: Callable[[], Any], model: ModelSpec, spec: ExperimentSpec,
             s: SplitData, test_rows: np.ndarray, known_rows: np.ndarray | None, fold: int,
             best_params: dict[str, Any], tune_time: float, study: Any, feature_names: list[str],
             emit: Callable[[Event], None], notes: tuple[str, ...] = ()) -> FoldOutcome:
    emit(FoldStarted(fold=fold, model=name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = make()
            t0 = time.perf_counter()
            fit_kwargs = dict(model.fit_kwargs)
            if model.callbacks and model.callbacks_via == "fit" and name == model.name:
                fit_kwargs["callbacks"] = list(model.callbacks)
            fit_estimator(estimator, s, fit_kwargs)
            fit_time = time.perf_counter() - t0
            proba = spec.task == "classification"   # probabilities, scored as such (issue 27)
            # The training rows are predicted and scored before the test rows are taken (`split_data`'s
            # test_later): the scorers' temporaries of the larger part never sit beside the test rows.
            pred_train = predict_estimator(estimator, s.X_train, s.groups_train, s.slope_names, proba)
            train_metrics = _scores(spec, "train", s.y_train, pred_train)
            pred_test = predict_estimator(estimator, s.X_test, s.groups_test, s.slope_names, proba)
            pred_known = None if s.X_known is None else predict_estimator(estimator, s.X_known, s.groups_known,
                                                                          s.slope_names, proba)
            metrics = {**_scores(spec, "test", s.y_test, pred_test), **train_metrics,
                       **({} if pred_known is None else _scores(spec, "known", s.y_known, pred_known))}
            insight, post_processed = _post_process(
                model, estimator, feature_names,
                lambda: _fold_result(name, fold, estimator, best_params, s, pred_test, pred_train))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - one failing model (even sys.exit) keeps the rest
            if spec.on_error == "raise":
                raise
            return _failed(name, fold, exc, caught, emit)
    history = getattr(estimator, "history_", None)
    converged = getattr(estimator, "converged_", None)
    # The model's own account of how its fit ended (LMM: "optimum", "stopped at the
    # limit of ..."; MERF: its stop reason), shown next to `converged` in the fold table.
    convergence = getattr(estimator, "convergence_", None) or getattr(estimator, "stop_reason_", None) or ""
    out = FoldOutcome(
        model=name, fold=fold, ok=True, metrics=metrics, fit_time=fit_time, tune_time=tune_time,
        best_params=dict(best_params), test_rows=test_rows, y_pred=pred_test, known_rows=known_rows,
        y_pred_known=pred_known, y_pred_train=pred_train, estimator=estimator,
        study=study, insight=insight, post_processed=post_processed,
        history=history.copy() if isinstance(history, pd.DataFrame) else None,
        converged=None if converged is None else bool(converged), convergence=str(convergence),
        warnings=[*notes, *(_warning_text(w) for w in caught)],
    )
    emit(FoldFinished(fold=fold, model=name, metrics=metrics, fit_time=fit_time, best_params=dict(best_params),
                      outcome=out))
    return out


#: How a fold's note about failed tuning trials begins (`Results.warnings`, the report, and
#: the engine's warning find it by this).
TRIALS_FAILED = "tuning trials failed"


def _tuning_notes(study: Any, n_trials: int) -> tuple[str, ...]:
    failed = 0 if study is None else int(study.user_attrs.get("failed_trials", 0))
    if not failed:
        return ()
    return (f"{failed} of {n_trials} {TRIALS_FAILED}; the best of the others was used. Last error: "
            f"{study.user_attrs.get('last_error', '')}",)


@dataclass(frozen=True)
class Task:
    """One unit of a run: one model, or its MERF variant, on one outer fold.

    ``name`` is the result name the task produces: the model's own, or
    ``MERF(<model>)`` for its MERF variant, which needs nothing of the base model's task
    but the parameters it was tuned to on this fold (`Tuned`).
    """

    fold: int
    model: ModelSpec
    name: str

    @property
    def merf(self) -> bool:
        """Whether this is the model's MERF variant."""
        return self.name != self.model.name

    @property
    def waits(self) -> bool:
        """Whether it needs the base model's tuned parameters: a MERF variant of a tuned model."""
        return self.merf and self.model.tunes


@dataclass
class Tuned:
    """What a model's task on one outer fold hands its MERF variant: the tuned parameters.

    An untuned model's is ``Tuned()``: its fixed arguments, no study. ``failure`` says why
    there are none (tuning failed, the task was lost); the MERF variant then fails with it.
    """

    params: dict[str, Any] = field(default_factory=dict)
    tune_time: float = 0.0
    study: Any = None
    notes: tuple[str, ...] = ()    # the tuning's own note for the fold table (failed trials)
    failure: str = ""
    traceback: str = ""
    # Seconds of the base model's outer fit with these parameters, when it succeeded: what
    # one EM iteration of its MERF variant will roughly cost (`Schedule.returned`).
    fit_time: float = 0.0

    @classmethod
    def stored(cls, outcome: FoldOutcome) -> Tuned:
        """The tuning a stored base fit records (a resumed run fits its MERF variant from it)."""
        return cls(params=dict(outcome.best_params), tune_time=outcome.tune_time, study=outcome.study,
                   notes=tuple(w for w in outcome.warnings if TRIALS_FAILED in w), fit_time=outcome.fit_time)


def skip(task: Task, tuned: Tuned, emit: Callable[[Event], None]) -> FoldOutcome:
    """Record a MERF variant whose base model has no tuned parameters on its fold as failed, saying why."""
    msg = (f"not fitted: it needs the parameters {task.model.name} was tuned to on fold {task.fold}, "
           f"and {tuned.failure}")
    return record_failed(task.name, task.fold, msg, tuned.traceback, emit)


def run_task(spec: ExperimentSpec, task: Task, data: PreparedData,
             outer: tuple[np.ndarray, np.ndarray], inner: list[tuple[np.ndarray, np.ndarray]] | None,
             emit: Callable[[Event], None], known: np.ndarray | None = None,
             side_by_side: SideBySide | None = None, tuned: Tuned | None = None) -> tuple[FoldOutcome, Tuned]:
    """Run one task: tune (if asked), fit and score a model on outer fold ``task.fold``; or
    fit its MERF variant with the parameters ``tuned`` (the base model's task's answer).

    Returns the task's `FoldOutcome` and the `Tuned` record its MERF variant takes (for a
    MERF task, the one it was given). ``known``: rows of groups in training held out of
    it (the outer split's known holdout), scored as ``known_<metric>``; ``outer``'s
    training rows already exclude them. ``side_by_side``: how batches of tuning trials
    are evaluated (`mixcv_core.run.tuning.tune`).
    """
    model, fold = task.model, task.fold
    if task.merf:
        if tuned is None:
            if task.waits:
                raise RuntimeError(f"{task.name} fold {fold} was started without the tuned parameters of {model.name}")
            tuned = Tuned()
        if tuned.failure:
            return skip(task, tuned, emit), tuned
    else:
        tuned = Tuned()
        if model.tunes:
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # trial warnings would repeat n_trials times
                    params, study = tune(model, spec, data, inner or [], fold, emit, side_by_side)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a tuning failure fails this fold's fits only
                if spec.on_error == "raise":
                    raise
                failed = _failed(model.name, fold, exc, [], emit)
                return failed, Tuned(failure=f"tuning it failed ({failed.error})", traceback=failed.traceback)
            tuned = Tuned(params=params, tune_time=time.perf_counter() - t0, study=study,
                          notes=_tuning_notes(study, spec.tuning.n_trials))

    train, test = outer
    # The test rows are taken when first predicted: the fit runs without them (`split_data`).
    s = split_data(data, train, test, spec.outer.scale, known, test_later=True)
    make: Callable[[], Any] = (functools.partial(build_merf, model, spec, tuned.params, fold, task.name, emit)
                               if task.merf else functools.partial(_build_base, model, spec, tuned.params, fold))
    # The outer fit (and MERF's EM) has this task's cores (`mixcv_core.run.cores.for_fit`).
    with cores.for_fit(len(s.y_train)):
        outcome = _fit_one(task.name, make, model, spec, s, test, known, fold, tuned.params, tuned.tune_time,
                           tuned.study, data.feature_names, emit, tuned.notes)
    if not task.merf and outcome.ok:
        tuned = dataclasses.replace(tuned, fit_time=outcome.fit_time)
    return outcome, tuned
