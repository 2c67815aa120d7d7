"""The ``%%mixcv`` cell and the ``%mixcv`` subcommands: one module each, dispatched from `COMMANDS`.

Laid out as jupysql's ``sql/cmd/``: the magic (`mixcv_jupyter.magic`) only looks a
subcommand up in `COMMANDS` and calls it; each subcommand lives in its own module with
its parser and handler (``COMMAND = command(name, summary, handler, *arguments)``), and
shares only `_common`. The usage in error messages, ``%%mixcv?`` and ``%mixcv help``
are derived from `CELL_PARSER` and `COMMANDS`, so they cannot disagree (`help_text`).

To add a subcommand ``%mixcv NAME``: write ``cmd/NAME.py`` defining ``COMMAND`` (see
``cmd/spec.py`` for a short one), import it below and put it in the tuple that builds
`COMMANDS`, where its place is its place in help. Nothing else changes: dispatch, usage
errors, ``%mixcv help`` and the magic's docstring follow from the table.
"""

from __future__ import annotations

from ._common import DEFAULT_OUTPUT, Command, check_output_name, parse, usage
from .export import COMMAND as EXPORT
from .help import COMMAND as HELP
from .help import render_help
from .load import COMMAND as LOAD
from .models import COMMAND as MODELS
from .resume import COMMAND as RESUME
from .run import CELL_PARSER, run_cell
from .runs import COMMAND as RUNS
from .settings import COMMAND as SETTINGS
from .show import COMMAND as SHOW
from .spec import COMMAND as SPEC
from .splits import COMMAND as SPLITS
from .ui import COMMAND as UI

__all__ = ["CELL_PARSER", "COMMANDS", "Command", "DEFAULT_OUTPUT", "check_output_name", "help_text", "parse",
           "run_cell", "usage"]

#: Every ``%mixcv`` subcommand, in the order help lists them.
COMMANDS: dict[str, Command] = {c.name: c for c in (HELP, MODELS, SPLITS, UI, RUNS, LOAD, RESUME, SPEC, SHOW,
                                                      EXPORT, SETTINGS)}


def help_text() -> str:
    """What ``%mixcv help`` and ``%%mixcv?`` show: the syntax, every option and subcommand."""
    return render_help(CELL_PARSER, COMMANDS)
