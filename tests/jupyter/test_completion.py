"""Completion inside %%mixcv cells, through IPython's real completer (the API the kernel
serves JupyterLab with: the whole cell and the cursor), on lme4's sleepstudy."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.completer import provisionalcompleter

from mixcv_core.experiment.cell import COLUMN_KEYS, MERF_KEYS, MODEL_KEYS, SPLIT_KEYS, TOP_KEYS
from mixcv_jupyter import completion

SLEEP = pd.read_csv(Path(__file__).parent.parent / "data" / "sleepstudy.csv")   # lme4's sleepstudy
COLUMNS = [str(c) for c in SLEEP.columns]


@pytest.fixture(scope="module")
def ip(ipython_shell):
    shell = ipython_shell
    shell.run_line_magic("load_ext", "mixcv_jupyter")
    # The shell is shared by the whole session: frames other test modules left in it (a ``df``)
    # are set aside while these tests run, so the namespace holds exactly the frames named here.
    others = {k: v for k, v in shell.user_ns.items() if isinstance(v, pd.DataFrame)}
    for name in others:
        del shell.user_ns[name]
    shell.user_ns.update(sleep=SLEEP, sleep_copy=SLEEP.copy(), _hidden=SLEEP, a_list=[1, 2])
    yield shell
    for name in ("sleep", "sleep_copy", "_hidden", "a_list"):
        shell.user_ns.pop(name, None)
    shell.user_ns.update(others)


def complete(ip, text: str, offset: int | None = None) -> list:
    """What IPython's completer (as the kernel calls it) offers with the cursor at ``offset``."""
    offset = len(text) if offset is None else offset
    with provisionalcompleter():
        return list(ip.Completer.completions(text, offset))


def texts(ip, text: str, offset: int | None = None) -> list[str]:
    return [c.text for c in complete(ip, text, offset)]


def test_after_target_the_frames_columns_are_offered_and_replace_what_was_typed(ip):
    assert texts(ip, "%%mixcv\ndata: sleep\ntarget: ") == COLUMNS
    cell = "%%mixcv\ndata: sleep\ntarget: Re"
    (only,) = complete(ip, cell)
    assert (only.text, only.type) == ("Reaction", "column")
    assert cell[:only.start] + only.text + cell[only.end:] == "%%mixcv\ndata: sleep\ntarget: Reaction"


@pytest.mark.parametrize("key", COLUMN_KEYS)
@pytest.mark.parametrize("form,typed", [("{key}: ", ""), ("{key}: [Days, ", ""), ("{key}:\n  - Su", "Su")])
def test_every_key_that_names_columns_offers_the_frames_columns(ip, key, form, typed):
    found = texts(ip, f"%%mixcv\ndata: sleep\n{form.format(key=key)}")
    listed = {"Days"} if "[Days, " in form and key != "random" else set()   # a list names a column once
    assert found == [c for c in COLUMNS if c.startswith(typed) and c not in listed]


def test_the_data_line_may_come_after_the_cursor(ip):
    cell = "%%mixcv\ntarget: \ndata: sleep\n"
    assert texts(ip, cell, len("%%mixcv\ntarget: ")) == COLUMNS


@pytest.mark.parametrize("before,after", [("(1 + ", " | Subject)"), ("(1 + Days | ", ")"), ("(1 | Subject) + (1 | Su", "")])
def test_random_terms_offer_columns_on_both_sides_of_the_bar(ip, before, after):
    cell = f"%%mixcv\ndata: sleep\nrandom: {before}"
    typed = before.rpartition(" ")[2].lstrip("(")
    assert texts(ip, cell + after, len(cell)) == [c for c in COLUMNS if c.startswith(typed)]


def test_data_offers_the_notebooks_data_frames_only(ip):
    assert texts(ip, "%%mixcv\ndata: ") == ["sleep", "sleep_copy"]   # not _hidden, not a_list


