"""The ``%%mixcv`` options and the ``%mixcv`` subcommands, each defined once.

`CELL_PARSER` holds every option of the cell magic; `COMMANDS` is the table of line
subcommands, each with its own parser and handler. The usage in error messages,
``%%mixcv?`` and ``%mixcv help`` are all derived from these two, so they cannot
disagree (`help_text`). Options are split with shell quoting (``--store "my runs"``).

In the spirit of IPython's ``magic_arguments`` (one parser, ``UsageError`` on bad
options) and jupysql's ``cmd/`` (subcommands dispatched from a table).
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from mixcv_core import MixcvError, Results
from mixcv_core.experiment.cell import CELL_EXAMPLE, MODEL_KEY_HELP, RANGE_HELP, TOP_KEY_HELP, spec_to_cell

if TYPE_CHECKING:
    from .magic import MixcvMagics

__all__ = ["CELL_PARSER", "COMMANDS", "Command", "DEFAULT_OUTPUT", "parse", "help_text", "usage"]

DEFAULT_OUTPUT = "mixcv_results"


def _parser(prog: str, description: str) -> MagicArgumentParser:
    # MagicArgumentParser raises UsageError instead of exiting; no -h (help is %mixcv help).
    return MagicArgumentParser(prog=prog, description=description, add_help=False,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


CELL_PARSER = _parser("%%mixcv", "Run the experiment the cell describes.")
CELL_PARSER.add_argument("-o", "--output", default=DEFAULT_OUTPUT, metavar="NAME",
                         help=f"variable that receives the Results (default: {DEFAULT_OUTPUT})")
CELL_PARSER.add_argument("--dry-run", action="store_true",
                         help="check everything and show the plan (folds, models, number of fits) without fitting")
CELL_PARSER.add_argument("--quiet", action="store_true", help="no live progress; say only how the run ended")
CELL_PARSER.add_argument("--n-jobs", type=int, default=None, metavar="N",
                         help="outer folds in N parallel processes, -1 for all cores (overrides n_jobs)")
CELL_PARSER.add_argument("--backend", default=None, choices=("local", "dask"),
                         help="where the folds run: local (worker processes on this machine, the default) or "
                              "dask (a Dask cluster; see --scheduler). Overrides the cell's backend")
CELL_PARSER.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="a Dask scheduler's address, e.g. tcp://10.0.0.5:8786 (implies --backend dask)")
CELL_PARSER.add_argument("--store", default=None, metavar="DIR",
                         help="run store folder (default: $MIXCV_STORE or ./.mixcv)")
CELL_PARSER.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
CELL_PARSER.add_argument("--save-models", action="store_true", help="also store the fitted models")
CELL_PARSER.add_argument("--neptune", default=None, metavar="PROJECT",
                         help="mirror the run to Neptune (workspace/project; token from $NEPTUNE_API_TOKEN)")
CELL_PARSER.add_argument("--neptune-mode", default=None, metavar="MODE",
                         help="Neptune mode: async (default), offline, debug, sync")
CELL_PARSER.add_argument("--mlflow", default=None, nargs="?", const="", metavar="URI",
                         help="mirror the run to MLflow (default: SQLite in the run store folder)")


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


# -- subcommands -------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A ``%mixcv`` subcommand: its parser (name, arguments, summary) and what it does."""

    parser: MagicArgumentParser
    run: Callable[[MixcvMagics, argparse.Namespace], Any]

    @property
    def name(self) -> str:
        return self.parser.prog.removeprefix("%mixcv ")

    @property
    def summary(self) -> str:
        return self.parser.description or ""


def _rendered(html_text: str, text: str) -> Any:
    from .dashboard import Rendered
    return Rendered(html_text, text)


