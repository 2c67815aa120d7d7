"""The methods paragraph of a run, written from the run itself: `methods_sentences`.

A reviewer checks the methods section hardest: which factor a test fold holds out, whether
tuning saw the test fold, how many fits converged, which test compared the models. This
module writes it from data only — the spec the run was made with and what the run store
keeps (rows, group levels, folds, the ``converged`` column, completed trials, the software
versions recorded when the run started) — so a run reloaded from the store is described
exactly as one still in memory, and nothing is said that the run did not do (no tuning
sentence without tuning, no MERF citation without MERF).

The sentences are data (`prose.Sentence`: a topic and parts, user strings marked as
`prose.Code`, citations as `prose.Cite` of `citations.REFERENCES` keys); `prose.render_methods`
writes them as text, Markdown, LaTeX or HTML.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from ..experiment.registry import dotted_path, is_unresolved
from ..experiment.spec import ExperimentSpec, ModelSpec, SplitSpec, merf_name
from ..experiment.splits import SHUFFLE_FIXED_IN, FixedSplits
from ..metrics import METRIC_INFO, metric_label
from ..models import GeneralizedLinearMixedModel, GPBoostClassifier, GPBoostRegressor, LinearMixedEffectsModel, is_mixed
from .factors import plural
from .prose import Cite, Code, Part, Sentence

#: GPBoost's adapters: boosting with grouped random effects, for a continuous or a binary outcome.
_GPBOOST = (GPBoostRegressor, GPBoostClassifier)

if TYPE_CHECKING:
    import optuna.distributions as od

    from ._run import RunView

__all__ = ["methods_sentences", "software_versions", "recorded_software"]


# -- software ---------------------------------------------------------------------------------
#: Distribution names of the libraries a run always uses.
_CORE_SOFTWARE = ("mixcv", "scikit-learn", "optuna", "numpy", "scipy", "pandas")
#: Top-level modules whose distribution has another name.
_DISTRIBUTION = {"sklearn": "scikit-learn", "mixcv_core": "mixcv"}


def software_versions(spec: ExperimentSpec) -> dict[str, str]:
    """The versions of the libraries ``spec`` runs on, as installed now (recorded when a run starts).

    Python, mixcv, scikit-learn, Optuna, numpy, scipy and pandas always; statsmodels for an LMM on its
    statsmodels backend; the package of every model from outside scikit-learn and mixcv
    (gpboost, xgboost...). A package whose version cannot be read is left out.
    """
    names = list(_CORE_SOFTWARE)
    for m in spec.models:
        top = _module(m).split(".")[0]
        names.append(_DISTRIBUTION.get(top, top))
        if not is_unresolved(m.estimator) and issubclass(m.estimator_class, _GPBOOST):
            names.append("gpboost")   # mixcv's wrapper; the boosting and the random effects are GPBoost's
        backend = m.model_kwargs.get("backend")
        if is_mixed(m.estimator) and (backend == "statsmodels" or "backend" in m.params):
            names.append("statsmodels")
    out = {"python": platform.python_version()}
    for name in dict.fromkeys(names):
        version = _installed_version(name)
        if version is not None:
            out[name] = version
    return out


@cache
def _installed_version(name: str) -> str | None:
    # Read once per process (a run reads them twice: its stored record, its Results). A package
    # upgraded since stays at the version first read, the one this process imported and runs on.
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    # The Version field of the metadata's header, read as text: `dist.version` parses the whole
    # file as an e-mail message first (a millisecond a package, the README included).
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    header = text.split("\n\n", 1)[0]
    found = _VERSION_FIELD.search(header)
    return found.group(1) if found else dist.version


#: Core metadata's Version field (packaging.python.org, "Core metadata specifications").
_VERSION_FIELD = re.compile(r"^Version:[ \t]*(\S+)[ \t]*\r?$", re.MULTILINE)


# -- building the sentences ------------------------------------------------------------------
def _module(m: ModelSpec) -> str:
    return dotted_path(m.estimator_class).rpartition(".")[0]


def _num(v: Any) -> str:
    """A number as a paper writes it: ints plain, floats in their shortest form."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return str(v) if isinstance(v, int) else f"{v:g}"


