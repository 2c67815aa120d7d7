"""The magic's settings as the form's defaults: when the form opens, each setting it has a control
for (seed, n_jobs, backend, the run store) starts at the value `mixcv_jupyter.settings.resolve`
gives it — ``%config MixcvMagic``, then ``MIXCV_*`` variables, then ``[tool.mixcv]`` in
``pyproject.toml``, then mixcv's default — and what the user then sets in the form wins for that
run (`mixcv_jupyter.settings.FORM_PRECEDENCE`). The live view's refresh interval comes from the
same place.

A value its rule refuses is reported as the magic reports it (``$MIXCV_N_JOBS: expected ...``),
in the form next to the setting's control, with Run disabled: the environment is the user's to
fix, and running with a default they did not choose would hide that it is wrong.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..settings import CONFIG_CLASS, SETTINGS, Resolved, resolve

__all__ = ["FormSettings", "SHOWN", "read_settings"]

#: The settings the form shows -> the message slot of their control.
SHOWN = {"seed": "seed", "n_jobs": "n_jobs", "backend": "backend", "store": "tracking"}


@dataclass(frozen=True)
class FormSettings:
    """What the form opens with: each setting's `Resolved` value (none when one could not be
    read), or the error that says why, and the message slot it belongs next to (None: the
    status line only)."""

    chosen: Mapping[str, Resolved] = field(default_factory=dict)
    error: str | None = None
    slot: str | None = None

    def value(self, name: str) -> Any:
        """The setting's value, mixcv's default when the settings could not be read."""
        return self.chosen[name].value if name in self.chosen else SETTINGS[name].default

    def note(self) -> str:
        """HTML saying which of the shown settings came from somewhere other than mixcv's defaults."""
        given = [f"{name} {self.chosen[name].value} ({self.chosen[name].where})" for name in SHOWN
                 if name in self.chosen and self.chosen[name].source != "default"]
        if not given:
            return ""
        return ("<span class='mixcv-settings-note' style='font-size:12px'>from your settings: "
                f"{html.escape(', '.join(given))}</span>")


def read_settings(shell: Any, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> FormSettings:
    """The settings as ``%%mixcv`` would read them in ``shell`` (its ``%config`` if the extension is
    loaded there), without a cell's option or key; a bad value becomes the error, never raised."""
    registry = getattr(getattr(shell, "magics_manager", None), "registry", None) or {}
    magic = registry.get(CONFIG_CLASS)
    try:
        chosen = resolve(magic, environ=environ, cwd=cwd)
    except UsageError as exc:
        return FormSettings(error=str(exc), slot=SHOWN.get(getattr(exc, "setting", "")))
    return FormSettings(chosen)
