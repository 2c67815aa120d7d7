"""What every ``%mixcv`` subcommand module shares: a parser that raises `UsageError`,
parsing with shell quoting, the `Command` record the dispatch table holds, and the
checks several subcommands make (an output name, a run store, results by name).

Nothing here imports a subcommand or the magic, so the subcommand modules import it
and not each other.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from mixcv_core import MixcvError, Results

from ..settings import resolve, store_folder

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["DEFAULT_OUTPUT", "Command", "Handler", "Argument", "command", "new_parser", "parse", "usage",
           "check_output_name", "rendered", "open_store", "results_named", "NAME", "STORE", "OUTPUT"]

DEFAULT_OUTPUT = "mixcv_results"

#: What a subcommand does: given the magic (its shell, its settings) and its parsed arguments.
Handler = Callable[["MixcvMagic", argparse.Namespace], Any]
#: One ``add_argument`` call: its flags and its keyword arguments.
Argument = tuple[tuple[str, ...], dict[str, Any]]


def new_parser(prog: str, description: str) -> MagicArgumentParser:
    """A parser for ``prog``; MagicArgumentParser raises UsageError instead of exiting; no -h
    (help is ``%mixcv help``)."""
    return MagicArgumentParser(prog=prog, description=description, add_help=False,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def usage(parser: argparse.ArgumentParser) -> str:
    """One-line usage of a parser, for error messages."""
    return " ".join(parser.format_usage().split()).removeprefix("usage: ")


def parse(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """Parse a magic line with shell quoting; every problem is one `UsageError` with the usage."""
    try:
        words = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"{exc}; usage: {usage(parser)}") from None
    try:
        return parser.parse_args(words)
    except UsageError as exc:
        raise UsageError(f"{exc}; usage: {usage(parser)}") from None
    except SystemExit:  # argparse exits on some errors even in MagicArgumentParser
        raise UsageError(f"usage: {usage(parser)}") from None


@dataclass(frozen=True)
class Command:
    """A ``%mixcv`` subcommand: its parser (name, arguments, summary) and what it does."""

    parser: MagicArgumentParser
    run: Handler

    @property
    def name(self) -> str:
        return self.parser.prog.removeprefix("%mixcv ")

    @property
    def summary(self) -> str:
        return self.parser.description or ""


def command(name: str, summary: str, run: Handler, *arguments: Argument) -> Command:
    """The `Command` ``%mixcv name``, its parser built from ``arguments``."""
    parser = new_parser(f"%mixcv {name}", summary)
    for flags, kwargs in arguments:
        parser.add_argument(*flags, **kwargs)
    return Command(parser, run)


NAME: Argument = (("name",), {"metavar": "NAME", "help": "the variable the results are stored under"})
STORE: Argument = (("--store",), {"default": None, "metavar": "DIR",
                                  "help": "run store folder (default: the store setting, $MIXCV_STORE or ./.mixcv)"})
OUTPUT: Argument = (("-o", "--output"), {"default": DEFAULT_OUTPUT, "metavar": "NAME",
                                         "help": f"variable for the Results (default: {DEFAULT_OUTPUT})"})


def rendered(html_text: str, text: str) -> Any:
    """An object the notebook shows as ``html_text`` and a terminal as ``text``."""
    from ..dashboard import Rendered
    return Rendered(html_text, text)


def check_output_name(name: str, user_ns: dict[str, Any]) -> str:
    """The ``-o`` name, refused when Python cannot use it (a keyword such as ``class``
    cannot be typed back) or when storing there would replace a DataFrame (``-o df``
    would lose the data the run was made on)."""
    import keyword
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-o: {name!r} is not a valid variable name")
    if isinstance(user_ns.get(name), pd.DataFrame):
        raise UsageError(f"-o: {name!r} holds a DataFrame, which the results would replace; choose another name "
                         f"(e.g. -o {name}_results)")
    return name


def open_store(magic: MixcvMagic, folder: str | None) -> Any:
    """The run store in ``folder``, or the one the store setting names; `UsageError` when it
    cannot be opened or the setting switches it off."""
    from mixcv_core.tracking.store import RunStore
    if not folder:
        chosen = resolve(magic)["store"]
        where = store_folder(chosen.value)
        if where is False:
            raise UsageError(f"the run store is switched off ({chosen.where} = {chosen.value!r}); give --store DIR")
        folder = str(where)
    try:
        return RunStore(folder)
    except MixcvError as exc:
        raise UsageError(str(exc)) from None


def results_named(magic: MixcvMagic, name: str) -> Results:
    """The Results stored under ``name`` in the notebook."""
    obj = magic.shell.user_ns.get(name)
    if not isinstance(obj, Results):
        raise UsageError(f"{name!r} is not mixcv results in this notebook")
    return obj
