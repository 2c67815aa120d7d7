"""GPBoost on a binary outcome (issue 27, item 4): `GPBoostClassifier`, checked against references
mixcv did not compute.

- Known groups: the gpboost package called as its documentation shows (``GPModel(group_data=...,
  likelihood="bernoulli_logit")``, ``gpb.train`` with ``objective="binary"``): the adapter hands
  GPBoost's predictive probability over unchanged.
- New groups: the marginal probability ``E expit(F + b)``, ``b ~ N(0, z' Sigma z)``, integrated in the
  test by `scipy.integrate.quad` (the probit by its closed form ``Phi(F / sqrt(1 + s^2))``), with
  ``F`` GPBoost's tree ensemble and ``Sigma`` its estimated variances.
- The variance GPBoost estimates by its Laplace approximation, on real data (mlmRev's
  Contraception: 1,934 women in 60 districts), against lme4's ``glmer`` (nAGQ = 1) as
  tests/reference/glmer_battery.R stored it.
- A nested cross-validation through the engine, whose metric columns equal scikit-learn's
  functions on the stored predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats
from sklearn import metrics as skm

from mixcv_core import engine
from mixcv_core.errors import SpecError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.run.events import FoldStarted, RunStarted
from mixcv_core.tracking.store import RunStore

gpb = pytest.importorskip("gpboost")

from mixcv_core.models import GPBoostClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["age", "urbanY", "livch1", "livch2", "livch3_"]
BOOST = {"num_boost_round": 20, "learning_rate": 0.1, "max_depth": 3, "min_data_in_leaf": 20, "num_leaves": 8,
         "random_state": 1, "n_jobs": 1}


@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    """mlmRev::Contraception as glmer_battery.R wrote it (use coded 1 = "Y")."""
    return pd.read_csv(ROOT / "tests" / "data" / "glmm" / "contraception.csv", dtype={"district": str})


@pytest.fixture(scope="module")
def split(contraception):
    """Ten districts held out whole (new groups); the rest trains the model."""
    d = contraception
    new = set(sorted(d["district"].unique(), key=int)[::6])
    is_new = d["district"].isin(new).to_numpy()
    return d[~is_new].reset_index(drop=True), d[is_new].reset_index(drop=True)


def direct(train: pd.DataFrame, likelihood: str = "bernoulli_logit"):
    """GPBoost as its documentation uses it for binary data, with the adapter's boosting parameters."""
    gp = gpb.GPModel(group_data=train["district"].to_numpy(), likelihood=likelihood, num_parallel_threads=1)
    gp.set_optim_params(params={"trace": False})
    params = {"objective": "binary", "learning_rate": 0.1, "max_depth": 3, "min_data_in_leaf": 20, "num_leaves": 8,
              "lambda_l2": 0.0, "verbose": -1, "seed": 1, "num_threads": 1}
    booster = gpb.train(params=params, train_set=gpb.Dataset(train[FEATURES].to_numpy(float),
                                                             train["use"].to_numpy(float)),
                        gp_model=gp, num_boost_round=20)
    return gp, booster


def fixed_part(model: GPBoostClassifier, X: pd.DataFrame) -> np.ndarray:
    """GPBoost's tree ensemble F on the latent (linear-predictor) scale."""
    out = model.booster_.predict(data=X.to_numpy(float), group_data_pred=np.full(len(X), -1), pred_latent=True)
    return np.asarray(out["fixed_effect"], dtype=float)


def test_known_groups_get_gpboost_s_own_probabilities_and_labels_keep_their_names(split):
    train, _ = split
    labels = np.where(train["use"] == 1, "Y", "N")
    m = GPBoostClassifier(**BOOST).fit(train[FEATURES], labels, groups=train["district"])
    gp, booster = direct(train)
    assert list(m.classes_) == ["N", "Y"]
    np.testing.assert_allclose(m.cov_pars_.to_numpy(), np.asarray(gp.get_cov_pars(), float).ravel(), rtol=1e-8)
    assert list(m.cov_pars_.index) == ["Intercept"]      # a Bernoulli outcome has no error variance
    rows = train.iloc[::7]
    want = booster.predict(data=rows[FEATURES].to_numpy(float),
                           group_data_pred=rows["district"].to_numpy())["response_mean"]
    P = m.predict_proba(rows[FEATURES], groups=rows["district"])
    np.testing.assert_allclose(P[:, 1], want, rtol=1e-10)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.array_equal(m.predict(rows[FEATURES], groups=rows["district"]), np.where(want > 0.5, "Y", "N"))


