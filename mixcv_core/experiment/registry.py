"""Names a user may type for models: mixcv's own models, every scikit-learn regressor, dotted paths.

The ``%%mixcv`` magic, the widget form and ``set_models`` all resolve model names
here, so a name that works in one front end works in all of them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from functools import lru_cache

from ..errors import SpecError, SpecTypeError

__all__ = ["available_models", "resolve_estimator", "dotted_path", "import_dotted", "estimator_name",
           "param_names", "MOVED_MODULES"]

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
def _registry() -> dict[str, type]:
    from sklearn.utils import all_estimators

    from .. import models

    names: dict[str, type] = {name: cls for name, cls in all_estimators(type_filter="regressor")}
    for name in models.__all__:
        obj = getattr(models, name)
        if isinstance(obj, type):
            names[name] = obj
    return names


#: What a scikit-learn estimator that is not a regressor is, by `all_estimators` type filter,
#: and why a regression run cannot use it.
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


def available_models() -> list[str]:
    """Model names that can be given by name alone.

    Returns
    -------
    list of str
        mixcv's models and every scikit-learn regressor, sorted.
    """
    return sorted(_registry())


def import_dotted(path: str, field: str) -> object:
    """Import ``package.module.Name`` and return ``Name``, raising a `SpecError` naming ``field``."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise SpecError(field, f"{path!r} is not a dotted path like 'package.module.Name'")
    module_name = MOVED_MODULES.get(module_name, module_name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(field, f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SpecError(field, f"module {module_name!r} has no attribute {attr!r}") from None


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
        registry = _registry()
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


def dotted_path(obj: type | Callable[..., object]) -> str:
    """The importable ``module.qualname`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def estimator_name(cls: type) -> str:
    """How a model class is written in specs, cells and forms: its registered name when it
    has one (``RandomForestRegressor``), its dotted path otherwise."""
    return cls.__name__ if _registry().get(cls.__name__) is cls else dotted_path(cls)


def param_names(cls: type) -> set[str] | None:
    """Constructor parameter names of an estimator class, or None if it takes ``**kwargs``."""
    getter = getattr(cls, "_get_param_names", None)
    if getter is not None:
        try:
            return set(getter())
        except Exception:  # noqa: BLE001, S110 - a broken third-party class; fall back to inspect
            pass
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n in sig.parameters if n != "self"}
