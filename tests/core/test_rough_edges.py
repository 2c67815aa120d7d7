"""Rough edges a hostile-but-fair user hit: each now gets a clear word before any work."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError, RunStore


def test_a_constant_target_is_refused():
    X = pd.DataFrame({"a": np.arange(20.0)})
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, pd.Series(np.full(20, 3.0)), np.repeat([0, 1], 10))
    assert info.value.field == "y" and "is constant" in info.value.message


def test_group_labels_of_mixed_types_are_refused_naming_the_groups():
    X = pd.DataFrame({"a": np.arange(20.0)})
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, X["a"].rename("y") * 2, np.array([1, "b"] * 10, dtype=object))
    assert info.value.field == "groups" and "astype(str)" in info.value.message


def test_a_polars_frame_is_named_with_the_way_out():
    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    Fake = type("DataFrame", (), {"__module__": "polars.dataframe.frame"})
    with pytest.raises(MixcvError, match=r"polars DataFrame; convert it with \.to_pandas\(\)"):
        prepare_data(DataSpec("y"), Fake())


def test_y_with_the_same_labels_in_another_order_is_matched_by_position_out_loud():
    X = pd.DataFrame({"a": np.arange(20.0)})
    y = pd.Series(np.arange(20.0) * 2, name="y")
    with pytest.warns(UserWarning, match="same index labels as X in another order"):
        CrossValidation().set_data(X, y.iloc[::-1], np.repeat([0, 1], 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrossValidation().set_data(X, y, np.repeat([0, 1], 10))   # aligned: nothing to say


def test_loading_a_run_prints_nothing(grouped, tmp_path, capfd):
    import optuna
    X, y, g, _ = grouped
    store = RunStore(tmp_path / "s")
    res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2, n_splits_in=2)
           .add_model("Ridge", requires_inner_cv=True, params={"alpha": optuna.distributions.FloatDistribution(.1, 1)})
           .set_inner_cv(2).set_run(store=store).perform().get_results())
    capfd.readouterr()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    back = store.load(res.run_id)
    assert len(back.studies) == 2
    out = capfd.readouterr()
    assert "A new study created" not in out.out + out.err


def test_duplicate_column_names_are_named():
    X = pd.DataFrame(np.arange(60.0).reshape(20, 3), columns=["age", "age", "dose"])
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, pd.Series(np.arange(20.0) % 7, name="y"), np.repeat([0, 1], 10))
    assert info.value.field == "X" and "['age'] listed twice" in info.value.message
