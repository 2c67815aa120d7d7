"""`Results.to_latex` (booktabs tables) and `Results.save_report` (one self-contained HTML file)."""

from __future__ import annotations

import re

import optuna.distributions as od
import pandas as pd
import pytest

from mixcv_core import engine
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.tracking.store import RunStore

ODD = "lin_model 5%"
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    sleep = pd.read_csv("tests/data/sleepstudy.csv")
    spec = ExperimentSpec(
        DataSpec(target="Reaction", groups="Subject", slopes=("Days",), dataset_name="sleep_study"),
        models=(ModelSpec(ODD, "LinearModel"), ModelSpec("LMM", "LinearMixedEffectsModel"),
                ModelSpec(EVIL, "RandomForestRegressor", model_kwargs={"n_estimators": 5}, requires_inner_cv=True,
                          params={"max_depth": od.IntDistribution(2, 4)}, add_merf=True)),
        outer=SplitSpec("GroupKFold", n_splits=3, _field="outer"), inner=SplitSpec("GroupKFold", 2, _field="inner"),
        tuning=TuningSpec(n_trials=2), merf=MerfSpec(max_iterations=3))
    store = RunStore(tmp_path_factory.mktemp("exports"))
    res = engine.run(spec, sleep, store=store)
    return store.load(res.run_id)


def _rows(block: str) -> list[list[str]]:
    body = block.split(r"\midrule")[1].split(r"\bottomrule")[0]
    return [[c.strip() for c in line.removesuffix(r"\\").strip().split(" & ")]
            for line in body.strip().splitlines()]


def test_the_summary_table_is_booktabs_and_its_numbers_are_the_summarys(run):
    tex = run.to_latex()
    summary_block, comparison_block = tex.split(r"\end{table}")[:2]
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in summary_block and rule in comparison_block
    assert r"\label{tab:mixcv-summary}" in summary_block and r"\caption{" in summary_block
    assert "(sleep\\_study)" in summary_block   # the dataset name, escaped, in the caption
    rows = _rows(summary_block)
    s = run.summary
    assert len(rows) == len(s)
    labels = {"R\\textsuperscript{2}": "r2", "MSE": "mse", "MAE": "mae", "RMSE": "rmse"}
    names = {"lin\\_model 5\\%": ODD}
    for model, metric, mean, sd, median, folds in rows:
        model = names.get(model, model)
        if model.startswith(r"\textless{}") or "img" in model:
            continue   # the hostile name: checked below
        row = s.loc[(model, labels[metric])]
        assert float(mean) == pytest.approx(row["mean"], abs=5e-4)
        assert float(sd) == pytest.approx(row["sd"], abs=5e-4)
        assert float(median) == pytest.approx(row["median"], abs=5e-4)
        assert int(folds) == row["n_folds"]


def test_user_strings_are_escaped_for_latex(run):
    tex = run.to_latex()
    assert r"lin\_model 5\%" in tex and "lin_model" not in tex and "5%" not in tex.replace(r"5\%", "")
    assert r"\textless{}img src=x onerror=alert(1)\textgreater{}" in tex and "<img" not in tex


def test_the_comparison_table_holds_every_pair_with_its_test_values(run):
    comparison_block = run.to_latex().split(r"\end{table}")[1]
    assert r"\label{tab:mixcv-comparison}" in comparison_block and "Holm" in comparison_block
    c = run.compare()
    rows = _rows(comparison_block)
    assert len(rows) == len(c)
    for row, (_, ref) in zip(rows, c.iterrows()):
        assert float(row[3]) == pytest.approx(ref["mean_diff"], abs=5e-4)
        assert float(row[5]) == pytest.approx(ref["t"], abs=5e-3)
        assert int(row[6]) == ref["df"]
        p = row[7]
        assert (p == "$<$0.001" and ref["p_value"] < 0.001) or float(p) == pytest.approx(ref["p_value"], abs=5e-4)


def test_a_single_model_gets_the_summary_table_only():
    sleep = pd.read_csv("tests/data/sleepstudy.csv")
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject"), models=(ModelSpec("OLS", "LinearModel"),),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"))
    tex = engine.run(spec, sleep, store=False).to_latex(label="tab:one")
    assert tex.count(r"\begin{table}") == 1 and r"\label{tab:one-summary}" in tex


def test_the_saved_report_needs_no_network_and_embeds_every_figure(run, tmp_path):
    path = run.save_report(tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8"/>' in text
    # Nothing to fetch: no remote (or any) src/href, no script, no stylesheet link.
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, flags=re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    images = re.findall(r"<img\b[^>]*>", text)
    srcs = [re.search(r'src="([^"]*)"', img).group(1) for img in images]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    alts = set(re.findall(r'alt="([^"]*)"', text))
    # The report's figures, and those it folds away: predictions, tuning; MERF's EM convergence.
    assert {"per-fold scores", "groups in folds", "out-of-fold predictions", "tuning history"} <= alts
    assert "mixcv-em-final" in text
    assert '<div class="mixcv-methods">' in text and "Bates et al. 2015" in text


def test_the_saved_report_escapes_user_strings(run, tmp_path):
    text = run.save_report(tmp_path / "r.html").read_text(encoding="utf-8")
    assert EVIL not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
