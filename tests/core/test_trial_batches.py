"""Batches of tuning trials (issue 29): k trials asked of the sampler at once, evaluated side by
side, told in the order asked. The batch size is part of the spec, so a seed fixes the trials and
the results for any ``n_jobs`` and backend; a batch of one is the one-trial-at-a-time loop.

The reference for the trials is Optuna itself, driven by a plain loop written here (``optimize``
for one at a time; ask k, tell k for a batch) and fed the values mixcv computed: the parameters it
samples must be mixcv's, trial by trial. Data: lme4's sleepstudy (tests/data/sleepstudy.csv).
"""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from mixcv_core import CrossValidation, ExperimentSpec, MixcvError, RunStore
from mixcv_core._seeding import derive_seed
from mixcv_core.experiment.cell import CellError, parse_cell, spec_to_cell
from mixcv_core.run import cores
from mixcv_core.run.tuning import evaluate_side_by_side

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
TIMES = ["fit_time", "tune_time"]
# Past TPE's ten random start-up trials (before them a batch asks what one at a time
# asks), and not a multiple of the batch: the last batch is smaller.
N_TRIALS = 14
SPACE = {"alpha": FloatDistribution(0.01, 100, log=True)}
FOREST = {"max_depth": IntDistribution(2, 6), "min_samples_leaf": IntDistribution(1, 12)}


def _cv(batch: int | None, break_cross_val: bool = False, **run_settings) -> CrossValidation:
    tuning = {"n_trials": N_TRIALS} if batch is None else {"n_trials": N_TRIALS, "trial_batch": batch}
    return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
            .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, break_cross_val=break_cross_val)
            .add_model("Ridge", requires_inner_cv=True, params=SPACE)
            .add_model("RandomForestRegressor", requires_inner_cv=True, params=FOREST,
                       model_kwargs={"n_estimators": 10})
            .set_inner_cv(**tuning).set_run(**{"store": False, **run_settings}))


def _trials(res) -> dict:
    return {key: [(t.number, t.state, t.params, t.value) for t in study.trials]
            for key, study in sorted(res.studies.items())}


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMES), b.to_frame().drop(columns=TIMES))
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert _trials(a) == _trials(b)
    assert {k: s.best_params for k, s in a.studies.items()} == {k: s.best_params for k, s in b.studies.items()}


@pytest.fixture(scope="module")
def serial_batch():
    return _cv(3).perform().get_results()


@pytest.fixture(scope="module")
def one_at_a_time():
    return _cv(1).perform().get_results()


def _replayed(study: optuna.Study, name: str, fold: int, batch: int) -> list[dict]:
    """The params a plain Optuna loop samples when told mixcv's values, in mixcv's order."""
    sampler = optuna.samplers.TPESampler(seed=derive_seed(42, "tpe", name, fold), constant_liar=batch > 1)
    ref = optuna.create_study(direction="minimize", sampler=sampler)
    values = [t.value for t in study.trials]
    space = SPACE if name == "Ridge" else FOREST
    if batch == 1:   # today's loop: Optuna's own optimize, one trial after the other
        ref.optimize(lambda trial: values[trial.number] if [trial._suggest(k, d) for k, d in space.items()]
                     else None, n_trials=len(values))
    else:
        while len(ref.trials) < len(values):
            asked = [ref.ask(dict(space)) for _ in range(min(batch, len(values) - len(ref.trials)))]
            for trial in asked:
                ref.tell(trial, values[trial.number])
    return [t.params for t in ref.trials]


@pytest.mark.parametrize("batch", [None, 1, 3])
def test_the_trials_are_those_a_plain_optuna_loop_asks_told_the_same_values(batch, serial_batch, one_at_a_time):
    res = {3: serial_batch, 1: one_at_a_time}.get(batch) or _cv(batch).perform().get_results()
    assert len(res.studies) == 6
    for (name, fold), study in res.studies.items():
        assert len(study.trials) == N_TRIALS
        assert [t.params for t in study.trials] == _replayed(study, name, fold, batch or 1), (name, fold)
        assert study.best_params == res.to_frame().set_index(["model", "fold"]).loc[(name, fold), "best_params"]


def test_a_batch_of_one_is_the_run_without_batches(one_at_a_time):
    _same(one_at_a_time, _cv(None).perform().get_results())


