"""The Data panel: the target and the task it calls for, the grouping factors, random slopes or
lme4's random part, the factors a split holds out, and the features.

The panel keeps its choices consistent as they change: a column is offered in one role only
(the target is never a feature, a factor never a slope), a second factor writes the random
part it implies for the user to edit, and only the controls the factors make meaningful are
shown. How the target's task reaches the other panels (metrics, model cards) is the form's
business (`mixcv_jupyter.form._form`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd

from mixcv_core.experiment.target import TASKS, infer_task, target_labels

from ._controls import CheckList, message_slot, offer_tags, set_options

__all__ = ["DataPanel"]

#: A target of text labels is offered as a target when it has at most this many: more are an
#: identifier or free text, not classes.
_MAX_TEXT_CLASSES = 20


class DataPanel:
    """The controls of the data part of the experiment, on the columns of ``df``.

    ``on_change`` is called after any edit (the form checks itself again).
    """

    #: The message slots of this panel (``msg_<slot>``).
    SLOTS = ("target", "task", "positive_class", "groups", "slopes", "random", "split_by", "features")

    def __init__(self, df: pd.DataFrame, on_change: Callable[[], object]) -> None:
        self.df = df
        self._facts: dict[str, tuple[str, list[Any]]] = {}   # target column -> (its task, its labels)
        cols = [str(c) for c in df.columns]
        numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) or
                   pd.api.types.is_bool_dtype(df[c])]
        self.numeric, self.columns = numeric, cols
        lw = w.Layout(width="360px")
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
        self.features = CheckList(numeric, tuple(numeric), "mixcv-feature")
        self.features_used = w.HTML("")   # the features a valid form would use, shown under the choice
        (self.msg_target, self.msg_task, self.msg_positive_class, self.msg_groups, self.msg_slopes,
         self.msg_random, self.msg_split_by, self.msg_features) = (message_slot() for _ in self.SLOTS)
        for name in ("target", "groups", "more_groups", "slopes", "random", "split_by", "features", "task",
                     "positive_class"):
            getattr(self, name).add_class(f"mixcv-{name.replace('_', '-')}")
        # Rows shown or hidden by the factors chosen: each its own Layout (a shared one, hidden,
        # would hide every row that uses it). A TagsInput shows no description: the words go in
        # front of it, aligned like the others'.
        split_words = w.HTML("<div style='width:102px;text-align:right;padding-right:8px'>new levels of</div>")
        self.slopes_row = w.HBox([self.slopes, self.msg_slopes], layout=_row())
        self.random_row = w.HBox([self.random, self.msg_random], layout=_row())
        self.split_by_row = w.HBox([split_words, self.split_by, self.msg_split_by], layout=_row())
        for c in (self.dataset_name, self.target, self.groups, self.more_groups, self.slopes, self.random,
                  self.split_by, self.all_features, self.features, self.positive_class):
            c.observe(lambda _: on_change(), "value")
        self.all_features.observe(self._all_features_changed, "value")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [w.HBox([self.target, self.msg_target], layout=wrap),
                w.HBox([self.task, self.positive_class, self.task_note, self.msg_task, self.msg_positive_class],
                       layout=wrap),
                w.HBox([self.groups, self.more_groups, self.msg_groups], layout=wrap),
                self.slopes_row,
                self.random_row,
                self.split_by_row,
                w.HBox([self.all_features, self.features, self.msg_features], layout=wrap),
                self.features_used,
                self.dataset_name]

    # -- the target and its task -------------------------------------------------------------
    def target_facts(self) -> tuple[str, list[Any]] | None:
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
        """The task a run would have: the one chosen, else the one the target calls for;
        regression with no target."""
        if self.task.value != "auto":
            return str(self.task.value)
        facts = self.target_facts()
        return "regression" if facts is None else facts[0]

    def offer_positive_class(self, task: str) -> None:
        """Offer the positive class for two classes, "auto" being the larger label (as the engine picks)."""
        facts = self.target_facts()
        labels = [] if facts is None or task != "classification" else facts[1]
        if len(labels) == 2:
            options = [(f"positive class: auto ({labels[-1]})", None)] + [(f"positive class: {v}", v) for v in labels]
            set_options(self.positive_class, options)
            self.positive_class.layout.display = None
        else:
            set_options(self.positive_class, [("positive class: auto", None)])
            self.positive_class.layout.display = "none"

    def choose_positive_class(self, positive: Any) -> None:
        """Choose ``positive``, offering it if it is not a label as read (a reopened spec's "1" of a
        0/1 target: kept as written; the spec reads it)."""
        with self.positive_class.hold_sync():
            if positive is not None and not any(type(v) is type(positive) and v == positive
                                                for _, v in self.positive_class.options):
                self.positive_class.options = [*self.positive_class.options, (f"positive class: {positive}", positive)]
            self.positive_class.value = positive

    def show_task_note(self, task: str) -> None:
        """Say what "auto" inferred from the target."""
        facts = self.target_facts()
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

    # -- roles and factors -------------------------------------------------------------------
    def factors(self) -> tuple[str, ...]:
        """The grouping factors chosen: ``groups``, then the more factors, in their order."""
        return () if self.groups.value is None else (self.groups.value, *self.more_groups.value)

    def sync_roles(self) -> None:
        """Offer as slopes and features only the columns that are neither target nor a grouping factor;
        as more factors, the columns other than the target and groups; as split factors, the factors."""
        if self.groups.value is None and self.more_groups.value:
            self.more_groups.value = []   # more factors need a first one
        others = [c for c in self.columns if c not in (self.target.value, self.groups.value)]
        # A TagsInput keeps a tag no longer allowed (it only refuses new ones): drop it first.
        offer_tags(self.more_groups, others)
        taken = {self.target.value, *self.factors()}
        for control in (self.slopes, self.features):
            keep = tuple(c for c in control.value if c not in taken)
            options = [c for c in self.numeric if c not in taken]
            with control.hold_sync():
                if list(control.options) != options:
                    control.options = options
                control.value = keep
        if self.all_features.value:   # "all other columns": every column offered is ticked, shown so
            self.features.value = self.features.options
        offer_tags(self.split_by, list(self.factors()))

    def implied_random(self, slopes: tuple[str, ...]) -> str:
        """The random part the factors mean by default: the slopes on the first, an intercept on each."""
        from mixcv_core.models.mixed.terms import format_name
        first, *rest = self.factors()
        effects = " + ".join(["1", *(format_name(s) for s in slopes)])
        return " + ".join([f"({effects} | {format_name(first)})", *(f"(1 | {format_name(g)})" for g in rest)])

    def prefill_random(self) -> None:
        """A second factor chosen: write the random part it implies (with the slopes chosen so far,
        on the first factor) for the user to edit. Back to one factor: the text the form wrote
        goes and its slopes come back. Text the user wrote is never replaced."""
        current = self.random.value.strip()
        if current and current != self._auto_random:
            return
        if len(self.factors()) > 1:
            slopes = tuple(self.slopes.value) or self._auto_slopes
            text = self.implied_random(slopes)
            self._auto_slopes = slopes
            self.slopes.value = ()   # the slopes are in the text now (the spec takes them in one place)
            self._auto_random = self.random.value = text
        elif current:
            self._auto_random = self.random.value = ""
            self.slopes.value = tuple(c for c in self._auto_slopes if c in self.slopes.options)
            self._auto_slopes = ()

    def forget_prefill(self) -> None:
        """The random part shown is the user's (a reopened spec's): never replace it."""
        self._auto_random, self._auto_slopes = "", ()

    def show_factors(self) -> None:
        """Show what the factors chosen make meaningful: more factors once there is one; the random
        part with any; the split's factors with several; the slopes unless the random part holds them."""
        several = len(self.factors()) > 1
        self.more_groups.layout.display = None if self.groups.value is not None else "none"
        self.slopes_row.layout.display = "none" if several and not self.slopes.value else None
        self.random_row.layout.display = None if self.factors() or self.random.value else "none"
        self.split_by_row.layout.display = None if several or self.split_by.value else "none"
        if self.factors():
            self.random.placeholder = "empty: " + self.implied_random(tuple(self.slopes.value))
            self.split_by.placeholder = f"empty: new {self.factors()[0]} levels"

    def _all_features_changed(self, change: Any) -> None:
        # Ticked: every column, as the run will use them. Unticked: the same ticks, now editable,
        # so dropping one column (a row number) is one click.
        if change["new"]:
            self.features.value = self.features.options

    # -- checks ------------------------------------------------------------------------------
    def check(self, error: Callable[[str, str], None]) -> None:
        """Report each problem of the roles chosen as ``error(slot, message)`` (the spec's own
        rules, in `mixcv_core`, are checked by the form after these)."""
        target, groups = self.target.value, self.groups.value
        if target is None:
            error("target", "choose the column to predict")
        feats = set(self.features.value) if not self.all_features.value else set()
        if target is not None and target in feats:
            error("target", f"{target!r} is also ticked as a feature")
        if groups is not None and groups == target:
            error("groups", "the target cannot also be the groups")
        bad = [s for s in self.slopes.value if s not in self.numeric]
        if bad:
            error("slopes", f"not numeric: {bad}")
        if self.slopes.value and groups is None:
            error("slopes", "random slopes need a groups column")
        if groups is not None and groups in self.slopes.value:
            error("slopes", "the groups column cannot be a slope")
        if not self.all_features.value and self.slopes.value:
            missing = [s for s in self.slopes.value if s not in feats]
            if missing:
                error("slopes", f"a random slope is also a fixed effect: tick {', '.join(missing)} under "
                                "features too (or untick it here)")


def _row() -> w.Layout:
    return w.Layout(flex_flow="row wrap", align_items="center")
