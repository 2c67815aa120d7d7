"""A model's MERF variant is a task of its own that waits only for its base model's tuning;
tasks start longest first; the order changes when results arrive, never what they are."""

from __future__ import annotations

import os

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from test_on_error import Explodes

from mixcv_core import CrossValidation, FoldFailedWarning
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.run.events import FoldFailed, FoldFinished, FoldStarted
from mixcv_core.run.schedule import Schedule, plan_tasks, task_cost
from mixcv_core.run.task import Tuned

PARAMS = {"max_depth": optuna.distributions.IntDistribution(2, 6)}
TIMING = ["fit_time", "tune_time"]
TREE, MERF_TREE = "DecisionTreeRegressor", "MERF(DecisionTreeRegressor)"


def _cv(grouped, n_jobs: int = 1) -> CrossValidation:
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes)
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2).set_inner_cv(3)
            .add_model(LinearMixedEffectsModel, add_merf=False)
            .add_model("DecisionTreeRegressor", requires_inner_cv=True, params=PARAMS, add_merf=True)
            .add_model("LinearModel", add_merf=True)
            .set_merf(False, em_max_iterations=3).set_run(random_seed=3, n_jobs=n_jobs, store=False))


def _planned(grouped):
    cv = _cv(grouped)
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    return spec, plan


def test_each_model_and_each_merf_variant_is_a_task_in_the_serial_order_of_events(grouped):
    spec, plan = _planned(grouped)
    tasks, tuned = plan_tasks(spec, plan)
    per_fold = ["LinearMixedEffectsModel", TREE, MERF_TREE, "LinearModel", "MERF(LinearModel)"]
    assert [(t.fold, t.name) for t in tasks] == [(k, name) for k in range(3) for name in per_fold]
    assert tuned == {}
    # Only the tuned model's variant waits; the untuned one's parameters are its fixed arguments.
    assert [t.name for t in tasks if t.waits] == [MERF_TREE] * 3
    # At most all but those three run at once: processes beyond that would only share the cores.
    assert Schedule(spec, plan, tasks, tuned).width == 15 - 3


def test_the_tuned_model_starts_first_and_its_merf_variant_only_once_its_tuning_is_known(grouped):
    spec, plan = _planned(grouped)
    tasks, tuned = plan_tasks(spec, plan)
    schedule = Schedule(spec, plan, tasks, tuned)
    # Estimates: 3 trials x 2 inner fits on half the rows, and the outer fit; 3 EM fits.
    tree = next(t for t in tasks if t.name == TREE)
    merf = next(t for t in tasks if t.name == MERF_TREE)
    rows = len(plan.outer[tree.fold][0])
    assert task_cost(spec, plan, tree) == rows * (1 + 3 * 2 * 0.5)
    assert task_cost(spec, plan, merf) == rows * 3
    started = []
    while schedule:
        started.append(schedule.next())
    names = [tasks[i].name for i in started]
    # The tree's tasks lead (their own work and the variant's), the untuned variant next
    # (3 EM fits), then the single fits in task order; the tree's variants are not ready.
    assert names[:3] == [TREE] * 3 and names[3:6] == ["MERF(LinearModel)"] * 3
    assert MERF_TREE not in names and schedule.waiting
    assert [tasks[i].fold for i in started[6:]] == [0, 0, 1, 1, 2, 2]

    base = started[0]
    found = Tuned(params={"max_depth": 4})
    assert schedule.returned(base, found) == []
    released = schedule.next()
    assert tasks[released].name == MERF_TREE and tasks[released].fold == tasks[base].fold
    assert schedule.tuned[released] is found
    # A base without tuning: its variant cannot run, and says why.
    other = started[1]
    cannot = schedule.returned(other, Tuned(failure="tuning it failed (boom)"))
    assert [(tasks[j].name, tasks[j].fold) for j in cannot] == [(MERF_TREE, tasks[other].fold)]
    assert not schedule


