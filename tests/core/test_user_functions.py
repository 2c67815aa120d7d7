"""User-supplied functions (metrics, objective, post-processors) are checked for their shape up front."""

from __future__ import annotations

import pytest

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.experiment.cell import CellError, parse_cell


class Scorer:
    def __init__(self, y_true, y_pred):
        pass


def gap_penalised(y_valid, y_pred_valid, y_train, y_pred_train):   # flexcv's four-argument objective
    return 0.0


@pytest.mark.parametrize("line,key,words", [
    ("objective: builtins.eval", "objective", "'eval' from 'builtins'"),
    ("objective: os.system", "objective", "'system' from"),
    ("metrics: {x: builtins.len}", "metrics.x", "'len' from 'builtins'"),
    ("metrics: [r2, os.getcwd]", "metrics", "'getcwd' from"),
])
def test_system_functions_are_refused_in_cells(line, key, words):
    with pytest.raises(CellError) as info:
        parse_cell(f"data: df\ntarget: y\n{line}\nmodels: [Ridge]\n")
    assert info.value.field == key and words in info.value.message


def test_functions_of_the_wrong_shape_are_refused_naming_the_field():
    with pytest.raises(MixcvError, match=r"tuning.objective_scorer: '<lambda>' cannot be called as f\(y_valid"):
        CrossValidation().set_inner_cv(3, objective_scorer=lambda a: 0.0)
    with pytest.raises(MixcvError, match=r"metrics\['m'\]: '<lambda>' cannot be called as f\(y_true, y_pred\)"):
        CrossValidation().set_splits(metrics={"m": lambda a, b, c: 0.0})
    with pytest.raises(MixcvError, match="expected a function f\\(y_true, y_pred\\), got the class Scorer"):
        CrossValidation().set_splits(metrics={"m": Scorer})
    with pytest.raises(MixcvError, match=r"post_processor: 'eval' from 'builtins'"):
        CrossValidation().add_model("LinearModel", post_processor=eval)


def test_the_accepted_shapes_still_work():
    CrossValidation().set_inner_cv(3, objective_scorer=gap_penalised)
    CrossValidation().set_inner_cv(3, objective_scorer=lambda y, p: 0.0)
    from mixcv_core.model_postprocessing import LinearModelPostProcessor
    CrossValidation().add_model("LinearModel", post_processor=LinearModelPostProcessor)
    CrossValidation().add_model("LinearModel", post_processor=lambda model, names: None)
