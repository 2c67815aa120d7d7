"""Matplotlib figures of a run's results, which show themselves in a notebook.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so making one
never opens a window or leaks into pyplot's global state. pyplot is also what registers
matplotlib's display hook in Jupyter, so a bare ``Figure`` displays as
``<Figure size 800x320 with 1 Axes>`` unless the user ran ``%matplotlib inline``; every
figure here is a `MixcvFigure`, which carries its own ``_repr_png_`` and ``_repr_svg_``
and so displays as an image in any notebook, with or without that magic. Save one with
``fig.savefig("folds.svg")`` (or ``.png``, ``.pdf``).

One function per figure; `RunView` has a method for each.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import SpecError
from ..metrics import higher_is_better, metric_label
from .compare import compare_models

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["MixcvFigure", "THEMES", "plot_theme", "figure_bytes", "plot_metric",
           "plot_predictions", "plot_convergence", "plot_folds",
           "plot_group_errors", "plot_random_effects", "plot_tuning", "GLL_LABEL", "class_balance",
           "is_binary_classification", "positive_label"]

_DARK_TEXT, _DARK_LINES = "#d4d4d4", "#8a8a8a"
#: matplotlib settings per notebook theme. Dark: a transparent figure (the notebook's own
#: background shows through) with light text, axes and legend, as JupyterLab's dark theme
#: draws its own text; light: matplotlib's defaults (a white figure, dark text).
THEMES: dict[str, dict[str, Any]] = {
    "light": {},
    "dark": {"figure.facecolor": "none", "axes.facecolor": "none", "savefig.facecolor": "none",
             "savefig.edgecolor": "none", "text.color": _DARK_TEXT, "axes.labelcolor": _DARK_TEXT,
             "axes.titlecolor": _DARK_TEXT, "axes.edgecolor": _DARK_LINES, "xtick.color": _DARK_TEXT,
             "ytick.color": _DARK_TEXT, "xtick.labelcolor": _DARK_TEXT, "ytick.labelcolor": _DARK_TEXT,
             "grid.color": "#4a4a4a", "legend.facecolor": "#2b2b2b", "legend.edgecolor": _DARK_LINES,
             "legend.labelcolor": _DARK_TEXT},
}


@contextmanager
def plot_theme(theme: str | None) -> Iterator[None]:
    """Figures drawn (and saved) inside this block suit a ``"light"`` or ``"dark"`` notebook.

    ``None`` (the theme is not known) draws with matplotlib's defaults: a white figure,
    readable on any background. matplotlib reads these settings when a figure, its text
    and its legend are made and when it is saved, so both happen inside the block.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> with plot_theme("dark"):
    ...     Figure().add_subplot().set_title("t").get_color()
    '#d4d4d4'
    """
    import matplotlib as mpl
    if theme is not None and theme not in THEMES:
        raise SpecError("theme", f"must be one of {sorted(THEMES)} or None, got {theme!r}")
    with mpl.rc_context(THEMES[theme or "light"]):  # type: ignore[arg-type]  # keys are rcParams' own
        yield


#: Colours of the fold-assignment map: a group's rows in training, held out as known, in test.
_ROLE_COLOURS = ["#d9d9d9", "#fdae61", "#2c7bb6"]


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 90) -> bytes:
    """A figure rendered to bytes (``png``, ``svg``, ``pdf``), e.g. for a tracker's upload."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


class MixcvFigure(Figure):
    """A matplotlib ``Figure`` that displays itself as a PNG in Jupyter (one rendering, not also
    an SVG: a notebook would store both); ``savefig`` writes any format."""

    def _repr_png_(self) -> bytes:
        return figure_bytes(self)

    def draw(self, renderer: Any) -> None:
        """Draw with every text shown literally: model, group, column and metric names are the
        user's, and a pair of ``$`` in one (``spend_$ per visit_$``) must not be read as
        mathtext (which fails to parse, or prints something else). Tick labels made during
        the draw read the rc setting; the texts made before it are switched one by one."""
        import matplotlib
        from matplotlib.text import Text
        with matplotlib.rc_context({"text.parse_math": False}):
            for text in self.findobj(Text):
                text.set_parse_math(False)
            super().draw(renderer)



def is_binary_classification(results: RunView) -> bool:
    """A classification of two classes (a run stored before its labels were kept: its codes are 0 and 1)."""
    if results.spec.task != "classification":
        return False
    classes = results._data.classes
    return len(classes) == 2 if classes else bool(np.all(results._data.y <= 1))


