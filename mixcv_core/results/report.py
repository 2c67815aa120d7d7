"""HTML rendering of `RunView`: one place, used by plain Python, the magic and the widget.

The summary shows "mean ± sd" of each test metric per model with the best model per
metric in bold; the per-fold table, failures and warnings fold away in ``<details>``.
Built on pandas' Styler, so it needs no JavaScript and survives nbconvert.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from ..errors import SpecError
from ..experiment.registry import is_unresolved
from ..experiment.spec import merf_name
from ..metrics import higher_is_better, metric_label
from ..models.merf_binary import MERFClassifier, counterpart_note
from .checks import CHECKS, row_id_checks, run_checks
from .classification import plot_calibration, plot_roc
from .compare import compare_all, compare_models
from .factors import mixed_model_names, what_is_new
from .plots import is_binary_classification, plot_convergence, plot_folds, plot_metric

if TYPE_CHECKING:
    from ..experiment.data import Plan, PreparedData
    from ..experiment.spec import ExperimentSpec
    from ._run import RunView

__all__ = ["render_html", "summary_table", "figure_png", "plan_table", "render_plan_html", "fold_table_html",
           "tuned_params_html", "convergence_html", "problems_html", "comparison_html", "checks_html",
           "figures_html", "CSS", "SCROLL_CSS", "safe_table", "fmt_number", "fmt_p"]

#: A sideways scrollbar that stays in sight under a wide table: classic (never an overlay that
#: appears only while scrolling) in Chromium and Safari, thin and coloured in Firefox. Chromium
#: ignores the ::-webkit-scrollbar rules under an inherited scrollbar-color: reset here to auto.
#: A long table (a row per model and fold) is held to 70% of the window, its header kept in
#: view: its sideways scrollbar is then on screen, not below the last of 60 rows.
SCROLL_CSS = """
.mixcv-scroll {overflow: auto; max-width: 100%; max-height: 70vh; padding-bottom: 2px;
  scrollbar-width: auto; scrollbar-color: auto;}
