"""The form: its panels composed, kept consistent with each other, checked as a whole, and run.

Each panel (`_data`, `_splits`, `_models`, `_tuning`, `_run`, `_tracking`) holds its controls and
keeps its own choices consistent; this module does what spans panels — the target's task
choosing the metrics and model cards, groups switching the splits — checks the whole form after
every edit, and runs it. Reading the form into a spec and back is `_spec`'s; the magic's
settings it opens with are `_settings`'.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import pandas as pd

from mixcv_core import MixcvError, Results
from mixcv_core.experiment.cell import spec_to_cell
from mixcv_core.experiment.spec import ExperimentSpec

from ..settings import store_folder
from ._controls import ERROR_STYLE, message_slot, section, show_message
from ._data import DataPanel
from ._labels import label, slot_for
from ._models import ModelCard, ModelsPanel
from ._run import RunPanel
from ._settings import read_settings
from ._spec import check_showable, data_spec, model_spec, show_spec, to_spec
from ._splits import SplitsPanel
from ._tracking import TrackingPanel
from ._tuning import TuningPanel

__all__ = ["Configurator"]


class Configurator:
    """An ipywidgets form for a mixcv experiment on ``df``.

    The form's parts are panels: ``data``, ``splits``, ``models``, ``tuning``, ``run_options``
    and ``tracking``. Their controls are also reached on the form by name (``form.target``,
    ``form.outer_k``, ``form.msg_random``). The seed, n_jobs, backend and run store start at the
    magic's settings (``%config MixcvMagic``, ``MIXCV_*``, ``[tool.mixcv]``), read when the form
    opens (``form.settings``); a bad one is shown in the form, with Run disabled.

    Parameters
    ----------
    df : pandas.DataFrame
    name : str, optional
        The DataFrame's variable name (used in the ``%%mixcv`` cell); looked up in the
        notebook namespace when not given.
    output : str, default="mixcv_results"
        Where **Run** stores the results.
    shell : IPython shell, optional
        The namespace to store results in (the running IPython by default).
    """

    def __init__(self, df: pd.DataFrame, name: str | None = None, output: str = "mixcv_results",
                 shell: Any = None) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Configurator needs a pandas DataFrame, got {type(df).__name__}")
        if shell is None:
            try:
                from IPython import get_ipython
                shell = get_ipython()
            except ImportError:  # pragma: no cover - ipython is a dependency of mixcv_jupyter
                shell = None
        self.df, self.shell = df, shell
        self.frame_name = name or self._find_name(df) or "df"
        self.results: Results | None = None
        self.errors: dict[str, str] = {}
        self._plan: Any = None
        self._building = True
        # Every panel's edits check the whole form again (`_validate`; not while it is being built).
        self.data = DataPanel(df, self._validate)
        self.splits = SplitsPanel(self._validate)
        self.models = ModelsPanel(self._validate)
        self.tuning = TuningPanel(self._validate)
        self.run_options = RunPanel(self._validate)
        self.tracking = TrackingPanel(self._validate)
        self._panels: tuple[Any, ...] = (self.data, self.splits, self.models, self.tuning, self.run_options,
                                         self.tracking)
        # Actions
        self.output_name = w.Text(value=output, description="store as", layout=w.Layout(width="260px"))
        self.msg_output = message_slot()
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop",
                                    tooltip="stop the run at the next trial, EM iteration or fold; finished folds "
                                            "are kept", layout=w.Layout(display="none"))
        self._stop_requested = False
        self._thread: Any = None
        self.cell_button = w.Button(description="Show cell", icon="code")
        self.status = w.HTML()
        self.cell_view = w.Textarea(layout=w.Layout(width="100%", height="220px", display="none"))
        self.result = w.HTML()   # the live view while a run goes
        self.result_box = w.VBox([self.result], layout=w.Layout(width="100%"))   # then the explorer
        self.explorer: Any = None
        #: Every message slot, by name: each panel's, and the output name's.
        self.messages: dict[str, w.HTML] = {slot: getattr(panel, f"msg_{slot}") for panel in self._panels
                                            for slot in getattr(panel, "SLOTS", ())}
        self.messages["output"] = self.msg_output
        self.run_button.add_class("mixcv-run")
        self.stop_button.add_class("mixcv-stop")
        self.cell_button.add_class("mixcv-show-cell")
        self.widget = self._layout()
        self.widget.add_class("mixcv-configurator")
        self.output_name.observe(lambda _: self._validate(), "value")
        # What spans panels, observed after each control's own check (the order of observers matters:
        # the last check sees every consequence).
        self.models.add_model_button.on_click(lambda _: self._add_model())
        self.data.target.observe(self._roles_changed, "value")
        self.data.target.observe(self._task_changed, "value")
        self.data.task.observe(self._task_changed, "value")
        self.data.positive_class.observe(self._task_changed, "value")
        self.data.groups.observe(self._roles_changed, "value")
        self.data.more_groups.observe(self._factors_changed, "value")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.cell_button.on_click(lambda _: self.show_cell())
        # The magic's settings as defaults, read once as the form opens: a choice made in the form
        # then wins for its runs.
        self.settings = read_settings(shell)
        self._show_settings()
        self._sync_task()
        self._building = False
        self._validate()

    def __getattr__(self, name: str) -> Any:
        # Called only for a name the form itself lacks: a panel's control keeps the name it had when
        # the form was one class (form.target, form.outer_k, form.msg_random, form.cards), which
        # notebooks and tests use. Private names stay private to their panel.
        if not name.startswith("_"):
            for panel in self.__dict__.get("_panels", ()):
                if name in vars(panel):
                    return vars(panel)[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _layout(self) -> w.VBox:
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        actions = w.VBox([w.HBox([self.output_name, self.msg_output, self.run_button, self.stop_button,
                                  self.cell_button], layout=wrap), self.status, self.cell_view, self.result_box])
        return w.VBox([section("Data", self.data.rows()), section("Splits", self.splits.rows()),
                       section("Models", self.models.rows()),
                       section("Tuning and MERF", self.tuning.rows() + self.run_options.rows()),
                       section("Tracking", self.tracking.rows()), actions],
                      layout=w.Layout(max_width="1000px"))

    def _show_settings(self) -> None:
        """Start the controls of the magic's settings at their values (`_settings`)."""
        run, settings = self.run_options, self.settings
        run.seed.value, run.n_jobs.value = settings.value("seed"), settings.value("n_jobs")
        run.backend.value = settings.value("backend")
        run.settings_note.value = settings.note()
        store = settings.chosen.get("store")
        if store is not None and store.source != "default":   # else empty: the engine's default folder
            folder = store_folder(store.value)
            if folder is False:
                self.tracking.no_store.value = True
            else:
                self.tracking.store_dir.value = str(folder)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)

    # -- what spans panels -------------------------------------------------------------------
    def effective_task(self) -> str:
        """The task a run from the form would have: the one chosen, else the one the target calls
        for; regression with no target."""
        return self.data.effective_task()

    def _task_changed(self, change: Any) -> None:
        if self._building:
            return
        self._sync_task()
        self._validate()

    def _sync_task(self) -> None:
        """Fit the task's controls to the target and the task chosen: the positive class (two
        classes), the metrics and tuning metrics of the task."""
        task = self.effective_task()
        self.data.offer_positive_class(task)
        self.tuning.offer_metrics(task)

    def _show_task(self) -> None:
        """Say what "auto" inferred, and show the ready-made cards of the task."""
        task = self.effective_task()
        self.data.show_task_note(task)
        self.models.show_task(task)

    def _roles_changed(self, change: dict) -> None:
        if self._building:
            return
        self.data.sync_roles()
        if change["owner"] is self.data.groups:
            new = change["new"]
            self.splits.follow_groups(change["old"], new, lambda: int(self.df[new].nunique()))
        self.data.prefill_random()   # a factor gone (it became the target) leaves the text the form wrote

    def _factors_changed(self, change: Any) -> None:
        if self._building:
            return
        self.data.sync_roles()
        self.data.prefill_random()
        self._validate()

    def _find_name(self, df: pd.DataFrame) -> str | None:
        ns = getattr(self.shell, "user_ns", {}) or {}
        return next((k for k, v in ns.items() if v is df and not k.startswith("_")), None)

    def _add_model(self, name: str | None = None, estimator: str | None = None) -> ModelCard:
        name = (name or self.models.add_model_name.value).strip()
        if not name:
            self.status.value = "<span style='color:#b00020'>add model: type a model name first</span>"
            return None  # type: ignore[return-value]
        card = self.models.card(name) or self.models.add(name, estimator or name, enabled=True)
        card.enabled.value = True
        self.models.add_model_name.value = ""
        self._validate()
        return card

    # -- form <-> spec -----------------------------------------------------------------------
    def to_spec(self) -> ExperimentSpec:
        """The experiment the form describes (raises the first problem as a `MixcvError`)."""
        return to_spec(self)

    @classmethod
    def from_spec(cls, spec: ExperimentSpec | Results, df: pd.DataFrame | None = None, shell: Any = None,
                  output: str = "mixcv_results") -> Configurator:
        """A form showing ``spec`` (or the spec of ``Results``) on ``df``.

        ``df`` defaults to the DataFrame the spec names, from the notebook namespace.
        """
        if isinstance(spec, Results):
            spec = spec.spec
        if df is None:
            if shell is None:
                from IPython import get_ipython
                shell = get_ipython()
            df = (getattr(shell, "user_ns", {}) or {}).get(spec.data.frame)
            if not isinstance(df, pd.DataFrame):
                raise MixcvError("data.frame", f"no DataFrame named {spec.data.frame!r} in the notebook; pass df=")
        form = cls(df, name=spec.data.frame or None, output=output, shell=shell)
        form.set_spec(spec)
        return form

    def set_spec(self, spec: ExperimentSpec) -> None:
        """Fill every control from ``spec``."""
        check_showable(spec)
        self._building = True
        try:
            show_spec(self, spec)
        finally:
            self._building = False
        self._validate()

    # -- validation ----------------------------------------------------------------------------
    def _validate(self) -> bool:
        """Check the whole form; show each problem next to its control; enable Run if valid."""
        if self._building:
            return False
        self.data.show_factors()
        self._show_task()
        self.errors = {}
        for slot in self.messages.values():
            show_message(slot, "")
        self.data.features_used.value = ""
        for card in self.models.cards:
            show_message(card.message, "")
            if card.enabled.value:
                try:
                    model_spec(card)
                except MixcvError as exc:
                    text = f"{label(exc.field)}: {exc.message}"
                    self.errors[f"models:{card.label}"] = text
                    show_message(card.message, text)
        self.data.features.disabled = self.data.all_features.value
        self._check_data()
        if not self.errors:
            try:
                spec = self.to_spec()
            except MixcvError as exc:
                self._error(slot_for(exc.field, self.messages), exc.message, exc.field)
            else:
                self._check_against_data(spec)
        if not self.output_name.value.isidentifier():
            self._error("output", "not a valid variable name")
        self.tracking.check(self._error)
        if self.settings.error:   # a setting's bad value, said as the magic says it (its source first)
            self._say(self.settings.slot or "settings", self.settings.error)
        if not any(c.enabled.value for c in self.models.cards):
            self.errors["models"] = "models: tick at least one model"
        ok = not self.errors
        self.run_button.disabled = not ok
        self.status.value = ("" if ok else "<span style='color:#b00020'>" +
                             html.escape(" · ".join(sorted(set(self.errors.values())))[:400]) + "</span>")
        return ok

    def _error(self, key: str, message: str, field: str | None = None) -> None:
        """Show ``message`` in the slot ``key``, led by the control's name (``field``'s, or the slot's)."""
        name = label(field or key)
        # Some messages name their field already ("random part: unexpected character ..."): once is enough.
        self._say(key, message if message.startswith(f"{name}: ") else f"{name}: {message}")

    def _say(self, key: str, text: str) -> None:
        """Record ``text`` as the problem ``key`` and show it in the slot of that name, if any."""
        self.errors[key] = text
        if key in self.messages:
            show_message(self.messages[key], text)

    def _check_data(self) -> None:
        self.data.check(self._error)
        # The random part and the split's factors are checked as they are typed, whatever else
        # is still wrong, by the spec's own rules (an lme4 term it cannot read, a factor that is
        # not among the grouping columns), next to their fields.
        try:
            data_spec(self.data, self.frame_name)
        except MixcvError as exc:
            if exc.field in ("data.random", "data.split_by"):
                self._error(slot_for(exc.field, self.messages), exc.message, exc.field)

    def _check_against_data(self, spec: ExperimentSpec) -> None:
        # The engine's own check, splits included: the form refuses exactly what a run
        # would refuse (too few groups for the outer or an inner split, NaNs, dtypes).
        from mixcv_core.experiment.data import plan_experiment
        self._plan = None
        try:
            self._plan = plan_experiment(spec, self.df)  # reused by Run: the splits are made once
        except MixcvError as exc:
            self._error(slot_for(exc.field, self.messages), exc.message, exc.field)
        else:
            self._show_features(self._plan)

    def _show_features(self, plan: Any) -> None:
        """The features a run would use, by name ("all other columns" included), and a warning for a
        row number among them: not an error, the run may go ahead."""
        from mixcv_core.results.checks import row_id_checks
        from mixcv_core.results.report import features_html
        warnings = "".join(f"<div style='{ERROR_STYLE}'>⚠ {html.escape(c.message)}</div>"
                           for c in row_id_checks(plan.data))
        self.data.features_used.value = (f"<div class='mixcv-features-used'>"
                                         f"{features_html(plan.data.feature_names, plan.data.slope_names)}</div>"
                                         f"{warnings}")

    # -- actions -------------------------------------------------------------------------------
    def cell_text(self) -> str:
        """The ``%%mixcv`` cell that reproduces the form."""
        return f"%%mixcv -o {self.output_name.value}\n" + spec_to_cell(self.to_spec())

    def show_cell(self) -> None:
        try:
            self.cell_view.value = self.cell_text()
        except MixcvError as exc:
            self.cell_view.value = f"# the form is not complete yet: {exc}"
        self.cell_view.layout.display = None

    def start(self) -> None:
        """Run in a background thread (what the Run button does), so the kernel stays free to
        hear the Stop button; `run` is the same, in the foreground.

        The thread's output (warnings, a fit's prints) goes where this call's goes: under the
        cell that called it, or with the Run click's (`mixcv_jupyter.threads`), under
        ipykernel 6.29 and 7 alike."""
        from ..threads import start_thread
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_requested = False
        self.stop_button.disabled, self.stop_button.layout.display = False, None   # at once, before the thread
        self._thread = start_thread(self._run_reporting_errors, "mixcv-form-run", shell=self.shell)

    def _run_reporting_errors(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - a thread's error would be lost: show it in the form
            self.status.value = (f"<span style='color:#b00020'>the run failed: "
                                 f"{html.escape(f'{type(exc).__name__}: {exc}')}</span>")

    def stop(self) -> None:
        """Stop a running experiment as Ctrl-C does: the finished folds are kept in the results.

        Works for a run started with the Run button (`start`), which leaves the kernel free
        to receive the click."""
        self._stop_requested = True
        self.stop_button.disabled = True
        self.status.value = "stopping at the next trial, EM iteration or fold…"

    def run(self) -> Results | None:
        """Run the experiment in place, with live progress; store and show the results."""
        if not self._validate():
            return None
        from mixcv_core.engine import run

        from ..dashboard import LiveDashboard
        spec = self.to_spec()
        if self._thread is None or not self._thread.is_alive():
            self._stop_requested = False   # a foreground run; start() reset it already
        self.run_button.disabled = True
        self.stop_button.disabled, self.stop_button.layout.display = False, None
        self.status.value = "running…"
        self.result_box.children = [self.result]
        dashboard = LiveDashboard(display=lambda obj: _HTMLHandle(self.result, obj),
                                  progress_interval=self.settings.value("refresh"))
        try:
            observers: list[Any] = [dashboard, *self.tracking.mirrors()]
            results = run(spec, self.df, observers=observers, store=self.tracking.store(),
                          save_models=self.tracking.save_models.value, plan=self._plan,
                          stop=lambda: self._stop_requested)
        except MixcvError as exc:
            said = html.escape(f"{label(exc.field)}: {exc.message}")
            self.status.value = f"<span style='color:#b00020'>{said}</span>"
            return None
        finally:
            self.run_button.disabled = False
            self.stop_button.layout.display = "none"
        self.results = results
        name = self.output_name.value
        kept = ""
        if self.shell is not None:
            earlier = self.shell.user_ns.get(name)
            if (results.status == "interrupted" and isinstance(earlier, Results)
                    and earlier.status == "finished"):
                # A stopped run never replaces a finished one: it gets a name of its own.
                kept = (f"; <code>{html.escape(name)}</code> still holds the finished run "
                        f"({sum(o.ok for o in earlier.outcomes)} fits)")
                name = f"{name}_stopped"
            self.shell.user_ns[name] = results
        # The run in the explorer's tabs (its Summary tab is the report), where the live view was.
        from ..explorer import Explorer
        self.explorer = Explorer(results)
        self.result_box.children = [self.explorer.widget]
        done = sum(o.ok for o in results.outcomes)
        how = (f"<b>stopped</b>: {done} finished fit(s) kept" if results.status == "interrupted" else results.status)
        self.status.value = f"{how}; results stored as <code>{html.escape(name)}</code>{kept}"
        return results


class _HTMLHandle:
    """A display handle that writes into an HTML widget (live updates inside a widget)."""

    def __init__(self, target: w.HTML, obj: Any) -> None:
        self.target = target
        self.update(obj)

    def update(self, obj: Any) -> None:
        self.target.value = obj._repr_html_()
