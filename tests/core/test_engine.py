"""The engine end to end: determinism, parallelism, failures, events, leakage."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge

from mixcv_core import CrossValidation, FoldFailedWarning, ObserverWarning, Recorder
from mixcv_core.model_postprocessing import LinearModelPostProcessor, RandomForestModelPostProcessor
from mixcv_core.models import LinearMixedEffectsModel, LinearModel
from mixcv_core.run.events import FoldFailed, FoldFinished, RunFinished, RunStarted, TrialFinished

TIMING = ["fit_time", "tune_time"]
RF_PARAMS = {"max_depth": optuna.distributions.IntDistribution(2, 6),
             "min_samples_leaf": optuna.distributions.IntDistribution(1, 5)}


def tuned_cv(grouped, n_jobs):
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes)
            .set_splits("GroupKFold", "KFold", n_splits_out=3, n_splits_in=2)
            .set_inner_cv(4)
            .add_model("RandomForestRegressor", requires_inner_cv=True, params=RF_PARAMS,
                       model_kwargs={"n_estimators": 8})
            .add_model("Ridge", requires_inner_cv=True, params={"alpha": optuna.distributions.FloatDistribution(1e-3, 10, log=True)})
            .add_model(LinearMixedEffectsModel)
            .set_run(random_seed=7, n_jobs=n_jobs))


def test_n_jobs_1_and_2_give_identical_fold_tables(grouped):
    a = tuned_cv(grouped, 1).perform().get_results()
    b = tuned_cv(grouped, 2).perform().get_results()
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMING), b.to_frame().drop(columns=TIMING))
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert len(a.to_frame()) == 9


def test_same_seed_same_results_other_seed_other_folds(grouped):
    a = tuned_cv(grouped, 1).perform().get_results().to_frame().drop(columns=TIMING)
    b = tuned_cv(grouped, 1).perform().get_results().to_frame().drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    c = tuned_cv(grouped, 1).set_run(random_seed=8).perform().get_results().to_frame()
    assert not np.allclose(a["test_mse"], c["test_mse"])


def test_tuning_keeps_a_study_per_model_and_fold(grouped):
    res = tuned_cv(grouped, 1).perform().get_results()
    studies = res.studies
    assert set(studies) == {(m, k) for m in ("RandomForestRegressor", "Ridge") for k in range(3)}
    for (model, fold), study in studies.items():
        assert len(study.trials) == 4
        best = res.to_frame().set_index(["model", "fold"]).loc[(model, fold), "best_params"]
        assert best == study.best_params
    # The best trial's value is its mean inner-fold MSE: recompute it by hand for Ridge.
    X, y, group, _ = grouped
    from mixcv_core.experiment.data import plan_experiment
    cv = tuned_cv(grouped, 1)
    plan = plan_experiment(cv.to_spec(), cv._frame)
    study = studies[("Ridge", 0)]
    mses = []
    for tr, va in plan.inner[0]:
        mu, sd = X.iloc[tr].mean(), X.iloc[tr].std(ddof=0)
        model = Ridge(alpha=study.best_params["alpha"]).fit((X.iloc[tr] - mu) / sd, y.iloc[tr])
        mses.append(np.mean((model.predict((X.iloc[va] - mu) / sd) - y.iloc[va]) ** 2))
    np.testing.assert_allclose(study.best_value, np.mean(mses), rtol=1e-8)


class Spy(RegressorMixin, BaseEstimator):
    """Records the column means of what it is trained on."""

    def fit(self, X, y):
        self.train_means_ = np.asarray(X).mean(axis=0)
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_scaling_is_fitted_on_training_rows_only(grouped):
    X, y, group, _ = grouped
    res = CrossValidation().set_data(X + 5.0, y, group).set_splits(n_splits_out=3).add_model(Spy).perform().get_results()
    for model in res.models.values():
        np.testing.assert_allclose(model.train_means_, 0.0, atol=1e-12)


def test_outer_metrics_equal_a_reference_loop(grouped):
    X, y, group, _ = grouped
    res = (CrossValidation().set_data(X, y, group).set_splits("GroupKFold", n_splits_out=3)
           .add_model(LinearModel).perform().get_results())
    from sklearn.model_selection import GroupKFold
    table = res.to_frame()
    for k, (tr, te) in enumerate(GroupKFold(3).split(X, y, group)):
        ref = LinearModel().fit(X.iloc[tr], y.iloc[tr])  # OLS is invariant to scaling
        mse = np.mean((ref.predict(X.iloc[te]) - y.iloc[te].to_numpy()) ** 2)
        assert np.isclose(table.loc[k, "test_mse"], mse, rtol=1e-9)


class FailsInFoldOne(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        if len(y) and abs(float(np.sum(y)) - FailsInFoldOne.bad_sum) < 1e-9:
            raise RuntimeError("boom in this fold")
        self.m_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.m_)


def test_a_failing_fold_keeps_the_other_folds_and_models(grouped):
    X, y, group, _ = grouped
    from sklearn.model_selection import KFold
    folds = list(KFold(3).split(X))
    FailsInFoldOne.bad_sum = float(y.iloc[folds[1][0]].sum())
    rec = Recorder()
    cv = (CrossValidation().set_data(X, y, group).set_splits(folds)
          .add_model(FailsInFoldOne).add_model(LinearModel))
    with pytest.warns(FoldFailedWarning, match="FailsInFoldOne fold 1: RuntimeError: boom"):
        res = cv.perform(observers=[rec]).get_results()
    assert len(res.to_frame()) == 5
    assert res.failures[["model", "fold"]].values.tolist() == [["FailsInFoldOne", 1]]
    assert "boom in this fold" in res.failures.loc[0, "traceback"]
    assert [(e.model, e.fold) for e in rec.of_type(FoldFailed)] == [("FailsInFoldOne", 1)]
    assert res.summary.loc[("FailsInFoldOne", "r2"), "n_folds"] == 2
    assert "failed fit" in res._repr_html_()


def test_events_arrive_in_order_and_a_failing_observer_is_detached(grouped):
    X, y, group, _ = grouped
    rec = Recorder()

    def broken(event):
        raise ValueError("observer bug")

    cv = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3, n_splits_in=2).set_inner_cv(2)
          .add_model("Ridge", requires_inner_cv=True, params={"alpha": optuna.distributions.FloatDistribution(0.1, 1)}))
    with pytest.warns(ObserverWarning, match="observer bug"):
        res = cv.perform(observers=[broken, rec]).get_results()
    kinds = [type(e) for e in rec.events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert len(rec.of_type(TrialFinished)) == 3 * 2
    assert len(rec.of_type(FoldFinished)) == 3
    assert rec.of_type(RunFinished)[0].results is res
    assert len(res.to_frame()) == 3


def test_interrupt_keeps_finished_folds(grouped, monkeypatch):
    X, y, group, _ = grouped
    from mixcv_core import engine
    real = engine.run_task
    calls = {"n": 0}

    def interrupt_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_task", interrupt_third)
    res = CrossValidation().set_data(X, y, group).set_splits(n_splits_out=5).add_model(LinearModel).perform().get_results()
    assert res.status == "interrupted"
    assert res.to_frame()["fold"].tolist() == [0, 1]
    assert "interrupted" in res._repr_html_()


def test_post_processors_give_per_fold_tables(grouped):
    X, y, group, _ = grouped
    res = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3)
           .add_model(LinearModel, post_processor=LinearModelPostProcessor)
           .add_model("RandomForestRegressor", model_kwargs={"n_estimators": 5},
                      post_processor=RandomForestModelPostProcessor).perform().get_results())
    lm = res.insights[("LinearModel", 0)]
    assert list(lm.index) == ["Intercept", *X.columns]
    rf = res.insights[("RandomForestRegressor", 2)]
    assert set(rf.index) == set(X.columns) and np.isclose(rf["importance"].sum(), 1.0)
    wide = res.insight_table("LinearModel")
    assert list(wide.columns) == ["mean", "fold 0", "fold 1", "fold 2"]


def test_predict_known_groups_switch_changes_lmm_predictions(grouped):
    X, y, group, slopes = grouped

    def run(flag):
        return (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=3)
                .add_model(LinearMixedEffectsModel).set_lmer(flag).perform().get_results())

    with_re, fixed_only = run(True), run(False)
    assert with_re.summary.loc[("LinearMixedEffectsModel", "mse"), "mean"] < \
        fixed_only.summary.loc[("LinearMixedEffectsModel", "mse"), "mean"]
    est = fixed_only.models[("LinearMixedEffectsModel", 0)]
    assert est.predict_known_groups is False


def test_objective_scorer_two_and_four_arguments(grouped):
    X, y, group, _ = grouped
    seen = []

    def four(y_valid, y_pred_valid, y_train, y_pred_train):
        seen.append(len(y_train))
        return float(np.mean(np.abs(y_valid - y_pred_valid)))

    def two(y_true, y_pred):
        return float(np.max(np.abs(y_true - y_pred)))

    for scorer in (four, two):
        res = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=2, n_splits_in=2)
               .set_inner_cv(2, objective_scorer=scorer)
               .add_model("Ridge", requires_inner_cv=True, params={"alpha": optuna.distributions.FloatDistribution(0.1, 1)})
               .perform().get_results())
        assert len(res.studies) == 2
    assert seen and all(n > 0 for n in seen)


def test_custom_metric_by_name(grouped):
    X, y, group, _ = grouped

    def within_one(y_true, y_pred):
        return float(np.mean(np.abs(y_true - y_pred) < 1))

    res = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3, metrics={"r2": "r2", "within_one": within_one})
           .add_model(LinearModel).perform().get_results())
    assert {"test_within_one", "train_within_one"} <= set(res.to_frame().columns)
    assert "rmse" not in res.summary.index.get_level_values("metric")


def merf_cv(grouped, n_jobs):
    X, y, group, slopes = grouped
    return (CrossValidation().set_data(X, y, group, slopes).set_splits("KFold", n_splits_out=3)
            .add_model("DecisionTreeRegressor", model_kwargs={"max_depth": 3}, add_merf=True)
            .add_model(LinearModel)
            .set_merf(em_max_iterations=4).set_run(n_jobs=n_jobs))


def test_merf_per_model_events_and_parallel_identity(grouped):
    from mixcv_core.run.events import EMIteration
    rec = Recorder()
    a = merf_cv(grouped, 1).perform(observers=[rec]).get_results()
    assert a.model_names == ["DecisionTreeRegressor", "LinearModel", "MERF(DecisionTreeRegressor)"]
    em = rec.of_type(EMIteration)
    assert len(em) == 3 * 4 and {e.model for e in em} == {"MERF(DecisionTreeRegressor)"}
    fold0 = [e.gll for e in em if e.fold == 0]
    assert fold0 == list(a.histories[("MERF(DecisionTreeRegressor)", 0)]["gll"])
    rec2 = Recorder()
    b = merf_cv(grouped, 2).perform(observers=[rec2]).get_results()
    pd.testing.assert_frame_equal(a.to_frame().drop(columns=TIMING), b.to_frame().drop(columns=TIMING))
    assert len(rec2.of_type(EMIteration)) == 12  # replayed from the workers
    fig = b.plot_convergence()
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3


def test_merf_random_effect_design_is_intercept_plus_slopes(grouped):
    res = merf_cv(grouped, 1).perform().get_results()
    b = res.models[("MERF(DecisionTreeRegressor)", 0)].trained_b
    assert b.shape == (6, 2)  # 6 groups; intercept + one slope


def test_numpy_style_integer_column_names_work(grouped):
    X, y, group, _ = grouped
    Xi = pd.DataFrame(X.to_numpy())  # columns 0, 1, 2
    res = (CrossValidation().set_data(Xi, y.to_numpy(), group.to_numpy(), slopes=[0])
           .set_splits(n_splits_out=3).add_model(LinearMixedEffectsModel).perform().get_results())
    assert res.spec.data.features == ("0", "1", "2") and res.spec.data.slopes == ("0",)
    assert res.summary.loc[("LinearMixedEffectsModel", "r2"), "n_folds"] == 3


def test_parallel_events_arrive_while_workers_are_still_fitting(grouped, tmp_path):
    from _helpers import WaitsForFlag

    from mixcv_core.run.events import EMIteration
    flag = tmp_path / "flag"

    def release(event):
        # The 3rd fit inside each MERF waits for this file; it can only appear if the
        # 2nd EM iteration's event reached this process while the worker was busy.
        if isinstance(event, EMIteration) and event.iteration == 2:
            flag.touch()

    X, y, group, slopes = grouped
    res = (CrossValidation().set_data(X, y, group, slopes).set_splits(n_splits_out=2)
           .add_model(WaitsForFlag, model_kwargs={"flag": str(flag)}, add_merf=True)
           .set_merf(em_max_iterations=4).set_run(n_jobs=2, store=False)
           .perform(observers=[release]).get_results())
    for k in range(2):
        assert res.models[("MERF(WaitsForFlag)", k)].trained_fe_model.saw_flag_


def test_interrupt_in_a_parallel_run_keeps_finished_folds_and_stops_workers(grouped):
    class StopAfterTwo:
        def __init__(self):
            self.n = 0

        def on_event(self, event):
            if isinstance(event, FoldFinished):
                self.n += 1
                if self.n == 2:
                    raise KeyboardInterrupt

    X, y, group, _ = grouped
    res = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=5)
           .add_model(LinearModel).add_model("RandomForestRegressor", model_kwargs={"n_estimators": 300})
           .set_run(n_jobs=2, store=False).perform(observers=[StopAfterTwo()]).get_results())
    assert res.status == "interrupted"
    assert 2 <= len(res.to_frame()) < 10


def test_a_worker_that_dies_fails_only_its_own_folds(grouped):
    from _helpers import DiesInFold
    X, y, group, _ = grouped
    folds = [(np.arange(0, 40), np.arange(40, 60)), (np.arange(20, 60), np.arange(0, 20)),
             (np.arange(0, 30), np.arange(30, 60))]  # only the last has 30 training rows
    with pytest.warns(FoldFailedWarning, match="DiesInFold fold 2: worker process failed"):
        res = (CrossValidation().set_data(X, y, group).set_splits(folds)
               .add_model(DiesInFold, model_kwargs={"die_n": 30}).add_model(LinearModel)
               .set_run(n_jobs=2, store=False).perform().get_results())
    assert res.failures[["model", "fold"]].values.tolist() == [["DiesInFold", 2]]
    assert len(res.to_frame()) == 5 and res.status == "finished"


def _notebook_class(name, fit_extra):
    """An estimator class as a notebook defines it: it lives in ``__main__``, which plain pickle
    cannot look up in a worker (the reason a run that worked with n_jobs=1 failed with n_jobs=2)."""
    def __init__(self, lock=None):
        self.lock = lock

    def fit(self, X, y):
        self.coef_ = np.linalg.lstsq(np.c_[np.ones(len(X)), X], np.asarray(y), rcond=None)[0]
        fit_extra(self)
        return self

    def predict(self, X):
        return np.c_[np.ones(len(X)), X] @ self.coef_

    return type(name, (RegressorMixin, BaseEstimator),
                {"__module__": "__main__", "__init__": __init__, "fit": fit, "predict": predict})


def _keeps_a_lambda(est):
    est.link_ = lambda z: z


def _keeps_a_lock(est):
    import threading
    est.lock_ = threading.Lock()


def _serial_and_parallel(grouped, model_class):
    X, y, group, _ = grouped
    return [(CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3).add_model(model_class)
             .set_run(n_jobs=n_jobs, store=False).perform().get_results()) for n_jobs in (1, 2)]


def test_a_parallel_run_sends_notebook_classes_and_lambdas(grouped):
    serial, parallel = _serial_and_parallel(grouped, _notebook_class("Notebook", _keeps_a_lambda))
    assert parallel.failures.empty and len(parallel.to_frame()) == 3
    pd.testing.assert_frame_equal(serial.predictions, parallel.predictions)
    assert parallel.models[("Notebook", 0)].link_(3) == 3


def test_a_model_that_cannot_be_sent_to_a_worker_is_refused_before_any_work(grouped):
    import threading

    from mixcv_core import SpecError
    X, y, group, _ = grouped
    seen = Recorder()
    cv = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=3)
          .add_model("Ridge").add_model(_notebook_class("Locked", lambda est: None),
                                        model_kwargs={"lock": threading.Lock()})
          .set_run(n_jobs=2, store=False))
    with pytest.raises(SpecError, match=r"models\['Locked'\]: cannot be sent to a worker process \(n_jobs=2\).*"
                                        r"lock.*Run with n_jobs=1"):
        cv.perform(observers=[seen])
    assert seen.events == []


def test_a_fitted_model_that_cannot_come_back_keeps_its_metrics_and_says_why(grouped):
    serial, parallel = _serial_and_parallel(grouped, _notebook_class("Locks", _keeps_a_lock))
    assert parallel.failures.empty
    pd.testing.assert_frame_equal(serial.to_frame().drop(columns=TIMING), parallel.to_frame().drop(columns=TIMING))
    pd.testing.assert_frame_equal(serial.predictions, parallel.predictions)
    notes = parallel.warnings["warning"].tolist()
    assert len(notes) == 3 and all("cannot be sent back from the worker process" in n and "lock" in n
                                   and "n_jobs=1" in n for n in notes)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_fit_past_the_timeout_is_stopped_and_its_fold_failed(grouped, n_jobs):
    X, y, group, _ = grouped
    Sleeper = _notebook_class("Sleeper", lambda est: None)
    original_fit = Sleeper.fit

    def fit(self, X, y):
        if len(X) == 30:   # only the last fold: the others must come through untouched
            import time
            time.sleep(120)
        return original_fit(self, X, y)

    Sleeper.fit = fit
    folds = [(np.arange(0, 40), np.arange(40, 60)), (np.arange(20, 60), np.arange(0, 20)),
             (np.arange(0, 30), np.arange(30, 60))]
    with pytest.warns(FoldFailedWarning, match="Sleeper fold 2: timed out after 2 s"):
        res = (CrossValidation().set_data(X, y, group).set_splits(folds)
               .add_model(Sleeper).add_model(LinearModel)
               .set_run(n_jobs=n_jobs, timeout=2, store=False).perform().get_results())
    assert res.failures[["model", "fold"]].values.tolist() == [["Sleeper", 2]]
    assert "timed out after 2 s" in res.failures["error"].iloc[0]
    assert len(res.to_frame()) == 5 and res.status == "finished"
    assert res.predictions.shape[0] > 0


def test_a_timeout_with_on_error_raise_stops_the_run(grouped):
    X, y, group, _ = grouped
    Sleeper = _notebook_class("Sleeper", lambda est: __import__("time").sleep(120))
    with pytest.raises(TimeoutError, match="Sleeper fold 0: timed out after 1 s"):
        (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=2).add_model(Sleeper)
         .set_run(timeout=1, on_error="raise", store=False).perform())


def test_under_a_timeout_an_unsendable_model_is_refused_naming_the_timeout(grouped):
    import threading

    from mixcv_core import SpecError
    X, y, group, _ = grouped
    cv = (CrossValidation().set_data(X, y, group).set_splits(n_splits_out=2)
          .add_model(_notebook_class("Locked", lambda est: None), model_kwargs={"lock": threading.Lock()})
          .set_run(timeout=60, store=False))                       # n_jobs=1: only the timeout needs workers
    with pytest.raises(SpecError, match=r"models\['Locked'\]: cannot be sent to a worker process \(timeout=60\.0\)"
                                        r".*Run without a timeout"):
        cv.perform()


def test_scaling_a_split_in_place_never_touches_the_runs_data():
    from mixcv_core.experiment.data import prepare_data
    from mixcv_core.experiment.spec import DataSpec
    from mixcv_core.run.fitting import split_data
    from mixcv_core.synthesizer import generate_grouped_regression
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=0, n_features=2)
    import dataclasses
    data = prepare_data(DataSpec("y", "group"), X.assign(y=y, group=g))
    data = dataclasses.replace(data, X=data.X.copy())   # writeable: pandas hands out a read-only view, other paths may not
    before = data.X.copy()
    for train in (np.arange(30), slice(0, 30), np.arange(40) < 30):   # index arrays, a slice (a view), a mask
        s = split_data(data, train, np.arange(30, 40), scale=True)
        assert np.allclose(s.X_train.to_numpy().mean(axis=0), 0.0)    # scaled...
        assert np.array_equal(data.X, before)                         # ...but not the data it came from
