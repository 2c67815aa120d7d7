"""Neptune (offline and debug modes, no network) and MLflow (local SQLite) mirrors."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError, ObserverWarning
from mixcv_core.tracking.mirrors import MlflowMirror, NeptuneMirror

N_FOLDS, N_ITER = 3, 4
MODELS = ("DecisionTreeRegressor", "MERF(DecisionTreeRegressor)")


def run_with(grouped, observers=(), run=None):
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=N_FOLDS)
            .add_model("DecisionTreeRegressor", model_kwargs={"max_depth": 3}, add_merf=True)
            .set_merf(em_max_iterations=N_ITER).set_run(run=run, observers=observers, store=False)
            .perform().get_results())


def offline_ops(folder: Path) -> dict[tuple[str, ...], list]:
    """What a Neptune offline run wrote: path -> assigned values or logged series values."""
    (log,) = folder.glob(".neptune/offline/run__*/data-1.log")
    ops: dict[tuple[str, ...], list] = defaultdict(list)
    for line in log.read_text().splitlines():
        obj = json.loads(line)["obj"]
        path = tuple(obj["path"])
        if obj["type"] == "LogFloats":
            ops[path].extend(v["value"] for v in obj["values"])
        elif obj["type"].startswith("Assign") or obj["type"] == "UploadFile":
            ops[path].append(obj.get("value", obj["type"]))
    return ops


def test_neptune_offline_writes_series_per_em_iteration_and_metrics_per_fold(grouped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_with(grouped, observers=[NeptuneMirror(mode="offline")])
    ops = offline_ops(tmp_path)
    for k in range(N_FOLDS):
        gll = ops[("merf", "MERF_DecisionTreeRegressor_", f"fold_{k}", "gll")]
        assert gll == list(res.histories[(MODELS[1], k)]["gll"])  # one value per EM iteration, in order
        assert len(ops[("merf", "MERF_DecisionTreeRegressor_", f"fold_{k}", "sigma2")]) == N_ITER
        assert len(ops[("merf", "MERF_DecisionTreeRegressor_", f"fold_{k}", "D_11")]) == N_ITER
    table = res.to_frame().set_index(["model", "fold"])
    assert ops[("folds", "DecisionTreeRegressor", "test_r2")] == list(table.loc["DecisionTreeRegressor", "test_r2"])
    mean = res.summary.loc[(MODELS[0], "r2"), "mean"]
    assert ops[("summary", "DecisionTreeRegressor", "r2", "mean")] == [mean]
    assert ops[("parameters", "seed")] == ["42"] and ops[("mixcv", "status")][-1] == "finished"
    assert ops[("figures", "convergence")] == ["UploadFile"]


def test_neptune_debug_run_passed_like_the_seed(grouped):
    import neptune
    run = neptune.init_run(mode="debug", capture_stdout=False, capture_stderr=False,
                           capture_hardware_metrics=False)
    res = run_with(grouped, run=run)
    values = run["merf/MERF_DecisionTreeRegressor_/fold_1/gll"].fetch_values()["value"].tolist()
    assert values == list(res.histories[(MODELS[1], 1)]["gll"])
    assert run["folds/DecisionTreeRegressor/test_mse"].fetch_values()["value"].tolist() == \
        list(res.to_frame().query("model == 'DecisionTreeRegressor'")["test_mse"])
    assert run["mixcv/status"].fetch() == "finished"
    run.stop()


class BrokenRun:
    """Stands for a tracker that fails: every write raises."""

    def __getitem__(self, key):
        raise ConnectionError("tracker unreachable")

    def __setitem__(self, key, value):
        raise ConnectionError("tracker unreachable")


def test_a_failing_mirror_warns_once_and_changes_nothing(grouped):
    plain = run_with(grouped)
    mirror = NeptuneMirror(run=BrokenRun())
    with pytest.warns(ObserverWarning, match="tracker unreachable") as caught:
        mirrored = run_with(grouped, observers=[mirror])
    assert len([w for w in caught if issubclass(w.category, ObserverWarning)]) == 1
    cols = ["fit_time", "tune_time"]
    pd.testing.assert_frame_equal(plain.to_frame().drop(columns=cols), mirrored.to_frame().drop(columns=cols))


def test_neptune_errors_never_show_the_token(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "secret-token-that-must-not-leak")
    with pytest.raises(MixcvError) as info:
        NeptuneMirror(project="workspace/project")  # a malformed token fails before any request
    assert info.value.field == "neptune"
    assert "secret-token" not in str(info.value) and "\x1b" not in str(info.value)


def test_mlflow_local_store_holds_params_metrics_and_series(grouped, tmp_path):
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mirror = MlflowMirror(tracking_uri=uri, experiment="tests")
    res = run_with(grouped, observers=[mirror])
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(mirror.run_id)
    assert run.data.params["seed"] == "42" and run.data.params["models/DecisionTreeRegressor/max_depth"] == "3"
    hist = client.get_metric_history(mirror.run_id, "DecisionTreeRegressor.test_r2")
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == \
        list(res.to_frame().query("model == 'DecisionTreeRegressor'")["test_r2"])
    gll = client.get_metric_history(mirror.run_id, "merf.MERF_DecisionTreeRegressor_.fold2.gll")
    assert [m.value for m in sorted(gll, key=lambda m: m.step)] == list(res.histories[(MODELS[1], 2)]["gll"])
    assert run.data.metrics["summary.DecisionTreeRegressor.r2.mean"] == pytest.approx(
        res.summary.loc[(MODELS[0], "r2"), "mean"])
    assert run.info.status == "FINISHED"


def test_mlflow_artifacts_stay_next_to_the_database(grouped, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    db = tmp_path / "db" / "m.db"
    db.parent.mkdir()
    run_with(grouped, observers=[MlflowMirror(tracking_uri=f"sqlite:///{db}", experiment="art")])
    assert not (work / "mlruns").exists()
    assert list((tmp_path / "db" / "mlflow-artifacts").rglob("convergence.png"))


def test_diagnostics_upload_every_figure_to_a_neptune_run(grouped):
    import neptune
    X, y, group, slopes = grouped
    plain = neptune.init_run(mode="debug", capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False)
    full = neptune.init_run(mode="debug", capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False)
    for run, diagnostics in ((plain, False), (full, True)):
        (CrossValidation().set_data(X, y, group, slopes).set_splits("GroupKFold", n_splits_out=N_FOLDS)
         .add_model("LinearMixedEffectsModel").add_model("DecisionTreeRegressor", model_kwargs={"max_depth": 3})
         .set_run(run=run, store=False, diagnostics=diagnostics).perform())
    keys = ["figures/per_fold_scores", "figures/predictions", "figures/folds", "figures/group_errors",
            "figures/random_effects/LinearMixedEffectsModel"]
    assert all(full.exists(k) for k in keys)
    assert not any(plain.exists(k) for k in keys)   # flexcv's default: no extended diagnostics
    plain.stop()
    full.stop()


def crossed_run(observers=(), run=None):
    """Penicillin (24 plates x 6 samples, crossed; lme4's data), split by plate."""
    from mixcv_core.models import LinearMixedEffectsModel
    frame = pd.read_csv(Path(__file__).parent.parent / "data" / "lmm_multi" / "penicillin.csv")
    return (CrossValidation().set_data(frame[[]], frame["diameter"], groups=frame[["plate", "sample"]],
                                       random="(1 | plate) + (1 | sample)", split_by="plate")
            .set_splits("GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel)
            .set_run(run=run, observers=observers, store=False).perform().get_results())


def test_neptune_logs_several_grouping_factors_as_text_a_reader_can_read():
    import neptune
    run = neptune.init_run(mode="debug", capture_stdout=False, capture_stderr=False,
                           capture_hardware_metrics=False)
    crossed_run(run=run)
    assert run["parameters/data/groups"].fetch() == "plate, sample"   # not "('plate', 'sample')"
    assert run["parameters/data/random"].fetch() == "(1 | plate) + (1 | sample)"
    assert run["parameters/data/split_by"].fetch() == "plate"
    run.stop()


def test_mlflow_logs_several_grouping_factors_as_text_a_reader_can_read(tmp_path):
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mirror = MlflowMirror(tracking_uri=uri, experiment="crossed")
    crossed_run(observers=[mirror])
    params = MlflowClient(tracking_uri=uri).get_run(mirror.run_id).data.params
    assert (params["data/groups"], params["data/random"], params["data/split_by"]) == \
        ("plate, sample", "(1 | plate) + (1 | sample)", "plate")


def test_one_grouping_factor_is_logged_as_before():
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
    from mixcv_core.tracking.mirrors._common import flat_params
    spec = ExperimentSpec(data=DataSpec("y", "subject", slopes=("days",)), models=(ModelSpec("LM", "LinearModel"),))
    params = flat_params(spec)
    assert (params["data/groups"], params["data/slopes"]) == ("subject", "days")
    assert "data/random" not in params and "data/split_by" not in params
