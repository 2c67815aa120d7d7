"""The bound `bench_overhead.py --n-jobs` compares a parallel run with (issue 29): the shortest wall
time of indivisible tasks on two slots, the calling process from 0 s and one worker from its
start-up on. Checked against a plain enumeration of who runs which task, written here."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from bench_overhead import best_makespan  # noqa: E402


def _by_hand(tasks: list[float], start_up: float) -> float:
    best = float("inf")
    for mine in itertools.product((True, False), repeat=len(tasks)):
        caller = sum(t for t, m in zip(tasks, mine) if m)
        worker = sum(t for t, m in zip(tasks, mine) if not m)
        best = min(best, max(caller, start_up + worker if worker else 0.0))
    return best


def test_four_equal_tasks_and_a_worker_two_seconds_late_end_two_tasks_and_two_seconds_on():
    assert best_makespan([4.0] * 4, 2, 2.0) == pytest.approx(10.0)
    assert best_makespan([4.0] * 4, 2, 0.0) == pytest.approx(8.0)
    assert best_makespan([0.2] * 6, 2, 2.0) == pytest.approx(1.2)   # the caller alone is sooner


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=8), st.floats(0.0, 5.0))
def test_two_slots_match_every_split_by_hand(tasks, start_up):
    assert best_makespan(tasks, 2, start_up) == pytest.approx(_by_hand(tasks, start_up))


def test_more_slots_give_the_plain_lower_bound():
    assert best_makespan([3.0, 1.0, 1.0], 4, 0.5) == pytest.approx(3.0)
    assert best_makespan([1.0] * 8, 4, 1.0) == pytest.approx((8 + 3) / 4)
