"""Neptune (debug mode, no network) and MLflow (local SQLite) mirrors of a classification run (issue 27).

Real data: mlmRev's Contraception (``use``, "Y"/"N", by ``district``). The mirrors must log the
classification metrics under their own names, per fold and summarised, and say what the run
was: its task, the class whose probability is scored and the metric tuning optimised.
"""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution

from mixcv_core import engine
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.tracking.mirrors import MlflowMirror, NeptuneMirror
from mixcv_core.tracking.mirrors._common import flat_params

METRICS = ("roc_auc", "log_loss", "brier", "accuracy", "balanced_accuracy", "average_precision")


def spec(**kw) -> ExperimentSpec:
    kw.setdefault("tuning", TuningSpec(2))
    return ExperimentSpec(DataSpec("use", groups="district", features=("age", "urban")),
                          models=(ModelSpec("logit", "LogisticRegression",
                                            params={"C": FloatDistribution(0.01, 10.0, log=True)}),
                                  ModelSpec("glmm", "GeneralizedLinearMixedModel")),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"),
                          inner=SplitSpec("GroupKFold", 2, _field="inner"), **kw)


@pytest.fixture(scope="module")
def mirrored(contraception, tmp_path_factory):
    import neptune
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    run = neptune.init_run(mode="debug", capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False)
    mlflow = MlflowMirror(tracking_uri=uri, experiment="classification")
    res = engine.run(spec(positive_class="N"), contraception,
                     observers=[NeptuneMirror(run=run), mlflow], store=False)
    yield res, run, mlflow, uri
    run.stop()


def test_the_mirrors_log_each_classification_metric_per_fold_under_its_own_name(mirrored):
    from mlflow.tracking import MlflowClient
    res, run, mlflow, uri = mirrored
    assert res.status == "finished" and res.failures.empty
    client = MlflowClient(tracking_uri=uri)
    table = res.to_frame()
    for model in ("logit", "glmm"):
        for metric in METRICS:
            want = list(table.loc[table.model == model, f"test_{metric}"])
            assert run[f"folds/{model}/test_{metric}"].fetch_values()["value"].tolist() == want
            hist = client.get_metric_history(mlflow.run_id, f"{model}.test_{metric}")
            assert [m.value for m in sorted(hist, key=lambda m: m.step)] == want
        assert not run.exists(f"folds/{model}/test_r2")
        assert client.get_metric_history(mlflow.run_id, f"{model}.test_r2") == []


def test_the_mirrors_summaries_are_the_runs_with_log_loss_named_as_such(mirrored):
    from mlflow.tracking import MlflowClient
    res, run, mlflow, uri = mirrored
    logged = MlflowClient(tracking_uri=uri).get_run(mlflow.run_id).data.metrics
    for model in ("logit", "glmm"):
        for metric in METRICS:
            mean = res.summary.loc[(model, metric), "mean"]
            assert run[f"summary/{model}/{metric}/mean"].fetch() == pytest.approx(mean)
            assert logged[f"summary.{model}.{metric}.mean"] == pytest.approx(mean)
    assert not any(".rmse." in k or ".r2." in k for k in logged)


def test_the_mirrors_say_the_task_the_positive_class_and_the_tuning_metric(mirrored):
    from mlflow.tracking import MlflowClient
    res, run, mlflow, uri = mirrored
    params = MlflowClient(tracking_uri=uri).get_run(mlflow.run_id).data.params
    assert (params["task"], params["positive_class"], params["tuning/metric"]) == ("classification", "N", "log_loss")
    assert run["parameters/task"].fetch() == "classification"
    assert run["parameters/positive_class"].fetch() == "N"
    assert run["parameters/tuning/metric"].fetch() == "log_loss"
    assert params["metrics"] == ", ".join(METRICS)


def test_a_tuning_metric_chosen_is_the_one_the_settings_name():
    params = flat_params(spec(task="classification", tuning=TuningSpec(2, metric="roc_auc")))
    assert params["tuning/metric"] == "roc_auc" and params["task"] == "classification"
    assert "positive_class" not in params   # left to the data: nothing to say before the run
