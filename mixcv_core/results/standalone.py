"""One HTML file that holds a whole run: the report, every figure and the methods paragraph.

`standalone_html` wraps the notebook report (`report.render_html`) in a document of its
own, adds the figures the report folds away (predictions, the tuning history) and the
methods paragraph with its references. Figures are PNG data URIs and the styles are
inline, so the file opens anywhere without a network, a notebook or the mixcv package:
it can be mailed, archived or attached to a paper's supplement. Every string that came
from the user is escaped where it is written (the report's tables, the methods' ``<code>``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpecError
from .methods import methods_sentences
from .plots import plot_predictions, plot_tuning
from .prose import render_methods
from .report import figure_png, render_html

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._run import RunView

__all__ = ["standalone_html", "save_report"]

_PAGE_CSS = """
body {font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px;
  padding: 0 16px; color: #222; background: #fff;}
h2, h3 {font-weight: 600;}
.mixcv-methods p, .mixcv-methods li {font-size: 14px; line-height: 1.5; max-width: 900px;}
.mixcv-methods code, .mixcv-report code {font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.92em;}
.mixcv-more img {max-width: 100%; margin: 4px 8px 4px 0;}
"""


def _more_figures(results: RunView) -> list[tuple[str, Figure]]:
    """The figures the report does not show inline: out-of-fold predictions, the tuning history."""
    figs: list[tuple[str, Figure]] = []
    if results.model_names:
        try:
            figs.append(("out-of-fold predictions", plot_predictions(results)))
        except SpecError:
            pass   # no predictions kept (every fit failed): the report says so already
    if results.studies:
        figs.append(("tuning history", plot_tuning(results)))
    return figs


def standalone_html(results: RunView) -> str:
    """The run as one self-contained HTML document (no network, no scripts)."""
    title = results.spec.data.dataset_name or results.spec.data.frame or "mixcv run"
    if results.run_id:
        title = f"{title} — run {results.run_id}"
    figures = "".join(f'<figure><img alt="{html.escape(name)}" src="{figure_png(fig, dpi=90)}"/>'
                      f"<figcaption>{html.escape(name)}</figcaption></figure>"
                      for name, fig in _more_figures(results))
    methods = render_methods(methods_sentences(results), "html")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
            f"<title>{html.escape(title)}</title>\n<style>{_PAGE_CSS}</style>\n</head>\n<body>\n"
            f"<h2>{html.escape(title)}</h2>\n{render_html(results)}\n"
            f'<h3>Methods</h3>\n{methods}\n'
            + (f'<h3>More figures</h3>\n<div class="mixcv-more">{figures}</div>\n' if figures else "")
            + "</body>\n</html>\n")


def save_report(results: RunView, path: str | Path) -> Path:
    """Write `standalone_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SpecError("path", f"{str(path)!r} is a folder; give a file name such as report.html")
    path.write_text(standalone_html(results), encoding="utf-8")
    return path
