"""Validation rules as data: what every setting accepts, written once.

A rule is a small immutable value — `Integer`, `Real`, `Boolean`, `Options` — that
checks a value and raises an error naming the field, in the words a user can act on
("must be an integer >= 2, got 1"). `RULES` maps each field path of the spec
(``outer.n_splits``, ``merf.max_iterations``, ``seed`` ...) to its rule. The spec,
the fluent builder, MERF's own parameters and the widget form's bounds all read it,
and the bad-input tests are generated from it (`Rule.invalid_values`), so a bound
changed here changes everywhere at once.

In the spirit of scikit-learn's ``sklearn/utils/_param_validation.py`` (``Interval``,
``StrOptions``, ``generate_invalid_param_val``), with mixcv's errors.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, SpecTypeError

__all__ = ["Rule", "Integer", "Real", "Boolean", "Options", "Address", "RULES", "check", "check_function",
           "MAX_SEED", "ON_ERROR", "BACKENDS"]

#: numpy and scikit-learn seeds (``KFold(random_state=...)``) are 32-bit.
MAX_SEED = 2**32 - 1
#: What a failing fit does to the run: recorded and skipped, or raised at once.
ON_ERROR = ("keep", "raise")
#: Where the outer-fold tasks run: this machine (inline, or worker processes with n_jobs) or a Dask cluster.
BACKENDS = ("local", "dask")


class Rule(ABC):
    """A constraint on one value."""

    none: bool = False

    @abstractmethod
    def check(self, value: Any, field: str) -> Any:
        """Return ``value`` (normalised, e.g. numpy integers to int) or raise naming ``field``."""

    @abstractmethod
    def describe(self) -> str:
        """What is accepted, as the end of "expected ..."."""

    @abstractmethod
    def invalid_values(self) -> list[Any]:
        """Values this rule refuses (for generated bad-input tests)."""


def _bounds(low: float | None, high: float | None, closed: str) -> str:
    left = ">=" if closed in ("left", "both") else ">"
    right = "<=" if closed in ("right", "both") else "<"
    if low is not None and high is not None:
        return f"{left} {low} and {right} {high}"
    if low is not None:
        return f"{left} {low}"
    if high is not None:
        return f"{right} {high}"
    return ""


@dataclass(frozen=True)
class Integer(Rule):
    """A whole number in ``[low, high]``; ``bool`` is refused ("n_splits=True" is a mistake, not 1).

    Examples
    --------
    >>> Integer(2).check(5, "outer.n_splits")
    5
    >>> Integer(2).check(1, "outer.n_splits")
    Traceback (most recent call last):
    ...
    mixcv_core.errors.SpecError: outer.n_splits: must be an integer >= 2, got 1
    """

    low: int | None = None
    high: int | None = None
    exclude: tuple[int, ...] = ()
    none: bool = False
    text: str = ""   # what is accepted, in the user's words, when the bounds alone say it badly

    def describe(self) -> str:
        if self.text:
            return self.text + (", or None" if self.none else "")
        text = "an integer"
        bounds = _bounds(self.low, self.high, "both")
        if bounds:
            text += f" {bounds}"
        if self.exclude:
            text += f" other than {', '.join(map(str, self.exclude))}"
        return text + (", or None" if self.none else "")

    def check(self, value: Any, field: str) -> Any:
        if value is None and self.none:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r} ({type(value).__name__})")
        v = int(value)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high) or v in self.exclude:
            raise SpecError(field, f"must be {self.describe()}, got {v}")
        return v

    def invalid_values(self) -> list[Any]:
        bad: list[Any] = [True, 2.5, "3"]
        if not self.none:
            bad.append(None)
        if self.low is not None:
            bad.append(self.low - 1)
        if self.high is not None:
            bad.append(self.high + 1)
        bad.extend(self.exclude)
        return bad


@dataclass(frozen=True)
class Real(Rule):
    """A finite number between ``low`` and ``high``; ``closed`` says which ends are included."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    none: bool = False

    def describe(self) -> str:
        bounds = _bounds(self.low, self.high, self.closed)
        return "a number" + (f" {bounds}" if bounds else "") + (", or None" if self.none else "")

    def check(self, value: Any, field: str) -> Any:
        if value is None and self.none:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r} ({type(value).__name__})")
        v = float(value)
        low_ok = self.low is None or (v >= self.low if self.closed in ("left", "both") else v > self.low)
        high_ok = self.high is None or (v <= self.high if self.closed in ("right", "both") else v < self.high)
        if not math.isfinite(v) or not (low_ok and high_ok):
            raise SpecError(field, f"must be {self.describe()}, got {value!r}")
        return v

    def invalid_values(self) -> list[Any]:
        bad: list[Any] = [True, "0.1", math.nan, math.inf]
        if not self.none:
            bad.append(None)
        if self.low is not None:
            bad.append(self.low - 1 if self.closed in ("left", "both") else self.low)
        if self.high is not None:
            bad.append(self.high + 1 if self.closed in ("right", "both") else self.high)
        return bad


@dataclass(frozen=True)
class Boolean(Rule):
    """``True`` or ``False`` and nothing else (not 0/1, not "yes")."""

    none: bool = False

    def describe(self) -> str:
        return "True or False" + (" or None" if self.none else "")

    def check(self, value: Any, field: str) -> Any:
        if value is None and self.none:
            return None
        if not isinstance(value, bool):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r}")
        return value

    def invalid_values(self) -> list[Any]:
        return [0, 1, "yes", "true"] + ([] if self.none else [None])


