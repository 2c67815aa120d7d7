"""The Splits panel: the outer and inner splits, their folds, scaling, repeats and the share of
known groups held out.

Choosing groups switches row splits to their group variants (and back): the one setting that
decides whether the estimate is for new groups or known ones, so the panel does it and says so.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable

import ipywidgets as w

from mixcv_core.constraints import RULES
from mixcv_core.experiment.splits import SPLIT_METHODS

from ._controls import bounded, message_slot

__all__ = ["GROUP_VARIANT", "SplitsPanel"]

#: A row split and its group variant: what choosing (or clearing) groups switches between.
GROUP_VARIANT = {"KFold": "GroupKFold", "StratifiedKFold": "StratifiedGroupKFold"}


class SplitsPanel:
    """The controls of the outer and inner splits.

    ``on_change`` is called after any edit (the form checks itself again).
    """

    #: The message slots of this panel (``msg_<slot>``).
    SLOTS = ("outer", "inner", "repeats", "known_holdout")

    def __init__(self, on_change: Callable[[], object]) -> None:
        methods = list(SPLIT_METHODS)
        self.outer = w.Dropdown(options=methods, value="KFold", description="outer", layout=w.Layout(width="280px"))
        self.outer_k = bounded("outer.n_splits", 5, "folds", "150px")
        self.inner = w.Dropdown(options=methods, value="KFold", description="inner", layout=w.Layout(width="280px"))
        self.inner_k = bounded("inner.n_splits", 5, "folds", "150px")
        self.scale_outer = w.Checkbox(value=True, description="scale outer", indent=False,
                                      layout=w.Layout(width="110px"))
        self.scale_inner = w.Checkbox(value=True, description="scale inner", indent=False,
                                      layout=w.Layout(width="110px"))
        self.predict_known = w.Checkbox(value=True, description="mixed models use random effects of known groups",
                                        indent=False, layout=w.Layout(width="auto"))
        self.split_note = w.HTML()
        self.repeats = bounded("outer.n_repeats", 1, "repeats", "150px",
                               tooltip="repeat the outer split, reshuffled each time (repeated group K-fold)")
        self.known_holdout = w.FloatText(   # not bounded: out of range is reported, never clamped
            value=0.0, step=0.05, description="known holdout", layout=w.Layout(width="220px"),
            style={"description_width": "initial"},
            tooltip="share of each training group's rows held out and scored as known groups (0: none); "
                    + RULES["outer.known_holdout"].describe())
        self.msg_outer, self.msg_inner, self.msg_repeats, self.msg_known_holdout = (message_slot()
                                                                                    for _ in self.SLOTS)
        for name in ("outer", "inner", "outer_k", "inner_k"):
            getattr(self, name).add_class(f"mixcv-{name.replace('_', '-')}")
        for c in (self.outer, self.outer_k, self.inner, self.inner_k, self.scale_outer, self.scale_inner,
                  self.repeats, self.known_holdout, self.predict_known):
            c.observe(lambda _: on_change(), "value")

    def rows(self) -> list[w.Widget]:
        """The panel's rows in the form."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [w.HBox([self.outer, self.outer_k, self.scale_outer, self.msg_outer], layout=wrap),
                w.HBox([self.inner, self.inner_k, self.scale_inner, self.msg_inner], layout=wrap),
                w.HBox([self.repeats, self.msg_repeats, self.known_holdout, self.msg_known_holdout], layout=wrap),
                self.split_note, self.predict_known]

    def follow_groups(self, old: str | None, new: str | None, count_groups: Callable[[], int]) -> None:
        """Groups chosen (or cleared): switch row splits to their group variants (or back), with no
        more folds than the groups (``count_groups()``, asked only then) can fill, and say so."""
        if (old is None) == (new is None):
            return
        table = GROUP_VARIANT if new is not None else {v: k for k, v in GROUP_VARIANT.items()}
        switched = []
        for control in (self.outer, self.inner):
            if control.value in table:
                control.value = table[control.value]
                switched.append(control.value)
        fewer = self._fit_folds_to_groups(count_groups()) if new is not None else ""
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

    def _fit_folds_to_groups(self, n: int) -> str:
        """Fewer folds when ``n`` groups cannot fill them: outer at most one per group, inner at
        most the groups left in the smallest outer training part. Returns what it changed."""
        changed = []
        if self.outer.value in GROUP_VARIANT.values() and self.outer_k.value > n:
            self.outer_k.value = max(2, n)
            changed.append(f"outer folds to {self.outer_k.value}")
        left = n - math.ceil(n / max(self.outer_k.value, 1))
        if self.inner.value in GROUP_VARIANT.values() and self.inner_k.value > left:
            self.inner_k.value = max(2, left)
            changed.append(f"inner folds to {self.inner_k.value}")
        return f" ({', '.join(changed)}, to fit {n} groups)" if changed else ""
