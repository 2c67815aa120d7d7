"""Names a user may type for models: mixcv's own models, every scikit-learn regressor and
classifier, dotted paths; and which task (regression, classification) a model can serve.

The ``%%mixcv`` magic, the widget form and ``set_models`` all resolve model names
here, so a name that works in one front end works in all of them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from types import ModuleType
from typing import Any

from ..errors import SpecError, SpecTypeError

__all__ = ["available_models", "resolve_estimator", "dotted_path", "import_dotted", "estimator_name",
           "param_names", "MOVED_MODULES", "check_parameter_values", "check_fit_arguments",
           "known_module", "unresolved_name", "is_unresolved", "TRUSTED_PACKAGES", "check_model_task",
           "model_kind"]

#: Modules that moved when mixcv_core was cut into layers (format 1 of stored specs
#: may name them in dotted paths). Old path -> new path; `import_dotted` follows it.
MOVED_MODULES: dict[str, str] = {
    "mixcv_core.spec": "mixcv_core.experiment.spec",
    "mixcv_core.splits": "mixcv_core.experiment.splits",
    "mixcv_core.registry": "mixcv_core.experiment.registry",
    "mixcv_core.data": "mixcv_core.experiment.data",
    "mixcv_core.cell": "mixcv_core.experiment.cell",
    "mixcv_core.lmm": "mixcv_core.models.lmm",
    "mixcv_core._groups": "mixcv_core.models._groups",
    "mixcv_core.results": "mixcv_core.results.results",
    "mixcv_core.report": "mixcv_core.results.report",
    "mixcv_core.plots": "mixcv_core.results.plots",
    "mixcv_core.events": "mixcv_core.run.events",
    "mixcv_core.fitting": "mixcv_core.run.fitting",
    "mixcv_core.tuning": "mixcv_core.run.tuning",
    "mixcv_core.fold": "mixcv_core.run.task",
    "mixcv_core.parallel": "mixcv_core.run.parallel",
    "mixcv_core.store": "mixcv_core.tracking.store",
    "mixcv_core.mirrors": "mixcv_core.tracking.mirrors",
}


@lru_cache(maxsize=1)
def _own_models() -> dict[str, type]:
    """mixcv's own model names (they win over a scikit-learn name, as in `_registry`)."""
    from .. import models
    names = {name: obj for name in models.__all__ if isinstance(obj := getattr(models, name), type)}
    # lme4's short name for it, as R users write it.
    names["GLMM"] = models.GeneralizedLinearMixedModel
    return names


@lru_cache(maxsize=1)
def _registry() -> dict[str, type]:
    from sklearn.utils import all_estimators

    names: dict[str, type] = {name: cls for name, cls in all_estimators(type_filter=["regressor", "classifier"])}
    return {**names, **_own_models()}


#: What a scikit-learn estimator that is not a regressor is, by `all_estimators` type filter,
#: and why a regression run cannot use it (a classifier can serve a classification run:
#: `check_model_task`).
_NOT_REGRESSORS: dict[str, str] = {
    "classifier": "a classifier; this run is regression (mixcv predicts a continuous target), so it needs a "
                  "regressor",
    "cluster": "a clustering method, not a model of a target; this run needs a regressor",
    "transformer": "a transformer (it changes features, it predicts nothing); this run needs a regressor "
                   "(mixcv scales features itself: scale: true)",
}


@lru_cache(maxsize=1)
def _sklearn_kinds() -> dict[str, str]:
    """Every scikit-learn estimator name that is not a regressor -> what it is (first kind found)."""
    from sklearn.utils import all_estimators
    kinds: dict[str, str] = {}
    for kind in _NOT_REGRESSORS:
        for name, _ in all_estimators(type_filter=kind):
            kinds.setdefault(name, kind)
    for name, _ in all_estimators():
        kinds.setdefault(name, "other")
    return kinds