def _marginal_logit(F: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """E expit(F + s Z), Z ~ N(0, 1), by adaptive quadrature."""
    return np.array([integrate.quad(lambda z, f=f, s=s: special.expit(f + s * z) * stats.norm.pdf(z),
                                    -np.inf, np.inf, epsabs=1e-13)[0] for f, s in zip(F, np.sqrt(s2))])


def test_new_groups_get_the_marginal_probability_over_the_estimated_variance(split):
    train, test = split
    m = GPBoostClassifier(**BOOST).fit(train[FEATURES], train["use"], groups=train["district"])
    X = test[FEATURES].iloc[:60]
    F = fixed_part(m, X)
    s2 = np.full(len(X), m.cov_pars_["Intercept"])
    marginal = _marginal_logit(F, s2)
    got = m.predict_proba(X, groups=test["district"].iloc[:60])[:, 1]
    np.testing.assert_allclose(got, marginal, rtol=1e-7)
    # Not the plug-in expit(F) of a typical district: that is further from 0.5 (the test would see it).
    assert np.max(np.abs(special.expit(F) - marginal)) > 1e-3
    # No groups, or predict_known_groups=False: every row is a new group.
    np.testing.assert_allclose(m.predict_proba(X)[:, 1], marginal, rtol=1e-7)
    known = train[FEATURES].iloc[:30]
    off = GPBoostClassifier(predict_known_groups=False, **BOOST).fit(train[FEATURES], train["use"],
                                                                      groups=train["district"])
    np.testing.assert_allclose(off.predict_proba(known, groups=train["district"].iloc[:30])[:, 1],
                               _marginal_logit(fixed_part(off, known), np.full(30, off.cov_pars_["Intercept"])),
                               rtol=1e-7)


def test_a_probit_new_group_is_phi_of_f_over_the_root_of_one_plus_the_variance(split):
    train, test = split
    m = GPBoostClassifier(likelihood="bernoulli_probit", **BOOST).fit(train[FEATURES], train["use"],
                                                                      groups=train["district"])
    X = test[FEATURES].iloc[:40]
    F = fixed_part(m, X)
    want = stats.norm.cdf(F / np.sqrt(1.0 + m.cov_pars_["Intercept"]))
    np.testing.assert_allclose(m.predict_proba(X, groups=test["district"].iloc[:40])[:, 1], want, rtol=1e-7)


def test_a_new_group_with_a_random_slope_integrates_over_intercept_and_slope_variances(split):
    train, test = split
    m = GPBoostClassifier(random="(1 + age || district)", **BOOST).fit(
        train[FEATURES], train["use"], groups=train[["district"]])
    assert list(m.cov_pars_.index) == ["district.Intercept", "district.age"]
    X = test[FEATURES].iloc[:40]
    F = fixed_part_with_slope(m, X)
    s2 = m.cov_pars_["district.Intercept"] + X["age"].to_numpy() ** 2 * m.cov_pars_["district.age"]
    np.testing.assert_allclose(m.predict_proba(X, groups=test[["district"]].iloc[:40])[:, 1],
                               _marginal_logit(F, s2), rtol=1e-7)


def fixed_part_with_slope(model: GPBoostClassifier, X: pd.DataFrame) -> np.ndarray:
    out = model.booster_.predict(data=X.to_numpy(float), group_data_pred=np.full(len(X), -1),
                                 group_rand_coef_data_pred=X[["age"]].to_numpy(float), pred_latent=True)
    return np.asarray(out["fixed_effect"], dtype=float)


def test_gpboost_s_laplace_variance_and_fixed_effects_are_glmer_s_on_contraception(contraception):
    """The variance the adapter integrates over is a Laplace ML estimate as glmer's (nAGQ = 1).

    GPBoost's own GLMM (linear fixed part: ``GPModel.fit(y, X)``, the same Laplace machinery the
    boosted model uses) on glmer_battery.json's ``use ~ age + I(age^2) + urban + livch + (1 |
    district)``. Measured (gpboost 1.8.0, default optimiser): variance 0.22466 vs lme4's 0.22586
    (0.53 % low); fixed effects at most 0.034 of lme4's standard error apart (urbanY: 0.0041; the largest
    in absolute terms is livch3+'s 0.0047, 0.025 SE); -2 log L 0.0043 above lme4's optimum (GPBoost's
    optimiser stops a little earlier). Tolerances: 2 % on the variance, 0.05 SE, 0.02 on -2 log L.
    """
    ref = json.loads((ROOT / "tests" / "data" / "glmm" / "glmer_battery.json").read_text())["cases"]["contraception"]
    fit = ref["fit"]
    cols = [c for c in fit["fixef"] if c != "(Intercept)"]
    d = contraception
    X = np.column_stack([np.ones(len(d)), d[cols].to_numpy(float)])
    gp = gpb.GPModel(group_data=d["district"].to_numpy(), likelihood="bernoulli_logit", num_parallel_threads=1)
    gp.set_optim_params(params={"trace": False})
    gp.fit(y=d["use"].to_numpy(float), X=X)
    variance = float(np.asarray(gp.get_cov_pars(), float).ravel()[0])
    lme4_variance = fit["varcorr"]["district"]["cov"][0][0]
    assert variance == pytest.approx(lme4_variance, rel=0.02)
    beta = np.asarray(gp.get_coef(), float).ravel()
    lme4_beta = np.array(list(fit["fixef"].values()))
    se = np.array([fit["se"][k] for k in fit["fixef"]])
    assert np.max(np.abs(beta - lme4_beta) / se) < 0.05
    assert 2 * gp.get_current_neg_log_likelihood() == pytest.approx(fit["objective"], abs=0.02)


# -- through the engine ---------------------------------------------------------------------------

def _spec(**kw) -> ExperimentSpec:
    models = kw.pop("models", (ModelSpec("gpb", "GPBoostClassifier", model_kwargs={**BOOST, "random_state": None}),))
    data = kw.pop("data", DataSpec(target="use", groups="district", features=tuple(FEATURES)))
    outer = SplitSpec("StratifiedGroupKFold", n_splits=3, known_holdout=0.2, scale=False, _field="outer")
    return ExperimentSpec(data, models=models, outer=outer, task="classification", **kw)


def test_a_nested_cv_run_scores_gpboost_as_scikit_learn_scores_its_stored_predictions(contraception, tmp_path):
    store = RunStore(tmp_path)
    data = contraception.assign(use=np.where(contraception["use"] == 1, "Y", "N"))
    res = engine.run(_spec(), data, store=store)
    loaded = store.load(res.run_id)
    assert res.failures.empty and len(loaded.outcomes) == 3
    y = (data["use"] == "Y").to_numpy(dtype=int)
    frame = loaded.to_frame()
    for o in loaded.outcomes:
        assert ((o.y_pred > 0) & (o.y_pred < 1)).all()
        for split_name, rows, pred in (("test", o.test_rows, o.y_pred), ("known", o.known_rows, o.y_pred_known)):
            row = frame.loc[(frame.model == "gpb") & (frame.fold == o.fold)]
            assert row[f"{split_name}_log_loss"].item() == pytest.approx(skm.log_loss(y[rows], pred, labels=[0, 1]),
                                                                         rel=1e-12)
            assert row[f"{split_name}_roc_auc"].item() == pytest.approx(skm.roc_auc_score(y[rows], pred), rel=1e-12)
        # The held-out districts are new to the fold's model: the marginal over its variance.
        est = next(r.estimator for r in res.outcomes if r.fold == o.fold)   # the store keeps no models
        X = contraception[FEATURES].iloc[o.test_rows[:20]]
        np.testing.assert_allclose(o.y_pred[:20], _marginal_logit(fixed_part(est, X),
                                                                  np.full(20, est.cov_pars_["Intercept"])), rtol=1e-7)


def _refused(field: str, fn) -> SpecError:
    events: list = []
    with pytest.raises(SpecError) as info:
        fn(events)
    assert info.value.field == field, info.value
    assert not [e for e in events if isinstance(e, (RunStarted, FoldStarted))]   # before any fit
    return info.value


def test_several_classes_are_refused_for_gpboost_naming_the_model(contraception):
    data = contraception.assign(livch=np.select([contraception.livch1 == 1, contraception.livch2 == 1,
                                                 contraception.livch3_ == 1], ["1", "2", "3+"], "0"))
    spec = _spec(data=DataSpec(target="livch", groups="district", features=("age", "urbanY")))
    err = _refused("models['gpb'].model",
                   lambda ev: engine.run(spec, data, observers=[ev.append], store=False))
    assert "GPBoostClassifier" in err.message and "4 classes" in err.message
    direct_err = _refused("y", lambda ev: GPBoostClassifier(**BOOST).fit(data[["age"]], data["livch"],
                                                                        groups=data["district"]))
    assert "binary outcome" in direct_err.message


def test_gpboost_s_regressor_in_a_classification_is_refused_pointing_to_the_classifier():
    err = _refused("models['gpb'].model",
                   lambda ev: _spec(models=(ModelSpec("gpb", "GPBoostRegressor"),)))
    assert "'GPBoostClassifier'" in err.message


def test_a_likelihood_that_is_not_bernoulli_is_refused_naming_it(split):
    train, _ = split
    err = _refused("likelihood", lambda ev: GPBoostClassifier(likelihood="poisson").fit(
        train[FEATURES], train["use"], groups=train["district"]))
    assert "bernoulli_logit" in err.message


def test_a_cell_names_gpboost_s_classifier_and_writes_it_back_tuned():
    from mixcv_core.experiment.cell import parse_cell, spec_to_cell
    spec = parse_cell("data: df\ntarget: use\ngroups: district\ntask: classification\nmodels:\n  GPBoostClassifier:\n"
                      "    learning_rate: float(0.01, 0.3, log)\n").spec
    assert spec.models[0].estimator_class is GPBoostClassifier and spec.models[0].tunes
    assert "GPBoostClassifier" in spec_to_cell(spec) and parse_cell(spec_to_cell(spec)).spec == spec