def positive_label(results: RunView) -> str:
    """The positive class of a binary run, as the figures name it (code 1 when the labels were not kept)."""
    classes = results._data.classes
    return repr(classes[1]) if len(classes) == 2 else "class 1"


def _figure(width: float, height: float) -> MixcvFigure:
    return MixcvFigure(figsize=(width, height), layout="constrained")


def plot_metric(results: RunView, metric: str = "r2", split: str = "test") -> MixcvFigure:
    """Per-fold scores of every model: a dot per fold, the folds joined across models, the mean as a bar.

    Lines join the same outer fold across models, so a model that wins on most folds
    shows as lines that slope the same way; the title gives the corrected t-test of the
    best model against the runner-up.
    """
    col = f"{split}_{metric}"
    table = results.to_frame()
    if col not in table.columns:
        raise SpecError("metric", f"no column {col!r}; metrics are {results.metric_names}, splits {results.splits}")
    models = results.model_names
    fig = _figure(max(4.5, 1.3 * len(models) + 2.5), 3.4)
    ax = fig.add_subplot()
    wide = table.pivot_table(index="fold", columns="model", values=col).reindex(columns=models)
    for i, m in enumerate(models):
        # pandas' mean: NaN for a model without folds, and no warning
        ax.bar(i, wide[m].mean(), color="C0", alpha=0.25, width=0.6)
    for _, row in wide.iterrows():
        ax.plot(range(len(models)), row.to_numpy(dtype=float), "-", color="0.6", lw=0.6, alpha=0.7, zorder=1)
    for i, m in enumerate(models):
        ax.plot(np.full(len(wide), i), wide[m], "o", color="C0", ms=4, zorder=2)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel(f"{metric_label(metric)} per outer fold ({'new groups' if split == 'test' else split})")
    ax.axhline(0, color="0.6", lw=0.8)
    title = f"{metric_label(metric)} per outer fold ({len(wide)} folds)"
    if len(models) >= 2 and split in ("test", "known") and len(wide) >= 2:
        means = wide.mean()
        order = means.sort_values(ascending=not higher_is_better(metric)).index
        try:
            c = compare_models(results, str(order[0]), str(order[1]), metric, split=split)
            p = "p < 0.001" if c.p_value < 0.001 else f"p = {c.p_value:.3f}"
            # Equal predictions (to rounding) have no winner: counting "wins" of 1e-16 would claim one.
            title += (f"\n{order[0]} and {order[1]}: identical predictions" if c.identical else
                      f"\n{order[0]} vs {order[1]}: better in {c.wins} of {c.n_folds} folds, corrected t-test {p}")
        except SpecError:
            pass
    ax.set_title(title, fontsize=9)
    return fig


def plot_predictions(results: RunView, model: str | None = None) -> MixcvFigure:
    """Out-of-fold predicted against observed values, one panel per model, coloured by fold."""
    pred = results.predictions
    models = [model] if model is not None else results.model_names
    fig = _figure(3.2 * len(models) + 1.2, 3.3)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    lo, hi = float(pred["y_true"].min()), float(pred["y_true"].max())
    folds = sorted(pred["fold"].unique())
    for ax, m in zip(axes, models):
        p = pred[pred["model"] == m]
        for k in folds:
            part = p[p["fold"] == k]
            ax.plot(part["y_true"], part["y_pred"], ".", ms=4, color=f"C{k % 10}", label=f"fold {k}")
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel(f"observed {results._data.target_name}")
    axes[0].set_ylabel("predicted (out of fold)")
    if len(folds) <= 10:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=7)
    return fig


#: MERF's GLL is a deviance (-2 log-likelihood up to constants): it falls as the fit improves.
GLL_LABEL = "GLL (deviance; lower is better)"


