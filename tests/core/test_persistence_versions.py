"""Stored formats carry versions: what mixcv 0.1 wrote still loads; what a newer mixcv wrote is refused."""

from __future__ import annotations

import importlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from mixcv_core import ExperimentSpec, MixcvError, RunStore
from mixcv_core.experiment.registry import MOVED_MODULES, import_dotted
from mixcv_core.experiment.spec import SPEC_FORMAT, upgrade_spec_dict
from mixcv_core.model_postprocessing import LinearModelPostProcessor
from mixcv_core.tracking.store import SCHEMA_VERSION

FORMAT1 = Path(__file__).parent.parent / "data" / "format1"


def test_a_spec_dict_written_by_mixcv_0_1_loads_and_is_upgraded():
    old = json.loads((FORMAT1 / "spec.json").read_text())
    assert "format" not in old and "on_error" not in old  # really the old format
    spec = ExperimentSpec.from_dict(old)
    assert [m.name for m in spec.models] == ["LinearModel", "Ridge"]
    assert spec.models[0].post_processor is LinearModelPostProcessor
    assert spec.outer.label == "GroupKFold(3)" and spec.on_error == "keep"
    again = spec.to_dict()
    assert again["format"] == SPEC_FORMAT == 9
    assert spec.tuning.batch == 1   # format 9: one trial at a time before it
    assert spec.task == "regression" and spec.positive_class is None   # format 8: every run before it regressed
    assert spec.data.random is None and spec.data.split_by == ()   # format 7: one factor, held out, before it
    assert spec.backend == "local" and spec.scheduler is None   # format 6: run on this machine before it
    assert again["outer"]["n_repeats"] == 1 and again["outer"]["known_holdout"] == 0 and not again["break_cross_val"]
    assert spec.timeout is None and again["timeout"] is None  # format 4: no time limit before it
    assert spec.merf.linear_fixed_effects is False and spec.merf.stopping_threshold is None  # as it ran
    assert ExperimentSpec.from_dict(again) == spec


def test_a_format_6_spec_of_one_grouping_factor_loads_with_no_random_part_and_splits_by_its_group():
    d = {"format": 6, "data": {"target": "y", "groups": "g", "slopes": ["x"], "features": ["x"]},
         "outer": {"method": "GroupKFold", "n_splits": 3}, "models": [{"name": "LMM", "model": "LinearMixedEffectsModel"}]}
    up = upgrade_spec_dict(d)
    assert up["format"] == 9 and up["data"]["random"] is None and up["data"]["split_by"] == []
    spec = ExperimentSpec.from_dict(d)
    assert spec.data.random_terms_text is None and spec.data.split_factors == ("g",)
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec


def test_a_spec_dict_of_a_newer_format_is_refused_naming_both_versions():
    d = json.loads((FORMAT1 / "spec.json").read_text())
    d["format"] = SPEC_FORMAT + 1
    with pytest.raises(MixcvError) as info:
        ExperimentSpec.from_dict(d)
    assert info.value.field == "spec.format"
    assert f"format {SPEC_FORMAT + 1}" in info.value.message and f"up to {SPEC_FORMAT}" in info.value.message


@pytest.mark.parametrize("bad", [0, "2", True, None])
def test_a_nonsense_format_number_is_refused(bad):
    with pytest.raises(MixcvError, match="spec.format"):
        upgrade_spec_dict({"format": bad})


def test_format_1_dotted_paths_into_moved_modules_are_rewritten():
    d = {"data": {"target": "y"}, "models": [{"name": "LM", "model": "LinearModel",
                                               "post_processor": "mixcv_core.registry.LinearModelPostProcessor"}]}
    up = upgrade_spec_dict(d)
    assert up["models"][0]["post_processor"] == "mixcv_core.experiment.registry.LinearModelPostProcessor"
    assert up["format"] == SPEC_FORMAT


