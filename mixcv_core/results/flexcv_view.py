"""flexcv's way of reading results: a dict of models, each a dict of per-fold lists.

flexcv's ``CrossValidationResults`` is a dict ``{model_name: {"model": [...],
"parameters": [...], "metrics": [{...}, ...], "folds_by_metrics": {...}, "y_pred": [...],
"y_test": [...], "y_pred_train": [...], "y_train": [...]}}`` with a few getters and a
``summary`` table whose rows are (fold, metric) and whose columns are models. mixcv's
`Results` answers the same reads through `FlexcvView`, a mixin computed from the fold
outcomes, so code written for flexcv reads a mixcv run unchanged:

    results["RandomForestRegressor"]["metrics"][fold]["r2"]
    "LinearModel" in results
    results.get_best_model_by_metric(metric_name="mse", direction="min")

Every list is indexed by outer fold (numbered across repeats), so ``get_predictions(m, k)``
is fold ``k``. A fold that failed keeps its place, with ``None`` for its model and
predictions and NaN for its metrics. mixcv's own table has the same numbers in long form
(`Results.to_frame`); flexcv's layout of the summary is `FlexcvView.flexcv_summary`
(mixcv's `Results.summary` is a (model, metric) table with mean, sd, median and n_folds).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, KeysView
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MixcvError, SpecError

if TYPE_CHECKING:
    from ..experiment.data import PreparedData
    from ..experiment.spec import ExperimentSpec
    from ..outcome import FoldOutcome

__all__ = ["FlexcvView", "UnknownModelError", "SUMMARY_STATS"]

#: The rows flexcv adds under each metric's fold values, in its order.
SUMMARY_STATS = ("mean", "median", "std")


class UnknownModelError(MixcvError, KeyError):
    """A model name that is not in the results (a `KeyError`, as a dict would raise)."""

    def __str__(self) -> str:   # KeyError would show the message quoted
        return f"{self.field}: {self.message}"


class FlexcvView:
    """flexcv's ``CrossValidationResults`` reads, for a class holding fold outcomes.

    The host (`Results`) provides ``spec``, ``outcomes``, ``model_names``, ``_data`` and
    ``_outer``; nothing here changes them.
    """

    spec: ExperimentSpec
    outcomes: list[FoldOutcome]
    _data: PreparedData
    _outer: list[tuple[np.ndarray, np.ndarray]]

    @property
    def model_names(self) -> list[str]:  # provided by the host; declared for type checkers
        raise NotImplementedError

    # -- the dict ----------------------------------------------------------------------
    def _model_dict(self, model: str) -> dict[str, Any]:
        if model not in self.model_names:
            raise UnknownModelError("model_name", f"no model {model!r} in these results; models are "
                                                  f"{self.model_names}")
        by_fold = {o.fold: o for o in self.outcomes if o.model == model}
        d = self._data
        suffixes = {"test": "", "train": "_train", "known": "_known"}
        keep = [s for s in ("test", "train", "known") if s != "known" or bool(self.spec.outer.known_holdout)]
        out: dict[str, Any] = {k: [] for k in ("model", "parameters", "metrics", "y_pred", "y_test",
                                               "y_pred_train", "y_train")}
        for fold, (train, test) in enumerate(self._outer):
            o = by_fold.get(fold)
            ok = o is not None and o.ok
            metrics = {f"{m}{suffixes[s]}": (o.metrics.get(f"{s}_{m}", math.nan) if ok and o else math.nan)
                       for m in self.spec.metrics for s in keep}
            out["metrics"].append(metrics)
            out["model"].append(o.estimator if ok and o else None)
            out["parameters"].append(dict(o.best_params) if ok and o else None)
            out["y_pred"].append(o.y_pred if ok and o else None)
            out["y_test"].append(d.y[test])
            out["y_pred_train"].append(o.y_pred_train if ok and o else None)
            out["y_train"].append(d.y[train])
            # What a flexcv-style post-processor added for this fold (shap values...).
            for key, value in (o.post_processed.items() if ok and o else ()):
                if key == "parameters":
                    out["parameters"][-1] = value
                else:
                    out.setdefault(key, [None] * len(self._outer))[fold] = value
        names = list(out["metrics"][0]) if out["metrics"] else []
        out["folds_by_metrics"] = {name: [fm[name] for fm in out["metrics"]] for name in names}
        return out

    def __getitem__(self, model: str) -> dict[str, Any]:
        """flexcv's per-model dict: ``results[name]["metrics"][fold]["r2"]`` and the rest."""
        return self._model_dict(model)

    def __contains__(self, model: object) -> bool:
        return model in self.model_names

    def __iter__(self) -> Iterator[str]:
        return iter(self.model_names)

    def __len__(self) -> int:
        return len(self.model_names)

    def __bool__(self) -> bool:
        return True   # a run is a result even when no model finished

    def keys(self) -> KeysView[str]:
        """The model names, as flexcv's dict keys."""
        return dict.fromkeys(self.model_names).keys()

    def values(self) -> list[dict[str, Any]]:
        """flexcv's per-model dicts, in model order."""
        return [self._model_dict(m) for m in self.model_names]

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """(model name, flexcv's per-model dict) pairs."""
        return [(m, self._model_dict(m)) for m in self.model_names]

    def get(self, model: str, default: Any = None) -> Any:
        """flexcv's per-model dict, or ``default`` for a model not in the results."""
        return self._model_dict(model) if model in self.model_names else default

    # -- flexcv's getters ----------------------------------------------------------------
    def get_best_model_by_metric(self, model_name: str | None = None, metric_name: str = "mse",
                                 direction: str = "min") -> Any:
        """The fitted model of the fold with the best ``metric_name`` (test fold).

        Parameters
        ----------
        model_name : str, optional
            Look in this model's folds only; by default in every model's.
        metric_name : str, default="mse"
            A metric of the run (``"r2"``, ``"mse"``, ... or ``"<metric>_train"``).
        direction : {"min", "max"}
            Whether the lowest (MSE) or highest (R²) value is best.

        Raises
        ------
        SpecError
            A ``direction`` other than "min"/"max", or a metric the run did not compute.
        UnknownModelError
            A ``model_name`` not in the results.
        """
        if direction not in ("min", "max"):
            raise SpecError("direction", f"expected 'min' or 'max', got {direction!r}")
        names = self.model_names if model_name is None else [model_name]
        best: tuple[float, Any] | None = None
        for name in names:
            folds = self._model_dict(name)
            if metric_name not in folds["folds_by_metrics"]:
                raise SpecError("metric_name", f"{metric_name!r} is not a metric of these results; metrics "
                                               f"are {list(folds['folds_by_metrics'])}")
            for value, model in zip(folds["folds_by_metrics"][metric_name], folds["model"], strict=True):
                if model is None or not np.isfinite(value):
                    continue
                score = value if direction == "min" else -value
                if best is None or score < best[0]:
                    best = (score, model)
        if best is None:
            raise SpecError("model_name", f"no finished fold of {names} to choose from")
        return best[1]

    def _fold_value(self, model_name: str, key: str, fold_id: int) -> Any:
        values = self._model_dict(model_name)[key]
        if not isinstance(fold_id, (int, np.integer)) or not -len(values) <= fold_id < len(values):
            raise SpecError("fold_id", f"expected an outer fold number 0..{len(values) - 1}, got {fold_id!r}")
        return values[fold_id]

    def get_predictions(self, model_name: str, fold_id: int) -> np.ndarray | None:
        """Predictions for the test rows of outer fold ``fold_id``."""
        return self._fold_value(model_name, "y_pred", fold_id)

    def get_true_values(self, model_name: str, fold_id: int) -> np.ndarray:
        """The target on the test rows of outer fold ``fold_id``."""
        return self._fold_value(model_name, "y_test", fold_id)

    def get_training_predictions(self, model_name: str, fold_id: int) -> np.ndarray:
        """Predictions for the training rows of outer fold ``fold_id`` (runs in memory only).

        Raises
        ------
        SpecError
            For a run loaded from a store (which keeps test predictions only) or a failed fold.
        """
        pred = self._fold_value(model_name, "y_pred_train", fold_id)
        if pred is None:
            raise SpecError("fold_id", f"no training predictions for {model_name!r} fold {fold_id}: the fold "
                                       "failed, or the run was loaded from a store, which keeps test predictions "
                                       "only (the training metrics are in results.to_frame())")
        return pred

    def get_training_true_values(self, model_name: str, fold_id: int) -> np.ndarray:
        """The target on the training rows of outer fold ``fold_id``."""
        return self._fold_value(model_name, "y_train", fold_id)

    def get_params(self, model_name: str, fold_id: int) -> dict[str, Any] | None:
        """The tuned parameters of ``model_name`` in fold ``fold_id`` (None for a failed fold)."""
        return self._fold_value(model_name, "parameters", fold_id)

    # -- flexcv's summary layout ---------------------------------------------------------
    @property
    def flexcv_summary(self) -> pd.DataFrame:
        """The summary as flexcv lays it out: rows (Fold, Metric), one column per model.

        Under each metric come its value in every outer fold, then its mean, median and
        standard deviation over the folds (``ddof=1``, NaN skipped), as in flexcv.
        """
        columns = {}
        index: list[tuple[Any, str]] = []
        for model in self.model_names:
            by_metric = self._model_dict(model)["folds_by_metrics"]
            values: list[float] = []
            index = []
            for metric, folds in by_metric.items():
                series = pd.Series(folds, dtype=float)
                stats = (series.mean(), series.median(), series.std())
                values += [*series.tolist(), *stats]
                index += [(k, metric) for k in [*range(len(series)), *SUMMARY_STATS]]
            columns[model] = values
        frame = pd.DataFrame(columns, index=pd.MultiIndex.from_tuples(index, names=["Fold", "Metric"]))
        return frame

    def repeated_summary(self) -> pd.DataFrame:
        """flexcv's summary of a repeated cross validation: rows ``<metric>_mean`` and
        ``<metric>_std``, one column per model.

        Each repeat's folds are averaged first, then the repeats: ``r2_mean`` is the mean of
        the per-repeat mean R², ``r2_std`` their standard deviation (``ddof=1``; 0 when
        the repeats are identical, NaN with a single repeat).
        """
        repeats = np.asarray(self.spec.outer.repeat_labels(len(self._outer)))
        rows: dict[str, dict[str, float]] = {}
        for model in self.model_names:
            for metric, folds in self._model_dict(model)["folds_by_metrics"].items():
                per_fold = pd.Series(folds, dtype=float)
                per_repeat = per_fold.groupby(repeats).mean()
                rows.setdefault(f"{metric}_mean", {})[model] = float(per_repeat.mean())
                rows.setdefault(f"{metric}_std", {})[model] = float(per_repeat.std())
        return pd.DataFrame.from_dict(rows, orient="index", columns=self.model_names)