def plot_convergence(results: RunView, model: str | None = None) -> MixcvFigure:
    """MERF's GLL (a deviance: lower is better) per EM iteration for each fit."""
    hist = results.histories
    names = sorted({k[0] for k in hist}) if model is None else [model]
    if not names:
        raise KeyError("no EM histories in these results; add a MERF model (add_merf=True or set_merf)")
    fig = _figure(4.2 * len(names) + 1.0, 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for (m, k), h in sorted(hist.items()):
            if m == name:
                ax.plot(h["iteration"], h["gll"], marker=".", label=f"fold {k}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("EM iteration")
        ax.set_ylabel(GLL_LABEL)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(labels) <= 12:
        fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return fig


def fold_roles(results: RunView) -> tuple[pd.Index, np.ndarray]:
    """Each group's role in each outer fold: 0 train, 1 held out as known, 2 test.

    Returns the groups (columns) and a ``(n_folds, n_groups)`` array; a group counts as
    "held out" when some of its rows were, "test" when any of its rows were tested.
    """
    d = results._data
    if d.groups is None:
        raise SpecError("data.groups", "the fold assignment of groups needs groups; this run has none")
    labels = pd.Index(pd.unique(d.groups))
    codes = labels.get_indexer(d.groups)
    roles = np.zeros((len(results._outer), len(labels)), dtype=int)
    known = {o.fold: o.known_rows for o in results.outcomes if o.known_rows is not None}
    for k, (_train, test) in enumerate(results._outer):
        if k in known:
            roles[k, np.unique(codes[known[k]])] = 1
        roles[k, np.unique(codes[test])] = 2
    return labels, roles


def row_roles(results: RunView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's role in each outer fold, rows laid out group by group, for `plot_folds`.

    Returns ``(grid, starts, labels)``: ``grid`` ``(n_folds, n_rows)`` holds 0 (trains),
    1 (held out of a known group), 2 (tested) or -1 (unused by that fold), its columns
    the rows of each group side by side (groups in the order of the fold that tests
    them) and, within a group and fold, sorted by role, so each cell reads as a bar of
    the group's rows in each role; ``starts`` the first column of each group, whose
    labels are ``labels``.
    """
    labels, roles = fold_roles(results)
    groups = results._data.groups
    codes = pd.Index(labels).get_indexer(groups)
    order = np.lexsort((np.arange(len(labels)), np.argmax(roles == 2, axis=0)))
    known = {o.fold: o.known_rows for o in results.outcomes if o.known_rows is not None}
    n_rows = len(codes)
    per_row = np.full((len(results._outer), n_rows), -1, dtype=int)
    for k, (train, test) in enumerate(results._outer):
        per_row[k, train] = 0
        if k in known:
            per_row[k, known[k]] = 1
        per_row[k, test] = 2
    position = np.empty(len(labels), dtype=int)
    position[order] = np.arange(len(labels))
    by_group = np.argsort(position[codes], kind="stable")   # the rows, group after group
    sizes = np.bincount(position[codes], minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    grid = per_row[:, by_group]
    for start, size in zip(starts, sizes):   # within a group, each fold's rows by role: a bar per cell
        grid[:, start:start + size] = np.sort(grid[:, start:start + size], axis=1)
    return grid, starts, np.asarray(labels[order])


def plot_folds(results: RunView, outer_fold: int = 0) -> MixcvFigure:
    """Which groups and rows are in which fold: the outer folds, and the inner folds of one outer fold.

    Left: one row per outer fold; across, the data's rows group by group (a group as wide
    as its rows, groups sorted by the fold that tests them): blue the test rows, orange
    the rows held out of a known group (``known_holdout``), grey the training rows. A group
    with rows held out shows both its training and its held-out rows. Right (when the run
    tuned): the inner folds of outer fold ``outer_fold``, over the groups of its training part.
    """
    from matplotlib.colors import ListedColormap
    outer, starts, labels = row_roles(results)
    inner = (results.inner or [None])[outer_fold] if results.inner else None
    fig = _figure(9.0 if inner else 6.5, 0.35 * max(len(outer), 3) + 1.6)
    axes = fig.subplots(1, 2 if inner else 1, squeeze=False)[0]
    # Rows a fold does not use (none in a plain split): left blank.
    cmap = ListedColormap(_ROLE_COLOURS).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    ax = axes[0]
    ax.imshow(np.ma.masked_less(outer, 0), aspect="auto", cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
    if 1 < len(starts) <= 80:   # the groups' edges, while they are wide enough to see
        for x in starts[1:]:
            ax.axvline(x - 0.5, color="white", linewidth=0.6)
    ticks = [f"fold {k}" for k in range(len(outer))]
    if is_binary_classification(results):
        # The class balance of each test fold next to its name: a fold far from the overall
        # share scores its models on a different problem (and AUC on few rows of a class).
        balance = class_balance(results)
        ticks = [f"{t} · {share:.0%}" for t, share in zip(ticks, balance["test_share"])]
        overall = float(np.mean(results._data.y == 1))
        ax.set_ylabel(f"share of {positive_label(results)} in the test rows\n(all rows: {overall:.0%})", fontsize=7)
    ax.set_yticks(range(len(outer)), ticks, fontsize=7)
    ax.set_xlabel(f"{len(labels)} groups ({results._data.groups_name or 'group'}), {outer.shape[1]} rows")
    ax.set_xticks([])
    ax.set_title(f"outer split {results.spec.outer.label}", fontsize=9)
    groups = results._data.groups
    if inner and groups is not None:
        train = results._outer[outer_fold][0]
        tr_labels = pd.Index(pd.unique(groups[train]))
        codes = tr_labels.get_indexer(groups)
        grid = np.zeros((len(inner), len(tr_labels)), dtype=int)
        for j, (_, valid) in enumerate(inner):
            grid[j, np.unique(codes[valid])] = 2
        ax2 = axes[1]
        ax2.imshow(grid[:, np.argsort(np.argmax(grid == 2, axis=0), kind="stable")], aspect="auto", cmap=cmap,
                   vmin=0, vmax=2, interpolation="nearest")
        ax2.set_yticks(range(len(grid)), [f"inner {j}" for j in range(len(grid))], fontsize=7)
        ax2.set_xticks([])
        ax2.set_xlabel(f"{len(tr_labels)} training groups of outer fold {outer_fold}")
        ax2.set_title(f"inner split {results.spec.inner.label}", fontsize=9)
    from matplotlib.patches import Patch
    handles = [Patch(color=_ROLE_COLOURS[0], label="training rows"), Patch(color=_ROLE_COLOURS[2], label="test rows")]
    if (outer == 1).any():
        handles.insert(1, Patch(color=_ROLE_COLOURS[1], label="known-group rows held out"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7)
    return fig


def class_balance(results: RunView) -> pd.DataFrame:
    """Rows of each class in each outer fold's training and test parts (a classification run).

    One row per outer fold: ``n_train_<label>`` and ``n_test_<label>`` for each class label,
    and, with two classes, ``test_share`` and ``train_share``, the share of the positive class.
    """
    if results.spec.task != "classification":
        raise SpecError("task", "the class balance needs a classification run; this one is a regression")
    y = results._data.y.astype(np.int64)
    # A run stored before the labels were kept names its classes by their codes.
    classes = results._data.classes or tuple(range(int(y.max()) + 1))
    rows = []
    for train, test in results._outer:
        row: dict[str, float] = {}
        for part, idx in (("train", train), ("test", test)):
            counts = np.bincount(y[idx], minlength=len(classes))
            row.update({f"n_{part}_{label}": int(c) for label, c in zip(classes, counts)})
            if len(classes) == 2:
                row[f"{part}_share"] = counts[1] / max(len(idx), 1)
        rows.append(row)
    return pd.DataFrame(rows).rename_axis("fold")


def group_errors(results: RunView) -> pd.DataFrame:
    """Mean out-of-fold error per model and group (rows: groups, columns: models): the absolute
    error of a regression, the log loss of a binary classification (the absolute distance of a
    probability from the outcome would rank a confident mistake no worse than two hesitant ones)."""
    pred = results.predictions
    if pred["group"].isna().all():
        raise SpecError("data.groups", "errors by group need groups; this run has none")
    if is_binary_classification(results):
        # The same clipping as scikit-learn's log_loss: a probability of exactly 0 or 1 costs a finite amount.
        eps = np.finfo(np.float64).eps
        p = pred["y_pred"].to_numpy(dtype=float).clip(eps, 1 - eps)
        error = -np.where(pred["y_true"].to_numpy() == 1, np.log(p), np.log1p(-p))
    else:
        error = (pred["y_true"] - pred["y_pred"]).abs().to_numpy()
    return pred.assign(error=error).pivot_table(index="group", columns="model", values="error",
                                                aggfunc="mean").reindex(columns=results.model_names)


def plot_group_errors(results: RunView, top: int = 25) -> MixcvFigure:
    """Which groups are hard: mean out-of-fold error per group (`group_errors`), worst first.

    One row per group (the ``top`` hardest by the mean over models), one dot per model.
    """
    table = group_errors(results)
    worst = table.mean(axis=1).sort_values(ascending=False).index[:top]
    shown = table.loc[worst]
    fig = _figure(6.0, 0.22 * len(shown) + 1.4)
    ax = fig.add_subplot()
    y = np.arange(len(shown))[::-1]
    for i, m in enumerate(shown.columns):
        ax.plot(shown[m].to_numpy(dtype=float), y, "o", ms=4, color=f"C{i % 10}", label=m)
    ax.set_yticks(y, [str(g) for g in shown.index], fontsize=7)
    ax.set_ylabel(str(results._data.groups_name or "group"))
    ax.set_xlabel(f"mean {'log loss' if is_binary_classification(results) else 'absolute error'} (out of fold)")
    more = f", {len(shown)} hardest of {len(table)}" if len(table) > len(shown) else ""
    ax.set_title(f"error by group{more}", fontsize=9)
    fig.legend(loc="outside right center", fontsize=7)
    return fig


def random_effects(results: RunView, model: str | None = None, fold: int = 0) -> pd.DataFrame:
    """One fitted model's random effects per group with their conditional sd (long form)."""
    names = [m for m in results.model_names
             if any(hasattr(est, "random_effects_sd_") for (mm, _), est in results.models.items() if mm == m)]
    if not names:
        raise SpecError("model", "no fitted mixed model with random effects in these results (an LMM or MERF; "
                                 "stored runs keep fitted models only with save_models=True)")
    model = model or names[0]
    est = results.models.get((model, fold))
    if est is None or not hasattr(est, "random_effects_sd_"):
        raise SpecError("model", f"no fitted {model!r} with random effects in fold {fold}; models with them: {names}")
    re, sd = est.random_effects_, est.random_effects_sd_
    if isinstance(re, dict):
        # Several grouping factors: a table per factor, its terms named with the factor
        # ("plate: Intercept"), so each panel of the caterpillar holds one factor's levels.
        parts = []
        for name in re:
            part = _long(re[name], sd[name])
            part["term"] = f"{name}: " + part["term"].astype(str)
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
    else:
        out = _long(re, sd)
    out.attrs["model"] = model
    return out


def _long(re: pd.DataFrame, sd: pd.DataFrame) -> pd.DataFrame:
    """Effects and their sds, a row per (group, term)."""
    long = re.stack().rename("effect").to_frame().join(sd.stack().rename("sd"))
    long.index.names = ["group", "term"]
    return long.reset_index()


def plot_random_effects(results: RunView, model: str | None = None, fold: int = 0,
                        level: float = 0.95) -> MixcvFigure:
    """Each group's random effects with ``level`` intervals (a caterpillar plot), one panel per term.

    The intervals are ± z · the conditional sd of each effect (lme4's
    ``ranef(condVar = TRUE)``); groups are sorted by their effect.
    """
    from scipy import stats
    table = random_effects(results, model, fold)
    terms = list(dict.fromkeys(table["term"]))
    z = float(stats.norm.ppf(0.5 + level / 2))
    n_groups = table["group"].nunique()
    fig = _figure(3.6 * len(terms) + 0.5, min(0.16 * n_groups + 1.4, 14))
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    for ax, term in zip(axes, terms):
        t = table[table["term"] == term].sort_values("effect")
        y = np.arange(len(t))
        ax.errorbar(t["effect"], y, xerr=z * t["sd"], fmt="o", ms=3, color="C0", ecolor="0.55", elinewidth=0.8)
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_yticks(y, [str(g) for g in t["group"]], fontsize=6 if n_groups > 30 else 7)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel(f"random effect ± {level:.0%} interval")
    fig.suptitle(f"{table.attrs['model']}: random effects per group, outer fold {fold}", fontsize=9)
    return fig


def plot_tuning(results: RunView, model: str | None = None) -> MixcvFigure:
    """Optuna's history per outer fold: each trial's objective (dots) and the best so far (line)."""
    studies = results.studies
    names = sorted({k[0] for k in studies}, key=results.model_names.index) if model is None else [model]
    if not names:
        raise SpecError("model", "no tuning in these results; tune a model (requires_inner_cv=True with params)")
    fig = _figure(4.2 * len(names) + 1.0, 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for (m, k), study in sorted(studies.items()):
            if m != name:
                continue
            values = np.array([t.value if t.value is not None else math.nan for t in study.trials], dtype=float)
            best = np.fmin.accumulate(values) if study.direction.name == "MINIMIZE" else np.fmax.accumulate(values)
            ax.plot(np.arange(len(values)), values, ".", ms=3, color=f"C{k % 10}", alpha=0.5)
            ax.plot(np.arange(len(values)), best, "-", color=f"C{k % 10}", lw=1, label=f"fold {k}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("trial")
        ax.set_ylabel("inner-loop objective (lower is better)")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(labels) <= 12:
        fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return fig
