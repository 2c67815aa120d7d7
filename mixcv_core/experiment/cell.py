"""The ``%%mixcv`` cell text: a short, readable description of an experiment, and back.

The text is YAML with a compact notation for hyperparameter ranges. `parse_cell` turns
it into an `ExperimentSpec`; `spec_to_cell` writes any spec the text can express back
to the exact text that reproduces it, so the widget can show the cell behind a form and
a stored run can be re-run from its cell.

The syntax is data here, read by the parser and by ``%mixcv help``: `CELL_EXAMPLE`,
`TOP_KEY_HELP` (every key with what it sets), `MODEL_KEY_HELP` and `RANGE_HELP`.

Models are any mixcv model or scikit-learn regressor by name, or a dotted path; give
an entry another name with ``model: <estimator>``. Parameters whose value is a range
are tuned in the inner loop; plain values are fixed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..constraints import check
from ..errors import MixcvError, SpecError
from ..metrics import METRICS, resolve_metrics
from ..models import postprocessing
from .registry import dotted_path, estimator_name, import_dotted
from .spec import TASK_DEFAULTS, DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec

if TYPE_CHECKING:
    import optuna.distributions as od

__all__ = ["CellError", "ParsedCell", "parse_cell", "spec_to_cell", "parse_param", "param_text",
           "cell_key", "CELL_KEYS",
           "COLUMN_KEYS", "SPLIT_KEYS", "TOP_KEYS", "MODEL_KEYS", "TOP_KEY_HELP", "MODEL_KEY_HELP", "RANGE_HELP",
           "CELL_EXAMPLE"]

CELL_EXAMPLE = """\
data: df                     # a DataFrame in the notebook
target: y
groups: subject              # new subjects in every test fold
slopes: [days]               # random slopes (also fixed-effect features)
outer: GroupKFold(5)
inner: GroupKFold(3)
trials: 30                   # Optuna trials per model and outer fold
merf: {iterations: 20}
models:
  LinearMixedEffectsModel:
  RandomForestRegressor:
    n_estimators: 200                  # fixed
    max_depth: int(2, 20)              # tuned in the inner loop
    max_features: float(0.2, 1.0)
    merf: true                         # also MERF(RandomForestRegressor)
