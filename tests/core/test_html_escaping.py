"""Everything user-supplied is escaped in every HTML output: report, plan, live view, stored runs."""

from __future__ import annotations

import re
import warnings

import numpy as np
import optuna
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from mixcv_core import CrossValidation, RunStore
from mixcv_core.experiment.data import plan_experiment
from mixcv_core.results.report import render_plan_html
from mixcv_core.synthesizer import generate_grouped_regression

EVIL = "<img src=x onerror=alert(1)>"


class _FailsWithMarkup(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        raise ValueError(f"bad value {EVIL}")

    def predict(self, X):
        return np.zeros(len(X))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    X, y, g, _ = generate_grouped_regression(6, 10, random_seed=1, n_features=2)
    X = X.rename(columns={"X1": f"X1{EVIL}"})
    store = RunStore(tmp_path_factory.mktemp("store"))
    cv = (CrossValidation().set_data(X, y.rename(f"y{EVIL}"), g, dataset_name=f"data {EVIL}")
          .set_splits(n_splits_out=2, n_splits_in=2).set_inner_cv(2)
          .add_model("LinearModel", model_name=f"LM {EVIL}")
          .add_model("Ridge", requires_inner_cv=True, model_name=f"Ridge {EVIL}",
                     params={"alpha": optuna.distributions.FloatDistribution(0.1, 1)})
          .add_model(_FailsWithMarkup, model_name=f"Bad {EVIL}")
          .set_run(store=store))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cv.perform().get_results()
    return cv, res, store


# mixcv's own figures: <img> of a base64 PNG, and nothing user-supplied in them.
_OWN_FIGURE = re.compile(r'<img class="mixcv-[a-z-]+"( alt="[a-z -]+")? src="data:image/png;base64,[A-Za-z0-9+/=]+"/>')


def _clean(page: str) -> None:
    page = _OWN_FIGURE.sub("", page)
    assert "<img" not in page and "&lt;img" in page


def test_the_report_escapes_names_columns_and_errors(hostile):
    _, res, _ = hostile
    _clean(res._repr_html_())


def test_the_plan_escapes_names(hostile):
    cv, _, _ = hostile
    spec = cv.to_spec()
    _clean(render_plan_html(spec, plan_experiment(spec, cv._frame)))


def test_a_stored_run_renders_escaped(hostile):
    _, res, store = hostile
    _clean(store.load(res.run_id)._repr_html_())


def test_the_live_view_escapes_names(hostile):
    from mixcv_core.run.events import FoldFinished, RunStarted
    from mixcv_jupyter.dashboard import LiveDashboard
    cv, res, _ = hostile
    log = []

    class Handle:
        def update(self, obj):
            log.append(obj)

    dash = LiveDashboard(display=lambda obj: (log.append(obj), Handle())[1], progress_interval=0)
    dash.on_event(RunStarted(spec=res.spec, n_folds=2, model_names=tuple(res.spec.model_names()), n_rows=60))
    dash.on_event(FoldFinished(fold=0, model=f"LM {EVIL}", metrics={"test_r2": 0.5}, fit_time=0.1))
    _clean(log[-1]._repr_html_())

