"""flexcv's repeated cross validation, as ``flexcv.repeated.RepeatedCV`` spelled it.

flexcv ran the whole cross validation ``n_repeats`` times with different seeds and
summarised the runs: each run's folds averaged, then the runs' mean and standard
deviation (rows ``r2_mean``, ``r2_std``... of ``get_results().summary``). mixcv repeats the
outer split inside one run instead (``set_splits(n_repeats=R)``): every repeat's folds are
in one `Results`, with a ``repeat`` column, so summaries aggregate over repeats and folds
and the corrected t-test of `Results.compare` uses all ``k·R`` folds (Bouckaert & Frank
2004). `RepeatedCV.get_results` returns `RepeatedResults`: flexcv's summary layout, with
the whole `Results` behind it.

Examples
--------
>>> from mixcv_core.repeated import RepeatedCV
>>> from mixcv_core.synthesizer import generate_grouped_regression
>>> X, y, group, _ = generate_grouped_regression(6, 20, n_slopes=1, noise_level=0.1, random_seed=1)
>>> results = (RepeatedCV().set_data(X, y, group).set_splits("GroupKFold", n_splits_out=3)
...            .add_model("LinearModel").set_n_repeats(2).set_run(store=False).perform().get_results())
>>> sorted(results.to_frame()["repeat"].unique().tolist())
[0, 1]
>>> bool(results.summary.loc[["r2_mean", "r2_std"], "LinearModel"].notna().all())
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.model_selection._split import GroupsConsumerMixin

from .constraints import check
from .errors import SpecError, SpecTypeError
from .experiment.spec import ExperimentSpec, SplitSpec
from .experiment.splits import SPLIT_METHODS, canonical_method
from .interface import CrossValidation
from .results import Results

__all__ = ["RepeatedCV", "RepeatedResults", "SeededRepeats", "GroupSeededRepeats", "seeded_repeats"]


class SeededRepeats(BaseCrossValidator):
    """A named split method repeated once per seed: repeat ``r`` is shuffled by ``seeds[r]``.

    Equal seeds give equal repeats (flexcv's ``set_seeds([42, 42])``); each repeat is the
    method's single repeated form (group methods shuffle which groups share a fold).
    """

    def __init__(self, method: str, n_splits: int, seeds: Sequence[int]) -> None:
        self.method = method
        self.n_splits = n_splits
        self.seeds = tuple(seeds)
        self.n_repeats = len(self.seeds)   # read by `repeat_labels`

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits * self.n_repeats

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        named = SPLIT_METHODS[self.method]
        for seed in self.seeds:
            yield from named.repeated(self.n_splits, 1, seed).split(X, y, groups)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method!r}, {self.n_splits}, seeds={list(self.seeds)})"


class GroupSeededRepeats(GroupsConsumerMixin, SeededRepeats):
    """`SeededRepeats` of a group method (it needs groups and keeps them whole)."""


def seeded_repeats(method: str, n_splits: int, seeds: Sequence[int]) -> SeededRepeats:
    """The `SeededRepeats` of a named method, declaring groups when the method needs them."""
    name = canonical_method(method, "outer.method")
    cls = GroupSeededRepeats if SPLIT_METHODS[name].requires_groups else SeededRepeats
    return cls(name, n_splits, seeds)


class RepeatedResults:
    """What flexcv's ``RepeatedCV.get_results()`` returned, with mixcv's `Results` behind it.

    ``summary`` is flexcv's layout (rows ``<metric>_mean`` and ``<metric>_std``, one column
    per model: `Results.repeated_summary`); every other attribute is the run's `Results`
    (``to_frame()``, ``compare()``...), which is also ``.results`` (``rcv.results["LinearModel"]``).
    """

    def __init__(self, results: Results) -> None:
        self.results = results

    @property
    def summary(self) -> pd.DataFrame:
        return self.results.repeated_summary()

    def __getattr__(self, name: str) -> Any:
        if name == "results":   # not set yet (unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.results, name)

    def __repr__(self) -> str:
        return f"<RepeatedResults>\n{self.summary.to_string()}\n{self.results!r}"

    def _repr_html_(self) -> str:
        return self.results._repr_html_()


class RepeatedCV(CrossValidation):
    """`CrossValidation` whose outer split is repeated (3 times unless `set_n_repeats` says otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self._n_repeats: int | None = None   # None: set_splits' n_repeats if > 1, else flexcv's 3
        self._seeds: tuple[int, ...] | None = None
        self._generator_seed: int | None = None

    def set_n_repeats(self, n_repeats: int) -> RepeatedCV:
        """Repeat the outer split ``n_repeats`` times, reshuffled each time."""
        self._n_repeats = check("outer.n_repeats", n_repeats, field="n_repeats")
        return self

    def set_seeds(self, seeds: Sequence[int] | None = None, generator_seed: int = 42) -> RepeatedCV:
        """Seed each repeat's split (flexcv's ``set_seeds``).

        Parameters
        ----------
        seeds : list of int, optional
            One seed per repeat; their number sets the number of repeats. Equal seeds give
            equal repeats. Models are seeded as in any mixcv run, from the run seed
            (``set_run(random_seed=...)``) and the fold.
        generator_seed : int, default=42
            Without ``seeds``: draw one seed per repeat from this seed.
        """
        if seeds is None:
            self._generator_seed = check("seed", generator_seed, field="generator_seed")
            self._seeds = None
            return self
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
            raise SpecTypeError("seeds", f"expected a list of integer seeds, got {type(seeds).__name__}")
        if not seeds:
            raise SpecError("seeds", "expected at least one seed")
        self._seeds = tuple(check("seed", s, field=f"seeds[{i}]") for i, s in enumerate(seeds))
        self._generator_seed = None
        return self

    def set_neptune(self, neptune_credentials: dict[str, Any] | None = None) -> RepeatedCV:
        """Mirror the run to Neptune (flexcv's name): one run holding every repeat.

        Credentials come from the arguments or, as always in mixcv, from the environment
        (``NEPTUNE_API_TOKEN``, ``NEPTUNE_PROJECT``); they are never printed.
        """
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

    def _repeats(self) -> int:
        o = self._outer
        return self._n_repeats if self._n_repeats is not None else (o.n_repeats if o.n_repeats > 1 else 3)

    def to_spec(self) -> ExperimentSpec:
        o = self._outer
        seeds = self._seeds
        if seeds is not None and self._n_repeats is not None and self._n_repeats != len(seeds):
            raise SpecError("seeds", f"{len(seeds)} seeds for {self._n_repeats} repeats (set_n_repeats); give one "
                                     "seed per repeat")
        if seeds is None and self._generator_seed is not None:
            seeds = tuple(int(s) for s in np.random.default_rng(self._generator_seed).integers(42000,
                                                                                                size=self._repeats()))
        if seeds is not None:
            method = o.method if isinstance(o.method, str) else getattr(o.method, "method", None)
            if not isinstance(method, str):
                raise SpecError("seeds", "seeds apply to a named outer split method (set_splits(split_out='KFold'...))"
                                         f"; {o.label} is a splitter object: seed it yourself")
            n_splits = o.n_splits if isinstance(o.method, str) else int(getattr(o.method, "n_splits", o.n_splits))
            self._outer = SplitSpec(seeded_repeats(method, n_splits, seeds), n_splits, o.scale, 1,
                                    o.known_holdout, _field="outer")
        else:
            n = self._repeats()
            if n != o.n_repeats:
                self._outer = SplitSpec(o.method, o.n_splits, o.scale, n, o.known_holdout, _field="outer")
        return super().to_spec()

    def get_results(self) -> RepeatedResults:  # type: ignore[override]
        """The run as flexcv's repeated result: ``summary`` with ``r2_mean``, ``r2_std``... rows."""
        return RepeatedResults(super().get_results())
