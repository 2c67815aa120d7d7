"""What the report, the plots, the checks and the comparison read of a run: `RunView`.

They are accessors (skore's ``_sklearn/_cross_validation/`` pattern): each is a module of
functions that take the run's data through this small interface, so none imports
`Results`, and `Results` imports them at the top and delegates its ``checks()``,
``compare()``, ``plot_*`` and ``_repr_html_`` to them. No circle forms, not even for types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..experiment.data import PreparedData
    from ..experiment.spec import ExperimentSpec
    from ..outcome import FoldOutcome

__all__ = ["RunView"]


class RunView(Protocol):
    """A finished or interrupted run as the accessors see it (`Results` is one).

    The stored facts (``spec``, ``outcomes``, the prepared data and outer splits) and the
    tables derived from them; no rendering, no plotting.
    """

    spec: ExperimentSpec
    outcomes: list[FoldOutcome]
    status: str
    wall_time: float
    run_id: str | None
    record_error: str | None
    inner: list[Any] | None
    _data: PreparedData
    _outer: list[tuple[np.ndarray, np.ndarray]]

    @property
    def model_names(self) -> list[str]: ...

    @property
    def metric_names(self) -> list[str]: ...

    @property
    def has_known(self) -> bool: ...

    @property
    def splits(self) -> tuple[str, ...]: ...

    @property
    def repeats(self) -> np.ndarray: ...

    @property
    def summary(self) -> pd.DataFrame: ...

    @property
    def predictions(self) -> pd.DataFrame: ...

    @property
    def known_predictions(self) -> pd.DataFrame: ...

    @property
    def failures(self) -> pd.DataFrame: ...

    @property
    def warnings(self) -> pd.DataFrame: ...

    @property
    def models(self) -> dict[tuple[str, int], Any]: ...

    @property
    def studies(self) -> dict[tuple[str, int], Any]: ...

    @property
    def histories(self) -> dict[tuple[str, int], pd.DataFrame]: ...

    def to_frame(self, include_failed: bool = False) -> pd.DataFrame: ...

    def summarize(self, split: str = "test") -> pd.DataFrame: ...
