"""The ``%%mixcv`` cell magic and the ``%mixcv`` line magic: a dispatcher.

The cell runs `mixcv_jupyter.cmd.run`; a line ``%mixcv NAME ...`` runs the subcommand
``NAME`` from the table `mixcv_jupyter.cmd.COMMANDS`, each in its own module of
``mixcv_jupyter/cmd/``. The magic's docstring (``%%mixcv?``) is derived from the same
parsers and table (`mixcv_jupyter.cmd.help_text`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .cmd import COMMANDS, DEFAULT_OUTPUT, Command, help_text, parse, run_cell

__all__ = ["MixcvMagic", "MixcvMagics", "DEFAULT_OUTPUT"]


@magics_class
class MixcvMagic(Magics):
    """Magics registered by ``%load_ext mixcv_jupyter``."""

    #: The ``%mixcv`` subcommands this magic dispatches to.
    commands: ClassVar[dict[str, Command]] = COMMANDS

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


MixcvMagic.mixcv.__doc__ = help_text()
#: The name this class had before it became configurable as ``MixcvMagic``.
MixcvMagics = MixcvMagic
