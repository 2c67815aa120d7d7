"""The fluent builder sets the task and the positive class in `set_data` (issue 27), checked there.

On real binary data (mlmRev's Contraception, the shared ``contraception`` fixture: ``use`` is "Y"/"N"); the
scores are checked against scikit-learn's own functions on the run's predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mixcv_core import CrossValidation
from mixcv_core.errors import SpecError, SpecTypeError

FEATURES = ["age", "urban", "children"]


def _run(cv: CrossValidation, model: str):
    return (cv.set_splits("StratifiedGroupKFold", n_splits_out=3).add_model(model).set_run(store=False)
            .perform().get_results())


def test_positive_class_makes_the_other_label_the_one_whose_probability_is_scored(contraception):
    X, use = contraception[FEATURES], contraception["use"]
    res = _run(CrossValidation().set_data(X, use, contraception["district"], positive_class="N"),
               "LogisticRegression")
    assert res.spec.task == "classification" and res.spec.positive_class == "N"
    is_n = (use == "N").to_numpy(dtype=int)
    frame = res.to_frame()
    for o in res.outcomes:
        want = skm.roc_auc_score(is_n[o.test_rows], o.y_pred)
        assert frame.loc[frame.fold == o.fold, "test_roc_auc"].item() == pytest.approx(want, rel=1e-12)
        # The predictions are probabilities of "N": probabilities of "Y" would score below 0.5 against it.
        assert want > 0.5


def test_a_positive_class_given_as_text_names_the_targets_number():
    X = pd.DataFrame({"x": np.arange(40.0)})
    y = pd.Series(np.tile([0, 1], 20), name="y")
    cv = CrossValidation().set_data(X, y, task="classification", positive_class="0")
    assert cv._positive_class == 0 and type(cv._positive_class) is int


def test_task_regression_runs_a_binary_target_as_numbers(contraception):
    X = contraception[FEATURES]
    urban = contraception["urban"].rename("urban_y")   # 0/1: inferred a classification unless told
    res = _run(CrossValidation().set_data(X.drop(columns="urban"), urban, contraception["district"],
                                          task="regression"), "LinearModel")
    assert res.spec.task == "regression" and "test_r2" in res.to_frame().columns
    inferred = CrossValidation().set_data(X.drop(columns="urban"), urban, contraception["district"])
    assert inferred.add_model("LinearModel").to_spec().task is None   # left to the data, inferred at the run


def _refused(field, fn, kind=SpecError):
    with pytest.raises(kind) as info:
        fn()
    assert info.value.field == field, info.value
    return info.value.message


@pytest.mark.parametrize(("kw", "target", "field", "words"), [
    ({"task": "classfication"}, "use", "task", "expected 'regression' or 'classification'"),
    ({"positive_class": "yes"}, "use", "positive_class", "'yes' is not a label of the target; its labels are 'N', 'Y'"),
    ({"task": "regression", "positive_class": "Y"}, "age", "positive_class", "a positive class is for classification"),
    ({"task": "classification"}, "age", "task", "continuous"),
    ({"positive_class": "0"}, "livch", "positive_class", "a target of two classes; 'livch' has 4"),
    ({"task": "regression"}, "use", "y", "must be numeric for regression"),
])
def test_a_bad_task_or_positive_class_is_refused_by_set_data_naming_it(contraception, kw, target, field, words):
    X = contraception[["urban", "children"]]
    message = _refused(field, lambda: CrossValidation().set_data(X, contraception[target], **kw),
                       SpecTypeError if field == "y" else SpecError)
    assert words in message


def test_a_positive_class_that_is_no_label_at_all_is_refused_by_type(contraception):
    X = contraception[["urban", "children"]]
    message = _refused("positive_class", lambda: CrossValidation().set_data(X, contraception["use"],
                                                                              positive_class=["Y"]), SpecTypeError)
    assert "expected a label of the target" in message and "list" in message
