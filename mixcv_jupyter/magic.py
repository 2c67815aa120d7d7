"""The ``%%mixcv`` cell magic and the ``%mixcv`` line magic: a dispatcher with settings.

The cell runs `mixcv_jupyter.cmd.run`; a line ``%mixcv NAME ...`` runs the subcommand
``NAME`` from the table `mixcv_jupyter.cmd.COMMANDS`, each in its own module of
``mixcv_jupyter/cmd/``. The magic's docstring (``%%mixcv?``) is derived from the same
parsers and table (`mixcv_jupyter.cmd.help_text`).

The magic is a traitlets ``Configurable``: each of `mixcv_jupyter.settings.SETTINGS` is a
trait, ``%config MixcvMagic.n_jobs = 4``, unset (None) until given, so that the
environment, ``pyproject.toml`` and the defaults below it in the order of precedence
show through (`mixcv_jupyter.settings.resolve`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, Int, TraitError, TraitType, Unicode, validate

from mixcv_core import MixcvError
from mixcv_core.constraints import Boolean, Integer, Real

from .cmd import COMMANDS, DEFAULT_OUTPUT, Command, help_text, parse, run_cell
from .settings import CONFIG_CLASS, SETTINGS, env_name

__all__ = ["MixcvMagic", "MixcvMagics", "DEFAULT_OUTPUT"]


def _trait(name: str) -> TraitType[Any, Any]:
    """The ``%config`` trait of a setting, typed by its rule."""
    setting = SETTINGS[name]
    kind = {Integer: Int, Real: Float, Boolean: Bool}.get(type(setting.rule), Unicode)
    return kind(None, allow_none=True, help=f"{setting.help} (default {setting.default!r}; unset: "
                                            f"${env_name(name)}, then [tool.mixcv] {name} in pyproject.toml)"
                ).tag(config=True)


@magics_class
class MixcvMagic(Magics):
    """Magics registered by ``%load_ext mixcv_jupyter``."""

    #: The ``%mixcv`` subcommands this magic dispatches to.
    commands: ClassVar[dict[str, Command]] = COMMANDS

    # One trait per setting (test: the traits are exactly SETTINGS).
    store = _trait("store")
    n_jobs = _trait("n_jobs")
    backend = _trait("backend")
    quiet = _trait("quiet")
    seed = _trait("seed")
    refresh = _trait("refresh")

    @validate(*SETTINGS)
    def _check_setting(self, proposal: Any) -> Any:
        # %config refuses a bad value at once, with the rule's words.
        value, name = proposal["value"], proposal["trait"].name
        if value is None:
            return None
        try:
            return SETTINGS[name].rule.check(value, f"{CONFIG_CLASS}.{name}")
        except MixcvError as exc:
            raise TraitError(str(exc)) from None

    @line_cell_magic
    def mixcv(self, line: str, cell: str | None = None) -> Any:
        if cell is not None:
            return run_cell(self, line, cell)
        word, _, rest = line.strip().partition(" ")
        command = self.commands.get(word or "help")
        if command is None:
            raise UsageError(f"unknown %mixcv command {word!r}; use one of: {', '.join(self.commands)} "
                             "(%mixcv help explains each)")
        return command.run(self, parse(command.parser, rest))

    def help_text(self) -> str:
        """The help ``%mixcv help`` shows (the same as ``%%mixcv?``)."""
        return help_text()


assert MixcvMagic.__name__ == CONFIG_CLASS   # %config MixcvMagic.<name> is the class's name
MixcvMagic.mixcv.__doc__ = help_text()
#: The name this class had before it became configurable as ``MixcvMagic``.
MixcvMagics = MixcvMagic
