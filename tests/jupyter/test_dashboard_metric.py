"""The live view shows, per finished fit, the metric tuning optimises, with its direction (issue 27)."""

from __future__ import annotations

import numpy as np
import pytest

from mixcv_core.engine import run
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.run.events import FoldFinished, RunStarted
from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter.dashboard import LiveDashboard, shown_metric


def _mse(y_valid, y_pred_valid):
    return float(np.mean((np.asarray(y_valid) - np.asarray(y_pred_valid)) ** 2))


def spec(**kw):
    return ExperimentSpec(DataSpec("y"), (ModelSpec("Ridge", "Ridge"),), **kw)


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, "mse"),                                                          # regression's tuning default
    ({"tuning": TuningSpec(metric="mae")}, "mae"),
    ({"tuning": TuningSpec(metric="r2"), "metrics": ["mae", "r2"]}, "r2"),
    ({"tuning": TuningSpec(metric="mae"), "metrics": ["r2", "mse"]}, "r2"),    # not reported: the first that is
    ({"tuning": TuningSpec(objective_scorer=_mse), "metrics": ["mae", "r2"]}, "mae"),   # a scorer of one's own
])
def test_the_metric_shown_is_tunings_when_the_folds_report_it_else_the_first_reported(kw, expected):
    assert shown_metric(spec(**kw)) == expected


def _dashboard():
    log = []

    class Handle:
        def update(self, obj):
            log.append(obj)

    return LiveDashboard(display=lambda obj: (log.append(obj), Handle())[1], progress_interval=0), log


def test_a_regression_tuned_for_mae_shows_mae_lower_better_not_the_first_metric():
    dash, log = _dashboard()
    s = spec(tuning=TuningSpec(metric="mae"))
    dash.on_event(RunStarted(spec=s, n_folds=2, model_names=("Ridge",), n_rows=10))
    dash.on_event(FoldFinished(fold=0, model="Ridge", metrics={"test_r2": 0.5, "test_mse": 0.3, "test_mae": 0.41234},
                               fit_time=0.1))
    text, page = repr(log[-1]), log[-1]._repr_html_()
    assert "done · MAE 0.412 ↓" in text and "0.500" not in text
    assert "test MAE (lower is better), the metric tuning optimises" in page


def test_a_metric_that_is_not_tunings_is_not_said_to_be():
    dash, log = _dashboard()
    dash.on_event(RunStarted(spec=spec(tuning=TuningSpec(objective_scorer=_mse)), n_folds=1,
                             model_names=("Ridge",), n_rows=10))
    dash.on_event(FoldFinished(fold=0, model="Ridge", metrics={"test_r2": 0.5}, fit_time=0.1))
    assert "done · R² 0.500 ↑" in repr(log[-1])
    assert "test R² (higher is better)" in log[-1]._repr_html_()
    assert "tuning optimises" not in log[-1]._repr_html_()


def test_a_real_run_tuned_for_r2_shows_each_folds_test_r2():
    X, y, group, _ = generate_grouped_regression(6, 15, n_slopes=1, noise_level=0.5, random_seed=1)
    df = X.assign(y=y, group=group)
    from optuna.distributions import FloatDistribution
    s = ExperimentSpec(DataSpec("y", "group"), (ModelSpec("Ridge", "Ridge", params={"alpha": FloatDistribution(
        1e-3, 10.0, log=True)}),), outer=SplitSpec("GroupKFold", 3), inner=SplitSpec("KFold", 2),
        tuning=TuningSpec(n_trials=2, metric="r2"), metrics=["mse", "r2"])
    dash, log = _dashboard()
    res = run(s, df, observers=[dash], store=False)
    r2 = res.to_frame().sort_values("fold").test_r2.to_numpy()
    final = repr(log[-1])
    assert all(f"R² {v:.3f} ↑" in final for v in r2), final
    assert "MSE" not in final.split("\n", 1)[1].split(")", 1)[1]   # the cells show R², not the first metric
