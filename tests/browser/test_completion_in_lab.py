"""Completion in a %%mixcv cell in a real JupyterLab: Tab after ``target: `` pops up the frame's columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ARTIFACTS, open_notebook, write_notebook

SLEEPSTUDY = Path(__file__).parents[1] / "data" / "sleepstudy.csv"   # lme4's sleepstudy
SETUP = f"""%load_ext mixcv_jupyter
import pandas as pd
sleep = pd.read_csv({str(SLEEPSTUDY)!r})"""
CELL = "%%mixcv\ndata: sleep\ntarget: "


@pytest.mark.browser
def test_tab_after_target_shows_the_frames_columns_in_the_completer(lab_server, lab_root, page):
    write_notebook(lab_root, "completion.ipynb", SETUP, CELL)
    open_notebook(page, lab_server, "completion.ipynb")

    # Run the first cell only (the frame must exist in the kernel), and wait until it has.
    page.locator(".jp-Cell").nth(0).click()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    page.wait_for_function("""() => {
        const p = document.querySelectorAll('.jp-Cell .jp-InputPrompt')[0];
        return p && /\\[\\d+\\]/.test(p.textContent); }""", timeout=60_000)

    # Put the cursor at the end of the %%mixcv cell (after "target: ") and press Tab.
    editor = page.locator(".jp-Cell").nth(1).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Tab")
    popup = page.locator(".jp-Completer:not(.lm-mod-hidden)")
    popup.wait_for(state="visible", timeout=30_000)
    items = [t.strip() for t in popup.locator(".jp-Completer-item .jp-Completer-match").all_inner_texts()]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "completion_columns.png"))
    assert sorted(items) == ["Days", "Reaction", "Subject"], items   # the columns, and nothing of Python