"""

#: Every top-level key of a cell and what it sets, in the order help lists them.
TOP_KEY_HELP: dict[str, str] = {
    "data": "the DataFrame's variable name in the notebook (required)",
    "name": "a label for reports and the run store",
    "target": "the column to predict (required)",
    "groups": "the grouping column (participants, schools, sites); needed by group splits, LMM and MERF",
    "slopes": "columns that also get a random slope per group, e.g. [days]",
    "random": "random-effect terms in lme4's syntax, e.g. (1 + days | subject) + (1 | item); their grouping "
              "columns join groups",
    "split_by": "the grouping column(s) whose levels the outer test folds hold new, e.g. subject, or "
                "[subject, item] for new subjects and new items (default: the first of groups)",
    "features": "fixed-effects columns (default: every column but target and groups)",
    "outer": "the outer split: KFold, StratifiedKFold, GroupKFold or StratifiedGroupKFold, e.g. GroupKFold(5)",
    "inner": "the split of each outer training fold that tunes the models, e.g. GroupKFold(3)",
    "repeats": "repeat the outer split this many times, reshuffled (repeated group K-fold; default 1)",
    "known_holdout": "also hold out this share of each training group's rows and score them as known groups, "
                     "e.g. 0.2 (default 0: none)",
    "scale": "standardise features on each training fold: true, false, or {outer: .., inner: ..}",
    "trials": "Optuna trials per model and outer fold (default 100)",
    "objective": "dotted path of a tuning objective to minimise (default: validation MSE)",
    "trial_batch": "trials asked at once and evaluated side by side on a task's idle cores; fixed here, so "
                   "results do not depend on n_jobs (default 1: one at a time)",
    "metrics": "metric names, e.g. [r2, mse, mae, rmse] (default: the task's, r2, mse, mae for regression)",
    "task": "regression or classification (default: inferred from the target; two values or labels: "
            "classification)",
    "positive_class": "the class whose probability is predicted, for two classes (default: the larger label)",
    "merf": "MERF settings: {all: true, iterations: 100, threshold: null, window: 2, linear: true, "
            "em_estimators: 50} (the defaults but all; threshold: an early stop on the GLL's relative "
            "change; linear: false is merf 1.0's algorithm)",
    "predict_known_groups": "mixed models use the random effects of groups seen in training (default true)",
    "seed": "seeds the splits, the tuning and the models (default 42)",
    "n_jobs": "outer folds in parallel processes; -1 for all cores (default 1)",
    "backend": "local: this machine (default); dask: a Dask cluster, local with n_jobs workers or at scheduler "
               "(pip install 'mixcv[dask]')",
    "scheduler": "with backend: dask, a running Dask scheduler's address, e.g. tcp://10.0.0.5:8786 "
                 "(default: a local cluster)",
    "on_error": "keep: a failing fit is recorded and the run goes on (default); raise: stop with its error",
    "timeout": "seconds one model may take on one outer fold, tuning included (a MERF variant has its own "
               "clock); then it is stopped and the fold recorded as timed out (default: no limit)",
    "break_cross_val": "true: fit the first outer fold only, for debugging (default false)",
    "models": "one model per line, its parameters indented below it (required)",
}
#: Reserved keys inside a model entry; every other key is a parameter of the model.
MODEL_KEY_HELP: dict[str, str] = {
    "model": "the estimator, when the entry's name is a label of your own",
    "merf": "true: also fit MERF(<name>) around this model",
    "tune": "false: do not tune, even with ranges",
    "fit": "arguments to fit, as {name: value}",
    "post_processor": "per-fold insight table, e.g. LinearModelPostProcessor",
}
RANGE_HELP = ("int(low, high), float(low, high), float(low, high, log), int(low, high, step=2), "
              "choice(a, b, ...): tuned in the inner loop; any other value is fixed")
TOP_KEYS = tuple(TOP_KEY_HELP)
MODEL_KEYS = tuple(MODEL_KEY_HELP)
#: Keys of the cell's ``merf:`` mapping -> the `MerfSpec` fields they set.
MERF_FIELDS: dict[str, str] = {"all": "add_merf_global", "iterations": "max_iterations",
                               "threshold": "stopping_threshold", "window": "stopping_window",
                               "linear": "linear_fixed_effects", "em_estimators": "em_estimators"}
MERF_KEYS = tuple(MERF_FIELDS)
_SPLIT_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\(\s*([^)]*?)\s*\))?\s*$")
_RANGE_RE = re.compile(r"^\s*(int|float|choice)\s*\((.*)\)\s*$", re.DOTALL)
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


T = TypeVar("T")


class CellError(MixcvError, ValueError):
    """A problem in the cell text, with the line it is on (1-based, counting the ``%%mixcv`` line)."""

    def __init__(self, key: str, message: str, line: int | None = None) -> None:
        self.line = line
        where = f"line {line}, " if line is not None else ""
        super().__init__(key, message)
        self.args = (f"{where}{key}: {message}",)

        self.problems: list[CellError] = [self]

    def __str__(self) -> str:
        return self.args[0]

    @classmethod
    def several(cls, problems: list[CellError]) -> CellError:
        """One error reporting ``problems`` (the first `MAX_REPORTED`), one line each.

        Its field, message and line are the first problem's, so a front end that points
        at one line points at the first; ``problems`` holds them all for one that can do more.
        """
        if len(problems) == 1:
            return problems[0]
        shown = problems[:MAX_REPORTED]
        first = shown[0]
        err = cls(first.field, first.message, first.line)
        err.problems = list(problems)
        more = len(problems) - len(shown)
        text = "\n".join([f"{len(problems)} problems in the cell:", *(f"  {p}" for p in shown)]
                         + ([f"  (and {more} more)"] if more else []))
        err.args = (text,)
        return err


MAX_REPORTED = 5   # a handful: beyond it, the first fixes usually change the rest


class _Problems:
    """Collects the cell's mistakes, so one run of the parser reports all of them."""

    def __init__(self) -> None:
        self.found: list[CellError] = []

    def attempt(self, make: Callable[..., T], *args: Any) -> T | None:
        """``make(*args)``, or None with its `CellError` noted (each of its problems)."""
        try:
            return make(*args)
        except CellError as exc:
            self.found.extend(exc.problems)
            return None

    def raise_if_any(self) -> None:
        if self.found:
            # In the order they are written, as a reader goes through the cell.
            raise CellError.several(sorted(self.found, key=lambda p: (p.line is None, p.line or 0)))


@dataclass
class ParsedCell:
    """A parsed cell: the spec, the DataFrame's name, and where each key was written."""

    spec: ExperimentSpec
    frame: str
    lines: dict[str, int] = field(default_factory=dict)

    def locate(self, error: MixcvError) -> CellError:
        """Translate an error about a spec field (raised later, e.g. while checking the
        data) into a `CellError` pointing at the line that set it."""
        return _locate(self.lines, error)


def _locate(lines: dict[str, int], error: MixcvError) -> CellError:
    key = cell_key(error.field)
    line, parent = lines.get(key), key
    while line is None and "." in parent:
        parent = parent.rsplit(".", 1)[0]
        line = lines.get(parent)
    return CellError(parent if line is not None else key, error.message, line)


