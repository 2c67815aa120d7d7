"""The ``%%mixcv`` cell magic and the ``%mixcv`` line magic.

The cell magic only translates: cell text -> `ExperimentSpec` (`mixcv_core.experiment.cell`),
the named DataFrame from the notebook, events -> the live dashboard, results -> the
notebook namespace and the output area. Every problem with the cell is reported in
one short line naming the cell line and key, all of them at once (an IPython ``UsageError``, no traceback).
Options and subcommands are defined once, in `mixcv_jupyter.commands`; the magic's
docstring (``%%mixcv?``) is derived from them.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from mixcv_core import ConvergenceWarning, MixcvError
from mixcv_core.experiment.cell import CellError, ParsedCell, parse_cell, spec_to_cell

from .commands import CELL_PARSER, COMMANDS, DEFAULT_OUTPUT, check_output_name, help_text, parse

__all__ = ["MixcvMagics", "DEFAULT_OUTPUT"]


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
        args = parse(CELL_PARSER, line)
        check_output_name(args.output, self.shell.user_ns)
        try:
            parsed = parse_cell(cell)
        except CellError as exc:
            raise UsageError(str(exc)) from None
        frame = self._frame(parsed)
        spec = parsed.spec
        overrides = {"n_jobs": args.n_jobs, "backend": "dask" if args.scheduler else args.backend,
                     "scheduler": args.scheduler}
        for name, value in overrides.items():
            if value is None:
                continue
            try:
                spec = spec.replace(**{name: value})
            except MixcvError as exc:
                raise UsageError(f"--{name.replace('_', '-')}: {exc.message}") from None

        from mixcv_core.experiment.data import plan_experiment
        try:
            plan = plan_experiment(spec, frame)
        except MixcvError as exc:
            raise UsageError(str(parsed.locate(exc))) from None

        from IPython.display import display
        if args.dry_run:
            from mixcv_core.results.report import plan_table, render_plan_html

            from .dashboard import Rendered
            text = (f"Plan (dry run):\nfeatures: {', '.join(plan.data.feature_names) or 'none'}\n"
                    f"{plan_table(spec, plan).to_string(index=False)}\n\n%%mixcv\n{spec_to_cell(spec)}")
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
            with warnings.catch_warnings():
                if dashboard is not None:
                    # The report shown under the cell says which fits did not converge (in red, with the
                    # fold table's reasons); the run's summary warning would say it again in stderr.
                    warnings.filterwarnings("ignore", category=ConvergenceWarning)
                results = run(spec, frame, observers=observers, store=store, save_models=args.save_models,
                              plan=plan)
        except MixcvError as exc:
            raise UsageError(str(parsed.locate(exc))) from None
        self.shell.user_ns[args.output] = results
        if results.record_error:
            # Loud even with --quiet: the store holds less than the notebook does.
            print(f"\x1b[31mmixcv: the run store did not record all of this run: {results.record_error}\x1b[0m",
                  file=sys.stderr)
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
        word, _, rest = line.strip().partition(" ")
        command = COMMANDS.get(word or "help")
        if command is None:
            raise UsageError(f"unknown %mixcv command {word!r}; use one of: {', '.join(COMMANDS)} "
                             "(%mixcv help explains each)")
        return command.run(self, parse(command.parser, rest))


MixcvMagics.mixcv.__doc__ = help_text()
