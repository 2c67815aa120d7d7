"""The random part of lme4 formulas, parsed by mixcv (`mixcv_core.models.mixed.terms`).

The expansions (``||``, ``/``) and names are lme4's: ``(1 | batch/cask)`` is lme4's
``(1 | cask:batch) + (1 | batch)`` (R/utilities.R ``expandSlash``) and ``(x || g)`` its
``(1 | g) + (0 + x | g)`` (``expandDoubleVerts``); the printed names were checked with
lme4 1.1-31 (``names(VarCorr(lmer(strength ~ 1 + (1 | batch/cask), Pastes)))`` is
``"cask:batch" "batch"``), and tests/core/test_mixed_design.py checks them on data against
``tests/reference/mixed_design.R``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixcv_core.errors import SpecError
from mixcv_core.models.mixed.terms import Factor, RandomTerm, parse_random, split_formula


def texts(spec: str) -> list[str]:
    return [str(t) for t in parse_random(spec)]


@pytest.mark.parametrize(("written", "read"), [
    ("(1 + days | subject) + (1 | item)", ["(1 + days | subject)", "(1 | item)"]),
    ("(days | subject)", ["(1 + days | subject)"]),                 # R's implicit intercept
    ("(0 + days | subject)", ["(0 + days | subject)"]),
    ("(days - 1 | subject)", ["(0 + days | subject)"]),
    ("(-1 + days | subject)", ["(0 + days | subject)"]),
    ("(1 + x + z || g)", ["(1 | g)", "(0 + x | g)", "(0 + z | g)"]),
    ("(0 + x || g)", ["(0 + x | g)"]),
    ("(1 | batch/cask)", ["(1 | cask:batch)", "(1 | batch)"]),
    ("(1 | a/b/c)", ["(1 | c:(b:a))", "(1 | b:a)", "(1 | a)"]),
    ("(x || a/b)", ["(1 | b:a)", "(0 + x | b:a)", "(1 | a)", "(0 + x | a)"]),
    ("(1 | a:b) + (1 | a)", ["(1 | a:b)", "(1 | a)"]),
    ("((1 | g))", ["(1 | g)"]),
    ("(1 | `my group`) + (0 + `a b` | g)", ["(1 | `my group`)", "(0 + `a b` | g)"]),
])
def test_terms_are_read_and_expanded_as_lme4_does(written, read):
    assert texts(written) == read


def test_a_nested_factor_is_named_as_lme4_prints_it_and_knows_its_columns():
    inner, outer = parse_random("(1 | batch/cask)")
    assert (inner.name, outer.name) == ("cask:batch", "batch")
    assert inner.factor.columns == ("cask", "batch") and outer.factor.columns == ("batch",)
    deepest = parse_random("(1 | batch/cask/sample)")[0]
    assert deepest.name == "sample:(cask:batch)" and deepest.factor.columns == ("sample", "cask", "batch")


def test_a_term_lists_its_effects_intercept_first():
    (term,) = parse_random("(1 + days + dose | subject)")
    assert term.effect_names == ["Intercept", "days", "dose"]
    assert parse_random("(0 + days | subject)")[0].effect_names == ["days"]


@pytest.mark.parametrize(("bad", "says"), [
    ("", "expected random-effect terms"),
    ("(1 | g", "'(' not closed"),
    ("(1 | g))", "')' without its '('"),
    ("1 | g", "expected terms in parentheses"),
    ("()", "an empty term"),
    ("( | g)", "nothing before the bar"),
    ("(1 | )", "no grouping factor after the bar"),
    ("(0 | g)", "has no random effect"),
    ("(-1 | g)", "has no random effect"),
    ("(1 | g | h)", "expected one '|'"),
    ("(1 + x:z | g)", "a sum of column names"),
    ("(log(x) | g)", "a sum of column names"),
    ("(1 + x + x | g)", "written twice"),
    ("(1 - x | g)", "only the intercept can be removed"),
    ("(1 + | g)", "a column name, 1 or 0 was expected"),
    ("(1 | a:(b/c))", "'/' (nesting) may only join whole factors"),
    ("(1 | a b)", "':' or '/' between column names"),
    ("(1 | g) (1 | h)", "joined by '+'"),
    ("(1 | g) + x", "left over: '+ x'"),
    ("(1 | g) $ 2", "unexpected character '$'"),
])
def test_bad_random_parts_are_refused_naming_the_term(bad, says):
    with pytest.raises(SpecError, match="^random: ") as err:
        parse_random(bad)
    assert says in err.value.message


def test_the_error_quotes_the_term_as_written():
    with pytest.raises(SpecError) as err:
        parse_random("(1 | g) + (1 + x:z | item)")
    assert "(1 + x:z | item)" in err.value.message


@pytest.mark.parametrize(("formula", "fixed", "terms"), [
    ("y ~ x1 + x2 + (1|g)", "y ~ x1 + x2", ["(1 | g)"]),
    ("y ~ (1 | g) + x1 * x2", "y ~ x1 * x2", ["(1 | g)"]),
    ("y ~ x + (1|g) - 1", "y ~ x - 1", ["(1 | g)"]),
    ("y ~ (1 | g) + (0 + x | h)", "y ~ 1", ["(1 | g)", "(0 + x | h)"]),
    ("log(y) ~ poly(x, 2) + (x || g)", "log(y) ~ poly(x, 2)", ["(1 | g)", "(0 + x | g)"]),
    ("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days", ["(1 + Days | Subject)"]),
])
def test_a_formula_splits_into_its_fixed_part_and_its_terms(formula, fixed, terms):
    got_fixed, got_terms = split_formula(formula)
    assert got_fixed == fixed and [str(t) for t in got_terms] == terms


@pytest.mark.parametrize(("bad", "says"), [
    ("y x + (1 | g)", "expected one '~'"),
    ("~ x + (1 | g)", "no response before '~'"),
    ("y ~ x", "no random-effect term"),
    ("y ~ x | g", "a '|' outside parentheses"),
    ("y ~ x * (1 | g)", "must be added to the fixed part with '+'"),
    ("y ~ x + (1 | g", "not closed"),
])
def test_bad_formulas_are_refused_naming_the_problem(bad, says):
    with pytest.raises(SpecError) as err:
        split_formula(bad)
    assert err.value.field in ("formula", "random") and says in err.value.message


# -- properties: a term printed and read back is the same term -----------------------------
names = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,8}", fullmatch=True),
    st.text(st.characters(blacklist_characters="`", blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
)


@st.composite
def factors(draw, depth: int = 2) -> Factor:
    if depth == 0 or draw(st.booleans()):
        return Factor(column=draw(names))
    return Factor(left=draw(factors(depth - 1)), right=draw(factors(depth - 1)))


@st.composite
def random_terms(draw) -> RandomTerm:
    columns = tuple(draw(st.lists(names, max_size=3, unique=True)))
    intercept = draw(st.booleans()) or not columns
    return RandomTerm(intercept, columns, draw(factors()))


@settings(max_examples=300, deadline=None)
@given(st.lists(random_terms(), min_size=1, max_size=4))
def test_terms_printed_and_read_back_are_the_same_terms(terms):
    text = " + ".join(str(t) for t in terms)
    assert parse_random(text) == terms
    # Printing is a fixed point: what was read prints as what was written.
    assert " + ".join(str(t) for t in parse_random(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(random_terms(), min_size=1, max_size=3), st.sampled_from(["x", "x + z", "1", "x * z - 1"]))
def test_a_formula_keeps_its_fixed_part_and_its_terms(terms, fixed):
    random_text = " + ".join(str(t) for t in terms)
    got_fixed, got_terms = split_formula(f"y ~ {fixed} + {random_text}")
    assert got_fixed == f"y ~ {fixed}" and got_terms == terms


@settings(max_examples=200, deadline=None)
@given(random_terms())
def test_double_bars_give_one_term_per_effect_in_order(term):
    double = str(term).replace(" | ", " || ", 1)
    expanded = parse_random(double)
    assert [t.effect_names for t in expanded] == [[e] for e in term.effect_names]
    assert all(t.factor == term.factor for t in expanded)
