"""Random-effect terms and the fixed design on real data, against R and lme4 (`models/mixed/design.py`).

Reference: ``Rscript tests/reference/mixed_design.R`` wrote ``tests/data/mixed_design/``: R's
``model.matrix`` of each case's fixed part and lme4's ``lFormula`` of its random part (terms in
lme4's order, ``VarCorr`` names, effect names, levels and each row's level label), on R's own
datasets (warpbreaks, lme4's cake, Pastes, sleepstudy, Penicillin). R is not needed here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixcv_core.errors import SpecError, SpecTypeError
from mixcv_core.models.mixed.design import build_remats, factor_codes, fixed_design, lme4_order, r_make_names
from mixcv_core.models.mixed.terms import parse_random, split_formula

DATA = Path(__file__).parent.parent / "data" / "mixed_design"
DESIGN = json.loads((DATA / "design.json").read_text())


def frame(name: str) -> pd.DataFrame:
    d = pd.read_csv(DATA / f"{name}.csv")
    if name == "warpbreaks":
        # A CSV loses R's level order (L, M, H); a categorical keeps it, as R's factor does.
        d["tension"] = pd.Categorical(d["tension"], categories=["L", "M", "H"])
    return d


def r_names(names: list[str]) -> list[str]:
    return ["(Intercept)" if n == "Intercept" else n for n in names]


@pytest.mark.parametrize("case", list(DESIGN))
def test_the_fixed_design_is_rs_model_matrix(case):
    ref = DESIGN[case]
    fixed, _ = split_formula(ref["formula"][0])
    y, X, _ = fixed_design(fixed, frame(ref["data"][0]))
    assert r_names(list(X.columns)) == ref["fixed_names"]
    np.testing.assert_array_equal(X.to_numpy(), np.array(ref["fixed"], dtype=float).reshape(X.shape))
    assert y.name == ref["formula"][0].split("~")[0].strip()


@pytest.mark.parametrize("case", list(DESIGN))
def test_the_terms_are_lme4s_in_order_names_effects_and_levels(case):
    ref = DESIGN[case]
    d = frame(ref["data"][0])
    _, terms = split_formula(ref["formula"][0])
    remats = build_remats(terms, d, field_name="data")
    assert [r.name for r in remats] == [t["name"][0] for t in ref["terms"]]
    assert [r.factor_name for r in remats] == [t["factor"][0] for t in ref["terms"]]
    assert [r_names(r.effect_names) for r in remats] == [t["effects"] for t in ref["terms"]]
    for remat, t in zip(remats, ref["terms"], strict=True):
        assert remat.n_levels == t["n_levels"][0]
        # Each row's level (an interaction's level is the observed pair, labelled as R does).
        assert list(remat.levels[remat.codes].astype(str)) == t["labels"]
        assert remat.codes.min() == 0 and remat.codes.max() == remat.n_levels - 1
        cols = [np.ones(len(d))] if remat.term.intercept else []
        cols += [d[c].to_numpy(dtype=float) for c in remat.term.columns]
        np.testing.assert_array_equal(remat.Z, np.column_stack(cols))


def test_terms_are_sorted_as_lme4_sorts_them_ties_reversed():
    # R: rev(order(c(5, 10, 5))) is 2 3 1; a non-increasing order is left alone.
    assert lme4_order([5, 10, 5]) == [1, 2, 0]
    assert lme4_order([10, 5, 5]) == [0, 1, 2]
    assert lme4_order([3]) == [0]


def test_duplicate_names_are_made_unique_as_rs_make_names():
    assert r_make_names(["Subject", "Subject"]) == ["Subject", "Subject.1"]
    assert r_make_names(["batch:cask", "batch", "batch", "batch.1"]) == ["batch.cask", "batch", "batch.2", "batch.1"]
    assert r_make_names(["1g", "_x"]) == ["X1g", "X_x"]


# -- bad input: named before any fit --------------------------------------------------------
def sleep() -> pd.DataFrame:
    return frame("sleepstudy")


def refused(text: str, d: pd.DataFrame, kind: type = SpecError) -> str:
    with pytest.raises(kind) as err:
        build_remats(parse_random(text), d, field_name="groups")
    assert err.value.field == "groups"
    return err.value.message


def test_a_missing_column_is_named_with_its_term():
    msg = refused("(1 + Days | Subjet)", sleep())
    assert "(1 + Days | Subjet)" in msg and "'Subjet' is not in the data" in msg
    assert "'Dayz' is not in the data" in refused("(Dayz | Subject)", sleep())


def test_a_slope_constant_within_its_factor_is_refused():
    d = sleep().assign(dose=lambda f: f["Subject"] % 7)      # one dose per subject
    msg = refused("(1 + dose | Subject)", d)
    assert "'dose' is constant within every level of 'Subject'" in msg
    assert "constant within every level" in refused("(dose || Subject)", d)
    # Without an intercept on that factor the column is a scaled intercept, which lme4 fits.
    assert build_remats(parse_random("(0 + dose | Subject)"), d)[0].Z.shape == (180, 1)


def test_a_factor_with_one_level_is_refused():
    assert "has 1 level" in refused("(1 | one)", sleep().assign(one="a"))


def test_a_factor_with_a_level_per_row_is_refused():
    msg = refused("(1 | row)", sleep().assign(row=np.arange(180)))
    assert "180 levels for 180 rows" in msg


def test_more_random_effects_than_rows_is_refused():
    d = frame("pastes")
    msg = refused("(1 + x | batch/cask)", d)   # 30 casks x 2 effects = 60 = rows: lme4 refuses it too
    assert "(1 + x | cask:batch)" in msg and "60 random effects for 60 rows" in msg


def test_a_text_slope_and_missing_values_are_refused():
    assert "not numeric" in refused("(1 + day | Subject)", sleep().assign(day="d"), SpecTypeError)
    d = sleep()
    d.loc[3, "Subject"] = np.nan
    assert "'Subject' has 1 missing values" in refused("(1 | Subject)", d)


def test_fixed_design_errors_name_the_formula():
    with pytest.raises(SpecError) as err:
        fixed_design("Reaction ~ Dayz", sleep())
    assert err.value.field == "formula" and "Dayz" in err.value.message


# -- properties: an interaction's levels are the observed combinations ----------------------
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.sampled_from(["x", "y"])),
                min_size=8, max_size=40))
def test_an_interaction_has_one_level_per_observed_combination(rows):
    d = pd.DataFrame(rows, columns=["a", "b", "c"]).assign(y=0.0)
    (term,) = parse_random("(1 | a:b:c)")
    codes, levels = factor_codes(d, term.factor, term)
    combos = list(zip(d["a"], d["b"], d["c"], strict=True))
    assert len(levels) == len(set(combos))
    # Same code exactly when same combination, and the label spells the combination.
    for i, combo in enumerate(combos):
        assert levels[codes[i]] == ":".join(map(str, combo))
    same = codes[:, None] == codes[None, :]
    assert (same == np.array([[x == y for y in combos] for x in combos])).all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("pq")), min_size=12, max_size=40))
def test_nesting_is_the_outer_factor_plus_the_interaction(rows):
    d = pd.DataFrame(rows, columns=["school", "klass"])
    nested = parse_random("(1 | school/klass)")
    spelled = parse_random("(1 | klass:school) + (1 | school)")
    assert nested == spelled
    inner, _ = nested
    codes, _ = factor_codes(d, inner.factor, inner)
    pairs = list(zip(d["klass"], d["school"], strict=True))
    assert len(set(codes)) == len(set(pairs))


# -- the shortcut for additive numeric formulas ------------------------------------------------
@pytest.mark.parametrize("formula,shortcut", [
    ("Reaction ~ Days", True), ("Reaction ~ 1", True), ("Reaction ~ 1 + Days", True),
    ("Reaction ~ Days + Days", True), ("Reaction ~ Days + half", True),
    ("Reaction ~ Days - 1", False), ("Reaction ~ np.log(Days + 1)", False), ("Reaction ~ Days:half", False),
    ("Reaction ~ who", False), ("Reaction ~ late", False), ("Reaction ~ Days + who", False),
])
def test_an_additive_numeric_formula_is_built_as_formulaic_builds_it(formula, shortcut):
    import formulaic

    from mixcv_core.models.mixed.design import NumericSpec, design_on, r_column_name
    d = sleep().assign(half=lambda f: f["Days"] / 2, late=lambda f: f["Days"] > 4,
                       who=lambda f: "s" + f["Subject"].astype(str))
    y, X, spec = fixed_design(formula, d)
    assert isinstance(spec, NumericSpec) == shortcut
    want = formulaic.model_matrix(formula, d, na_action="raise")
    assert list(X.columns) == [r_column_name(c) for c in want.rhs.columns]
    np.testing.assert_array_equal(X.to_numpy(), np.asarray(want.rhs, dtype=float))
    np.testing.assert_array_equal(y.to_numpy(), np.asarray(want.lhs, dtype=float).ravel())
    assert y.name == str(want.lhs.columns[0])
    new = d.iloc[::7].reset_index(drop=True)
    np.testing.assert_array_equal(design_on(spec, new).to_numpy(),
                                  np.asarray(want.rhs.model_spec.get_model_matrix(new), dtype=float))


def test_the_shortcut_design_refuses_new_rows_it_cannot_build_naming_x():
    from mixcv_core.models.mixed.design import design_on
    d = sleep()
    _, _, spec = fixed_design("Reaction ~ Days", d)
    for rows in (d.drop(columns="Days"), d.assign(Days=np.where(d.index == 2, np.nan, d["Days"]))):
        with pytest.raises(SpecError) as err:
            design_on(spec, rows)
        assert err.value.field == "X" and "Days" in err.value.message
