"""ExperimentSpec: one typed, immutable, validated description of an experiment.

Every front end (the fluent ``CrossValidation`` builder, the ``%%mixcv`` magic, the
widget form) produces an `ExperimentSpec`; nothing else reaches the engine. The spec
validates itself on construction with errors that name the field, and converts to a
plain JSON-able dict and back (`ExperimentSpec.to_dict`, `ExperimentSpec.from_dict`)
so stored runs can be re-run and front ends can show the spec as text.

The spec names data columns but holds no data: `mixcv_core.data.prepare_data` checks a
DataFrame against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._frozen import FrozenMap
from ..constraints import MAX_SEED, Integer, check, check_function
from ..errors import SpecError, SpecTypeError
from ..metrics import METRIC_INFO, METRICS, TUNING_DEFAULT, metric_task, resolve_metrics
from ..models import is_mixed
from ..models.merf import MERFRegressor
from ..models.merf_binary import check_binary_base
from .registry import (
    MOVED_MODULES,
    check_fit_arguments,
    check_model_task,
    check_parameter_values,
    dotted_path,
    estimator_name,
    import_dotted,
    is_unresolved,
    param_names,
    resolve_estimator,
    unresolved_name,
)
from .splits import (
    FixedSplits,
    Splitter,
    canonical_method,
    check_class_group_shuffle,
    is_splitter_object,
    repeat_labels,
    split_requires_groups,
)
from .target import TASKS, check_task_fields

if TYPE_CHECKING:
    import optuna.distributions as od

__all__ = ["DataSpec", "SplitSpec", "ModelSpec", "TuningSpec", "MerfSpec", "ExperimentSpec", "MAX_SEED",
           "SPEC_FORMAT", "merf_name", "model_spec_from_config",
           "check_execution", "EXECUTION_SETTINGS", "TASKS", "TASK_DEFAULTS"]

#: Version of the dict form written by `ExperimentSpec.to_dict`. `from_dict` reads
#: this version and upgrades every earlier one (see `_UPGRADES`).
SPEC_FORMAT = 9


#: ``ExperimentSpec.metrics`` left to the task: its defaults (`mixcv_core.metrics.TASK_DEFAULT_METRICS`),
#: chosen when the task is known. Compared by identity; empty, so never a metric set of its own.
TASK_DEFAULTS: Mapping[str, Callable[..., float]] = FrozenMap()


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields in __post_init__.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class DataSpec:
    """Which columns play which role.

    Parameters
    ----------
    target : str
        The column to predict.
    groups : str or None
        The grouping column (participant, school, site...). Required by group splits,
        LMM and MERF.
    slopes : tuple of str
        Feature columns that also get a random slope per group.
    features : tuple of str or None
        Fixed-effects features; ``None`` means every column other than target and groups.
    frame : str or None
        Name of the DataFrame in the user's namespace (front ends that find data by name).
    dataset_name : str
        A label for logs and reports.
    random : str or None
        The random-effect terms in lme4's syntax, e.g. ``"(1 + days | subject) + (1 | item)"``
        (parsed now: a mistake is a `SpecError` naming ``data.random``). Their grouping
        columns become ``groups`` when it is not set. ``None``: ``groups``/``slopes`` are the
        one-factor shorthand ``(1 + slopes | groups)``, or, with several grouping columns,
        a random intercept per column.
    split_by : tuple of str
        The grouping column(s) whose levels the outer test folds hold new: ``("subject",)``
        (new subjects, items recur) or ``("subject", "item")`` (new subjects and new items;
        rows that mix a held-out level with a training level are used for neither).
        ``()``: the first grouping column.

    ``groups`` may be one column name or, for several grouping factors, a tuple of them
    (a list of one is stored as the name).
    """

    target: str
    groups: str | tuple[str, ...] | None = None
    slopes: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    frame: str | None = None
    dataset_name: str = ""
    random: str | None = None
    split_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise SpecTypeError("data.target", f"expected a column name, got {self.target!r}")
        if isinstance(self.groups, (list, tuple)):
            names = tuple(self.groups)
            if not all(isinstance(g, str) for g in names):
                raise SpecTypeError("data.groups", f"column names must be strings, got {list(names)!r}")
            _set(self, "groups", names[0] if len(names) == 1 else (names or None))
        if self.groups is not None and not isinstance(self.groups, (str, tuple)):
            raise SpecTypeError("data.groups", f"expected a column name or None, got {self.groups!r}")
        if self.random is not None and self.slopes:
            raise SpecError("data.slopes", "slopes is the one-factor shorthand; with random, write the "
                                           "slopes in its terms, e.g. '(1 + days | subject)'")
        if isinstance(self.slopes, str):
            _set(self, "slopes", (self.slopes,))
        _set(self, "slopes", tuple(self.slopes))
        if self.features is not None:
            if isinstance(self.features, str):
                _set(self, "features", (self.features,))
            _set(self, "features", tuple(self.features))
        for name in self.slopes + (self.features or ()):
            if not isinstance(name, str):
                raise SpecTypeError("data.features", f"column names must be strings, got {name!r}")
        if self.slopes and self.groups is None:
            raise SpecError("data.slopes", "random slopes need a grouping column; set groups")
        for role, taken in (("target", self.target), ("groups column", self.groups)):
            if taken is not None and taken in self.slopes:
                raise SpecError("data.slopes", f"{taken!r} is the {role}; a random slope must be a feature column")
        if self.groups is not None and self.groups == self.target:
            raise SpecError("data.groups", f"the groups column {self.groups!r} is also the target")
        roles = [self.target] + ([self.groups] if self.groups else [])
        if self.features is not None:
            clash = [c for c in self.features if c in roles]
            if clash:
                raise SpecError("data.features", f"{clash} are the target or groups column, not features")
            twice = sorted({f for f in self.features if self.features.count(f) > 1})
            if twice:
                raise SpecError("data.features", f"{twice} listed twice: every column needs its own name")
            missing = [s for s in self.slopes if s not in self.features]
            if missing:
                raise SpecError("data.slopes", f"slope columns {missing} are not among the features")
        twice = sorted({s for s in self.slopes if self.slopes.count(s) > 1})
        if twice:
            raise SpecError("data.slopes", f"slope columns {twice} listed twice")
        self._check_factors()

    def _check_factors(self) -> None:
        """Several grouping columns, the lme4 random part and the split's factors (issue 25)."""
        cols = self.group_columns
        twice = sorted({g for g in cols if cols.count(g) > 1})
        if twice:
            raise SpecError("data.groups", f"grouping columns {twice} listed twice")
        if self.target in cols:
            raise SpecError("data.groups", f"the groups column {self.target!r} is also the target")
        if self.features is not None:
            clash = [c for c in self.features if c in cols]
            if clash:
                raise SpecError("data.features", f"{clash} are grouping columns, not features")
        if self.random is not None:
            from ..models.mixed.terms import parse_random
            if not isinstance(self.random, str):
                raise SpecTypeError("data.random", f"expected lme4 random-effect terms as text such as "
                                                   f"'(1 + days | subject) + (1 | item)', got {self.random!r}")
            try:
                terms = parse_random(self.random)
            except SpecError as exc:
                raise SpecError("data.random", exc.message) from None
            # Factors that stand alone first (school of school/class, whose expansion lists
            # class:school first), then the columns met only in interactions.
            alone = [t.factor.column for t in terms if t.factor.column is not None]
            factors = list(dict.fromkeys([*alone, *(c for t in terms for c in t.factor.columns)]))
            if self.groups is None:
                _set(self, "groups", factors[0] if len(factors) == 1 else tuple(factors))
            missing = [c for c in factors if c not in self.group_columns]
            if missing:
                raise SpecError("data.random", f"the grouping columns {missing} of {self.random.strip()!r} are not "
                                               f"among groups {list(self.group_columns)}; add them to groups")
            for t in terms:
                for c in t.columns:
                    if c == self.target or c in self.group_columns:
                        raise SpecError("data.random", f"term {t}: the slope {c!r} is the target or a grouping "
                                                       "column; a random slope must be a feature column")
                    if self.features is not None and c not in self.features:
                        raise SpecError("data.random", f"term {t}: the slope {c!r} is not among the features")
        elif isinstance(self.groups, tuple) and self.slopes:
            raise SpecError("data.slopes", f"with several grouping columns {list(self.groups)}, say which factor "
                                           "a slope varies by in random, e.g. '(1 + days | subject) + (1 | item)'")
        if isinstance(self.split_by, str):
            _set(self, "split_by", (self.split_by,))
        if not isinstance(self.split_by, (list, tuple)) or not all(isinstance(c, str) for c in self.split_by):
            raise SpecTypeError("data.split_by", f"expected grouping column names, got {self.split_by!r}")
        _set(self, "split_by", tuple(self.split_by))
        for c in self.split_by:
            if c not in self.group_columns:
                raise SpecError("data.split_by", f"{c!r} is not a grouping column; the split can hold new levels of "
                                                 f"{list(self.group_columns) or 'groups (none are set)'}")
        if len(set(self.split_by)) < len(self.split_by):
            raise SpecError("data.split_by", f"{list(self.split_by)} names a column twice")

    @property
    def group_columns(self) -> tuple[str, ...]:
        """Every grouping column: ``()``, ``(groups,)`` or the tuple of several."""
        if self.groups is None:
            return ()
        return self.groups if isinstance(self.groups, tuple) else (self.groups,)

    @property
    def split_factors(self) -> tuple[str, ...]:
        """The grouping columns whose levels the outer test folds hold new (``split_by`` or the first)."""
        return self.split_by or self.group_columns[:1]

    @property
    def random_terms_text(self) -> str | None:
        """The random part the mixed models fit, or None for the one-factor shorthand.

        ``random`` when set; with several grouping columns and no ``random``, a random
        intercept per column (``(1 | subject) + (1 | item)``); else None.
        """
        if self.random is not None:
            return self.random
        if isinstance(self.groups, tuple):
            from ..models.mixed.terms import format_name
            return " + ".join(f"(1 | {format_name(g)})" for g in self.groups)
        return None


