"""What the engine reports while it works, and the observers that listen.

The engine never prints or draws. It emits small typed events to the observers it is
given (the Jupyter dashboard, the run store, a Neptune mirror, a test recorder). An
observer is anything with ``on_event(event)``, or a plain callable. An observer that
raises is reported with an `ObserverWarning` and detached: it can never abort a run
or cost its results.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ObserverWarning
from ..experiment.data import IndexPairs, PreparedData
from ..experiment.spec import ExperimentSpec
from ..outcome import FoldOutcome
from ..results import Results
from ..secrets import scrub

__all__ = [
    "Event", "RunStarted", "FoldStarted", "TrialStarted", "TrialFinished", "EMIteration",
    "FoldFinished", "FoldFailed", "RunFinished", "RunFailed", "Observer", "EventBus", "Recorder",
]


@dataclass(frozen=True)
class Event:
    """Base class of all events."""


@dataclass(frozen=True)
class RunStarted(Event):
    """A run passed validation; ``data`` and ``outer`` are the validated data and splits."""

    spec: ExperimentSpec
    n_folds: int
    model_names: tuple[str, ...]
    n_rows: int
    data: PreparedData | None = None
    outer: IndexPairs | None = None


@dataclass(frozen=True)
class FoldStarted(Event):
    fold: int
    model: str


@dataclass(frozen=True)
class TrialStarted(Event):
    fold: int
    model: str
    trial: int


@dataclass(frozen=True)
class TrialFinished(Event):
    fold: int
    model: str
    trial: int
    value: float
    params: dict[str, Any]
    n_trials: int


@dataclass(frozen=True)
class EMIteration(Event):
    """One EM iteration of a MERF fit (GLL, residual variance, random-effects covariance)."""

    fold: int
    model: str
    iteration: int
    gll: float
    sigma2: float
    D: np.ndarray


@dataclass(frozen=True)
class FoldFinished(Event):
    """A model finished an outer fold; ``outcome`` is the whole `FoldOutcome`."""

    fold: int
    model: str
    metrics: dict[str, float]
    fit_time: float
    best_params: dict[str, Any] = field(default_factory=dict)
    outcome: FoldOutcome | None = None


@dataclass(frozen=True)
class FoldFailed(Event):
    fold: int
    model: str
    error: str
    traceback: str
    outcome: FoldOutcome | None = None


@dataclass(frozen=True)
class RunFinished(Event):
    results: Results


@dataclass(frozen=True)
class RunFailed(Event):
    error: str
    traceback: str


@runtime_checkable
class Observer(Protocol):
    """Receives the engine's events, in order, in the process that called ``run``."""

    def on_event(self, event: Event) -> None: ...


class Recorder:
    """An observer that keeps every event (for tests and post-mortems)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


class EventBus:
    """Delivers events to observers, detaching any that raise."""

    def __init__(self, observers: Iterable[Observer | Callable[[Event], None]] = ()) -> None:
        self._handlers: list[tuple[str, Callable[[Event], None]]] = []
        for obs in observers:
            handler = getattr(obs, "on_event", None)
            if handler is None and callable(obs):
                handler = obs
            if handler is None:
                raise TypeError(f"observers: {obs!r} has no on_event method and is not callable")
            self._handlers.append((getattr(obs, "__name__", type(obs).__name__), handler))

    def emit(self, event: Event) -> None:
        for entry in list(self._handlers):
            name, handler = entry
            try:
                handler(event)
            except Exception as exc:  # noqa: BLE001 - any observer failure must not stop the run
                self._handlers.remove(entry)
                warnings.warn(ObserverWarning(scrub(
                    f"observer {name} raised {type(exc).__name__}: {exc} while handling "
                    f"{type(event).__name__}; it was detached and the run goes on.\n"
                    + "".join(traceback.format_exception_only(exc)).strip())), stacklevel=2)

    @property
    def n_observers(self) -> int:
        return len(self._handlers)
