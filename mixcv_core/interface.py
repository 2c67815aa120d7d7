"""The fluent ``CrossValidation`` builder: flexcv's API, recording into an `ExperimentSpec`.

Every ``set_*``/``add_model`` call validates its own arguments immediately, so a
mistake is reported at the line that made it, naming the argument. ``perform``
assembles the `ExperimentSpec`, validates the data against it and runs the engine.

Examples
--------
>>> from mixcv_core import CrossValidation
>>> from mixcv_core.models import LinearMixedEffectsModel
>>> from mixcv_core.synthesizer import generate_regression
>>> X, y, group, random_slopes = generate_regression(3, 100, n_slopes=1, noise_level=9.1e-2)
>>> results = (CrossValidation().set_data(X, y, group, random_slopes).set_splits(n_splits_out=3)
...            .add_model(LinearMixedEffectsModel).perform().get_results())
>>> "LinearMixedEffectsModel" in results.summary.index.get_level_values("model")
True
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constraints import Boolean, check
from .engine import run
from .errors import MixcvError, SpecError, SpecTypeError
from .experiment.data import assemble_frame, attach_groups, plan_experiment, prepare_data, several_groups
from .experiment.model_mapping import IGNORED_KEYS, ModelConfigDict, ModelMappingDict, mapping_to_model_specs
from .experiment.spec import (
    TASK_DEFAULTS,
    DataSpec,
    ExperimentSpec,
    MerfSpec,
    ModelSpec,
    SplitSpec,
    TuningSpec,
    check_execution,
)
from .experiment.splits import CrossValMethod, Splitter
from .experiment.target import check_target_type, check_task_fields, settle_task
from .metrics import MetricsDict, resolve_metrics
from .results import Results
from .run.events import Event, Observer
from .tracking.store import RunStore, resolve_store

# flexcv's interface module offered these names too.
__all__ = ["CrossValidation", "NotPerformedError", "ModelConfigDict", "ModelMappingDict", "CrossValMethod",
           "MetricsDict"]


class NotPerformedError(MixcvError, RuntimeError):
    """Results were asked for before ``perform()`` (a `RuntimeError`, as in flexcv)."""

#: Spec field paths -> the builder argument that sets them, where the two differ. The
#: engine's errors name spec fields; a setter's errors name its own arguments.
ARGUMENTS: dict[str, str] = {
    "data.features": "X", "data.target": "y", "data.groups": "groups", "data.slopes": "slopes",
    "data.random": "random", "data.split_by": "split_by", "seed": "random_seed", "tuning.batch": "trial_batch",
}


@contextlib.contextmanager
def _as_arguments() -> Iterator[None]:
    """Re-raise errors about spec fields under the builder argument names (`ARGUMENTS`)."""
    try:
        yield
    except MixcvError as exc:
        if exc.field not in ARGUMENTS:
            raise
        raise type(exc)(ARGUMENTS[exc.field], exc.message) from None


class CrossValidation:
    """Build and run a nested cross validation, step by step.

    Each method returns the builder, so calls chain. The order of the calls does not
    matter; only ``set_data`` and at least one model are required.
    """

    def __init__(self) -> None:
        self._frame: pd.DataFrame | None = None
        self._data: DataSpec | None = None
        self._models: list[ModelSpec] = []
        self._outer = SplitSpec(_field="outer")
        self._inner = SplitSpec(_field="inner")
        self._metrics: dict[str, Callable[..., float]] | None = None
        self._tuning = TuningSpec()
        self._merf = MerfSpec()
        self._predict_known_groups_lmm = True
        self._seed = 42
        self._n_jobs = 1
        self._on_error = "keep"
        self._backend = "local"
        self._scheduler: str | None = None
        self._timeout: float | None = None
        self._break_cross_val = False
        self._diagnostics = False
        self._observers: list[Observer | Callable[[Event], None]] = []
        self._run: Any = None
        self._store: RunStore | str | Path | bool | None = None
        self._save_models = False
        self._results: Results | None = None
        self._task: str | None = None
        self._positive_class: str | int | float | bool | None = None

    # -- data --------------------------------------------------------------------------
    def set_data(self, X: pd.DataFrame, y: pd.Series | np.ndarray, groups: pd.Series | np.ndarray | None = None,
                 slopes: pd.DataFrame | pd.Series | list[str] | str | None = None,
                 target_name: str = "", dataset_name: str = "", random: str | None = None,
                 split_by: str | list[str] | None = None, *, task: str | None = None,
                 positive_class: str | int | float | bool | None = None) -> CrossValidation:
        """Set the features, target, groups and random-slope columns, and what the target is.

        Parameters
        ----------
        X : DataFrame
            Numeric features, no missing values.
        y : Series or 1-D array
            The target, one value per row of ``X`` (matched by position).
        groups : Series, 1-D array, DataFrame or list of str, optional
            Group labels; needed by group splits, mixed models and MERF. Several grouping
            factors: a DataFrame of the grouping columns (one row per row of ``X``), or a
            list naming columns of ``X`` (they are then taken out of the features).
        slopes : DataFrame, Series, list of str or str, optional
            Columns of ``X`` that also get a random slope per group (the columns
            themselves, as returned by ``generate_regression``, or their names).
        target_name : str
            Name for the target (defaults to ``y.name`` or ``"y"``).
        dataset_name : str
            A label shown in reports and logs.
        random : str, optional
            The random-effect terms in lme4's syntax, e.g.
            ``"(1 + days | subject) + (1 | item)"`` (slopes are columns of ``X``); their
            grouping columns must be in ``groups``. Default: the one-factor shorthand
            (``groups`` and ``slopes``), or a random intercept per grouping column.
        split_by : str or list of str, optional
            The grouping column(s) whose levels the outer test folds hold new; default the
            first. ``["subject", "item"]``: new subjects and new items in every test fold.
        task : {"classification", "regression"}, optional
            What ``y`` is. Default: inferred from ``y`` when the run starts — two values (0/1,
            a bool, two labels) or text labels make a classification, other numbers a
            regression. ``"regression"`` runs a 0/1 target as numbers (a linear probability
            model); ``"classification"`` a numeric target of whole-number classes.
        positive_class : str, int, float or bool, optional
            For a target of two classes, the class whose probability is predicted (a label of
            ``y``: ``"Y"``, ``1``); default the larger label.

        Raises
        ------
        SpecTypeError, SpecError
            Naming ``X``, ``y``, ``groups``, ``slopes``, ``random`` or ``split_by``: wrong
            types, different lengths, NaN or infinite values, non-numeric features, a single
            group, a random part that cannot be read or names a column not in ``groups``.
            Naming ``task``: not one of the two, or a classification of a continuous ``y``
            or of one class. Naming ``positive_class``: not a label of ``y``, set for more
            than two classes or for a regression.

        Examples
        --------
        >>> import pandas as pd
        >>> X = pd.DataFrame({"age": [31, 45, 27, 52, 38, 29]})
        >>> use = pd.Series(["Y", "N", "Y", "N", "N", "Y"], name="use")
        >>> cv = CrossValidation().set_data(X, use, positive_class="Y")
        >>> CrossValidation().set_data(X, use, positive_class="yes")
        Traceback (most recent call last):
        ...
        mixcv_core.errors.SpecError: positive_class: 'yes' is not a label of the target; its labels are 'N', 'Y'
        """
        if not isinstance(target_name, str):
            raise SpecTypeError("target_name", f"expected a string, got {target_name!r}")
        if not isinstance(dataset_name, str):
            raise SpecTypeError("dataset_name", f"expected a string, got {dataset_name!r}")
        if target_name:
            if isinstance(y, pd.Series):
                y = y.rename(target_name)
            elif isinstance(y, (np.ndarray, list, tuple)):
                y = pd.Series(np.asarray(y), index=X.index if isinstance(X, pd.DataFrame) else None,
                              name=target_name)
        # Check values now (NaNs, dtypes, a single group), not at perform().
        with _as_arguments():
            several = several_groups(X, groups)
            if several is not None:
                X = X.drop(columns=[c for c in several.columns if c in X.columns])
                groups = None
            frame, data = assemble_frame(X, y, groups, slopes)
            group_cols: str | tuple[str, ...] | None = data.groups
            if several is not None:
                frame = attach_groups(frame, several)
                group_cols = tuple(str(c) for c in several.columns)
            data = DataSpec(target=data.target, groups=group_cols, slopes=data.slopes, features=data.features,
                            dataset_name=dataset_name, random=random,
                            split_by=(split_by,) if isinstance(split_by, str) else tuple(split_by or ()))
            prepare_data(data, frame)
            positive_class = check_task_fields(task, positive_class)
            # The task and positive class against y now, not at perform(): labels called a
            # regression, a continuous y called a classification, a positive class that is
            # not one of y's labels.
            if task == "regression":
                check_target_type(frame[data.target], data.target)
            _, positive = settle_task(frame[data.target], data.target, task, positive_class)
        self._frame, self._data = frame, data
        # What the spec gets: the task as given (None: inferred when the run starts) and the
        # positive class as y's own label (a "1" given for 0/1 is 1).
        self._task, self._positive_class = task, positive if positive_class is not None else None
        return self

    # -- splits ------------------------------------------------------------------------
    def set_splits(self, split_out: str | Splitter | Iterable[tuple[Any, Any]] = "KFold",
                   split_in: str | Splitter = "KFold",
                   n_splits_out: int = 5, n_splits_in: int = 5, scale_out: bool = True, scale_in: bool = True,
                   break_cross_val: bool = False,
                   metrics: Mapping[str, Callable[..., float]] | list[str] | None = None,
                   n_repeats: int = 1, known_holdout: float = 0.0) -> CrossValidation:
        """Choose the outer and inner splits and the evaluation metrics.

        Parameters
        ----------
        split_out, split_in : str or splitter
            ``"KFold"``, ``"StratifiedKFold"``, ``"GroupKFold"``, ``"StratifiedGroupKFold"``,
            any scikit-learn splitter, or (outer only) an iterable of (train, test) indices.
        n_splits_out, n_splits_in : int
            Folds of named methods (>= 2).
        scale_out, scale_in : bool
            Standardise features on each training fold.
        break_cross_val : bool
            Fit the first outer fold only, for debugging (flexcv's switch); every split is
            still made and checked, and the report says it is not an estimate.
        metrics : dict or list, optional
            ``{name: f(y_true, y_pred)}`` or metric names; default r2, mse, mae.
        n_repeats : int, default=1
            Repeat the outer split this many times, reshuffled each time (group methods
            reassign groups to folds): repeated (group) K-fold. Results get a ``repeat``
            column; summaries and comparisons use every fold of every repeat.
        known_holdout : float, default=0
            Also hold out this fraction of each group's rows from every outer training
            fold, and score them as ``known_<metric>``: performance for groups the model
            has seen (new rows of known participants), next to ``test_<metric>`` for
            groups it has not (with a group split). Neither set reaches the inner loop.
        """
        # flexcv's CrossValMethod members are their names; an iterable of (train, test)
        # pairs becomes FixedSplits inside SplitSpec.
        split_out = split_out.value if isinstance(split_out, CrossValMethod) else split_out
        split_in = split_in.value if isinstance(split_in, CrossValMethod) else split_in
        self._outer = SplitSpec(split_out, n_splits_out, scale_out, n_repeats, known_holdout,  # type: ignore[arg-type]
                                _field="outer")
        self._inner = SplitSpec(split_in, n_splits_in, scale_in, _field="inner")
        self._metrics = None if metrics is None else resolve_metrics(metrics)
        self._break_cross_val = check("break_cross_val", break_cross_val)
        return self

    def set_inner_cv(self, n_trials: int = 100, objective_scorer: Callable[..., float] | None = None,
                     trial_batch: int = 1) -> CrossValidation:
        """Set the tuning budget (Optuna trials per model and outer fold) and objective.

        ``objective_scorer(y_valid, y_pred_valid, y_train, y_pred_train) -> float`` (or the
        two-argument form) is minimised; the default is validation MSE. ``trial_batch``:
        trials asked at once and evaluated side by side on a task's idle cores
        (`TuningSpec.batch`); the results depend on it, never on ``n_jobs``.
        """
        with _as_arguments():
            self._tuning = TuningSpec(n_trials=n_trials, objective_scorer=objective_scorer, batch=trial_batch)
        return self

    # -- models ------------------------------------------------------------------------
    def add_model(self, model_class: type | str, requires_inner_cv: bool = False, model_name: str = "",
                  post_processor: object | None = None, params: Mapping[str, Any] | None = None,
                  callbacks: Iterable[Any] | None = None, model_kwargs: Mapping[str, Any] | None = None,
                  fit_kwargs: Mapping[str, Any] | None = None, add_merf: bool = False,
                  **kwargs: Any) -> CrossValidation:
        """Add a model (flexcv's arguments, in flexcv's order).

        Parameters
        ----------
        model_class : class or str
            An estimator class (not an instance) or a registered name/dotted path.
        requires_inner_cv : bool
            Tune ``params`` in the inner loop. As in flexcv, giving ``params`` turns it on.
        model_name : str
            Row label in the results (default: the class name).
        post_processor : class or callable, optional
            ``f(model, feature_names) -> DataFrame`` run after each outer fit, or flexcv's
            ``__call__(results_all_folds, fold_result, features, run)``
            (see `mixcv_core.model_postprocessing`).
        params : dict of optuna distributions
            The search space.
        callbacks : list, optional
            Training callbacks for the outer fit (flexcv's ``callbacks``, e.g. XGBoost's or
            LightGBM's), passed as the estimator's ``callbacks`` parameter or to its ``fit``.
        model_kwargs, fit_kwargs : dict
            Fixed constructor and ``fit`` arguments.
        add_merf : bool
            Also fit ``MERF(<model_name>)`` around this model.
        **kwargs
            flexcv's other model-config keys (``n_jobs_model``, ``n_jobs_cv``, ``n_trials``...),
            accepted and left to mixcv's own settings (`mixcv_core.model_mapping`).

        Raises
        ------
        SpecError
            Naming the argument: an unknown keyword, a parameter the estimator does not
            take, a name already used.
        """
        unknown = sorted(set(kwargs) - IGNORED_KEYS)
        if unknown:
            raise SpecError(unknown[0], f"add_model() takes no argument {unknown[0]!r}; flexcv's config keys it "
                                        f"accepts (and leaves to mixcv's settings) are {sorted(IGNORED_KEYS)}")
        if not isinstance(model_name, str):
            raise SpecTypeError("model_name", f"expected a string, got {model_name!r}")
        if not model_name:
            model_name = model_class if isinstance(model_class, str) else getattr(model_class, "__name__", "")
            model_name = str(model_name).rpartition(".")[2]
        # flexcv tunes a model given a search space even without requires_inner_cv=True.
        # (Only a real False is turned into True: any other value reaches the spec, whose rule refuses it.)
        tune = True if requires_inner_cv is False and isinstance(params, Mapping) and params else requires_inner_cv
        spec = ModelSpec(name=model_name or "model", estimator=model_class, params=params or {},
                         requires_inner_cv=tune, model_kwargs=model_kwargs or {},
                         fit_kwargs=fit_kwargs or {}, add_merf=add_merf, post_processor=post_processor,
                         callbacks=() if callbacks is None else callbacks)  # type: ignore[arg-type]
        if any(m.name == spec.name for m in self._models):
            raise SpecError("model_name", f"a model named {spec.name!r} was already added; "
                                          "give this one another model_name")
        if requires_inner_cv and not spec.params:
            warnings.warn(f"add_model({spec.name!r}): requires_inner_cv=True but no params to tune; the model is "
                          "fitted with its defaults (pass params={name: optuna distribution})", UserWarning,
                          stacklevel=2)
        self._models.append(spec)
        return self

    def set_models(self, mapping: Mapping[str, Any] | str | Path | None = None,
                   yaml_path: str | Path | None = None, yaml_string: str | None = None) -> CrossValidation:
        """Add models from a flexcv-style mapping, a YAML file or YAML text (exactly one).

        As in flexcv, the models join those already added (a name given again replaces
        its model). ``mapping`` may itself be YAML text or a path to a ``.yaml`` file.
        See `mixcv_core.model_mapping` for the format.

        Raises
        ------
        SpecError
            None or more than one of the three given (naming them), an empty mapping, or
            invalid settings (naming the model and key).
        """
        given = {k: v for k, v in (("mapping", mapping), ("yaml_path", yaml_path), ("yaml_string", yaml_string))
                 if v is not None}
        if len(given) != 1:
            raise SpecError("mapping", "give exactly one of mapping, yaml_path or yaml_string; got "
                                       + (", ".join(given) or "none"))
        if yaml_path is not None and not isinstance(yaml_path, (str, Path)):
            raise SpecTypeError("yaml_path", f"expected a path, got {type(yaml_path).__name__}")
        if yaml_string is not None and not isinstance(yaml_string, str):
            raise SpecTypeError("yaml_string", f"expected YAML text, got {type(yaml_string).__name__}")
        if yaml_path is not None:
            path = Path(yaml_path)
            if not path.is_file():
                raise SpecError("yaml_path", f"no file {str(path)!r}")
            source: Mapping[str, Any] | str | Path = path
        else:
            source = yaml_string if yaml_string is not None else mapping  # type: ignore[assignment]
        new = mapping_to_model_specs(source)
        names = {m.name for m in new}
        self._models = [m for m in self._models if m.name not in names] + new
        return self

    def set_lmer(self, predict_known_groups_lmm: bool = True) -> CrossValidation:
        """Whether mixed models use random effects for test rows of groups seen in training."""
        self._predict_known_groups_lmm = check("predict_known_groups_lmm", predict_known_groups_lmm)
        return self

    def set_merf(self, add_merf_global: bool = False, em_max_iterations: int = 100,
                 em_stopping_threshold: float | None = None, em_stopping_window: int | None = 2,
                 linear_fixed_effects: bool = True, em_estimators: int | None = 50) -> CrossValidation:
        """MERF settings: add ``MERF(<name>)`` to every model, EM iterations and early stopping.

        Parameters
        ----------
        add_merf_global : bool
            Also fit ``MERF(<name>)`` around every model.
        em_max_iterations : int
            EM iterations at most; a fit that reaches it before it converges is reported
            as not converged. The EM stops when it converges: its variance parameters,
            BLUPs and GLL per row settled for ``em_stopping_window`` iterations (see
            `mixcv_core.models.merf.DEFAULT_TOL`).
        em_stopping_threshold, em_stopping_window : float or None, int or None
            An early stop (default None: none): end the EM when the relative change of
            the GLL stays below the threshold for the window; a fit stopped so before it
            converged is reported as "stopped early", not converged.
        linear_fixed_effects : bool
            A linear fixed part estimated by GLS inside the EM (default): random effects
            with mean zero, and new groups predicted by the whole fixed part. False gives
            merf 1.0's algorithm.
        em_estimators : int or None
            Trees of a forest during the EM iterations (default 50; a forest no larger: a
            quarter of its trees, if that is at least 5); the full forest is fitted once at
            the end. None: the full forest at every iteration.
        """
        self._merf = MerfSpec(add_merf_global=add_merf_global, max_iterations=em_max_iterations,
                              stopping_threshold=em_stopping_threshold, stopping_window=em_stopping_window,
                              linear_fixed_effects=linear_fixed_effects, em_estimators=em_estimators)
        return self

    def set_run(self, run: Any = None, diagnostics: bool = False, random_seed: int = 42, n_jobs: int = 1,
                observers: Iterable[Observer | Callable[[Event], None]] = (),
                store: RunStore | str | Path | bool | None = None, save_models: bool = False,
                on_error: str = "keep", timeout: float | None = None, backend: str = "local",
                scheduler: str | None = None) -> CrossValidation:
        """Seed, parallelism and where to report the run.

        Parameters
        ----------
        run : optional
            A Neptune run (the run is mirrored there and left open), or any observer
            (an object with ``on_event``), e.g. `mixcv_core.mirrors.MlflowMirror`.
        random_seed : int
            Seeds splits, Optuna samplers and estimators' ``random_state``.
        n_jobs : int
            Outer folds run this many at a time (-1: all cores), in worker processes and,
            for mixcv's and scikit-learn's models without a timeout, this process as
            one of them; results do not depend on it.
        observers : iterable
            Extra observers receiving the run's events.
        store : RunStore, path, bool or None
            Where the run is recorded fold by fold (`mixcv_core.store`): ``None`` the
            default (``$MIXCV_STORE`` or ``./.mixcv``), ``False`` nowhere.
        save_models : bool
            Also store the fitted models.
        on_error : {"keep", "raise"}
            ``"keep"`` (default): a fit that raises is recorded as a failed fold and the
            run goes on; ``"raise"``: the run stops with that error, for debugging.
        timeout : float, optional
            Seconds one model may take on one outer fold (tuning included; a MERF
            variant has its own clock); a fit
            still running then is stopped and its fold recorded as failed, "timed
            out". Folds then run in worker processes, even with ``n_jobs=1``.
        diagnostics : bool
            flexcv's switch for extended diagnostic plots: a Neptune run passed as ``run``
            also gets every figure of the results (folds, per-fold scores, predictions,
            errors by group, random effects), not only the EM convergence.
        backend : {"local", "dask"}
            ``"local"`` (default): this process, or ``n_jobs`` at a time: worker processes,
            this one among them for mixcv's and scikit-learn's models without a timeout.
            ``"dask"``: a Dask cluster (``pip install 'mixcv[dask]'``) — a local one with
            ``n_jobs`` worker processes, or the running one at ``scheduler``. Results are
            the same on every backend.
        scheduler : str, optional
            A Dask scheduler's address, e.g. ``"tcp://10.0.0.5:8786"`` (with
            ``backend="dask"``); its workers need mixcv and the models' libraries.
        """
        self._seed = check("seed", random_seed, field="random_seed")
        self._diagnostics = Boolean().check(diagnostics, "diagnostics")   # a tracking option, not in the spec
        self._n_jobs = check("n_jobs", n_jobs)
        self._on_error = check("on_error", on_error)
        self._timeout = check("timeout", timeout)
        self._backend = check("backend", backend)
        self._scheduler = check("scheduler", scheduler)
        check_execution(self._backend, self._scheduler, self._timeout)
        if self._backend == "dask":
            from .run.cluster import require_distributed
            require_distributed()
        _run_observer(run, self._diagnostics, build=False)   # refuse a bad run now, not at perform()
        self._run = run
        self._observers = list(observers)
        resolve_store(store)  # refuse a bad store argument now, not after the run
        self._store, self._save_models = store, bool(save_models)
        return self

    # -- running -----------------------------------------------------------------------
    def to_spec(self) -> ExperimentSpec:
        """The `ExperimentSpec` recorded so far (validated)."""
        if self._data is None:
            raise SpecError("data", "no data; call set_data(X, y, groups, slopes) first")
        if not self._models:
            raise SpecError("models", "no models to evaluate; call add_model(...) or set_models(...)")
        return ExperimentSpec(
            data=self._data, models=tuple(self._models), outer=self._outer, inner=self._inner,
            tuning=self._tuning, merf=self._merf,
            metrics=self._metrics if self._metrics is not None else TASK_DEFAULTS,   # the task's defaults
            predict_known_groups_lmm=self._predict_known_groups_lmm, seed=self._seed, n_jobs=self._n_jobs,
            on_error=self._on_error, timeout=self._timeout, break_cross_val=self._break_cross_val,
            backend=self._backend, scheduler=self._scheduler, task=self._task, positive_class=self._positive_class,
        )

    def _all_observers(self) -> list[Observer | Callable[[Event], None]]:
        observers = list(self._observers)
        mirror = _run_observer(self._run, self._diagnostics)
        if mirror is not None:
            observers.append(mirror)
        return observers

    def validate(self) -> ExperimentSpec:
        """Check everything (spec, data, every split) without fitting anything."""
        spec = self.to_spec()
        assert self._frame is not None  # to_spec refuses a builder without data
        plan_experiment(spec, self._frame)
        return spec

    def perform(self, observers: Iterable[Observer | Callable[[Event], None]] = ()) -> CrossValidation:
        """Run the cross validation; the results are then in `get_results`.

        An interrupted run (Ctrl-C) keeps the folds that finished.
        """
        spec = self.to_spec()
        assert self._frame is not None  # to_spec refuses a builder without data
        self._results = run(spec, self._frame, observers=[*self._all_observers(), *observers],
                            store=self._store, save_models=self._save_models)
        return self

    @staticmethod
    def resume(store: RunStore | str | Path, run_id: str, frame: pd.DataFrame,
               observers: Iterable[Observer | Callable[[Event], None]] = (), n_jobs: int | None = None,
               backend: str | None = None, scheduler: str | None = None) -> Results:
        """Finish an interrupted stored run: fit only what it lacks, into the same stored run.

        Parameters
        ----------
        store : RunStore or path
            The run store that holds the run.
        run_id : str
            Its id (``RunStore.runs()``, ``%mixcv runs``); a unique prefix will do.
        frame : DataFrame
            The data it ran on, with its target, groups and feature columns (for a run made
            with ``set_data(X, y, groups)``: ``X.assign(**{y.name: y, groups.name: groups})``).
        observers : iterable
            Receive the resumed part's events.
        n_jobs, backend, scheduler : optional
            Run the rest another way than the run began (e.g. on a Dask cluster); by
            default as it began. What the run estimates cannot change.

        Returns
        -------
        Results
            The same as an uninterrupted run would have given (the settings, the target and
            every split are checked against the stored run first).
        """
        the_store = resolve_store(store)
        if the_store is None:
            raise SpecError("store", "resuming needs the run store that holds the run")
        stored = the_store.load(run_id, models=False)   # resolves a prefix; its settings are the run's
        assert stored.run_id is not None
        given = {"n_jobs": n_jobs, "backend": backend, "scheduler": scheduler}
        how: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if backend == "local" and scheduler is None:
            how["scheduler"] = None   # a run begun on a cluster finished on this machine
        spec = stored.spec.replace(**how) if how else stored.spec
        return run(spec, frame, observers=observers, store=the_store, resume=stored.run_id)

    def get_results(self) -> Results:
        """The `Results` of the last `perform`.

        Raises
        ------
        NotPerformedError
            A `RuntimeError` (as in flexcv) before ``perform()``.
        """
        if self._results is None:
            raise NotPerformedError("results", "nothing has been run yet; call perform() first")
        return self._results

    @property
    def results(self) -> Results:
        """The `Results` of the last `perform` (as `get_results`)."""
        return self.get_results()

    def __repr__(self) -> str:
        models = ", ".join(m.name for m in self._models) or "no models"
        rows = "no data" if self._frame is None else f"{len(self._frame)} rows"
        return f"<CrossValidation: {rows}; {models}; outer {self._outer.method}, inner {self._inner.method}>"


def _run_observer(run: Any, diagnostics: bool, build: bool = True) -> Observer | Callable[[Event], None] | None:
    """The observer for ``set_run(run=...)``: the run itself when it is one (an object with
    ``on_event``), a Neptune mirror around a Neptune run (the seed's ``set_run(run=neptune_run)``).
    With ``build=False`` only checks ``run`` (no mirror is made)."""
    if run is None:
        return None
    if callable(getattr(run, "on_event", None)):
        return run
    if type(run).__module__.split(".")[0] == "neptune":
        if not build:
            return None
        from .tracking.mirrors import NeptuneMirror
        return NeptuneMirror(run=run, diagnostics=diagnostics)
    raise SpecTypeError("run", f"expected a Neptune run or an observer with on_event, got {type(run).__name__}")
