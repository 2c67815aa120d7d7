"""The form and the live view on a binary target (issue 27, item 6): mlmRev's Contraception.

1934 women in 60 districts of Bangladesh; ``use`` (contraceptive use) is "Y" or "N". The form
must infer a classification from it and say so, offer the classification metrics, tuning
metrics and classifiers, keep a task and positive class through spec -> form -> spec, and
run: the metric columns are checked against scikit-learn's functions on the run's stored
predictions.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.metrics import METRIC_INFO, TASK_DEFAULT_METRICS
from mixcv_core.run.events import FoldFinished, RunStarted
from mixcv_jupyter import Configurator
from mixcv_jupyter.dashboard import LiveDashboard
from mixcv_jupyter.form import CLASSIFIER_MODELS, COMMON_MODELS

CLASSIFICATION = [n for n, i in METRIC_INFO.items() if i.task == "classification"]


class Shell:
    def __init__(self):
        self.user_ns = {}


@pytest.fixture
def form(contraception):
    shell = Shell()
    shell.user_ns["contra"] = contraception
    f = Configurator(contraception, shell=shell)
    f.target.value = "use"
    f.groups.value = "district"
    return f


def card(form, name):
    return next(c for c in form.cards if c.label == name)


def shown(form):
    return [c.label for c in form.cards if c.box.layout.display != "none"]


def test_a_two_label_target_is_offered_and_inferred_a_classification_said_next_to_the_task(form):
    assert "use" in form.target.options   # text labels, yet a target
    assert form.task.value == "auto" and form.effective_task() == "classification"
    assert "classification (inferred: 2 values; positive class Y)" in form.task_note.value
    assert form.positive_class.layout.display is None
    assert [v for _, v in form.positive_class.options] == [None, "N", "Y"]


def test_a_zero_one_target_is_a_classification_until_regression_is_chosen(form):
    card(form, "LogisticRegression").enabled.value = True
    form.target.value = "urban"   # 0.0 / 1.0
    assert "classification (inferred: 2 values; positive class 1.0)" in form.task_note.value
    assert not form.run_button.disabled, form.errors
    form.task.value = "regression"
    assert form.task_note.value == "" and form.positive_class.layout.display == "none"
    assert form.metrics.value == TASK_DEFAULT_METRICS["regression"]
    assert "LogisticRegression" in shown(form) and "Ridge" in shown(form)   # ticked: kept, with its problem
    assert form.run_button.disabled and "LogisticRegression is a classifier" in form.status.value
    card(form, "LogisticRegression").enabled.value = False
    card(form, "Ridge").enabled.value = True
    spec = form.to_spec()
    assert spec.task == "regression" and spec.positive_class is None and list(spec.metrics) == ["r2", "mse", "mae"]
    assert not form.run_button.disabled, form.errors


def test_a_target_of_several_labels_has_no_positive_class_and_refuses_the_glmm_by_name(form):
    form.target.value = "livch"   # "0", "1", "2", "3+" living children
    assert "classification (inferred: text labels, 4 classes)" in form.task_note.value
    assert form.positive_class.layout.display == "none"
    card(form, "GeneralizedLinearMixedModel").enabled.value = True
    assert form.run_button.disabled
    assert "GeneralizedLinearMixedModel models a binary outcome" in form.status.value
    card(form, "GeneralizedLinearMixedModel").enabled.value = False
    card(form, "LogisticRegression").enabled.value = True
    assert not form.run_button.disabled, form.errors


def test_a_binary_target_offers_and_defaults_the_classification_metrics_never_r2(form):
    assert sorted(form.metrics.options) == sorted(CLASSIFICATION)
    assert form.metrics.value == TASK_DEFAULT_METRICS["classification"]
    tuning = dict((v, k) for k, v in form.tuning_metric.options)
    assert set(tuning) == {"", *CLASSIFICATION}
    assert tuning[""] == "tune for: default (log loss, min)"
    assert tuning["roc_auc"].endswith("(max)") and tuning["brier"].endswith("(min)")


def test_a_binary_target_shows_the_classifiers_and_hides_the_regressors(form):
    assert shown(form) == list(CLASSIFIER_MODELS)
    form.target.value = "age"   # continuous: back to regression, its metrics and its cards
    assert "regression (inferred:" in form.task_note.value
    assert form.metrics.value == TASK_DEFAULT_METRICS["regression"]
    assert "roc_auc" not in form.metrics.options
    assert shown(form) == list(COMMON_MODELS)
    assert form.positive_class.layout.display == "none"


def test_a_ticked_regressor_stays_shown_on_a_binary_target_and_blocks_run_naming_itself(form):
    form.target.value = "age"
    card(form, "RandomForestRegressor").enabled.value = True
    form.target.value = "use"
    assert "RandomForestRegressor" in shown(form)
    assert form.run_button.disabled
    assert "RandomForestRegressor does not predict class probabilities" in form.status.value


def test_classification_chosen_for_a_continuous_target_is_refused_next_to_the_task(form):
    card(form, "LogisticRegression").enabled.value = True
    form.target.value = "age"
    form.task.value = "classification"
    assert form.task_note.value == ""   # nothing inferred: the user chose
    assert form.run_button.disabled
    assert "task: task is classification but the target &#x27;age&#x27; is continuous" in form.msg_task.value


def test_the_positive_class_and_the_tuning_metric_chosen_reach_the_spec_and_the_cell(form):
    card(form, "LogisticRegression").enabled.value = True
    form.positive_class.value = "N"
    form.tuning_metric.value = "roc_auc"
    assert "positive class N" in form.task_note.value
    spec = form.to_spec()
    assert (spec.task, spec.positive_class, spec.tuning.metric) == (None, "N", "roc_auc")
    form.task.value = "classification"
    spec = form.to_spec()
    assert spec.task == "classification" and spec.positive_class == "N"
    assert "positive_class: N" in form.cell_text() and "task: classification" in form.cell_text()


@pytest.mark.parametrize("task,positive", [("classification", "N"), (None, "N"), ("classification", None),
                                           (None, None)])
def test_spec_to_form_to_spec_keeps_the_task_the_positive_class_and_the_tuning_metric(contraception, task,
                                                                                       positive):
    spec = ExperimentSpec(DataSpec("use", groups="district", features=("age", "urban"), frame="contra"),
                          models=(ModelSpec("LogisticRegression", "LogisticRegression"),
                                  ModelSpec("GeneralizedLinearMixedModel", "GeneralizedLinearMixedModel")),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"),
                          tuning=TuningSpec(3, metric="brier"), metrics=["brier", "roc_auc"],
                          task=task, positive_class=positive)
    form = Configurator.from_spec(spec, contraception, shell=Shell())
    assert form.task.value == (task or "auto") and form.positive_class.value == positive
    assert form.metrics.value == ("brier", "roc_auc") and form.tuning_metric.value == "brier"
    again = form.to_spec()
    assert again == spec
    assert (again.task, again.positive_class, again.tuning.metric) == (task, positive, "brier")
    assert not form.run_button.disabled, form.errors


def test_a_run_from_the_form_scores_probabilities_as_scikit_learn_does(form, contraception):
    for name in ("LogisticRegression", "GeneralizedLinearMixedModel"):
        card(form, name).enabled.value = True
    form.outer_k.value, form.inner_k.value, form.trials.value = 3, 2, 2
    form.no_store.value = True
    assert form.outer.value == "GroupKFold" and not form.run_button.disabled, form.errors
    res = form.run()
    assert res is not None and res.status == "finished" and res.failures.empty
    assert res.spec.task == "classification" and res.spec.positive_class == "Y"
    frame = res.to_frame()
    assert {"test_roc_auc", "test_log_loss"} <= set(frame.columns) and "test_r2" not in frame.columns
    y = (contraception["use"] == "Y").to_numpy(dtype=int)
    for o in res.outcomes:
        row = frame[(frame.model == o.model) & (frame.fold == o.fold)]
        assert row.test_roc_auc.item() == pytest.approx(skm.roc_auc_score(y[o.test_rows], o.y_pred), rel=1e-12)
        assert row.test_log_loss.item() == pytest.approx(skm.log_loss(y[o.test_rows], o.y_pred, labels=[0, 1]),
                                                         rel=1e-12)
    assert len(res.outcomes) == 6
    assert "mixcv-report" in form.explorer.tab_html("Summary")


def test_the_live_view_shows_the_metric_a_classification_run_tunes_for_with_its_direction():
    log = []

    class Handle:
        def update(self, obj):
            log.append(obj)

    dash = LiveDashboard(display=lambda obj: (log.append(obj), Handle())[1], progress_interval=0)
    spec = ExperimentSpec(DataSpec("use"), (ModelSpec("logit", "LogisticRegression"),),
                          task="classification", metrics=["log_loss", "roc_auc"])
    dash.on_event(RunStarted(spec=spec, n_folds=2, model_names=("logit",), n_rows=10))
    dash.on_event(FoldFinished(fold=0, model="logit", metrics={"test_log_loss": 0.61234, "test_roc_auc": 0.7,
                                                               "test_r2": 0.5}, fit_time=0.1))
    assert "done · log loss 0.612 ↓" in repr(log[-1]) and "0.700" not in repr(log[-1])
    assert "log loss 0.612 ↓" in log[-1]._repr_html_()
    # Listed first or not, the metric shown is the one tuning optimises (log loss by default) ...
    spec = spec.replace(metrics=["roc_auc", "log_loss"])
    dash.on_event(RunStarted(spec=spec, n_folds=2, model_names=("logit",), n_rows=10))
    dash.on_event(FoldFinished(fold=1, model="logit", metrics={"test_log_loss": 0.6, "test_roc_auc": 0.71234},
                               fit_time=0.1))
    assert "done · log loss 0.600 ↓" in repr(log[-1]) and "0.712" not in repr(log[-1])
    # ... and ROC AUC, higher being better, when tuning is set to it.
    spec = spec.replace(tuning=TuningSpec(n_trials=1, metric="roc_auc"), metrics=["log_loss", "roc_auc"])
    dash.on_event(RunStarted(spec=spec, n_folds=2, model_names=("logit",), n_rows=10))
    dash.on_event(FoldFinished(fold=1, model="logit", metrics={"test_log_loss": 0.6, "test_roc_auc": 0.71234},
                               fit_time=0.1))
    assert "done · ROC AUC 0.712 ↑" in repr(log[-1])


def test_the_live_view_of_a_classification_run_from_the_form_names_its_metric(form, monkeypatch):
    card(form, "LogisticRegression").enabled.value = True
    form.outer_k.value, form.trials.value = 2, 1
    form.no_store.value = True
    seen = []
    original = LiveDashboard._render

    def spy(self):
        out = original(self)
        seen.append(repr(out))
        return out

    monkeypatch.setattr(LiveDashboard, "_render", spy)
    res = form.run()
    assert res is not None and res.status == "finished"
    scores = [np.round(v, 3) for v in res.to_frame().test_log_loss]   # tuning's default metric
    assert any(all(f"log loss {s:.3f} ↓" in text for s in scores) for text in seen)
