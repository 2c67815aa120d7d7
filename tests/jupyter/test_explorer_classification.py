"""The explorer and the report of a classification run (issue 27, item 6): mlmRev's Contraception.

Every tab opens; the metrics shown are the run's classification metrics by their own names,
with no regression leftovers (an RMSE note, r2); the comparison the Comparison tab shows counts
a fold as won when the log loss is lower and the AUC higher, checked against the per-fold
table by hand.
"""

from __future__ import annotations

import re

import pytest

from mixcv_core import engine
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.results.report import render_html
from mixcv_jupyter.explorer import TABS, Explorer

METRICS = ("roc_auc", "log_loss", "brier", "accuracy", "balanced_accuracy", "average_precision")


@pytest.fixture(scope="module")
def results(contraception):
    spec = ExperimentSpec(DataSpec("use", groups="district", features=("age", "urban")),
                          models=(ModelSpec("logit", "LogisticRegression"),
                                  ModelSpec("glmm", "GeneralizedLinearMixedModel"),
                                  ModelSpec("coin", "DummyClassifier", model_kwargs={"strategy": "uniform"})),
                          outer=SplitSpec("GroupKFold", 4, known_holdout=0.2, _field="outer"))
    return engine.run(spec, contraception, store=False)


def text_of(page: str) -> str:
    """What a reader sees: no style sheet, no image data."""
    page = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    return re.sub(r"src=(['\"])data:.*?\1", "", page)


def test_every_tab_of_a_classification_run_opens_and_speaks_of_its_own_metrics(results):
    assert results.status == "finished" and results.failures.empty
    explorer = Explorer(results)
    pages = {tab: text_of(explorer.tab_html(tab)) for tab in TABS}
    for tab, page in pages.items():
        assert not re.search(r"\br2\b|R²|RMSE|\bmse\b", page), tab
    for metric in METRICS:
        assert metric in pages["Summary"] and f"test_{metric}" in pages["Per fold"] and metric in pages["Comparison"]
    assert "known_log_loss" in pages["Per fold"]   # known groups scored with the same metrics


def test_a_regression_report_keeps_its_rmse_note(contraception):
    spec = ExperimentSpec(DataSpec("age", groups="district", features=("urban",)),
                          models=(ModelSpec("lm", "LinearModel"),), outer=SplitSpec("GroupKFold", 3, _field="outer"))
    page = render_html(engine.run(spec, contraception, store=False))
    assert "RMSE = √mean MSE" in page


@pytest.mark.parametrize("metric,better", [("log_loss", "lt"), ("brier", "lt"), ("roc_auc", "gt")])
def test_the_comparison_tab_counts_wins_in_each_metrics_own_direction(results, metric, better):
    table = results.compare()
    frame = results.to_frame().set_index(["model", "fold"])[f"test_{metric}"]
    for _, row in table[table.metric == metric].iterrows():
        a, b = frame.xs(row["a"], level="model"), frame.xs(row["b"], level="model")
        wins = int(((a < b) if better == "lt" else (a > b)).sum())
        assert row["wins"] == wins, (row["a"], row["b"])
    assert len(table[table.metric == metric]) == 3   # every pair of the three models