def _help(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    import html
    text = help_text()
    return _rendered(f"<div class='mixcv-help'><pre>{html.escape(text)}</pre></div>", text)


def _models(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    import html

    from mixcv_core.experiment.registry import available_models
    names = available_models()
    return _rendered("<div>" + ", ".join(f"<code>{html.escape(n)}</code>" for n in names) + "</div>",
                     "\n".join(names))


def _splits(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    import html

    from mixcv_core.experiment.splits import describe_methods
    methods = describe_methods()
    return _rendered("<ul>" + "".join(f"<li><code>{k}</code>: {html.escape(v)}</li>" for k, v in methods.items())
                     + "</ul>", "\n".join(f"{k}: {v}" for k, v in methods.items()))


def _store(folder: str | None) -> Any:
    from mixcv_core.tracking.store import RunStore, default_store
    try:
        store = RunStore(folder) if folder else default_store()
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    if store is None:
        raise UsageError("the run store is switched off (MIXCV_STORE=off); give --store DIR")
    return store


def _runs(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    return _store(args.store or args.folder).runs()


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


def _load(magics: MixcvMagics, args: argparse.Namespace) -> None:
    name = check_output_name(args.output, magics.shell.user_ns)
    try:
        results = _store(args.store).load(args.run_id, models=args.models)
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    magics.shell.user_ns[name] = results
    print(f"run {results.run_id} ({results.status}) loaded as {name!r}")


def _resume(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    from mixcv_core import CrossValidation
    name = check_output_name(args.output, magics.shell.user_ns)
    store = _store(args.store)
    try:
        stored = store.load(args.run_id)
        frame_name = stored.spec.data.frame
        if not frame_name:
            raise UsageError(f"run {stored.run_id} was made from Python, not from a cell, so it names no DataFrame; "
                             f"resume it in Python: CrossValidation.resume(store, {stored.run_id!r}, frame)")
        frame = magics.shell.user_ns.get(frame_name)
        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"run {stored.run_id} ran on the DataFrame {frame_name!r}, which is not in this notebook; "
                             "load the same data under that name first")
        results = CrossValidation.resume(store, stored.run_id, frame)
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    magics.shell.user_ns[name] = results
    print(f"run {results.run_id} resumed ({results.status}); results stored as {name!r}")
    return results


def _ui(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    from .configurator import Configurator
    obj = magics.shell.user_ns.get(args.name)
    if isinstance(obj, Results):
        try:
            return Configurator.from_spec(obj, shell=magics.shell)
        except MixcvError as exc:
            raise UsageError(str(exc)) from None
    if not isinstance(obj, pd.DataFrame):
        raise UsageError(f"{args.name!r} is not a DataFrame (or mixcv results) in this notebook")
    return Configurator(obj, name=args.name, shell=magics.shell)


def _results(magics: MixcvMagics, name: str) -> Results:
    obj = magics.shell.user_ns.get(name)
    if not isinstance(obj, Results):
        raise UsageError(f"{name!r} is not mixcv results in this notebook")
    return obj


def _spec(magics: MixcvMagics, args: argparse.Namespace) -> None:
    results = _results(magics, args.name)
    try:
        text = f"%%mixcv -o {args.name}\n" + spec_to_cell(results.spec)
    except MixcvError as exc:
        raise UsageError(f"{args.name} cannot be written as a cell: {exc.message}") from None
    print(text, end="")


def _show(magics: MixcvMagics, args: argparse.Namespace) -> Any:
    from .explorer import Explorer
    return Explorer(_results(magics, args.name))


def _export(magics: MixcvMagics, args: argparse.Namespace) -> None:
    from .export import export_command
    export_command(magics.shell.user_ns, args.name, args.path, lambda: _store(args.store))


def _command(name: str, summary: str, run: Callable[[MixcvMagics, argparse.Namespace], Any],
             *arguments: tuple[tuple[str, ...], dict[str, Any]]) -> Command:
    parser = _parser(f"%mixcv {name}", summary)
    for flags, kwargs in arguments:
        parser.add_argument(*flags, **kwargs)
    return Command(parser, run)


_NAME = (("name",), {"metavar": "NAME", "help": "the variable the results are stored under"})
_STORE = (("--store",), {"default": None, "metavar": "DIR", "help": "run store folder (default: $MIXCV_STORE or "
                                                                    "./.mixcv)"})

#: Every ``%mixcv`` subcommand, in the order help lists them.
COMMANDS: dict[str, Command] = {c.name: c for c in (
    _command("help", "this help: the cell syntax, every option and subcommand", _help),
    _command("models", "the model names a cell or the form can use", _models),
    _command("splits", "the split methods, with what each keeps apart", _splits),
    _command("ui", "a form that builds (and runs) an experiment on a DataFrame, or reopens results", _ui,
             (("name",), {"metavar": "DF", "help": "a DataFrame (or Results) in the notebook"})),
    _command("runs", "the runs in the run store, newest first", _runs,
             (("folder",), {"nargs": "?", "default": None, "metavar": "DIR", "help": "run store folder"}), _STORE),
    _command("load", "bring a stored run back as Results", _load,
             (("run_id",), {"metavar": "RUN_ID", "help": "the run's id, or a unique start of it"}),
             (("-o", "--output"), {"default": DEFAULT_OUTPUT, "metavar": "NAME",
                                   "help": f"variable for the Results (default: {DEFAULT_OUTPUT})"}), _STORE,
             (("--models",), {"action": "store_true",
                              "help": "also unpickle the saved models: runs their code, so only for a store you "
                                      "trust (checked: inside the store, checksum as saved)"})),
    _command("resume", "finish an interrupted stored run: fit only what it lacks, with the data it ran on", _resume,
             (("run_id",), {"metavar": "RUN_ID", "help": "the run's id, or a unique start of it"}),
             (("-o", "--output"), {"default": DEFAULT_OUTPUT, "metavar": "NAME",
                                   "help": f"variable for the Results (default: {DEFAULT_OUTPUT})"}), _STORE),
    _command("spec", "print the %%mixcv cell that reproduces results", _spec, _NAME),
    _command("show", "open results in the explorer: summary, folds, comparison, plots, models, checks", _show, _NAME),
    _command("export", "write a run to a file, chosen by its extension: report.html (self-contained), methods.md, "
             "methods.tex (+ .bib), tables.tex (booktabs)", _export,
             (("name",), {"metavar": "NAME", "help": "a stored run's id (or a unique start), or a Results variable"}),
             (("path",), {"metavar": "FILE", "help": "report.html, methods.md, methods.txt, methods.tex, tables.tex"}),
             _STORE),
)}


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


def help_text() -> str:
    """What ``%mixcv help`` and ``%%mixcv?`` show: the syntax, every option and subcommand."""
    keys = _table(list(TOP_KEY_HELP.items()))
    model_keys = _table(list(MODEL_KEY_HELP.items()))
    options = _table(_option_rows(CELL_PARSER))
    commands = _table([(usage(c.parser), c.summary) for c in COMMANDS.values()])
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
{commands}

Read more: the README (In JupyterLab, Runs that last), notebooks/quickstart.ipynb and
notebooks/runs_and_tracking.ipynb; in Python, help(mixcv_core.CrossValidation).
"""