def _refuse_sklearn(model: str, field: str) -> None:
    """A scikit-learn estimator that is not a regressor is refused with the reason, not as unknown."""
    kind = _sklearn_kinds().get(model)
    if kind is None:
        return
    reason = _NOT_REGRESSORS.get(kind, "a scikit-learn estimator but not a regressor; this run needs a regressor")
    twin = model.replace("Classifier", "Regressor")   # RandomForestClassifier -> RandomForestRegressor
    hint = f", e.g. {twin!r}" if twin != model and twin in _registry() else " such as 'LinearRegression' or 'Ridge'"
    raise SpecError(field, f"{model} is {reason}{hint}")


def model_kind(cls: type, model_kwargs: Mapping[str, Any] | None = None) -> str:
    """``"classifier"`` (it predicts class probabilities), ``"regressor"``, or ``"other"``.

    A scikit-learn classifier, or a model with ``predict_proba`` and a ``family`` setting
    of ``"binomial"`` (the GLMM, whose Poisson family is a regressor of counts).
    """
    from sklearn.base import ClassifierMixin, RegressorMixin
    family = dict(model_kwargs or {}).get("family", _default(cls, "family"))
    if family is not None:
        return "classifier" if family == "binomial" and callable(getattr(cls, "predict_proba", None)) else "regressor"
    if issubclass(cls, ClassifierMixin):
        return "classifier"
    if issubclass(cls, RegressorMixin):
        return "regressor"
    return "other"


def _default(cls: type, name: str) -> Any:
    try:
        p = inspect.signature(cls.__init__).parameters.get(name)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def check_model_task(cls: type, task: str, field: str, model_kwargs: Mapping[str, Any] | None = None) -> None:
    """Refuse a model that cannot serve ``task``: a classifier in a regression, a model without
    class probabilities (``predict_proba``) in a classification. Errors name ``field`` and a
    counterpart where scikit-learn has one (RandomForestRegressor <-> RandomForestClassifier)."""
    kind = model_kind(cls, model_kwargs)
    name = cls.__name__
    if task == "regression" and kind == "classifier":
        twin = name.replace("Classifier", "Regressor")
        hint = f", e.g. {twin!r}" if twin != name and twin in _registry() else " such as 'LinearRegression' or 'Ridge'"
        family = " (its family is binomial; family='poisson' models counts)" if _default(cls, "family") else ""
        raise SpecError(field, f"{name} is {_NOT_REGRESSORS['classifier']}{hint}{family}; for a target of classes "
                               "set task: classification")
    # A class that says neither (no scikit-learn mixin) serves a classification by having probabilities.
    if task == "classification" and (kind == "regressor" or not callable(getattr(cls, "predict_proba", None))):
        twin = name.replace("Regressor", "Classifier")
        hint = f", e.g. {twin!r}" if twin != name and twin in _registry() else \
            " such as 'LogisticRegression', 'RandomForestClassifier' or 'GeneralizedLinearMixedModel'"
        raise SpecError(field, f"{name} does not predict class probabilities (a classifier with predict_proba); "
                               f"this run is classification, so it needs a classifier{hint}. For a continuous "
                               "target set task: regression")


def available_models() -> list[str]:
    """Model names that can be given by name alone.

    Returns
    -------
    list of str
        mixcv's models and every scikit-learn regressor and classifier, sorted.
    """
    return sorted(_registry())


#: Packages whose modules a name may bring in: importing them runs only code the user
#: installed mixcv to run. Any other module must already be imported by the user.
TRUSTED_PACKAGES = ("sklearn", "mixcv_core")