@pytest.mark.parametrize("old,new", sorted(MOVED_MODULES.items()))
def test_every_moved_module_has_a_home_and_old_paths_resolve_there(old, new):
    importlib.import_module(new)
    # import_dotted follows the table: an old path finds the object in its new module.
    module = importlib.import_module(new)
    public = [n for n in getattr(module, "__all__", []) if hasattr(module, n)]
    if public:
        assert import_dotted(f"{old}.{public[0]}", "field") is getattr(module, public[0])


def test_a_run_store_written_by_mixcv_0_1_opens_lists_and_loads(tmp_path):
    expected = json.loads((FORMAT1 / "expected.json").read_text())
    folder = tmp_path / "old-store"
    folder.mkdir()
    shutil.copy(FORMAT1 / "runs.sqlite", folder / "runs.sqlite")
    with sqlite3.connect(folder / "runs.sqlite") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 0  # no version when it was written
    store = RunStore(folder)
    assert store.runs()["id"].tolist() == [expected["run_id"]]
    res = store.load(expected["run_id"])
    assert len(res.outcomes) == expected["n_outcomes"]
    got = {f"{m}|{k}": v for (m, k), v in res.summary["mean"].items()}
    assert got == pytest.approx(expected["summary_mean"], rel=1e-12)
    assert {o.convergence for o in res.outcomes} == {""}     # a column added since, empty for old rows
    with sqlite3.connect(folder / "runs.sqlite") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # migrated on open
        columns = [r[1] for r in con.execute("PRAGMA table_info(folds)")]
    assert "convergence" in columns


def test_a_store_from_a_newer_mixcv_is_refused_with_its_path(tmp_path):
    folder = tmp_path / "future store"
    RunStore(folder)
    with sqlite3.connect(folder / "runs.sqlite") as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(MixcvError) as info:
        RunStore(folder)
    assert info.value.field == "store"
    assert str(folder) in info.value.message and "newer mixcv" in info.value.message
    assert "MIXCV_STORE=off" in info.value.message


def test_store_rows_are_inserted_by_column_name(tmp_path):
    # A column order different from today's must not shift values: write into a store
    # whose folds table lists its columns in reverse.
    from mixcv_core import CrossValidation
    from mixcv_core.synthesizer import generate_grouped_regression

    folder = tmp_path / "reordered"
    folder.mkdir()
    names = ["run_id TEXT", "model TEXT", "fold INTEGER", "ok INTEGER", "metrics TEXT", "fit_time REAL",
             "tune_time REAL", "best_params TEXT", "converged INTEGER", "error TEXT", "traceback TEXT",
             "warnings TEXT", "test_rows BLOB", "y_pred BLOB", "insight TEXT", "history TEXT", "model_file TEXT",
             "finished REAL", "convergence TEXT", "model_sha256 TEXT", "known_rows BLOB", "y_pred_known BLOB"]
    reversed_table = ("CREATE TABLE folds (" + ", ".join(reversed(names))
                      + ", PRIMARY KEY (run_id, model, fold));")
    with sqlite3.connect(folder / "runs.sqlite") as con:
        con.execute(reversed_table)
    X, y, g, _ = generate_grouped_regression(4, 6, random_seed=2, n_features=2)
    res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
           .set_run(store=RunStore(folder)).perform().get_results())
    back = RunStore(folder).load(res.run_id)
    assert back.to_frame()["test_r2"].tolist() == pytest.approx(res.to_frame()["test_r2"].tolist())


def test_a_format_3_spec_loads_without_a_time_limit_and_a_timeout_round_trips():
    d = ExperimentSpec.from_dict(json.loads((FORMAT1 / "spec.json").read_text())).to_dict()
    d3 = {k: v for k, v in d.items() if k != "timeout"} | {"format": 3}
    assert ExperimentSpec.from_dict(d3).timeout is None
    limited = ExperimentSpec.from_dict({**d, "timeout": 90})
    assert limited.timeout == 90.0 and ExperimentSpec.from_dict(limited.to_dict()) == limited
