"""The run panel: how a run goes — its seed, the processes or Dask cluster it runs on, what a
fit that raises or runs too long does, and a debugging run of the first fold only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from mixcv_core.constraints import ON_ERROR

from ._controls import bounded, message_slot

__all__ = ["RunPanel"]


class RunPanel:
    """The controls of the run's settings.

    ``on_change`` is called after any edit (the form checks itself again).
    """

    #: The message slots of this panel (``msg_<slot>``).
    SLOTS = ("seed", "n_jobs", "timeout", "backend", "scheduler")

    def __init__(self, on_change: Callable[[], object]) -> None:
        self.seed = bounded("seed", 42, "seed", "180px")
        self.n_jobs = bounded("n_jobs", 1, "n_jobs", "180px")
        labels = {"keep": "on error: keep going", "raise": "on error: stop (raise)"}
        self.on_error = w.Dropdown(options=[(labels.get(v, v), v) for v in ON_ERROR], value="keep",
                                   layout=w.Layout(width="220px"),
                                   tooltip="a fit that raises: record it and go on, or stop the run with its error")
        self.timeout = w.Text(value="", description="timeout (s)", placeholder="no limit",
                              layout=w.Layout(width="200px"),
                              tooltip="seconds one model may take on one outer fold; then it is stopped, "
                                      "the fold recorded as timed out")
        self.backend = w.Dropdown(options=[("run on: this machine", "local"), ("run on: Dask cluster", "dask")],
                                  value="local", layout=w.Layout(width="220px"),
                                  tooltip="this machine (n_jobs worker processes) or a Dask cluster: a local one "
                                          "with n_jobs workers, or the scheduler below (pip install 'mixcv[dask]')")
        self.scheduler = w.Text(value="", description="scheduler", placeholder="empty: a local cluster",
                                layout=w.Layout(width="330px", display="none"),
                                tooltip="a running Dask scheduler's address, e.g. tcp://10.0.0.5:8786")
        self.break_cv = w.Checkbox(value=False, description="first fold only (debug)", indent=False,
                                   layout=w.Layout(width="190px"),
                                   tooltip="fit the first outer fold only: a debugging run, not an estimate")
        # Which of these came from the magic's settings, and from where (`_settings`).
        self.settings_note = w.HTML("")
        self.msg_seed, self.msg_n_jobs, self.msg_timeout, self.msg_backend, self.msg_scheduler = (
            message_slot() for _ in self.SLOTS)
        for c in (self.seed, self.n_jobs, self.on_error, self.timeout, self.backend, self.scheduler, self.break_cv):
            c.observe(lambda _: on_change(), "value")
        self.backend.observe(self._backend_changed, "value")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [w.HBox([self.seed, self.msg_seed, self.n_jobs, self.msg_n_jobs, self.on_error, self.timeout,
                        self.msg_timeout, self.break_cv], layout=wrap),
                w.HBox([self.backend, self.scheduler, self.msg_backend, self.msg_scheduler, self.settings_note],
                       layout=wrap)]

    def _backend_changed(self, change: Any) -> None:
        # The scheduler address means something only for a Dask cluster.
        self.scheduler.layout.display = "" if change["new"] == "dask" else "none"