def test_a_new_line_offers_the_cell_keys_not_yet_written(ip):
    found = texts(ip, "%%mixcv\ndata: sleep\ntarget: Reaction\n")
    assert found == [f"{k}: " for k in TOP_KEYS if k not in ("data", "target")]
    assert texts(ip, "%%mixcv\ntr") == ["trials: ", "trial_batch: "]
    assert texts(ip, "%%mixcv\ntrials: 5\ntr") == ["trial_batch: "]   # a key written is not offered again
    # Renaming a key whose colon is already there inserts the name alone.
    assert texts(ip, "%%mixcv\ntria: 5", len("%%mixcv\ntria")) == ["trials", "trial_batch"]


def test_under_merf_its_settings_are_offered(ip):
    assert texts(ip, "%%mixcv\nmerf:\n  iterations: 5\n  ") == [f"{k}: " for k in MERF_KEYS if k != "iterations"]


def test_model_names_are_mixcvs_models_and_scikit_learns_estimators(ip):
    from sklearn.utils import all_estimators

    import mixcv_core.models
    found = texts(ip, "%%mixcv\nmodels:\n  ")
    names = {n.rstrip(":") for n in found}
    sklearn_names = {name for name, _ in all_estimators(type_filter=["regressor", "classifier"])}
    assert sklearn_names <= names
    assert {"LinearMixedEffectsModel", "MERF"} & set(mixcv_core.models.__all__) <= names
    assert texts(ip, "%%mixcv\nmodels:\n  RandomForestR") == ["RandomForestRegressor:"]
    assert "Ridge" in texts(ip, "%%mixcv\nmodels: [Ridge, LinearModel, Ri")
    assert texts(ip, "%%mixcv\nmodels:\n  forest:\n    model: RandomForestR") == ["RandomForestRegressor"]


def test_a_models_parameters_are_offered_under_its_entry(ip):
    from sklearn.ensemble import RandomForestRegressor
    found = texts(ip, "%%mixcv\nmodels:\n  RandomForestRegressor:\n    n_estimators: 50\n    ")
    expected = sorted(set(RandomForestRegressor().get_params()) - {"n_estimators"})
    assert found == [f"{k}: " for k in MODEL_KEYS] + [f"{p}: " for p in expected]
    # A label of one's own with model: offers that model's parameters.
    assert texts(ip, "%%mixcv\nmodels:\n  ridge:\n    model: Ridge\n    al") == ["alpha: "]


def test_a_parameter_value_offers_the_range_forms_and_log_inside_a_range(ip):
    head = "%%mixcv\nmodels:\n  RandomForestRegressor:\n    max_depth: "
    assert texts(ip, head) == ["int(", "float(", "choice("]
    assert texts(ip, head + "f") == ["float("]
    assert texts(ip, head + "float(0.1, 1, ") == ["log", "step="]
    assert texts(ip, head + "int(2, ") == []          # the bounds first


def test_split_keys_offer_the_split_methods(ip):
    from mixcv_core.experiment.splits import SPLIT_METHODS
    for key in SPLIT_KEYS:
        assert texts(ip, f"%%mixcv\n{key}: ") == list(SPLIT_METHODS)
    assert texts(ip, "%%mixcv\nouter: Strat") == ["StratifiedKFold", "StratifiedGroupKFold"]


def test_keys_with_a_fixed_set_of_words_offer_them_from_their_rules(ip):
    from mixcv_core.constraints import BACKENDS, ON_ERROR
    from mixcv_core.metrics import METRICS
    assert texts(ip, "%%mixcv\nbackend: ") == list(BACKENDS)
    assert texts(ip, "%%mixcv\non_error: ") == list(ON_ERROR)
    assert texts(ip, "%%mixcv\npredict_known_groups: ") == ["true", "false"]
    assert texts(ip, "%%mixcv\ntask: c") == ["classification"]
    assert texts(ip, "%%mixcv\nmetrics: [r2, ") == [m for m in METRICS]


@pytest.mark.parametrize("body", ["trials: ", "name: pr", "seed: 4", "# a comment pr", "data: sleep # pr",
                                  "models:\n  Ridge:\n    alpha: int(1, 3)\n    fit: {pr"])