@dataclass(frozen=True)
class Options(Rule):
    """One of a fixed set of strings."""

    options: tuple[str, ...]
    none: bool = False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options) + (" or None" if self.none else "")

    def check(self, value: Any, field: str) -> Any:
        if value is None and self.none:
            return None
        if not isinstance(value, str):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r}")
        if value not in self.options:
            import difflib
            close = difflib.get_close_matches(value, self.options, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(field, f"must be {self.describe()}, got {value!r}{hint}")
        return value

    def invalid_values(self) -> list[Any]:
        return ["", self.options[0].upper() + "x", 1] + ([] if self.none else [None])


@dataclass(frozen=True)
class Address(Rule):
    """A network address with one of ``schemes``, e.g. a Dask scheduler's ``tcp://10.0.0.5:8786``."""

    schemes: tuple[str, ...]
    none: bool = False

    def describe(self) -> str:
        return ("an address such as " + " or ".join(f"'{s}://host:port'" for s in self.schemes[:2])
                + (" or None" if self.none else ""))

    def check(self, value: Any, field: str) -> Any:
        if value is None and self.none:
            return None
        if not isinstance(value, str):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r}")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in self.schemes or not rest.strip() or any(c.isspace() for c in value):
            raise SpecError(field, f"must be {self.describe()} (schemes: {', '.join(self.schemes)}), got {value!r}")
        return value

    def invalid_values(self) -> list[Any]:
        return ["", "localhost:8786", "http://", 8786] + ([] if self.none else [None])


#: Every checked setting of an `ExperimentSpec`, by field path. ``models.<attr>``
#: applies to each model (its errors name ``models['<name>'].<attr>``).
RULES: dict[str, Rule] = {
    "outer.n_splits": Integer(2),
    "inner.n_splits": Integer(2),
    "outer.scale": Boolean(),
    "outer.n_repeats": Integer(1),
    "outer.known_holdout": Real(0.0, 0.5),
    "inner.scale": Boolean(),
    "tuning.n_trials": Integer(1),
    "tuning.batch": Integer(1),
    "merf.add_merf_global": Boolean(),
    "merf.max_iterations": Integer(1),
    "merf.stopping_threshold": Real(0.0, None, closed="neither", none=True),
    "merf.stopping_window": Integer(1, none=True),
    "merf.linear_fixed_effects": Boolean(),
    "merf.em_estimators": Integer(1, none=True),
    "models.requires_inner_cv": Boolean(),
    "models.add_merf": Boolean(),
    "predict_known_groups_lmm": Boolean(),
    "seed": Integer(0, MAX_SEED),
    "n_jobs": Integer(-1, exclude=(0,), text="a positive number of processes, or -1 for all cores"),
    "on_error": Options(ON_ERROR),
    "backend": Options(BACKENDS),
    "scheduler": Address(("tcp", "tls", "ucx", "inproc", "ws", "wss"), none=True),
    "timeout": Real(0.0, None, closed="neither", none=True),
    "break_cross_val": Boolean(),
}


def check(rule: str, value: Any, field: str | None = None) -> Any:
    """Check ``value`` against ``RULES[rule]``; errors name ``field`` (default: the rule's path).

    Examples
    --------
    >>> check("n_jobs", -1)
    -1
    >>> check("seed", 7, field="random_seed")
    7
    """
    return RULES[rule].check(value, rule if field is None else field)


#: Modules whose functions are never a metric, objective or post-processor: naming one in a
#: cell or a stored spec is a mistake at best, and an attempt to run something at worst.
_SYSTEM_MODULES = {"builtins", "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "pickle",
                   "marshal", "ctypes", "socket", "runpy", "code", "pty", "webbrowser"}


def check_function(fn: Any, field: str, arguments: tuple[str, ...], classes: bool = False,
                   or_arguments: tuple[str, ...] | None = None) -> Any:
    """A user-supplied function (metric, objective, post-processor) of the expected shape.

    It must be callable with ``len(arguments)`` positional arguments (named in the message),
    come from no system module (``builtins.eval``, ``os.system``...), and be a plain function
    rather than a class unless ``classes`` (post-processor classes are instantiated first).
    """
    import inspect
    if not callable(fn):
        raise SpecTypeError(field, f"expected a function f({', '.join(arguments)}), got {fn!r}")
    module = (getattr(fn, "__module__", None) or "").split(".")[0]
    if module in _SYSTEM_MODULES:
        raise SpecError(field, f"{getattr(fn, '__qualname__', fn)!r} from {module!r} is not a function "
                               f"f({', '.join(arguments)}); write one in your own module")
    if isinstance(fn, type):
        if classes:
            return fn
        raise SpecTypeError(field, f"expected a function f({', '.join(arguments)}), got the class {fn.__name__}")
    try:
        signature = inspect.signature(fn)
    except ValueError:   # no signature to inspect (some C functions): the call will tell
        return fn
    shapes = [arguments] + ([or_arguments] if or_arguments else [])
    for shape in shapes:
        try:
            signature.bind(*shape)
            return fn
        except TypeError:
            continue
    raise SpecError(field, f"{getattr(fn, '__name__', fn)!r} cannot be called as "
                           + " or ".join(f"f({', '.join(shape)})" for shape in shapes))
