"""The inner loop: Optuna tuning of one model on one outer training fold.

Each (outer fold, model) gets its own study with a TPE sampler seeded from the run
seed and the pair's identity, so the trials do not depend on which process runs them.
A trial's value is the objective averaged over the inner folds: the built-in metric
`ExperimentSpec.tuning_metric` (the validation MSE for regression, the log loss of the
predicted probabilities for classification, unless another is chosen), optimised in its
own direction (`mixcv_core.metrics.METRIC_INFO`), or the user's scorer, minimised. The
inner folds were made on the outer training rows only, and each is scaled on its own
training part.

Trials come in batches of ``spec.tuning.batch``: asked of the sampler together, evaluated
side by side on the task's cores (`evaluate_side_by_side`), told in the order asked. What
the sampler sees at each ask depends on the batch size only, never on how many threads,
processes or Dask workers evaluated the batch, so a seed fixes the trials for any
``n_jobs`` and backend; a batch of one is the one-trial-at-a-time loop.

A point the sampler proposes again in the same study (TPE does, on integer and categorical
spaces) is not refitted: it takes the value it had, which the same fits on the same inner folds
with the same seeds would give again.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from .._seeding import derive_seed
from ..experiment.data import PreparedData
from ..experiment.spec import ExperimentSpec, ModelSpec
from ..metrics import METRIC_INFO, mse_objective
from . import cores
from .events import Event, TrialFinished, TrialStarted
from .fitting import (
    build_estimator,
    call_scorer,
    fit_estimator,
    predict_estimator,
    scorer_uses_train,
    split_data,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["tune", "quiet_optuna", "study_direction", "evaluate_side_by_side", "SideBySide"]

T = TypeVar("T")


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO logging for the duration (mixcv reports trials as events)."""
    logger = logging.getLogger("optuna")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _objective(spec: ExperimentSpec) -> tuple[Callable[..., float], Literal["minimize", "maximize"]]:
    """What a trial is scored by, and whether Optuna maximises or minimises it.

    The regression default stays flexcv's `mse_objective` (minimised); any other built-in
    metric is its own function, in its own direction.
    """
    name = spec.tuning_metric
    if name is None:   # the user's scorer: a loss, as flexcv's objective_scorer
        assert spec.tuning.objective_scorer is not None
        return spec.tuning.objective_scorer, "minimize"
    if name == "mse":
        return mse_objective, "minimize"
    info = METRIC_INFO[name]
    return info.function, "maximize" if info.greater_is_better else "minimize"


def study_direction(spec: ExperimentSpec) -> Literal["minimize", "maximize"]:
    """``"maximize"`` or ``"minimize"``: how the run's studies were (or are rebuilt) optimised."""
    return _objective(spec)[1]


