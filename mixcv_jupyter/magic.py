"""The ``%%mixcv`` cell magic and the ``%mixcv`` line magic.

The cell magic only translates: cell text -> `ExperimentSpec` (`mixcv_core.experiment.cell`), the
named DataFrame from the notebook, events -> the live dashboard, results -> the
notebook namespace and the output area. Every problem with the cell is reported as
one short line naming the cell line and key (an IPython ``UsageError``, no traceback).
"""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from mixcv_core import MixcvError, Results
from mixcv_core.experiment.cell import CellError, ParsedCell, parse_cell, spec_to_cell

__all__ = ["MixcvMagics", "DEFAULT_OUTPUT"]

DEFAULT_OUTPUT = "mixcv_results"
USAGE = ("%%mixcv [-o NAME] [--dry-run] [--quiet] [--n-jobs N] [--store DIR | --no-store] [--save-models] "
         "[--neptune PROJECT [--neptune-mode MODE]] [--mlflow [URI]]")


@magic_arguments()
@argument("-o", "--output", default=DEFAULT_OUTPUT,
          help=f"name under which the Results are stored in the notebook (default: {DEFAULT_OUTPUT})")
@argument("--dry-run", action="store_true",
          help="validate everything and show the plan (folds, models, trials) without fitting")
@argument("--quiet", action="store_true", help="no live progress; only store the results and say where")
@argument("--n-jobs", type=int, default=None, help="outer folds in parallel processes (overrides n_jobs)")
@argument("--store", default=None, help="run store folder (default: $MIXCV_STORE or ./.mixcv)")
@argument("--no-store", action="store_true", help="do not record the run in the run store")
@argument("--save-models", action="store_true", help="also store the fitted models")
@argument("--neptune", default=None, metavar="PROJECT",
          help="mirror the run to Neptune (workspace/project; token from $NEPTUNE_API_TOKEN)")
@argument("--neptune-mode", default=None, help="Neptune mode: async (default), offline, debug, sync")
@argument("--mlflow", default=None, nargs="?", const="", metavar="URI",
          help="mirror the run to MLflow (default tracking store: sqlite in the run store folder)")
def _cell_args() -> None:
    """%%mixcv [-o NAME] [--dry-run] [--quiet] [--n-jobs N]"""


def _kernel_frontend(shell: Any) -> bool:
    # Jupyter kernels can update an output area in place; a terminal cannot.
    return getattr(shell, "kernel", None) is not None


