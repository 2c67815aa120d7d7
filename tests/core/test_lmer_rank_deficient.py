"""``lmer()`` with a rank-deficient fixed part drops the aliased columns as lme4 does, on real data.

Reference: ``Rscript tests/reference/lmer_rank_deficient.R`` ->
``tests/data/lmer_rank_deficient/`` (lme4 1.1-31, bobyqa with rhoend 1e-12) on mlmRev's Exam,
whose design is aliased for real reasons: boys' schools have no girls and girls' schools no
boys (empty cells of ``sex * schgend``), and ``type`` (single-sex school) is ``schgendboys +
schgendgirls``. lme4 says "fixed-effect model matrix is rank deficient so dropping N columns /
coefficients" and fits the rest; mixcv must drop the same columns (lme4's ``col.dropped``) and
reach the same fit. Tolerances as in test_lmer_lme4.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core.errors import SpecError
from mixcv_core.models import LinearMixedEffectsModel, lmer
from mixcv_core.models._rows import WithIntercept, rank
from mixcv_core.models.mixed.design import aliased_columns, fixed_design

DATA = Path(__file__).parent.parent / "data" / "lmer_rank_deficient"
REF = json.loads((DATA / "lmer_rank_deficient.json").read_text())
CASES = [(name, kind) for name in REF["cases"] for kind in ("reml", "ml")]


@pytest.fixture(scope="module")
def exam() -> pd.DataFrame:
    d = pd.read_csv(DATA / REF["csv"], dtype={"school": str})
    for factor, levels in REF["factor_levels"].items():
        d[factor] = pd.Categorical(d[factor], categories=levels)   # R's levels: R's baseline
    assert len(d) == REF["n"] and d["normexam"].sum() == pytest.approx(REF["y_sum"], rel=1e-12)
    return d


def r_name(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_lmer_drops_the_columns_lme4_drops_warns_naming_them_and_matches_its_fit(exam, name, kind):
    case, ref = REF["cases"][name], REF["cases"][name][kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = lmer(case["formula"], exam, REML=kind == "reml")
    said = [str(w.message) for w in caught if "rank deficient" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(ref["message"][0])          # lme4's words ...
    assert said[0].endswith(f": {', '.join(ref['dropped'])} (each a combination of the columns before it, "
                            "e.g. an empty cell of an interaction)")       # ... and the columns
    assert m.aliased_columns_ == list(ref["dropped"])
    # The kept coefficients, in lme4's order and spelling, and the fit.
    assert [r_name(c) for c in m.fe_params_.index] == list(ref["fixef"])
    np.testing.assert_allclose(m.fe_params_, list(ref["fixef"].values()), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(m.bse_, list(ref["se"].values()), rtol=1e-5)
    crit = m.reml_criterion_ if kind == "reml" else -2 * m.llf_
    assert crit == pytest.approx(ref["criterion"], abs=1e-6)
    np.testing.assert_allclose(m.scale_, ref["sigma2"], rtol=1e-4)
    np.testing.assert_allclose(m.theta_, list(ref["theta"].values()), rtol=1e-4, atol=1e-8)
    for cov, rv in zip(m.varcorr_.values(), ref["varcorr"].values(), strict=True):
        expected = np.array(rv["cov"], dtype=float).reshape(cov.shape)
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
        assert np.all(np.abs(cov.to_numpy() - expected) <= 1e-4 * scale)
    # predict() builds the full design on new rows and keeps the kept columns, as lme4's does.
    np.testing.assert_allclose(m.predict(exam.iloc[:25]), ref["predict_first_25"], atol=1e-5)


@pytest.mark.parametrize("name", list(REF["cases"]))
def test_the_pivoted_qr_finds_lme4_s_dropped_positions_in_the_full_model_matrix(exam, name):
    ref = REF["cases"][name]["reml"]
    _, X, _ = fixed_design(REF["cases"][name]["formula"].split(" + (")[0], exam)
    assert [r_name(c) for c in X.columns] == list(ref["full_columns"])
    assert aliased_columns(X.to_numpy()) == [p - 1 for p in ref["dropped_positions"]]


def plain_aliased(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """The obvious rule, by least squares: a column is aliased when its residual on the kept
    columns before it is below tol times its norm."""
    kept: list[int] = []
    out = []
    for j in range(X.shape[1]):
        x = X[:, j]
        r = x - X[:, kept] @ np.linalg.lstsq(X[:, kept], x, rcond=None)[0] if kept else x
        if np.linalg.norm(r) < tol * (np.linalg.norm(x) or 1.0):
            out.append(j)
        else:
            kept.append(j)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_the_pivoted_qr_agrees_with_least_squares_residuals_on_random_aliased_designs(seed):
    rng = np.random.default_rng(seed)
    n, p = 40, 8
    X = rng.normal(size=(n, p))
    X[:, 0] = 1.0
    for j in rng.choice(np.arange(1, p), size=3, replace=False):
        how = rng.integers(3)
        before = rng.choice(j, size=min(j, 2), replace=False)
        X[:, j] = 0.0 if how == 0 else X[:, before] @ rng.normal(size=before.size) if how == 1 else X[:, before[0]]
    assert aliased_columns(X) == plain_aliased(X)


def test_a_full_rank_formula_drops_nothing_and_says_nothing(exam):
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no warning at all
        m = lmer("normexam ~ sex + schgend + standLRT + (1 | school)", exam)
    assert m.aliased_columns_ == [] and list(m.fe_params_.index) == ["Intercept", "sexM", "schgendboys",
                                                                     "schgendgirls", "standLRT"]


def test_the_estimator_form_refuses_an_aliased_design_naming_the_columns_lmer_would_drop(exam):
    _, X, _ = fixed_design("normexam ~ sex * schgend + standLRT", exam)
    with pytest.raises(SpecError) as err:
        LinearMixedEffectsModel().fit(X.drop(columns="Intercept"), exam["normexam"], groups=exam["school"])
    assert err.value.field == "X"
    assert "sexM:schgendboys, sexM:schgendgirls are combinations of the columns before" in err.value.message
    assert "lmer()" in err.value.message


def test_a_design_singular_only_by_its_scales_is_refused_with_rescaling_as_the_way_out(exam):
    # A tiny but independent column: numerically rank deficient, yet no column is aliased.
    X = pd.DataFrame({"standLRT": exam["standLRT"], "tiny": 1e-15 * (exam["sex"] == "M")})
    with pytest.raises(SpecError) as err:
        LinearMixedEffectsModel().fit(X, exam["normexam"], groups=exam["school"])
    assert err.value.message.endswith("scales differ too much; rescale them") and "lmer()" not in err.value.message


@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e-12, 1e-15, 0.0])
def test_the_fits_rank_check_counts_as_numpy_matrix_rank_on_exams_designs(exam, scale):
    # Full rank, aliased (sex * schgend) and, with a column scaled towards zero, singular by
    # its scale alone: the estimator's check keeps numpy's count on each side of its tolerance,
    # for the design as a frame (lmer) and as features with the intercept added (the estimator),
    # in one block of rows (its own SVD) and in blocks (the SVD of its QR factor).
    for formula in ("normexam ~ sex + schgend + standLRT", "normexam ~ sex * schgend + standLRT"):
        X = fixed_design(formula, exam)[1].to_numpy(dtype=float).copy()
        X[:, -1] *= scale
        assert rank(X) == rank(WithIntercept(X[:, 1:])) == np.linalg.matrix_rank(X)
        assert rank(X, size=500) == rank(WithIntercept(X[:, 1:]), size=500) == np.linalg.matrix_rank(X)
    assert rank(np.zeros((3, 2))) == np.linalg.matrix_rank(np.zeros((3, 2))) == 0
