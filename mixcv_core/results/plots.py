"""Matplotlib figures of a run's results.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so making one
never opens a window or leaks into pyplot's global state; Jupyter displays them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .results import Results

__all__ = ["plot_metric", "plot_predictions", "plot_convergence", "GLL_LABEL"]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def plot_metric(results: Results, metric: str = "r2", split: str = "test") -> Figure:
    """Per-fold values (points) and mean (bar) of ``<split>_<metric>`` for every model."""
    col = f"{split}_{metric}"
    table = results.to_frame()
    if col not in table.columns:
        raise KeyError(f"no column {col!r}; metrics are {results.metric_names}")
    models = results.model_names
    fig = _figure(max(4.0, 1.2 * len(models) + 2), 3.2)
    ax = fig.add_subplot()
    for i, m in enumerate(models):
        v = table.loc[table["model"] == m, col].to_numpy(dtype=float)
        ax.bar(i, np.nanmean(v), color="C0", alpha=0.35, width=0.6)
        jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(len(v))
        ax.plot(i + jitter, v, "o", color="C0", ms=4)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel(f"{split} {metric}")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_title(f"{split} {metric} per outer fold")
    return fig


def plot_predictions(results: Results, model: str | None = None) -> Figure:
    """Out-of-fold predicted against observed values, one panel per model."""
    pred = results.predictions
    models = [model] if model is not None else results.model_names
    fig = _figure(3.2 * len(models), 3.2)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    lo, hi = float(pred["y_true"].min()), float(pred["y_true"].max())
    for ax, m in zip(axes, models):
        p = pred[pred["model"] == m]
        for k, part in p.groupby("fold"):
            ax.plot(part["y_true"], part["y_pred"], ".", ms=4, label=f"fold {k}")
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("observed")
    axes[0].set_ylabel("predicted (out of fold)")
    axes[-1].legend(fontsize=7)
    return fig


#: MERF's GLL is a deviance (-2 log-likelihood up to constants): it falls as the fit improves.
GLL_LABEL = "GLL (deviance; lower is better)"


def plot_convergence(results: Results, model: str | None = None) -> Figure:
    """MERF's GLL (a deviance: lower is better) per EM iteration for each fit."""
    hist = results.histories
    names = sorted({k[0] for k in hist}) if model is None else [model]
    if not names:
        raise KeyError("no EM histories in these results; add a MERF model (add_merf=True or set_merf)")
    fig = _figure(4.2 * len(names), 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for (m, k), h in sorted(hist.items()):
            if m == name:
                ax.plot(h["iteration"], h["gll"], marker=".", label=f"fold {k}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("EM iteration")
        ax.set_ylabel(GLL_LABEL)
        ax.legend(fontsize=7)
    return fig