def test_a_batch_asks_other_trials_than_one_at_a_time(serial_batch, one_at_a_time):
    # The batch is really asked as a batch: TPE's later trials are sampled without the
    # values still pending, so they differ from the one-at-a-time run's.
    alone = one_at_a_time
    for key, study in serial_batch.studies.items():
        assert [t.params for t in study.trials][:9] == [t.params for t in alone.studies[key].trials][:9]
    assert any([t.params for t in study.trials] != [t.params for t in alone.studies[key].trials]
               for key, study in serial_batch.studies.items())


def test_a_batch_gives_the_serial_results_with_two_worker_processes(serial_batch):
    _same(_cv(3, n_jobs=2).perform().get_results(), serial_batch)


def test_a_batch_gives_the_serial_results_on_a_local_dask_cluster(serial_batch):
    pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")
    _same(_cv(3, backend="dask", n_jobs=2).perform().get_results(), serial_batch)


def test_a_batch_in_a_task_with_one_fold_and_two_workers_gives_the_serial_results():
    # One task for two workers: the pool starts one worker with both cores, and its trials
    # run side by side there.
    _same(_cv(3, break_cross_val=True, n_jobs=2).perform().get_results(),
          _cv(3, break_cross_val=True).perform().get_results())


def test_trials_run_side_by_side_in_threads_sharing_the_task_cores_and_come_back_in_order():
    from threadpoolctl import threadpool_info
    seen: list[tuple[str, int, int]] = []
    lock = threading.Barrier(2, timeout=30)   # both trials must be running at once to pass it

    def evaluate(params: dict) -> int:
        if params["i"] < 2:
            lock.wait()
        # Every native pool this thread would use (BLAS: the process's; OpenMP: this thread's).
        blas = max((p["num_threads"] for p in threadpool_info()), default=1)
        seen.append((threading.current_thread().name, cores.available(), blas))
        return params["i"] * 10

    with cores.limit(4):
        out = evaluate_side_by_side(evaluate, [{"i": i} for i in range(3)], n_rows=10)
    assert out == [0, 10, 20]
    assert all(name.startswith("mixcv-trial") for name, _, _ in seen)
    # Three trials on four cores: three threads of one core each (workers x threads <= cores).
    assert all(available == 1 and blas <= 1 for _, available, blas in seen), seen


def test_cores_lent_at_the_end_of_a_run_widen_a_batch_never_the_native_pools(tmp_path):
    """A worker's task that started with one core and is lent three more (its share file says 4):
    two trials side by side get two cores each for joblib's threads, but OpenMP and BLAS keep the
    one thread the task started with; a pool that grew with the lending would make a fit's sums
    (HistGradientBoosting's OpenMP reduction) depend on when in the run it ran."""
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime, so there is a pool to read
    from threadpoolctl import threadpool_info
    share = tmp_path / "cores"
    assert cores.write_share(str(share), 4)
    seen: list[tuple[int, dict[str, int]]] = []
    lock = threading.Barrier(2, timeout=30)

    def evaluate(params: dict) -> int:
        lock.wait()
        pools = {p["user_api"]: p["num_threads"] for p in threadpool_info()}
        seen.append((cores.available(), pools))
        return params["i"]

    with cores.follow(str(share), started_with=1):
        assert (cores.available(), cores.own()) == (4, 1)
        out = evaluate_side_by_side(evaluate, [{"i": 0}, {"i": 1}], n_rows=10)
    assert out == [0, 1] and len(seen) == 2
    assert {"openmp"} <= set(seen[0][1]), seen   # the claim below is about a pool that exists
    assert all(available == 2 and max(pools.values()) == 1 for available, pools in seen), seen


def test_a_task_s_own_share_is_what_it_started_with_and_the_process_s_once_its_run_is_gone(tmp_path):
    share = tmp_path / "cores"
    cores.write_share(str(share), 3)
    with cores.limit(5):
        outside = cores.own()
    assert outside == cores._process_share()   # a limit is a part of the task, not its start
    with cores.follow(str(share), started_with=2):
        assert (cores.available(), cores.own()) == (3, 2)
        share.unlink()   # the run ended (a task left behind by an interrupt reads on)
        assert cores.own() == cores.available() == cores._process_share()
    assert cores._SHARE == []


def test_with_one_core_the_trials_run_in_the_task_one_after_the_other():
    seen: list[str] = []
    with cores.limit(1):
        out = evaluate_side_by_side(lambda p: seen.append(threading.current_thread().name) or p["i"],
                                    [{"i": i} for i in range(3)], n_rows=10)
    assert out == [0, 1, 2] and set(seen) == {threading.current_thread().name}


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True])
def test_a_bad_batch_is_refused_before_any_work_naming_the_field(bad):
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_inner_cv(trial_batch=bad)
    assert info.value.field == "trial_batch" and "integer >= 1" in str(info.value)
    with pytest.raises(MixcvError) as info:
        ExperimentSpec.from_dict({"format": 9, "data": {"target": "y"}, "models": [{"name": "LM", "model": "LinearModel"}],
                                  "tuning": {"n_trials": 3, "batch": bad}})
    assert info.value.field == "tuning.batch"


