"""The magic's settings and where each value comes from, in one order written once.

A setting (`SETTINGS`: the run store, n_jobs, backend, quiet, the default seed, the live
view's refresh interval) can be given in six places; the first that gives a value wins
(`PRECEDENCE`, strongest first):

1. ``option`` — the ``%%mixcv`` line, for this cell: ``--n-jobs 4``, ``--store DIR``, ``--quiet``;
2. ``cell`` — the cell body, for this experiment: ``n_jobs: 4``, ``seed: 7``, ``backend: dask``;
3. ``config`` — ``%config MixcvMagic.n_jobs = 4``, for this session (or an IPython profile);
4. ``environment`` — ``MIXCV_N_JOBS=4``, for the process the kernel runs in;
5. ``pyproject`` — ``n_jobs = 4`` in the ``[tool.mixcv]`` table of the nearest
   ``pyproject.toml`` above the working folder, for the project;
6. ``default`` — mixcv's own.

Why this order: the nearer a value is to the run, the more deliberately it was chosen for
it. A cell's option or key is written for that experiment and travels with it; ``%config``
is typed in this notebook today; the environment belongs to the machine or the job that
started the kernel (a cluster job sets ``MIXCV_N_JOBS`` for its allocation); a project's
``pyproject.toml`` is shared by everyone on the project and should yield to each of them.
It is also the order command-line tools keep (flag > environment > file > default), with
``%config`` as the notebook's flag for the whole session.

Every value is checked by its rule (`mixcv_core.constraints`) where it is read, so an error
names the place it came from (``$MIXCV_N_JOBS: must be ...``); a setting name that is not
one — in ``%config``, in ``[tool.mixcv]``, or a ``MIXCV_*`` variable close to a setting's
— is refused with the nearest valid name.

The form (`mixcv_jupyter.form`) has no cell: it opens with what sources 3 to 6 give for the
settings it shows, and what the user then chooses in it wins for that run (`FORM_PRECEDENCE`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from mixcv_core import MixcvError
from mixcv_core.constraints import RULES, Boolean, Integer, Real, Rule
from mixcv_core.errors import SpecTypeError
from mixcv_core.experiment.spec import ExperimentSpec

__all__ = ["Setting", "SETTINGS", "PRECEDENCE", "FORM_PRECEDENCE", "CONFIG_CLASS", "ENV_PREFIX", "Resolved",
           "SettingError", "resolve", "env_name", "find_pyproject", "store_folder", "STORE_OFF",
           "SOURCE_NAMES", "precedence_text"]

#: The traitlets class name: ``%config MixcvMagic.<name>``.
CONFIG_CLASS = "MixcvMagic"
ENV_PREFIX = "MIXCV_"
#: Where a value may come from, strongest first: the first source that gives one wins.
PRECEDENCE = ("option", "cell", "config", "environment", "pyproject", "default")
#: The order in the form: its control (what the user chose there), then the sources `resolve`
#: reads when the form opens (a form has no %%mixcv line or cell).
FORM_PRECEDENCE = ("form", "config", "environment", "pyproject", "default")
#: How each source is written, for help and the README (`precedence_text`).
SOURCE_NAMES = {"option": "%%mixcv option", "cell": "cell key", "config": "%config MixcvMagic",
                "environment": "MIXCV_* variable", "pyproject": "[tool.mixcv] in pyproject.toml",
                "default": "default", "form": "the form's control"}
#: Values of the store setting that switch recording off (as ``$MIXCV_STORE`` in `mixcv_core.tracking.store`).
STORE_OFF = ("off", "none", "0", "false", "")
#: Other ``MIXCV_*`` variables mixcv reads, which are not settings of the magic.
OTHER_VARIABLES = ("MIXCV_CORES", "MIXCV_THEME")


class _Folder(Rule):
    """A folder name (text); one of `STORE_OFF` switches the store off."""

    def check(self, value: Any, field: str) -> Any:
        if not isinstance(value, str):
            raise SpecTypeError(field, f"expected {self.describe()}, got {value!r} ({type(value).__name__})")
        return value

    def describe(self) -> str:
        return "a folder, or off to record nothing"

    def invalid_values(self) -> list[Any]:
        return [3, True]


def _spec_default(name: str) -> Any:
    # The experiment's own defaults (ExperimentSpec), not a second copy of them.
    return {f.name: f.default for f in dataclasses.fields(ExperimentSpec)}[name]


@dataclass(frozen=True)
class Setting:
    """One setting of the magic: its rule, its default, what it does, and which option
    of ``%%mixcv`` and which cell key (if any) set it for one cell."""

    name: str
    rule: Rule
    default: Any
    help: str
    option: str | None = None
    cell_key: str | None = None


#: Every setting, in the order help lists them.
SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("store", _Folder(), ".mixcv", "the run store folder; off records nothing", option="--store"),
    Setting("n_jobs", RULES["n_jobs"], _spec_default("n_jobs"),
            "outer folds in this many processes, -1 for all cores", option="--n-jobs", cell_key="n_jobs"),
    Setting("backend", RULES["backend"], _spec_default("backend"), "where the folds run: local or dask",
            option="--backend", cell_key="backend"),
    Setting("quiet", Boolean(), False, "no live view; say only how the run ended", option="--quiet"),
    Setting("seed", RULES["seed"], _spec_default("seed"), "the seed of a cell that names none", cell_key="seed"),
    Setting("refresh", Real(0.0, 60.0, closed="right"), 0.2,
            "seconds between updates of the live view's progress table"),
)}


def precedence_text(order: tuple[str, ...] = PRECEDENCE) -> str:
    """The order of precedence in words: ``%%mixcv option > cell key > ...`` (or the form's, given
    `FORM_PRECEDENCE`)."""
    return " > ".join(SOURCE_NAMES[source] for source in order)


def env_name(name: str) -> str:
    """The environment variable of a setting: ``n_jobs`` -> ``MIXCV_N_JOBS``."""
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class Resolved:
    """A setting's value, the source it came from (one of `PRECEDENCE`) and where exactly,
    as the user would look for it."""

    value: Any
    source: str
    where: str


def _nearest(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class SettingError(UsageError):
    """A value a setting's rule refuses, written where ``where`` says: the message names that place
    (``$MIXCV_N_JOBS: expected ...``); ``setting`` names the setting, so a form can show the
    message next to its control."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def _unknown(where: str, word: str, names: list[str]) -> UsageError:
    return UsageError(f"{where}: no setting named {word!r}{_nearest(word, names)}; the settings are "
                      f"{', '.join(names)}")


