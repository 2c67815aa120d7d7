"""Form <-> spec: the panels' controls read into an `ExperimentSpec`, and filled from one.

The form is a view of the spec: `to_spec` and `show_spec` are inverse (the hypothesis round
trip spec -> form -> spec in the tests), and every problem is raised as the spec's own
`MixcvError`, naming the field, for the form to show next to the control.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.distributions import BaseDistribution

from mixcv_core import MixcvError
from mixcv_core.experiment.cell import param_text, parse_param
from mixcv_core.experiment.registry import estimator_name, import_dotted
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.metrics import METRICS

from ._controls import show_message
from ._models import POST, ModelCard

if TYPE_CHECKING:
    from ._data import DataPanel
    from ._form import Configurator

__all__ = ["check_showable", "data_spec", "model_spec", "show_spec", "to_spec"]


def model_spec(card: ModelCard) -> ModelSpec:
    """The card as a `ModelSpec`; errors name the offending control, also next to its row."""
    params, fixed = {}, {}
    for row in card.rows:
        show_message(row.message, "")
    for row in card.rows:
        name = row.name.value.strip()
        if not name:
            show_message(row.message, "parameter: name the parameter")
            raise MixcvError(f"models[{card.label!r}]", "a parameter has no name")
        try:
            value = parse_param(row.value.value, name)
        except MixcvError as exc:
            show_message(row.message, f"{name}: {exc.message}")
            raise MixcvError(f"models[{card.label!r}].params[{name!r}]", exc.message) from None
        if name in params or name in fixed:
            show_message(row.message, f"{name}: given twice")
            raise MixcvError(f"models[{card.label!r}].params", f"{name!r} is given twice")
        if isinstance(value, BaseDistribution):   # a range: tuned in the inner loop
            params[name] = value
        else:
            fixed[name] = value
    fit = parse_param(card.fit.value) if card.fit.value.strip() else {}
    if not isinstance(fit, dict):
        raise MixcvError(f"models[{card.label!r}].fit_kwargs", "must be written as {name: value}")
    tune = card.tune.value if params else card.tune_without_ranges
    return ModelSpec(name=card.label, estimator=card.estimator.value.strip(), params=params,
                     model_kwargs=fixed, requires_inner_cv=tune, fit_kwargs=fit,
                     add_merf=card.merf.value, post_processor=card.post.value or None)


def data_spec(data: DataPanel, frame: str) -> DataSpec:
    """The data part of the form, on the DataFrame named ``frame`` (raises the first problem)."""
    factors = data.factors()
    features = None if data.all_features.value else tuple(data.features.value)
    return DataSpec(target=data.target.value, groups=factors[0] if len(factors) == 1 else (factors or None),
                    slopes=tuple(data.slopes.value), features=features, frame=frame,
                    dataset_name=data.dataset_name.value, random=data.random.value.strip() or None,
                    split_by=tuple(data.split_by.value))


def to_spec(form: Configurator) -> ExperimentSpec:
    """The experiment the form describes (raises the first problem as a `MixcvError`)."""
    models = [model_spec(c) for c in form.models.cards if c.enabled.value]
    data = data_spec(form.data, form.frame_name)
    splits, tuning, run = form.splits, form.tuning, form.run_options
    objective = None
    if tuning.objective.value.strip():
        objective = import_dotted(tuning.objective.value.strip(), "tuning.objective_scorer")
    threshold = parse_param(tuning.merf_threshold.value) if tuning.merf_threshold.value.strip() else None
    window = parse_param(tuning.merf_window.value) if tuning.merf_window.value.strip() else None
    em_estimators = (parse_param(tuning.merf_em_estimators.value) if tuning.merf_em_estimators.value.strip()
                     else None)
    timeout = parse_param(run.timeout.value, "timeout") if run.timeout.value.strip() else None
    scheduler = (run.scheduler.value.strip() or None) if run.backend.value == "dask" else None
    return ExperimentSpec(
        data=data, models=tuple(models),
        outer=SplitSpec(splits.outer.value, splits.outer_k.value, splits.scale_outer.value, splits.repeats.value,
                        splits.known_holdout.value, _field="outer"),
        inner=SplitSpec(splits.inner.value, splits.inner_k.value, splits.scale_inner.value, _field="inner"),
        tuning=TuningSpec(tuning.trials.value, objective, tuning.tuning_metric.value or None,
                          batch=tuning.trial_batch.value),
        merf=MerfSpec(tuning.merf_all.value, tuning.merf_iter.value, threshold, window, tuning.merf_linear.value,
                      em_estimators),
        metrics=list(tuning.metrics.value) or [],
        predict_known_groups_lmm=splits.predict_known.value, seed=run.seed.value, n_jobs=run.n_jobs.value,
        on_error=run.on_error.value, timeout=timeout, break_cross_val=run.break_cv.value,
        backend=run.backend.value, scheduler=scheduler,
        task=None if form.data.task.value == "auto" else form.data.task.value,
        positive_class=form.data.positive_class.value)


def check_showable(spec: ExperimentSpec) -> None:
    """Refuse, before any control changes, what the form has no control for: a custom metric."""
    for name in spec.metrics:
        if METRICS.get(name) is not spec.metrics[name]:
            raise MixcvError("metrics", f"custom metric {name!r} cannot be shown in the form")


def show_spec(form: Configurator, spec: ExperimentSpec) -> None:
    """Fill every control of ``form`` from ``spec``, in the order the choices depend on each other
    (the target before its task's metrics, the first factor before the others, the factors
    before the split's). The form's checks wait until the caller asks for them."""
    data, splits, tuning, run = form.data, form.splits, form.tuning, form.run_options
    d = spec.data
    data.dataset_name.value = d.dataset_name
    data.target.value = d.target
    data.task.value = spec.task or "auto"
    form._sync_task()
    data.choose_positive_class(spec.positive_class)
    factors = d.group_columns
    data.groups.value = factors[0] if factors else None
    data.more_groups.value, data.split_by.value = [], []
    data.slopes.value, data.features.value = (), ()
    data.sync_roles()   # offers the columns other than target and groups as more factors
    data.more_groups.value = list(factors[1:])
    data.sync_roles()   # ...and the factors, now all known, as split factors
    data.split_by.value = list(d.split_by)
    data.random.value = d.random or ""
    data.forget_prefill()
    splits.split_note.value = ""
    data.slopes.value = tuple(d.slopes)
    data.all_features.value = d.features is None
    data.features.value = tuple(data.features.options if d.features is None else d.features)
    splits.outer.value, splits.outer_k.value, splits.scale_outer.value = (spec.outer.method, spec.outer.n_splits,
                                                                          spec.outer.scale)
    splits.inner.value, splits.inner_k.value, splits.scale_inner.value = (spec.inner.method, spec.inner.n_splits,
                                                                          spec.inner.scale)
    splits.repeats.value, splits.known_holdout.value = spec.outer.n_repeats, spec.outer.known_holdout
    run.break_cv.value = spec.break_cross_val
    splits.predict_known.value = spec.predict_known_groups_lmm
    tuning.trials.value = spec.tuning.n_trials
    tuning.trial_batch.value = spec.tuning.batch
    obj = spec.tuning.objective_scorer
    tuning.objective.value = "" if obj is None else f"{obj.__module__}.{obj.__qualname__}"
    tuning.offer_metrics(form.effective_task(), keep=tuple(spec.metrics))
    tuning.offer_tuning_metric(spec.tuning.metric or "")
    m = spec.merf
    tuning.merf_all.value, tuning.merf_iter.value = m.add_merf_global, m.max_iterations
    tuning.merf_threshold.value = "" if m.stopping_threshold is None else repr(m.stopping_threshold)
    tuning.merf_window.value = "" if m.stopping_window is None else str(m.stopping_window)
    tuning.merf_linear.value = m.linear_fixed_effects
    tuning.merf_em_estimators.value = "" if m.em_estimators is None else str(m.em_estimators)
    run.seed.value, run.n_jobs.value = spec.seed, spec.n_jobs
    run.on_error.value = spec.on_error
    run.timeout.value = "" if spec.timeout is None else f"{spec.timeout:g}"
    run.backend.value, run.scheduler.value = spec.backend, spec.scheduler or ""
    for card in form.models.cards:
        card.enabled.value = False
    order = []
    for model in spec.models:
        est_name = estimator_name(model.estimator)  # type: ignore[arg-type]
        card = form.models.card(model.name) or form.models.add(model.name, est_name)
        show_model(card, model, est_name)
        order.append(card)
    # Enabled models first, in the spec's order (the order of result rows).
    form.models.put_first(order)


def show_model(card: ModelCard, model: ModelSpec, est_name: str) -> None:
    """Fill ``card`` from ``model`` (whose estimator is named ``est_name``) and enable it."""
    card.estimator.value = est_name
    card.enabled.value = True
    card.merf.value = model.add_merf
    card.tune.value = model.requires_inner_cv if model.params else True
    card.tune_without_ranges = model.requires_inner_cv and not model.params
    pp = model.post_processor
    card.post.value = pp.__name__ if pp is not None and pp.__name__ in POST else ""
    if pp is not None and pp.__name__ not in POST:
        raise MixcvError(f"models[{model.name!r}].post_processor",
                         "a custom post-processor cannot be shown in the form")
    card.fit.value = param_text(dict(model.fit_kwargs)) if model.fit_kwargs else ""
    card.rows = []
    for k, v in model.model_kwargs.items():
        card.add_param(k, param_text(v), notify=False)
    for k, dist in model.params.items():
        card.add_param(k, param_text(dist), notify=False)
    card.rows_box.children = [r.box for r in card.rows]
    card.show_details()
