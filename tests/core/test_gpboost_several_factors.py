"""GPBoost with several grouping factors (issue 25, item 5), against GPBoost itself fitted directly.

Real data: mlmRev::ScotsSec (3,435 Scottish pupils, 148 primary x 19 secondary schools,
partially crossed), as tests/reference/lme4_multi.R wrote it. The reference is the gpboost
package called the way its documentation shows (2-D ``group_data`` of the label columns,
``group_rand_coef_data`` with ``ind_effect_group_rand_coef`` for a slope), with the same
boosting parameters: the adapter must hand GPBoost exactly that model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core import MixcvError

gpb = pytest.importorskip("gpboost")

from mixcv_core.models.gpboost import GPBoostRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"num_boost_round": 15, "learning_rate": 0.1, "max_depth": 3, "min_data_in_leaf": 20, "num_leaves": 8,
          "random_state": 1, "n_jobs": 1}


@pytest.fixture(scope="module")
def scotssec() -> pd.DataFrame:
    return pd.read_csv(ROOT / "tests" / "data" / "lmm_multi" / "scotssec.csv", dtype={"primary": str, "second": str})


def direct(d: pd.DataFrame, **model_kwargs) -> tuple:
    """GPBoost as its documentation uses it, with the adapter's boosting parameters."""
    gp = gpb.GPModel(group_data=d[["primary", "second"]], likelihood="gaussian", num_parallel_threads=1,
                     **model_kwargs)
    gp.set_optim_params(params={"trace": False})
    params = {"objective": "regression_l2", "learning_rate": 0.1, "max_depth": 3, "min_data_in_leaf": 20,
              "num_leaves": 8, "lambda_l2": 0.0, "verbose": -1, "seed": 1, "num_threads": 1}
    X = d[["verbal", "sexF"]].to_numpy(float)
    booster = gpb.train(params=params, train_set=gpb.Dataset(X, d["attain"].to_numpy(float)), gp_model=gp,
                        num_boost_round=15)
    return gp, booster


@pytest.mark.parametrize("random,slopes,names", [
    ("(1 | primary) + (1 | second)", [], ["error", "primary.Intercept", "second.Intercept"]),
    # An uncorrelated slope is GPBoost's random coefficient on the factor's column of group_data.
    ("(1 + verbal || primary) + (1 | second)", ["verbal"],
     ["error", "primary.Intercept", "second.Intercept", "primary.verbal"]),
], ids=["intercepts", "slope"])
def test_several_factors_are_gpboost_s_two_column_group_data(scotssec, random, slopes, names):
    d = scotssec
    m = GPBoostRegressor(random=random, **PARAMS).fit(d[["verbal", "sexF"]], d["attain"],
                                                      groups=d[["primary", "second"]])
    coef = {"group_rand_coef_data": d[slopes].to_numpy(float), "ind_effect_group_rand_coef": [1]} if slopes else {}
    gp, booster = direct(d, **coef)
    np.testing.assert_allclose(m.cov_pars_.to_numpy(), np.asarray(gp.get_cov_pars(), float).ravel(), rtol=1e-6)
    assert list(m.cov_pars_.index) == names
    rows = d.iloc[:50]
    pred = {"group_rand_coef_data_pred": rows[slopes].to_numpy(float)} if slopes else {}
    expected = booster.predict(data=rows[["verbal", "sexF"]].to_numpy(float), group_data_pred=rows[["primary", "second"]],
                               **pred)["response_mean"]
    np.testing.assert_allclose(m.predict(rows[["verbal", "sexF"]], groups=rows[["primary", "second"]]), expected,
                               rtol=1e-6)


def test_a_new_level_of_one_factor_keeps_the_other_factor_s_random_effect(scotssec):
    d = scotssec
    m = GPBoostRegressor(random="(1 | primary) + (1 | second)", **PARAMS).fit(
        d[["verbal", "sexF"]], d["attain"], groups=d[["primary", "second"]])
    rows = d.iloc[:5]
    X = rows[["verbal", "sexF"]]
    fixed = m.predict(X)
    both_new = pd.DataFrame({"primary": ["new"] * 5, "second": ["new"] * 5})
    np.testing.assert_allclose(m.predict(X, groups=both_new), fixed, rtol=1e-10)
    new_primary = both_new.assign(second=rows["second"].to_numpy())
    new_second = both_new.assign(primary=rows["primary"].to_numpy())
    known = rows[["primary", "second"]].reset_index(drop=True)
    # Additive: known = fixed + primary's effect + second's effect, each seen alone with the other new.
    np.testing.assert_allclose(m.predict(X, groups=known) - fixed,
                               (m.predict(X, groups=new_second) - fixed) + (m.predict(X, groups=new_primary) - fixed),
                               rtol=1e-8, atol=1e-10)
    assert np.abs(m.predict(X, groups=new_primary) - fixed).max() > 0


@pytest.mark.parametrize("random,words", [
    ("(1 + verbal | primary) + (1 | second)", "(1 + verbal || primary)"),
    ("(0 + verbal + sexF | primary)", "correlated"),
    ("(1 | primary) + (1 | primary)", "random intercept twice"),
])
def test_a_term_gpboost_cannot_fit_is_refused_naming_it_before_any_fit(scotssec, random, words):
    with pytest.raises(MixcvError) as info:
        GPBoostRegressor(random=random, **PARAMS).fit(scotssec[["verbal"]], scotssec["attain"],
                                                      groups=scotssec[["primary", "second"]].iloc[:0])
    assert info.value.field == "random" and words in info.value.message