def _join(items: Sequence[Sequence[Part]], last: str = "and") -> list[Part]:
    """Part lists joined as English: ``a``, ``a and b``, ``a, b and c``."""
    out: list[Part] = []
    for i, item in enumerate(items):
        if i:
            out.append(f" {last} " if i == len(items) - 1 else ", ")
        out.extend(item)
    return out


def _codes(names: Iterable[str], last: str = "and") -> list[Part]:
    return _join([[Code(str(n))] for n in names], last)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural(noun)}"


def _factor_levels(results: RunView) -> dict[str, int]:
    """Each grouping column's number of levels, from the stored labels."""
    d = results._data
    if d.group_frame is not None:
        return {str(c): int(d.group_frame[c].nunique()) for c in d.group_frame.columns}
    if d.groups is not None:
        import pandas as pd
        return {str(d.groups_name or results.spec.data.group_columns[0]): int(pd.unique(d.groups).size)}
    return {}


def _class_shuffle_works(software: Mapping[str, str]) -> bool:
    """Whether the scikit-learn the run used shuffled a class-stratified group split (>= 1.8)."""
    version = software.get("scikit-learn")
    if version is None:
        from ..experiment.splits import group_shuffle_works
        return group_shuffle_works()
    numbers = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    return numbers >= SHUFFLE_FIXED_IN


def _split_phrase(split: SplitSpec, spec: ExperimentSpec, level: str, software: Mapping[str, str],
                  n_folds: int) -> list[Part]:
    """``a group 5-fold split by `subject` (...)``: the method, k, repeats and how it shuffles."""
    classify = spec.task == "classification"
    factors = spec.data.split_factors
    seed = (f"seed {spec.seed}" if level == "outer"
            else f"seeds derived from {spec.seed} and the outer fold")
    if not split.is_named:
        if isinstance(split.method, FixedSplits):
            return [f"{n_folds} fixed train/test index pairs given by the user"]
        return ["a user-supplied splitter, ", Code(type(split.method).__name__), f", giving {n_folds} folds"]
    k, r = split.n_splits, split.n_repeats
    method = str(split.method)
    repeats = f", repeated {r} times" if r > 1 else ""
    if len(factors) > 1 and method == "GroupKFold":
        return [f"a crossed group {k}-fold split (", Code("CrossedGroupKFold"), ") holding out new levels of ",
                *_codes(factors), f" at once{repeats}, levels dealt to folds at random ({seed})"]
    by = [" by ", *_codes(factors)] if split.requires_groups else []
    if method == "KFold":
        return [f"a {k}-fold split of the rows (", Code("KFold"), f"){repeats}, shuffled ({seed})"]
    if method == "StratifiedKFold":
        what = "the classes" if classify else "the target's quantile bins (up to 10)"
        return [f"a stratified {k}-fold split (", Code("StratifiedKFold"), f"){repeats} balancing {what} across "
                f"folds, shuffled ({seed})"]
    if method == "GroupKFold":
        if r > 1:
            return [f"a group {k}-fold split (", Code("GroupKFold"), ")", *by, f"{repeats}, the levels dealt to "
                    f"folds anew at random in each repeat ({seed})"]
        return [f"a group {k}-fold split (", Code("GroupKFold"), ")", *by, ", with scikit-learn's deterministic "
                "assignment of levels to folds balanced by size (not shuffled)"]
    # StratifiedGroupKFold
    what = "the classes" if classify else "the target's quantile bins (up to 10)"
    shuffled = not classify or r > 1 or _class_shuffle_works(software)
    how = f"shuffled ({seed})" if shuffled else "not shuffled (the shuffle of this scikit-learn version is broken)"
    return [f"a stratified group {k}-fold split (", Code("StratifiedGroupKFold"), ")", *by, f"{repeats} balancing "
            f"{what} across folds, {how}"]


