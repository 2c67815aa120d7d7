"""The estimator with ``random=`` and ``lmer()``: the same fit as lme4, one set of names, prediction for new levels.

References: lme4's fits in ``tests/data/lmm/lme4_battery.json`` (tests/reference/lme4_battery.R)
and lme4's ``predict(..., allow.new.levels = TRUE)`` in ``tests/data/mixed_design/predict.json``
(tests/reference/mixed_design.R). Both were made with a tight optimiser (bobyqa, rhoend 1e-12).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mixcv_core.errors import SpecError, SpecTypeError
from mixcv_core.models import LinearMixedEffectsModel, lmer

DATA = Path(__file__).parent.parent / "data"
BATTERY = json.loads((DATA / "lmm" / "lme4_battery.json").read_text())["cases"]
PREDICT = json.loads((DATA / "mixed_design" / "predict.json").read_text())


def sleep() -> pd.DataFrame:
    return pd.read_csv(DATA / "lmm" / "sleepstudy.csv")


@pytest.mark.parametrize("reml", [True, False])
def test_random_and_lmer_fit_sleepstudy_as_lme4(reml):
    ref = BATTERY["sleepstudy"]["reml" if reml else "ml"]
    d = sleep()
    by_terms = LinearMixedEffectsModel(reml=reml, random="(1 + Days | Subject)").fit(
        d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    by_formula = lmer("Reaction ~ Days + (Days | Subject)", d, REML=reml)
    for m in (by_terms, by_formula):
        assert list(m.fe_params_.index) == ["Intercept", "Days"]
        np.testing.assert_allclose(m.fe_params_, list(ref["fixef"].values()), rtol=1e-6)
        np.testing.assert_allclose(m.bse_, list(ref["se"].values()), rtol=1e-5)
        assert list(m.varcorr_) == ["Subject"]
        np.testing.assert_allclose(m.varcorr_["Subject"].to_numpy(), ref["cov_re"], rtol=1e-4)
        np.testing.assert_allclose(m.theta_, ref["theta"], rtol=1e-4)
        crit = m.reml_criterion_ if reml else -2 * m.llf_
        assert crit == pytest.approx(ref["criterion"], abs=1e-6)
        assert m.converged_ and m.boundary_ == []
        # One factor: random_effects_ stays the DataFrame it always was; ranef_ is lme4's dict.
        assert isinstance(m.random_effects_, pd.DataFrame) and list(m.ranef_) == ["Subject"]
        blups = m.random_effects_.set_axis(m.random_effects_.index.astype(str))
        np.testing.assert_allclose(blups.loc[ref["blup_groups"]].to_numpy(), ref["blups"],
                                   rtol=1e-4, atol=1e-4)


def test_the_shorthand_and_random_give_the_same_estimates():
    d = sleep()
    short = LinearMixedEffectsModel().fit(d[["Days"]], d["Reaction"], groups=d["Subject"], slopes=["Days"])
    terms = LinearMixedEffectsModel(random="(Days | Subject)").fit(d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    np.testing.assert_allclose(terms.fe_params_, short.fe_params_, rtol=1e-10)
    np.testing.assert_allclose(terms.cov_re_, short.cov_re_, rtol=1e-8)
    np.testing.assert_allclose(terms.random_effects_sd_, short.random_effects_sd_, rtol=1e-8)
    assert terms.icc_ == pytest.approx(short.icc_, rel=1e-10)
    assert short.icc_by_factor_["Subject"] == pytest.approx(short.icc_, rel=1e-12)
    assert terms.random_effects_.index.name == "Subject" and short.random_effects_.index.name == "group"


@pytest.mark.parametrize("how", ["lmer", "random"])
def test_a_new_subject_gets_the_fixed_effects_and_a_known_one_its_blups_as_lme4_predicts(how):
    case = PREDICT["sleep_one_factor"]
    d = sleep()
    train, test = d.iloc[np.array(case["train"]) - 1], d.iloc[np.array(case["test"]) - 1]
    if how == "lmer":
        m = lmer(case["formula"][0], train)
        pred = m.predict(test)
    else:
        m = LinearMixedEffectsModel(random="(Days | Subject)").fit(train[["Days"]], train["Reaction"],
                                                                    groups=train[["Subject"]])
        pred = m.predict(test[["Days"]], groups=test[["Subject"]])
        np.testing.assert_allclose(m.predict(test[["Days"]]), case["fixed_only"], rtol=1e-8)
    assert m.reml_criterion_ == pytest.approx(case["reml_criterion"][0], abs=1e-6)
    np.testing.assert_allclose(pred, case["predict"], rtol=1e-7)
    assert (test["Subject"] == 372).any() and 372 not in m.random_effects_.index


def test_predict_known_groups_false_gives_the_fixed_effects_alone():
    case = PREDICT["sleep_one_factor"]
    d = sleep()
    m = LinearMixedEffectsModel(random="(Days | Subject)", predict_known_groups=False).fit(
        d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    fixed = m.fe_params_["Intercept"] + m.fe_params_["Days"] * d["Days"].to_numpy()
    np.testing.assert_allclose(m.predict(d[["Days"]], groups=d[["Subject"]]), fixed, rtol=1e-12)
    assert len(case["predict"]) == len(case["fixed_only"])


def test_slope_columns_may_come_from_groups_and_the_model_clones():
    d = sleep()
    m = LinearMixedEffectsModel(random="(Days | Subject)")
    m.fit(pd.DataFrame(index=d.index), d["Reaction"], groups=d[["Subject", "Days"]])
    assert list(m.varcorr_["Subject"].columns) == ["Intercept", "Days"] and list(m.fe_params_.index) == ["Intercept"]
    assert clone(m).get_params()["random"] == "(Days | Subject)"


def test_lmer_builds_factors_as_r_and_drops_incomplete_rows_as_lme4():
    d = sleep()
    d["phase"] = np.where(d["Days"] < 2, "baseline", np.where(d["Days"] < 6, "early", "late"))
    m = lmer("Reaction ~ phase + (1 | Subject)", d)
    assert list(m.fe_params_.index) == ["Intercept", "phaseearly", "phaselate"]
    gappy = d.copy()
    gappy.loc[[0, 5], "Reaction"] = np.nan
    dropped = lmer("Reaction ~ phase + (1 | Subject)", gappy)
    complete = lmer("Reaction ~ phase + (1 | Subject)", d.drop(index=[0, 5]))
    assert dropped.n_dropped_ == 2 and dropped.n_obs_ == 178
    np.testing.assert_allclose(dropped.fe_params_, complete.fe_params_, rtol=1e-12)


def test_summary_of_a_formula_fit_names_its_formula_and_groups():
    text = str(lmer("Reaction ~ Days + (Days | Subject)", sleep()).summary())
    assert "Formula: Reaction ~ Days + (Days | Subject)" in text
    assert "Number of obs: 180, groups: Subject, 18" in text


# -- bad input: before any fit, naming the argument, the term and the column ------------------
def test_text_fixed_columns_are_refused_in_the_estimator():
    d = sleep().assign(label="x")
    with pytest.raises(SpecTypeError) as err:
        LinearMixedEffectsModel(random="(1 | Subject)").fit(d[["Days", "label"]], d["Reaction"],
                                                            groups=d[["Subject"]])
    assert err.value.field == "X" and "'label'" in err.value.message


@pytest.mark.parametrize(("kwargs", "field", "says"), [
    ({"groups": "Subject"}, "groups", "groups must be a DataFrame"),
    ({"groups": None}, "groups", "groups must be a DataFrame"),
    ({"groups": "frame", "slopes": ["Days"]}, "slopes", "the slopes are written in the terms"),
    ({"groups": "short"}, "groups", "has 10 rows but y has 180"),
    ({"groups": "frame", "random": "(1 + Days | Subjct)"}, "groups", "'Subjct' is not in the data"),
    ({"groups": "frame", "random": "(1 + Days | Subject"}, "random", "not closed"),
    ({"groups": "frame", "backend": "statsmodels"}, "backend", "needs the native backend"),
])
def test_bad_estimator_input_is_refused_before_any_fit(kwargs, field, says):
    d = sleep()
    groups = {"frame": d[["Subject"]], "short": d[["Subject"]].head(10), "Subject": d["Subject"].to_numpy(),
              None: None}[kwargs.pop("groups")]
    params = {"random": kwargs.pop("random", "(1 + Days | Subject)"), **{k: v for k, v in kwargs.items()
                                                                         if k == "backend"}}
    with pytest.raises((SpecError, SpecTypeError)) as err:
        LinearMixedEffectsModel(**params).fit(d[["Days"]], d["Reaction"], groups=groups, slopes=kwargs.get("slopes"))
    assert err.value.field == field and says in err.value.message


@pytest.mark.parametrize(("formula", "data", "field", "says"), [
    ("Reaction ~ Dayz + (1 | Subject)", "frame", "data", "['Dayz']"),
    ("Reaction ~ Days + (1 | Subjekt)", "frame", "data", "['Subjekt']"),
    ("Reaction ~ Days + (1 + Days || Subject) + (1 | one)", "one", "data", "(1 | one)"),
    ("Reaction ~ Days", "frame", "formula", "no random-effect term"),
    ("Reaction ~ Days + (1 | Subject)", "array", "data", "expected a pandas DataFrame"),
])
def test_bad_lmer_input_is_refused_before_any_fit(formula, data, field, says):
    d = sleep()
    given = {"frame": d, "one": d.assign(one="a"), "array": d.to_numpy()}[data]
    with pytest.raises((SpecError, SpecTypeError)) as err:
        lmer(formula, given)
    assert err.value.field == field and says in err.value.message


def test_predicting_without_a_grouping_column_is_refused_naming_it():
    d = sleep()
    m = LinearMixedEffectsModel(random="(Days | Subject)").fit(d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    with pytest.raises(SpecError) as err:
        m.predict(d[["Days"]], groups=d[["Days"]].rename(columns={"Days": "day"}))
    assert err.value.field == "groups" and "['Subject']" in err.value.message


def test_no_warning_is_raised_by_a_clean_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lmer("Reaction ~ Days + (Days | Subject)", sleep())


# -- several factors -------------------------------------------------------------------------
def penicillin() -> pd.DataFrame:
    return pd.read_csv(DATA / "mixed_design" / "penicillin.csv")


def test_a_new_plate_or_sample_gets_zero_for_its_factor_and_keeps_the_other_blups_as_lme4():
    case = PREDICT["penicillin_crossed"]
    d = penicillin()
    train, test = d.iloc[np.array(case["train"]) - 1], d.iloc[np.array(case["test"]) - 1]
    # The four rows: known plate and sample, new sample, new plate, both new.
    assert list(zip(test["plate"], test["sample"], strict=True)) == [("a", "A"), ("a", "F"), ("x", "A"), ("x", "F")]
    by_formula = lmer(case["formula"][0], train)
    by_terms = LinearMixedEffectsModel(random="(1 | plate) + (1 | sample)").fit(
        pd.DataFrame(index=train.index), train["diameter"], groups=train[["plate", "sample"]])
    for m, pred in ((by_formula, by_formula.predict(test)),
                    (by_terms, by_terms.predict(pd.DataFrame(index=test.index), groups=test[["plate", "sample"]]))):
        assert m.reml_criterion_ == pytest.approx(case["reml_criterion"][0], abs=1e-6)
        np.testing.assert_allclose(pred, case["predict"], rtol=1e-7)
        # Several factors: random_effects_ is lme4's ranef, a dict by factor; cov_re_ is not set.
        assert isinstance(m.random_effects_, dict) and list(m.random_effects_) == ["plate", "sample"]
        assert not hasattr(m, "cov_re_")
    # The parts add up: fixed + plate BLUP (known) + sample BLUP (known) on the first row.
    re = by_terms.random_effects_
    assert isinstance(re, dict)
    first = by_terms.fe_params_["Intercept"] + re["plate"].loc["a", "Intercept"] + re["sample"].loc["A", "Intercept"]
    assert first == pytest.approx(by_terms.predict(pd.DataFrame(index=[0]), groups=test[["plate", "sample"]].head(1))[0],
                                  rel=1e-14)


def test_the_icc_of_each_factor_is_its_variance_over_the_total_random_plus_residual():
    d = penicillin()
    m = lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    tau = {name: float(cov.iloc[0, 0]) for name, cov in m.varcorr_.items()}
    left = sum(tau.values()) + m.scale_
    for factor, t in tau.items():
        assert m.icc_by_factor_[factor] == pytest.approx(t / left, rel=1e-10)
        assert m.variance_decomposition_.loc[f"random effects: {factor}", "variance"] == pytest.approx(t, rel=1e-10)
    assert m.icc_ == pytest.approx(sum(tau.values()) / left, rel=1e-10)
    assert "ICC 0.936 (plate 0.1" in str(m.summary())


def test_two_terms_on_one_factor_are_one_factor_for_random_effects():
    d = sleep()
    m = lmer("Reaction ~ Days + (Days || Subject)", d)
    assert list(m.varcorr_) == ["Subject", "Subject.1"]
    assert isinstance(m.random_effects_, pd.DataFrame) and list(m.random_effects_.columns) == ["Intercept", "Days"]
    # Uncorrelated terms: the factor's covariance has a zero between them.
    assert m.cov_re_.loc["Intercept", "Days"] == 0.0
    np.testing.assert_allclose(np.diag(m.cov_re_), [m.varcorr_["Subject"].iloc[0, 0],
                                                    m.varcorr_["Subject.1"].iloc[0, 0]], rtol=1e-12)
    text = str(m.summary())
    assert "Subject.1" in text and "groups: Subject, 18" in text


def test_a_slope_without_intercept_comes_from_groups():
    d = sleep()
    m = LinearMixedEffectsModel(random="(1 | Subject) + (0 + Days | Subject)")
    m.fit(d[["Days"]], d["Reaction"], groups=d[["Subject"]])
    same = lmer("Reaction ~ Days + (Days || Subject)", d)
    assert m.reml_criterion_ == pytest.approx(same.reml_criterion_, abs=1e-8)
    np.testing.assert_allclose(m.theta_, same.theta_, rtol=1e-6)
