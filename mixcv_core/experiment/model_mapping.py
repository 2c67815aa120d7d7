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
Classes are found by registered name or imported by dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna.distributions as od

from ..errors import SpecError, SpecTypeError
from .spec import ModelSpec, model_spec_from_config

__all__ = ["ModelConfigDict", "ModelMappingDict", "read_mapping_from_yaml_string",
           "read_mapping_from_yaml_file", "mapping_to_model_specs"]


class ModelConfigDict(dict):
    """One model's settings: ``model``, ``params``, ``requires_inner_cv``, ``model_kwargs``,
    ``fit_kwargs``, ``add_merf``, ``post_processor``."""


class ModelMappingDict(dict):
    """Model name -> `ModelConfigDict`."""


def _loader() -> type:
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
    except yaml.YAMLError as exc:
        raise SpecError("models", f"invalid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SpecError("models", "the YAML must be a mapping of model names to their settings")
    out = ModelMappingDict()
    for name, config in raw.items():
        if not isinstance(config, Mapping):
            raise SpecError(f"models[{name!r}]", f"expected the model's settings as a mapping, got {config!r}")
        out[str(name)] = ModelConfigDict(config)
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
            config = {k: _flexcv_path(v) if k in ("model", "post_processor") else v for k, v in config.items()}
        specs.append(model_spec_from_config(str(name), config))
    if not specs:
        raise SpecError("models", "the model mapping is empty")
    return specs