def cell_key(f: str) -> str:
    """The cell key path that sets a spec field (``models['RF'].params['max_depth']`` ->
    ``models.RF.max_depth``, ``data.target`` -> ``target``)."""
    f = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", f)
    f = f.replace(".params.", ".").replace(".model_kwargs.", ".").replace(".fit_kwargs", ".fit")
    if f in CELL_KEYS:
        return CELL_KEYS[f]
    if f.startswith("merf."):
        return "merf"
    return f


#: Spec field paths -> the cell key that sets them (where the two differ).
CELL_KEYS: dict[str, str] = {
    "data.target": "target", "data.groups": "groups", "data.slopes": "slopes", "data.features": "features",
    "data.random": "random", "data.split_by": "split_by",
    "data.frame": "data", "tuning.n_trials": "trials", "tuning.objective_scorer": "objective",
    "tuning.batch": "trial_batch",
    "outer.method": "outer", "outer.n_splits": "outer", "inner.method": "inner", "inner.n_splits": "inner",
    "outer.scale": "scale", "inner.scale": "scale", "predict_known_groups_lmm": "predict_known_groups",
    "outer.n_repeats": "repeats", "outer.known_holdout": "known_holdout",
}
#: Keys whose value names columns of the cell's DataFrame (one, a list, or lme4 terms for
#: random): the keys that set the `DataSpec`'s column fields, read by editors' completion.
COLUMN_KEYS = tuple(key for f, key in CELL_KEYS.items() if f.startswith("data.") and f != "data.frame")
#: Keys whose value is a split method, e.g. GroupKFold(5).
SPLIT_KEYS = tuple(dict.fromkeys(key for f, key in CELL_KEYS.items() if f.endswith(".method")))


# -- YAML with line numbers ------------------------------------------------------------
#: The YAML types a cell may use (implicitly): anything tagged otherwise is refused.
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


def _compose(text: str, offset: int) -> Any:
    import yaml

    try:
        # Anchors and aliases (&a, *a) are no part of the cell syntax, and they are how a
        # few hundred bytes of YAML expand into gigabytes or a cycle: refused from the
        # event stream, before anything is built, so parsing stays linear in the text.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise CellError("cell", "YAML anchors and aliases (&name, *name) are not part of the cell syntax; "
                                        "write the value out", event.start_mark.line + 1 + offset)
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1 + offset
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        import unicodedata
        what = unicodedata.name(chr(code), "a control character") if 0 <= code < 0x110000 else "a byte"
        raise CellError("cell", f"the character U+{code:04X} ({what.lower()}) is not allowed in a cell; "
                                "it is invisible in most editors: retype the line", at) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 + offset if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise CellError("cell", f"not valid YAML-like text: {' '.join(str(problem).split())}", line) from None


def _construct(node: Any) -> Any:
    """A node's Python value through YAML's safe constructor (so true/null/3/0.5 get their types)."""
    import yaml
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _to_py(node: Any, path: str, lines: dict[str, int], offset: int, raw: dict[str, str] | None = None) -> Any:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1 + offset)
    if node.tag not in _CORE_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise CellError(path or "cell", f"YAML tags such as {tag} are not part of the cell syntax; write ranges as "
                                        "int(low, high), float(low, high) or choice(a, b) and values as they are",
                        lines[path])
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = str(k.value if isinstance(k, yaml.ScalarNode) else _construct(k))
            sub = f"{path}.{key}" if path else key
            lines[sub] = k.start_mark.line + 1 + offset
            if key in out:
                raise CellError(sub, "appears twice", lines[sub])
            out[key] = _to_py(v, sub, lines, offset, raw)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_py(v, f"{path}[{i}]", lines, offset, raw) for i, v in enumerate(node.value)]
    if raw is not None:
        raw[path] = node.value   # the scalar as written, before YAML gives it a type
    value = _construct(node)
    if isinstance(value, str) and node.style is None and _NUMBER_RE.match(value):
        # PyYAML (YAML 1.1) reads 1e-4 as a string; people mean the number.
        value = float(value)
    return value


# -- pieces ------------------------------------------------------------------------------
def _label(value: Any, written: str | None) -> Any:
    """A class label as written: YAML 1.1 reads yes/no/on/off as booleans, a label means the text."""
    if isinstance(value, bool) and written is not None and written.lower() not in ("true", "false"):
        return written
    return value


def _scalar(text: str) -> Any:
    import yaml
    text = text.strip()
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER_RE.match(value) and text[:1] not in "\"'":
        return float(value)  # unquoted 1e-4 (YAML 1.1 reads it as text); quoted "10" stays text
    return value


