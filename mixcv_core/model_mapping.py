"""flexcv's import path for model mappings: ``from mixcv_core.model_mapping import ...``.

The implementation (and the YAML format) lives in `mixcv_core.experiment.model_mapping`.
"""

from __future__ import annotations

from .experiment.model_mapping import (
    ModelConfigDict,
    ModelMappingDict,
    mapping_to_model_specs,
    read_mapping_from_yaml_file,
    read_mapping_from_yaml_string,
)

__all__ = ["ModelConfigDict", "ModelMappingDict", "read_mapping_from_yaml_string",
           "read_mapping_from_yaml_file", "mapping_to_model_specs"]
