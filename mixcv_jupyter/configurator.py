"""A form that builds an experiment from a DataFrame: `Configurator(df)` or ``%mixcv ui df``.

The form is a view of an `ExperimentSpec`: `Configurator.to_spec` reads the controls
into a spec, `Configurator.from_spec` fills them from one, and everything is checked
as the user edits, with each message next to its control and **Run** disabled until
the form is valid. **Show cell** shows the ``%%mixcv`` text that reproduces the form,
so the form teaches the cell syntax; parameter values are written in that syntax too
(``int(2, 20)``, ``float(1e-4, 1, log)``, ``choice(a, b)`` or a fixed value).

Several grouping factors (subjects x items, classes in schools) are ``groups`` plus more
factors as tags; a second factor writes lme4's random part it implies into its field for the
user to edit, and the split's factors say which of them the test folds hold new levels of.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets
from optuna.distributions import BaseDistribution

from mixcv_core import MixcvError, Results
from mixcv_core.constraints import ON_ERROR, RULES, Integer
from mixcv_core.experiment.cell import cell_key, param_text, parse_param, spec_to_cell
from mixcv_core.experiment.registry import (
    available_models,
    estimator_name,
    import_dotted,
    param_names,
    resolve_estimator,
)
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.experiment.splits import SPLIT_METHODS
from mixcv_core.experiment.target import TASKS, infer_task, target_labels
from mixcv_core.metrics import METRIC_INFO, METRICS, TASK_DEFAULT_METRICS, TUNING_DEFAULT, metric_label

__all__ = ["Configurator", "COMMON_MODELS", "CLASSIFIER_MODELS"]

# Shown as ready-made cards; any other registered model can be added by name.
# Regression's cards; a classification shows CLASSIFIER_MODELS instead.
COMMON_MODELS: dict[str, dict[str, str]] = {
    "LinearModel": {},
    "LinearMixedEffectsModel": {},
    "RandomForestRegressor": {"n_estimators": "100", "max_depth": "int(2, 20)", "min_samples_leaf": "int(1, 20)"},
    "HistGradientBoostingRegressor": {"learning_rate": "float(0.01, 0.3, log)", "max_depth": "int(2, 10)"},
    "GPBoostRegressor": {"learning_rate": "float(0.01, 0.3, log)", "num_boost_round": "int(20, 300)"},
    "Ridge": {"alpha": "float(0.001, 100.0, log)"},
    "Lasso": {"alpha": "float(0.0001, 10.0, log)"},
}
#: The cards a classification shows (a binary target, or task: classification): each predicts
#: class probabilities, which every classification metric reads.
CLASSIFIER_MODELS: dict[str, dict[str, str]] = {
    "LogisticRegression": {"C": "float(0.001, 100.0, log)"},
    "GeneralizedLinearMixedModel": {},
    "RandomForestClassifier": {"n_estimators": "100", "max_depth": "int(2, 20)", "min_samples_leaf": "int(1, 20)"},
    "HistGradientBoostingClassifier": {"learning_rate": "float(0.01, 0.3, log)", "max_depth": "int(2, 10)"},
    "GPBoostClassifier": {"learning_rate": "float(0.01, 0.3, log)", "num_boost_round": "int(20, 300)"},
}
#: A target of text labels is offered as a target when it has at most this many: more are an
#: identifier or free text, not classes.
_MAX_TEXT_CLASSES = 20
#: A row split and its group variant: what choosing (or clearing) groups switches between.
_GROUP_VARIANT = {"KFold": "GroupKFold", "StratifiedKFold": "StratifiedGroupKFold"}
_POST = ["", "LinearModelPostProcessor", "LMERModelPostProcessor", "RandomForestModelPostProcessor"]
_ERROR_STYLE = "color:#b00020;font-size:12px"


def _bounded(rule: str, value: int, description: str, width: str, **style: Any) -> w.IntText:
    """An integer control checked against the spec's own rule (`mixcv_core.constraints`).

    Not a ``BoundedIntText``: that one silently clamps (a 1 typed into folds became 2).
    The value is kept as typed and an out-of-range one is reported next to the control,
    in the rule's words, with Run disabled. The rule's bounds are in the tooltip.
    """
    r = RULES[rule]
    assert isinstance(r, Integer)
    tip = style.pop("tooltip", "")
    tip = (tip + "; " if tip else "") + r.describe()
    return w.IntText(value=value, description=description, layout=w.Layout(width=width), tooltip=tip, **style)


def _msg(text: str = "") -> w.HTML:
    return w.HTML(value=text, layout=w.Layout(margin="0 0 0 8px"))


#: A spec field (or a message slot) -> the words the form shows on its control, so every
#: message says which control it is about, also in the status line far below it.
_LABELS: dict[str, str] = {
    "data.target": "target", "target": "target", "data.groups": "groups", "groups": "groups",
    "data.slopes": "random slopes", "slopes": "random slopes", "data.features": "features", "features": "features",
    "data.random": "random part", "random": "random part", "data.split_by": "split by", "split_by": "split by",
    "data.frame": "data", "data.dataset_name": "name",
    "outer.method": "outer split", "outer": "outer split", "outer.n_splits": "outer folds",
    "inner.method": "inner split", "inner": "inner split", "inner.n_splits": "inner folds",
    "outer.n_repeats": "repeats", "repeats": "repeats", "outer.known_holdout": "known holdout",
    "known_holdout": "known holdout", "tuning.n_trials": "trials", "trials": "trials",
    "tuning.batch": "trial batch", "trial_batch": "trial batch",
    "tuning.objective_scorer": "objective", "objective": "objective", "metrics": "metrics",
    "merf.max_iterations": "EM iterations", "merf.stopping_threshold": "stop early below",
    "merf.stopping_window": "for iterations", "merf.em_estimators": "EM trees", "merf": "MERF",
    "seed": "seed", "n_jobs": "n_jobs", "timeout": "timeout (s)", "backend": "run on", "scheduler": "scheduler",
    "output": "store as", "tracking": "Neptune project", "models": "models",
    "task": "task", "positive_class": "positive class", "tuning.metric": "tune for", "tuning": "tune for",
}


def _label(field: str) -> str:
    """The form's name for a spec field: ``outer.n_splits`` -> ``outer folds``,
    ``models['RF'].params['max_depth']`` -> ``model RF, max_depth``."""
    if field in _LABELS:
        return _LABELS[field]
    key = cell_key(field)
    if key.startswith("models."):
        _, model, *rest = key.split(".")
        what = ".".join(rest).replace("fit", "fit args") if rest == ["fit"] else ".".join(rest)
        return f"model {model}" + (f", {what}" if what else "")
    return _LABELS.get(key, key)


def _set_msg(widget: w.HTML, text: str) -> None:
    widget.value = f"<span style='{_ERROR_STYLE}'>{html.escape(text)}</span>" if text else ""


class _CheckList(w.VBox):
    """Columns as a list of checkboxes, one per column: ``value`` is the ticked ones, in ``options`` order.

    Not a ``SelectMultiple``: there a plain click on one column unselects every other, so
    dropping one feature (a row number) from twenty took a ctrl-click a newcomer does not
    know. Each box keeps its own tick: changing ``options`` (another target or groups)
    keeps the ticks of the columns still offered, so a feature unticked stays unticked.
    """

    value = traitlets.Tuple()
    options = traitlets.Tuple()
    disabled = traitlets.Bool(False)

    def __init__(self, options: list[str], value: tuple[str, ...], css: str) -> None:
        super().__init__(layout=w.Layout(max_height="160px", overflow="auto", width="360px",
                                         border="1px solid var(--jp-border-color2, #ddd)", padding="2px 4px"))
        self._css = css
        self._boxes: dict[str, w.Checkbox] = {}
        self._syncing = False
        self.observe(lambda _: self._rebuild(), "options")
        self.observe(lambda _: self._show_value(), "value")
        self.observe(lambda _: self._show_disabled(), "disabled")
        self.options = tuple(options)
        self.value = tuple(value)

    def _rebuild(self) -> None:
        ticked = set(self.value)
        boxes = {}
        for name in self.options:
            box = self._boxes.get(name)
            if box is None:
                box = w.Checkbox(value=name in ticked, description=name, indent=False,
                                 layout=w.Layout(width="auto", margin="0"), disabled=self.disabled)
                box.add_class(f"{self._css}-{_css(name)}")
                box.observe(lambda _: self._ticked(), "value")
            boxes[name] = box
        self._boxes = boxes
        self.children = list(boxes.values())
        self._ticked()   # a column no longer offered is no longer a value

    def _ticked(self) -> None:
        if not self._syncing:
            self.value = tuple(n for n, b in self._boxes.items() if b.value)

    def _show_value(self) -> None:
        wanted = set(self.value)
        self._syncing = True
        try:
            for name, box in self._boxes.items():
                box.value = name in wanted
        finally:
            self._syncing = False
        shown = tuple(n for n, b in self._boxes.items() if b.value)
        if shown != self.value:   # a value naming a column not offered: keep only what is shown
            self.value = shown

    def _show_disabled(self) -> None:
        for box in self._boxes.values():
            box.disabled = self.disabled


class _ParamRow:
    """One hyperparameter: its name and its value in cell syntax (a range is tuned)."""

    def __init__(self, names: list[str], name: str = "", value: str = "", on_change: Callable[[], None] = None,
                 on_remove: Callable[[_ParamRow], None] = None) -> None:
        self.name = w.Combobox(value=name, options=names, placeholder="parameter", ensure_option=False,
                               layout=w.Layout(width="180px"))
        self.value = w.Text(value=value, placeholder="100, int(2, 20), float(1e-3, 1, log), choice(a, b)",
                            layout=w.Layout(width="300px"))
        self.remove = w.Button(icon="times", tooltip="remove this parameter", layout=w.Layout(width="32px"))
        self.message = _msg()
        self.box = w.HBox([self.name, self.value, self.remove, self.message])
        for c in (self.name, self.value):
            c.observe(lambda _: on_change(), "value")
        self.remove.on_click(lambda _: on_remove(self))


class _ModelCard:
    """A model: enabled, its estimator, MERF, post-processor, tuning and parameters."""

    def __init__(self, name: str, estimator: str, params: dict[str, str], form: Configurator,
                 enabled: bool = False, task: str | None = None) -> None:
        self.form = form
        # The task whose ready-made card this is (None: a model the user added, shown for any).
        self.task = task
        self.enabled = w.Checkbox(value=enabled, description=name, indent=False,
                                  layout=w.Layout(width="280px"))
        self.enabled.add_class("mixcv-model-enable")
        self.enabled.add_class(f"mixcv-model-{_css(name)}")
        self.label = name
        self.estimator = w.Text(value=estimator, description="estimator", layout=w.Layout(width="360px"))
        self.merf = w.Checkbox(value=False, description="MERF", indent=False, layout=w.Layout(width="80px"))
        self.tune = w.Checkbox(value=True, description="tune ranges", indent=False, layout=w.Layout(width="120px"),
                               tooltip="tune the parameters given as ranges in the inner loop")
        self.post = w.Dropdown(options=_POST, value="", description="insight", layout=w.Layout(width="330px"))
        self.fit = w.Text(value="", description="fit args", placeholder="{sample_weight_col: w}",
                          layout=w.Layout(width="360px"))
        self.add = w.Button(description="parameter", icon="plus", layout=w.Layout(width="120px"))
        self.rows: list[_ParamRow] = []
        # requires_inner_cv for a model without ranges means nothing; kept only so a spec
        # that says so survives spec -> form -> spec.
        self.tune_without_ranges = False
        self.rows_box = w.VBox([])
        self.message = _msg()
        self.details = w.VBox([w.HBox([self.estimator, self.merf, self.tune]), w.HBox([self.post, self.fit]),
                               self.rows_box, self.add], layout=w.Layout(margin="0 0 0 24px"))
        self.box = w.VBox([w.HBox([self.enabled, self.message]), self.details],
                          layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))
        self.add.on_click(lambda _: self.add_param())
        for c in (self.enabled, self.estimator, self.merf, self.tune, self.post, self.fit):
            c.observe(lambda _: self.changed(), "value")
        for k, v in params.items():
            self.add_param(k, v, notify=False)
        self._show_details()

    def _names(self) -> list[str]:
        try:
            return sorted(param_names(resolve_estimator(self.estimator.value)) or [])
        except MixcvError:
            return []

    def add_param(self, name: str = "", value: str = "", notify: bool = True) -> _ParamRow:
        row = _ParamRow(self._names(), name, value, on_change=self.changed, on_remove=self.remove_param)
        self.rows.append(row)
        self.rows_box.children = [r.box for r in self.rows]
        if notify:
            self.changed()
        return row

    def remove_param(self, row: _ParamRow) -> None:
        self.rows.remove(row)
        self.rows_box.children = [r.box for r in self.rows]
        self.changed()

    def _show_details(self) -> None:
        self.details.layout.display = None if self.enabled.value else "none"

    def changed(self) -> None:
        self._show_details()
        self.form._validate()

    def spec(self) -> ModelSpec:
        """This card as a `ModelSpec`; errors name the offending control."""
        params, fixed = {}, {}
        for row in self.rows:
            _set_msg(row.message, "")
        for row in self.rows:
            name = row.name.value.strip()
            if not name:
                _set_msg(row.message, "parameter: name the parameter")
                raise MixcvError(f"models[{self.label!r}]", "a parameter has no name")
            try:
                value = parse_param(row.value.value, name)
            except MixcvError as exc:
                _set_msg(row.message, f"{name}: {exc.message}")
                raise MixcvError(f"models[{self.label!r}].params[{name!r}]", exc.message) from None
            if name in params or name in fixed:
                _set_msg(row.message, f"{name}: given twice")
                raise MixcvError(f"models[{self.label!r}].params", f"{name!r} is given twice")
            if isinstance(value, BaseDistribution):   # a range: tuned in the inner loop
                params[name] = value
            else:
                fixed[name] = value
        fit = parse_param(self.fit.value) if self.fit.value.strip() else {}
        if not isinstance(fit, dict):
            raise MixcvError(f"models[{self.label!r}].fit_kwargs", "must be written as {name: value}")
        tune = self.tune.value if params else self.tune_without_ranges
        return ModelSpec(name=self.label, estimator=self.estimator.value.strip(), params=params,
                         model_kwargs=fixed, requires_inner_cv=tune, fit_kwargs=fit,
                         add_merf=self.merf.value, post_processor=self.post.value or None)


def _offer(tags: w.TagsInput, allowed: list[str]) -> None:
    """Let ``tags`` hold only ``allowed`` names, dropping any it holds that are not (a TagsInput
    refuses a new tag that is not allowed but keeps an old one)."""
    keep = [t for t in tags.value if t in allowed]
    with tags.hold_sync():   # one message: a view never sees the value and the allowed tags disagree
        if keep != list(tags.value):
            tags.value = keep
        if list(tags.allowed_tags) != allowed:
            tags.allowed_tags = allowed


def _css(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)


class Configurator:
    """An ipywidgets form for a mixcv experiment on ``df``.

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
        self._facts: dict[str, tuple[str, list[Any]]] = {}   # target column -> (its task, its labels)
        self.frame_name = name or self._find_name(df) or "df"
        self.results: Results | None = None
        self.errors: dict[str, str] = {}
        self._plan = None
        self._building = True
        cols = [str(c) for c in df.columns]
        numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) or
                   pd.api.types.is_bool_dtype(df[c])]
        self.numeric, self.columns = numeric, cols
        lw = w.Layout(width="360px")

        # Data
        self.dataset_name = w.Text(description="name", placeholder="a label for reports", layout=lw)
        # A target is a number, or a column of a few text labels (a classification: "Y"/"N").
        targets = [str(c) for c in df.columns if str(c) in numeric or
                   2 <= df[c].nunique() <= _MAX_TEXT_CLASSES]
        self.target = w.Dropdown(options=targets, value=None, description="target", layout=lw)
        # The task: "auto" is the spec's None (inferred from the target, and said next to it).
        self.task = w.Dropdown(options=[("task: auto", "auto")] + [(f"task: {t}", t) for t in TASKS],
                               value="auto", layout=w.Layout(width="200px"),
                               tooltip="auto: a target of two values or of text labels is a classification, "
                                       "any other a regression")
        self.task_note = w.HTML("")
        self.positive_class = w.Dropdown(options=[("positive class: auto", None)], value=None,
                                         layout=w.Layout(width="260px", display="none"),
                                         tooltip="the class whose probability is predicted (two classes); "
                                                 "auto: the larger label")
        self.groups = w.Dropdown(options=[("(none)", None)] + [(c, c) for c in cols], value=None,
                                 description="groups", layout=lw)
        wide = {"description_width": "110px"}   # "random slopes" must not be clipped
        self.target.style, self.groups.style, self.dataset_name.style = wide, wide, wide
        # Several grouping factors (subjects x items, pupils in schools): the first is `groups`
        # above, the others are tags here, in the order typed (the order of the spec's groups).
        self.more_groups = w.TagsInput(value=[], allowed_tags=cols, allow_duplicates=False,
                                       placeholder="more grouping factors (crossed or nested)",
                                       layout=w.Layout(width="360px"),
                                       tooltip="other grouping columns: items next to subjects, schools above "
                                               "classes; each gets a random intercept unless the random part says "
                                               "otherwise")
        self.slopes = w.SelectMultiple(options=numeric, value=(), description="random slopes", rows=4,
                                       layout=lw, style=wide)
        # lme4's random part. Empty: the shorthand (one factor: intercept + the slopes above;
        # several: an intercept per factor). Filled in from the factors when a second one is
        # chosen, so the user edits a correct formula rather than writing one from nothing.
        self.random = w.Text(value="", description="random part", layout=w.Layout(width="520px"), style=wide,
                             placeholder="(1 + days | subject) + (1 | item)",
                             tooltip="random-effect terms in lme4's syntax: (1 + slope | factor), (1 | a/b) for "
                                     "b nested in a, (x || factor) for uncorrelated effects")
        self._auto_random = ""      # the text the form wrote there last (replaced while the user has not edited it)
        self._auto_slopes: tuple[str, ...] = ()   # the slopes it moved into that text, given back if undone
        self.split_by = w.TagsInput(value=[], allowed_tags=[], allow_duplicates=False,
                                    placeholder="empty: the first factor", layout=w.Layout(width="520px"),
                                    tooltip="the grouping factor(s) whose levels the outer test folds "
                                            "hold new; several: test rows new in each of them")
        # "All other columns" only works when every other column is numeric; otherwise
        # start from the numeric ones, which is what the user would pick by hand.
        all_numeric = len(numeric) == len(cols)
        self.all_features = w.Checkbox(value=all_numeric, description="features: all other columns", indent=False)
        self.all_features.add_class("mixcv-all-features")
        self.features = _CheckList(numeric, tuple(numeric), "mixcv-feature")
        # Splits
        methods = list(SPLIT_METHODS)
        self.outer = w.Dropdown(options=methods, value="KFold", description="outer", layout=w.Layout(width="280px"))
        self.outer_k = _bounded("outer.n_splits", 5, "folds", "150px")
        self.inner = w.Dropdown(options=methods, value="KFold", description="inner", layout=w.Layout(width="280px"))
        self.inner_k = _bounded("inner.n_splits", 5, "folds", "150px")
        self.scale_outer = w.Checkbox(value=True, description="scale outer", indent=False,
                                      layout=w.Layout(width="110px"))
        self.scale_inner = w.Checkbox(value=True, description="scale inner", indent=False,
                                      layout=w.Layout(width="110px"))
        self.predict_known = w.Checkbox(value=True, description="mixed models use random effects of known groups",
                                        indent=False, layout=w.Layout(width="auto"))
        self.split_note = w.HTML()
        self.repeats = _bounded("outer.n_repeats", 1, "repeats", "150px",
                                tooltip="repeat the outer split, reshuffled each time (repeated group K-fold)")
        self.known_holdout = w.FloatText(   # not bounded: out of range is reported, never clamped
            value=0.0, step=0.05, description="known holdout", layout=w.Layout(width="220px"),
            style={"description_width": "initial"},
            tooltip="share of each training group's rows held out and scored as known groups (0: none); "
                    + RULES["outer.known_holdout"].describe())
        # Models
        self.cards: list[_ModelCard] = [_ModelCard(n, n, dict(p), self, task=task)
                                        for task, models in (("regression", COMMON_MODELS),
                                                             ("classification", CLASSIFIER_MODELS))
                                        for n, p in models.items()]
        self.cards_box = w.VBox([c.box for c in self.cards])
        self.add_model_name = w.Combobox(options=available_models(), placeholder="any model: name or dotted path",
                                         ensure_option=False, layout=w.Layout(width="330px"))
        self.add_model_button = w.Button(description="add model", icon="plus")
        # Tuning
        self.trials = _bounded("tuning.n_trials", 20, "trials", "180px")
        # Trials asked at once (TuningSpec.batch): part of the spec, so a seed fixes the trials
        # for any n_jobs; 1 is one trial at a time.
        self.trial_batch = _bounded("tuning.batch", 1, "trial batch", "180px",
                                    tooltip="trials asked at once and evaluated side by side on idle cores")
        self.objective = w.Text(description="objective", placeholder="or a scorer of your own (dotted path)",
                                layout=lw)
        # Tuning's metric (TuningSpec.metric) and the metrics reported: the task's own, as
        # METRIC_INFO says (a binary target is never offered r2); filled by `_sync_task`.
        self.tuning_metric = w.Dropdown(options=[("tune for: default", "")], value="", layout=w.Layout(width="260px"),
                                        tooltip="the validation metric tuning optimises, in its own direction")
        self.metrics = w.SelectMultiple(options=list(TASK_DEFAULT_METRICS["regression"]),
                                        value=TASK_DEFAULT_METRICS["regression"], description="metrics",
                                        rows=6, layout=w.Layout(width="260px"))
        self._metrics_task = "regression"   # the task the metric choices are for
        self.merf_all = w.Checkbox(value=False, description="MERF for every model", indent=False)
        self.merf_iter = _bounded("merf.max_iterations", 100, "EM iterations", "200px",
                                  style={"description_width": "initial"})
        self.merf_threshold = w.Text(value="", description="stop early below",
                                     placeholder="empty: stop when converged",
                                     layout=w.Layout(width="300px"), style={"description_width": "initial"},
                                     tooltip="an early stop: relative change of the GLL below which the EM "
                                             "ends, converged or not")
        self.merf_window = w.Text(value="2", description="for iterations", placeholder="1",
                                  layout=w.Layout(width="200px"), style={"description_width": "initial"})
        self.merf_linear = w.Checkbox(value=True, description="linear fixed part (zero-mean random effects)",
                                      indent=False, layout=w.Layout(width="auto"),
                                      tooltip="off: merf 1.0's algorithm")
        self.merf_em_estimators = w.Text(value="50", description="EM trees", placeholder="all",
                                         layout=w.Layout(width="180px"),
                                         tooltip="trees of a forest during EM; the full forest is fitted at the end")
        self.seed = _bounded("seed", 42, "seed", "180px")
        self.n_jobs = _bounded("n_jobs", 1, "n_jobs", "180px")
        labels = {"keep": "on error: keep going", "raise": "on error: stop (raise)"}
        self.on_error = w.Dropdown(options=[(labels.get(v, v), v) for v in ON_ERROR], value="keep",
                                   layout=w.Layout(width="220px"),
                                   tooltip="a fit that raises: record it and go on, or stop the run with its error")
        self.timeout = w.Text(value="", description="timeout (s)", placeholder="no limit",
                              layout=w.Layout(width="200px"),
                              tooltip="seconds one model may take on one outer fold; then it is stopped, "
                                      "the fold recorded as timed out")
        self.backend = w.Dropdown(options=[("run on: this machine", "local"), ("run on: Dask cluster", "dask")],
                                  value="local", layout=w.Layout(width="220px"),
                                  tooltip="this machine (n_jobs worker processes) or a Dask cluster: a local one "
                                          "with n_jobs workers, or the scheduler below (pip install 'mixcv[dask]')")
        self.scheduler = w.Text(value="", description="scheduler", placeholder="empty: a local cluster",
                                layout=w.Layout(width="330px", display="none"),
                                tooltip="a running Dask scheduler's address, e.g. tcp://10.0.0.5:8786")
        self.break_cv = w.Checkbox(value=False, description="first fold only (debug)", indent=False,
                                   layout=w.Layout(width="190px"),
                                   tooltip="fit the first outer fold only: a debugging run, not an estimate")
        # Tracking
        self.store_dir = w.Text(description="run store", placeholder="default: $MIXCV_STORE or ./.mixcv",
                                layout=lw)
        self.no_store = w.Checkbox(value=False, description="do not record", indent=False,
                                   layout=w.Layout(width="130px"))
        self.save_models = w.Checkbox(value=False, description="save fitted models", indent=False,
                                      layout=w.Layout(width="160px"))
        self.neptune_on = w.Checkbox(value=False, description="mirror to Neptune", indent=False,
                                     layout=w.Layout(width="160px"))
        self.neptune_project = w.Text(description="project", placeholder="workspace/project (or $NEPTUNE_PROJECT)",
                                      layout=w.Layout(width="330px"))
        self.neptune_mode = w.Dropdown(options=["async", "offline", "debug", "sync"], value="async",
                                       description="mode", layout=w.Layout(width="200px"))
        self.mlflow_on = w.Checkbox(value=False, description="mirror to MLflow", indent=False,
                                    layout=w.Layout(width="160px"))
        self.mlflow_uri = w.Text(description="tracking", placeholder="default: sqlite in the run store",
                                 layout=w.Layout(width="330px"))
        self.neptune_on.add_class("mixcv-neptune")
        # Actions
        self.output_name = w.Text(value=output, description="store as", layout=w.Layout(width="260px"))
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
        for name in self._MESSAGES:
            setattr(self, f"msg_{name}", _msg())
        self.features_used = w.HTML("")   # the features a valid form would use, shown under the choice
        for c in (self.target, self.groups, self.more_groups, self.slopes, self.random, self.split_by, self.features,
                  self.outer, self.inner, self.task, self.positive_class, self.tuning_metric, self.metrics):
            c.add_class(f"mixcv-{[k for k, v in vars(self).items() if v is c][0].replace('_', '-')}")
        self.outer_k.add_class("mixcv-outer-k")
        self.inner_k.add_class("mixcv-inner-k")
        self.run_button.add_class("mixcv-run")
        self.stop_button.add_class("mixcv-stop")
        self.cell_button.add_class("mixcv-show-cell")
        self.widget = self._layout()
        self.widget.add_class("mixcv-configurator")
        for c in (self.dataset_name, self.target, self.groups, self.more_groups, self.slopes, self.random,
                  self.split_by, self.all_features, self.features,
                  self.outer, self.outer_k, self.inner, self.inner_k, self.scale_outer, self.scale_inner,
                  self.repeats, self.known_holdout, self.break_cv, self.predict_known, self.trials, self.trial_batch,
                  self.objective, self.metrics, self.positive_class, self.tuning_metric, self.merf_all, self.merf_iter,
                  self.merf_threshold, self.merf_window, self.merf_linear, self.merf_em_estimators, self.seed,
                  self.n_jobs, self.on_error, self.timeout, self.backend, self.scheduler, self.output_name,
                  self.store_dir, self.no_store, self.neptune_on, self.neptune_project, self.neptune_mode,
                  self.mlflow_on, self.mlflow_uri):
            c.observe(lambda _: self._validate(), "value")
        self.add_model_button.on_click(lambda _: self._add_model())
        self.target.observe(self._roles_changed, "value")
        self.target.observe(self._task_changed, "value")
        self.task.observe(self._task_changed, "value")
        self.positive_class.observe(self._task_changed, "value")
        self.groups.observe(self._roles_changed, "value")
        self.more_groups.observe(self._factors_changed, "value")
        self.backend.observe(self._backend_changed, "value")
        self.all_features.observe(self._all_features_changed, "value")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.cell_button.on_click(lambda _: self.show_cell())
        self._sync_task()
        self._building = False
        self._validate()

    # -- layout --------------------------------------------------------------------------
    def _section(self, title: str, rows: list[w.Widget]) -> w.VBox:
        return w.VBox([w.HTML(f"<h4 style='margin:8px 0 4px 0'>{title}</h4>")] + rows,
                      layout=w.Layout(border_bottom="1px solid #eee", padding="0 0 6px 0"))

    def _layout(self) -> w.VBox:
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        # Rows shown or hidden by the factors chosen: each its own Layout (``wrap`` is shared, and
        # hiding it would hide every row that uses it).
        def own() -> w.Layout:
            return w.Layout(flex_flow="row wrap", align_items="center")
        # A TagsInput shows no description: the words go in front of it, aligned like the others'.
        split_words = w.HTML("<div style='width:102px;text-align:right;padding-right:8px'>new levels of</div>")
        self.slopes_row = w.HBox([self.slopes, self.msg_slopes], layout=own())
        self.random_row = w.HBox([self.random, self.msg_random], layout=own())
        self.split_by_row = w.HBox([split_words, self.split_by, self.msg_split_by], layout=own())
        data = self._section("Data", [
            w.HBox([self.target, self.msg_target], layout=wrap),
            w.HBox([self.task, self.positive_class, self.task_note, self.msg_task, self.msg_positive_class],
                   layout=wrap),
            w.HBox([self.groups, self.more_groups, self.msg_groups], layout=wrap),
            self.slopes_row,
            self.random_row,
            self.split_by_row,
            w.HBox([self.all_features, self.features, self.msg_features], layout=wrap),
            self.features_used,
            self.dataset_name])
        splits = self._section("Splits", [
            w.HBox([self.outer, self.outer_k, self.scale_outer, self.msg_outer], layout=wrap),
            w.HBox([self.inner, self.inner_k, self.scale_inner, self.msg_inner], layout=wrap),
            w.HBox([self.repeats, self.msg_repeats, self.known_holdout, self.msg_known_holdout], layout=wrap),
            self.split_note, self.predict_known])
        models = self._section("Models", [self.cards_box, w.HBox([self.add_model_name, self.add_model_button])])
        tuning = self._section("Tuning and MERF", [
            w.HBox([self.trials, self.msg_trials, self.trial_batch, self.msg_trial_batch, self.tuning_metric,
                    self.msg_tuning, self.objective, self.msg_objective], layout=wrap),
            w.HBox([self.metrics, self.msg_metrics], layout=wrap),
            w.HBox([self.merf_all, self.merf_iter, self.merf_threshold, self.merf_window, self.merf_linear,
                    self.merf_em_estimators, self.msg_merf],
                   layout=wrap),
            w.HBox([self.seed, self.msg_seed, self.n_jobs, self.msg_n_jobs, self.on_error, self.timeout,
                    self.msg_timeout, self.break_cv], layout=wrap),
            w.HBox([self.backend, self.scheduler, self.msg_backend, self.msg_scheduler], layout=wrap)])
        tracking = self._section("Tracking", [
            w.HBox([self.store_dir, self.no_store, self.save_models], layout=wrap),
            w.HBox([self.neptune_on, self.neptune_project, self.neptune_mode], layout=wrap),
            w.HBox([self.mlflow_on, self.mlflow_uri], layout=wrap), self.msg_tracking])
        actions = w.VBox([w.HBox([self.output_name, self.msg_output, self.run_button, self.stop_button,
                                  self.cell_button], layout=wrap), self.status, self.cell_view, self.result_box])
        return w.VBox([data, splits, models, tuning, tracking, actions], layout=w.Layout(max_width="1000px"))

    # -- the task --------------------------------------------------------------------------
    def _target_facts(self) -> tuple[str, list[Any]] | None:
        """The task the target calls for (`mixcv_core.experiment.target.infer_task`, as the engine
        infers it) and its sorted labels; None with no target. Kept per column: the form asks on
        every edit, and the labels of a large frame take a pass over it."""
        name = self.target.value
        if name is None:
            return None
        if name not in self._facts:
            column = next(c for c in self.df.columns if str(c) == name)   # a column named 3 is offered as "3"
            values = self.df[column]
            if isinstance(values, pd.DataFrame):   # duplicate names: the plan refuses them, naming the frame
                return None
            self._facts[name] = (infer_task(values), target_labels(values))
        return self._facts[name]

    def effective_task(self) -> str:
        """The task a run from the form would have: the one chosen, else the one the target calls
        for; regression with no target."""
        if self.task.value != "auto":
            return str(self.task.value)
        facts = self._target_facts()
        return "regression" if facts is None else facts[0]

    def _task_changed(self, change: Any) -> None:
        if self._building:
            return
        self._sync_task()
        self._validate()

    def _sync_task(self) -> None:
        """Fit the task's controls to the target and the task chosen: what "auto" inferred, the positive
        class (two classes), the metrics and tuning metrics of the task, the model cards of the task."""
        task, facts = self.effective_task(), self._target_facts()
        labels = [] if facts is None or task != "classification" else facts[1]
        # The positive class: offered for two classes, "auto" being the larger label (as the engine picks).
        if len(labels) == 2:
            options = [(f"positive class: auto ({labels[-1]})", None)] + [(f"positive class: {v}", v) for v in labels]
            self._set_options(self.positive_class, options)
            self.positive_class.layout.display = None
        else:
            self._set_options(self.positive_class, [("positive class: auto", None)])
            self.positive_class.layout.display = "none"
        self._offer_metrics(task)

    def _show_task(self) -> None:
        """Say what "auto" inferred, and show the ready-made cards of the task (those of the other
        task hidden unless ticked: a ticked one says on its card why it cannot run)."""
        task, facts = self.effective_task(), self._target_facts()
        note = ""
        if self.task.value == "auto" and facts is not None:
            labels = facts[1]
            n = len(labels)
            why = f"{n} values" if n == 2 or task == "regression" else f"text labels, {n} classes"
            if n == 2 and task == "classification":
                positive = labels[-1] if self.positive_class.value is None else self.positive_class.value
                why += f"; positive class {positive}"
            note = f"{task} (inferred: {why})"
        self.task_note.value = (f"<span class='mixcv-task-note' style='font-size:12px'>{html.escape(note)}</span>"
                                if note else "")
        for card in self.cards:
            other = card.task is not None and card.task != task and not card.enabled.value
            card.box.layout.display = "none" if other else None

    @staticmethod
    def _set_options(control: w.Dropdown, options: list[tuple[str, Any]]) -> None:
        """New options for a dropdown, keeping its value when it is still offered (else the first)."""
        if list(control.options) == options:
            return
        value = control.value
        values = [v for _, v in options]
        # Options and the chosen index in one message: a view rendered between two messages
        # would hold an index of the old options (a selection widget syncs its index).
        with control.hold_sync():
            control.options = options
            control.value = value if any(type(v) is type(value) and v == value for v in values) else values[0]

    def _offer_metrics(self, task: str, keep: tuple[str, ...] = ()) -> None:
        """Offer the task's metrics (its defaults first) and tuning metrics; ``keep`` names metrics a
        reopened spec holds, offered whatever their task (the spec's own check then speaks)."""
        own = [n for n in TASK_DEFAULT_METRICS[task]] + [n for n, i in METRIC_INFO.items()
                                                           if i.task == task and n not in TASK_DEFAULT_METRICS[task]]
        options = own + [n for n in keep if n not in own]
        chosen = tuple(n for n in (keep or self.metrics.value) if n in options)
        if task != self._metrics_task and not keep:
            # Another task: its defaults, unless some chosen metrics are the new task's too.
            chosen = chosen or TASK_DEFAULT_METRICS[task]
        with self.metrics.hold_sync():
            if list(self.metrics.options) != options:
                self.metrics.value = ()
                self.metrics.options = options
            self.metrics.value = chosen
        self._metrics_task = task
        default = TUNING_DEFAULT[task]
        tuning = [(f"tune for: default ({metric_label(default)}, "
                   f"{'max' if METRIC_INFO[default].greater_is_better else 'min'})", "")]
        tuning += [(f"tune for: {metric_label(n)} ({'max' if METRIC_INFO[n].greater_is_better else 'min'})", n)
                   for n in own]
        self._set_options(self.tuning_metric, tuning)

    def _backend_changed(self, change: Any) -> None:
        # The scheduler address means something only for a Dask cluster.
        self.scheduler.layout.display = "" if change["new"] == "dask" else "none"

    def _factors(self) -> tuple[str, ...]:
        """The grouping factors the form names: ``groups``, then the more factors, in their order."""
        return () if self.groups.value is None else (self.groups.value, *self.more_groups.value)

    def _sync_roles(self) -> None:
        """Offer as slopes and features only the columns that are neither target nor a grouping factor;
        as more factors, the columns other than the target and groups; as split factors, the factors."""
        if self.groups.value is None and self.more_groups.value:
            self.more_groups.value = []   # more factors need a first one
        others = [c for c in self.columns if c not in (self.target.value, self.groups.value)]
        # A TagsInput keeps a tag no longer allowed (it only refuses new ones): drop it first.
        _offer(self.more_groups, others)
        taken = {self.target.value, *self._factors()}
        for control in (self.slopes, self.features):
            keep = tuple(c for c in control.value if c not in taken)
            options = [c for c in self.numeric if c not in taken]
            with control.hold_sync():
                if list(control.options) != options:
                    control.options = options
                control.value = keep
        if self.all_features.value:   # "all other columns": every column offered is ticked, shown so
            self.features.value = self.features.options
        _offer(self.split_by, list(self._factors()))

    def _implied_random(self, slopes: tuple[str, ...]) -> str:
        """The random part the factors mean by default: the slopes on the first, an intercept on each."""
        from mixcv_core.models.mixed.terms import format_name
        first, *rest = self._factors()
        effects = " + ".join(["1", *(format_name(s) for s in slopes)])
        return " + ".join([f"({effects} | {format_name(first)})", *(f"(1 | {format_name(g)})" for g in rest)])

    def _prefill_random(self) -> None:
        """A second factor chosen: write the random part it implies (with the slopes chosen so far,
        on the first factor) for the user to edit. Back to one factor: the text the form wrote
        goes and its slopes come back. Text the user wrote is never replaced."""
        current = self.random.value.strip()
        if current and current != self._auto_random:
            return
        if len(self._factors()) > 1:
            slopes = tuple(self.slopes.value) or self._auto_slopes
            text = self._implied_random(slopes)
            self._auto_slopes = slopes
            self.slopes.value = ()   # the slopes are in the text now (the spec takes them in one place)
            self._auto_random = self.random.value = text
        elif current:
            self._auto_random = self.random.value = ""
            self.slopes.value = tuple(c for c in self._auto_slopes if c in self.slopes.options)
            self._auto_slopes = ()

    def _show_factors(self) -> None:
        """Show what the factors chosen make meaningful: more factors once there is one; the random
        part with any; the split's factors with several; the slopes unless the random part holds them."""
        several = len(self._factors()) > 1
        self.more_groups.layout.display = None if self.groups.value is not None else "none"
        self.slopes_row.layout.display = "none" if several and not self.slopes.value else None
        self.random_row.layout.display = None if self._factors() or self.random.value else "none"
        self.split_by_row.layout.display = None if several or self.split_by.value else "none"
        if self._factors():
            self.random.placeholder = "empty: " + self._implied_random(tuple(self.slopes.value))
            self.split_by.placeholder = f"empty: new {self._factors()[0]} levels"

    def _factors_changed(self, change: Any) -> None:
        if self._building:
            return
        self._sync_roles()
        self._prefill_random()
        self._validate()

    def _all_features_changed(self, change: Any) -> None:
        # Ticked: every column, as the run will use them. Unticked: the same ticks, now editable,
        # so dropping one column (a row number) is one click.
        if change["new"]:
            self.features.value = self.features.options

    def _roles_changed(self, change: dict) -> None:
        if self._building:
            return
        self._sync_roles()
        if change["owner"] is self.groups:
            self._switch_splits(change["old"], change["new"])
        self._prefill_random()   # a factor gone (it became the target) leaves the text the form wrote

    def _fit_folds_to_groups(self) -> str:
        """Fewer folds when the groups cannot fill them: outer at most one per group, inner at
        most the groups left in the smallest outer training part. Returns what it changed."""
        import math
        n = int(self.df[self.groups.value].nunique())
        changed = []
        if self.outer.value in _GROUP_VARIANT.values() and self.outer_k.value > n:
            self.outer_k.value = max(2, n)
            changed.append(f"outer folds to {self.outer_k.value}")
        left = n - math.ceil(n / max(self.outer_k.value, 1))
        if self.inner.value in _GROUP_VARIANT.values() and self.inner_k.value > left:
            self.inner_k.value = max(2, left)
            changed.append(f"inner folds to {self.inner_k.value}")
        return f" ({', '.join(changed)}, to fit {n} groups)" if changed else ""

    def _switch_splits(self, old: str | None, new: str | None) -> None:
        """Choosing groups switches row splits to their group variants (and back): the one
        setting that decides whether the estimate is for new groups or known ones."""
        if (old is None) == (new is None):
            return
        table = _GROUP_VARIANT if new is not None else {v: k for k, v in _GROUP_VARIANT.items()}
        switched = []
        for control in (self.outer, self.inner):
            if control.value in table:
                control.value = table[control.value]
                switched.append(control.value)
        fewer = self._fit_folds_to_groups() if new is not None else ""
        if not switched:
            self.split_note.value = ""
        elif new is not None:
            self.split_note.value = (
                f"<span class='mixcv-split-note' style='font-size:12px'>Splits switched to "
                f"{html.escape(' / '.join(dict.fromkeys(switched)))}: each test fold now holds groups the models have "
                f"not seen, which estimates performance for <b>new groups</b>{fewer}. Choose KFold again to "
                "estimate known groups instead.</span>")
        else:
            self.split_note.value = ("<span class='mixcv-split-note' style='font-size:12px'>Without groups, the "
                                     "splits went back to row-wise folds.</span>")

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)

    # -- form <-> spec ---------------------------------------------------------------------
    def _find_name(self, df: pd.DataFrame) -> str | None:
        ns = getattr(self.shell, "user_ns", {}) or {}
        return next((k for k, v in ns.items() if v is df and not k.startswith("_")), None)

    def _card(self, name: str) -> _ModelCard | None:
        return next((c for c in self.cards if c.label == name), None)

    def _add_model(self, name: str | None = None, estimator: str | None = None) -> _ModelCard:
        name = (name or self.add_model_name.value).strip()
        if not name:
            self.status.value = "<span style='color:#b00020'>add model: type a model name first</span>"
            return None  # type: ignore[return-value]
        card = self._card(name)
        if card is None:
            card = _ModelCard(name, estimator or name, {}, self, enabled=True)
            self.cards.append(card)
            self.cards_box.children = [c.box for c in self.cards]
        card.enabled.value = True
        self.add_model_name.value = ""
        self._validate()
        return card

    def _data_spec(self) -> DataSpec:
        """The data part of the form (raises the first problem as a `MixcvError`)."""
        factors = self._factors()
        features = None if self.all_features.value else tuple(self.features.value)
        return DataSpec(target=self.target.value, groups=factors[0] if len(factors) == 1 else (factors or None),
                        slopes=tuple(self.slopes.value), features=features, frame=self.frame_name,
                        dataset_name=self.dataset_name.value, random=self.random.value.strip() or None,
                        split_by=tuple(self.split_by.value))

    def to_spec(self) -> ExperimentSpec:
        """The experiment the form describes (raises the first problem as a `MixcvError`)."""
        models = [c.spec() for c in self.cards if c.enabled.value]
        data = self._data_spec()
        objective = None
        if self.objective.value.strip():
            objective = import_dotted(self.objective.value.strip(), "tuning.objective_scorer")
        threshold = parse_param(self.merf_threshold.value) if self.merf_threshold.value.strip() else None
        window = parse_param(self.merf_window.value) if self.merf_window.value.strip() else None
        em_estimators = (parse_param(self.merf_em_estimators.value) if self.merf_em_estimators.value.strip()
                         else None)
        timeout = parse_param(self.timeout.value, "timeout") if self.timeout.value.strip() else None
        scheduler = (self.scheduler.value.strip() or None) if self.backend.value == "dask" else None
        return ExperimentSpec(
            data=data, models=tuple(models),
            outer=SplitSpec(self.outer.value, self.outer_k.value, self.scale_outer.value, self.repeats.value,
                            self.known_holdout.value, _field="outer"),
            inner=SplitSpec(self.inner.value, self.inner_k.value, self.scale_inner.value, _field="inner"),
            tuning=TuningSpec(self.trials.value, objective, self.tuning_metric.value or None,
                              batch=self.trial_batch.value),
            merf=MerfSpec(self.merf_all.value, self.merf_iter.value, threshold, window, self.merf_linear.value,
                          em_estimators),
            metrics=list(self.metrics.value) or [],
            predict_known_groups_lmm=self.predict_known.value, seed=self.seed.value, n_jobs=self.n_jobs.value,
            on_error=self.on_error.value, timeout=timeout, break_cross_val=self.break_cv.value,
            backend=self.backend.value, scheduler=scheduler,
            task=None if self.task.value == "auto" else self.task.value, positive_class=self.positive_class.value)

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
        for name in spec.metrics:
            if METRICS.get(name) is not spec.metrics[name]:
                raise MixcvError("metrics", f"custom metric {name!r} cannot be shown in the form")
        self._building = True
        try:
            d = spec.data
            self.dataset_name.value = d.dataset_name
            self.target.value = d.target
            self.task.value = spec.task or "auto"
            self._sync_task()
            pc = spec.positive_class
            with self.positive_class.hold_sync():
                if pc is not None and not any(type(v) is type(pc) and v == pc for _, v in self.positive_class.options):
                    # A label written as text ("1" of a 0/1 target): kept as written; the spec reads it.
                    self.positive_class.options = [*self.positive_class.options, (f"positive class: {pc}", pc)]
                self.positive_class.value = pc
            factors = d.group_columns
            self.groups.value = factors[0] if factors else None
            self.more_groups.value, self.split_by.value = [], []
            self.slopes.value, self.features.value = (), ()
            self._sync_roles()   # offers the columns other than target and groups as more factors
            self.more_groups.value = list(factors[1:])
            self._sync_roles()   # ...and the factors, now all known, as split factors
            self.split_by.value = list(d.split_by)
            self.random.value = d.random or ""
            self._auto_random, self._auto_slopes = "", ()
            self.split_note.value = ""
            self.slopes.value = tuple(d.slopes)
            self.all_features.value = d.features is None
            self.features.value = tuple(self.features.options if d.features is None else d.features)
            self.outer.value, self.outer_k.value, self.scale_outer.value = (spec.outer.method, spec.outer.n_splits,
                                                                            spec.outer.scale)
            self.inner.value, self.inner_k.value, self.scale_inner.value = (spec.inner.method, spec.inner.n_splits,
                                                                            spec.inner.scale)
            self.repeats.value, self.known_holdout.value = spec.outer.n_repeats, spec.outer.known_holdout
            self.break_cv.value = spec.break_cross_val
            self.predict_known.value = spec.predict_known_groups_lmm
            self.trials.value = spec.tuning.n_trials
            self.trial_batch.value = spec.tuning.batch
            obj = spec.tuning.objective_scorer
            self.objective.value = "" if obj is None else f"{obj.__module__}.{obj.__qualname__}"
            self._offer_metrics(self.effective_task(), keep=tuple(spec.metrics))
            metric = spec.tuning.metric or ""
            with self.tuning_metric.hold_sync():
                if metric not in [v for _, v in self.tuning_metric.options]:
                    self.tuning_metric.options = [*self.tuning_metric.options, (f"tune for: {metric}", metric)]
                self.tuning_metric.value = metric
            m = spec.merf
            self.merf_all.value, self.merf_iter.value = m.add_merf_global, m.max_iterations
            self.merf_threshold.value = "" if m.stopping_threshold is None else repr(m.stopping_threshold)
            self.merf_window.value = "" if m.stopping_window is None else str(m.stopping_window)
            self.merf_linear.value = m.linear_fixed_effects
            self.merf_em_estimators.value = "" if m.em_estimators is None else str(m.em_estimators)
            self.seed.value, self.n_jobs.value = spec.seed, spec.n_jobs
            self.on_error.value = spec.on_error
            self.timeout.value = "" if spec.timeout is None else f"{spec.timeout:g}"
            self.backend.value, self.scheduler.value = spec.backend, spec.scheduler or ""
            for card in self.cards:
                card.enabled.value = False
            order = []
            for model in spec.models:
                est_name = estimator_name(model.estimator)  # type: ignore[arg-type]
                card = self._card(model.name)
                if card is None:
                    card = _ModelCard(model.name, est_name, {}, self)
                    self.cards.append(card)
                card.estimator.value = est_name
                card.enabled.value = True
                card.merf.value = model.add_merf
                card.tune.value = model.requires_inner_cv if model.params else True
                card.tune_without_ranges = model.requires_inner_cv and not model.params
                pp = model.post_processor
                card.post.value = pp.__name__ if pp is not None and pp.__name__ in _POST else ""
                if pp is not None and pp.__name__ not in _POST:
                    raise MixcvError(f"models[{model.name!r}].post_processor",
                                     "a custom post-processor cannot be shown in the form")
                card.fit.value = param_text(dict(model.fit_kwargs)) if model.fit_kwargs else ""
                card.rows = []
                for k, v in model.model_kwargs.items():
                    card.add_param(k, param_text(v), notify=False)
                for k, dist in model.params.items():
                    card.add_param(k, param_text(dist), notify=False)
                card.rows_box.children = [r.box for r in card.rows]
                card._show_details()
                order.append(card)
            # Enabled models first, in the spec's order (the order of result rows).
            self.cards = order + [c for c in self.cards if c not in order]
            self.cards_box.children = [c.box for c in self.cards]
        finally:
            self._building = False
        self._validate()

    # -- validation ------------------------------------------------------------------------
    _MESSAGES = ("target", "task", "positive_class", "groups", "slopes", "random", "split_by", "features", "outer",
                 "inner", "repeats", "known_holdout", "trials", "trial_batch", "metrics", "merf", "seed", "n_jobs",
                 "timeout", "backend", "scheduler", "objective", "tuning", "output", "tracking")

    def _msg_for(self, field: str) -> str:
        # The spec's field path -> the cell key (one table, in mixcv_core's cell module)
        # -> the message next to the control of the same name.
        key = cell_key(field).split(".")[0]
        if key in self._MESSAGES:
            return key
        return "target" if key == "data" else "models"

    def _validate(self) -> bool:
        """Check the whole form; show each problem next to its control; enable Run if valid."""
        if self._building:
            return False
        self._show_factors()
        self._show_task()
        self.errors = {}
        for name in self._MESSAGES:
            _set_msg(getattr(self, f"msg_{name}"), "")
        self.features_used.value = ""
        for card in self.cards:
            _set_msg(card.message, "")
            if card.enabled.value:
                try:
                    card.spec()
                except MixcvError as exc:
                    text = f"{_label(exc.field)}: {exc.message}"
                    self.errors[f"models:{card.label}"] = text
                    _set_msg(card.message, text)
        self.features.disabled = self.all_features.value
        self._check_data()
        if not self.errors:
            try:
                spec = self.to_spec()
            except MixcvError as exc:
                self._error(self._msg_for(exc.field), exc.message, exc.field)
            else:
                self._check_against_data(spec)
        if not self.output_name.value.isidentifier():
            self._error("output", "not a valid variable name")
        import os
        self.neptune_project.disabled = self.neptune_mode.disabled = not self.neptune_on.value
        self.mlflow_uri.disabled = not self.mlflow_on.value
        self.store_dir.disabled = self.save_models.disabled = self.no_store.value
        if (self.neptune_on.value and self.neptune_mode.value in ("async", "sync")
                and not self.neptune_project.value.strip() and not os.environ.get("NEPTUNE_PROJECT")):
            self._error("tracking", "Neptune needs a project (workspace/project), or use offline mode")
        if not any(c.enabled.value for c in self.cards):
            self.errors["models"] = "models: tick at least one model"
        ok = not self.errors
        self.run_button.disabled = not ok
        self.status.value = ("" if ok else "<span style='color:#b00020'>" +
                             html.escape(" · ".join(sorted(set(self.errors.values())))[:400]) + "</span>")
        return ok

    def _error(self, key: str, message: str, field: str | None = None) -> None:
        """Show ``message`` in the slot ``key``, led by the control's name (``field``'s, or the slot's)."""
        label = _label(field or key)
        # Some messages name their field already ("random part: unexpected character ..."): once is enough.
        text = message if message.startswith(f"{label}: ") else f"{label}: {message}"
        self.errors[key] = text
        if hasattr(self, f"msg_{key}"):
            _set_msg(getattr(self, f"msg_{key}"), text)

    def _check_data(self) -> None:
        target, groups = self.target.value, self.groups.value
        if target is None:
            self._error("target", "choose the column to predict")
        feats = set(self.features.value) if not self.all_features.value else set()
        if target is not None and target in feats:
            self._error("target", f"{target!r} is also ticked as a feature")
        if groups is not None and groups == target:
            self._error("groups", "the target cannot also be the groups")
        bad = [s for s in self.slopes.value if s not in self.numeric]
        if bad:
            self._error("slopes", f"not numeric: {bad}")
        if self.slopes.value and groups is None:
            self._error("slopes", "random slopes need a groups column")
        if groups is not None and groups in self.slopes.value:
            self._error("slopes", "the groups column cannot be a slope")
        if not self.all_features.value and self.slopes.value:
            missing = [s for s in self.slopes.value if s not in feats]
            if missing:
                self._error("slopes", f"a random slope is also a fixed effect: tick {', '.join(missing)} under "
                                      "features too (or untick it here)")
        # The random part and the split's factors are checked as they are typed, whatever else
        # is still wrong, by the spec's own rules (an lme4 term it cannot read, a factor that is
        # not among the grouping columns), next to their fields.
        try:
            self._data_spec()
        except MixcvError as exc:
            if exc.field in ("data.random", "data.split_by"):
                self._error(self._msg_for(exc.field), exc.message, exc.field)

    def _check_against_data(self, spec: ExperimentSpec) -> None:
        # The engine's own check, splits included: the form refuses exactly what a run
        # would refuse (too few groups for the outer or an inner split, NaNs, dtypes).
        from mixcv_core.experiment.data import plan_experiment
        self._plan = None
        try:
            self._plan = plan_experiment(spec, self.df)  # reused by Run: the splits are made once
        except MixcvError as exc:
            self._error(self._msg_for(exc.field), exc.message, exc.field)
        else:
            self._show_features(self._plan)

    def _show_features(self, plan: Any) -> None:
        """The features a run would use, by name ("all other columns" included), and a warning for a
        row number among them: not an error, the run may go ahead."""
        from mixcv_core.results.checks import row_id_checks
        from mixcv_core.results.report import features_html
        warnings = "".join(f"<div style='{_ERROR_STYLE}'>⚠ {html.escape(c.message)}</div>"
                           for c in row_id_checks(plan.data))
        self.features_used.value = (f"<div class='mixcv-features-used'>"
                                    f"{features_html(plan.data.feature_names, plan.data.slope_names)}</div>{warnings}")

    # -- actions ---------------------------------------------------------------------------
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
        from .threads import start_thread
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

        from .dashboard import LiveDashboard
        spec = self.to_spec()
        if self._thread is None or not self._thread.is_alive():
            self._stop_requested = False   # a foreground run; start() reset it already
        self.run_button.disabled = True
        self.stop_button.disabled, self.stop_button.layout.display = False, None
        self.status.value = "running…"
        self.result_box.children = [self.result]
        dashboard = LiveDashboard(display=lambda obj: _HTMLHandle(self.result, obj))
        try:
            observers: list[Any] = [dashboard]
            if self.neptune_on.value:
                from mixcv_core.tracking.mirrors import NeptuneMirror
                observers.append(NeptuneMirror(project=self.neptune_project.value.strip() or None,
                                               mode=self.neptune_mode.value))
            if self.mlflow_on.value:
                from mixcv_core.tracking.mirrors import MlflowMirror
                observers.append(MlflowMirror(tracking_uri=self.mlflow_uri.value.strip() or None))
            store = False if self.no_store.value else (self.store_dir.value.strip() or None)
            results = run(spec, self.df, observers=observers, store=store, save_models=self.save_models.value,
                          plan=self._plan, stop=lambda: self._stop_requested)
        except MixcvError as exc:
            said = html.escape(f"{_label(exc.field)}: {exc.message}")
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
        from .explorer import Explorer
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
