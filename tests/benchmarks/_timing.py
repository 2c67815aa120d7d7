"""Helpers shared by the benchmarks: timing, and the cases of an R reference file."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int,
                clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """Median time of ``repeats`` calls of ``fn`` (wall, or ``clock``: ``time.process_time`` for CPU), and the
    last call's result."""
    times, out = [], None
    for _ in range(repeats):
        t = clock()
        out = fn()
        times.append(clock() - t)
    return statistics.median(times), out


def reference_cases(reference: Path, wanted: str | None) -> tuple[dict[str, Any], list[str]]:
    """An R reference JSON (its ``meta`` and ``cases``) and the case names a ``--cases a,b`` argument picks.

    Exits naming the unknown cases and the known ones, as a command-line tool should.
    """
    ref = json.loads(reference.read_text())
    cases = ref["cases"]
    names = wanted.split(",") if wanted else list(cases)
    unknown = sorted(set(names) - set(cases))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; known: {sorted(cases)}")
    return ref, names
