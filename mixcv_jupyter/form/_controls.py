"""The form's small building blocks, shared by every panel: message slots, checked integers,
a list of checkboxes, and the two ways a choice's options change without a view seeing them
half-changed (`set_options`, `offer_tags`).

Every change of a control's options together with its value goes out as one message
(``hold_sync``): a view rendered between an options message and a value message would hold an
index of the old options (the form that failed to render in CI with "Click to show javascript
error").
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import traitlets

from mixcv_core.constraints import RULES, Integer

__all__ = ["ERROR_STYLE", "CheckList", "bounded", "css_name", "message_slot", "offer_tags", "section",
           "set_options", "show_message"]

ERROR_STYLE = "color:#b00020;font-size:12px"


def message_slot() -> w.HTML:
    """The place next to a control where its problem is shown."""
    return w.HTML(value="", layout=w.Layout(margin="0 0 0 8px"))


def show_message(slot: w.HTML, text: str) -> None:
    """Show ``text`` (escaped) in ``slot`` as an error, or clear it."""
    slot.value = f"<span style='{ERROR_STYLE}'>{html.escape(text)}</span>" if text else ""


def css_name(name: str) -> str:
    """``name`` as a CSS class part: ``X 1`` -> ``X-1`` (browser tests find a column's box by it)."""
    return "".join(ch if ch.isalnum() else "-" for ch in name)


def section(title: str, rows: list[w.Widget]) -> w.VBox:
    """A titled part of the form."""
    return w.VBox([w.HTML(f"<h4 style='margin:8px 0 4px 0'>{title}</h4>")] + rows,
                  layout=w.Layout(border_bottom="1px solid #eee", padding="0 0 6px 0"))


def bounded(rule: str, value: int, description: str, width: str, **style: Any) -> w.IntText:
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


def set_options(control: w.Dropdown, options: list[tuple[str, Any]]) -> None:
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


def offer_tags(tags: w.TagsInput, allowed: list[str]) -> None:
    """Let ``tags`` hold only ``allowed`` names, dropping any it holds that are not (a TagsInput
    refuses a new tag that is not allowed but keeps an old one)."""
    keep = [t for t in tags.value if t in allowed]
    with tags.hold_sync():   # one message: a view never sees the value and the allowed tags disagree
        if keep != list(tags.value):
            tags.value = keep
        if list(tags.allowed_tags) != allowed:
            tags.allowed_tags = allowed


class CheckList(w.VBox):
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
                box.add_class(f"{self._css}-{css_name(name)}")
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
