"""mixcv_jupyter: the Jupyter front end of mixcv.

``%load_ext mixcv_jupyter`` registers the ``%%mixcv`` cell magic and the ``%mixcv`` line
magic (run ``%mixcv?`` for help), and completion inside ``%%mixcv`` cells. It can also be loaded through IPython's
configuration: ``c.InteractiveShellApp.extensions = ["mixcv_jupyter"]``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension", "Configurator"]


def __getattr__(name: str) -> Any:
    # The form pulls in ipywidgets; import it only when asked for.
    if name == "Configurator":
        from .form import Configurator
        return Configurator
    raise AttributeError(f"module 'mixcv_jupyter' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension lives, for ``jupyter labextension develop``.

    pip installs it by itself (pyproject.toml's shared-data); this hook lets a developer link
    the bundle that ``npm run build`` rewrites instead, so a rebuild needs no reinstall.
    """
    return [{"src": "labextension", "dest": "mixcv-jupyter"}]


def load_ipython_extension(ipython: Any) -> None:
    """Register the mixcv magics with an IPython shell."""
    from .magic import MixcvMagic
    ipython.register_magics(MixcvMagic)
    # Completion inside %%mixcv cells (IPython's matcher API v2; nothing changes elsewhere).
    from .completion import register
    register(ipython)
    # Results show as the explorer (tabs) in this notebook; the engine stays free of widgets.
    from mixcv_core.results import Results

    from .explorer import Explorer
    ipython.display_formatter.mimebundle_formatter.for_type(Results, lambda r: Explorer(r)._repr_mimebundle_())


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the mixcv magics again."""
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("mixcv", None)
    from .completion import unregister
    unregister(ipython)
    from mixcv_core.results import Results
    ipython.display_formatter.mimebundle_formatter.type_printers.pop(Results, None)