@dataclass(frozen=True)
class SplitSpec:
    """One level of cross validation.

    Parameters
    ----------
    method : str or splitter
        ``"KFold"``, ``"StratifiedKFold"``, ``"GroupKFold"``, ``"StratifiedGroupKFold"``,
        any scikit-learn splitter object, or (outer split only) an iterable of
        ``(train, test)`` index pairs.
    n_splits : int
        Number of folds for named methods (>= 2).
    scale : bool
        Standardise features on each training fold (the fitted scaler is then applied
        to that fold's test rows: no leakage).
    n_repeats : int
        Outer split only: repeat a named method this many times, reshuffled each time
        (for group methods the groups are reassigned to folds). ``1``: no repeats.
    known_holdout : float
        Outer split only: the fraction of each group's rows in every outer training fold
        held out as a second test set, of *known* groups (seen in training, rows not).
        ``0``: none. The outer test fold then scores new groups, the held-out rows known
        groups, side by side (``known_<metric>`` columns).
    """

    method: str | Splitter = "KFold"
    n_splits: int = 5
    scale: bool = True
    n_repeats: int = 1
    known_holdout: float = 0.0
    _field: str = field(default="outer", repr=False, compare=False)

    def __post_init__(self) -> None:
        f = self._field
        if isinstance(self.method, str):
            _set(self, "method", canonical_method(self.method, f"{f}.method"))
        elif not is_splitter_object(self.method):
            try:
                iterator = iter(self.method)  # type: ignore[call-overload]
            except TypeError:
                raise SpecTypeError(
                    f"{f}.method",
                    f"expected a split method name, a scikit-learn splitter or an iterable of "
                    f"(train, test) pairs, got {type(self.method).__name__}",
                ) from None
            _set(self, "method", FixedSplits.from_iterable(iterator, f"{f}.method"))
        if f not in ("outer", "inner"):
            raise SpecError("split", f"a split is the 'outer' or the 'inner' one, got {f!r}")
        _set(self, "n_splits", check(f"{f}.n_splits", self.n_splits))
        check(f"{f}.scale", self.scale)
        if f == "inner":
            for name, default in (("n_repeats", 1), ("known_holdout", 0.0)):
                if getattr(self, name) != default:
                    raise SpecError(f"inner.{name}", f"{name} applies to the outer split only; the inner split "
                                                     "is made anew on each outer training fold")
            return
        _set(self, "n_repeats", check("outer.n_repeats", self.n_repeats))
        _set(self, "known_holdout", check("outer.known_holdout", self.known_holdout))
        if self.n_repeats > 1 and not self.is_named:
            raise SpecError("outer.n_repeats", f"repeats apply to named split methods; {self.label} is an object: "
                                               "pass a repeated splitter instead (e.g. "
                                               "mixcv_core.RepeatedGroupKFold(5, n_repeats=3))")

    @property
    def requires_groups(self) -> bool:
        return split_requires_groups(self.method)

    def repeat_labels(self, n_folds: int) -> Any:
        """The repeat (0, 1, ...) of each of the ``n_folds`` folds this split produced."""
        if self.is_named:
            return np.arange(n_folds) // self.n_splits
        return repeat_labels(self.method, n_folds)

    @property
    def label(self) -> str:
        """How reports name this split: ``GroupKFold(5)``, ``GroupKFold(5) × 3``, or the class name."""
        if self.is_named:
            return f"{self.method}({self.n_splits})" + (f" × {self.n_repeats}" if self.n_repeats > 1 else "")
        if isinstance(self.method, FixedSplits):
            return f"FixedSplits({len(self.method.pairs)})"
        return type(self.method).__name__

    @property
    def is_named(self) -> bool:
        return isinstance(self.method, str)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment.

    Parameters
    ----------
    name : str
        Unique display name (the row label in results).
    estimator : type or str
        The estimator class, a registered name, or a dotted path.
    params : mapping of str to optuna distribution
        Hyperparameters tuned in the inner loop.
    requires_inner_cv : bool
        Tune ``params`` in the inner loop before the outer fit.
    model_kwargs : mapping
        Fixed constructor arguments.
    fit_kwargs : mapping
        Extra arguments to ``fit``.
    add_merf : bool
        Also fit ``MERF(<name>)`` around this model (see the MERF settings).
    post_processor : type, callable or None
        Called after each outer fit to collect insight (coefficients, importances).
    callbacks : sequence
        Training callbacks for the outer fit (flexcv's ``callbacks``, e.g. XGBoost's or
        LightGBM's): given to the estimator as its ``callbacks`` parameter when it has one,
        else to its ``fit``. Not used by the inner loop's trial fits, nor inside MERF.
    """

    name: str
    estimator: type | str
    params: Mapping[str, od.BaseDistribution] = field(default_factory=FrozenMap)
    requires_inner_cv: bool = False
    model_kwargs: Mapping[str, Any] = field(default_factory=FrozenMap)
    fit_kwargs: Mapping[str, Any] = field(default_factory=FrozenMap)
    add_merf: bool = False
    post_processor: object | None = None
    callbacks: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecTypeError("models.name", f"expected a non-empty model name, got {self.name!r}")
        f = f"models[{self.name!r}]"
        _set(self, "estimator", resolve_estimator(self.estimator, f"{f}.model"))
        accepted = param_names(self.estimator_class)
        for attr in ("params", "model_kwargs", "fit_kwargs"):
            value = getattr(self, attr)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise SpecTypeError(f"{f}.{attr}", f"expected a dict, got {type(value).__name__}")
            for key in value:
                if not isinstance(key, str):
                    raise SpecTypeError(f"{f}.{attr}", f"keys must be parameter names, got {key!r}")
            _set(self, attr, FrozenMap(value))
        if self.params:   # optuna is imported for a search space, not with mixcv_core
            import optuna.distributions as od
        for key, dist in self.params.items():
            if not isinstance(dist, od.BaseDistribution):
                raise SpecTypeError(
                    f"{f}.params[{key!r}]",
                    f"expected an optuna distribution (IntDistribution, FloatDistribution, "
                    f"CategoricalDistribution), got {dist!r}",
                )
        if accepted is not None:
            for attr in ("params", "model_kwargs"):
                unknown = [k for k in getattr(self, attr) if k not in accepted]
                if unknown:
                    import difflib
                    hints = []
                    for k in unknown:
                        close = difflib.get_close_matches(k, accepted, 1)
                        hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                    raise SpecError(f"{f}.{attr}",
                                    f"{', '.join(hints)} not a parameter of {self.estimator_class.__name__}")
        both = set(self.params) & set(self.model_kwargs)
        if both:
            raise SpecError(f"{f}.params", f"{sorted(both)} are both tuned and fixed in model_kwargs")
        check_parameter_values(self.estimator_class, {k: [v] for k, v in self.model_kwargs.items()},
                               f"{f}.model_kwargs")
        check_parameter_values(self.estimator_class, {k: _values_of(d) for k, d in self.params.items()},
                               f"{f}.params")
        # Known now from fit's signature, not after the first fold's fit fails (and then
        # every other fold's and trial's, one by one).
        check_fit_arguments(self.estimator_class, self.fit_kwargs, f"{f}.fit_kwargs", mixed=is_mixed(self.estimator),
                            fixed=self.model_kwargs, tuned=self.params)
        check("models.requires_inner_cv", self.requires_inner_cv, f"{f}.requires_inner_cv")
        check("models.add_merf", self.add_merf, f"{f}.add_merf")
        pp = self.post_processor
        if isinstance(pp, str):
            pp = import_dotted(pp, f"{f}.post_processor")
            _set(self, "post_processor", pp)
        if pp is not None:
            check_function(pp, f"{f}.post_processor", ("model", "feature_names"), classes=True,
                           or_arguments=("results_all_folds", "fold_result", "features", "run"))
        if self.callbacks is None:
            _set(self, "callbacks", ())
        if isinstance(self.callbacks, (str, bytes, Mapping)) or not hasattr(self.callbacks, "__iter__"):
            raise SpecTypeError(f"{f}.callbacks", f"expected a list of callbacks, got {type(self.callbacks).__name__}")
        _set(self, "callbacks", tuple(self.callbacks))
        if self.callbacks and self.callbacks_via is None:
            raise SpecError(f"{f}.callbacks", f"{self.estimator_class.__name__} takes no callbacks (neither its "
                                              "constructor nor its fit has a 'callbacks' parameter)")
        if self.callbacks and "callbacks" in self.fit_kwargs:
            # The outer fit would take the model's callbacks and drop the fit argument's.
            raise SpecError(f"{f}.fit_kwargs['callbacks']", "callbacks are given twice, as callbacks and as a fit "
                                                            "argument; give them once")

    @property
    def callbacks_via(self) -> str | None:
        """How the estimator takes callbacks: ``"init"`` (a constructor parameter, as XGBoost),
        ``"fit"`` (an argument of ``fit``, as LightGBM), or None."""
        import inspect
        if "callbacks" in (param_names(self.estimator_class) or ()):
            return "init"
        try:
            fit = inspect.signature(self.estimator_class.fit)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return None
        return "fit" if "callbacks" in fit.parameters else None

    @property
    def estimator_class(self) -> type:
        """The estimator class (``estimator`` after validation: names are resolved to classes)."""
        assert isinstance(self.estimator, type)  # resolved in __post_init__
        return self.estimator

    @property
    def tunes(self) -> bool:
        """Whether the inner loop runs for this model (it needs both the flag and params)."""
        return self.requires_inner_cv and bool(self.params)


@dataclass(frozen=True)
class TuningSpec:
    """The inner loop's budget and objective.

    Parameters
    ----------
    n_trials : int
        Optuna trials per model and outer fold (>= 1).
    objective_scorer : callable or None
        ``f(y_valid, y_pred_valid, y_train, y_pred_train) -> float`` to minimise, or
        ``f(y_true, y_pred)``; default: see ``metric``. In a classification the
        predictions it gets are probabilities, as the metrics get them.
    metric : str or None
        A built-in metric to optimise on the validation folds, in its own direction
        (`mixcv_core.metrics.METRIC_INFO`: ``roc_auc`` maximised, ``log_loss`` minimised).
        ``None``: the task's default (`mixcv_core.metrics.TUNING_DEFAULT`: the validation MSE
        for regression, the log loss for classification). Not with ``objective_scorer``.
    batch : int
        Trials asked of the sampler at once (>= 1), evaluated side by side on the cores a
        task has to itself, and told in the order asked (TPE with its constant-liar
        option). Fixed here, not by the number of workers, so a seed gives the same
        trials and results for any ``n_jobs`` and backend; a batch of k gives different
        (equally valid) trials than one at a time. Default 1: one trial at a time.
    """

    n_trials: int = 100
    objective_scorer: Callable[..., float] | None = None
    metric: str | None = None
    batch: int = 1

    def __post_init__(self) -> None:
        _set(self, "n_trials", check("tuning.n_trials", self.n_trials))
        _set(self, "batch", check("tuning.batch", self.batch))
        if self.metric is not None:
            if not isinstance(self.metric, str) or self.metric not in METRIC_INFO:
                raise SpecError("tuning.metric", f"unknown metric {self.metric!r}; choose one of "
                                                 f"{', '.join(METRIC_INFO)}")
            if self.objective_scorer is not None:
                raise SpecError("tuning.metric", "give tuning a metric or an objective_scorer, not both")
        if self.objective_scorer is not None:
            check_function(self.objective_scorer, "tuning.objective_scorer", ("y_valid", "y_pred_valid"),
                           or_arguments=("y_valid", "y_pred_valid", "y_train", "y_pred_train"))


@dataclass(frozen=True)
class MerfSpec:
    """MERF (mixed effects around any regressor) settings, used by the MERF models.

    Parameters
    ----------
    add_merf_global : bool
        Add ``MERF(<name>)`` next to every model.
    max_iterations : int
        EM iterations at most (>= 1); the EM stops when it converges (variance parameters,
        BLUPs and GLL per row settled: `mixcv_core.models.merf.DEFAULT_TOL`), and a fit
        that reaches the limit first is reported as not converged.
    stopping_threshold : float or None
        An early stop: end the EM when the relative change of the generalised
        log-likelihood (GLL) falls below it (relative to max(|GLL|, rows)). A fit stopped
        so before it converged is reported as "stopped early", not converged. ``None``
        (default): no early stop.
    stopping_window : int or None
        ...for this many consecutive iterations (and the convergence rule must hold for
        as many).
    linear_fixed_effects : bool
        Estimate a linear fixed part by GLS inside the EM (zero-mean random effects, new
        groups predicted by the whole fixed part); False is merf 1.0's algorithm.
    em_estimators : int or None
        Trees of a forest base estimator during EM (a forest no larger: a quarter of its
        trees, if that is at least 5; `mixcv_core.models.merf.em_trees`); the full forest is
        fitted once at the end. ``None``: the full forest at every iteration.
    """

    add_merf_global: bool = False
    max_iterations: int = 100
    stopping_threshold: float | None = None
    stopping_window: int | None = 2
    linear_fixed_effects: bool = True
    em_estimators: int | None = 50

    def __post_init__(self) -> None:
        for name in ("add_merf_global", "max_iterations", "stopping_threshold", "stopping_window",
                     "linear_fixed_effects", "em_estimators"):
            _set(self, name, check(f"merf.{name}", getattr(self, name)))


def check_execution(backend: str, scheduler: str | None, timeout: float | None) -> None:
    """Refuse the combinations of run settings that cannot work together (each checked alone already)."""
    if scheduler is not None and backend != "dask":
        raise SpecError("scheduler", f"a scheduler address is for backend='dask' (backend is {backend!r}); "
                                     "set backend='dask' too, or leave the scheduler out")
    if timeout is not None and backend == "dask":
        raise SpecError("timeout", "a time limit needs local worker processes (only a process can be stopped "
                                   "inside native code, and a Dask worker runs tasks in threads); use "
                                   "backend='local' with the timeout, or no timeout on Dask")


#: Settings of how a run is executed, not of what it estimates: results do not depend on
#: them, and a stopped run may be resumed with others.
EXECUTION_SETTINGS = ("n_jobs", "backend", "scheduler")


@dataclass(frozen=True)
class ExperimentSpec:
    """A complete nested cross-validation experiment.

    Parameters
    ----------
    data : DataSpec
    models : tuple of ModelSpec
    outer, inner : SplitSpec
    tuning : TuningSpec
    merf : MerfSpec
    metrics : mapping of str to callable
        Defaults to r2, mse and mae.
    predict_known_groups_lmm : bool
        Mixed models predict rows of groups seen in training with their random effects.
    seed : int
        Seeds splits, samplers and estimators' ``random_state``.
    n_jobs : int
        Outer folds run this many at a time (-1: all cores): worker processes, this process
        one of them for a run of mixcv's and scikit-learn's models without a timeout
        (`mixcv_core.run.parallel.in_caller`). Results do not depend on it.
    on_error : {"keep", "raise"}
        What a fit that raises does: ``"keep"`` records it as a failed fold and the run
        goes on (the other folds and models are kept); ``"raise"`` stops the run with
        that error and its traceback, for debugging (as scikit-learn's
        ``error_score="raise"``).
    timeout : float or None
        Seconds one model may take on one outer fold, its tuning included (a MERF
        variant, which starts once its base model is tuned, gets its own clock); a fit still
        running then is stopped (its worker process killed) and the fold recorded as
        failed, "timed out". ``None`` (default): no limit. Setting it runs the folds in
        worker processes even with ``n_jobs=1``, the only way to stop native code.
        Local only: a Dask worker's thread cannot be stopped from outside.
    backend : {"local", "dask"}
        Where the outer-fold tasks run: ``"local"`` (default) in this process, or
        ``n_jobs`` at a time in worker processes (this process one of them for a run of
        mixcv's and scikit-learn's models without a timeout: `mixcv_core.run.parallel.in_caller`);
        ``"dask"`` on a Dask cluster (`mixcv_core.run.cluster`):
        a local one with ``n_jobs`` worker processes, or the one at ``scheduler``.
        Results do not depend on it.
    scheduler : str or None
        The address of a running Dask scheduler (``"tcp://10.0.0.5:8786"``), with
        ``backend="dask"``; its workers need mixcv installed. ``None``: a local cluster.
    break_cross_val : bool
        Run the first outer fold only (flexcv's debugging switch): every split is still
        made and checked, one fold is fitted. Reports say the estimate is of one fold.
    task : {"regression", "classification"} or None
        What the target is. ``None`` (default): inferred when the run meets the data
        (`mixcv_core.experiment.target.resolve_task`): a target of two values (0/1, a bool,
        two labels) or of text labels is a classification, any other numeric target a
        regression. Classification models predict probabilities (of the positive class
        for two classes), and the metrics score those.
    positive_class : str, int, float, bool or None
        The class whose probability is predicted, for a target of two classes; ``None``:
        the larger label (1 of 0/1, True, "yes" of "no"/"yes").

    ``metrics`` left as None are the task's defaults (`mixcv_core.metrics.TASK_DEFAULT_METRICS`),
    chosen again when the task is inferred.

    Examples
    --------
    >>> spec = ExperimentSpec(DataSpec(target="y"), models=(ModelSpec("LM", "LinearModel"),))
    >>> ExperimentSpec.from_dict(spec.to_dict()) == spec
    True
    """

    data: DataSpec
    models: tuple[ModelSpec, ...]
    outer: SplitSpec = field(default_factory=lambda: SplitSpec(_field="outer"))
    inner: SplitSpec = field(default_factory=lambda: SplitSpec(_field="inner"))
    tuning: TuningSpec = field(default_factory=TuningSpec)
    merf: MerfSpec = field(default_factory=MerfSpec)
    metrics: Mapping[str, Callable[..., float]] = field(default_factory=lambda: TASK_DEFAULTS)
    predict_known_groups_lmm: bool = True
    seed: int = 42
    n_jobs: int = 1
    on_error: str = "keep"
    timeout: float | None = None
    break_cross_val: bool = False
    backend: str = "local"
    scheduler: str | None = None
    task: str | None = None
    positive_class: str | int | float | bool | None = None
    # Whether the metrics are the task's defaults, so that a task inferred later brings
    # its own (`replace` keeps them following). Set from ``metrics``, not given.
    metrics_follow_task: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, cls in (("data", DataSpec), ("outer", SplitSpec), ("inner", SplitSpec),
                          ("tuning", TuningSpec), ("merf", MerfSpec)):
            if not isinstance(getattr(self, name), cls):
                raise SpecTypeError(name, f"expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if isinstance(self.models, ModelSpec):
            _set(self, "models", (self.models,))
        _set(self, "models", tuple(self.models))
        if not self.models:
            raise SpecError("models", "no models to evaluate; add at least one (add_model or set_models)")
        for m in self.models:
            if not isinstance(m, ModelSpec):
                raise SpecTypeError("models", f"expected ModelSpec entries, got {type(m).__name__}")
        names = [n for n in self.model_names()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError("models", f"model names must be unique; {dupes} appear twice "
                                      "(give one of them a model_name)")
        if self.task is not None and self.task not in TASKS:
            check_task_fields(self.task, None)   # refused, naming task, before the metrics are chosen for it
        follow = self.metrics is None or self.metrics is TASK_DEFAULTS
        _set(self, "metrics_follow_task", follow)
        _set(self, "metrics", FrozenMap(resolve_metrics(None if follow else self.metrics,
                                                        task=self.task or "regression")))
        for name in ("predict_known_groups_lmm", "seed", "n_jobs", "on_error", "timeout", "break_cross_val",
                     "backend", "scheduler"):
            _set(self, name, check(name, getattr(self, name)))
        check_execution(self.backend, self.scheduler, self.timeout)
        for m in self.merf_models():
            # MERF(<name>) is fitted with the model's fit arguments too (its EM fits the base
            # model without them), so an argument its fit cannot take fails every MERF fold.
            check_fit_arguments(MERFRegressor, m.fit_kwargs, f"models[{m.name!r}].fit_kwargs", mixed=True,
                                owner=merf_name(m.name))
        if isinstance(self.inner.method, FixedSplits):
            raise SpecError("inner.method", "fixed (train, test) index pairs can only be the outer split; "
                                            "the inner split is made anew on every outer training fold")
        needs_groups = []
        if self.outer.requires_groups:
            needs_groups.append(f"outer split {self.outer.label}")
        if self.inner.requires_groups and any(m.tunes for m in self.models):
            needs_groups.append(f"inner split {self.inner.label}")
        for m in self.models:
            if is_mixed(m.estimator):
                needs_groups.append(f"model {m.name!r}")
        if self.merf_models():
            needs_groups.append("MERF")
        if self.outer.known_holdout and self.data.groups is None:
            needs_groups.append("known_holdout (rows of known groups)")
        if needs_groups and self.data.groups is None:
            raise SpecError("data.groups", f"{', '.join(needs_groups)} need(s) a grouping column; "
                                           "set groups (groups= in set_data, 'groups: <column>' in a cell)")
        self._check_several_factors()
        self._check_task()

    def _check_task(self) -> None:
        """What the task asks of the positive class, the metrics, tuning and the models (issue 27)."""
        _set(self, "positive_class", check_task_fields(self.task, self.positive_class))
        if self.task is None:
            return
        for name, fn in self.metrics.items():
            other = metric_task(name) if METRICS.get(name) is fn else None
            if other is not None and other != self.task:
                yours = ", ".join(k for k, info in METRIC_INFO.items() if info.task == self.task)
                raise SpecError("metrics", f"{name!r} is a {other} metric; this run is {self.task}: choose from "
                                           f"{yours}")
        if self.tuning.metric is not None and metric_task(self.tuning.metric) != self.task:
            raise SpecError("tuning.metric", f"{self.tuning.metric!r} is a {metric_task(self.tuning.metric)} metric; "
                                             f"this run is {self.task} (its default is "
                                             f"{TUNING_DEFAULT[self.task]!r})")
        for m in self.models:
            if not is_unresolved(m.estimator):   # a stored run's name, only read: its class is judged when re-run
                check_model_task(m.estimator_class, self.task, f"models[{m.name!r}].model", m.model_kwargs)
        if self.task == "classification":
            for level in (self.outer, self.inner):
                if level.method == "StratifiedGroupKFold" and level.n_repeats > 1:
                    check_class_group_shuffle(f"{level._field}.n_repeats", "repeating StratifiedGroupKFold")
                elif getattr(level.method, "shuffle", False) and type(level.method).__name__ == "StratifiedGroupKFold":
                    check_class_group_shuffle(f"{level._field}.method", "StratifiedGroupKFold(shuffle=True)")
        if self.task == "classification":
            # Binary MERF fits its base on the logit scale: a classifier needs a regression counterpart.
            for m in self.merf_models():
                if not is_unresolved(m.estimator):
                    check_binary_base(m.estimator_class, f"models[{m.name!r}].model")

    @property
    def tuning_metric(self) -> str | None:
        """The built-in metric tuning optimises (None: the user's ``objective_scorer``)."""
        if self.tuning.objective_scorer is not None:
            return None
        return self.tuning.metric or TUNING_DEFAULT[self.task or "regression"]

    def _check_several_factors(self) -> None:
        """Models that fit one grouping factor only are refused a random part with several (issue 25).

        MERF fits any random part (its EM runs on the mixed-model algebra), and so does every
        mixed model whose constructor takes ``random`` (the engine hands it the spec's terms).
        """
        split_by = self.data.split_by
        if split_by and not self.outer.requires_groups:
            raise SpecError("data.split_by", f"the outer split {self.outer.label} ignores groups, so no level of "
                                             f"{list(split_by)} is held out; use GroupKFold")
        if len(split_by) > 1 and self.outer.method != "GroupKFold":
            raise SpecError("data.split_by", f"new levels of several factors {list(split_by)} need the outer method "
                                             f"GroupKFold (folds dealt per factor), got {self.outer.label}")
        text = self.data.random_terms_text
        if text is None:
            return
        for m in self.models:
            if is_mixed(m.estimator) and "random" not in (param_names(m.estimator_class) or ()):
                raise SpecError(f"models[{m.name!r}].model",
                                f"{m.estimator_class.__name__} fits one grouping factor; the random part {text!r} "
                                "needs a model that takes a random part: LinearMixedEffectsModel, GPBoostRegressor, "
                                "or MERF (add_merf); for classes GeneralizedLinearMixedModel or GPBoostClassifier")

    # -- derived views -------------------------------------------------------------
    def merf_models(self) -> tuple[ModelSpec, ...]:
        """Models that also get a MERF variant."""
        return tuple(m for m in self.models if m.add_merf or self.merf.add_merf_global)

    def model_names(self) -> list[str]:
        """Result row names: every model, then ``MERF(<name>)`` for MERF variants."""
        return [m.name for m in self.models] + [merf_name(m.name) for m in self.merf_models()]

    def task_names(self, model: ModelSpec) -> list[str]:
        """The result names one (fold, model) task produces: the model, then its MERF variant."""
        return [model.name] + ([merf_name(model.name)] if model in self.merf_models() else [])

    def result_rank(self) -> dict[str, tuple[int, int]]:
        """Sort key of each result name within a fold: model order, the model before its MERF.

        Results are always ordered (fold, rank): the order tasks are defined in, never
        the order they finish in.
        """
        return {name: (i, j) for i, m in enumerate(self.models) for j, name in enumerate(self.task_names(m))}

    def unresolved_names(self) -> list[str]:
        """Fields holding a stored name whose module is not imported (see `from_dict`)."""
        out = [f"models[{m.name!r}].model" for m in self.models if is_unresolved(m.estimator)]
        out += [f"models[{m.name!r}].post_processor" for m in self.models if is_unresolved(m.post_processor)]
        out += [f"metrics[{k!r}]" for k, fn in self.metrics.items() if is_unresolved(fn)]
        if is_unresolved(self.tuning.objective_scorer):
            out.append("tuning.objective_scorer")
        return out

    def resolve_names(self) -> ExperimentSpec:
        """This spec with every kept name resolved (`import_dotted`), or `SpecError` naming
        the first field whose module is still not imported. Itself when nothing is kept."""
        if not self.unresolved_names():
            return self
        return ExperimentSpec.from_dict(self.to_dict())

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A copy with some fields changed (validated again).

        Metrics that were the task's defaults stay so (a new task brings its own) unless
        ``metrics`` is among the changes.
        """
        if self.metrics_follow_task and "metrics" not in changes:
            changes["metrics"] = TASK_DEFAULTS
        return replace(self, **changes)

    # -- plain-data round trip ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; classes and callables are written as importable dotted paths.

        Raises
        ------
        SpecError
            For parts that cannot be written down: splitter objects, lambdas or locally
            defined callables.
        """
        def ref(obj: Any, fld: str) -> str:
            path = dotted_path(obj)
            if "<" in path:
                raise SpecError(fld, f"{obj!r} is defined locally and cannot be written as text; "
                                     "define it at module level")
            return path

        def split_dict(s: SplitSpec, fld: str) -> dict[str, Any]:
            if not s.is_named:
                raise SpecError(f"{fld}.method", "a splitter object or fixed splits cannot be written as text; "
                                                 "use a named method")
            out: dict[str, Any] = {"method": s.method, "n_splits": s.n_splits, "scale": s.scale}
            if fld == "outer":
                out.update(n_repeats=s.n_repeats, known_holdout=s.known_holdout)
            return out

        def model_dict(m: ModelSpec) -> dict[str, Any]:
            est_name = estimator_name(m.estimator_class)
            if "." in est_name:
                est_name = ref(m.estimator_class, f"models[{m.name!r}].model")
            d: dict[str, Any] = {"name": m.name, "model": est_name}
            if m.params:
                import optuna.distributions as od
                d["params"] = {k: json.loads(od.distribution_to_json(v)) for k, v in m.params.items()}
            if m.requires_inner_cv:
                d["requires_inner_cv"] = True
            if m.model_kwargs:
                d["model_kwargs"] = dict(m.model_kwargs)
            if m.fit_kwargs:
                d["fit_kwargs"] = dict(m.fit_kwargs)
            if m.add_merf:
                d["add_merf"] = True
            if m.post_processor is not None:
                d["post_processor"] = ref(m.post_processor, f"models[{m.name!r}].post_processor")
            if m.callbacks:
                raise SpecError(f"models[{m.name!r}].callbacks", "callback objects cannot be written as text")
            return d

        metrics: dict[str, str] = {}
        for name, fn in self.metrics.items():
            metrics[name] = name if METRICS.get(name) is fn else ref(fn, f"metrics[{name!r}]")
        return {
            "format": SPEC_FORMAT,
            "data": {"target": self.data.target,
                     "groups": list(self.data.groups) if isinstance(self.data.groups, tuple) else self.data.groups,
                     "slopes": list(self.data.slopes),
                     "features": None if self.data.features is None else list(self.data.features),
                     "frame": self.data.frame, "dataset_name": self.data.dataset_name,
                     "random": self.data.random, "split_by": list(self.data.split_by)},
            "outer": split_dict(self.outer, "outer"),
            "inner": split_dict(self.inner, "inner"),
            "models": [model_dict(m) for m in self.models],
            "tuning": {"n_trials": self.tuning.n_trials,
                       "objective_scorer": None if self.tuning.objective_scorer is None
                       else ref(self.tuning.objective_scorer, "tuning.objective_scorer"),
                       "metric": self.tuning.metric, "batch": self.tuning.batch},
            "merf": {"add_merf_global": self.merf.add_merf_global, "max_iterations": self.merf.max_iterations,
                     "stopping_threshold": self.merf.stopping_threshold,
                     "stopping_window": self.merf.stopping_window,
                     "linear_fixed_effects": self.merf.linear_fixed_effects,
                     "em_estimators": self.merf.em_estimators},
            # None: the task's defaults, whichever task is inferred.
            "metrics": None if self.metrics_follow_task else metrics,
            "predict_known_groups_lmm": self.predict_known_groups_lmm,
            "seed": self.seed,
            "n_jobs": self.n_jobs,
            "on_error": self.on_error,
            "timeout": self.timeout,
            "break_cross_val": self.break_cross_val,
            "backend": self.backend,
            "scheduler": self.scheduler,
            "task": self.task,
            "positive_class": self.positive_class,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], keep_names: bool = False) -> ExperimentSpec:
        """Rebuild a spec from `to_dict` output (validating it again).

        Dicts of an earlier format (a stored run's spec) are upgraded first; a dict of a
        newer format than this mixcv knows is refused, naming both versions.

        Dotted names resolve only to scikit-learn, mixcv or modules already imported
        (`import_dotted`). With ``keep_names`` (a stored run being read), a name whose
        module is not imported stays a name (a stand-in that runs nothing) instead of an
        error; `resolve_names` turns it into the real object when the run is used again.
        """
        if not isinstance(d, Mapping):
            raise SpecTypeError("spec", f"expected a dict, got {type(d).__name__}")
        d = upgrade_spec_dict(d)
        known = {"format", "data", "outer", "inner", "models", "tuning", "merf", "metrics",
                 "predict_known_groups_lmm", "seed", "n_jobs", "on_error", "timeout", "break_cross_val",
                 "backend", "scheduler", "task", "positive_class"}
        unknown = set(d) - known
        if unknown:
            raise SpecError("spec", f"unknown keys {sorted(unknown)}")
        if "data" not in d or "models" not in d:
            raise SpecError("spec", "needs at least 'data' and 'models'")
        data = DataSpec(**{k: v for k, v in d["data"].items() if v is not None or k in ("groups",)})

        def name(ref: Any, fld: str, kind: str) -> Any:
            if not isinstance(ref, str):
                return ref
            return unresolved_name(ref, fld, kind) if keep_names else import_dotted(ref, fld)

        def model(md: Mapping[str, Any]) -> ModelSpec:
            md = dict(md)
            import optuna.distributions as od
            params = {k: od.json_to_distribution(json.dumps(v)) for k, v in (md.pop("params", None) or {}).items()}
            estimator = md.pop("model", None)
            fld = f"models[{md.get('name')!r}]"
            if isinstance(estimator, str) and "." in estimator:   # registered names have no dot
                estimator = name(estimator, f"{fld}.model", "class")
            if md.get("post_processor") is not None:
                md["post_processor"] = name(md["post_processor"], f"{fld}.post_processor", "function")
            return ModelSpec(name=md.pop("name", None), estimator=estimator, params=params, **md)

        metrics: dict[str, Callable[..., float]] = {}
        for key, ref in (d.get("metrics") or {}).items():
            metrics[key] = METRICS[ref] if ref in METRICS else name(ref, f"metrics[{key!r}]", "function")
        tuning = dict(d.get("tuning") or {})
        if tuning.get("objective_scorer"):
            tuning["objective_scorer"] = name(tuning["objective_scorer"], "tuning.objective_scorer", "function")
        return cls(
            data=data,
            models=tuple(model(m) for m in d["models"]),
            outer=SplitSpec(**(d.get("outer") or {}), _field="outer"),
            inner=SplitSpec(**(d.get("inner") or {}), _field="inner"),
            tuning=TuningSpec(**tuning),
            merf=MerfSpec(**(d.get("merf") or {})),
            metrics=metrics or TASK_DEFAULTS,
            predict_known_groups_lmm=d.get("predict_known_groups_lmm", True),
            seed=d.get("seed", 42),
            n_jobs=d.get("n_jobs", 1),
            on_error=d.get("on_error", "keep"),
            timeout=d.get("timeout"),
            break_cross_val=d.get("break_cross_val", False),
            backend=d.get("backend", "local"),
            scheduler=d.get("scheduler"),
            task=d.get("task"),
            positive_class=d.get("positive_class"),
        )


def _values_of(dist: od.BaseDistribution) -> list[Any]:
    """The values a distribution may give that can be checked one by one: every choice, or
    the two ends of a range."""
    import optuna.distributions as od
    if isinstance(dist, od.CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (od.IntDistribution, od.FloatDistribution)):
        return [dist.low, dist.high]
    return []


def _moved(path: Any) -> Any:
    """A dotted path into a module that has since moved, pointed at its new home."""
    if not isinstance(path, str):
        return path
    module, _, attr = path.rpartition(".")
    return f"{MOVED_MODULES[module]}.{attr}" if module in MOVED_MODULES else path


def _upgrade_1_to_2(d: dict[str, Any]) -> dict[str, Any]:
    # Format 1 (mixcv 0.1, one flat package) had no version and no on_error; its dotted
    # paths may name modules that moved into the layered packages.
    d = dict(d)
    d["models"] = [{**m, "model": _moved(m.get("model")), "post_processor": _moved(m.get("post_processor"))}
                   if isinstance(m, Mapping) else m for m in d.get("models") or []]
    for model in d["models"]:
        if isinstance(model, dict) and model.get("post_processor") is None:
            model.pop("post_processor", None)
    if isinstance(d.get("metrics"), Mapping):
        d["metrics"] = {k: _moved(v) for k, v in d["metrics"].items()}
    if isinstance(d.get("tuning"), Mapping):
        d["tuning"] = {**d["tuning"], "objective_scorer": _moved(d["tuning"].get("objective_scorer"))}
    d.setdefault("on_error", "keep")
    d["format"] = 2
    return d


def _upgrade_2_to_3(d: dict[str, Any]) -> dict[str, Any]:
    # Format 3 added MERF's linear fixed part and lighter EM forests, on by default. A run
    # stored before them used merf 1.0's algorithm with its stopping settings as written
    # (None: every iteration), and re-runs as it did.
    d = dict(d)
    merf = dict(d.get("merf") or {})
    merf.setdefault("stopping_threshold", None)
    merf.setdefault("stopping_window", None)
    merf.setdefault("linear_fixed_effects", False)
    merf.setdefault("em_estimators", None)
    d["merf"] = merf
    d["format"] = 3
    return d


def _upgrade_3_to_4(d: dict[str, Any]) -> dict[str, Any]:
    # Format 4 added the per-fit timeout; runs before it had none.
    return {**d, "timeout": d.get("timeout"), "format": 4}


def _upgrade_4_to_5(d: dict[str, Any]) -> dict[str, Any]:
    # Format 5 added repeats and the known-group holdout of the outer split, and
    # break_cross_val; runs before them had one repeat, no holdout, every fold.
    outer = {"n_repeats": 1, "known_holdout": 0.0, **(d.get("outer") or {})}
    return {**d, "outer": outer, "break_cross_val": d.get("break_cross_val", False), "format": 5}


def _upgrade_5_to_6(d: dict[str, Any]) -> dict[str, Any]:
    # Format 6 added the Dask backend; runs before it ran locally.
    return {**d, "backend": d.get("backend", "local"), "scheduler": d.get("scheduler"), "format": 6}


def _upgrade_6_to_7(d: dict[str, Any]) -> dict[str, Any]:
    # Format 7 added several grouping factors: the lme4 random part and the split's
    # factors. Runs before it had one grouping column, the one-factor shorthand, and
    # held its levels out.
    data = {"random": None, "split_by": [], **(d.get("data") or {})}
    return {**d, "data": data, "format": 7}


def _upgrade_7_to_8(d: dict[str, Any]) -> dict[str, Any]:
    # Format 8 added the task (classification, issue 27), its positive class and the
    # metric tuning optimises. Every run before it was a regression tuned on the
    # validation MSE (or its own scorer), with the metrics it wrote down.
    tuning = {"metric": None, **(d.get("tuning") or {})}
    return {**d, "task": "regression", "positive_class": None, "tuning": tuning, "format": 8}


def _upgrade_8_to_9(d: dict[str, Any]) -> dict[str, Any]:
    # Format 9 added batches of tuning trials (issue 29); runs before it told each trial
    # before asking the next. A newer reader's batch must not reach an older mixcv, which
    # would re-run it one trial at a time with other results: hence a format of its own.
    tuning = {"batch": 1, **(d.get("tuning") or {})}
    return {**d, "tuning": tuning, "format": 9}


#: from-format -> upgrade to the next format.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _upgrade_1_to_2, 2: _upgrade_2_to_3, 3: _upgrade_3_to_4, 4: _upgrade_4_to_5, 5: _upgrade_5_to_6,
    6: _upgrade_6_to_7, 7: _upgrade_7_to_8, 8: _upgrade_8_to_9}