def _data_sentences(results: RunView) -> list[Sentence]:
    spec, d = results.spec, results._data
    levels = _factor_levels(results)
    parts: list[Part] = [f"The data held {len(d.y)} rows"]
    if levels:
        parts += [" with ", *_join([[f"{n} levels of ", Code(c)] for c, n in levels.items()])]
    parts += ["; the target was ", Code(str(d.target_name))]
    if spec.task == "classification":
        n_classes = len(d.classes) or None
        if spec.positive_class is not None:
            parts += [" (binary classification: the models predicted the probability of the class ",
                      Code(repr(spec.positive_class)), ")"]
        else:
            parts += [f" (classification of {n_classes or 'several'} classes: the models predicted the "
                      "probability of each)"]
    else:
        parts.append(" (regression)")
    n_feat = len(d.feature_names)
    parts += [f", predicted from {_count(n_feat, 'feature')}", *([": ", *_codes(d.feature_names)]
                                                                     if 0 < n_feat <= 12 else []), "."]
    return [Sentence("data", tuple(parts))]


def _design_sentences(results: RunView, software: Mapping[str, str]) -> list[Sentence]:
    spec = results.spec
    out: list[Sentence] = []
    n_outer = len(results._outer)
    outer = _split_phrase(spec.outer, spec, "outer", software, n_outer)
    out.append(Sentence("outer", ("Performance was estimated by nested cross-validation. The outer loop was ", *outer,
                                  f", giving {_count(n_outer, 'outer fold')}.")))
    groups = spec.data.group_columns
    factors = spec.data.split_factors
    if spec.outer.requires_groups and factors:
        recur = [c for c in groups if c not in factors]
        per = " per repeat" if spec.outer.n_repeats > 1 else ""
        parts: list[Part] = ["Every level of ", *_codes(factors), f" was in the test rows of exactly one outer "
                             f"fold{per} and never in that fold's training rows, so the scores estimate performance "
                             "for new "]
        parts += _join([[plural(c)] for c in factors])
        if recur:
            parts += ["; levels of ", *_codes(recur), " recur between training and test rows"]
        parts.append(".")
        out.append(Sentence("meaning", tuple(parts)))
    elif groups:
        out.append(Sentence("meaning", ("The outer split ignored the grouping, so rows of one level of ",
                                        *_codes(groups[:1]), " could be in both training and test rows: the scores "
                                        f"estimate performance for new rows of known {plural(groups[0])}, not for "
                                        f"new {plural(groups[0])}.")))
    else:
        out.append(Sentence("meaning", ("The data had no grouping, so the scores estimate performance for new "
                                        "rows.",)))
    if spec.outer.known_holdout:
        g = groups[0]
        out.append(Sentence("known", (f"In addition, a fraction {_num(spec.outer.known_holdout)} of each ",
                                      Code(g), "'s rows was held out of every outer training fold (seeds derived from "
                                      f"{spec.seed} and the fold) and scored as a second test set, for known "
                                      f"{plural(g)}; neither the fit nor the tuning saw these rows.")))
    tuned = [m for m in spec.models if m.tunes]
    if tuned:
        inner = _split_phrase(spec.inner, spec, "inner", software, spec.inner.n_splits)
        out.append(Sentence("inner", ("Within each outer training fold, the inner loop used ", *inner, ", made on the "
                                      "outer training rows only, so tuning never saw the outer test fold.")))
    scaled = [name for name, s in (("outer", spec.outer), ("inner", spec.inner)) if s.scale and (name == "outer"
                                                                                                  or tuned)]
    if scaled:
        out.append(Sentence("scaling", ("Features were standardised on each training part (",
                                        " and ".join(scaled) + " folds) and the scaler applied unchanged to its "
                                        "held-out rows.",)))
    return out


