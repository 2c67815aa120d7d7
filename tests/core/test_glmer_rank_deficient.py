"""``glmer()`` with a rank-deficient fixed part drops the aliased columns as lme4 does, on real data.

Reference: ``Rscript tests/reference/glmer_rank_deficient.R`` ->
``tests/data/lmer_rank_deficient/glmer_rank_deficient.json`` (lme4 1.1-31, glmer binomial,
Laplace, bobyqa with rhoend 1e-12) on mlmRev's Exam with ``pass = normexam > 0``: boys' schools
have no girls and girls' schools no boys (empty cells of ``sex * schgend``), and ``type`` is
``schgendboys + schgendgirls``. Before, mixcv's glmer kept the aliased columns and its PIRLS
normal equations were singular. Tolerances as test_glmm.py's battery.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core.models import glmer

DATA = Path(__file__).parent.parent / "data" / "lmer_rank_deficient"
REF = json.loads((DATA / "glmer_rank_deficient.json").read_text())
LEVELS = json.loads((DATA / "lmer_rank_deficient.json").read_text())["factor_levels"]


@pytest.fixture(scope="module")
def exam() -> pd.DataFrame:
    d = pd.read_csv(DATA / REF["csv"], dtype={"school": str})
    for factor, levels in LEVELS.items():
        d[factor] = pd.Categorical(d[factor], categories=levels)   # R's levels: R's baseline
    d["pass"] = (d["normexam"] > 0).astype(int)
    assert len(d) == REF["n"] and d["pass"].sum() == REF["n_pass"]
    return d


def r_name(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name


@pytest.mark.parametrize("name", list(REF["cases"]))
def test_glmer_drops_the_columns_lme4_drops_warns_naming_them_and_matches_its_fit(exam, name):
    ref = REF["cases"][name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = glmer(ref["formula"], exam, family="binomial")
    said = [str(w.message) for w in caught if "rank deficient" in str(w.message)]
    assert len(said) == 1 and said[0].startswith(ref["message"][0])
    assert said[0].endswith(f": {', '.join(ref['dropped'])} (each a combination of the columns before it, "
                            "e.g. an empty cell of an interaction)")
    assert m.aliased_columns_ == list(ref["dropped"])
    assert [r_name(c) for c in m.fe_params_.index] == list(ref["fixef"])
    np.testing.assert_allclose(m.fe_params_, list(ref["fixef"].values()), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(m.bse_, list(ref["se"].values()), rtol=2e-3)
    np.testing.assert_allclose(m.theta_, list(ref["theta"].values()), rtol=2e-4)
    # The criterion never above glmer's optimum by more than rounding.
    assert -2 * m.llf_ <= ref["deviance"] + 1e-6 * ref["deviance"]
    assert -2 * m.llf_ == pytest.approx(ref["deviance"], rel=1e-7)
    assert m.converged_ is True
    # Predictions from a data frame use the kept columns only (the dropped ones are rebuilt and dropped).
    p = m.predict_proba(exam.iloc[:25], groups=exam["school"].iloc[:25])[:, 1]
    np.testing.assert_allclose(p, ref["fitted_first_25"], rtol=1e-4, atol=1e-6)


def test_a_full_rank_formula_drops_nothing_and_says_nothing(exam):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        m = glmer("pass ~ sex + standLRT + (1 | school)", exam)
    assert m.aliased_columns_ == []
