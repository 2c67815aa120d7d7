"""At 900 px wide: the live grid and the explorer's per-fold tables say each fold's repeat,
stay inside the output area, and scroll sideways under a scrollbar that is in sight."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, open_notebook, run_all
from .test_front_end_in_lab import EXPLORE

WIDTH = 900
SETUP = EXPLORE   # lme4's sleepstudy, the extension loaded
CELL = """%%mixcv -o res --quiet --no-store
data: sleep
target: Reaction
groups: Subject
features: [Days]
outer: GroupKFold(3)
repeats: 4
inner: GroupKFold(2)
trials: 2
models:
  LinearModel:
  Ridge:
    alpha: float(0.01, 10, log)"""
LIVE = """from mixcv_core.run.events import RunStarted
from mixcv_jupyter.dashboard import LiveDashboard
live = LiveDashboard()   # the live view of a run with 12 folds (3 x 4 repeats), as it starts
live.on_event(RunStarted(spec=res.spec, n_folds=12, model_names=tuple(res.model_names), n_rows=len(sleep)))"""

# [scrollWidth, clientWidth, height the scrollbar takes, right edge, bottom edge, window height].
BOX = """e => { const r = e.getBoundingClientRect();
                return [e.scrollWidth, e.clientWidth, e.offsetHeight - e.clientHeight, r.right, r.bottom,
                        window.innerHeight]; }"""


def _scrolls_in_sight(sizes):
    scroll_width, client_width, bar, right, bottom, height = sizes
    assert scroll_width > client_width, sizes     # wider than the output area: it scrolls...
    assert bar >= 8, sizes                        # ...under a scrollbar that takes room (not an overlay)
    assert right <= WIDTH, sizes                  # ...and the box itself fits the window,
    assert bottom <= height, sizes                # its scrollbar on screen, not under the last row


@pytest.mark.browser
def test_wide_tables_show_repeats_and_scroll_inside_a_900px_window(lab_server, lab_root, browser):
    # Playwright's headless Chromium hides every scrollbar (--hide-scrollbars); a person's does not.
    shown = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                                        ignore_default_args=["--hide-scrollbars"])
    context = shown.new_context(viewport={"width": WIDTH, "height": 1000})
    page = context.new_page()
    try:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, CELL, LIVE, "res")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, lab_root / "wide900.ipynb")
        open_notebook(page, lab_server, "wide900.ipynb")
        run_all(page)
        page.wait_for_selector(".mixcv-live .mixcv-progress", timeout=120_000)
        page.wait_for_selector(".mixcv-explorer", timeout=120_000)

        live = page.locator(".mixcv-live .mixcv-scroll")
        live.scroll_into_view_if_needed()
        heads = page.locator(".mixcv-live th.mixcv-repeat").all_inner_texts()
        assert heads == [f"repeat {r}" for r in range(4)], heads
        _scrolls_in_sight(live.evaluate(BOX))

        explorer = page.locator(".mixcv-explorer").last
        explorer.locator(".lm-TabBar-tab", has_text="Per fold").click()
        box = explorer.locator(".mixcv-scroll:visible").first
        box.wait_for(timeout=60_000)
        box.scroll_into_view_if_needed()
        headers = box.locator("th").all_inner_texts()
        assert headers[:3] == ["model", "repeat", "fold"], headers
        _scrolls_in_sight(box.evaluate(BOX))
        # Nothing pushes the notebook itself sideways: only the tables scroll.
        wide = page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel-notebook, .jp-WindowedPanel-outer')]
                                 .filter(e => e.scrollWidth > e.clientWidth + 1).length""")
        assert wide == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wide_tables_900px.png"), full_page=True)
    finally:
        context.close()
        shown.close()