def _distribution(dist: od.BaseDistribution) -> list[Part]:
    import optuna.distributions as od  # only a tuned run has distributions; import mixcv_core stays light
    if isinstance(dist, od.CategoricalDistribution):
        return ["one of ", *_codes([repr(c) for c in dist.choices], "or")]
    if isinstance(dist, od.IntDistribution):
        text = f"integers from {dist.low} to {dist.high}"
        if dist.log:
            text += " on a log scale"
        elif dist.step != 1:
            text += f" in steps of {dist.step}"
        return [text]
    if isinstance(dist, od.FloatDistribution):
        if dist.log:
            return [f"log-uniform on [{_num(dist.low)}, {_num(dist.high)}]"]
        if dist.step is not None:
            return [f"from {_num(dist.low)} to {_num(dist.high)} in steps of {_num(dist.step)}"]
        return [f"uniform on [{_num(dist.low)}, {_num(dist.high)}]"]
    return [Code(repr(dist))]


def _trial_counts(results: RunView, model: str) -> tuple[int, int]:
    """(completed trials, studies) of one model, from the run's Optuna studies."""
    import optuna
    studies = [s for (name, _), s in results.studies.items() if name == model]
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for s in studies for t in s.trials)
    return done, len(studies)


def _tuning_sentences(results: RunView) -> list[Sentence]:
    spec = results.spec
    tuned = [m for m in spec.models if m.tunes]
    if not tuned:
        return []
    metric = spec.tuning_metric
    if metric is None:
        scorer = spec.tuning.objective_scorer
        assert scorer is not None   # no built-in metric: the user's scorer
        objective: list[Part] = ["the user's objective ", Code(dotted_path(scorer)),
                                 ", minimised"]
    else:
        direction = "maximised" if METRIC_INFO[metric].greater_is_better else "minimised"
        objective = ["the ", *_metric(metric), f" ({direction})"]
    n = spec.tuning.n_trials
    out = [Sentence("tuning", (
        "Hyperparameters were tuned with Optuna's TPE sampler ", Cite(("akiba2019",)),
        f": {n} trials per model and outer fold (one sampler per model and fold, seeded from {spec.seed}), each "
        f"scored by ", *objective, f" averaged over the {spec.inner.n_splits} inner validation folds; the best "
        "parameters were then refitted on the whole outer training fold",
        *(["; each MERF variant reused its base model's tuned parameters"] if any(
            m in spec.merf_models() for m in tuned) else []), "."))]
    for m in tuned:
        space = _join([[Code(k), ": ", *_distribution(d)] for k, d in m.params.items()], "and")
        done, studies = _trial_counts(results, m.name)
        planned = n * studies
        count = (f" ({done} of {planned} trials completed)" if studies and done < planned else "")
        out.append(Sentence("search_space", ("The search space of ", Code(m.name), " was ", *space, count, "."),
                            model=m.name))
    return out


def _metric(name: str) -> list[Part]:
    label = metric_label(name)
    return [label] if label != name else [Code(name)]


def _settings(m: ModelSpec) -> list[Part]:
    fixed = [[Code(f"{k}={v!r}")] for k, v in m.model_kwargs.items()]
    fit = [[Code(f"{k}={v!r}")] for k, v in m.fit_kwargs.items()]
    parts: list[Part] = []
    if fixed:
        parts += [" with ", *_join(fixed)]
    else:
        parts.append(" with its default settings")
    if m.tunes:
        parts += ["; ", *_codes(m.params), " tuned"]
    if fit:
        parts += ["; fitted with ", *_join(fit)]
    return parts


def _library(m: ModelSpec) -> str:
    top = _module(m).split(".")[0]
    return {"sklearn": "scikit-learn's", "mixcv_core": "mixcv's"}.get(top, f"{top}'s")


