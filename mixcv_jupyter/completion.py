"""Completion inside a ``%%mixcv`` cell, served by the kernel through IPython's matcher API v2.

JupyterLab 4 and Notebook 7 send the whole cell and the cursor; IPython hands them to each
matcher as a `CompletionContext`. `suggest` reads the cell up to the cursor the way the
cell grammar (`mixcv_core.experiment.cell`) lays it out — top-level keys, model entries
under ``models:``, a model's parameters under its entry — and offers what fits there:

==========================================  =============================================
where the cursor is                         what is offered
==========================================  =============================================
a new top-level line                        the cell's keys not yet written (`TOP_KEYS`)
``data: |``                                 the DataFrames in the notebook
``target: |`` and the other `COLUMN_KEYS`   that frame's columns (in lists and lme4 terms)
``outer: |``, ``inner: |``                  the split methods
a line under ``models:``, ``model: |``      mixcv's models and scikit-learn's estimators
a line under a model entry                  its reserved keys and the model's parameters
a model parameter's value                   the range forms ``int(``, ``float(``, ``choice(``;
                                            ``log``, ``step=`` inside one
a line under ``merf:``                      MERF's settings
``backend: |``, ``task: |``, ``metrics: |``  the words the key's rule accepts; metric names
==========================================  =============================================

Inside a ``%%mixcv`` body the matcher silences IPython's other matchers (a cell is not
Python, so Python names are never right there), and anything that goes wrong — a cell
half typed, a frame whose columns cannot be read — gives no completions, never an error.
Outside a ``%%mixcv`` body it offers nothing and silences nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher

from mixcv_core.experiment.cell import CELL_KEYS, COLUMN_KEYS, MERF_KEYS, MODEL_KEYS, SPLIT_KEYS, TOP_KEYS, param_text

__all__ = ["Suggestions", "suggest", "make_matcher", "MATCHER_ID"]

MATCHER_ID = "mixcv_jupyter.completion"
#: Above IPython's own matchers (all 0), so the cell's completions come first and can silence them.
PRIORITY = 100
#: The range forms a tuned parameter's value may take; inside ``int(...)``/``float(...)`` after the bounds.
RANGE_FORMS = ("int(", "float(", "choice(")
RANGE_OPTIONS = ("log", "step=")

_MAGIC_RE = re.compile(r"^\s*%%mixcv(\s|$)")
# "key:" at the start of a line (after indentation and a "- " item mark), then the value.
_KEY_RE = re.compile(r"^(?P<indent>\s*)(?P<item>-\s+)?(?P<key>[^\s:#'\"\[{][^:#]*?)\s*:(?P<rest>(\s.*)?)$")
# What a completion replaces: the word before the cursor, up to YAML's and lme4's punctuation.
_FRAGMENT_RE = re.compile(r"[^\s\[\]{},()|+:]*$")
_COMMENT_RE = re.compile(r"(^|\s)#")


@dataclass(frozen=True)
class Suggestions:
    """What to offer at the cursor: ``fragment`` (the text before the cursor each
    completion replaces) and the completions, each ``(text, type)``."""

    fragment: str
    items: tuple[tuple[str, str], ...]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _structure(lines: Sequence[str]) -> Iterator[tuple[tuple[str, ...], str | None, int, str]]:
    """Each meaningful line's parent keys, its own key (None for a list item or a value
    line), its indent and what follows its colon: the block structure of the YAML, read
    from indentation."""
    stack: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ind = _indent(line)
        while stack and stack[-1][0] >= ind:
            stack.pop()
        m = _KEY_RE.match(line)
        key = m.group("key") if m and not m.group("item") else None
        yield tuple(k for _, k in stack), key, ind, (m.group("rest") if m else "")
        if key is not None:
            stack.append((ind, key))


def _parent(lines: Sequence[str], indent: int) -> tuple[str, ...]:
    """The keys a line indented by ``indent`` after ``lines`` sits under."""
    stack: list[tuple[int, str]] = []
    for _, key, ind, _ in _structure(lines):
        stack = [(i, k) for i, k in stack if i < ind]
        if key is not None:
            stack.append((ind, key))
    return tuple(k for i, k in stack if i < indent)


def _written(lines: Sequence[str], parent: tuple[str, ...]) -> set[str]:
    """The keys already written directly under ``parent``."""
    return {key for parents, key, _, _ in _structure(lines) if key is not None and parents == parent}


def _value_of(lines: Sequence[str], path: tuple[str, ...]) -> str | None:
    """The plain scalar written for the key at ``path`` (``data: df`` -> ``df``), if any."""
    for parents, key, _, rest in _structure(lines):
        if key is not None and (*parents, key) == path:
            return rest.split(" #", 1)[0].strip().strip("'\"") or None
    return None


def _frame_columns(lines: Sequence[str], namespace: Mapping[str, Any]) -> list[str]:
    name = _value_of(lines, ("data",))
    frame = namespace.get(name) if name else None
    if not isinstance(frame, pd.DataFrame):
        return []
    return [param_text(str(c)) for c in frame.columns]


def _frames(namespace: Mapping[str, Any]) -> list[str]:
    return sorted(k for k, v in list(namespace.items()) if not k.startswith("_") and isinstance(v, pd.DataFrame))


@lru_cache(maxsize=1)
def _model_names() -> tuple[str, ...]:
    # scikit-learn's all_estimators imports every estimator module (seconds, once): only
    # when a model name is first asked for, and kept, as the registry keeps it.
    from mixcv_core.experiment.registry import available_models
    return tuple(available_models())


@lru_cache(maxsize=256)
def _model_params(model: str) -> tuple[str, ...]:
    from mixcv_core.experiment.registry import param_names, resolve_estimator
    try:
        names = param_names(resolve_estimator(model))
    except Exception:  # noqa: BLE001 - an unknown or broken model has no parameters to offer
        return ()
    return tuple(sorted(names or ()))


def _split_names() -> list[str]:
    from mixcv_core.experiment.splits import describe_methods
    return list(describe_methods())


def _choices(key: str) -> tuple[str, ...]:
    """The words a top-level key takes, from the rule that checks it (`mixcv_core.constraints`):
    ``backend: local|dask``, ``on_error: keep|raise``, ``true``/``false``; and tasks, metrics."""
    from mixcv_core.constraints import RULES, Boolean, Options
    from mixcv_core.experiment.spec import TASKS
    from mixcv_core.metrics import METRICS
    if key == "task":
        return TASKS
    if key == "metrics":
        return tuple(METRICS)
    field = {k: f for f, k in CELL_KEYS.items()}.get(key, key)
    rule = RULES.get(field)
    if isinstance(rule, Options):
        return rule.options
    return ("true", "false") if isinstance(rule, Boolean) else ()


def _values(path: tuple[str, ...], value: str, lines: Sequence[str],
            namespace: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Completions for the value of the key at ``path``, typed so far as ``value``."""
    if len(path) == 1:
        key = path[0]
        if key == "data":
            return [(f, "frame") for f in _frames(namespace)]
        if key in COLUMN_KEYS:
            # A list names each column once; lme4 terms may name one in several terms.
            listed = set() if key == "random" else set(re.findall(r"[^\s\[\],]+(?=\s*,)", value))
            return [(c, "column") for c in _frame_columns(lines, namespace) if c not in listed]
        if key in SPLIT_KEYS:
            return [(s, "split") for s in _split_names()]
        if key == "models":
            return [(m, "model") for m in _model_names()]
        return [(v, "value") for v in _choices(key)]
    if len(path) == 3 and path[0] == "models":
        key = path[2]
        if key == "model":
            return [(m, "model") for m in _model_names()]
        if key in MODEL_KEYS:
            return []
        inside = re.match(r"^\s*(int|float)\s*\(([^)]*)$", value)
        if inside:
            return [(o, "range") for o in RANGE_OPTIONS] if inside.group(2).count(",") >= 2 else []
        if "(" not in value:
            return [(r, "range") for r in RANGE_FORMS]
    return []


