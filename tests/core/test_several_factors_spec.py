"""Several grouping factors in the spec, the fluent API and the cell (issue 25, items 5 and 6).

The random part is lme4 text, read by mixcv's own parser when the spec is made: a mistake
is reported then, naming ``data.random`` (``random`` in set_data and in a cell), before any
data is touched.
"""

from __future__ import annotations

import pytest
from _crossed import crossed

from mixcv_core import CrossValidation, ExperimentSpec, MixcvError
from mixcv_core.experiment.cell import parse_cell, spec_to_cell
from mixcv_core.experiment.data import prepare_data
from mixcv_core.experiment.spec import DataSpec, ModelSpec, SplitSpec
from mixcv_core.models import LinearMixedEffectsModel

RANDOM = "(1 + days | subject) + (1 | item)"



def spec_of(**data) -> ExperimentSpec:
    return ExperimentSpec(data=DataSpec(target="rt", **data), models=(ModelSpec("LMM", LinearMixedEffectsModel),),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"))


def test_the_grouping_columns_of_the_random_part_become_groups_when_groups_is_not_set():
    data = DataSpec(target="rt", random=RANDOM)
    assert data.groups == ("subject", "item") and data.group_columns == ("subject", "item")
    assert data.split_factors == ("subject",)   # the first factor unless split_by says otherwise
    assert DataSpec(target="rt", random="(1 | school/class)").groups == ("school", "class")


@pytest.mark.parametrize("random, words", [
    ("(1 + days subject)", "'|'"),
    ("(1 | subject", "not closed"),
    ("1 | subject", "parenthes"),
    ("(1 | subject) (1 | item)", "'+'"),
    ("", "expected"),
])
def test_a_random_part_that_cannot_be_read_is_refused_naming_data_random(random, words):
    with pytest.raises(MixcvError) as info:
        DataSpec(target="rt", random=random)
    assert info.value.field == "data.random" and words in info.value.message


@pytest.mark.parametrize("data, fld, words", [
    ({"random": RANDOM, "groups": "subject"}, "data.random", "['item'] of"),
    ({"random": "(1 + subject | item)", "groups": ["subject", "item"]}, "data.random", "grouping column"),
    ({"random": "(1 + rt | item)"}, "data.random", "target"),
    ({"random": RANDOM, "features": ("x",)}, "data.random", "'days' is not among the features"),
    ({"random": RANDOM, "slopes": ("days",), "features": ("days",)}, "data.slopes", "write the slopes in its terms"),
    ({"groups": ["subject", "item"], "slopes": ("days",), "features": ("days",)}, "data.slopes", "random"),
    ({"groups": ["subject", "subject"]}, "data.groups", "twice"),
    ({"groups": ["subject", "item"], "features": ("item", "days")}, "data.features", "grouping columns"),
    ({"groups": ["subject", "item"], "split_by": "day"}, "data.split_by", "not a grouping column"),
    ({"split_by": "subject"}, "data.split_by", "none are set"),
    ({"groups": ["subject", "item"], "split_by": ["item", "item"]}, "data.split_by", "twice"),
    ({"groups": ["subject", 3]}, "data.groups", "strings"),
    ({"random": 3}, "data.random", "text"),
])
def test_inconsistent_grouping_settings_are_refused_naming_the_field(data, fld, words):
    with pytest.raises(MixcvError) as info:
        DataSpec(target="rt", **data)
    assert info.value.field == fld and words in info.value.message


def test_several_grouping_columns_without_a_random_part_fit_a_random_intercept_per_column():
    data = DataSpec(target="rt", groups=["subject", "item"])
    assert data.random is None and data.random_terms_text == "(1 | subject) + (1 | item)"
    assert DataSpec(target="rt", groups=["subject"]).groups == "subject"   # a list of one is the name
    assert DataSpec(target="rt", groups="subject").random_terms_text is None   # the one-factor shorthand


def test_a_spec_with_several_factors_survives_its_dict_form():
    spec = spec_of(random=RANDOM, split_by=["subject", "item"])
    d = spec.to_dict()
    assert d["data"]["groups"] == ["subject", "item"] and d["data"]["random"] == RANDOM
    assert d["data"]["split_by"] == ["subject", "item"] and d["format"] >= 7   # format 7 added them
    assert ExperimentSpec.from_dict(d) == spec


def test_merf_and_gpboost_take_a_random_part_with_several_factors():
    # Refusing models that fit one factor only is tested in test_merf_several_factors.py.
    spec = ExperimentSpec(data=DataSpec(target="rt", random=RANDOM),
                          models=(ModelSpec("GPB", "mixcv_core.models.gpboost.GPBoostRegressor"),
                                  ModelSpec("Ridge", "Ridge", add_merf=True)))
    assert spec.model_names() == ["GPB", "Ridge", "MERF(Ridge)"]


def test_prepare_data_keeps_every_grouping_column_out_of_the_features():
    df = crossed()
    data = prepare_data(DataSpec(target="rt", random=RANDOM, split_by="item"), df)
    assert data.feature_names == ["days"]
    assert list(data.group_frame.columns) == ["subject", "item"]
    assert data.groups_name == "item" and (data.groups == df["item"].to_numpy()).all()
    assert data.random == RANDOM and data.split_by == ("item",)
    one = prepare_data(DataSpec(target="rt", groups="subject"), df.drop(columns="item"))
    assert one.group_frame is None and one.random is None and one.feature_names == ["days"]


def test_set_data_takes_the_grouping_columns_as_a_dataframe_or_as_names_of_columns_of_x():
    df = crossed()
    by_frame = CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]], random=RANDOM)
    assert by_frame._data.groups == ("subject", "item") and by_frame._data.random == RANDOM
    assert list(by_frame._frame.columns) == ["days", "rt", "subject", "item"]
    by_name = CrossValidation().set_data(df[["days", "subject", "item"]], df["rt"], groups=["subject", "item"],
                                         split_by=["subject", "item"])
    assert by_name._data.features == ("days",) and by_name._data.split_by == ("subject", "item")


@pytest.mark.parametrize("kwargs, arg", [
    ({"random": "(1 | subject"}, "random"),
    ({"random": RANDOM, "split_by": "days"}, "split_by"),
    ({"random": "(1 | subject) + (1 | site)"}, "random"),
])
def test_set_data_names_its_own_argument_for_a_bad_random_part_or_split(kwargs, arg):
    df = crossed()
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]], **kwargs)
    assert info.value.field == arg


def test_set_data_refuses_a_groups_frame_of_another_length():
    df = crossed()
    with pytest.raises(MixcvError) as info:
        CrossValidation().set_data(df[["days"]], df["rt"], groups=df[["subject", "item"]].iloc[:5])
    assert info.value.field == "groups" and "rows" in info.value.message


CELL = """\
data: df
target: rt
random: (1 + days | subject) + (1 | item)
groups: [subject, item]
split_by: subject
outer: GroupKFold(3)
models:
  LinearMixedEffectsModel:
"""


def test_a_cell_with_several_factors_is_read_and_written_back():
    spec = parse_cell(CELL).spec
    assert spec.data.random == RANDOM and spec.data.groups == ("subject", "item")
    assert spec.data.split_by == ("subject",)
    assert parse_cell(spec_to_cell(spec)).spec == spec


def test_a_bad_random_part_in_a_cell_is_reported_at_its_line():
    with pytest.raises(MixcvError) as info:
        parse_cell(CELL.replace("(1 | item)", "(1 item)"))
    assert "random" in str(info.value) and "line 4" in str(info.value)   # the %%mixcv line is line 1
