"""A run's tables for a paper: booktabs LaTeX of the summary and the comparison (`tables_latex`).

Written through pandas' ``Styler.to_latex(hrules=True)``, which draws ``\\toprule``,
``\\midrule`` and ``\\bottomrule`` (the document needs ``\\usepackage{booktabs}``). Every
label that came from the user — a model name, a metric, the dataset in a caption — is
escaped here with `latex_escape` before the Styler sees it, so ``my_model (5%)`` is
typeset as written and cannot break or inject into the document. The numbers are the
summary's and the comparison's own values, printed to ``digits`` decimals.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import SpecError
from ..metrics import metric_label
from .compare import compare_all
from .prose import latex_escape

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["summary_latex", "comparison_latex", "tables_latex"]


def _metric_tex(metric: str) -> str:
    return latex_escape(metric_label(metric))


def _number(digits: int):   # noqa: ANN202 - a formatter for Styler.format
    def fmt(x: float) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "--"
        if isinstance(x, float) and math.isinf(x):
            return r"$\infty$" if x > 0 else r"$-\infty$"
        return f"{x:.{digits}f}"
    return fmt


def _p(x: float) -> str:
    return "$<$0.001" if x < 0.001 else f"{x:.3f}"


def _caption_run(results: RunView) -> str:
    name = results.spec.data.dataset_name   # the frame's variable name (df) would say nothing
    return f" ({latex_escape(str(name))})" if name else ""


def summary_latex(results: RunView, split: str = "test", digits: int = 3, label: str = "tab:mixcv-summary") -> str:
    """The summary (mean, sd, median, folds per model and metric) as a booktabs table.

    Parameters
    ----------
    split : {"test", "known", "train"}
        Which scores (`RunView.summarize`).
    digits : int, default=3
        Decimals of mean, sd and median.
    label : str
        The ``\\label`` (kept as given: a label is the author's own key).
    """
    s = results.summarize(split).reset_index()
    table = pd.DataFrame({
        "Model": [latex_escape(str(m)) for m in s["model"]],
        "Metric": [_metric_tex(str(m)) for m in s["metric"]],
        "Mean": s["mean"], "SD": s["sd"], "Median": s["median"], "Folds": s["n_folds"].astype(int)})
    what = {"test": "outer test folds" + (" (new groups)" if results.spec.outer.requires_groups else ""),
            "known": "held-out rows of known groups", "train": "outer training folds"}[split]
    caption = (f"Performance on the {what}: mean, standard deviation and median over the outer folds"
               f"{_caption_run(results)}.")
    styler = table.style.hide(axis="index").format(_number(digits), subset=["Mean", "SD", "Median"])
    return styler.to_latex(hrules=True, caption=caption, label=label, column_format="llrrrr", position="htbp")


def comparison_latex(results: RunView, split: str = "test", digits: int = 3,
                     label: str = "tab:mixcv-comparison") -> str:
    """Every pair of models on every metric: difference, 95 % CI, t, df, p and Holm's p (booktabs).

    Raises
    ------
    SpecError
        Fewer than two models (nothing to compare), naming ``models``.
    """
    if len(results.model_names) < 2:
        raise SpecError("models", "the comparison needs at least two models; this run has "
                                  f"{len(results.model_names)}")
    c = compare_all(results, None, split)
    table = pd.DataFrame({
        "Metric": [_metric_tex(str(m)) for m in c["metric"]],
        "A": [latex_escape(str(a)) for a in c["a"]], "B": [latex_escape(str(b)) for b in c["b"]],
        "A $-$ B": c["mean_diff"],
        "95\\% CI": [f"[{_number(digits)(lo)}, {_number(digits)(hi)}]" for lo, hi in zip(c["ci_low"], c["ci_high"])],
        "$t$": c["t"], "df": c["df"].astype(int), "$p$": c["p_value"], "$p_\\mathrm{Holm}$": c["p_holm"]})
    caption = ("Pairwise comparisons: corrected resampled $t$-test (Nadeau \\& Bengio 2003; Bouckaert \\& Frank 2004) "
               f"over the outer folds, $p$ two-sided, Holm-adjusted within each metric{_caption_run(results)}.")
    styler = (table.style.hide(axis="index")
              .format(_number(digits), subset=["A $-$ B"]).format(_number(2), subset=["$t$"])
              .format(_p, subset=["$p$", "$p_\\mathrm{Holm}$"]))
    return styler.to_latex(hrules=True, caption=caption, label=label, column_format="lllrrrrrr", position="htbp")


def tables_latex(results: RunView, split: str = "test", digits: int = 3, label: str = "tab:mixcv") -> str:
    """The summary table and, with two models or more, the comparison table (``label``-summary, -comparison)."""
    parts = ["% mixcv tables: needs \\usepackage{booktabs}",
             summary_latex(results, split, digits, f"{label}-summary")]
    if len(results.model_names) >= 2 and split != "train":
        parts.append(comparison_latex(results, split, digits, f"{label}-comparison"))
    return "\n".join(parts)