def test_no_python_names_inside_a_cell(ip, body):
    assert texts(ip, f"%%mixcv\n{body}") == []
    # The same text in a Python cell gets Python's names: the silence above is the matcher's doing.
    last = body.rpartition(" ")[2]
    if last == "pr":
        assert "print" in texts(ip, f"x = 1\n{last}")


@pytest.mark.parametrize("text", ["x = 1\npri", "sleep.Da", "%%time\nsleep.Re", "import o", "%%mixcv -"])
def test_outside_a_cell_body_completion_is_what_it_was(ip, text):
    # (Jedi's types are computed against a clock, so they are left out of the comparison.)
    with_matcher = [(c.text, c.start, c.end) for c in complete(ip, text)]
    completion.unregister(ip)
    try:
        without = [(c.text, c.start, c.end) for c in complete(ip, text)]
    finally:
        completion.register(ip)
    assert with_matcher == without


def test_the_legacy_complete_api_with_the_whole_cell_as_buffer(ip):
    cell = "%%mixcv\ndata: sleep\ngroups: Sub"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        assert ip.Completer.complete(line_buffer=cell, cursor_pos=len(cell)) == ("Sub", ["Subject"])


def test_a_failing_completion_offers_nothing_and_shows_no_traceback(ip, monkeypatch, capsys):
    def broken(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(completion, "suggest", broken)
    assert texts(ip, "%%mixcv\ndata: sleep\ntarget: ") == []
    assert "boom" not in capsys.readouterr().err
    assert "print" in texts(ip, "x = 1\npri")        # a Python cell still completes


def test_a_data_name_that_is_not_a_frame_gives_no_columns(ip):
    assert texts(ip, "%%mixcv\ndata: a_list\ntarget: ") == []
    assert texts(ip, "%%mixcv\ndata: nowhere\ntarget: ") == []


def test_unloading_the_extension_removes_the_matcher(ip):
    ip.run_line_magic("unload_ext", "mixcv_jupyter")
    try:
        ids = [getattr(m, "matcher_identifier", None) for m in ip.Completer.custom_matchers]
        assert completion.MATCHER_ID not in ids
    finally:
        ip.run_line_magic("load_ext", "mixcv_jupyter")
    ids = [getattr(m, "matcher_identifier", None) for m in ip.Completer.custom_matchers]
    assert ids.count(completion.MATCHER_ID) == 1


# Pieces of the grammar and of the frame, and any text at all.
_cell_text = st.one_of(
    st.lists(st.sampled_from([*"abdmoprstx_ :-[](),|+#\"'\n\t{}%01", "  ", "models:", "data: sleep", "target: ",
                              "random: (", "RandomForestRegressor:", "model: ", "int(", "float(1, 2, ", "merf:", "- "]),
             max_size=40).map("".join),
    st.text(max_size=80))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_cell_text, where=st.floats(0, 1))
def test_arbitrary_text_never_raises_from_suggest(body, where):
    text = "%%mixcv\n" + body
    lines = text.split("\n")
    line = min(int(where * len(lines)), len(lines) - 1)
    column = int(where * len(lines[line]))
    found = completion.suggest(text, line, column, {"sleep": SLEEP})
    assert found is not None or line == 0
    if found is not None:
        before = lines[line][:column]
        assert before.endswith(found.fragment)


# IPython's completer itself (IPCompleter._extract_code, before any matcher runs) raises on a
# token of whitespace other than space, tab and newline, such as U+001F: left out here.
_ipython_safe = _cell_text.map(lambda t: "".join(c for c in t if not c.isspace() or c in " \t\n"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_ipython_safe, where=st.floats(0, 1))
def test_arbitrary_cells_complete_through_ipython_without_error(ip, capsys, body, where):
    text = "%%mixcv\n" + body
    offset = len("%%mixcv\n") + int(where * len(body))
    for c in complete(ip, text, offset):
        assert c.type in ("key", "column", "frame", "model", "parameter", "split", "range", "value")
    assert "Traceback" not in capsys.readouterr().err
