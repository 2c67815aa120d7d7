"""Fuzzing the %%mixcv parser: any text gives a valid spec or a CellError (a line per mistake), fast."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixcv_core.experiment.cell import MAX_REPORTED, MODEL_KEYS, TOP_KEYS, CellError, ParsedCell, parse_cell

KEYS = st.sampled_from([*TOP_KEYS, *MODEL_KEYS, "alpha", "max_depth", "Ridge", "RandomForestRegressor",
                        "LinearMixedEffectsModel", "x", "ünïcode", "\t", ""])
VALUES = st.one_of(
    st.sampled_from(["df", "y", "g", "true", "no", "null", "~", "007", "1e3", "1e400", "-.inf", ".nan", "9" * 60,
                     "int(2, 9)", "float(1e-4, 1, log)", "choice(a, b)", "int(1, 1e400)", "float(.nan, 1)",
                     "GroupKFold(5)", "KFold(x)", "[a, b]", "{all: true}", "{iterations: 0}", "!Float {low: 1}",
                     "!!python/name:os.system", "!!binary aGk=", "&a [x]", "*a", "&b {c: *b}", "[", "{", "}", ":",
                     "'quoted", '"\\u2603"', "|\n  block", ">-", "%TAG", "---", "...", "- item", "\t", "é",
                     "\U0001f600"]),
    st.text(max_size=12),
)


@st.composite
def cells(draw):
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        indent = draw(st.sampled_from(["", "", "  ", "    ", "\t", " "]))
        if draw(st.booleans()):
            lines.append(f"{indent}{draw(KEYS)}: {draw(VALUES)}")
        else:
            lines.append(f"{indent}{draw(VALUES)}")
    if draw(st.booleans()):   # often a plausible head, so the fuzz reaches deeper
        lines = ["data: df", "target: y", "models:", "  Ridge:"] + [f"    {line}" for line in lines]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=cells())
def test_any_text_gives_a_spec_or_a_cell_error_at_once(text):
    # The bound catches blow-ups (nested aliases took 11 s to minutes), not speed: parsing
    # takes milliseconds, and 5 s leaves room for a loaded CI machine.
    t0 = time.perf_counter()
    try:
        parsed = parse_cell(text)
    except CellError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        # Each mistake on one line; several are listed under a count, at most a handful.
        assert exc.problems and all("\n" not in str(p) for p in exc.problems)
        if len(exc.problems) == 1:
            assert "\n" not in message
        else:
            shown = min(len(exc.problems), MAX_REPORTED)
            assert message.splitlines()[0] == f"{len(exc.problems)} problems in the cell:"
            assert len(message.splitlines()) == 1 + shown + (len(exc.problems) > shown)
    else:
        assert isinstance(parsed, ParsedCell)
    assert time.perf_counter() - t0 < 5.0
