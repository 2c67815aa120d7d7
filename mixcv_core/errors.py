"""Exceptions and warnings raised by mixcv.

Every error about user input names the field it is about, so a front end (the
``%%mixcv`` magic, the widget form) can point at the offending line or control.
"""

from __future__ import annotations

__all__ = [
    "MixcvError",
    "SpecError",
    "SpecTypeError",
    "FoldFailedWarning",
    "ConvergenceWarning",
    "ObserverWarning",
    "StoreWarning",
]


class MixcvError(Exception):
    """Base class of every error mixcv raises on purpose.

    Parameters
    ----------
    field : str
        Dotted name of the argument or spec field the error is about, e.g.
        ``"outer.n_splits"`` or ``"X"``.
    message : str
        What was expected and what was given.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class SpecError(MixcvError, ValueError):
    """A value is of the right type but not acceptable (a bad range, a missing column...)."""


class SpecTypeError(MixcvError, TypeError):
    """A value is of the wrong type."""


class FoldFailedWarning(UserWarning):
    """A model failed in one outer fold; the other folds and models were kept."""


class ConvergenceWarning(UserWarning):
    """An iterative fit (LMM, MERF) stopped before it converged."""


class ObserverWarning(UserWarning):
    """An observer raised while handling an event and was detached from the run."""


class StoreWarning(UserWarning):
    """The run store stopped recording a run; the run itself went on (see ``Results.recorded``)."""