@magics_class
class MixcvMagics(Magics):
    """Magics registered by ``%load_ext mixcv_jupyter``."""

    @line_cell_magic
    def mixcv(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._line(line)
        return self._cell(line, cell)

    # -- %%mixcv -----------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> None:
        try:
            args = parse_argstring(_cell_args, line)
        except UsageError as exc:
            raise UsageError(f"{exc}; usage: {USAGE}") from None
        except SystemExit:  # argparse exits on -h and on bad options
            raise UsageError(f"usage: {USAGE}") from None
        if not args.output.isidentifier():
            raise UsageError(f"-o: {args.output!r} is not a valid variable name")
        try:
            parsed = parse_cell(cell)
        except CellError as exc:
            raise UsageError(str(exc)) from None
        frame = self._frame(parsed)
        spec = parsed.spec
        if args.n_jobs is not None:
            try:
                spec = spec.replace(n_jobs=args.n_jobs)
            except MixcvError as exc:
                raise UsageError(f"--n-jobs: {exc.message}") from None

        from mixcv_core.experiment.data import plan_experiment
        try:
            plan = plan_experiment(spec, frame)
        except MixcvError as exc:
            raise UsageError(str(parsed.locate(exc))) from None

        from IPython.display import display
        if args.dry_run:
            from mixcv_core.results.report import plan_table, render_plan_html

            from .dashboard import Rendered
            text = f"Plan (dry run):\n{plan_table(spec, plan).to_string(index=False)}\n\n%%mixcv\n{spec_to_cell(spec)}"
            display(Rendered(render_plan_html(spec, plan), text))
            return None

        from mixcv_core.engine import run
        live = not args.quiet and _kernel_frontend(self.shell)
        dashboard = None
        observers: list[Any] = []
        if live:
            from .dashboard import LiveDashboard
            dashboard = LiveDashboard()
            observers.append(dashboard)
        store = False if args.no_store else args.store
        observers.extend(self._mirrors(args))
        try:
            results = run(spec, frame, observers=observers, store=store, save_models=args.save_models, plan=plan)
        except MixcvError as exc:
            raise UsageError(str(parsed.locate(exc))) from None
        self.shell.user_ns[args.output] = results
        if args.quiet:
            print(f"mixcv: {results.status}; results stored as {args.output!r}")
        elif dashboard is not None:
            dashboard.finish(results)
        else:
            print(repr(results))
            print(f"(results stored as {args.output!r})")
        return None

    @staticmethod
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

    def _frame(self, parsed: ParsedCell) -> pd.DataFrame:
        ns = self.shell.user_ns
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

    # -- %mixcv ------------------------------------------------------------------------
    def _line(self, line: str) -> Any:
        from .dashboard import Rendered
        words = shlex.split(line)
        cmd = words[0] if words else "help"
        if cmd in ("help", "syntax"):
            import mixcv_core.experiment.cell as cellmod
            doc = cellmod.__doc__ or ""
            return Rendered(f"<pre>{_escape(doc)}</pre>", doc)
        if cmd == "models":
            from mixcv_core.experiment.registry import available_models
            names = available_models()
            return Rendered("<div>" + ", ".join(f"<code>{n}</code>" for n in names) + "</div>", "\n".join(names))
        if cmd == "splits":
            from mixcv_core.experiment.splits import describe_methods
            methods = describe_methods()
            return Rendered("<ul>" + "".join(f"<li><code>{k}</code>: {_escape(v)}</li>" for k, v in methods.items())
                            + "</ul>", "\n".join(f"{k}: {v}" for k, v in methods.items()))
        if cmd == "runs":
            from mixcv_core.tracking.store import RunStore, default_store
            store = RunStore(words[1]) if len(words) > 1 else default_store()
            if store is None:
                raise UsageError("the run store is switched off (MIXCV_STORE=off)")
            return store.runs()
        if cmd == "load":
            if len(words) < 2:
                raise UsageError("usage: %mixcv load RUN_ID [-o NAME] [--store DIR]")
            rest = words[2:]
            name, folder = DEFAULT_OUTPUT, None
            while rest:
                opt = rest.pop(0)
                if opt in ("-o", "--output") and rest:
                    name = rest.pop(0)
                elif opt == "--store" and rest:
                    folder = rest.pop(0)
                else:
                    raise UsageError(f"%mixcv load: unexpected {opt!r}; usage: %mixcv load RUN_ID [-o NAME] [--store DIR]")
            if not name.isidentifier():
                raise UsageError(f"-o: {name!r} is not a valid variable name")
            from mixcv_core.tracking.store import RunStore, default_store
            store = RunStore(folder) if folder else default_store()
            if store is None:
                raise UsageError("the run store is switched off (MIXCV_STORE=off); give --store DIR")
            try:
                results = store.load(words[1])
            except MixcvError as exc:
                raise UsageError(str(exc)) from None
            self.shell.user_ns[name] = results
            print(f"run {results.run_id} ({results.status}) loaded as {name!r}")
            return None
        if cmd == "ui":
            if len(words) != 2:
                raise UsageError("usage: %mixcv ui DF_NAME (a DataFrame) or %mixcv ui RESULTS_NAME")
            obj = self.shell.user_ns.get(words[1])
            from .configurator import Configurator
            if isinstance(obj, Results):
                try:
                    return Configurator.from_spec(obj, shell=self.shell)
                except MixcvError as exc:
                    raise UsageError(str(exc)) from None
            if not isinstance(obj, pd.DataFrame):
                raise UsageError(f"{words[1]!r} is not a DataFrame (or mixcv results) in this notebook")
            return Configurator(obj, name=words[1], shell=self.shell)
        if cmd in ("spec", "show"):
            if len(words) != 2:
                raise UsageError(f"usage: %mixcv {cmd} NAME (the name the results are stored under)")
            results = self._results(words[1])
            if cmd == "show":
                return results
            try:
                text = f"%%mixcv -o {words[1]}\n" + spec_to_cell(results.spec)
            except MixcvError as exc:
                raise UsageError(f"{words[1]} cannot be written as a cell: {exc.message}") from None
            print(text, end="")
            return None
        raise UsageError(f"unknown %mixcv command {cmd!r}; use one of: help, models, splits, ui DF, runs, load ID, "
                         "spec NAME, show NAME")

    def _results(self, name: str) -> Results:
        obj = self.shell.user_ns.get(name)
        if not isinstance(obj, Results):
            raise UsageError(f"{name!r} is not mixcv results in this notebook")
        return obj


def _escape(text: str) -> str:
    import html
    return html.escape(text)


MixcvMagics.mixcv.__doc__ = f"""Run a mixcv experiment described in the cell, or inspect mixcv.

Cell magic::

    %%mixcv [-o NAME] [--dry-run] [--quiet] [--n-jobs N]
    data: df
    target: y
    groups: subject
    models: [LinearMixedEffectsModel, RandomForestRegressor]

Options:
  -o NAME      store the Results as NAME (default: {DEFAULT_OUTPUT})
  --dry-run    validate and show the plan without fitting
  --quiet      no live progress
  --n-jobs N   outer folds in parallel processes
  --store DIR / --no-store / --save-models   where the run is recorded (default ./.mixcv)
  --neptune PROJECT [--neptune-mode offline]  mirror to Neptune (token: $NEPTUNE_API_TOKEN)
  --mlflow [URI]                              mirror to MLflow (default: sqlite in the run store)

Line magic:
  %mixcv help         the cell syntax
  %mixcv models       model names that can be used
  %mixcv splits       split methods
  %mixcv ui DF        a form that builds (and runs) an experiment on DataFrame DF
  %mixcv runs         the runs in the run store (./.mixcv or $MIXCV_STORE)
  %mixcv load ID -o NAME   restore a stored run's results as NAME
  %mixcv spec NAME    the cell that reproduces stored results
  %mixcv show NAME    render stored results again
"""