.mixcv-scroll thead th {position: sticky; top: 0; z-index: 1;}
.mixcv-scroll::-webkit-scrollbar {width: 10px;}
.mixcv-scroll::-webkit-scrollbar {height: 10px;}
.mixcv-scroll::-webkit-scrollbar-thumb {background: var(--jp-scrollbar-thumb-color, #a0a0a0); border-radius: 5px;}
.mixcv-scroll::-webkit-scrollbar-track {background: var(--jp-layout-color2, #eee);}
@supports not selector(::-webkit-scrollbar) {
  .mixcv-scroll {scrollbar-width: thin; scrollbar-color: var(--jp-scrollbar-thumb-color, #a0a0a0) transparent;}
}
"""

CSS = """
<style>
.mixcv-report {font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; max-width: 100%;}
.mixcv-report .mixcv-head {margin: 0 0 6px 0; color: var(--jp-ui-font-color1, #222);}
.mixcv-report .mixcv-meta {color: var(--jp-ui-font-color2, #666); margin-bottom: 6px;}
.mixcv-report table {border-collapse: collapse; margin: 4px 0;}
.mixcv-report th, .mixcv-report td {padding: 2px 10px; text-align: right; white-space: nowrap;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); color: var(--jp-ui-font-color1, inherit);}
.mixcv-report th {background: var(--jp-layout-color2, #f4f4f4);}
.mixcv-report td.mixcv-best {font-weight: bold;}
.mixcv-report .mixcv-fail {color: var(--jp-error-color1, #b00020);}
""" + SCROLL_CSS + """/* Inside the form and the explorer the report sits in an ipywidgets HTML, a flex item that
   would grow to the table's width; held to the pane's width, wide tables scroll instead. */
.mixcv-explorer .widget-html, .mixcv-configurator .widget-html {min-width: 0;}
.mixcv-explorer .widget-html-content, .mixcv-configurator .widget-html-content {min-width: 0; width: 100%;}
.mixcv-report details {margin: 4px 0;}
.mixcv-report .mixcv-figure {max-width: 100%; margin: 2px 8px 2px 0; vertical-align: top;}
.mixcv-report .mixcv-check-warning {color: var(--jp-warn-color0, #8a4b00);}
.mixcv-report summary {cursor: pointer;}
</style>
"""


def safe_table(styler: Styler) -> str:
    """A Styler's HTML with every label and text cell escaped, in a box that scrolls sideways.

    Model names, column names and parameter values come from the user (a cell, a stored
    run); pandas escapes none of them by default, so ``<img onerror=...>`` as a model name
    would run in the notebook. A table wider than the output area scrolls inside it
    instead of being cut off.
    """
    styler = styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    return f'<div class="mixcv-scroll">{styler.to_html()}</div>'


def fmt_number(x: float) -> str:
    """A number for a table: three decimals, or three significant digits when very large or small."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.3f}"


def split_names(results: RunView) -> dict[str, str]:
    """What each scored row set estimates, in a column header's words."""
    new = "new groups" if results.spec.outer.requires_groups else "test folds"
    return {"test": new, "known": "known groups"}


def summary_table(results: RunView) -> pd.DataFrame:
    """Models × test metrics as "mean ± sd" strings (what the HTML report shows).

    With a known-group holdout the columns are (metric, new groups | known groups), side
    by side.
    """
    names = split_names(results)
    splits = ("test", "known") if results.has_known else ("test",)
    parts = {}
    for split in splits:
        s = results.summarize(split)
        metrics = list(dict.fromkeys(s.index.get_level_values("metric")))
        table = pd.DataFrame(index=pd.Index(results.model_names, name="model"), columns=metrics, dtype=object)
        for (model, metric), row in s.iterrows():
            table.loc[model, metric] = f"{fmt_number(row['mean'])} ± {fmt_number(row['sd'])}"
        parts[names[split]] = table
    if len(parts) == 1:
        return next(iter(parts.values()))
    wide = pd.concat(parts, axis=1).swaplevel(axis=1)
    metrics = list(dict.fromkeys(wide.columns.get_level_values(0)))
    return wide.reindex(columns=pd.MultiIndex.from_product([metrics, list(parts)]))


def _best_cells(results: RunView, table: pd.DataFrame) -> set[tuple[str, object]]:
    """(model, column) of the best mean per column of ``table``, every tied model included."""
    best: set[tuple[str, object]] = set()
    if len(table) < 2:
        return best
    names = {v: k for k, v in split_names(results).items()}
    summaries: dict[str, pd.Series] = {}   # one summary per split, not one per column
    for column in table.columns:
        metric, split = (column, "test") if not isinstance(column, tuple) else (column[0], names[column[1]])
        if split not in summaries:
            summaries[split] = results.summarize(split)["mean"]
        means = summaries[split].xs(metric, level="metric").dropna()
        if means.empty:
            continue
        top = means.max() if higher_is_better(metric) else means.min()
        best.update((str(m), column) for m, v in means.items() if np.isclose(v, top, rtol=1e-12, atol=0))
    return best


def where_mixed_models_help(results: RunView) -> str | None:
    """One line comparing new- and known-group scores of the primary metric, or None without a holdout."""
    if not results.has_known or not results.model_names:
        return None
    metric = results.metric_names[0]
    new = results.summarize("test")["mean"].xs(metric, level="metric")
    known = results.summarize("known")["mean"].xs(metric, level="metric")
    gain = (known - new) if higher_is_better(metric) else (new - known)
    gain = gain.dropna()
    if gain.empty:
        return None
    label = metric_label(metric)
    pairs = ", ".join(f"{m} {fmt_number(new[m])} → {fmt_number(known[m])}" for m in gain.index)
    top = str(gain.idxmax())
    mixed = mixed_model_names(results)
    if top in mixed and gain[top] > 0:
        verdict = (f"{top} gains most from knowing the group: its random effects help for groups it has seen; "
                   "for new groups it has the fixed part only")
    elif gain.max() <= 0:
        verdict = "no model does better for known groups than for new ones: the groups add little to learn"
    else:
        verdict = f"{top} gains most from knowing the group"
    return f"{label} for new → known groups: {pairs}. {verdict}."


def figure_png(fig, dpi: int = 80) -> str:
    """A matplotlib figure as a base64 PNG data URI (for ``<img src=...>``)."""
    import base64
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plan_table(spec: ExperimentSpec, plan: Plan) -> pd.DataFrame:
    """One row per outer fold: rows and groups in train and test, inner folds."""
    d = plan.data
    rows = []
    for k, (train, test) in enumerate(plan.outer):
        row = {"fold": k, "n_train": len(train), "n_test": len(test)}
        known = plan.known[k] if plan.known else None
        if known is not None:
            row["n_known"] = len(known)   # held out of training groups, scored as known groups
        if d.groups is not None:
            g_tr, g_te = set(pd.unique(d.groups[train])), set(pd.unique(d.groups[test]))
            row.update(groups_train=len(g_tr), groups_test=len(g_te), groups_in_both=len(g_tr & g_te))
        inner = plan.inner[k]
        row["inner_folds"] = 0 if inner is None else len(inner)
        rows.append(row)
    return pd.DataFrame(rows)


def features_html(feature_names: list[str], slope_names: list[str]) -> str:
    """The features the models are given, by name (random slopes marked): what ``y ~ ...`` reads."""
    if not feature_names:
        return "no features"
    names = ", ".join(f"<code>{html.escape(f)}</code>" + (" (random slope)" if f in slope_names else "")
                      for f in feature_names)
    return f"features ({len(feature_names)}): {names}"


def render_plan_html(spec: ExperimentSpec, plan: Plan) -> str:
    """What a run would do, without doing it: folds, models, tuning budget, fit count, features."""
    table = plan_table(spec, plan)
    models = []
    n_fits = 0
    n_folds = len(plan.outer)
    for m in spec.models:
        tuned = ", ".join(f"{k}" for k in m.params) if m.tunes else "—"
        fits = n_folds * (1 + (spec.tuning.n_trials * spec.inner.n_splits if m.tunes else 0))
        # MERF fits its base model once per EM iteration (plus the final full forest): at most this many.
        em = n_folds * (spec.merf.max_iterations + 1) if m in spec.merf_models() else 0
        if spec.task == "classification":
            em *= MERFClassifier().outer_max_iterations    # binary MERF: one EM per PQL iteration, at most
        models.append({"model": m.name, "estimator": m.estimator_class.__name__, "tuned": tuned,
                       "fixed": ", ".join(f"{k}={v!r}" for k, v in m.model_kwargs.items()) or "—",
                       "merf": "yes" if em else "", "fits": fits, "MERF fits (at most)": em or "—"})
        n_fits += fits + em
    mt = pd.DataFrame(models)
    outer = spec.outer.method
    head = (f"<h4 class='mixcv-head'>Plan (dry run): {len(plan.data.y)} rows, outer {html.escape(str(outer))} "
            f"with {n_folds} folds; at most {n_fits} model fits (the columns below add up to it)</h4>")
    warnings = "".join(f'<div class="mixcv-fail" data-check="{c.code}">⚠ {html.escape(c.message)} '
                       f"<small>({html.escape(c.evidence)})</small></div>" for c in row_id_checks(plan.data))
    feats = f"<div class='mixcv-meta'>{features_html(plan.data.feature_names, plan.data.slope_names)}</div>"
    return (CSS + "<div class='mixcv-report mixcv-plan'>" + head + feats + warnings
            + safe_table(mt.style.format(escape="html").hide(axis="index"))
            + "<div>Outer folds</div>" + safe_table(table.style.hide(axis="index")) + "</div>")


def _groups_meta(d: PreparedData, n_groups: int) -> str:
    """The report's words for the grouping: ``24 groups``, or with several factors each one's
    levels and the random part (``24 plate levels × 6 sample levels; random (1 | plate) + ...``)."""
    frame = d.group_frame
    if frame is None or frame.shape[1] < 2:
        return f"{n_groups} groups" if n_groups else "no groups"
    levels = " × ".join(f"{frame[c].nunique()} <code>{html.escape(str(c))}</code> levels" for c in frame.columns)
    return levels + (f"; random <code>{html.escape(d.random)}</code>" if d.random else "")


def _task_note(spec: ExperimentSpec) -> str:
    """How the target was modelled, for a classification: the class whose probability is predicted."""
    if spec.task != "classification":
        return ""
    if spec.positive_class is None:
        return " (classification of several classes)"
    return f" (classification: probability of <code>{html.escape(repr(spec.positive_class))}</code>)"


def render_html(results: RunView) -> str:
    """The full HTML report of a run."""
    spec = results.spec
    d = results._data
    n_groups = 0 if d.groups is None else len(pd.unique(d.groups))
    outer = spec.outer.label
    inner = spec.inner.method if spec.inner.is_named else spec.inner.label
    tuned = any(m.tunes for m in spec.models)
    title = html.escape(spec.data.dataset_name or "mixcv run")
    status = results.status
    meta = [f"{len(d.y)} rows", _groups_meta(d, n_groups),
            f"target <code>{html.escape(str(d.target_name))}</code>" + _task_note(spec),
            f"outer: {html.escape(str(outer))} ({len(results._outer)} folds)"]
    if spec.outer.known_holdout:
        meta.append(f"known-group holdout {spec.outer.known_holdout:g}")
    if tuned:
        meta.append(f"inner: {html.escape(str(inner))} ({spec.inner.n_splits} folds, "
                    f"{spec.tuning.n_trials} trials)")
    meta.append(f"seed {spec.seed}")
    if results.wall_time == results.wall_time:
        meta.append(f"{results.wall_time:.1f} s")
    if getattr(results, "run_id", None):
        meta.append(f"run <code>{html.escape(str(results.run_id))}</code>")

    record_error = getattr(results, "record_error", None)
    parts = [CSS, '<div class="mixcv-report">',
             f'<h4 class="mixcv-head">{title} — '
             f'{"<span class=mixcv-fail>interrupted</span>" if status != "finished" else "finished"}</h4>',
             f'<div class="mixcv-meta">{" · ".join(meta)}</div>',
             f'<div class="mixcv-meta mixcv-features">{features_html(d.feature_names, d.slope_names)}</div>']
    new_line = what_is_new(results)
    if new_line:   # several grouping factors: say which are new in the test folds
        parts.append(f'<div class="mixcv-meta">{html.escape(new_line)}</div>')
    if record_error:
        parts.append(f'<div class="mixcv-fail">Not fully recorded in the run store: {html.escape(record_error)}. '
                     "The results below are complete; the stored run is marked incomplete.</div>")

    if results.model_names:
        table = summary_table(results)
        best = _best_cells(results, table)
        styler = table.style.format(escape="html").set_table_attributes('class="mixcv-summary"')
        styler = styler.apply(lambda col: [("font-weight: bold" if (m, col.name) in best else "")
                                           for m in col.index], axis=0)
        unconverged = [o for o in results.outcomes if o.ok and o.converged is False]
        if unconverged:
            names = ", ".join(html.escape(n) for n in dict.fromkeys(o.model for o in unconverged))
            parts.append(f'<div class="mixcv-fail">{len(unconverged)} fit(s) did not converge ({names}): their '
                         "estimates may be wrong; see the converged and convergence columns per fold</div>")
        what = ("new groups: the outer test folds; known groups: held-out rows of groups seen in training"
                if results.has_known else split_names(results)["test"])
        per_model = results.to_frame().groupby("model")["fold"].nunique()
        n_all = len(results._outer)
        if (per_model == n_all).all():
            over = f"{n_all} outer folds"
        else:
            # Each model's own count: a stopped run may have finished more folds of one model than another.
            counts = ", ".join(f"{m} {per_model.get(m, 0)}" for m in results.model_names)
            over = f"the outer folds each model finished, of {n_all}: {counts}"
        # The RMSE row (derived from the MSE, `Results.summarize`) exists only beside an MSE or RMSE.
        rmse = "; RMSE = √mean MSE" if {"mse", "rmse"} & set(results.metric_names) else ""
        parts.append(f"<div>Mean ± sd over {over} ({html.escape(what)}; best in bold{rmse})</div>")
        parts.append(safe_table(styler))
        line = where_mixed_models_help(results)
        if line:
            parts.append(f'<div class="mixcv-known">{html.escape(line)}</div>')
        parts.append(binary_merf_html(results))
        parts.append(comparison_html(results))
        parts.append(checks_html(results))
        parts.append(figures_html(results))

        parts.append(f"<details><summary>Per fold ({len(results.to_frame())} fits)</summary>"
                     f"{fold_table_html(results)}</details>")
        tuned_html = tuned_params_html(results)
        if tuned_html:
            parts.append(f"<details><summary>Tuned parameters</summary>{tuned_html}</details>")
    else:
        parts.append("<div>No model finished a fold.</div>")

    parts.append(convergence_html(results))
    parts.append(problems_html(results))
    parts.append("</div>")
    return "\n".join(parts)


# -- the report's sections, each usable alone (the results explorer's tabs) ---------------
def fold_table_html(results: RunView) -> str:
    """One row per model and outer fold, the columns that say something for this run."""
    folds = results.to_frame().drop(columns=["best_params"])
    if not any(m.tunes for m in results.spec.models):
        folds = folds.drop(columns=["tune_time"])
    if folds["converged"].isna().all():
        folds = folds.drop(columns=["converged"])
    if not (folds["convergence"].astype(bool)).any():
        folds = folds.drop(columns=["convergence"])
    if folds["repeat"].nunique() <= 1:
        folds = folds.drop(columns=["repeat"])   # one repeat: a column of zeros says nothing
    num = folds.select_dtypes("number").columns.drop(["fold", "repeat", "n_train", "n_test", "n_known"],
                                                     errors="ignore")
    return safe_table(folds.style.format({c: fmt_number for c in num}, escape="html").hide(axis="index"))


def tuned_params_html(results: RunView) -> str:
    """The parameters the inner loop chose, per model and fold ("" when nothing was tuned)."""
    table = results.to_frame()
    # With repeats, each fold's repeat, next to it: fold 4 is the second repeat's second fold.
    bp = table[["model"] + (["repeat"] if table["repeat"].nunique() > 1 else []) + ["fold", "best_params"]]
    bp = bp[bp["best_params"].map(bool)]
    if not len(bp):
        return ""
    bp = bp.assign(best_params=bp["best_params"].map(
        lambda p: ", ".join(f"{k}={fmt_number(v) if isinstance(v, float) else v}" for k, v in p.items())))
    # MERF is not tuned on its own: its EM runs around the base model with that fold's chosen values.
    reused = [m.name for m in results.spec.merf_models() if m.tunes]
    note = "".join(f"<div class='mixcv-meta'>{html.escape(merf_name(n))} reuses {html.escape(n)}'s tuned "
                   "parameters of the same fold (it is not tuned separately)</div>" for n in reused)
    return safe_table(bp.style.format(escape="html").hide(axis="index")) + note


def binary_merf_html(results: RunView) -> str:
    """What binary MERF did with each base model (classification runs with MERF; "" otherwise)."""
    spec = results.spec
    if spec.task != "classification":
        return ""
    lines = [f"{merf_name(m.name)} is binary MERF (penalised quasi-likelihood around the EM; new groups get the "
             f"probability averaged over the random effects): {counterpart_note(m.estimator_class)}"
             for m in spec.merf_models() if not is_unresolved(m.estimator)]
    return "".join(f"<div class='mixcv-meta mixcv-binary-merf'>{html.escape(line)}</div>" for line in lines)


def convergence_html(results: RunView) -> str:
    """MERF's EM convergence figure ("" without MERF)."""
    if not results.histories:
        return ""
    return (f'<div class="mixcv-convergence"><div>EM convergence</div>'
            f'<img class="mixcv-em-final" src="{figure_png(plot_convergence(results))}"/></div>')


def problems_html(results: RunView) -> str:
    """Failed fits (open) and warnings raised while fitting (folded)."""
    parts = []
    fails = results.failures
    if len(fails):
        items = "".join(f"<li>{html.escape(r.model)} fold {r.fold}: <code>{html.escape(r.error)}</code></li>"
                        for r in fails.itertuples())
        parts.append(f'<details open><summary class="mixcv-fail">{len(fails)} failed fit(s) '
                     f'(see results.failures)</summary><ul>{items}</ul></details>')
    warns = results.warnings
    if len(warns):
        counts = warns.groupby("warning").size().sort_values(ascending=False)
        items = "".join(f"<li>{n}× {html.escape(w[:300])}</li>" for w, n in counts.items())
        parts.append(f"<details><summary>{len(warns)} warning(s) while fitting (see results.warnings)"
                     f"</summary><ul>{items}</ul></details>")
    return "".join(parts)


def fmt_p(p: float) -> str:
    """A p-value for a table: three decimals, or "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def comparison_html(results: RunView) -> str:
    """The corrected t-test of every pair (primary metric), with the headline sentence."""
    if len(results.model_names) < 2:
        return ""
    metric = results.metric_names[0]
    table = compare_all(results, [metric])
    if table.empty:
        return ""
    first = table[table["metric"] == metric]
    means = results.summary["mean"].xs(metric, level="metric")
    order = means.sort_values(ascending=not higher_is_better(metric)).index
    headline = compare_models(results, str(order[0]), str(order[1]), metric).sentence
    if results.has_known:
        # New and known groups answer different questions (a mixed model may equal its base for new
        # groups and be far better for known ones): the headline says both.
        known = results.summarize("known")["mean"].xs(metric, level="metric").dropna()
        if len(known) >= 2:
            top = known.sort_values(ascending=not higher_is_better(metric)).index
            try:
                other = compare_models(results, str(top[0]), str(top[1]), metric, split="known").sentence
            except SpecError:
                other = ""   # fewer than two folds scored known rows for both
            if other:
                headline = f"new groups: {headline}; known groups: {other}"
    shown = first.assign(**{"a − b": first["mean_diff"].map(fmt_number),
                            "95% CI": [f"[{fmt_number(lo)}, {fmt_number(hi)}]"
                                       for lo, hi in zip(first["ci_low"], first["ci_high"])],
                            "t": first["t"].map(lambda v: f"{v:.2f}"),
                            "p": first["p_value"].map(fmt_p), "p (Holm)": first["p_holm"].map(fmt_p),
                            "a better in": ["identical predictions" if same else f"{w} of {n}"
                                            for w, n, same in zip(first["wins"], first["n_folds"],
                                                                  first["identical"])]})
    shown = shown[["a", "b", "a − b", "95% CI", "t", "df", "p", "p (Holm)", "a better in"]]
    return (f'<div class="mixcv-comparison"><div><b>Comparison</b> — {html.escape(headline)}.</div>'
            f"<details><summary>Every pair on {html.escape(metric)} (corrected resampled t-test, Nadeau &amp; "
            f"Bengio 2003; Holm-adjusted; results.compare())</summary>"
            f"{safe_table(shown.style.format(escape='html').hide(axis='index'))}</details></div>")


def checks_html(results: RunView) -> str:
    found = run_checks(results)
    if not found:
        return (f'<div class="mixcv-checks">Methodology checks: all {len(CHECKS)} passed (group-aware splits, '
                "leakage, convergence, tuning ranges, baseline, fold sizes).</div>")
    items = "".join(
        f'<li class="mixcv-check-{c.severity}" data-check="{c.code}"><b>{"⚠" if c.severity == "warning" else "ℹ"} '
        f"{html.escape(c.message)}</b><br><small>{html.escape(c.evidence)}</small></li>" for c in found)
    n_warn = sum(c.severity == "warning" for c in found)
    return (f'<details class="mixcv-checks" {"open" if n_warn else ""}><summary>Methodology checks: '
            f"{n_warn} warning(s), {len(found) - n_warn} note(s) (results.checks())</summary><ul>{items}</ul>"
            "</details>")


def figures_html(results: RunView) -> str:
    """The most telling figures: per-fold scores (with the comparison), the fold map and, for a
    binary classification, the ROC curves and the calibration plot."""
    figs = []
    if len(results._outer) >= 2:
        figs.append(("per-fold scores", plot_metric(results, results.metric_names[0], "test")))
    if results._data.groups is not None:
        figs.append(("groups in folds", plot_folds(results, 0)))
    if is_binary_classification(results) and results.model_names:
        # The curves say what one AUC or log loss cannot: where the ranking fails, and whether
        # a probability of 0.3 means 30 %.
        figs.append(("ROC curves", plot_roc(results)))
        figs.append(("calibration", plot_calibration(results)))
    if not figs:
        return ""
    imgs = "".join(f'<img class="mixcv-figure" alt="{html.escape(name)}" src="{figure_png(fig)}"/>'
                   for name, fig in figs)
    return f'<details class="mixcv-figures" open><summary>Figures</summary>{imgs}</details>'
