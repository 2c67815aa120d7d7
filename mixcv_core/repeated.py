"""flexcv's repeated cross validation, as ``flexcv.repeated.RepeatedCV`` spelled it.

flexcv ran the whole cross validation ``n_repeats`` times with different seeds and
averaged the runs' means. mixcv repeats the outer split inside one run instead
(``set_splits(n_repeats=R)``): every repeat's folds are in one `Results`, with a
``repeat`` column, so summaries aggregate over repeats and folds and the corrected
t-test of `Results.compare` uses all ``k·R`` folds (Bouckaert & Frank 2004).

Examples
--------
>>> from mixcv_core.repeated import RepeatedCV
>>> from mixcv_core.synthesizer import generate_grouped_regression
>>> X, y, group, _ = generate_grouped_regression(6, 20, n_slopes=1, noise_level=0.1, random_seed=1)
>>> results = (RepeatedCV().set_data(X, y, group).set_splits("GroupKFold", n_splits_out=3)
...            .add_model("LinearModel").set_n_repeats(2).set_run(store=False).perform().get_results())
>>> sorted(results.to_frame()["repeat"].unique().tolist())
[0, 1]
"""

from __future__ import annotations

from typing import Any

from .constraints import check
from .experiment.spec import SplitSpec
from .interface import CrossValidation

__all__ = ["RepeatedCV"]


class RepeatedCV(CrossValidation):
    """`CrossValidation` whose outer split is repeated (3 times unless `set_n_repeats` says otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self._n_repeats: int | None = None   # None: set_splits' n_repeats if > 1, else flexcv's 3

    def set_n_repeats(self, n_repeats: int) -> RepeatedCV:
        """Repeat the outer split ``n_repeats`` times, reshuffled each time."""
        self._n_repeats = check("outer.n_repeats", n_repeats, field="n_repeats")
        return self

    def set_neptune(self, neptune_credentials: dict[str, Any] | None = None) -> RepeatedCV:
        """Mirror the run to Neptune (flexcv's name): one run holding every repeat.

        Credentials come from the arguments or, as always in mixcv, from the environment
        (``NEPTUNE_API_TOKEN``, ``NEPTUNE_PROJECT``); they are never printed.
        """
        from .errors import SpecError
        from .tracking.mirrors import NeptuneMirror
        credentials = dict(neptune_credentials or {})
        if "api_token" in credentials:
            raise SpecError("neptune_credentials", "mixcv takes the API token only from the environment; set "
                                                   "NEPTUNE_API_TOKEN and leave api_token out of the arguments")
        unknown = set(credentials) - {"project", "mode", "name"}
        if unknown:
            raise SpecError("neptune_credentials", f"unknown keys {sorted(unknown)}; accepted: project, mode, name")
        self._run = NeptuneMirror(**credentials)
        return self

    def to_spec(self) -> Any:
        o = self._outer
        n = self._n_repeats if self._n_repeats is not None else (o.n_repeats if o.n_repeats > 1 else 3)
        if n != o.n_repeats:
            self._outer = SplitSpec(o.method, o.n_splits, o.scale, n, o.known_holdout, _field="outer")
        return super().to_spec()
