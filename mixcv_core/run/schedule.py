"""Which tasks a run has, and which one starts next.

A run's tasks (`plan_tasks`) are one per outer fold and result name: a model, or its MERF
variant. The variant needs of its base model's task only the parameters tuning chose on
that fold (`mixcv_core.run.task.Tuned`), so it waits for that task alone, and for nothing
when the model is not tuned. The executors (`parallel`, `cluster`) ask a `Schedule` for
the next task whenever a worker is free: of the tasks that may start, the one with the
most work ahead of it (its own estimated cost plus that of the variant waiting for it),
so the long tasks do not end up last, one worker running them while the others idle.

The order changes when outcomes arrive, never what they are: every seed comes from a
task's identity, and results are assembled by task. A serial run takes the tasks in
their planned order, each model followed by its MERF variant, so its events come in the
order they always did.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence

from ..experiment.data import Plan
from ..experiment.spec import ExperimentSpec
from ..models.merf import em_fits
from ..outcome import FoldOutcome
from .task import Task, Tuned

__all__ = ["Schedule", "plan_tasks", "task_cost", "expected_width"]


def plan_tasks(spec: ExperimentSpec, plan: Plan, done: Mapping[tuple[str, int], FoldOutcome] | None = None,
               ) -> tuple[list[Task], dict[int, Tuned]]:
    """The run's tasks in their serial order, and the tuning already known for some MERF variants.

    Fold-major, each model followed by its MERF variant: with ``n_jobs=1`` the first fold of
    every model finishes early, so a glance at the live table compares models rather than
    folds. ``done``: the fits a stored run already has (a resumed run), left out. A MERF
    variant whose base model's fit is stored takes the tuning recorded with it, so only the
    variant runs; when that stored fit failed, the base task runs again (whether tuning or the
    fit failed is not stored, and only tuning gives the parameters).
    """
    done = done or {}
    tasks: list[Task] = []
    tuned: dict[int, Tuned] = {}
    for k in range(len(plan.outer)):
        for m in spec.models:
            base = done.get((m.name, k))
            variants = [name for name in spec.task_names(m)[1:] if (name, k) not in done]
            again = base is None or (bool(variants) and m.tunes and not base.ok)
            if again:
                tasks.append(Task(k, m, m.name))
            for name in variants:
                if not again and base is not None:
                    tuned[len(tasks)] = Tuned.stored(base) if m.tunes else Tuned()
                tasks.append(Task(k, m, name))
    return tasks, tuned


def expected_width(spec: ExperimentSpec) -> int | None:
    """`Schedule.width` of a fresh run of ``spec`` before its splits are made, when the spec tells.

    A named outer method makes ``n_splits x n_repeats`` folds; each gives one task per model
    that may start at once, and one per MERF variant of an untuned model (a tuned model's
    variant waits for it). None for a splitter object or a list of folds: only the plan knows.
    """
    if not spec.outer.is_named:
        return None
    folds = 1 if spec.break_cross_val else spec.outer.n_splits * spec.outer.n_repeats
    return folds * sum(1 if m.tunes else len(spec.task_names(m)) for m in spec.models)


def task_cost(spec: ExperimentSpec, plan: Plan, task: Task) -> float:
    """A rough estimate of a task's work: training rows times the fits it makes.

    A model: its outer fit, and ``n_trials`` fits per inner fold when it is tuned (on a
    share ``1 - 1/folds`` of the rows). Its MERF variant: one base-model fit per EM
    iteration, at most ``max_iterations``, fewer for a forest that iterates on a light copy
    (`mixcv_core.models.merf.em_fits`; its trees as far as they are known before tuning).
    Only the order of the estimates matters.
    """
    rows = float(len(plan.outer[task.fold][0]))
    if task.merf:
        return rows * _merf_fits(spec, task, {})
    fits = 1.0
    inner = plan.inner[task.fold]
    if task.model.tunes and inner:
        fits += spec.tuning.n_trials * len(inner) * (1.0 - 1.0 / max(len(inner), 2))
    return rows * fits


def _merf_fits(spec: ExperimentSpec, task: Task, params: Mapping[str, object]) -> float:
    """Whole base-model fits a MERF variant costs with these tuned ``params`` (`em_fits`)."""
    trees = {**task.model.model_kwargs, **params}.get("n_estimators")
    return em_fits(trees, spec.merf.em_estimators, spec.merf.max_iterations, spec.merf.linear_fixed_effects)


class Schedule:
    """The tasks that may start, the longest path first, and the MERF variants waiting for a tuning.

    Parameters
    ----------
    spec, plan
        The run's.
    tasks : sequence of Task
        `plan_tasks`' first answer.
    tuned : mapping of int to Tuned
        The tuning known before the run for some MERF tasks, by task index (`plan_tasks`'
        second answer). Every other MERF task of a tuned model waits for its base task in
        ``tasks``; an untuned model's variant waits for nothing.
    """

    def __init__(self, spec: ExperimentSpec, plan: Plan, tasks: Sequence[Task],
                 tuned: Mapping[int, Tuned] | None = None) -> None:
        self.tuned: dict[int, Tuned] = dict(tuned or {})
        where = {(t.fold, t.name): i for i, t in enumerate(tasks)}
        self._waiting: dict[int, list[int]] = {}   # base task -> the MERF tasks waiting for its tuning
        for i, t in enumerate(tasks):
            if t.merf and i not in self.tuned:
                if t.waits:
                    self._waiting.setdefault(where[(t.fold, t.model.name)], []).append(i)
                else:
                    self.tuned[i] = Tuned()
        self._cost = [task_cost(spec, plan, t) for t in tasks]
        self._spec, self._tasks = spec, list(tasks)
        # A base task counts the work it releases: started early, its MERF variant can
        # start early too, rather than after everything else.
        self.rank = [self._cost[i] + max((self._cost[j] for j in self._waiting.get(i, ())), default=0.0)
                     for i in range(len(tasks))]
        self._seconds = self._units = 0.0   # of the base tasks returned so far: time taken, estimated cost
        blocked = {j for waiting in self._waiting.values() for j in waiting}
        #: The most tasks that can run at once: a variant never runs next to its own base.
        self.width = len(tasks) - len(blocked)
        self._ready = [(-self.rank[i], i) for i in range(len(tasks)) if i not in blocked]
        heapq.heapify(self._ready)

    def __bool__(self) -> bool:
        """Whether a task may start now."""
        return bool(self._ready)

    @property
    def waiting(self) -> bool:
        """Whether some MERF task still waits for its base task."""
        return bool(self._waiting)

    def next(self) -> int:
        """The task to start now: of those that may, the most work ahead (ties: task order)."""
        return heapq.heappop(self._ready)[1]

    def priority(self, i: int) -> int:
        """Task ``i``'s work ahead as Dask's ``priority`` (higher starts first; ties in submission order)."""
        return round(self.rank[i])

    def returned(self, i: int, tuned: Tuned) -> list[int]:
        """Task ``i`` ended with ``tuned``: its MERF variants may start, unless it has no tuning.

        A variant's estimate is then made again from what was measured: one EM iteration
        refits the tuned model on the same rows (or a light copy of a forest: `em_fits`
        counts whole fits), which the base's outer fit just timed
        (``tuned.fit_time``), in the units of the estimates at the rate the base tasks so
        far ran at. Tuned parameters change a fit's cost more than the rows do (a forest's
        depth), and of the variants waiting at the end of a run the longest must go first.

        Returns the variants that cannot run (``tuned.failure`` says why; they are
        recorded as failed with `mixcv_core.run.task.skip`).
        """
        measured = math.isfinite(tuned.fit_time) and tuned.fit_time > 0
        if measured and i in self._waiting:
            self._seconds += tuned.tune_time + tuned.fit_time
            self._units += self._cost[i]
        cannot = []
        for j in self._waiting.pop(i, []):
            self.tuned[j] = tuned
            if tuned.failure:
                cannot.append(j)
                continue
            if measured:
                fits = _merf_fits(self._spec, self._tasks[j], tuned.params)
                self.rank[j] = tuned.fit_time * fits * self._units / self._seconds
            heapq.heappush(self._ready, (-self.rank[j], j))
        return cannot
