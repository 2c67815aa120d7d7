"""flexcv's import path for the split methods' enum: ``from mixcv_core.split import CrossValMethod``.

The splitters live in `mixcv_core.experiment.splits`.
"""

from __future__ import annotations

from .errors import SpecTypeError
from .experiment.splits import CrossValMethod

__all__ = ["CrossValMethod", "string_to_crossvalmethod"]


def string_to_crossvalmethod(method: str) -> CrossValMethod:
    """The `CrossValMethod` named ``method`` (flexcv's helper).

    Raises
    ------
    SpecTypeError
        A `TypeError`, as in flexcv, for a string that names no method or a non-string.

    Examples
    --------
    >>> string_to_crossvalmethod("GroupKFold") is CrossValMethod.GROUP
    True
    """
    names = [m.value for m in CrossValMethod]
    if not isinstance(method, str) or method not in names:
        raise SpecTypeError("method", f"expected one of {names}, got {method!r}")
    return CrossValMethod(method)
