"""The tracking panel: where the run is recorded (the run store, fitted models) and mirrored
(Neptune, MLflow)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ._controls import message_slot

__all__ = ["TrackingPanel"]


class TrackingPanel:
    """The controls of the run store and the mirrors.

    ``on_change`` is called after any edit (the form checks itself again).
    """

    #: The message slots of this panel (``msg_<slot>``).
    SLOTS = ("tracking",)

    def __init__(self, on_change: Callable[[], object]) -> None:
        self.store_dir = w.Text(description="run store", placeholder="default: $MIXCV_STORE or ./.mixcv",
                                layout=w.Layout(width="360px"))
        self.no_store = w.Checkbox(value=False, description="do not record", indent=False,
                                   layout=w.Layout(width="130px"))
        self.save_models = w.Checkbox(value=False, description="save fitted models", indent=False,
                                      layout=w.Layout(width="160px"))
        self.neptune_on = w.Checkbox(value=False, description="mirror to Neptune", indent=False,
                                     layout=w.Layout(width="160px"))
        self.neptune_project = w.Text(description="project", placeholder="workspace/project (or $NEPTUNE_PROJECT)",
                                      layout=w.Layout(width="330px"))
        self.neptune_mode = w.Dropdown(options=["async", "offline", "debug", "sync"], value="async",
                                       description="mode", layout=w.Layout(width="200px"))
        self.mlflow_on = w.Checkbox(value=False, description="mirror to MLflow", indent=False,
                                    layout=w.Layout(width="160px"))
        self.mlflow_uri = w.Text(description="tracking", placeholder="default: sqlite in the run store",
                                 layout=w.Layout(width="330px"))
        self.neptune_on.add_class("mixcv-neptune")
        self.msg_tracking = message_slot()
        for c in (self.store_dir, self.no_store, self.neptune_on, self.neptune_project, self.neptune_mode,
                  self.mlflow_on, self.mlflow_uri):
            c.observe(lambda _: on_change(), "value")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [w.HBox([self.store_dir, self.no_store, self.save_models], layout=wrap),
                w.HBox([self.neptune_on, self.neptune_project, self.neptune_mode], layout=wrap),
                w.HBox([self.mlflow_on, self.mlflow_uri], layout=wrap), self.msg_tracking]

    def check(self, error: Callable[[str, str], None]) -> None:
        """Enable the controls the choices make meaningful; report a problem as ``error(slot, message)``."""
        self.neptune_project.disabled = self.neptune_mode.disabled = not self.neptune_on.value
        self.mlflow_uri.disabled = not self.mlflow_on.value
        self.store_dir.disabled = self.save_models.disabled = self.no_store.value
        if (self.neptune_on.value and self.neptune_mode.value in ("async", "sync")
                and not self.neptune_project.value.strip() and not os.environ.get("NEPTUNE_PROJECT")):
            error("tracking", "Neptune needs a project (workspace/project), or use offline mode")

    def store(self) -> str | bool | None:
        """The run store as `mixcv_core.engine.run` takes it: a folder, False for none, None for the default."""
        return False if self.no_store.value else (self.store_dir.value.strip() or None)

    def mirrors(self) -> list[Any]:
        """The observers that mirror the run (made when it starts: each checks its own settings)."""
        mirrors: list[Any] = []
        if self.neptune_on.value:
            from mixcv_core.tracking.mirrors import NeptuneMirror
            mirrors.append(NeptuneMirror(project=self.neptune_project.value.strip() or None,
                                         mode=self.neptune_mode.value))
        if self.mlflow_on.value:
            from mixcv_core.tracking.mirrors import MlflowMirror
            mirrors.append(MlflowMirror(tracking_uri=self.mlflow_uri.value.strip() or None))
        return mirrors