@pytest.mark.parametrize("bad", ["0", "two", "[2]"])
def test_a_bad_trial_batch_in_a_cell_is_refused_naming_the_key_and_its_line(bad):
    text = f"data: df\ntarget: y\ntrials: 5\ntrial_batch: {bad}\nmodels: [LinearModel]\n"
    with pytest.raises(CellError) as info:
        parse_cell(text)
    assert info.value.field == "trial_batch" and info.value.line == 5


def test_the_batch_round_trips_through_the_cell_the_spec_dict_and_the_run_store(tmp_path):
    spec = parse_cell("data: df\ntarget: y\ntrials: 5\ntrial_batch: 4\nmodels: [LinearModel]\n").spec
    assert spec.tuning.batch == 4
    assert "trial_batch: 4" in spec_to_cell(spec) and parse_cell(spec_to_cell(spec)).spec == spec
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    assert "trial_batch" not in spec_to_cell(parse_cell("data: df\ntarget: y\nmodels: [LinearModel]\n").spec)
    store = RunStore(tmp_path)
    res = _cv(2, store=store).set_inner_cv(n_trials=2, trial_batch=2).perform().get_results()
    back = store.load(res.run_id)
    assert back.spec.tuning.batch == 2 and back.spec == res.spec


def test_all_cores_for_fewer_tasks_than_cores_start_one_worker_per_task_with_a_larger_share(monkeypatch):
    # n_jobs=-1 on four cores with two tasks: two workers of two cores each (which their
    # batches of trials use), not four workers of one core with two of them idle.
    import joblib
    from _helpers import RecordsThreads
    monkeypatch.setattr(joblib, "cpu_count", lambda *a, **k: 4)
    res = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
           .set_splits("GroupKFold", n_splits_out=2).add_model(RecordsThreads)
           .set_run(n_jobs=-1, store=False).perform().get_results())
    assert [est.omp_env_ for est in res.models.values()] == ["2", "2"]


def test_on_dask_a_task_alone_spreads_its_batches_over_the_idle_workers_with_the_serial_results(tmp_path):
    pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")
    from _helpers import LeavesItsPid

    def cv(folder, **run_settings):
        return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
                .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2, break_cross_val=True)
                .add_model(LeavesItsPid, requires_inner_cv=True, params={"alpha": FloatDistribution(0.5, 1.5)},
                           model_kwargs={"folder": str(folder)})
                .set_inner_cv(n_trials=12, trial_batch=4).set_run(store=False, **run_settings))

    (tmp_path / "serial").mkdir()
    (tmp_path / "dask").mkdir()
    serial = cv(tmp_path / "serial").perform().get_results()
    spread = cv(tmp_path / "dask", backend="dask", n_jobs=2).perform().get_results()
    _same(spread, serial)
    pids = {p.name.split("-")[0] for p in (tmp_path / "dask").iterdir()}
    # One task, two worker processes: the trials ran on both (and the outer fit on one).
    assert len(pids) == 2, pids


@pytest.mark.parametrize("on_error", ["keep", "raise"])
def test_a_failing_trial_in_a_batch_fails_alone_or_raises_its_own_error(on_error):
    from _helpers import FailsForBigAlpha
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState
    cv = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
          .set_splits("GroupKFold", "GroupKFold", n_splits_out=2, n_splits_in=2)
          .add_model(FailsForBigAlpha, requires_inner_cv=True, params={"alpha": CategoricalDistribution([0.5, 5.0])})
          .set_inner_cv(n_trials=6, trial_batch=3).set_run(store=False, on_error=on_error))
    if on_error == "raise":
        with pytest.raises(ValueError, match="alpha=5.0 is too large"):
            cv.perform()
        return
    with pytest.warns(Warning, match="tuning trials failed"):
        res = cv.perform().get_results()
    for study in res.studies.values():
        states = [(t.params["alpha"], t.state) for t in study.trials]
        assert all(state == (TrialState.FAIL if alpha == 5.0 else TrialState.COMPLETE) for alpha, state in states)
        assert study.best_params == {"alpha": 0.5}
