"""``%mixcv settings``: each setting's value for the next cell, and where it comes from."""

from __future__ import annotations

import argparse
import html
from typing import TYPE_CHECKING, Any

from ..settings import FORM_PRECEDENCE, SETTINGS, env_name, precedence_text, resolve
from ._common import command, rendered

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND"]


def _settings(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    chosen = resolve(magic)
    rows = [(name, repr(chosen[name].value), chosen[name].where, s.help) for name, s in SETTINGS.items()]
    text = "\n".join([f"Settings for the next %%mixcv cell (first wins: {precedence_text()}):",
                      *(f"  {n} = {v}  ({w}; {h}; ${env_name(n)})" for n, v, w, h in rows),
                      f"The form (%mixcv ui) opens with these and lets its own controls win: "
                      f"{precedence_text(FORM_PRECEDENCE)}."])
    cells = "".join(f"<tr><td><code>{html.escape(n)}</code></td><td><code>{html.escape(v)}</code></td>"
                    f"<td>{html.escape(w)}</td><td>{html.escape(h)}</td></tr>" for n, v, w, h in rows)
    page = (f"<div class='mixcv-settings'><p>Settings for the next <code>%%mixcv</code> cell; the first of "
            f"{html.escape(precedence_text())} that gives one wins.</p><table><tr><th>setting</th><th>value</th>"
            f"<th>from</th><th>what it does</th></tr>{cells}</table>"
            f"<p>The form (<code>%mixcv ui</code>) opens with these and lets its own controls win: "
            f"{html.escape(precedence_text(FORM_PRECEDENCE))}.</p></div>")
    return rendered(page, text)


COMMAND = command("settings", "each setting's value for the next cell and where it comes from (%config "
                              "MixcvMagic, MIXCV_* variables, [tool.mixcv] in pyproject.toml)", _settings)
