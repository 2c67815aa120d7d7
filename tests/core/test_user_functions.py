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


def test_the_inner_loop_predicts_training_sets_only_for_an_objective_that_reads_them(grouped):
    from optuna.distributions import FloatDistribution
    from sklearn.linear_model import Ridge

    X, y, g, _ = grouped
    seen: list = []

    def reads_train(y_valid, y_pred_valid, y_train, y_pred_train):
        seen.append((len(y_train), None if y_pred_train is None else len(y_pred_train)))
        return float(((y_valid - y_pred_valid) ** 2).mean())

    class Counting(Ridge):
        calls: list[int] = []

        def predict(self, X):
            Counting.calls.append(len(X))
            return super().predict(X)

    def run(objective):
        Counting.calls.clear()
        cv = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", "GroupKFold", n_splits_out=2,
                                                              n_splits_in=2)
              .add_model(Counting, requires_inner_cv=True, params={"alpha": FloatDistribution(0.1, 1.0)})
              .set_inner_cv(2, objective_scorer=objective).set_run(store=False))
        return cv.perform().get_results(), list(Counting.calls)

    default, calls = run(None)
    # 2 outer folds x 2 trials x 2 inner folds, each predicting its validation rows only;
    # then per outer fold the test and the training rows.
    assert len(calls) == 8 + 4, calls
    flexcv_style, calls = run(reads_train)
    assert len(calls) == 8 * 2 + 4
    assert seen and all(n_pred == n for n, n_pred in seen)   # the scorer got every training prediction
    assert default.to_frame()["test_r2"].tolist() == flexcv_style.to_frame()["test_r2"].tolist()
