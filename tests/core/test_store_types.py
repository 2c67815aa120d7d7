"""What goes into the run store comes back as it was: row labels and group labels keep their types."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError, RunStore

N = 40


def _frame(index):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=N)}, index=index)
    return X, pd.Series(rng.normal(size=N), index=index, name="y")


INDEXES = {
    "multi": pd.MultiIndex.from_arrays([np.repeat(["s1", "s2"], N // 2), np.arange(N)], names=["site", "i"]),
    "datetime": pd.date_range("2024-01-01", periods=N, freq="h", name="t"),
    "datetime tz": pd.date_range("2024-03-30", periods=N, freq="h", tz="Europe/Paris"),
    "text": pd.Index([f"row{i}" for i in range(N)]),
    "int": pd.Index(np.arange(N) * 7),
    "range": pd.RangeIndex(N),
}
GROUPS = {
    "int": np.repeat([3, 1, 4, 2], N // 4),
    "text": np.repeat(["b", "a", "d", "c"], N // 4),
    "datetime": np.repeat(pd.date_range("2024-01-01", periods=4).to_numpy(), N // 4),
    "datetime tz": pd.Series(pd.date_range("2024-01-01", periods=4, tz="UTC").repeat(N // 4)),
    "float": np.repeat([0.5, 1.5, 2.5, 3.5], N // 4),
}


@pytest.mark.parametrize("index", list(INDEXES))
@pytest.mark.parametrize("groups", list(GROUPS))
def test_labels_round_trip_exactly(index, groups, tmp_path):
    X, y = _frame(INDEXES[index])
    g = GROUPS[groups]
    g = pd.Series(np.asarray(g) if not isinstance(g, pd.Series) else g.to_numpy(), index=X.index, name="g")
    store = RunStore(tmp_path / "s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = (CrossValidation().set_data(X, y, g).set_splits(split_out="GroupKFold", n_splits_out=2)
               .add_model("LinearModel").set_run(store=store).perform().get_results())
    back = store.load(res.run_id)
    assert back._data.index.equals(res._data.index) and type(back._data.index) is type(res._data.index)
    assert back._data.index.dtype == res._data.index.dtype if not isinstance(res._data.index, pd.MultiIndex) else True
    pd.testing.assert_frame_equal(back.predictions, res.predictions)


def test_labels_that_cannot_come_back_exactly_are_refused_before_the_run(tmp_path):
    X, y = _frame(pd.RangeIndex(N))
    calls = []

    class Spy:
        def on_event(self, event):
            calls.append(event)

    g = pd.Series([(1, "a"), (2, "b")] * (N // 2), name="g")
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(X, y, g).add_model("LinearModel").set_run(store=tmp_path / "s",
                                                                             observers=[Spy()]).perform()
    assert info.value.field == "store" and "['tuple']" in info.value.message and "--no-store" in info.value.message
    assert calls == []   # nothing ran
    res = (CrossValidation().set_data(X, y, g).set_splits(split_out="GroupKFold", n_splits_out=2)
           .add_model("LinearModel").set_run(store=False).perform().get_results())
    assert len(res.predictions) == N   # without the store, tuple labels are fine