def test_a_merf_variant_waits_for_its_base_and_parallel_runs_give_the_serial_results(grouped):
    a = _cv(grouped, 1).perform().get_results()
    events: list = []
    b = _cv(grouped, 2).perform(observers=[events.append]).get_results()
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMING), b.to_frame().drop(columns=TIMING))
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    at = {(type(e).__name__, e.model, e.fold): n for n, e in enumerate(events)
          if isinstance(e, (FoldStarted, FoldFinished))}
    for k in range(3):   # the tree's variant started only after the tree's task had finished
        assert at[("FoldStarted", MERF_TREE, k)] > at[("FoldFinished", TREE, k)]
    assert b.outcomes[2].model == MERF_TREE and b.outcomes[2].study is not None
    assert b.outcomes[2].best_params == b.outcomes[1].best_params and b.outcomes[2].best_params


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_base_whose_tuning_failed_fails_its_merf_variant_saying_why(grouped, n_jobs):
    X, y, g, _ = grouped
    cv = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2, n_splits_in=2)
          .add_model("LinearModel")
          .add_model(Explodes, requires_inner_cv=True, params={"limit": optuna.distributions.IntDistribution(0, 1)},
                     add_merf=True)
          .set_inner_cv(2).set_merf(False, em_max_iterations=2).set_run(store=False, n_jobs=n_jobs))
    events: list = []
    with pytest.warns(FoldFailedWarning):
        res = cv.perform(observers=[events.append]).get_results()
    failures = res.failures.set_index(["model", "fold"])["error"]
    assert sorted(failures.index) == [("Explodes", 0), ("Explodes", 1), ("MERF(Explodes)", 0), ("MERF(Explodes)", 1)]
    for k in range(2):
        assert failures[("Explodes", k)].startswith("RuntimeError: all 2 tuning trials of 'Explodes' failed")
        assert failures[("MERF(Explodes)", k)] == (
            f"not fitted: it needs the parameters Explodes was tuned to on fold {k}, "
            f"and tuning it failed ({failures[('Explodes', k)]})")
    # Never started: it failed where it waited.
    assert not [e for e in events if isinstance(e, FoldStarted) and e.model == "MERF(Explodes)"]
    assert len([e for e in events if isinstance(e, FoldFailed)]) == 4
    assert sorted(res.to_frame()["model"]) == ["LinearModel"] * 2


def test_a_base_task_lost_with_its_worker_fails_its_merf_variant_saying_why(grouped):
    from _helpers import DiesInFold
    X, y, g, _ = grouped
    import numpy as np
    rows = np.arange(60)
    # Fold 1 has 30 training rows; its inner folds (2 of them) train on 15: the tuning kills the worker.
    splits = [(rows[:40], rows[40:]), (rows[:30], rows[30:])]
    with pytest.warns(FoldFailedWarning):
        res = (CrossValidation().set_data(X, y, g).set_splits(split_out=splits, split_in="KFold", n_splits_in=2)
               .add_model(DiesInFold, requires_inner_cv=True,
                          params={"die_n": optuna.distributions.CategoricalDistribution([15])}, add_merf=True)
               .set_inner_cv(1).set_merf(False, em_max_iterations=2).set_run(store=False, n_jobs=2)
               .perform().get_results())
    failures = res.failures.set_index(["model", "fold"])["error"]
    assert sorted(failures.index) == [("DiesInFold", 1), ("MERF(DiesInFold)", 1)]
    assert failures[("DiesInFold", 1)].startswith("worker process failed")
    assert failures[("MERF(DiesInFold)", 1)].startswith(
        "not fitted: it needs the parameters DiesInFold was tuned to on fold 1, and that task failed "
        "(worker process failed")
    assert sorted(res.to_frame()["model"]) == ["DiesInFold", "MERF(DiesInFold)"]