def known_module(name: str) -> ModuleType | None:
    """The module ``name`` if the user could have typed it, else None; never imports anything else.

    A name in a cell or a stored run is text someone else may have written: importing the
    module it names would run that module's top-level code (``this`` prints, ``antigravity``
    opens a browser, a planted module does anything). So a name resolves only to a module
    of scikit-learn or mixcv (imported on demand) or to one already in ``sys.modules``
    (the user imported it, or ``__main__`` where a notebook defines its functions).
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    if name.split(".")[0] in TRUSTED_PACKAGES:
        try:
            return importlib.import_module(name)
        except ImportError:
            return None
    return None


def import_dotted(path: str, field: str) -> object:
    """The object ``package.module.Name`` names, raising a `SpecError` naming ``field``.

    Only modules `known_module` accepts are used: a module neither part of scikit-learn or
    mixcv nor already imported is refused with the ``import`` line that makes it usable.
    """
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise SpecError(field, f"{path!r} is not a dotted path like 'package.module.Name'")
    module_name = MOVED_MODULES.get(module_name, module_name)
    module = known_module(module_name)
    if module is None:
        raise SpecError(field, f"module {module_name!r} (for {path!r}) is not imported in this session. mixcv "
                               "never imports a module that a cell or a stored run names; it uses scikit-learn, "
                               f"mixcv and modules you imported yourself: run 'import {module_name}' first")
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(field, f"module {module_name!r} has no attribute {attr!r}") from None


class _UnresolvedModel:
    """Stands for a stored model class whose module is not imported: a name, not code."""

    unresolved_path = ""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        raise SpecError("model", _unresolved_message(self.unresolved_path))

    predict = fit


class _UnresolvedFunction:
    """Stands for a stored metric, objective or post-processor whose module is not imported."""

    def __init__(self, module: str, attr: str) -> None:
        self.__module__ = module
        self.__qualname__ = self.__name__ = attr
        self.unresolved_path = f"{module}.{attr}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise SpecError("spec", _unresolved_message(self.unresolved_path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _UnresolvedFunction) and other.unresolved_path == self.unresolved_path

    def __hash__(self) -> int:
        return hash(self.unresolved_path)

    def __repr__(self) -> str:
        return f"<not imported: {self.unresolved_path}>"


def _unresolved_message(path: str) -> str:
    module = path.rpartition(".")[0]
    return (f"{path!r} is only a name here: its module is not imported in this session. Run "
            f"'import {module}' and then re-run or load the run again")


def unresolved_name(path: str, field: str, kind: str) -> object:
    """What a stored run's dotted name stands for while it is only read (listed, loaded, shown).

    The object itself when its module is one `known_module` accepts; otherwise a stand-in
    that keeps the name (``dotted_path`` gives it back) and runs nothing. ``kind`` is
    ``"class"`` (a model) or ``"function"``. `is_unresolved` finds the stand-ins, so a
    re-run can resolve the names again, now through `import_dotted`.
    """
    module_name, _, attr = path.rpartition(".")
    module_name = MOVED_MODULES.get(module_name, module_name)
    if module_name and attr and known_module(module_name) is not None:
        return import_dotted(path, field)
    if not module_name or not attr:
        raise SpecError(field, f"{path!r} is not a dotted path like 'package.module.Name'")
    if kind == "class":
        return type(attr, (_UnresolvedModel,), {"__module__": module_name, "__qualname__": attr,
                                                "unresolved_path": f"{module_name}.{attr}"})
    return _UnresolvedFunction(module_name, attr)


def is_unresolved(obj: object) -> bool:
    """Whether ``obj`` is a stand-in made by `unresolved_name`."""
    return isinstance(obj, _UnresolvedFunction) or (isinstance(obj, type) and issubclass(obj, _UnresolvedModel))


def resolve_estimator(model: str | type, field: str = "model") -> type:
    """Turn a model name, dotted path or class into an estimator class.

    Parameters
    ----------
    model : str or type
        ``"RandomForestRegressor"``, ``"LinearMixedEffectsModel"``,
        ``"sklearn.ensemble.RandomForestRegressor"``, or the class itself.
    field : str
        Field name used in error messages.

    Returns
    -------
    type
        A class with ``fit`` and ``predict``.

    Raises
    ------
    SpecError
        Unknown name (with the closest known names) or a class without ``fit``/``predict``.
    SpecTypeError
        Neither a string nor a class (an instance was passed, for example).
    """
    if isinstance(model, str):
        # mixcv's own names without scikit-learn's registry: building it imports every module of
        # scikit-learn (`all_estimators`), a second at a builder's first add_model.
        own = _own_models()
        registry = own if model in own else _registry()   # the full one holds mixcv's too, winning
        if model in registry:
            cls = registry[model]
        elif "." in model:
            imported = import_dotted(model, field)
            if not isinstance(imported, type):
                raise SpecError(field, f"{model!r} is not a class: pass the estimator class (a dotted path to it)")
            cls = imported
        else:
            _refuse_sklearn(model, field)
            close = difflib.get_close_matches(model, registry, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise SpecError(
                field,
                f"unknown model {model!r}{hint}. Give a scikit-learn regressor or mixcv model "
                "name, a dotted path such as 'mypackage.MyRegressor', or the class itself",
            )
    elif isinstance(model, type):
        cls = model
    else:
        raise SpecTypeError(
            field,
            f"expected a model class or name, got an object of type {type(model).__name__}; "
            "pass the class (e.g. RandomForestRegressor, not RandomForestRegressor()) and its "
            "arguments through model_kwargs",
        )
    if not isinstance(cls, type) or not all(callable(getattr(cls, m, None)) for m in ("fit", "predict")):
        raise SpecError(field, f"{model!r} is not an estimator class with fit and predict methods")
    return cls


def check_parameter_values(cls: type, values: dict[str, list[Any]], field: str) -> None:
    """Refuse, before any fit, a value the estimator would refuse at fit time.

    ``values`` maps a parameter name to every value it may take (a fixed value, each
    choice of a categorical, the ends of a range). scikit-learn estimators declare what
    each parameter accepts (``_parameter_constraints``); a typo such as
    ``choice(absolute_error, absolute_errr)`` would otherwise fail its trials one by one,
    in the middle of a run. Estimators without the declaration are not checked here.
    """
    constraints = getattr(cls, "_parameter_constraints", None)
    if not isinstance(constraints, dict):
        return
    _check_constraints(constraints, values, field, cls.__name__)


def _check_constraints(constraints: dict[str, Any], values: Mapping[str, list[Any]], field: str, who: str) -> None:
    """Each candidate value of each name against scikit-learn's rules for it; errors name ``field[name]``."""
    try:   # scikit-learn's own checker (private, but the one its estimators call in fit)
        from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints
    except ImportError:   # pragma: no cover - an older scikit-learn: fit will say it
        return
    for name, candidates in values.items():
        if name not in constraints:
            continue
        for value in candidates:
            try:
                validate_parameter_constraints({name: constraints[name]}, {name: value}, caller_name=who)
            except InvalidParameterError as exc:
                raise SpecError(f"{field}[{name!r}]", f"{value!r} is not a value {who} accepts: {exc}") from None
            except Exception:  # noqa: BLE001, S112 - a constraint that cannot judge this value: fit will
                continue


