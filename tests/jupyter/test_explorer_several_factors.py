"""The report and the explorer of a run with several grouping factors (issue 25, item 5).

Real data: lme4's Penicillin (24 plates x 6 samples, crossed), with the plate column renamed
to carry HTML (``pl<ate>``): every place that shows a factor's name must escape it.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import pytest

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.results.report import render_html
from mixcv_jupyter.explorer import TABS, Explorer

DATA = Path(__file__).parent.parent / "data" / "lmm_multi"
PLATE = "pl<ate>"


@pytest.fixture(scope="module")
def results():
    frame = pd.read_csv(DATA / "penicillin.csv").rename(columns={"plate": PLATE})
    frame["x"] = (frame.index % 5).astype(float)   # one fixed feature, so the fixed part is more than an intercept
    return (CrossValidation().set_data(frame[["x"]], frame["diameter"], groups=frame[[PLATE, "sample"]],
                                       split_by=PLATE)
            .set_splits("GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel)
            .set_run(store=False).perform().get_results())


def test_the_report_names_each_factor_with_its_levels_and_says_what_new_means(results):
    report = render_html(results)
    assert "<ate>" not in report                                 # the user's column name never becomes markup
    assert html.escape(results.what_is_new()) in report
    assert results.what_is_new() == f"test folds hold new {PLATE}s; samples recur"
    assert f"24 <code>{html.escape(PLATE)}</code> levels × 6 <code>sample</code> levels" in report
    assert html.escape(f"random (1 | `{PLATE}`) + (1 | sample)") in report.replace("<code>", "").replace("</code>", "")


def test_every_tab_of_the_explorer_shows_a_several_factor_run_with_names_escaped(results):
    explorer = Explorer(results)
    for tab in TABS:
        shown = explorer.tab_html(tab)
        assert "<ate>" not in shown, tab
    assert html.escape(results.what_is_new()) in explorer.tab_html("Summary")
    models = explorer.tab_html("Models")
    assert "random effects" in models and 'class="mixcv-figure"' in models


def test_random_effects_of_several_factors_come_out_one_panel_per_factor(results):
    est = results.models[("LinearMixedEffectsModel", 0)]
    table = results.random_effects("LinearMixedEffectsModel", fold=0)
    # Factors under lme4's printed names (a name R would not read bare is in backticks).
    assert list(est.random_effects_) == [f"`{PLATE}`", "sample"]
    assert list(dict.fromkeys(table["term"])) == [f"`{PLATE}`: Intercept", "sample: Intercept"]
    for factor in est.random_effects_:
        part = table[table["term"] == f"{factor}: Intercept"].set_index("group")
        assert part["effect"].to_dict() == est.random_effects_[factor]["Intercept"].to_dict()
        assert part["sd"].to_dict() == est.random_effects_sd_[factor]["Intercept"].to_dict()
    assert table.groupby("term").size().tolist() == [16, 6]   # the plates of fold 0's training part; every sample
