"""flexcv's model mapping: models as a dict of configs, or as YAML.

A mapping is ``{name: {"model": cls_or_name, "params": {...}, "requires_inner_cv": bool,
...}}``; `CrossValidation.set_models` accepts it as a dict, a `ModelMappingDict`, a
YAML string or a path to a YAML file. In YAML, Optuna distributions are written with
the tags ``!Int``, ``!Float`` and ``!Cat``::

    RandomForest:
      model: RandomForestRegressor
      requires_inner_cv: true
      post_processor: mixcv_core.model_postprocessing.RandomForestModelPostProcessor
      params:
        max_depth: !Int {low: 2, high: 20}
        max_features: !Float {low: 0.2, high: 1.0}
        n_estimators: !Cat {choices: [50, 100]}

The loader is YAML's safe loader plus those three tags: YAML text never runs code.
Classes are found by registered name or imported by dotted path, as flexcv did: the
mappings read from YAML hold the classes themselves (``flexcv.`` paths name mixcv's
classes of the same name).

Keys flexcv reads but mixcv sets itself are accepted and ignored: ``n_jobs_model`` and
``n_jobs_cv`` (mixcv gives each fit its share of the cores, and runs folds in parallel
with ``set_run(n_jobs=...)``), ``n_trials`` (the budget is ``set_inner_cv``'s),
``requires_formula`` (mixed models build their formula from the data), and
``allows_seed``, ``allows_n_jobs``, ``requires_tuning``, which flexcv ignored too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError, SpecTypeError
from .registry import import_dotted, resolve_estimator
from .spec import ModelSpec, model_spec_from_config

if TYPE_CHECKING:
    import optuna.distributions as od

__all__ = ["ModelConfigDict", "ModelMappingDict", "read_mapping_from_yaml_string",
           "read_mapping_from_yaml_file", "mapping_to_model_specs", "IGNORED_KEYS"]


#: flexcv's config keys that mixcv accepts and leaves to its own settings (see the module docstring).
IGNORED_KEYS = frozenset({"n_jobs_model", "n_jobs_cv", "n_trials", "requires_formula", "allows_seed",
                          "allows_n_jobs", "requires_tuning"})


class ModelConfigDict(dict):
    """One model's settings: ``model``, ``params``, ``requires_inner_cv``, ``model_kwargs``,
    ``fit_kwargs``, ``add_merf``, ``post_processor``, ``callbacks``.

    As flexcv's, it starts with ``requires_inner_cv=False``, ``n_jobs_model=-1``,
    ``n_jobs_cv=-1`` and ``params={}`` unless given.

    Examples
    --------
    >>> ModelConfigDict({"model": "LinearModel"})["requires_inner_cv"]
    False
    """

    def __init__(self, mapping: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(mapping or {}, **kwargs)
        for key, default in (("requires_inner_cv", False), ("n_jobs_model", -1), ("n_jobs_cv", -1), ("params", {})):
            self.setdefault(key, default)


class ModelMappingDict(dict):
    """Model name -> `ModelConfigDict`."""


def _loader() -> type:
    import optuna.distributions as od  # imported when a mapping is read, not with mixcv_core
    import yaml

    # A subclass, so registering the tags does not change yaml.SafeLoader for everyone.
    class Loader(yaml.SafeLoader):
        pass

    def dist(cls: type) -> Any:
        def construct(loader: yaml.SafeLoader, node: yaml.Node) -> od.BaseDistribution:
            if not isinstance(node, yaml.MappingNode):
                raise SpecError("models.params", f"{node.tag} needs a mapping such as "
                                                 "{low: 1, high: 10} (line {node.start_mark.line + 1})")
            args = loader.construct_mapping(node, deep=True)
            try:
                return cls(**args)
            except (TypeError, ValueError) as exc:
                where = f"line {node.start_mark.line + 1}"
                raise SpecError("models.params", f"{node.tag} {args} ({where}): {exc}") from None
        return construct

    Loader.add_constructor("!Int", dist(od.IntDistribution))
    Loader.add_constructor("!Float", dist(od.FloatDistribution))
    Loader.add_constructor("!Cat", dist(od.CategoricalDistribution))
    return Loader


def read_mapping_from_yaml_string(text: str) -> ModelMappingDict:
    """Parse a YAML model mapping (see the module docstring for the format).

    Raises
    ------
    SpecError
        Invalid YAML, or a document that is not a mapping of model names to settings.
    """
    import yaml

    try:
        raw = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
        if isinstance(raw, str) and "\n" in raw:
            # A file holding the mapping's text as one YAML string: what flexcv's guide
            # writes with yaml.safe_dump(yaml_code, f). Its content is the mapping.
            raw = yaml.load(raw, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError("models", f"invalid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SpecError("models", "the YAML must be a mapping of model names to their settings")
    out = ModelMappingDict()
    for name, config in raw.items():
        if not isinstance(config, Mapping):
            raise SpecError(f"models[{name!r}]", f"expected the model's settings as a mapping, got {config!r}")
        out[str(name)] = ModelConfigDict(_with_classes(str(name), config))
    return out


def _with_classes(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with ``model`` and ``post_processor`` imported, as flexcv's reader returns them."""
    out = dict(config)
    if isinstance(out.get("model"), str):
        out["model"] = resolve_estimator(_flexcv_path(out["model"]), f"models[{name!r}].model")
    if isinstance(out.get("post_processor"), str):
        out["post_processor"] = import_dotted(_flexcv_path(out["post_processor"]), f"models[{name!r}].post_processor")
    return out


def read_mapping_from_yaml_file(path: str | Path) -> ModelMappingDict:
    """Read a YAML model mapping from a file."""
    return read_mapping_from_yaml_string(Path(path).read_text())


def _flexcv_path(value: Any) -> Any:
    # Mappings written for flexcv name its classes; ours have the same names.
    if isinstance(value, str) and value.startswith("flexcv."):
        return "mixcv_core." + value.removeprefix("flexcv.")
    return value


def mapping_to_model_specs(mapping: Mapping[str, Any] | str | Path) -> list[ModelSpec]:
    """Turn a dict, `ModelMappingDict`, YAML string or YAML file path into model specs."""
    if isinstance(mapping, Path) or (isinstance(mapping, str) and "\n" not in mapping
                                     and mapping.endswith((".yaml", ".yml"))):
        path = Path(mapping)
        if not path.exists():
            raise SpecError("models", f"YAML file {str(path)!r} does not exist")
        mapping = read_mapping_from_yaml_file(path)
    elif isinstance(mapping, str):
        mapping = read_mapping_from_yaml_string(mapping)
    if not isinstance(mapping, Mapping):
        raise SpecTypeError("models", f"expected a dict of model name -> settings or YAML text, "
                                      f"got {type(mapping).__name__}")
    specs = []
    for name, config in mapping.items():
        if isinstance(config, Mapping):
            config = {k: _flexcv_path(v) if k in ("model", "post_processor") else v for k, v in config.items()
                      if k not in IGNORED_KEYS}
            callbacks = config.pop("callbacks", None)
            if isinstance(callbacks, Mapping):   # flexcv's add_model stored {"callbacks": [...]}
                callbacks = callbacks.get("callbacks")
            spec = model_spec_from_config(str(name), config)
            if callbacks:
                spec = replace(spec, callbacks=callbacks)
            specs.append(spec)
            continue
        specs.append(model_spec_from_config(str(name), config))
    if not specs:
        raise SpecError("models", "the model mapping is empty")
    return specs