def test_a_resumed_run_plans_only_what_is_missing_and_a_variant_takes_its_stored_bases_tuning(grouped):
    from mixcv_core.outcome import FoldOutcome
    spec, plan = _planned(grouped)
    note = "1 of 3 tuning trials failed; the best of the others was used. Last error: boom"
    done = {(name, k): FoldOutcome(model=name, fold=k, ok=True) for k in range(3)
            for name in ["LinearMixedEffectsModel", "LinearModel", "MERF(LinearModel)"]}
    done[(TREE, 0)] = FoldOutcome(model=TREE, fold=0, ok=True, best_params={"max_depth": 4}, tune_time=1.5,
                                  fit_time=0.2, warnings=[note, "UserWarning: other"])
    # Fold 1's tree failed: whether in tuning or in its fit is not stored, so it runs again.
    done[(TREE, 1)] = FoldOutcome(model=TREE, fold=1, ok=False, error="ValueError: boom")
    # Fold 2's tree failed too, but its variant is stored: nothing of fold 2 runs.
    done[(TREE, 2)] = FoldOutcome(model=TREE, fold=2, ok=False, error="ValueError: boom")
    done[(MERF_TREE, 2)] = FoldOutcome(model=MERF_TREE, fold=2, ok=False, error="not fitted")
    tasks, tuned = plan_tasks(spec, plan, done)
    assert [(t.fold, t.name) for t in tasks] == [(0, MERF_TREE), (1, TREE), (1, MERF_TREE)]
    assert list(tuned) == [0]
    assert tuned[0].params == {"max_depth": 4} and tuned[0].tune_time == 1.5 and tuned[0].notes == (note,)
    schedule = Schedule(spec, plan, tasks, tuned)
    assert sorted(schedule.next() for _ in range(2)) == [0, 1] and not schedule and schedule.waiting


def test_a_merf_variant_is_ranked_again_from_its_bases_measured_fit_and_the_longest_goes_first(grouped):
    spec, plan = _planned(grouped)
    tasks, tuned = plan_tasks(spec, plan)
    schedule = Schedule(spec, plan, tasks, tuned)
    trees = [i for i, t in enumerate(tasks) if t.name == TREE]
    merfs = {t.fold: j for j, t in enumerate(tasks) if t.name == MERF_TREE}
    while schedule:   # everything that may start has started
        schedule.next()
    # Both trees tuned in 1 s; fold 1's outer fit took three times fold 0's, and so will each
    # of its variant's EM iterations: released later, it still goes first.
    schedule.returned(trees[0], Tuned(tune_time=1.0, fit_time=0.1))
    schedule.returned(trees[1], Tuned(tune_time=1.0, fit_time=0.3))
    assert [schedule.next(), schedule.next()] == [merfs[1], merfs[0]]
    cost = [len(plan.outer[k][0]) * (1 + 3 * 2 * 0.5) for k in range(2)]   # the two trees' estimates
    # One EM iteration per max_iterations (3), in estimate units at the rate the trees ran at.
    assert schedule.rank[merfs[0]] == pytest.approx(0.1 * 3 * cost[0] / 1.1)
    assert schedule.rank[merfs[1]] == pytest.approx(0.3 * 3 * sum(cost) / 2.4)
    assert schedule.priority(merfs[1]) == round(schedule.rank[merfs[1]])


