"""notebooks/insight.ipynb in a real JupyterLab: the report and every figure show as images,
without %matplotlib inline, and nothing shows the bare '<Figure size ...>' text."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, open_notebook, run_all

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "insight.ipynb"


@pytest.mark.browser
def test_insight_notebook_shows_report_comparison_checks_and_figures(lab_server, lab_root, page):
    shutil.copy(NOTEBOOK, lab_root / "insight.ipynb")
    open_notebook(page, lab_server, "insight.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    run_all(page)
    n_plot_cells = 8
    deadline = time.time() + 300
    while time.time() < deadline:
        figures = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
            .filter(i => i.src.startsWith('data:image/png') && !i.classList.contains('mixcv-figure')
                         && !i.classList.contains('mixcv-em-final')).length""")
        errors = page.query_selector_all(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        if figures >= n_plot_cells:
            break
        assert not page.query_selector(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"), \
            page.inner_text(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        time.sleep(0.5)
    else:
        pytest.fail(f"only {figures} figure images appeared; stderr outputs: {len(errors)}")
    # text_content, not inner_text: JupyterLab does not lay out cells far off screen.
    report = page.locator(".jp-OutputArea .mixcv-report").first.text_content()
    assert "new groups" in report and "known groups" in report
    assert "Comparison" in report and "corrected t-test" in report
    assert "Methodology checks" in report
    # The report's own figures (per-fold scores, groups in folds) are images too.
    assert page.locator(".jp-OutputArea .mixcv-report img.mixcv-figure").count() == 2
    body = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").text_content()
    assert "<Figure size" not in body
    assert "split-ignores-groups" in body
    ARTIFACTS.mkdir(exist_ok=True)
    # The notebook lays out only the cells in view: scroll it to the report (cell 2), then to a figure.
    for index, name in ((2, "insight_report.png"), (20, "insight_random_effects.png")):
        page.evaluate("""async (i) => { const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCellIndex = i; await nb.scrollToItem(i, 'start'); }""", index)
        time.sleep(1.0)
        page.screenshot(path=str(ARTIFACTS / name))


@pytest.mark.browser
# The quickstart is the main job: it must run in a real JupyterLab. The other notebooks are
# executed by tests/notebooks (nbclient); running them here again cost 26-38 s for no new check.
@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_the_readme_notebooks_run_in_lab_without_errors(lab_server, lab_root, page, name):
    shutil.copy(NOTEBOOK.parent / name, lab_root / name)
    open_notebook(page, lab_server, name)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    run_all(page)
    # Done when every code cell has an execution count and the kernel is idle again.
    page.wait_for_function("""() => { const p = window.jupyterapp.shell.currentWidget;
        return p.sessionContext.session.kernel.status === 'idle' &&
               p.content.widgets.every(c => c.model.type !== 'code' || c.model.sharedModel.execution_count); }""",
                           timeout=600_000, polling=500)
    errors = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code')
        .flatMap(c => c.model.sharedModel.outputs || []).filter(o => o.output_type === 'error')
        .map(o => o.ename + ': ' + o.evalue)""")
    assert errors == []
    assert page.locator(".jp-OutputArea .mixcv-report").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name.removesuffix('.ipynb')}_in_lab.png"))