def _parse_range(text: str, key: str, line: int | None) -> od.BaseDistribution | None:
    m = _RANGE_RE.match(text)
    if not m:
        return None
    import optuna.distributions as od  # imported for a search space, not with mixcv_core
    kind, body = m.group(1), m.group(2)
    parts = [p.strip() for p in body.split(",")] if body.strip() else []
    if kind == "choice":
        if not parts:
            raise CellError(key, "choice(...) needs at least one value, e.g. choice(gini, entropy)", line)
        return od.CategoricalDistribution([_scalar(p) for p in parts])
    usage = f"{kind}(low, high), {kind}(low, high, log) or {kind}(low, high, step=...)"
    positional = [p for p in parts if "=" not in p and p != "log"]
    log = "log" in parts or any(p.replace(" ", "") in ("log=true", "log=True") for p in parts)
    step = None
    for p in parts:
        if p.replace(" ", "").startswith("step="):
            step = _scalar(p.split("=", 1)[1])
    unknown = [p for p in parts if "=" in p and not p.replace(" ", "").startswith(("step=", "log="))]
    if len(positional) != 2 or unknown:
        raise CellError(key, f"expected {usage}, got {text.strip()!r}", line)
    low, high = (_scalar(p) for p in positional)
    for v in (low, high):
        if isinstance(v, float) and not math.isfinite(v):
            raise CellError(key, f"the bounds of {text.strip()!r} must be finite numbers", line)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        raise CellError(key, f"empty range {text.strip()!r}: low ({low}) is above high ({high})", line)
    try:
        if kind == "int":
            for v, what in ((low, "low"), (high, "high")):
                if not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())) or isinstance(v, bool):
                    raise ValueError(f"{what} must be an integer, got {v!r}")
            return od.IntDistribution(int(low), int(high), log=log, step=int(step) if step is not None else 1)
        for v, what in ((low, "low"), (high, "high")):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ValueError(f"{what} must be a number, got {v!r}")
        return od.FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))
    except (ValueError, TypeError) as exc:
        raise CellError(key, f"bad range {text.strip()!r}: {exc}", line) from None


def _parse_split(value: Any, key: str, line: int | None) -> tuple[str, int]:
    if isinstance(value, str):
        m = _SPLIT_RE.match(value)
        if m:
            name, arg = m.group(1), m.group(2)
            if arg is None or arg == "":
                return name, 5
            if arg.isdigit():
                return name, int(arg)
            if arg.lstrip("+-").isdigit():   # a whole number, but not a count of folds
                raise CellError(key, f"the number of folds must be at least 2, got {arg} in {value!r}", line)
            raise CellError(key, f"the number of folds must be a whole number, got {arg!r} in {value!r}", line)
    raise CellError(key, f"expected a split such as GroupKFold(5), got {value!r}", line)


