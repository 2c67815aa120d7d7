"""Under JupyterLab's dark theme the results' figures have light text on a transparent
background (the page's dark shows through), as the theme draws its own text."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import ARTIFACTS, open_notebook, run_all
from .test_wide_tables_in_lab import CELL, SETUP  # lme4's sleepstudy, two models, repeated folds

# Of the first figure in the explorer's Summary: [alpha of the corner pixel, share of the opaque
# grey pixels (text, axes) that are light].
PIXELS = """async () => {
    const img = [...document.querySelectorAll('.mixcv-explorer img.mixcv-figure')].find(i => i.offsetParent);
    await img.decode();
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let grey = 0, light = 0;
    for (let i = 0; i < d.length; i += 4) {
        const [r, gr, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
        if (a > 230 && Math.max(r, gr, b) - Math.min(r, gr, b) < 6) { grey++; if (r > 180) light++; }
    }
    return [d[3], light / Math.max(grey, 1)];
}"""


@pytest.mark.browser
def test_figures_follow_jupyterlabs_dark_theme(lab_server, lab_root, page):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, CELL, "res")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / "dark.ipynb")
    open_notebook(page, lab_server, "dark.ipynb")
    # The user picks the dark theme (Settings > Theme); JupyterLab stores the choice in its settings.
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    try:
        page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30_000)
        run_all(page)
        page.wait_for_selector(".mixcv-explorer img.mixcv-figure", timeout=120_000)
        corner_alpha, light_share = page.evaluate(PIXELS)
        assert corner_alpha == 0                       # the page's background shows through
        assert light_share > 0.5, light_share          # text and axes drawn light
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dark_theme_figures.png"), full_page=True)
    finally:   # the theme is stored for the whole server: the other tests see the light one
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
        page.wait_for_selector("body[data-jp-theme-light='true']", state="attached", timeout=30_000)
