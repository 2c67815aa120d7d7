"""The live view of a run in a notebook: progress and EM convergence, updated in place.

`LiveDashboard` is an engine observer. It owns one output area (an IPython display
handle) and redraws it as events arrive: a models x folds grid with each fit's state
(waiting, tuning i/n, EM iteration, done with its test score, failed) and, when MERF
models run, a convergence plot (GLL per EM iteration, a line per fold). When the run
ends, `finish` puts the results report in the same area.

Drawing a PNG takes tens of milliseconds, so redraws are throttled by a budget: the
plot is redrawn only while the time spent drawing stays under ``budget`` (5%) of the
time the run has taken, and at most every ``min_interval`` seconds. The progress grid
is cheap HTML and is refreshed at most every ``progress_interval`` seconds.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from mixcv_core.metrics import higher_is_better, metric_label
from mixcv_core.results.plots import GLL_LABEL
from mixcv_core.results.report import SCROLL_CSS
from mixcv_core.run.events import (
    EMIteration,
    Event,
    FoldFailed,
    FoldFinished,
    FoldStarted,
    RunFinished,
    RunStarted,
    TrialFinished,
)

__all__ = ["LiveDashboard", "Rendered", "MIN_FOR_ESTIMATE", "shown_metric"]

#: Fits that must have finished before the live view estimates the time left.
MIN_FOR_ESTIMATE = 3
# Readable spacing in the progress grid, in JupyterLab's colours (dark theme too).
_GRID_CSS = ("<style>.mixcv-progress{border-collapse:collapse;margin:4px 0}"
             ".mixcv-progress th,.mixcv-progress td{padding:2px 12px;white-space:nowrap;text-align:left;"
             "border-bottom:1px solid var(--jp-border-color2,#ddd)}"
             ".mixcv-progress td.mixcv-failed{color:var(--jp-error-color1,#b00020)}"
             ".mixcv-progress th.mixcv-repeat{text-align:center;border-bottom:2px solid var(--jp-border-color1,#bbb)}"
             f"{SCROLL_CSS}</style>")


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 2 min``."""
    s = int(round(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def shown_metric(spec: Any) -> str:
    """The metric the live view shows per finished fold: the one tuning optimises.

    `ExperimentSpec.tuning_metric` (``TuningSpec.metric``, else the task's default: MSE for a
    regression, log loss for a classification), when the run reports it as a test column;
    else (a scorer of the user's own, or a tuning metric not among the reported ones) the
    run's first reported metric, which the folds do carry.
    """
    reported = list(spec.metrics)
    tuned = spec.tuning_metric
    if tuned is not None and tuned in reported:
        return str(tuned)
    return reported[0] if reported else "r2"


class Rendered:
    """An object that displays as the given HTML in Jupyter and as text elsewhere."""

    def __init__(self, html_text: str, text: str) -> None:
        self._html, self._text = html_text, text

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self._text


class LiveDashboard:
    """Engine observer that shows a run's progress and EM convergence in one output area.

    Parameters
    ----------
    display : callable, optional
        ``display(obj) -> handle`` with ``handle.update(obj)``; IPython's display with
        ``display_id=True`` by default.
    budget : float, default=0.05
        Largest share of the run's time that plot redraws may take.
    min_interval : float, default=0.5
        Seconds between plot redraws at least.
    progress_interval : float, default=0.2
        Seconds between progress refreshes at least (fold ends always refresh).
    clock : callable, default=time.perf_counter
    """

    def __init__(self, display: Callable[[Any], Any] | None = None, budget: float = 0.05,
                 min_interval: float = 0.5, progress_interval: float = 0.2,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._display = display
        self.budget, self.min_interval, self.progress_interval = budget, min_interval, progress_interval
        self._clock = clock
        self.handle: Any = None
        self.models: list[str] = []
        self.n_folds = 0
        self.state: dict[tuple[str, int], str] = {}
        self.em: dict[tuple[str, int], list[float]] = {}
        self.start = 0.0
        self.draw_seconds = 0.0
        self.n_draws = 0
        self._last_draw = -1e9
        self._last_progress = -1e9
        self._png: str | None = None
        self._title = ""
        self.repeats: list[int] = []
        self.stopped = False
        self.theme: str | None = None   # the notebook's theme, read when the run starts
        # The metric a finished fold shows, with its direction as `METRIC_INFO` says: the one
        # tuning optimises (`shown_metric`), so the grid speaks of what the run is after.
        self.metric = "r2"
        self.tuned = False   # whether that metric is the one tuning optimises

    # -- events --------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        now = self._clock()
        if isinstance(event, RunStarted):
            self.start = now
            self.models = list(event.model_names)
            self.n_folds = event.n_folds
            self.state = {(m, k): "waiting" for m in self.models for k in range(self.n_folds)}
            self.repeats = [int(r) for r in event.spec.outer.repeat_labels(self.n_folds)]
            self._title = event.spec.data.dataset_name or f"{event.n_rows} rows"
            self.metric = shown_metric(event.spec)
            self.tuned = self.metric == event.spec.tuning_metric
            from .theme import jupyter_theme
            self.theme = jupyter_theme()
            self._show(self._render(), new=True)
            return
        force = False
        if isinstance(event, TrialFinished):
            self.state[(event.model, event.fold)] = f"tuning {event.trial + 1}/{event.n_trials}"
        elif isinstance(event, FoldStarted):
            self.state[(event.model, event.fold)] = "fitting"
        elif isinstance(event, EMIteration):
            self.em.setdefault((event.model, event.fold), []).append(event.gll)
            self.state[(event.model, event.fold)] = f"EM {event.iteration}"
            if self._may_draw(now):
                self._draw_plot()
                force = True
        elif isinstance(event, FoldFinished):
            score = event.metrics.get(f"test_{self.metric}")
            unconverged = event.outcome is not None and event.outcome.converged is False
            self.state[(event.model, event.fold)] = ("done" + (f" · {self._score(score)}" if score is not None else "")
                                                     + (" · not converged" if unconverged else ""))
            force = True
        elif isinstance(event, FoldFailed):
            self.state[(event.model, event.fold)] = "failed"
            force = True
        elif isinstance(event, RunFinished):
            if event.results.status != "finished":
                # Stopped: the fits still waiting or running will not finish; the view says so
                # and counts per model what did (one model may have finished more folds than another).
                self.stopped = True
                for key, s in self.state.items():
                    if not s.startswith(("done", "failed")):
                        self.state[key] = "not run"
                self._show(self._render())
            return
        if force or now - self._last_progress >= self.progress_interval:
            self._last_progress = now
            self._show(self._render())

    def _score(self, value: float) -> str:
        """``log loss 0.612 ↓``: the metric's name as reports write it, its value, and which way is better."""
        arrow = "↑" if higher_is_better(self.metric) else "↓"
        return f"{metric_label(self.metric)} {value:.3f} {arrow}"

    def _may_draw(self, now: float) -> bool:
        elapsed = now - self.start
        return (now - self._last_draw >= self.min_interval or self.n_draws == 0) and \
            self.draw_seconds <= self.budget * elapsed

    # -- drawing -------------------------------------------------------------------------
    def _draw_plot(self) -> None:
        from mixcv_core.results.plots import plot_theme

        t0 = self._clock()
        with plot_theme(self.theme):   # drawn and saved for the notebook's theme
            self._png = self._em_figure()
        now = self._clock()
        self.draw_seconds += now - t0
        self.n_draws += 1
        self._last_draw = now

    def _em_figure(self) -> str:
        from matplotlib.figure import Figure

        from mixcv_core.results.report import figure_png

        names = sorted({m for m, _ in self.em})
        fig = Figure(figsize=(4.2 * len(names), 3.0), layout="constrained")
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names):
            for (m, k), gll in sorted(self.em.items()):
                if m == name:
                    ax.plot(range(1, len(gll) + 1), gll, marker=".", label=f"fold {k}")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("EM iteration")
            ax.set_ylabel(GLL_LABEL)
        handles, labels = axes[0].get_legend_handles_labels()
        if 0 < len(labels) <= 12:
            fig.legend(handles, labels, loc="outside right center", fontsize=7)   # never over the lines
        return figure_png(fig, dpi=72)

    def _render(self) -> Rendered:
        done = sum(s.startswith(("done", "failed")) for s in self.state.values())
        total = len(self.state)
        elapsed = self._clock() - self.start
        left = self.time_left(done, total, elapsed)
        eta = f" · about {_duration(left)} left" if left is not None else ""
        per_model = self.folds_finished()
        counts = ", ".join(f"{m} {n}" for m, n in per_model.items())
        if self.stopped:
            what = (f"<span style='color:var(--jp-error-color1,#b00020)'>stopped</span>: "
                    f"the outer folds each model finished, of {self.n_folds}: {html.escape(counts)}")
            eta = ""
        else:
            what = f"{done}/{total} fits finished"
        head = f"<b>mixcv</b> — {html.escape(self._title)}: {what} · {_duration(elapsed)}{eta}"
        better = "higher" if higher_is_better(self.metric) else "lower"
        shows = (f"each finished fit shows its test {metric_label(self.metric)} ({better} is better)"
                 + (", the metric tuning optimises" if self.tuned else ""))
        head += f"<div class='mixcv-live-metric' style='font-size:12px'>{html.escape(shows)}</div>"
        pct = 100.0 * done / total if total else 0.0
        bar = (f"<div style='background:#eee;height:6px;width:100%;max-width:480px;margin:4px 0'>"
               f"<div style='background:#4a90d9;height:6px;width:{pct:.1f}%'></div></div>")
        cells = "".join(f"<th>fold {k}</th>" for k in range(self.n_folds))
        over = ""
        if len(set(self.repeats)) > 1:
            # Folds are numbered across repeats: a row above says which repeat each belongs to.
            spans = [(r, self.repeats.count(r)) for r in dict.fromkeys(self.repeats)]
            over = "<tr><th></th>" + "".join(f"<th colspan='{n}' class='mixcv-repeat'>repeat {r}</th>"
                                              for r, n in spans) + "</tr>"
        rows = []
        for m in self.models:
            tds = "".join(f"<td class='mixcv-{self.state[(m, k)].split()[0]}'>{html.escape(self.state[(m, k)])}</td>"
                          for k in range(self.n_folds))
            rows.append(f"<tr><th>{html.escape(m)}</th>{tds}</tr>")
        # Scrolls sideways inside the output area when there are many folds (repeats).
        table = (f"{_GRID_CSS}<div class='mixcv-scroll'><table class='mixcv-progress'>"
                 f"{over}<tr><th>model</th>{cells}</tr>{''.join(rows)}</table></div>")
        plot = (f"<div><img class='mixcv-em-live' src='{self._png}'/></div>" if self._png else "")
        body = (f"<div class='mixcv-live' style='font-size:13px'>{head}{bar}{table}{plot}</div>")
        text = [f"mixcv: stopped; the outer folds each model finished, of {self.n_folds}: {counts}" if self.stopped
                else f"mixcv: {done}/{total} fits finished, {_duration(elapsed)}{eta}", f"  ({shows})"]
        for m in self.models:
            text.append(f"  {m}: " + " | ".join(
                (f"r{self.repeats[k]} " if len(set(self.repeats)) > 1 else "") + self.state[(m, k)]
                for k in range(self.n_folds)))
        return Rendered(body, "\n".join(text))

    def folds_finished(self) -> dict[str, int]:
        """Outer folds each model finished (a failed fold is not finished)."""
        return {m: sum(self.state[(m, k)].startswith("done") for k in range(self.n_folds)) for m in self.models}

    def time_left(self, done: int, total: int, elapsed: float) -> float | None:
        """Seconds left, from the pace so far; None until a few fits (``MIN_FOR_ESTIMATE``) have finished.

        Fits are taken as equally long: a rough figure, said as "about".
        """
        if done < MIN_FOR_ESTIMATE or done >= total or elapsed <= 0:
            return None
        return elapsed * (total - done) / done

    def _show(self, obj: Rendered, new: bool = False) -> None:
        if new or self.handle is None:
            if self._display is not None:
                self.handle = self._display(obj)
            else:
                from IPython.display import display
                self.handle = display(obj, display_id=True)
        else:
            self.handle.update(obj)

    def finish(self, results: Any) -> None:
        """Replace the live view with the results report (same output area)."""
        if self.handle is None:
            self._show(results, new=True)
        else:
            self.handle.update(results)