def _check_keys(d: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, lines: dict[str, int]) -> None:
    unknown = []
    for k in d:
        if k not in allowed:
            path = f"{prefix}{k}"
            close = difflib.get_close_matches(k, allowed, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            unknown.append(CellError(path, f"unknown key{hint}; expected one of {', '.join(allowed)}", lines.get(path)))
    if unknown:
        raise CellError.several(unknown)


def _as_bool(value: Any, key: str, line: int | None) -> bool:
    if not isinstance(value, bool):
        raise CellError(key, f"expected true or false, got {value!r}", line)
    return value


def _names(value: Any, key: str, line: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise CellError(key, f"expected a column name or a list such as [a, b], got {value!r}", line)


def _model(name: str, entry: Any, lines: dict[str, int]) -> ModelSpec:
    key = f"models.{name}"
    line = lines.get(key)
    if entry is None:
        entry = {}
    if not isinstance(entry, Mapping):
        raise CellError(key, f"expected the model's settings (indented key: value lines) or nothing, got {entry!r}",
                        line)
    estimator = entry.get("model", name)
    params: dict[str, od.BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for k, v in entry.items():
        if k in MODEL_KEYS:
            continue
        dist = _parse_range(v, f"{key}.{k}", lines.get(f"{key}.{k}")) if isinstance(v, str) else None
        if dist is not None:
            params[k] = dist
        else:
            fixed[k] = v
    tune = entry.get("tune", bool(params))
    fit_kwargs = entry.get("fit") or {}
    if not isinstance(fit_kwargs, Mapping):
        raise CellError(f"{key}.fit", "expected arguments to fit as key: value pairs", lines.get(f"{key}.fit"))
    pp = entry.get("post_processor")
    if isinstance(pp, str) and "." not in pp:
        if not hasattr(postprocessing, pp):
            raise CellError(f"{key}.post_processor", f"unknown post-processor {pp!r}; choose one of "
                                                     f"{', '.join(postprocessing.__all__)} or a dotted path",
                            lines.get(f"{key}.post_processor"))
        pp = getattr(postprocessing, pp)
    try:
        return ModelSpec(name=name, estimator=estimator, params=params, model_kwargs=fixed,
                         requires_inner_cv=_as_bool(tune, f"{key}.tune", lines.get(f"{key}.tune")),
                         fit_kwargs=fit_kwargs,
                         add_merf=_as_bool(entry.get("merf", False), f"{key}.merf", lines.get(f"{key}.merf")),
                         post_processor=pp)
    except CellError:
        raise
    except MixcvError as exc:
        k = cell_key(exc.field)
        if k not in lines:
            # "params"/"model_kwargs" errors name the offending parameter in the message.
            named = [p for p in entry if p not in MODEL_KEYS and f"{p!r}" in exc.message]
            if named:
                k = f"{key}.{named[0]}"
            elif exc.field.endswith(".model") and f"{key}.model" in lines:
                k = f"{key}.model"
            else:
                k = key
        raise CellError(k, exc.message, lines.get(k, line)) from None


# -- parse -----------------------------------------------------------------------------
def parse_cell(text: str, line_offset: int = 1) -> ParsedCell:
    """Parse ``%%mixcv`` cell text into an `ExperimentSpec`.

    Parameters
    ----------
    text : str
        The cell body (everything after the ``%%mixcv`` line).
    line_offset : int, default=1
        Added to line numbers in errors (1: the ``%%mixcv`` line is line 1).

    Raises
    ------
    CellError
        Naming the line and the key: unknown keys, bad ranges, bad values.
    """
    if not isinstance(text, str) or not text.strip():
        raise CellError("cell", "the cell is empty; it needs at least data, target and models "
                                "(%mixcv help shows the syntax)", None)
    lines: dict[str, int] = {}
    written: dict[str, str] = {}
    node = _compose(text, line_offset)
    raw = _to_py(node, "", lines, line_offset, written)
    if not isinstance(raw, Mapping):
        raise CellError("cell", "expected key: value lines, e.g. 'target: y'", line_offset + 1)
    # Every section is parsed even when an earlier one failed, so one run names every
    # mistake (up to a handful); the spec is built only from a cell without any.
    problems = _Problems()
    problems.attempt(_check_keys, raw, TOP_KEYS, "", lines)
    # A misspelt required key is one mistake, already named with its "did you mean".
    meant = {m for k in raw if k not in TOP_KEYS for m in difflib.get_close_matches(str(k), TOP_KEYS, 1)}
    missing = [r for r in ("data", "target", "models") if r not in raw or raw[r] in (None, "")]
    for required in missing:
        if required in raw or required not in meant:
            problems.found.append(CellError(required, {"data": "name the DataFrame, e.g. 'data: df'",
                                                       "target": "name the column to predict, e.g. 'target: y'",
                                                       "models": "list at least one model under 'models:'"}[required],
                                            lines.get(required)))
    # A missing required key is one more entry in the list: the sections that do not need
    # it are still checked, so their mistakes are listed with it.

    def at(key: str) -> int | None:
        return lines.get(key)

    frame = raw.get("data", "")
    if "data" not in missing and (not isinstance(frame, str) or not frame.isidentifier()):
        problems.found.append(CellError("data", f"expected the name of a DataFrame variable, got {frame!r}",
                                        at("data")))

    def column(key: str) -> Any:
        # Column names exactly as written: YAML would read `yes` as True, `007` as 7 and
        # `1e3` as 1000.0, none of which is the column the user named.
        value = raw[key]
        if isinstance(value, list):
            return [written.get(f"{key}[{i}]", v) for i, v in enumerate(value)]
        return written.get(key, value)

    def make_data() -> DataSpec:
        try:
            return DataSpec(target=str(column("target")),
                            groups=None if raw.get("groups") is None else (
                                _names(column("groups"), "groups", at("groups"))
                                if isinstance(raw["groups"], list) else str(column("groups"))),
                            random=None if raw.get("random") is None else str(column("random")),
                            split_by=_names(column("split_by") if "split_by" in raw else None, "split_by",
                                            at("split_by")),
                            slopes=_names(column("slopes") if "slopes" in raw else None, "slopes", at("slopes")),
                            features=None if raw.get("features") is None else _names(column("features"),
                                                                                      "features", at("features")),
                            frame=str(frame), dataset_name=str(raw.get("name") or ""))
        except CellError:
            raise
        except MixcvError as exc:
            k = cell_key(exc.field)
            raise CellError(k, exc.message, at(k)) from None

    data = None if "target" in missing else problems.attempt(make_data)

    def make_scale() -> tuple[bool, bool]:
        scale = raw.get("scale", True)
        if isinstance(scale, Mapping):
            _check_keys(scale, ("outer", "inner"), "scale.", lines)
            return (_as_bool(scale.get("outer", True), "scale.outer", at("scale.outer")),
                    _as_bool(scale.get("inner", True), "scale.inner", at("scale.inner")))
        both = _as_bool(scale, "scale", at("scale"))
        return both, both

    s_out, s_in = problems.attempt(make_scale) or (True, True)

    def make_split(level: str, scaled: bool) -> SplitSpec:
        method, n_splits = _parse_split(raw.get(level, "KFold(5)"), level, at(level))
        extra = {"n_repeats": raw.get("repeats", 1), "known_holdout": raw.get("known_holdout", 0.0)} \
            if level == "outer" else {}
        try:
            return SplitSpec(method, n_splits, scaled, _field=level, **extra)
        except MixcvError as exc:
            k = cell_key(exc.field) if exc.field in CELL_KEYS and cell_key(exc.field) in raw else level
            raise CellError(k, exc.message, at(k)) from None

    outer = problems.attempt(make_split, "outer", s_out)
    inner = problems.attempt(make_split, "inner", s_in)

    def make_tuning() -> TuningSpec:
        try:
            trials = raw.get("trials", 100)
            objective = raw.get("objective")
            scorer = None if objective is None else import_dotted(str(objective), "objective")
            return TuningSpec(n_trials=trials, objective_scorer=scorer,  # type: ignore[arg-type]  # checked there
                              batch=raw.get("trial_batch", 1))
        except MixcvError as exc:
            k = cell_key(exc.field) if exc.field in CELL_KEYS else "objective"
            raise CellError(k, exc.message, at(k)) from None

    tuning = problems.attempt(make_tuning)

    def make_merf() -> MerfSpec:
        merf_raw = raw.get("merf", {})
        if isinstance(merf_raw, bool):
            merf_raw = {"all": merf_raw}
        elif isinstance(merf_raw, int):
            merf_raw = {"all": True, "iterations": merf_raw}
        if not isinstance(merf_raw, Mapping):
            raise CellError("merf", f"expected true, a number of iterations, or {{all: ..., iterations: ...}}, "
                                    f"got {merf_raw!r}", at("merf"))
        _check_keys(merf_raw, MERF_KEYS, "merf.", lines)
        try:
            return MerfSpec(**{MERF_FIELDS[k]: v for k, v in merf_raw.items()})
        except MixcvError as exc:
            sub = {f"merf.{field}": key for key, field in MERF_FIELDS.items()}.get(exc.field, "")
            k = f"merf.{sub}" if sub and f"merf.{sub}" in lines else "merf"
            raise CellError(k, exc.message, at(k)) from None

    merf = problems.attempt(make_merf)

    def make_metrics() -> dict[str, Any] | None:
        metrics_raw = raw.get("metrics")
        if metrics_raw is None:
            return None
        items = metrics_raw.items() if isinstance(metrics_raw, Mapping) else [
            (str(m).rpartition(".")[2], m) for m in (metrics_raw if isinstance(metrics_raw, list) else [metrics_raw])]
        metrics = {}
        for name, ref in items:
            if isinstance(ref, str) and "." in ref:
                try:
                    metrics[name] = import_dotted(ref, "metrics")
                except MixcvError as exc:
                    raise CellError("metrics", exc.message, at("metrics")) from None
            else:
                metrics[name] = ref
        try:
            resolve_metrics(metrics)  # type: ignore[arg-type]  # checked there; unknown names now, with the cell's other mistakes
        except MixcvError as exc:
            # The rule names one metric as metrics['x']; where the cell gave it a key, the cell's own
            # spelling of that key is metrics.x (a list entry has no key of its own).
            one = isinstance(metrics_raw, Mapping) and re.fullmatch(r"metrics\[(['\"])(.*)\1\]", exc.field)
            raise CellError(f"metrics.{one.group(2)}" if one else "metrics", exc.message, at("metrics")) from None
        return metrics

    metrics = problems.attempt(make_metrics)

    models_raw = {} if "models" in missing else raw["models"]
    if isinstance(models_raw, list):
        if all(isinstance(m, str) for m in models_raw):
            models_raw = {m: None for m in models_raw}
        else:
            problems.found.append(CellError("models", "a list of models must hold model names only; give settings "
                                                      "as 'name:' lines with indented parameters", at("models")))
            models_raw = {}
    elif "models" not in missing and (not isinstance(models_raw, Mapping) or not models_raw):
        problems.found.append(CellError("models", "expected one model per line under 'models:'", at("models")))
        models_raw = {}
    models = [problems.attempt(_model, name, entry, lines) for name, entry in models_raw.items()]

    def check_setting(rule: str, key: str) -> None:
        # Each run-wide setting on its own, so a cell with several wrong ones lists them all
        # (up to MAX_REPORTED) rather than the first the spec happens to check.
        if key in raw:
            try:
                check(rule, raw[key], key)
            except MixcvError as exc:
                raise CellError(key, exc.message, at(key)) from None

    for rule, key in (("seed", "seed"), ("n_jobs", "n_jobs"), ("on_error", "on_error"), ("timeout", "timeout"),
                      ("break_cross_val", "break_cross_val"), ("backend", "backend"), ("scheduler", "scheduler"),
                      ("predict_known_groups_lmm", "predict_known_groups")):
        problems.attempt(check_setting, rule, key)
    problems.raise_if_any()
    # From here on every section was parsed (None above only ever stood for a noted problem).

    try:
        spec = ExperimentSpec(
            data=cast(DataSpec, data), models=tuple(cast(list[ModelSpec], models)), outer=cast(SplitSpec, outer),
            inner=cast(SplitSpec, inner), tuning=cast(TuningSpec, tuning), merf=cast(MerfSpec, merf),
            metrics=TASK_DEFAULTS if metrics is None else resolve_metrics(metrics),
            predict_known_groups_lmm=_as_bool(raw.get("predict_known_groups", True), "predict_known_groups",
                                              at("predict_known_groups")),
            seed=raw.get("seed", 42), n_jobs=raw.get("n_jobs", 1), on_error=raw.get("on_error", "keep"),
            timeout=raw.get("timeout"), break_cross_val=raw.get("break_cross_val", False),
            backend=raw.get("backend", "local"), scheduler=raw.get("scheduler"),
            task=raw.get("task"), positive_class=_label(raw.get("positive_class"), written.get("positive_class")))
    except CellError:
        raise
    except MixcvError as exc:
        raise _locate(lines, exc) from None
    return ParsedCell(spec=spec, frame=frame, lines=lines)


def parse_param(text: str, key: str = "value") -> od.BaseDistribution | Any:
    """One parameter value as written in a cell: a range (``int(2, 9)``...) or a fixed value.

    Returns an Optuna distribution for a range, else the plain value (``100``, ``auto``,
    ``true``...). Raises `CellError` naming ``key`` for a malformed range.
    """
    if not isinstance(text, str):
        return text
    dist = _parse_range(text, key, None)
    return dist if dist is not None else _scalar(text)


def param_text(value: Any) -> str:
    """The cell text of a parameter value or range; `parse_param` reads it back."""
    import optuna.distributions as od
    if isinstance(value, od.BaseDistribution):
        return _range_text(value)
    return _text(value)


# -- render ----------------------------------------------------------------------------
def _text(value: Any) -> str:
    """A scalar or list as YAML text that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
        return repr(value)
    if isinstance(value, str):
        plain = (value and not any(c in value for c in ",()[]{}:#&*!|>'\"%@`") and value.strip() == value
                 and _scalar(value) == value and not _RANGE_RE.match(value))
        return value if plain else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_text(str(k))}: {_text(v)}" for k, v in value.items()) + "}"
    raise SpecError("cell", f"{value!r} cannot be written in a %%mixcv cell")


def _range_text(d: od.BaseDistribution) -> str:
    import optuna.distributions as od
    if isinstance(d, od.IntDistribution):
        extra = (", log" if d.log else "") + (f", step={d.step}" if d.step != 1 else "")
        return f"int({d.low}, {d.high}{extra})"
    if isinstance(d, od.FloatDistribution):
        extra = (", log" if d.log else "") + (f", step={d.step!r}" if d.step is not None else "")
        return f"float({d.low!r}, {d.high!r}{extra})"
    if isinstance(d, od.CategoricalDistribution):
        items = []
        for c in d.choices:
            t = _text(c)
            if isinstance(c, str) and t == c and ("," in c or ")" in c):
                t = json.dumps(c)
            items.append(t)
        return f"choice({', '.join(items)})"
    raise SpecError("params", f"{d!r} has no %%mixcv notation")


def _ref(obj: Any, short: dict[str, Any]) -> str:
    for name, candidate in short.items():
        if candidate is obj:
            return name
    path = dotted_path(obj)
    if "<" in path:
        raise SpecError("cell", f"{obj!r} is defined locally and cannot be named in a cell")
    return path


def spec_to_cell(spec: ExperimentSpec) -> str:
    """The ``%%mixcv`` cell body that parses back to ``spec``.

    Raises
    ------
    SpecError
        For parts the cell text cannot express: splitter objects, locally defined
        functions, a spec without a DataFrame name.
    """
    if not spec.data.frame:
        raise SpecError("data.frame", "the spec does not name its DataFrame; set DataSpec(frame=...)")
    for level in ("outer", "inner"):
        if not getattr(spec, level).is_named:
            raise SpecError(f"{level}.method", "a splitter object cannot be written in a cell; use a named split")
    d = spec.data
    out = [f"data: {_text(d.frame)}"]   # quoted when YAML would read it otherwise ("no", "null")
    if d.dataset_name:
        out.append(f"name: {_text(d.dataset_name)}")
    out.append(f"target: {_text(d.target)}")
    if d.groups is not None:
        out.append(f"groups: {_text(list(d.groups) if isinstance(d.groups, tuple) else d.groups)}")
    if d.slopes:
        out.append(f"slopes: {_text(list(d.slopes))}")
    if d.random is not None:
        out.append(f"random: {_text(d.random)}")
    if d.split_by:
        out.append(f"split_by: {_text(d.split_by[0] if len(d.split_by) == 1 else list(d.split_by))}")
    if d.features is not None:
        out.append(f"features: {_text(list(d.features))}")
    out.append(f"outer: {spec.outer.method}({spec.outer.n_splits})")
    out.append(f"inner: {spec.inner.method}({spec.inner.n_splits})")
    if spec.outer.n_repeats != 1:
        out.append(f"repeats: {spec.outer.n_repeats}")
    if spec.outer.known_holdout:
        out.append(f"known_holdout: {_text(spec.outer.known_holdout)}")
    if not (spec.outer.scale and spec.inner.scale):
        if spec.outer.scale == spec.inner.scale:
            out.append("scale: false")
        else:
            out.append(f"scale: {{outer: {_text(spec.outer.scale)}, inner: {_text(spec.inner.scale)}}}")
    out.append(f"trials: {spec.tuning.n_trials}")
    if spec.tuning.objective_scorer is not None:
        out.append(f"objective: {_ref(spec.tuning.objective_scorer, {})}")
    if spec.tuning.batch != 1:
        out.append(f"trial_batch: {spec.tuning.batch}")
    builtin = {name: fn for name, fn in METRICS.items()}
    names = list(spec.metrics)
    # Metrics left to the task are left out: the cell then gets the defaults of the task it infers.
    if not spec.metrics_follow_task and (names != ["r2", "mse", "mae"]
                                         or any(spec.metrics[n] is not METRICS.get(n) for n in names)):
        refs = {n: (n if METRICS.get(n) is fn else _ref(fn, builtin)) for n, fn in spec.metrics.items()}
        if all(r == n or r.rpartition(".")[2] == n for n, r in refs.items()):
            out.append(f"metrics: [{', '.join(refs.values())}]")
        else:
            out.append("metrics: {" + ", ".join(f"{n}: {r}" for n, r in refs.items()) + "}")
    m, default = spec.merf, MerfSpec()
    if m != default:
        parts = [f"{key}: {_text(getattr(m, field))}" for key, field in MERF_FIELDS.items()
                 if getattr(m, field) != getattr(default, field) or key == "iterations"]
        out.append("merf: {" + ", ".join(parts) + "}")
    if not spec.predict_known_groups_lmm:
        out.append("predict_known_groups: false")
    if spec.task is not None:
        out.append(f"task: {spec.task}")
    if spec.positive_class is not None:
        out.append(f"positive_class: {_text(spec.positive_class)}")
    out.append(f"seed: {spec.seed}")
    if spec.n_jobs != 1:
        out.append(f"n_jobs: {spec.n_jobs}")
    if spec.backend != "local":
        out.append(f"backend: {spec.backend}")
    if spec.scheduler is not None:
        out.append(f"scheduler: {_text(spec.scheduler)}")
    if spec.on_error != "keep":
        out.append(f"on_error: {spec.on_error}")
    if spec.timeout is not None:
        out.append(f"timeout: {spec.timeout:g}")
    if spec.break_cross_val:
        out.append("break_cross_val: true")
    out.append("models:")
    pps = {n: getattr(postprocessing, n) for n in postprocessing.__all__}
    for model in spec.models:
        est = model.estimator
        est_name = estimator_name(est)  # type: ignore[arg-type]
        if "." in est_name:
            est_name = _ref(est, {})
        body = []
        if est_name != model.name:
            body.append(f"model: {est_name}")
        for k, v in model.model_kwargs.items():
            body.append(f"{k}: {_text(v)}")
        for k, dist in model.params.items():
            body.append(f"{k}: {_range_text(dist)}")
        if model.requires_inner_cv != bool(model.params):
            body.append(f"tune: {_text(model.requires_inner_cv)}")
        if model.fit_kwargs:
            body.append(f"fit: {_text(dict(model.fit_kwargs))}")
        if model.add_merf:
            body.append("merf: true")
        if model.post_processor is not None:
            body.append(f"post_processor: {_ref(model.post_processor, pps)}")
        key = model.name if _text(model.name) == model.name else json.dumps(model.name)
        out.append(f"  {key}:")
        out.extend(f"    {line}" for line in body)
    return "\n".join(out) + "\n"
