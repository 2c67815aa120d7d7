"""Hypothesis strategies for specs the %%mixcv cell and the form can express."""

from __future__ import annotations

import re

import optuna.distributions as od
from hypothesis import strategies as st

from mixcv_core.errors import SpecError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec

names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
plain_str = st.from_regex(r"[A-Za-z_][A-Za-z0-9_ .-]{0,8}", fullmatch=True).filter(lambda s: s.strip() == s)
scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.booleans(), st.none(), plain_str, st.sampled_from(["10", "true", "null", "1e-3", "a: b"]))


@st.composite
def distributions(draw):
    kind = draw(st.sampled_from(["int", "float", "cat"]))
    if kind == "int":
        log = draw(st.booleans())
        low = draw(st.integers(1 if log else -100, 100))
        step = 1 if log else draw(st.integers(1, 5))
        return od.IntDistribution(low, low + step * draw(st.integers(0, 20)), log=log, step=step)
    if kind == "float":
        log = draw(st.booleans())
        low = draw(st.floats(1e-8, 1e3) if log else st.floats(-1e3, 1e3))
        high = low + draw(st.floats(0, 1e3))
        return od.FloatDistribution(low, high, log=log)
    choices = draw(st.lists(st.one_of(st.integers(-50, 50), st.booleans(), st.none(), plain_str,
                                      st.floats(-10, 10, allow_nan=False)), min_size=1, max_size=4, unique_by=repr))
    return od.CategoricalDistribution(choices)


ESTIMATORS = {"Ridge": ["alpha", "tol", "max_iter", "solver", "positive"],
              "RandomForestRegressor": ["n_estimators", "max_depth", "min_samples_leaf", "max_features", "criterion"],
              "LinearMixedEffectsModel": ["reml", "method"]}


@st.composite
def model_specs(draw, name):
    est = draw(st.sampled_from(list(ESTIMATORS)))
    pnames = draw(st.lists(st.sampled_from(ESTIMATORS[est]), unique=True, max_size=4))
    split = draw(st.integers(0, len(pnames)))
    params = {p: draw(distributions()) for p in pnames[:split]}
    fixed = {p: draw(scalars) for p in pnames[split:]}
    tune, merf = (draw(st.booleans()) if draw(st.booleans()) else None), draw(st.booleans())
    # A value the estimator itself refuses (max_iter=0, solver='x') is refused by the spec;
    # such parameters are dropped, so every spec drawn is one a user could run.
    while True:
        try:
            return ModelSpec(name=name, estimator=est, params=params, model_kwargs=fixed,
                             requires_inner_cv=bool(params) if tune is None else tune, add_merf=merf)
        except SpecError as exc:
            bad = re.search(r"\['(\w+)'\]$", exc.field)
            if bad is None or "is not a value" not in exc.message:
                raise
            params.pop(bad.group(1), None)
            fixed.pop(bad.group(1), None)


@st.composite
def experiment_specs(draw):
    cols = draw(st.lists(names, min_size=3, max_size=6, unique=True))
    target, groups, *features = cols
    slopes = tuple(draw(st.lists(st.sampled_from(features), unique=True, max_size=2)))
    use_features = draw(st.booleans())
    data = DataSpec(target, groups, slopes, tuple(features) if use_features else None, frame=draw(names),
                    dataset_name=draw(st.one_of(st.just(""), plain_str)))
    methods = ["KFold", "StratifiedKFold", "GroupKFold", "StratifiedGroupKFold"]
    model_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    metrics = draw(st.one_of(st.none(), st.lists(st.sampled_from(["r2", "mse", "mae", "rmse", "medae"]),
                                                 min_size=1, unique=True)))
    return ExperimentSpec(
        data=data, models=tuple(draw(model_specs(n)) for n in model_names),
        outer=SplitSpec(draw(st.sampled_from(methods)), draw(st.integers(2, 10)), draw(st.booleans()),
                        draw(st.integers(1, 5)),
                        0.0 if groups is None else draw(st.one_of(st.just(0.0), st.floats(1e-6, 0.5))),
                        _field="outer"),
        inner=SplitSpec(draw(st.sampled_from(methods)), draw(st.integers(2, 10)), draw(st.booleans()), _field="inner"),
        tuning=TuningSpec(draw(st.integers(1, 1000)), batch=draw(st.integers(1, 8))),
        merf=MerfSpec(draw(st.booleans()), draw(st.integers(1, 500)),
                      draw(st.one_of(st.none(), st.floats(1e-12, 1.0))), draw(st.one_of(st.none(), st.integers(1, 9))),
                      draw(st.booleans()), draw(st.one_of(st.none(), st.integers(1, 500)))),
        metrics=metrics, predict_known_groups_lmm=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)), n_jobs=draw(st.sampled_from([1, 2, -1, 8])),
        on_error=draw(st.sampled_from(["keep", "raise"])),
        break_cross_val=draw(st.booleans()), **draw(executions()))


@st.composite
def executions(draw) -> dict:
    """Where a run goes: this machine (with or without a time limit) or a Dask cluster, local or by address."""
    backend = draw(st.sampled_from(["local", "dask"]))
    if backend == "local":
        return {"backend": "local", "timeout": draw(st.sampled_from([None, 0.5, 90, 3600.0]))}
    scheduler = draw(st.one_of(st.none(), st.builds("{}://{}:{}".format, st.sampled_from(["tcp", "tls"]),
                                                     st.sampled_from(["10.0.0.5", "scheduler.lab", "[::1]"]),
                                                     st.integers(1, 65535))))
    return {"backend": "dask", "scheduler": scheduler}




@st.composite
def several_factor_specs(draw):
    """Specs with two grouping factors: an lme4 random part (or an intercept per factor) and a split by factor.

    Models that fit one factor are left out: the spec refuses them a random part with several
    factors. MERF variants (which take any random part) are drawn.
    """
    cols = draw(st.lists(names, min_size=4, max_size=6, unique=True))
    target, g1, g2, *features = cols
    f = features[0]
    random = draw(st.sampled_from([None, f"(1 + {f} | {g1}) + (1 | {g2})", f"(1 | {g1}/{g2})",
                                   f"({f} || {g1}) + (1 | {g2})", f"(1 | {g1}) + (1 | {g1}:{g2})"]))
    split_by = draw(st.sampled_from([(), (g1,), (g2,), (g1, g2), (g2, g1)]))
    use_features = draw(st.booleans())
    data = DataSpec(target, (g1, g2), features=tuple(features) if use_features else None, frame=draw(names),
                    random=random, split_by=split_by)
    model_names = draw(st.lists(names, min_size=1, max_size=2, unique=True))
    models = tuple(ModelSpec(name=n, estimator=draw(st.sampled_from(["LinearMixedEffectsModel", "Ridge"])),
                             add_merf=draw(st.booleans()))
                   for n in model_names)
    return ExperimentSpec(data=data, models=models,
                          outer=SplitSpec("GroupKFold", draw(st.integers(2, 10)), _field="outer"),
                          seed=draw(st.integers(0, 2**32 - 1)))
