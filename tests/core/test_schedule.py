"""Parallel tasks start longest first; the order changes when results arrive, never what they are."""

from __future__ import annotations

import optuna
import pandas as pd

from mixcv_core import CrossValidation
from mixcv_core.engine import _tasks
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.run.parallel import longest_first, task_cost

PARAMS = {"max_depth": optuna.distributions.IntDistribution(2, 6)}


def _cv(grouped, n_jobs: int = 1) -> CrossValidation:
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes)
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2).set_inner_cv(3)
            .add_model(LinearMixedEffectsModel, add_merf=False)
            .add_model("DecisionTreeRegressor", requires_inner_cv=True, params=PARAMS, add_merf=True)
            .add_model("LinearModel", add_merf=False)
            .set_merf(False, em_max_iterations=3).set_run(random_seed=3, n_jobs=n_jobs, store=False))


def test_the_tuned_model_with_merf_starts_first_and_the_untuned_ones_follow_in_task_order(grouped):
    cv = _cv(grouped)
    spec = cv.to_spec()
    plan = plan_experiment(spec, cv._frame)
    tasks = _tasks(spec, plan)
    order = [(tasks[i][0], tasks[i][1].name) for i in longest_first(spec, plan, tasks)]
    tree = [t for t in order if t[1] == "DecisionTreeRegressor"]
    assert order[:3] == tree and len(tree) == 3
    # A tuned task's estimate: the outer fit, 3 trials x 2 inner fits on half the rows, 3 EM fits.
    k, model = next((k, m) for k, m in tasks if m.name == "DecisionTreeRegressor")
    assert task_cost(spec, plan, k, model) == len(plan.outer[k][0]) * (1 + 3 * 2 * 0.5 + 3)
    # Fold-major task order starts with the LMM; the untuned tasks come after every tuned one.
    assert tasks[0][1].name == "LinearMixedEffectsModel" and len(order) == len(tasks) == 9


def test_reordered_parallel_tasks_give_the_serial_results(grouped):
    a = _cv(grouped, 1).perform().get_results()
    b = _cv(grouped, 2).perform().get_results()
    timing = ["fit_time", "tune_time"]
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=timing), b.to_frame().drop(columns=timing))
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