def _checked(setting: Setting, value: Any, where: str) -> Any:
    try:
        return setting.rule.check(value, setting.name)
    except MixcvError as exc:
        raise SettingError(setting.name, f"{where}: {exc.message}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _from_text(setting: Setting, text: str, where: str) -> Any:
    """An environment variable's text as the setting's type."""
    rule, word = setting.rule, text.strip()
    try:
        if isinstance(rule, Boolean):
            if word.lower() not in _TRUE + _FALSE:
                raise SettingError(setting.name,
                                   f"{where}: expected true or false (also 1/0, yes/no, on/off), got {text!r}")
            return word.lower() in _TRUE
        if isinstance(rule, Integer):
            return int(word)
        if isinstance(rule, Real):
            return float(word)
    except ValueError:
        raise SettingError(setting.name, f"{where}: expected {rule.describe()}, got {text!r}") from None
    return text


def _environment(environ: Mapping[str, str]) -> dict[str, Resolved]:
    names = {env_name(n): s for n, s in SETTINGS.items()}
    found = {}
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX) or var in OTHER_VARIABLES:
            continue
        setting = names.get(var)
        if setting is None:
            # Only a near miss is a typo: other programs may use the prefix for their own.
            close = difflib.get_close_matches(var, list(names), n=1, cutoff=0.8)
            if close:
                raise UsageError(f"${var}: no such setting (did you mean ${close[0]}?)")
            continue
        where = f"${var}"
        found[setting.name] = Resolved(_checked(setting, _from_text(setting, text, where), where), "environment",
                                       where)
    return found


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` (default: the working folder) or above it."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def _pyproject(path: Path | None) -> dict[str, Resolved]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read as TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("mixcv") if isinstance(tool, dict) else None
    if table is None:
        near = difflib.get_close_matches("mixcv", list(tool) if isinstance(tool, dict) else [], n=1, cutoff=0.7)
        if near:
            raise UsageError(f"{path}: [tool.{near[0]}] is not a table mixcv reads (did you mean [tool.mixcv]?)")
        return {}
    if not isinstance(table, dict):
        raise UsageError(f"{path}: tool.mixcv must be a table of settings, e.g. [tool.mixcv] with n_jobs = 4")
    found = {}
    for key, value in table.items():
        where = f"{path} [tool.mixcv] {key}"
        if key not in SETTINGS:
            raise _unknown(f"{path} [tool.mixcv]", key, list(SETTINGS))
        found[key] = Resolved(_checked(SETTINGS[key], value, where), "pyproject", where)
    return found


def _config(magic: Any) -> dict[str, Resolved]:
    section = magic.config.get(CONFIG_CLASS, {}) if magic is not None else {}
    for key in list(section):
        if key not in SETTINGS:
            # traitlets only warns when %config is run, and %config cannot unset a name: the run
            # is refused once, naming the nearest setting, and the misspelt name forgotten.
            del section[key]
            raise UsageError(f"%config {CONFIG_CLASS}.{key}: no setting named {key!r}{_nearest(key, list(SETTINGS))}"
                             f", so nothing was run (the name is now forgotten); the settings are "
                             f"{', '.join(SETTINGS)}")
    found = {}
    for name in SETTINGS:
        value = getattr(magic, name, None) if magic is not None else None
        if value is not None:
            where = f"%config {CONFIG_CLASS}.{name}"
            found[name] = Resolved(_checked(SETTINGS[name], value, where), "config", where)
    return found


def resolve(magic: Any = None, given: Mapping[str, Mapping[str, Resolved]] | None = None,
            environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, Resolved]:
    """Every setting's value and where it came from, by `PRECEDENCE`.

    Parameters
    ----------
    magic : MixcvMagic, optional
        Gives the ``config`` source (its traits, set with ``%config``).
    given : mapping, optional
        The ``option`` and ``cell`` sources, read by the caller from the cell at hand:
        ``{"option": {"n_jobs": Resolved(...)}, "cell": {...}}``.
    environ : mapping, default=os.environ
    cwd : Path, default=the working folder
        Where the search for ``pyproject.toml`` starts.

    Raises
    ------
    UsageError
        A value its rule refuses, or a setting name that is not one, naming where it was written.
    """
    sources: dict[str, dict[str, Resolved]] = {name: dict(values) for name, values in (given or {}).items()}
    sources["config"] = _config(magic)
    sources["environment"] = _environment(os.environ if environ is None else environ)
    sources["pyproject"] = _pyproject(find_pyproject(cwd))
    sources["default"] = {n: Resolved(s.default, "default", "default") for n, s in SETTINGS.items()}
    unknown = set(sources) - set(PRECEDENCE)
    assert not unknown, unknown   # a caller's source outside the order would be silently ignored
    return {name: next(sources[src][name] for src in PRECEDENCE if name in sources.get(src, {}))
            for name in SETTINGS}


def store_folder(value: str) -> str | bool:
    """The store setting as `mixcv_core.engine.run` takes it: a folder, or False for none."""
    return False if value.strip().lower() in STORE_OFF else value