def _defaults(m: ModelSpec) -> dict[str, Any]:
    """The estimator's settings as the run built it: its defaults, then the fixed ones."""
    cls = m.estimator_class
    try:
        base = cls().get_params(deep=False)
    except Exception:  # noqa: BLE001 - an estimator that cannot be built bare: its fixed settings only
        base = {}
    return {**base, **m.model_kwargs}


def _convergence(results: RunView, name: str) -> tuple[int, int]:
    """(converged, fits that said) of one model's outer fits, from the stored ``converged`` column."""
    flags = [o.converged for o in results.outcomes if o.model == name and o.ok and o.converged is not None]
    return sum(bool(f) for f in flags), len(flags)


def _converged_clause(results: RunView, name: str, what: str) -> list[Part]:
    ok, n = _convergence(results, name)
    if not n:
        return []
    return [f"; {what} in {ok} of {n} outer fits"]


def _random_part(spec: ExperimentSpec) -> str:
    text = spec.data.random_terms_text
    if text is not None:
        return text
    from ..models.mixed.terms import format_name
    slopes = "".join(f" + {format_name(s)}" for s in spec.data.slopes)
    return f"(1{slopes} | {format_name(str(spec.data.groups))})"


def _known_levels(spec: ExperimentSpec, settings: Mapping[str, Any], kind: str) -> str:
    known = settings.get("predict_known_groups", spec.predict_known_groups_lmm)
    # Every mixed model of a classification (GLMM, GPBoost's Bernoulli likelihood, binary MERF)
    # gives a new level the marginal probability, not the plug-in at zero.
    new = ("the marginal mean over the random-effect distribution" if kind == "glmm" or spec.task == "classification"
           else "the fixed part only (random effects of zero)")
    if known:
        return f"; rows of levels seen in training were predicted with their conditional modes, new levels with {new}"
    return f"; every row was predicted with {new}"


