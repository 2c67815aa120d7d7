"""The tuning and MERF panel: trials, the metric tuning optimises and the metrics reported (those
of the task, as `mixcv_core.metrics.METRIC_INFO` says), and MERF's EM settings."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from mixcv_core.metrics import METRIC_INFO, TASK_DEFAULT_METRICS, TUNING_DEFAULT, metric_label

from ._controls import bounded, message_slot, set_options

__all__ = ["TuningPanel"]


class TuningPanel:
    """The controls of tuning, metrics and MERF.

    ``on_change`` is called after any edit (the form checks itself again).
    """

    #: The message slots of this panel (``msg_<slot>``).
    SLOTS = ("trials", "trial_batch", "tuning", "objective", "metrics", "merf")

    def __init__(self, on_change: Callable[[], object]) -> None:
        self.trials = bounded("tuning.n_trials", 20, "trials", "180px")
        # Trials asked at once (TuningSpec.batch): part of the spec, so a seed fixes the trials
        # for any n_jobs; 1 is one trial at a time.
        self.trial_batch = bounded("tuning.batch", 1, "trial batch", "180px",
                                   tooltip="trials asked at once and evaluated side by side on idle cores")
        self.objective = w.Text(description="objective", placeholder="or a scorer of your own (dotted path)",
                                layout=w.Layout(width="360px"))
        # Tuning's metric (TuningSpec.metric) and the metrics reported: the task's own, as
        # METRIC_INFO says (a binary target is never offered r2); filled by `offer_metrics`.
        self.tuning_metric = w.Dropdown(options=[("tune for: default", "")], value="", layout=w.Layout(width="260px"),
                                        tooltip="the validation metric tuning optimises, in its own direction")
        self.metrics = w.SelectMultiple(options=list(TASK_DEFAULT_METRICS["regression"]),
                                        value=TASK_DEFAULT_METRICS["regression"], description="metrics",
                                        rows=6, layout=w.Layout(width="260px"))
        self._metrics_task = "regression"   # the task the metric choices are for
        self.merf_all = w.Checkbox(value=False, description="MERF for every model", indent=False)
        self.merf_iter = bounded("merf.max_iterations", 100, "EM iterations", "200px",
                                 style={"description_width": "initial"})
        self.merf_threshold = w.Text(value="", description="stop early below",
                                     placeholder="empty: stop when converged",
                                     layout=w.Layout(width="300px"), style={"description_width": "initial"},
                                     tooltip="an early stop: relative change of the GLL below which the EM "
                                             "ends, converged or not")
        self.merf_window = w.Text(value="2", description="for iterations", placeholder="1",
                                  layout=w.Layout(width="200px"), style={"description_width": "initial"})
        self.merf_linear = w.Checkbox(value=True, description="linear fixed part (zero-mean random effects)",
                                      indent=False, layout=w.Layout(width="auto"),
                                      tooltip="off: merf 1.0's algorithm")
        self.merf_em_estimators = w.Text(value="50", description="EM trees", placeholder="all",
                                         layout=w.Layout(width="180px"),
                                         tooltip="trees of a forest during EM; the full forest is fitted at the end")
        (self.msg_trials, self.msg_trial_batch, self.msg_tuning, self.msg_objective, self.msg_metrics,
         self.msg_merf) = (message_slot() for _ in self.SLOTS)
        self.tuning_metric.add_class("mixcv-tuning-metric")
        self.metrics.add_class("mixcv-metrics")
        for c in (self.trials, self.trial_batch, self.objective, self.metrics, self.tuning_metric, self.merf_all,
                  self.merf_iter, self.merf_threshold, self.merf_window, self.merf_linear, self.merf_em_estimators):
            c.observe(lambda _: on_change(), "value")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [w.HBox([self.trials, self.msg_trials, self.trial_batch, self.msg_trial_batch, self.tuning_metric,
                        self.msg_tuning, self.objective, self.msg_objective], layout=wrap),
                w.HBox([self.metrics, self.msg_metrics], layout=wrap),
                w.HBox([self.merf_all, self.merf_iter, self.merf_threshold, self.merf_window, self.merf_linear,
                        self.merf_em_estimators, self.msg_merf], layout=wrap)]

    def offer_metrics(self, task: str, keep: tuple[str, ...] = ()) -> None:
        """Offer the task's metrics (its defaults first) and tuning metrics; ``keep`` names metrics a
        reopened spec holds, offered whatever their task (the spec's own check then speaks)."""
        own = [n for n in TASK_DEFAULT_METRICS[task]] + [n for n, i in METRIC_INFO.items()
                                                           if i.task == task and n not in TASK_DEFAULT_METRICS[task]]
        options = own + [n for n in keep if n not in own]
        chosen = tuple(n for n in (keep or self.metrics.value) if n in options)
        if task != self._metrics_task and not keep:
            # Another task: its defaults, unless some chosen metrics are the new task's too.
            chosen = chosen or TASK_DEFAULT_METRICS[task]
        with self.metrics.hold_sync():
            if list(self.metrics.options) != options:
                self.metrics.value = ()
                self.metrics.options = options
            self.metrics.value = chosen
        self._metrics_task = task
        default = TUNING_DEFAULT[task]
        tuning = [(f"tune for: default ({metric_label(default)}, "
                   f"{'max' if METRIC_INFO[default].greater_is_better else 'min'})", "")]
        tuning += [(f"tune for: {metric_label(n)} ({'max' if METRIC_INFO[n].greater_is_better else 'min'})", n)
                   for n in own]
        set_options(self.tuning_metric, tuning)

    def offer_tuning_metric(self, metric: str) -> None:
        """Choose ``metric`` for tuning, offering it if the task's list lacks it (a reopened spec's)."""
        with self.tuning_metric.hold_sync():
            if metric not in [v for _, v in self.tuning_metric.options]:
                self.tuning_metric.options = [*self.tuning_metric.options, (f"tune for: {metric}", metric)]
            self.tuning_metric.value = metric
