"""``%%mixcv``: run the experiment a cell describes.

Only translates: cell text -> `ExperimentSpec` (`mixcv_core.experiment.cell`), the named
DataFrame from the notebook, events -> the live dashboard, results -> the notebook
namespace and the output area. Every problem with the cell is reported in one short line
naming the cell line and key, all of them at once (an IPython ``UsageError``, no traceback).
`CELL_PARSER` holds every option of the cell magic.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError

from mixcv_core import ConvergenceWarning, MixcvError
from mixcv_core.experiment.cell import CellError, ParsedCell, parse_cell, spec_to_cell

from ..settings import SETTINGS, Resolved, resolve, store_folder
from ._common import DEFAULT_OUTPUT, check_output_name, new_parser, parse

if TYPE_CHECKING:
    from ..magic import MixcvMagic

__all__ = ["CELL_PARSER", "run_cell"]

CELL_PARSER = new_parser("%%mixcv", "Run the experiment the cell describes.")
CELL_PARSER.add_argument("-o", "--output", default=DEFAULT_OUTPUT, metavar="NAME",
                         help=f"variable that receives the Results (default: {DEFAULT_OUTPUT})")
CELL_PARSER.add_argument("--dry-run", action="store_true",
                         help="check everything and show the plan (folds, models, number of fits) without fitting")
CELL_PARSER.add_argument("--quiet", action=argparse.BooleanOptionalAction, default=None,
                         help="no live progress; say only how the run ended (--no-quiet: the live view even when "
                              "the quiet setting is on)")
CELL_PARSER.add_argument("--n-jobs", type=int, default=None, metavar="N",
                         help="outer folds in N parallel processes, -1 for all cores (overrides n_jobs)")
CELL_PARSER.add_argument("--backend", default=None, choices=("local", "dask"),
                         help="where the folds run: local (worker processes on this machine, the default) or "
                              "dask (a Dask cluster; see --scheduler). Overrides the cell's backend")
CELL_PARSER.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="a Dask scheduler's address, e.g. tcp://10.0.0.5:8786 (implies --backend dask)")
CELL_PARSER.add_argument("--store", default=None, metavar="DIR",
                         help="run store folder (default: the store setting: MixcvMagic.store, $MIXCV_STORE, "
                              "[tool.mixcv] in pyproject.toml, else ./.mixcv)")
CELL_PARSER.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
CELL_PARSER.add_argument("--save-models", action="store_true", help="also store the fitted models")
CELL_PARSER.add_argument("--neptune", default=None, metavar="PROJECT",
                         help="mirror the run to Neptune (workspace/project; token from $NEPTUNE_API_TOKEN)")
CELL_PARSER.add_argument("--neptune-mode", default=None, metavar="MODE",
                         help="Neptune mode: async (default), offline, debug, sync")
CELL_PARSER.add_argument("--mlflow", default=None, nargs="?", const="", metavar="URI",
                         help="mirror the run to MLflow (default: SQLite in the run store folder)")


def _kernel_frontend(shell: Any) -> bool:
    # Jupyter kernels can update an output area in place; a terminal cannot.
    return getattr(shell, "kernel", None) is not None


def run_cell(magic: MixcvMagic, line: str, cell: str) -> None:
    """Run the ``%%mixcv`` cell ``cell`` with the options ``line``."""
    shell = magic.shell
    args = parse(CELL_PARSER, line)
    check_output_name(args.output, shell.user_ns)
    try:
        parsed = parse_cell(cell)
    except CellError as exc:
        raise UsageError(str(exc)) from None
    frame = _frame(shell.user_ns, parsed)
    settings = resolve(magic, {"option": _options(args), "cell": _cell_values(parsed)})
    spec = parsed.spec
    for name in ("n_jobs", "backend", "seed"):   # the settings that are part of the experiment
        chosen = settings[name]
        if chosen.source != "cell" and getattr(spec, name) != chosen.value:
            try:
                spec = spec.replace(**{name: chosen.value})
            except MixcvError as exc:
                raise UsageError(f"{chosen.where}: {exc.message}") from None
    if args.scheduler is not None:
        try:
            spec = spec.replace(scheduler=args.scheduler)
        except MixcvError as exc:
            raise UsageError(f"--scheduler: {exc.message}") from None

    from mixcv_core.experiment.data import plan_experiment
    try:
        plan = plan_experiment(spec, frame)
    except MixcvError as exc:
        raise UsageError(str(parsed.locate(exc))) from None

    from IPython.display import display
    if args.dry_run:
        from mixcv_core.results.report import plan_table, render_plan_html

        from ..dashboard import Rendered
        text = (f"Plan (dry run):\nfeatures: {', '.join(plan.data.feature_names) or 'none'}\n"
                f"{plan_table(spec, plan).to_string(index=False)}\n\n%%mixcv\n{spec_to_cell(spec)}")
        display(Rendered(render_plan_html(spec, plan), text))
        return None

    from mixcv_core.engine import run
    quiet = settings["quiet"].value
    live = not quiet and _kernel_frontend(shell)
    dashboard = None
    observers: list[Any] = []
    if live:
        from ..dashboard import LiveDashboard
        dashboard = LiveDashboard(progress_interval=settings["refresh"].value)
        observers.append(dashboard)
    store = store_folder(settings["store"].value)
    observers.extend(_mirrors(args))
    try:
        with warnings.catch_warnings():
            if dashboard is not None:
                # The report shown under the cell says which fits did not converge (in red, with the
                # fold table's reasons); the run's summary warning would say it again in stderr.
                warnings.filterwarnings("ignore", category=ConvergenceWarning)
            results = run(spec, frame, observers=observers, store=store, save_models=args.save_models,
                          plan=plan)
    except MixcvError as exc:
        raise UsageError(str(parsed.locate(exc))) from None
    shell.user_ns[args.output] = results
    if results.record_error:
        # Loud even with --quiet: the store holds less than the notebook does.
        print(f"\x1b[31mmixcv: the run store did not record all of this run: {results.record_error}\x1b[0m",
              file=sys.stderr)
    if quiet:
        print(f"mixcv: {results.status}; results stored as {args.output!r}")
    elif dashboard is not None:
        dashboard.finish(results)
    else:
        print(repr(results))
        print(f"(results stored as {args.output!r})")
    return None


def _options(args: argparse.Namespace) -> dict[str, Resolved]:
    """The settings the ``%%mixcv`` line gives, each with the option that gave it."""
    given = {"n_jobs": args.n_jobs, "backend": "dask" if args.scheduler else args.backend,
             "store": "off" if args.no_store else args.store, "quiet": args.quiet}
    flags = {"backend": "--scheduler" if args.scheduler else "--backend",
             "store": "--no-store" if args.no_store else "--store"}
    return {name: Resolved(value, "option", flags.get(name) or SETTINGS[name].option or name)
            for name, value in given.items() if value is not None}


def _cell_values(parsed: ParsedCell) -> dict[str, Resolved]:
    """The settings the cell body writes (``n_jobs: 4``), each with its line."""
    return {name: Resolved(getattr(parsed.spec, s.cell_key), "cell", f"line {parsed.lines[s.cell_key]}, {s.cell_key}")
            for name, s in SETTINGS.items() if s.cell_key is not None and s.cell_key in parsed.lines}


def _mirrors(args: Any) -> list[Any]:
    mirrors: list[Any] = []
    try:
        if args.neptune is not None:
            from mixcv_core.tracking.mirrors import NeptuneMirror
            mirrors.append(NeptuneMirror(project=args.neptune, mode=args.neptune_mode))
        if args.mlflow is not None:
            from mixcv_core.tracking.mirrors import MlflowMirror
            mirrors.append(MlflowMirror(tracking_uri=args.mlflow or None))
    except MixcvError as exc:
        raise UsageError(str(exc)) from None
    return mirrors


def _frame(ns: dict[str, Any], parsed: ParsedCell) -> pd.DataFrame:
    name = parsed.frame
    line = parsed.lines.get("data")
    if name not in ns:
        frames = sorted(k for k, v in ns.items() if isinstance(v, pd.DataFrame) and not k.startswith("_"))
        hint = f"; DataFrames in the notebook: {', '.join(frames)}" if frames else ""
        raise UsageError(f"line {line}, data: there is no variable named {name!r}{hint}")
    frame = ns[name]
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(f"line {line}, data: {name!r} is a {type(frame).__name__}, not a pandas DataFrame")
    return frame
