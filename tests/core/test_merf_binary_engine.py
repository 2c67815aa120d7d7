"""Binary MERF through the engine (issue 27, item 4): nested cross-validation on Contraception.

``add_merf`` on a binary target builds `MERFClassifier` around the (tuned) classifier's regression
counterpart; its metric columns are checked against scikit-learn's functions computed here from
the predictions the run kept, its PQL iterations reach the observers as `EMIteration` events,
and the report says which regressor stood for the classifier.
"""

from __future__ import annotations

import _real_data
import pandas as pd
import pytest
from sklearn import metrics as skm

from mixcv_core import engine
from mixcv_core.errors import MixcvError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec
from mixcv_core.models.merf_binary import MERFClassifier
from mixcv_core.results.report import render_html
from mixcv_core.run.events import EMIteration

FEATURES = ("age", "urban", "children")


@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    return _real_data.contraception()


def _spec(models, target="use") -> ExperimentSpec:
    # Three EM steps per PQL iteration: what is checked here is the wiring, not the fit (the fit
    # is checked against glmmPQL in test_merf_binary.py); the default 100 took 27 s of the suite.
    return ExperimentSpec(DataSpec(target=target, groups="district", features=FEATURES), models=models,
                          outer=SplitSpec("StratifiedGroupKFold", n_splits=3, known_holdout=0.2, scale=False,
                                          _field="outer"),
                          merf=MerfSpec(max_iterations=3))


@pytest.fixture(scope="module")
def run(contraception):
    events = []
    # Leaves of at least 60 rows: with 20 the forest's noise kept eta from settling and every
    # fold ran all 30 PQL iterations (11 s of CPU); with 60 they settle in 5-9 (3 s).
    forest = ModelSpec("forest", "RandomForestClassifier", add_merf=True,
                       model_kwargs={"n_estimators": 15, "min_samples_leaf": 60, "criterion": "entropy"})
    res = engine.run(_spec((forest,)), contraception, observers=[events.append])
    return res, events


def test_a_binary_target_with_add_merf_gets_a_merf_column_scored_as_scikit_learn_scores_it(run, contraception):
    res, _ = run
    y = (contraception["use"] == "Y").to_numpy(dtype=int)
    frame = res.to_frame()
    assert res.failures.empty and set(frame.model) == {"forest", "MERF(forest)"}
    merf = [o for o in res.outcomes if o.model == "MERF(forest)"]
    assert len(merf) == 3
    for o in merf:
        assert isinstance(o.estimator, MERFClassifier) and o.estimator.counterpart_ == "RandomForestRegressor"
        assert o.estimator.dropped_params_["criterion"] == "entropy"
        assert o.estimator.trained_fe_model.get_params()["min_samples_leaf"] == 60
        for split, rows, pred in (("test", o.test_rows, o.y_pred), ("known", o.known_rows, o.y_pred_known)):
            row = frame[(frame.model == o.model) & (frame.fold == o.fold)]
            assert row[f"{split}_log_loss"].item() == pytest.approx(skm.log_loss(y[rows], pred, labels=[0, 1]),
                                                                    rel=1e-12)
            assert row[f"{split}_roc_auc"].item() == pytest.approx(skm.roc_auc_score(y[rows], pred), rel=1e-12)
        # New districts (the test fold) get marginal probabilities, known ones their own.
        g_test = contraception["district"].to_numpy()[o.test_rows]
        assert not set(g_test) & set(o.estimator.random_effects_.index.astype(str))


def test_each_pql_iteration_reaches_the_observers_and_the_report_names_the_counterpart(run):
    res, events = run
    em = [e for e in events if isinstance(e, EMIteration) and e.model == "MERF(forest)"]
    for o in (o for o in res.outcomes if o.model == "MERF(forest)"):
        mine = [e.iteration for e in em if e.fold == o.fold]
        assert mine == list(o.estimator.history_["iteration"]) == list(o.history["iteration"])
    text = render_html(res)
    assert ("MERF(forest) is binary MERF" in text and "as RandomForestRegressor" in text
            and "criterion, class_weight" in text)


def test_merf_on_a_target_of_several_classes_is_refused_naming_merf_and_the_number_of_classes(contraception):
    spec = _spec((ModelSpec("forest", "RandomForestClassifier", add_merf=True),), target="livch")
    with pytest.raises(MixcvError) as info:
        engine.run(spec, contraception)
    assert info.value.field == "models['forest'].merf"
    assert "MERF(forest) is binary MERF" in str(info.value) and "4 classes" in str(info.value)


def test_the_dry_run_counts_binary_merfs_base_fits_as_one_em_per_pql_iteration(contraception):
    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.results.report import render_plan_html
    spec = _spec((ModelSpec("forest", "RandomForestClassifier", add_merf=True),)).replace(task="classification")
    html = render_plan_html(spec, plan_experiment(spec, contraception))
    at_most = 3 * (spec.merf.max_iterations + 1) * MERFClassifier().outer_max_iterations
    assert f'class="data row0 col6" >{at_most}</td>' in html