def check_fit_arguments(cls: type, values: Mapping[str, Any], field: str, mixed: bool = False,
                        owner: str | None = None, fixed: Mapping[str, Any] | None = None,
                        tuned: Collection[str] = ()) -> None:
    """Refuse, before any fit, an argument to ``cls.fit`` that every fit would refuse.

    mixcv calls ``fit(X, y, **values)`` (mixed models: ``fit(X, y, groups=..., slopes=...,
    **values)``), so each name must be a parameter of ``fit`` that mixcv does not pass
    itself; a ``fit`` taking ``**kwargs`` accepts any other name. Values are checked where
    the ``fit`` declares what it accepts (scikit-learn's ``validate_params`` decorator keeps
    its rules as ``fit._skl_parameter_constraints``). ``owner`` names the model whose entry
    set the arguments when ``cls`` is another estimator fitted with them (its MERF variant).
    An estimator whose accepted arguments depend on its settings says so itself in a
    ``check_fit_kwargs(fixed, tuned, fit_kwargs)`` classmethod (``fixed``: its constructor
    arguments, ``tuned``: the names tuned) raising `SpecError` naming the argument.
    Errors name ``field[name]``.
    """
    if not values:
        return
    fit = getattr(cls, "fit", None)
    try:
        params = list(inspect.signature(fit).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):   # no signature to read (a C extension): the fit will tell
        return
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    ordered = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # X and y go in positionally: naming them again would be "multiple values" in every fit.
    passed = set(ordered[:2]) | ({"groups", "slopes"} if mixed else set())
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in passed]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    who = f"{cls.__name__}.fit" if owner is None else f"{owner}, fitted with the same arguments ({cls.__name__}.fit)"
    for name in values:
        if name in passed:
            raise SpecError(f"{field}[{name!r}]", f"mixcv passes {name!r} to {who} itself, from each fold; "
                                                  "remove it from the fit arguments")
        if name not in named and not open_ended:
            close = difflib.get_close_matches(name, named, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            takes = f"it takes {', '.join(named)}" if named else "it takes no other arguments"
            if owner is not None:
                takes += "; drop the argument, or MERF for this model"
            raise SpecError(f"{field}[{name!r}]", f"{name!r}{hint} is not an argument of {who}: {takes}")
    hook = getattr(cls, "check_fit_kwargs", None)
    if callable(hook):
        try:
            hook(dict(fixed or {}), frozenset(tuned), dict(values))
        except SpecError as exc:
            raise SpecError(f"{field}[{exc.field!r}]", exc.message) from None
    constraints = getattr(fit, "_skl_parameter_constraints", None)
    if isinstance(constraints, dict):
        _check_constraints(constraints, {k: [v] for k, v in values.items()}, field, who)


def dotted_path(obj: type | Callable[..., object]) -> str:
    """The importable ``module.qualname`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def estimator_name(cls: type) -> str:
    """How a model class is written in specs, cells and forms: its registered name when it
    has one (``RandomForestRegressor``), its dotted path otherwise."""
    return cls.__name__ if _is_registered(cls) else dotted_path(cls)


def _is_registered(cls: type) -> bool:
    """Whether ``_registry()[cls.__name__] is cls``, without building the registry when it can be told.

    The registry walks every scikit-learn module (`all_estimators` imports them all: seconds in a
    fresh process), and the store writes each run's spec through `estimator_name`. A class is in
    the registry under its own name only if it is one of mixcv's listed models (they take
    precedence) or a concrete scikit-learn regressor or classifier that a public scikit-learn
    module exposes by that name — which is what `all_estimators` collects. A scikit-learn class
    that fails that test is looked up in the registry itself.
    """
    from .. import models
    name, root = cls.__name__, cls.__module__.split(".")[0]
    if name in models.__all__:
        return getattr(models, name) is cls
    if root != "sklearn":   # every registered class is scikit-learn's or mixcv's (tested)
        return False
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    parts = cls.__module__.split(".")
    public = ".".join(parts[:next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))])
    exposed = getattr(sys.modules.get(public) or importlib.import_module(public), name, None) is cls
    if (exposed and not name.startswith("_") and issubclass(cls, BaseEstimator)
            and issubclass(cls, (RegressorMixin, ClassifierMixin)) and not getattr(cls, "__abstractmethods__", None)):
        return True
    return _registry().get(name) is cls


def param_names(cls: type) -> set[str] | None:
    """Parameter names of an estimator class, or None when they cannot be known.

    A constructor that takes ``**kwargs`` (XGBoost's ``XGBRegressor(**kwargs)``) names few
    of its parameters in its signature, so for it the names are those of a default
    instance's ``get_params()``, as scikit-learn's ``clone`` and ``set_params`` see them;
    None if it cannot be made without arguments.
    """
    names = _param_names(cls)
    return None if names is None else set(names)


@lru_cache(maxsize=256)
def _param_names(cls: type) -> frozenset[str] | None:
    # Cached per class: every fit of a run builds its estimator through this (a signature
    # inspection each time was a tenth of a small run's time outside the fits).
    if _takes_var_keyword(cls):
        try:
            return frozenset(cls().get_params())
        except Exception:  # noqa: BLE001 - a class that needs arguments: its names cannot be known
            return None
    getter = getattr(cls, "_get_param_names", None)
    if getter is not None:
        try:
            return frozenset(getter())
        except Exception:  # noqa: BLE001, S110 - a broken third-party class; fall back to inspect
            pass
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(n for n in sig.parameters if n != "self")


def _takes_var_keyword(cls: type) -> bool:
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