def _model_sentences(results: RunView) -> list[Sentence]:
    spec = results.spec
    out: list[Sentence] = []
    items = []
    for m in spec.models:
        items.append([Code(m.name), " (", _library(m), " ", Code(m.estimator_class.__name__), *_settings(m), ")"])
    seeded = [m.name for m in spec.models if not is_unresolved(m.estimator)
              and "random_state" in _defaults(m) and "random_state" not in m.model_kwargs
              and "random_state" not in m.params]
    parts: list[Part] = [f"{'The model was' if len(items) == 1 else f'The {len(items)} models were'} ", *_join(items)]
    if seeded:
        parts += ["; the ", Code("random_state"), " of ", *_codes(seeded), " was derived from the seed, the model "
                  "and the outer fold"]
    parts.append(".")
    out.append(Sentence("models", tuple(parts)))
    for m in spec.models:
        cls = m.estimator_class
        if is_unresolved(m.estimator) or not is_mixed(cls):
            continue
        s = _defaults(m)
        random = _random_part(spec)
        if issubclass(cls, GeneralizedLinearMixedModel):
            nagq = s.get("nAGQ", 1)
            approx = ("the Laplace approximation" if nagq == 1 else f"adaptive Gauss-Hermite quadrature with {nagq} "
                      "points" if nagq and nagq > 1 else "lme4's first stage only (nAGQ = 0)")
            if "nAGQ" in m.params:   # a tuned setting has no one value to state
                approx = "the Laplace approximation or adaptive Gauss-Hermite quadrature (nAGQ tuned)"
            link = s.get("link") or {"binomial": "logit", "poisson": "log"}.get(str(s.get("family")), "")
            out.append(Sentence("glmm", (
                Code(m.name), f" was a generalised linear mixed model ({s.get('family')} family, {link} link) with "
                "random part ", Code(random), ", fitted by maximum likelihood with ", approx, " as lme4's ",
                Code("glmer"), " does ", Cite(("bates2015",)), ", in mixcv's implementation",
                _known_levels(spec, s, "glmm"), *_converged_clause(results, m.name, "the optimum was certified"),
                "."), model=m.name))
        elif issubclass(cls, LinearMixedEffectsModel):
            native = s.get("backend", "native") == "native"
            crit = "restricted maximum likelihood (REML)" if s.get("reml", True) else "maximum likelihood (ML)"
            if "reml" in m.params:
                crit = "REML or ML (tuned)"
            how: list[Part] = (["mixcv's solver of lme4's profiled criterion ", Cite(("bates2015",))] if native
                               else ["statsmodels' ", Code("MixedLM")])
            out.append(Sentence("lmm", (
                Code(m.name), " was a linear mixed model with random part ", Code(random), ", fitted by ", crit,
                " with ", *how, _known_levels(spec, s, "lmm"),
                *_converged_clause(results, m.name, "the optimum was certified (gradient and Hessian checked)" if native
                                   else "statsmodels reported convergence"), "."),
                model=m.name))
        elif issubclass(cls, _GPBOOST):
            out.append(Sentence("gpboost", (
                Code(m.name), " was gradient-boosted trees with grouped random effects (GPBoost ",
                Cite(("sigrist2022",)), ") and random part ", Code(random), _known_levels(spec, s, "lmm"), "."),
                model=m.name))
    merf = spec.merf_models()
    if merf:
        mf = spec.merf
        names = [merf_name(m.name) for m in merf]
        cite = ("hajjem2014", "pellagatti2021") if spec.task == "classification" else ("hajjem2014",)
        parts = [*_codes(names), " wrapped ", "its base model" if len(merf) == 1 else "their base models",
                 " in the expectation-maximisation algorithm of the mixed-effects random forest ", Cite(cite),
                 " with random part ", Code(_random_part(spec)), f": at most {mf.max_iterations} EM iterations"]
        if mf.linear_fixed_effects:
            parts.append(", a linear fixed part estimated by generalised least squares inside the EM")
        if mf.em_estimators is not None:
            parts.append(f", forests of {mf.em_estimators} trees during the EM and the model's full forest refitted "
                         "at the end")
        if mf.stopping_threshold is not None:
            parts.append(f", and an early stop when the relative change of the generalised log-likelihood stayed "
                         f"below {_num(mf.stopping_threshold)} for {mf.stopping_window or 1} iterations")
        if spec.task == "classification":
            parts.append("; for the binary outcome the EM ran inside a penalised quasi-likelihood loop on the "
                         "logit scale (working responses and weights, binary MERF), a base classifier fitted "
                         "there as its regression counterpart with its (tuned) parameters")
        parts.append(_known_levels(spec, {}, "lmm"))
        counts = [(n, *_convergence(results, n)) for n in names]
        counts = [c for c in counts if c[2]]
        if counts:
            parts += ["; the EM converged in ", *_join([[f"{ok} of {n} outer fits of ", Code(name)]
                                                        for name, ok, n in counts])]
        parts.append(".")
        out.append(Sentence("merf", tuple(parts)))
    return out


def _evaluation_sentences(results: RunView) -> list[Sentence]:
    spec = results.spec
    metrics = list(results.metric_names)
    n = len(results._outer)
    labels = _join([_metric(m) for m in metrics])
    parts: list[Part] = ["Each model was scored on every outer test fold by ", *labels]
    if spec.task == "classification":
        parts.append(", computed from the predicted probabilities (a class predicted where its probability was "
                     "highest)")
    if "rmse" in metrics:
        parts.append("; the RMSE over folds is the square root of the mean MSE")
    parts.append(f"; we report the mean and standard deviation over the {_count(n, 'outer fold')}.")
    out = [Sentence("metrics", tuple(parts))]
    if len(results.model_names) >= 2 and n >= 2:
        out.append(Sentence("comparison", (
            "Models were compared pairwise on each metric with the corrected resampled t-test ",
            Cite(("nadeau2003",)), ", in its form for repeated k-fold cross-validation ", Cite(("bouckaert2004",)),
            ", over the outer folds both models finished (df = folds − 1), with p-values adjusted within each metric "
            "by Holm's method ", Cite(("holm1979",)), ".")))
    out.append(Sentence("seeds", (
        f"Every random choice (splits, samplers, estimators' seeds) was derived from the seed {spec.seed} and the "
        "identity of its task, so the run is reproducible and its results do not depend on parallel execution.",)))
    return out