def _keys(parent: tuple[str, ...], lines: Sequence[str], after: str) -> list[tuple[str, str]]:
    """Completions for a key typed on a new line under ``parent``."""
    tail = "" if after.lstrip().startswith(":") else ": "
    if parent == ():
        taken = _written(lines, ())
        return [(k + tail, "key") for k in TOP_KEYS if k not in taken]
    if parent == ("merf",):
        return [(k + tail, "key") for k in MERF_KEYS if k not in _written(lines, parent)]
    if parent == ("models",):
        return [(m + tail.rstrip(), "model") for m in _model_names()]
    if len(parent) == 2 and parent[0] == "models":
        taken = _written(lines, parent)
        model = _value_of(lines, (*parent, "model")) or parent[1]
        return [(k + tail, "key" if k in MODEL_KEYS else "parameter")
                for k in (*MODEL_KEYS, *_model_params(model)) if k not in taken]
    return []


def suggest(text: str, line: int, column: int, namespace: Mapping[str, Any]) -> Suggestions | None:
    """What to offer at (``line``, ``column``) of the cell ``text``.

    Returns None when the cursor is not in the body of a ``%%mixcv`` cell (the first line
    of ``text`` is not ``%%mixcv ...``, or the cursor is on it): the cell is someone
    else's. Inside the body, the completions (maybe none).
    """
    all_lines = text.split("\n")
    if line < 1 or line >= len(all_lines) or not _MAGIC_RE.match(all_lines[0]):
        return None
    body = all_lines[1:]
    index = line - 1
    before_cursor, after = body[index][:column], body[index][column:]
    others = body[:index] + body[index + 1:]   # the cell without the line being typed
    fragment = _FRAGMENT_RE.search(before_cursor).group(0)  # type: ignore[union-attr]  # matches any text
    nothing = Suggestions(fragment, ())
    if _COMMENT_RE.search(before_cursor):
        return nothing
    m = _KEY_RE.match(before_cursor)
    if m is not None and not m.group("item"):
        rest = m.group("rest")
        if not rest:           # right after "key:": a value needs the space first
            return nothing
        parent = _parent(body[:index], _indent(before_cursor))
        items = _values((*parent, m.group("key")), rest.lstrip(), others, namespace)
    else:
        stripped = before_cursor.lstrip(" ")
        if stripped.startswith("-"):   # "- item" of a block list: a value of the key above
            path = _parent(body[:index], _indent(before_cursor) + 1)
            items = _values(path, stripped.lstrip("- "), others, namespace) if path else []
        elif stripped and not stripped[0].isalpha() and stripped[0] not in "_'\"":
            items = []
        else:
            items = _keys(_parent(body[:index], _indent(before_cursor)), others, after)
    wanted = fragment.lower().lstrip("'\"")
    chosen = tuple(dict.fromkeys((t, kind) for t, kind in items if t.lower().lstrip("'\"").startswith(wanted)))
    return Suggestions(fragment, chosen)