def evaluate_side_by_side(evaluate: Callable[[dict[str, Any]], T], batch: Sequence[dict[str, Any]],
                          n_rows: int) -> list[T]:
    """``[evaluate(params) for params in batch]``, the trials side by side on the task's cores.

    Threads inside the task, never more processes: a worker of the local pool cannot
    start workers of its own, and threads reach every backend alike (inline, worker
    processes, Dask). The task's core share (`mixcv_core.run.cores.available`: the machine
    for an inline run, ``cores // workers`` for a worker process, which the pool sizes by
    the tasks there are, the machine's cores over its task threads on Dask) is split
    between the trials: each fit gets ``share // threads`` cores for its joblib threads,
    and the native BLAS/OpenMP pools as many, so threads x native threads stay within the
    share. With one core, or one trial, the trials run here, one after the other, as
    before batches. Either way the results come back in the order of ``batch``.

    The fits gain only where they release the interpreter lock: scikit-learn's tree
    builder (a forest with ``n_jobs=1``) and BLAS do; the trials of an estimator that is
    mostly Python code run one after the other in effect (not measured here: the machine
    these were written on gave one process no more than one core). Trials sent to Dask's
    idle workers (other processes) have no such limit.
    """
    share = cores.available()
    n_threads = min(len(batch), share)
    if n_threads <= 1:
        return [evaluate(params) for params in batch]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import ThreadpoolController
    per_trial = max(1, share // n_threads)
    # Native pools never grow with cores lent at the end of a run (`cores.own`): their size
    # is fixed by the run's configuration, so a fit's result does not depend on when it ran.
    native_threads = min(per_trial, cores.own())
    # Inspecting the loaded native libraries takes milliseconds: once per batch, not per trial.
    native = ThreadpoolController()

    def one(params: dict[str, Any]) -> T:
        # A new thread starts from the defaults (joblib's config is per thread, the cores
        # limit a context variable, OpenMP's thread count a per-thread setting): the
        # trial's share is set again here. The BLAS pools are one per process, capped below.
        with cores.limit(per_trial), cores.for_fit(n_rows), native.limit(limits=native_threads, user_api="openmp"):
            return evaluate(params)

    with native.limit(limits=native_threads, user_api="blas"), \
            ThreadPoolExecutor(n_threads, thread_name_prefix="mixcv-trial") as pool:
        return list(pool.map(one, batch))


#: How a batch of trials is evaluated: ``(evaluate, batch of params, training rows) -> results in
#: the batch's order`` (`evaluate_side_by_side`, or the Dask backend's spread over idle workers).
SideBySide = Callable[[Callable[[dict[str, Any]], Any], Sequence[dict[str, Any]], int], list[Any]]


def _point(params: dict[str, Any]) -> Hashable:
    """A trial's parameters as a key: by name, each value by its repr (1 and 1.0 stay apart)."""
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def tune(model: ModelSpec, spec: ExperimentSpec, data: PreparedData,
         inner: Sequence[tuple[np.ndarray, np.ndarray]], fold: int,
         emit: Callable[[Event], None], side_by_side: SideBySide | None = None
         ) -> tuple[dict[str, Any], optuna.Study]:
    """Run ``spec.tuning.n_trials`` Optuna trials for ``model``, in batches, and return the best params.

    Parameters
    ----------
    model : ModelSpec
        The model; its ``params`` are the search space.
    spec : ExperimentSpec
    data : PreparedData
    inner : sequence of (train, valid) absolute row indices
        The inner folds of this outer fold's training rows.
    fold : int
        The outer fold (for seeds and events).
    emit : callable
        Receives `TrialStarted`/`TrialFinished` events.
    side_by_side : callable, optional
        Evaluates a batch of trials (default `evaluate_side_by_side`: threads on the task's
        cores). Whatever evaluates them, they are asked and told here, in order.

    Returns
    -------
    best_params : dict
    study : optuna.Study

    Raises
    ------
    RuntimeError
        If every trial failed (the last error is chained).
    """
    import optuna  # with the first study, not with mixcv_core
    batch = spec.tuning.batch
    # With batches, the trials asked but not yet told count as lies (their params with the
    # worst value so far), so a batch's k trials spread out instead of repeating one point.
    # One trial at a time keeps today's sampler: nothing is ever pending when one is asked.
    sampler = optuna.samplers.TPESampler(seed=derive_seed(spec.seed, "tpe", model.name, fold),
                                         constant_liar=batch > 1)
    scorer, direction = _objective(spec)
    study = optuna.create_study(direction=direction, sampler=sampler,
                                study_name=f"{model.name} fold {fold}")
    proba = spec.task == "classification"
    # Scale each inner fold once, not once per trial.
    splits = [split_data(data, tr, va, spec.inner.scale) for tr, va in inner]
    fit_kwargs = dict(model.fit_kwargs)
    # Predicting every inner training set costs as much as predicting its validation
    # set, for nothing when the objective reads only the latter.
    with_train = scorer_uses_train(scorer)
    n_rows = len(splits[0].y_train) if splits else 0

    def evaluate(params: dict[str, Any]) -> float | BaseException:
        """The objective of one trial's params over the inner folds, or what it raised."""
        try:
            values = []
            for s in splits:
                est = build_estimator(model, spec, params, fold)
                fit_estimator(est, s, fit_kwargs)
                pred_valid = predict_estimator(est, s.X_test, s.groups_test, s.slope_names, proba)
                pred_train = (predict_estimator(est, s.X_train, s.groups_train, s.slope_names, proba)
                              if with_train else None)
                values.append(call_scorer(scorer, s.y_test, pred_valid, s.y_train, pred_train))
            value = float(np.mean(values))
            if not math.isfinite(value):
                raise ValueError(f"the objective was {value}")
            return value
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a bad corner of the search space fails one trial only
            return exc

    n_trials = spec.tuning.n_trials
    last_error: BaseException | None = None
    seen: dict[Hashable, float | BaseException] = {}   # each point's value (or error), by `_point`
    # An estimator that parallelises itself through joblib (a forest, n_jobs left at None)
    # gets the task's cores inside each fit (`mixcv_core.run.cores.for_fit`).
    with cores.for_fit(n_rows), quiet_optuna():
        # The study's own list, not `study.trials` (a deep copy of every trial at each look).
        while len(study.get_trials(deepcopy=False)) < n_trials:
            # Ask the whole batch before any of it is evaluated, tell it in the order asked:
            # the sampler sees the same history at every ask whatever evaluates the trials,
            # so the study depends on the seed and the batch size only.
            trials = [study.ask(fixed_distributions=dict(model.params))
                      for _ in range(min(batch, n_trials - len(study.get_trials(deepcopy=False))))]
            for trial in trials:
                emit(TrialStarted(fold=fold, model=model.name, trial=trial.number))
            batch_params = [dict(t.params) for t in trials]
            # A point the sampler proposes again (TPE does, on integer and categorical spaces)
            # takes the value it already had: the same fits on the same inner folds with the same
            # seeds would give it again. Only the points not seen yet are evaluated, once each.
            keys = [_point(p) for p in batch_params]
            fresh = list({key: p for key, p in zip(keys, batch_params) if key not in seen}.items())
            if fresh:
                values = (evaluate_side_by_side if side_by_side is None or len(fresh) == 1 else side_by_side)(
                    evaluate, [p for _, p in fresh], n_rows)
                seen.update(zip((key for key, _ in fresh), values))
            results = [seen[key] for key in keys]
            for trial, result in zip(trials, results):
                if isinstance(result, BaseException):
                    if spec.on_error == "raise":
                        raise result
                    last_error = result
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    value = math.nan
                else:
                    value = result
                    study.tell(trial, value)
                emit(TrialFinished(fold=fold, model=model.name, trial=trial.number, value=value,
                                   params=dict(trial.params), n_trials=n_trials))
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if last_error is not None:   # kept with the study, so the fold can say so (a silent gap otherwise)
        study.set_user_attr("failed_trials", len(study.get_trials(deepcopy=False)) - len(completed))
        study.set_user_attr("last_error", f"{type(last_error).__name__}: {str(last_error)[:300]}")
    if not completed:
        raise RuntimeError(f"all {n_trials} tuning trials of {model.name!r} failed in outer fold {fold}; "
                           f"last error: {type(last_error).__name__}: {last_error}") from last_error
    return dict(study.best_params), study