def _status_sentences(results: RunView) -> list[Sentence]:
    spec = results.spec
    out = []
    if spec.break_cross_val:
        out.append(Sentence("status", ("Only the first outer fold was fitted (a debugging run): every estimate is "
                                       "of one fold.",)))
    planned = len(results._outer) * len(spec.model_names())
    finished = sum(o.ok for o in results.outcomes)
    if results.status != "finished":
        out.append(Sentence("status", (f"The run was {results.status}: {len(results.outcomes)} of {planned} fits "
                                       "ended, and the estimates use those.",)))
    failed = [o for o in results.outcomes if not o.ok]
    if failed:
        by_model: dict[str, int] = {}
        for o in failed:
            by_model[o.model] = by_model.get(o.model, 0) + 1
        out.append(Sentence("failures", (f"{len(failed)} of {len(results.outcomes)} fits failed and are left out of "
                                         "the estimates (", *_join([[Code(m), f": {k}"] for m, k in by_model.items()]),
                                         f"); {finished} fits are reported.")))
    return out


#: How a paper writes each distribution's name.
_DISPLAY = {"optuna": "Optuna", "numpy": "NumPy", "scipy": "SciPy", "gpboost": "GPBoost", "xgboost": "XGBoost",
            "lightgbm": "LightGBM"}


def _software_sentence(results: RunView, software: Mapping[str, str]) -> Sentence:
    spec = results.spec
    if not software:
        return Sentence("software", ("The software versions were not recorded with this run (it was stored by an "
                                     "earlier mixcv).",))
    cites = {"scikit-learn": ("pedregosa2011",), "gpboost": ("sigrist2022",)}
    tuned = any(m.tunes for m in spec.models)
    if tuned:
        cites["optuna"] = ("akiba2019",)
    # Optuna is installed with mixcv but used only to tune: named only when the run tuned.
    shown = [name for name in software if name not in ("mixcv", "python") and (name != "optuna" or tuned)]
    items: list[list[Part]] = []
    for name in shown:
        item: list[Part] = [f"{_DISPLAY.get(name, name)} {software[name]}"]
        if name in cites:
            item += [" ", Cite(cites[name])]
        items.append(item)
    head = f"mixcv {software['mixcv']}" if "mixcv" in software else "mixcv"
    python = f" on Python {software['python']}" if "python" in software else ""
    return Sentence("software", (f"The analysis was run with {head}{python}, using ", *_join(items), "."))


def recorded_software(results: RunView) -> dict[str, str]:
    """The versions recorded with the run (``{}`` for a run stored before mixcv kept them)."""
    software = getattr(results, "software", None)
    return dict(software) if software else {}


def methods_sentences(results: RunView) -> list[Sentence]:
    """The methods paragraph of a run as `Sentence`s, in the order a paper reads them.

    Built from ``results.spec``, the stored data (rows, group levels, classes), the outer
    folds, the outcomes (``converged``, failures) and the studies (completed trials), and
    the software versions recorded when the run started.
    """
    software = recorded_software(results)
    sentences = [*_data_sentences(results), *_design_sentences(results, software), *_tuning_sentences(results),
                 *_model_sentences(results), *_evaluation_sentences(results), *_status_sentences(results),
                 _software_sentence(results, software)]
    return sentences
