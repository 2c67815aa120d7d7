"""The %%mixcv magic in a real JupyterLab: live EM plot replaced while running, results at the end."""

from __future__ import annotations

import time

import nbformat
import pytest

from .conftest import ARTIFACTS, open_notebook, run_all

SETUP = """%load_ext mixcv_jupyter
from mixcv_core.synthesizer import generate_grouped_regression
X, y, group, slopes = generate_grouped_regression(20, 30, n_slopes=1, noise_level=0.5, random_seed=0)
df = X.assign(y=y, group=group)"""

MERF_CELL = """%%mixcv -o res
data: df
target: y
groups: group
slopes: [X0]
outer: KFold(3)
merf: {iterations: 40, em_estimators: null}   # no early stop on these data, whole forests: a long EM to watch
models:
  LinearMixedEffectsModel:
  RandomForestRegressor:
    n_estimators: 40
    merf: true"""


@pytest.mark.browser
def test_live_em_plot_updates_and_results_render(lab_server, lab_root, page):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(MERF_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / "merf_live.ipynb")

    open_notebook(page, lab_server, "merf_live.ipynb")
    run_all(page)

    sources: list[str] = []
    deadline = time.time() + 240
    while time.time() < deadline:
        src = page.evaluate("() => { const i = document.querySelector('img.mixcv-em-live'); return i ? i.src : null; }")
        if src and (not sources or sources[-1] != src):
            sources.append(src)
            if len(sources) == 2:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "live_em_plot_while_running.png"))
        if page.query_selector(".jp-OutputArea .mixcv-report"):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the results never appeared; live images seen: {len(sources)}")

    # The live plot was drawn and then replaced at least twice while the cell ran.
    assert len(sources) >= 3, f"live EM plot images seen: {len(sources)}"
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    # The same output area now holds the results: summary with every model row and the final EM figure.
    report = page.inner_text(".jp-OutputArea .mixcv-report")
    for model in ("LinearMixedEffectsModel", "RandomForestRegressor", "MERF(RandomForestRegressor)"):
        assert model in report
    assert page.query_selector(".jp-OutputArea img.mixcv-em-final") is not None
    assert page.query_selector(".jp-OutputArea .mixcv-live") is None  # replaced, not appended
    page.locator(".jp-OutputArea .mixcv-report").scroll_into_view_if_needed()


UNCONVERGED = """%%mixcv -o capped
data: df
target: y
groups: group
outer: GroupKFold(3)
merf: {iterations: 1}
models:
  RandomForestRegressor:
    n_estimators: 10
    merf: true"""

PLAN = """%%mixcv --dry-run
data: df
target: y
groups: group
outer: GroupKFold(3)
models:
  LinearModel:"""


@pytest.mark.browser
def test_the_report_says_not_converged_once_and_the_plan_lists_the_features(lab_server, lab_root, page):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(PLAN),
                nbformat.v4.new_code_cell(UNCONVERGED)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / "said_once.ipynb")
    open_notebook(page, lab_server, "said_once.ipynb")
    run_all(page)
    page.wait_for_selector(".jp-OutputArea .mixcv-report .mixcv-summary", timeout=180_000)
    plan = page.inner_text(".jp-OutputArea .mixcv-plan")
    assert "features (5): X0, X1, X2, X3, X4" in " ".join(plan.split())
    report = page.inner_text(".jp-OutputArea .mixcv-report:not(.mixcv-plan)")
    assert "did not converge (MERF(RandomForestRegressor))" in report       # the report says it...
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert "ConvergenceWarning" not in " ".join(stderr.all_inner_texts())    # ...and stderr does not repeat it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "said_once.png"), full_page=True)
