"""Names a user may type for models: mixcv's own models, every scikit-learn regressor, dotted paths.

The ``%%mixcv`` magic, the widget form and ``set_models`` all resolve model names
here, so a name that works in one front end works in all of them.
"""

from __future__ import annotations

import difflib
import importlib
from functools import lru_cache

from .errors import SpecError, SpecTypeError

__all__ = ["available_models", "resolve_estimator", "dotted_path", "import_dotted"]


@lru_cache(maxsize=1)
def _registry() -> dict[str, type]:
    from sklearn.utils import all_estimators

    from . import models

    names: dict[str, type] = {name: cls for name, cls in all_estimators(type_filter="regressor")}
    for name in models.__all__:
        obj = getattr(models, name)
        if isinstance(obj, type):
            names[name] = obj
    return names


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
            cls = import_dotted(model, field)
        else:
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


def dotted_path(obj: object) -> str:
    """The importable ``module.qualname`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"
