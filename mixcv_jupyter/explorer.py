"""The results explorer: a run's report in tabs, built on the report's own HTML pieces.

``Explorer(results)`` (``%mixcv show NAME``; with the extension loaded, any `Results`
displayed in a notebook) shows tabs:

- **Summary** — the report itself (`mixcv_core.results.report.render_html`);
- **Per fold** — every model and outer fold, with the tuned parameters;
- **Comparison** — the corrected t-test of every pair on every metric (Holm-adjusted);
- **Plots** — every figure of the run;
- **Models** — per model: the LMM's summary (as lme4 prints it), MERF's convergence,
  tuned parameters and Optuna's history, random effects with intervals;
- **Checks** — the methodology checks with their evidence.

Tabs other than Summary are drawn when first opened (figures take time). The display
carries the report as ``text/html`` too, so a notebook exported without widget state
still shows everything the Summary tab shows.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from mixcv_core.results import Results
from mixcv_core.results import report as rp
from mixcv_core.results.plots import plot_theme

from .theme import jupyter_theme

__all__ = ["Explorer", "TABS"]


def _summary(r: Results) -> str:
    return rp.render_html(r)


def _per_fold(r: Results) -> str:
    tuned = rp.tuned_params_html(r)
    return (rp.fold_table_html(r) + (f"<div><b>Tuned parameters</b></div>{tuned}" if tuned else "")
            + rp.problems_html(r))


def _comparison(r: Results) -> str:
    if len(r.model_names) < 2:
        return "<div>One model: nothing to compare.</div>"
    table = r.compare()
    shown = table.assign(**{c: table[c].map(rp.fmt_number) for c in ("mean_diff", "ci_low", "ci_high", "t")},
                         **{c: table[c].map(rp.fmt_p) for c in ("p_value", "p_holm")})
    note = ("<div>Corrected resampled t-test (Nadeau &amp; Bengio 2003; Bouckaert &amp; Frank 2004 for repeats) "
            "of a − b over the outer folds both finished; wins: folds where a is better; p_holm: Holm-adjusted "
            "over the pairs of each metric.</div>")
    return rp.comparison_html(r) + note + rp.safe_table(shown.style.format(escape="html").hide(axis="index"))


def _img(fig: Any, name: str) -> str:
    return f'<img class="mixcv-figure" alt="{html.escape(name)}" src="{rp.figure_png(fig)}"/>'


def _plots(r: Results) -> str:
    from mixcv_core.errors import MixcvError
    makers: list[tuple[str, Callable[[], Any]]] = [
        ("groups in folds", r.plot_folds), ("per-fold scores", lambda: r.plot(r.metric_names[0])),
        ("predicted vs observed", r.plot_predictions), ("error by group", r.plot_group_errors),
        ("tuning", r.plot_tuning), ("EM convergence", r.plot_convergence)]
    parts = []
    for name, make in makers:
        try:
            parts.append(f"<div><b>{html.escape(name)}</b></div>{_img(make(), name)}")
        except (MixcvError, KeyError):
            continue   # not in this run (no groups, no tuning, no MERF)
    return "".join(parts) or "<div>No figures for this run.</div>"


def _models(r: Results) -> str:
    parts = []
    for model in r.model_names:
        fitted = {k: est for (m, k), est in r.models.items() if m == model}
        items = []
        first = next(iter(fitted.values()), None)
        if first is not None and callable(getattr(first, "summary", None)) and hasattr(first, "fe_params_"):
            items.append(_lmm_summary(r, model, next(iter(fitted)), first))
        if any(hasattr(est, "random_effects_sd_") for est in fitted.values()):
            items.append(_img(r.plot_random_effects(model, fold=next(iter(fitted))), f"{model} random effects"))
        if any(m == model for m, _ in r.histories):
            items.append(_img(r.plot_convergence(model), f"{model} EM convergence"))
        if any(m == model for m, _ in r.studies):
            items.append(_img(r.plot_tuning(model), f"{model} tuning"))
        coefs = _coefficients(fitted, r.repeats)
        if coefs is not None:
            items.append("<div>Coefficients per outer fold</div>" + rp.safe_table(coefs.style.format(rp.fmt_number)))
        table = r.to_frame()
        cols = (["repeat"] if table["repeat"].nunique() > 1 else []) + ["fold", "best_params"]
        params = table.loc[(table["model"] == model) & table["best_params"].map(bool), cols]
        if len(params):
            items.append("<div>Tuned parameters</div>" + rp.safe_table(params.assign(
                best_params=params["best_params"].map(str)).style.format(escape="html").hide(axis="index")))
        if not items:
            items.append("<div>No fitted models in these results: a stored run keeps them only with "
                         "save_models=True.</div>" if not fitted else "<div>Nothing more to show for this model."
                                                                        "</div>")
        parts.append(f"<details open><summary><b>{html.escape(model)}</b></summary>{''.join(items)}</details>")
    return "".join(parts) or "<div>No model finished a fold.</div>"


def _lmm_summary(r: Results, model: str, fold: int, est: Any) -> str:
    """The LMM's summary of one outer fold, under the data's names, saying which fold it is."""
    folds = r.to_frame()
    row = folds[(folds["model"] == model) & (folds["fold"] == fold)]
    n_folds = len(r._outer)
    repeat = f" (repeat {int(r.repeats[fold])})" if len(set(r.repeats.tolist())) > 1 else ""
    rows = f": its {int(row['n_train'].iloc[0])} training rows" if len(row) else ""
    fitted_on = (f"outer fold {fold} of {n_folds}{repeat}{rows}; each outer fold fits its own model "
                 "(the coefficients per fold are below for the others)" if n_folds > 1 else f"outer fold {fold}{rows}")
    summary = est.summary(response=r._data.target_name, groups=r._data.groups_name, fitted_on=fitted_on)
    return str(summary._repr_html_())


def _coefficients(fitted: dict[int, Any], repeats: Any) -> Any:
    """A linear model's coefficients, a column per outer fold (None for other models); with
    repeats, each column says its repeat too."""
    import numpy as np
    import pandas as pd
    cols = {}
    for fold, est in sorted(fitted.items()):
        coef, names = getattr(est, "coef_", None), getattr(est, "feature_names_in_", None)
        if coef is None or names is None or hasattr(est, "fe_params_") or np.ndim(coef) != 1:
            return None
        name = f"fold {fold}" + (f" (repeat {int(repeats[fold])})" if len(set(repeats.tolist())) > 1 else "")
        cols[name] = pd.Series(np.asarray(coef, dtype=float), index=[str(n) for n in names])
    return pd.DataFrame(cols) if cols else None


def _checks(r: Results) -> str:
    return rp.checks_html(r).replace("<details class", "<details open class")


#: Tab title -> the HTML piece it shows.
TABS: dict[str, Callable[[Results], str]] = {
    "Summary": _summary, "Per fold": _per_fold, "Comparison": _comparison, "Plots": _plots, "Models": _models,
    "Checks": _checks,
}


class Explorer:
    """A `Results` in tabs (see the module docstring). ``Explorer(results).tab_html(name)`` gives a tab's HTML."""

    def __init__(self, results: Results, theme: str | None = "auto") -> None:
        self.results = results
        # Figures suit the notebook's theme (light text on a dark page); None: a white figure.
        self.theme = jupyter_theme() if theme == "auto" else theme
        # Full width, and no wider: a wide table then scrolls inside its pane, not the page.
        self._panes = [w.HTML(layout=w.Layout(width="100%", overflow="hidden")) for _ in TABS]
        self.widget = w.Tab(children=self._panes, titles=tuple(TABS), layout=w.Layout(width="100%"))
        self.widget.add_class("mixcv-explorer")
        self._panes[0].value = self._wrapped("Summary")
        self.widget.observe(self._opened, "selected_index")

    def _wrapped(self, name: str) -> str:
        with plot_theme(self.theme):
            body = TABS[name](self.results)
        if name == "Summary":
            return body
        return f"{rp.CSS}<div class='mixcv-report mixcv-tab'>{body}</div>"

    def tab_html(self, name: str) -> str:
        """The HTML of tab ``name`` (drawn now if it was not yet)."""
        i = list(TABS).index(name)
        if not self._panes[i].value:
            self._panes[i].value = self._wrapped(name)
        return self._panes[i].value

    def _opened(self, change: dict) -> None:
        if change["new"] is not None:
            self.tab_html(list(TABS)[change["new"]])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["text/html"] = self._panes[0].value   # the report, for a notebook saved or exported without widgets
        bundle["text/plain"] = repr(self.results)
        return bundle
