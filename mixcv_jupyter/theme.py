"""Which JupyterLab theme the notebook shows: figures are drawn to suit it.

A kernel is not told the page's theme. JupyterLab keeps the user's choice in its settings
(``<jupyter config dir>/lab/user-settings/@jupyterlab/apputils-extension/themes.jupyterlab-settings``,
JSON with comments), on the machine the kernel runs on for a local server; ``MIXCV_THEME``
(``light`` or ``dark``) says it outright, for a remote kernel or another front end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["jupyter_theme", "settings_file"]

_THEME_ENTRY = re.compile(r'"theme"\s*:\s*"([^"]*)"')


def settings_file() -> Path:
    """Where JupyterLab keeps the chosen theme (``JUPYTERLAB_SETTINGS_DIR`` moves it)."""
    base = os.environ.get("JUPYTERLAB_SETTINGS_DIR")
    if not base:
        from jupyter_core.paths import jupyter_config_dir
        base = os.path.join(jupyter_config_dir(), "lab", "user-settings")
    return Path(base) / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"


def jupyter_theme() -> str | None:
    """``"dark"``, ``"light"``, or None when not known (figures then keep a white background).

    ``MIXCV_THEME`` first; else the theme JupyterLab's settings name ("JupyterLab Dark",
    or any theme whose name says dark); JupyterLab's default, when nothing was chosen, is
    the light theme.
    """
    said = os.environ.get("MIXCV_THEME", "").strip().lower()
    if said in ("light", "dark"):
        return said
    try:
        text = settings_file().read_text(encoding="utf-8")
    except OSError:
        return None
    # JSON with comments: the entry is read by pattern, skipping lines commented out.
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    match = _THEME_ENTRY.search(live)
    if match is None:
        return "light"
    return "dark" if "dark" in match.group(1).lower() else "light"
