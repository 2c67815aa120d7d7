"""``%mixcv help``: the cell syntax, every option of ``%%mixcv`` and every subcommand.

The text is derived from the cell grammar (`mixcv_core.experiment.cell`), the cell's
parser and the subcommand table, so help cannot disagree with what is accepted; the
magic's docstring (``%%mixcv?``) is the same text.
"""

from __future__ import annotations

import argparse
import html
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mixcv_core.experiment.cell import CELL_EXAMPLE, MODEL_KEY_HELP, RANGE_HELP, TOP_KEY_HELP

from ..settings import SETTINGS, env_name, precedence_text
from ._common import Command, command, rendered, usage

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["COMMAND", "render_help"]


def _table(rows: list[tuple[str, str]], width: int = 96) -> str:
    """Two columns, the second wrapped under itself."""
    left = max(len(a) for a, _ in rows) + 2
    out = []
    for a, b in rows:
        lines = textwrap.wrap(b, width - left - 2) or [""]
        out.append(f"  {a:<{left}}{lines[0]}")
        out.extend(" " * (left + 2) + more for more in lines[1:])
    return "\n".join(out)


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    rows = []
    for action in parser._actions:  # argparse keeps no public list of them
        flags = ", ".join(action.option_strings)
        if action.nargs == "?":
            flags += f" [{action.metavar}]"
        elif action.metavar:
            flags += f" {action.metavar}"
        rows.append((flags, action.help or ""))
    return rows


def render_help(cell_parser: argparse.ArgumentParser, commands: Mapping[str, Command]) -> str:
    """What ``%mixcv help`` and ``%%mixcv?`` show: the syntax, every option and subcommand."""
    keys = _table(list(TOP_KEY_HELP.items()))
    model_keys = _table(list(MODEL_KEY_HELP.items()))
    options = _table(_option_rows(cell_parser))
    subcommands = _table([(usage(c.parser), c.summary) for c in commands.values()])
    settings = _table([(name, f"{s.help} (default {s.default!r}; ${env_name(name)})") for name, s in SETTINGS.items()])
    example = "\n".join(f"  {line}" for line in CELL_EXAMPLE.rstrip().splitlines())
    return f"""\
mixcv: nested cross validation for grouped data, written in a cell.

Describe the experiment in a %%mixcv cell. mixcv checks all of it before fitting
anything (each mistake is one line naming the cell line and key; all are listed), shows each model's
progress per fold while it runs, and leaves the results report in the same output
area and the Results in a variable.

Example
  %%mixcv -o results
{example}

Cell keys
{keys}

Inside a model entry, every key is a parameter of the model, except
{model_keys}

Parameter values
{textwrap.indent(textwrap.fill(RANGE_HELP, 90), "  ")}

Options of %%mixcv
{options}

Subcommands
{subcommands}

Settings: %config MixcvMagic.<name> = value, a MIXCV_<NAME> variable or <name> = value under
[tool.mixcv] in pyproject.toml (%mixcv settings shows them); the first that gives a value wins:
  {precedence_text()}
{settings}

Read more: the README (In JupyterLab, Runs that last), notebooks/quickstart.ipynb and
notebooks/runs_and_tracking.ipynb; in Python, help(mixcv_core.CrossValidation).
"""


def _help(magic: MixcvMagic, args: argparse.Namespace) -> Any:
    text = magic.help_text()
    return rendered(f"<div class='mixcv-help'><pre>{html.escape(text)}</pre></div>", text)


COMMAND = command("help", "this help: the cell syntax, every option and subcommand", _help)
