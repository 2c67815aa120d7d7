"""The form with several grouping factors (issue 25, item 5): more factors, the random part, the split's factors.

Real data: lme4's Oats (6 blocks, 3 varieties within each block, 4 nitrogen levels), as
written by tests/reference/lme4_multi.R; the form is driven as a person drives it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _strategies import several_factor_specs
from hypothesis import HealthCheck, given, settings

from mixcv_jupyter import Configurator

OATS = Path(__file__).parent.parent / "data" / "lmm_multi" / "oats.csv"


class Shell:
    def __init__(self):
        self.user_ns = {}


@pytest.fixture
def form():
    oats = pd.read_csv(OATS)
    shell = Shell()
    shell.user_ns["oats"] = oats
    f = Configurator(oats, shell=shell)
    f.target.value, f.groups.value = "yield", "Block"
    next(c for c in f.cards if c.label == "LinearMixedEffectsModel").enabled.value = True
    return f


def shown(widget) -> bool:
    return widget.layout.display != "none"


def test_a_second_factor_writes_the_random_part_it_implies_with_the_slopes_chosen(form):
    assert not shown(form.split_by_row) and form.random.value == ""     # one factor: the shorthand, as before
    assert form.random.placeholder == "empty: (1 | Block)"
    form.slopes.value = ("nitro",)
    form.more_groups.value = ["Variety"]
    assert form.random.value == "(1 + nitro | Block) + (1 | Variety)"
    assert form.slopes.value == () and not shown(form.slopes_row) and shown(form.split_by_row)
    assert "Variety" not in form.features.options and "Variety" not in form.slopes.options
    spec = form.to_spec()
    assert spec.data.groups == ("Block", "Variety") and spec.data.random == "(1 + nitro | Block) + (1 | Variety)"
    assert not form.run_button.disabled, form.errors
    form.more_groups.value = []            # undone: the text the form wrote goes, the slopes come back
    assert form.random.value == "" and form.slopes.value == ("nitro",) and form.to_spec().data.groups == "Block"


def rows(widget):
    """Every HBox of the form, depth first."""
    import ipywidgets as w
    if isinstance(widget, w.HBox):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from rows(child)


def test_hiding_the_slopes_for_a_second_factor_hides_no_other_row(form):
    form.more_groups.value = ["Variety"]
    hidden = [r for r in rows(form.widget) if r.layout.display == "none"]
    assert hidden == [form.slopes_row]    # not the target's, the split's or any row sharing its layout
    assert not any(r.layout is form.slopes_row.layout for r in rows(form.widget) if r is not form.slopes_row)


def test_text_the_user_wrote_in_the_random_part_is_never_replaced(form):
    form.more_groups.value = ["Variety"]
    form.random.value = "(1 | Block/Variety)"
    form.more_groups.value = []
    assert form.random.value == "(1 | Block/Variety)"
    # Variety is no longer a grouping factor: the spec's own words, next to the field.
    assert "random part: the grouping columns [&#x27;Variety&#x27;]" in form.msg_random.value
    assert form.run_button.disabled and "random part: " in form.status.value
    form.more_groups.value = ["Variety"]
    assert form.random.value == "(1 | Block/Variety)" and not form.run_button.disabled, form.errors


@pytest.mark.parametrize("text,words", [
    ("(1 + nitro Block)", "expected one &#x27;|&#x27;"),
    ("(1 | Block) + (1 | <b>x</b>)", "&lt;b&gt;"),                 # the user's text, escaped
    ("(1 + Variety | Block)", "a random slope must be a feature column"),
])
def test_the_random_part_is_checked_as_typed_next_to_its_field(form, text, words):
    form.more_groups.value = ["Variety"]
    form.random.value = text
    assert "random part: " in form.msg_random.value and words in form.msg_random.value, form.msg_random.value
    assert "random part: random part" not in form.msg_random.value   # the field named once
    assert "<b>" not in form.msg_random.value and "<b>" not in form.status.value
    assert form.run_button.disabled


def test_the_split_factors_are_offered_from_the_grouping_factors_in_the_order_given(form):
    form.more_groups.value = ["Variety"]
    assert form.outer.value == "GroupKFold"            # chose groups: the split holds new levels
    assert list(form.split_by.allowed_tags) == ["Block", "Variety"]
    form.split_by.value = ["Variety", "Block"]
    assert "needs at least 5 groups, there are 3" in form.msg_outer.value   # 3 varieties: checked on the data
    form.outer_k.value = 3
    assert form.to_spec().data.split_by == ("Variety", "Block") and not form.run_button.disabled, form.errors
    form.outer.value = "KFold"   # new levels of two factors need a group split: said next to the split's factors
    assert "split by: " in form.msg_split_by.value and form.run_button.disabled
    form.outer.value = "GroupKFold"
    form.more_groups.value = []  # a factor dropped leaves the split's factors too
    assert form.split_by.value == ["Block"] and form.to_spec().data.split_by == ("Block",)


def test_a_run_from_the_form_says_what_new_means_and_the_cell_reads_back(form):
    from mixcv_core.experiment.cell import parse_cell
    form.more_groups.value = ["Variety"]
    form.random.value = "(1 | Block/Variety)"
    form.split_by.value = ["Block"]
    form.outer_k.value, form.no_store.value = 3, True
    form.show_cell()
    assert parse_cell(form.cell_view.value.split("\n", 1)[1]).spec == form.to_spec()
    res = form.run()
    assert res.spec.data.random == "(1 | Block/Variety)" and res.spec.data.split_by == ("Block",)
    assert "test folds hold new Blocks; Varietys recur" in form.explorer.tab_html("Summary")
    again = Configurator.from_spec(res, shell=form.shell)
    assert again.to_spec() == res.spec and again.more_groups.value == ["Variety"] and shown(again.split_by_row)


def frame_for(spec):
    d = spec.data
    rng = np.random.default_rng(0)
    cols = [d.target, *d.group_columns, *(d.features or ()), "_filler_feature"]
    df = pd.DataFrame(rng.normal(size=(40, len(cols))), columns=cols)
    for k, g in enumerate(d.group_columns):
        df[g] = [f"{g}{i % (5 + k)}" for i in range(40)]
    return df


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=several_factor_specs())
def test_a_spec_with_several_factors_goes_to_the_form_and_back_unchanged(spec):
    form = Configurator.from_spec(spec, frame_for(spec), shell=Shell())
    assert form.to_spec() == spec


@pytest.mark.parametrize("data", [
    # sleepstudy's uncorrelated intercept and slope: one factor, two terms
    dict(groups="Block", random="(1 | Block) + (0 + nitro | Block)", features=("nitro",)),
    dict(groups="Block", split_by=("Block",), features=("nitro",)),   # one factor, its split said aloud
    dict(random="(1 | Block/Variety)"),                          # groups taken from the random part
    dict(groups=("Variety", "Block"), split_by=("Block",)),      # an intercept per factor, split by the second
])
def test_the_form_shows_every_spelling_of_the_random_part_and_gives_it_back(data):
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
    spec = ExperimentSpec(data=DataSpec("yield", frame="oats", **data),
                          models=(ModelSpec("LMM", "LinearMixedEffectsModel"),),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"))
    form = Configurator.from_spec(spec, pd.read_csv(OATS), shell=Shell())
    assert form.to_spec() == spec
    assert shown(form.random_row) and shown(form.split_by_row) == (len(spec.data.group_columns) > 1
                                                                    or bool(spec.data.split_by))
    assert not form.run_button.disabled, form.errors      # and Oats passes the engine's own checks