def upgrade_spec_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """Bring a spec dict of any earlier format up to `SPEC_FORMAT`.

    A dict without ``"format"`` is format 1 (written before formats were numbered).

    Raises
    ------
    SpecError
        The dict is of a newer format than this version of mixcv reads.
    """
    version = Integer(1).check(d.get("format", 1), "spec.format")
    if version > SPEC_FORMAT:
        raise SpecError("spec.format", f"this spec was written in format {version} by a newer mixcv; this one "
                                       f"reads formats up to {SPEC_FORMAT}: upgrade mixcv to load it")
    out = dict(d)
    while version < SPEC_FORMAT:
        out = _UPGRADES[version](out)
        version = out["format"]
    return out


def merf_name(name: str) -> str:
    """The result name of the MERF variant of model ``name``."""
    return f"MERF({name})"


def model_spec_from_config(name: str, config: Mapping[str, Any]) -> ModelSpec:
    """A `ModelSpec` from a flexcv-style model config dict (``{"model": ..., "params": ...}``)."""
    if not isinstance(config, Mapping):
        raise SpecTypeError(f"models[{name!r}]", f"expected a dict of model settings, got {type(config).__name__}")
    allowed = {"model", "params", "requires_inner_cv", "model_kwargs", "fit_kwargs", "add_merf",
               "post_processor", "requires_formula", "n_trials"}
    unknown = set(config) - allowed
    if unknown:
        shown = sorted(allowed - {"requires_formula", "n_trials"})
        raise SpecError(f"models[{name!r}]", f"unknown settings {sorted(unknown)}; allowed: {shown}")
    if "model" not in config:
        raise SpecError(f"models[{name!r}].model", "missing: which estimator to use")
    return ModelSpec(
        name=name,
        estimator=config["model"],
        params=config.get("params") or {},
        requires_inner_cv=config.get("requires_inner_cv", False),
        model_kwargs=config.get("model_kwargs") or {},
        fit_kwargs=config.get("fit_kwargs") or {},
        add_merf=config.get("add_merf", False),
        post_processor=config.get("post_processor"),
    )