def test_a_forests_merf_variant_is_estimated_by_the_whole_fits_its_light_em_costs(grouped):
    X, y, group, slopes = grouped
    cv = (CrossValidation().set_data(X, y, group, slopes)
          .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2).set_inner_cv(3)
          .add_model("RandomForestRegressor", requires_inner_cv=True, params=PARAMS, model_kwargs={"n_estimators": 20},
                     add_merf=True)
          .set_merf(False, em_max_iterations=20).set_run(store=False))
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    rows = len(plan.outer[0][0])
    cost = rows * (1 + 3 * 2 * 0.5)      # the forest's own task: outer fit and 3 trials on 2 inner folds
    for params, fits in (({}, 20 * 5 / 20 + 1),          # 20 EM iterations on 5 trees, the 20 once
                         ({"n_estimators": 16}, 20)):     # tuned to 16 trees: no light copy, 20 whole fits
        tasks, tuned = plan_tasks(spec, plan)
        schedule = Schedule(spec, plan, tasks, tuned)
        forest = next(i for i, t in enumerate(tasks) if t.name == "RandomForestRegressor" and t.fold == 0)
        merf = next(j for j, t in enumerate(tasks) if t.merf and t.fold == 0)
        assert schedule.rank[merf] == pytest.approx(rows * (20 * 5 / 20 + 1))   # before tuning: the 20 given
        while schedule:
            schedule.next()
        schedule.returned(forest, Tuned(params=params, tune_time=1.0, fit_time=0.1))
        assert schedule.rank[merf] == pytest.approx(0.1 * fits * cost / 1.1)


class RecordsItsProcess(RegressorMixin, BaseEstimator):
    """Predicts the mean; remembers the process it was fitted in."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y):
        self.pid_, self.mean_ = os.getpid(), float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_a_tuned_model_and_the_variant_waiting_for_it_run_in_this_process_even_with_two_jobs(grouped):
    X, y, g, _ = grouped
    rows = np.arange(60)
    res = (CrossValidation().set_data(X, y, g).set_splits(split_out=[(rows[:40], rows[40:])], split_in="KFold",
                                                          n_splits_in=2)
           .add_model(RecordsItsProcess, requires_inner_cv=True,
                      params={"alpha": optuna.distributions.FloatDistribution(0.1, 1.0)}, add_merf=True)
           .set_inner_cv(2).set_merf(False, em_max_iterations=2).set_run(n_jobs=2, store=False)
           .perform().get_results())
    # Two tasks, never side by side: worker processes would only halve the cores each gets.
    assert res.models[("RecordsItsProcess", 0)].pid_ == os.getpid()
    assert res.models[("MERF(RecordsItsProcess)", 0)].trained_fe_model.pid_ == os.getpid()


@pytest.mark.parametrize(("repeats", "one_fold"), [(1, False), (2, False), (1, True)])
def test_the_width_a_spec_tells_before_its_splits_is_the_schedules(grouped, repeats, one_fold):
    from mixcv_core.run.schedule import expected_width
    cv = _cv(grouped).set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, n_repeats=repeats,
                                 break_cross_val=one_fold)
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    assert expected_width(spec) == Schedule(spec, plan, *plan_tasks(spec, plan)).width
    folds = [(np.arange(0, 40), np.arange(40, 60)), (np.arange(20, 60), np.arange(0, 20))]
    assert expected_width(cv.set_splits(folds, "GroupKFold", n_splits_in=2).to_spec()) is None   # only the plan knows


def test_a_parallel_run_starts_its_workers_before_it_splits_the_data_and_fits_in_them(grouped, tmp_path, monkeypatch):
    import importlib

    import psutil
    from _helpers import LeavesItsPid
    engine = importlib.import_module("mixcv_core.engine")
    parallel = importlib.import_module("mixcv_core.run.parallel")
    parallel._executor(2, 1).shutdown(wait=True, kill_workers=True)   # no workers left by an earlier run
    at_planning: set[int] = set()

    def planning(*args, **kwargs):
        at_planning.update(p.pid for p in psutil.Process().children())
        return plan_experiment(*args, **kwargs)

    monkeypatch.setattr(engine, "plan_experiment", planning)
    X, y, group, _ = grouped
    (CrossValidation().set_data(X, y, group).set_splits("GroupKFold", n_splits_out=2)
     .add_model(LeavesItsPid, model_kwargs={"folder": str(tmp_path), "delay": 0.0})
     .set_run(n_jobs=2, store=False).perform())
    fitted_in = {int(f.name.split("-")[0]) for f in tmp_path.iterdir()}
    assert fitted_in and fitted_in <= at_planning