class _Silence(Sequence[SimpleCompletion]):
    """No completions that still silence IPython's other matchers.

    IPython lets a matcher suppress the others only when its result "has any completions",
    judged by ``len()`` (`IPython.core.completer.has_any_completions`); inside a ``%%mixcv``
    body Python names are wrong even when the cell has nothing to offer at the cursor, so
    this result counts as one and yields none.
    """

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        raise IndexError(index)

    def __iter__(self) -> Iterator[SimpleCompletion]:
        return iter(())


def _cursor(context: CompletionContext) -> tuple[int, int]:
    """The cursor's (line, column) in ``context.full_text``.

    The legacy ``Completer.complete(line_buffer=cell, cursor_pos=offset)`` passes the whole
    cell as "line" 0 and the cursor as an offset into it; `completions()` and the kernel
    pass the real line and column.
    """
    line, column = context.cursor_line, context.cursor_position
    lines = context.full_text.split("\n")
    if line == 0 and column > len(lines[0]):
        before = context.full_text[:column].split("\n")
        return len(before) - 1, len(before[-1])
    return line, column


def make_matcher(shell: Any) -> Any:
    """The matcher to append to ``shell.Completer.custom_matchers``."""

    @context_matcher(identifier=MATCHER_ID, priority=PRIORITY)
    def mixcv_cell_matcher(context: CompletionContext) -> SimpleMatcherResult:
        try:
            line, column = _cursor(context)
            found = suggest(context.full_text, line, column, shell.user_ns)
        except Exception:  # noqa: BLE001 - completion must never raise into the notebook
            found = Suggestions("", ()) if _MAGIC_RE.match(context.full_text) else None
        if found is None:
            return SimpleMatcherResult(completions=[], suppress=False)
        completions: Sequence[SimpleCompletion] = [SimpleCompletion(t, type=kind) for t, kind in found.items]
        return SimpleMatcherResult(completions=completions or _Silence(), matched_fragment=found.fragment,
                                   suppress=True, ordered=True)

    return mixcv_cell_matcher


def register(shell: Any) -> None:
    """Add the ``%%mixcv`` matcher to ``shell``'s completer (once)."""
    unregister(shell)
    shell.Completer.custom_matchers.append(make_matcher(shell))


def unregister(shell: Any) -> None:
    """Remove the ``%%mixcv`` matcher from ``shell``'s completer."""
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "matcher_identifier", None) != MATCHER_ID]
