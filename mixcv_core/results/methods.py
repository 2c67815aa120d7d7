"""The methods paragraph of a run, written from the run itself: `methods_sentences`, `render_methods`.

A reviewer checks the methods section hardest: which factor a test fold holds out, whether
tuning saw the test fold, how many fits converged, which test compared the models. This
module writes it from data only — the spec the run was made with and what the run store
keeps (rows, group levels, folds, the ``converged`` column, completed trials, the software
versions recorded when the run started) — so a run reloaded from the store is described
exactly as one still in memory, and nothing is said that the run did not do (no tuning
sentence without tuning, no MERF citation without MERF).

Each sentence is a `Sentence`: a topic (for tests and for readers of the parts) and a tuple
of parts — plain text, `Code` (a user's name: a column, a model, a parameter value) and
`Cite` (keys of `REFERENCES`). `render_methods` writes the parts as plain text, Markdown,
LaTeX or HTML, escaping user strings for each; citations are data (`REFERENCES`: key,
short form, full reference, BibTeX), so a paper's bibliography is one `bibtex` call away.
"""

from __future__ import annotations

import html
import importlib.metadata
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna.distributions as od

from ..errors import SpecError
from ..experiment.registry import dotted_path, is_unresolved
from ..experiment.spec import ExperimentSpec, ModelSpec, SplitSpec, merf_name
from ..experiment.splits import SHUFFLE_FIXED_IN, FixedSplits
from ..metrics import METRIC_INFO, metric_label
from ..models import GeneralizedLinearMixedModel, GPBoostRegressor, LinearMixedEffectsModel, is_mixed
from .factors import plural

if TYPE_CHECKING:
    from ._run import RunView

__all__ = ["Reference", "REFERENCES", "Code", "Cite", "Sentence", "FORMATS", "methods_sentences",
           "render_methods", "cited_keys", "bibtex", "software_versions"]

#: What `render_methods` writes.
FORMATS = ("text", "markdown", "latex", "html")


@dataclass(frozen=True)
class Reference:
    """One work the methods paragraph may cite."""

    key: str        # the BibTeX key (``\\cite{key}`` in LaTeX)
    short: str      # how the text cites it: "Pedregosa et al. 2011"
    text: str       # the full reference, for a reference list
    bibtex: str


def _ref(key: str, short: str, text: str, kind: str, **fields: str) -> Reference:
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items())
    return Reference(key, short, text, f"@{kind}{{{key},\n{body}\n}}")


#: Every citation the paragraph can make, by key: the data `bibtex` and the reference lists are written from.
REFERENCES: dict[str, Reference] = {r.key: r for r in (
    _ref("pedregosa2011", "Pedregosa et al. 2011",
         "Pedregosa, F., Varoquaux, G., Gramfort, A., et al. (2011). Scikit-learn: Machine learning in Python. "
         "Journal of Machine Learning Research, 12, 2825-2830.",
         "article", author="Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and "
                           "Grisel, O. and Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and "
                           "Vanderplas, J. and Passos, A. and Cournapeau, D. and Brucher, M. and Perrot, M. and "
                           "Duchesnay, E.",
         title="Scikit-learn: Machine Learning in {P}ython", journal="Journal of Machine Learning Research",
         volume="12", pages="2825--2830", year="2011"),
    _ref("akiba2019", "Akiba et al. 2019",
         "Akiba, T., Sano, S., Yanase, T., Ohta, T., & Koyama, M. (2019). Optuna: A next-generation hyperparameter "
         "optimization framework. Proceedings of the 25th ACM SIGKDD International Conference on Knowledge "
         "Discovery & Data Mining, 2623-2631. https://doi.org/10.1145/3292500.3330701",
         "inproceedings", author="Akiba, Takuya and Sano, Shotaro and Yanase, Toshihiko and Ohta, Takeru and "
                                 "Koyama, Masanori",
         title="Optuna: A Next-generation Hyperparameter Optimization Framework",
         booktitle="Proceedings of the 25th ACM SIGKDD International Conference on Knowledge Discovery \\& "
                   "Data Mining", pages="2623--2631", year="2019", doi="10.1145/3292500.3330701"),
    _ref("bates2015", "Bates et al. 2015",
         "Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models using lme4. "
         "Journal of Statistical Software, 67(1), 1-48. https://doi.org/10.18637/jss.v067.i01",
         "article", author="Bates, Douglas and M{\\\"a}chler, Martin and Bolker, Ben and Walker, Steve",
         title="Fitting Linear Mixed-Effects Models Using {lme4}", journal="Journal of Statistical Software",
         volume="67", number="1", pages="1--48", year="2015", doi="10.18637/jss.v067.i01"),
    _ref("hajjem2014", "Hajjem et al. 2014",
         "Hajjem, A., Bellavance, F., & Larocque, D. (2014). Mixed-effects random forest for clustered data. "
         "Journal of Statistical Computation and Simulation, 84(6), 1313-1328. "
         "https://doi.org/10.1080/00949655.2012.741599",
         "article", author="Hajjem, Ahlem and Bellavance, Fran{\\c{c}}ois and Larocque, Denis",
         title="Mixed-effects random forest for clustered data",
         journal="Journal of Statistical Computation and Simulation", volume="84", number="6",
         pages="1313--1328", year="2014", doi="10.1080/00949655.2012.741599"),
    _ref("pellagatti2021", "Pellagatti et al. 2021",
         "Pellagatti, M., Masci, C., Ieva, F., & Paganoni, A. M. (2021). Generalized mixed-effects random forest: "
         "A flexible approach to predict university student dropout. Statistical Analysis and Data Mining, "
         "14(3), 241-257. https://doi.org/10.1002/sam.11505",
         "article", author="Pellagatti, Massimo and Masci, Chiara and Ieva, Francesca and Paganoni, Anna M.",
         title="Generalized mixed-effects random forest: A flexible approach to predict university student dropout",
         journal="Statistical Analysis and Data Mining", volume="14", number="3", pages="241--257", year="2021",
         doi="10.1002/sam.11505"),
    _ref("nadeau2003", "Nadeau & Bengio 2003",
         "Nadeau, C., & Bengio, Y. (2003). Inference for the generalization error. Machine Learning, 52(3), "
         "239-281. https://doi.org/10.1023/A:1024068626366",
         "article", author="Nadeau, Claude and Bengio, Yoshua", title="Inference for the Generalization Error",
         journal="Machine Learning", volume="52", number="3", pages="239--281", year="2003",
         doi="10.1023/A:1024068626366"),
    _ref("bouckaert2004", "Bouckaert & Frank 2004",
         "Bouckaert, R. R., & Frank, E. (2004). Evaluating the replicability of significance tests for comparing "
         "learning algorithms. Advances in Knowledge Discovery and Data Mining (PAKDD 2004), LNCS 3056, 3-12. "
         "https://doi.org/10.1007/978-3-540-24775-3_3",
         "inproceedings", author="Bouckaert, Remco R. and Frank, Eibe",
         title="Evaluating the Replicability of Significance Tests for Comparing Learning Algorithms",
         booktitle="Advances in Knowledge Discovery and Data Mining (PAKDD 2004)", series="LNCS",
         volume="3056", pages="3--12", year="2004", doi="10.1007/978-3-540-24775-3_3"),
    _ref("holm1979", "Holm 1979",
         "Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of "
         "Statistics, 6(2), 65-70.",
         "article", author="Holm, Sture", title="A Simple Sequentially Rejective Multiple Test Procedure",
         journal="Scandinavian Journal of Statistics", volume="6", number="2", pages="65--70", year="1979"),
    _ref("sigrist2022", "Sigrist 2022",
         "Sigrist, F. (2022). Gaussian process boosting. Journal of Machine Learning Research, 23(232), 1-46.",
         "article", author="Sigrist, Fabio", title="Gaussian Process Boosting",
         journal="Journal of Machine Learning Research", volume="23", number="232", pages="1--46", year="2022"),
)}


# -- the parts of a sentence ------------------------------------------------------------------
@dataclass(frozen=True)
class Code:
    """A name or value that came from the user (column, model, parameter): shown as code, escaped."""

    text: str


@dataclass(frozen=True)
class Cite:
    """A parenthetical citation of one or more `REFERENCES` keys."""

    keys: tuple[str, ...]


Part = str | Code | Cite


@dataclass(frozen=True)
class Sentence:
    """One sentence of the paragraph: its topic and its parts (text, `Code`, `Cite`).

    Topics: ``data``, ``outer``, ``meaning``, ``known``, ``inner``, ``scaling``, ``tuning``,
    ``search_space``, ``models``, ``lmm``, ``glmm``, ``gpboost``, ``merf``, ``metrics``,
    ``comparison``, ``seeds``, ``status``, ``failures``, ``software``.
    """

    topic: str
    parts: tuple[Part, ...]
    #: For `Sentence`s about one model: its result name.
    model: str | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return _render_parts(self.parts, "text")


# -- software ---------------------------------------------------------------------------------
#: Distribution names of the libraries a run always uses.
_CORE_SOFTWARE = ("mixcv", "scikit-learn", "optuna", "numpy", "scipy", "pandas")
#: Top-level modules whose distribution has another name.
_DISTRIBUTION = {"sklearn": "scikit-learn", "mixcv_core": "mixcv"}


def software_versions(spec: ExperimentSpec) -> dict[str, str]:
    """The versions of the libraries ``spec`` runs on, as installed now (recorded when a run starts).

    mixcv, scikit-learn, Optuna, numpy, scipy and pandas always; statsmodels for an LMM on its
    statsmodels backend; the package of every model from outside scikit-learn and mixcv
    (gpboost, xgboost...). A package whose version cannot be read is left out.
    """
    names = list(_CORE_SOFTWARE)
    for m in spec.models:
        top = _module(m).split(".")[0]
        names.append(_DISTRIBUTION.get(top, top))
        backend = m.model_kwargs.get("backend")
        if is_mixed(m.estimator) and (backend == "statsmodels" or "backend" in m.params):
            names.append("statsmodels")
    out = {}
    for name in dict.fromkeys(names):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


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
    if "predict_known_groups" not in settings:
        known = spec.predict_known_groups_lmm
    new = ("the marginal mean over the random-effect distribution" if kind == "glmm"
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
            how: list[Part] = (["mixcv's solver of lme4's profiled criterion ", Cite(("bates2015",))] if native
                               else ["statsmodels' ", Code("MixedLM")])
            out.append(Sentence("lmm", (
                Code(m.name), " was a linear mixed model with random part ", Code(random), ", fitted by ", crit,
                " with ", *how, _known_levels(spec, s, "lmm"),
                *_converged_clause(results, m.name, "the optimum was certified (gradient and Hessian checked)" if native
                                   else "statsmodels reported convergence"), "."),
                model=m.name))
        elif issubclass(cls, GPBoostRegressor):
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


def _software_sentence(results: RunView, software: Mapping[str, str]) -> Sentence:
    spec = results.spec
    if not software:
        return Sentence("software", ("The software versions were not recorded with this run (it was stored by an "
                                     "earlier mixcv).",))
    cites = {"scikit-learn": ("pedregosa2011",), "gpboost": ("sigrist2022",)}
    tuned = any(m.tunes for m in spec.models)
    if tuned:
        cites["optuna"] = ("akiba2019",)
    shown = [name for name in software if name != "mixcv" and (name != "optuna" or tuned)]
    items: list[list[Part]] = []
    for name in shown:
        item: list[Part] = [f"{name} {software[name]}"]
        if name in cites:
            item += [" ", Cite(cites[name])]
        items.append(item)
    head = f"mixcv {software['mixcv']}" if "mixcv" in software else "mixcv"
    return Sentence("software", (f"The analysis was run with {head} (Python) on ", *_join(items), "."))


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


#: Paragraph breaks: a new paragraph starts at these topics.
_PARAGRAPHS = ("data", "models", "metrics", "software")


def cited_keys(sentences: Sequence[Sentence]) -> list[str]:
    """The `REFERENCES` keys the sentences cite, in order of first citation."""
    keys = [k for s in sentences for p in s.parts if isinstance(p, Cite) for k in p.keys]
    return list(dict.fromkeys(keys))


def bibtex(keys: Iterable[str]) -> str:
    """The BibTeX entries of ``keys`` (`REFERENCES`), one after the other."""
    return "\n\n".join(REFERENCES[k].bibtex for k in keys) + "\n"


# -- rendering -----------------------------------------------------------------------------
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  # Typeset as ¡ ¿ and an em dash in LaTeX's default OT1 encoding.
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# Characters our own sentences use that LaTeX's default font encoding cannot typeset as text.
_LATEX_TEXT = {"²": r"\textsuperscript{2}", "−": "--", "–": "--", "×": r"$\times$", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    """``text`` with every LaTeX special character escaped (user strings cannot inject commands)."""
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_TEXT.get(ch, ch)) for ch in text)


def _markdown_code(text: str) -> str:
    # A backtick inside code needs a longer fence, and a space when it starts or ends the text.
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def _render_part(p: Part, fmt: str) -> str:
    if isinstance(p, Cite):
        if fmt == "latex":
            return r"\cite{" + ",".join(p.keys) + "}"
        return "(" + "; ".join(REFERENCES[k].short for k in p.keys) + ")"
    if isinstance(p, Code):
        return {"text": p.text, "markdown": _markdown_code(p.text),
                "latex": r"\texttt{" + latex_escape(p.text) + "}",
                "html": f"<code>{html.escape(p.text)}</code>"}[fmt]
    return {"text": p, "markdown": _MARKDOWN_SPECIAL.sub(r"\\\1", p), "latex": latex_escape(p),
            "html": html.escape(p)}[fmt]


def _render_parts(parts: Iterable[Part], fmt: str) -> str:
    return "".join(_render_part(p, fmt) for p in parts)


def render_methods(sentences: Sequence[Sentence], fmt: str = "text", references: bool = True) -> str:
    """The sentences as paragraphs in ``fmt`` (`FORMATS`), then the references cited.

    ``text`` and ``markdown`` end with the reference list; ``latex`` cites with ``\\cite{key}``
    (the entries: `bibtex`); ``html`` is a ``<div>`` of ``<p>``s and a list.
    """
    if fmt not in FORMATS:
        raise SpecError("format", f"expected one of {', '.join(map(repr, FORMATS))}, got {fmt!r}")
    paragraphs: list[list[str]] = []
    for s in sentences:
        if not paragraphs or s.topic in _PARAGRAPHS and paragraphs[-1]:
            paragraphs.append([])
        paragraphs[-1].append(_render_parts(s.parts, fmt))
    keys = cited_keys(sentences) if references else []
    if fmt == "html":
        body = "".join(f"<p>{' '.join(p)}</p>" for p in paragraphs)
        refs = ("<p><b>References</b></p><ul>" + "".join(f"<li>{html.escape(REFERENCES[k].text)}</li>"
                                                          for k in keys) + "</ul>") if keys else ""
        return f'<div class="mixcv-methods">{body}{refs}</div>'
    text = "\n\n".join(" ".join(p) for p in paragraphs)
    if not keys or fmt == "latex":
        return text + "\n"
    if fmt == "markdown":
        refs = "\n".join("- " + _render_part(REFERENCES[k].text, "markdown") for k in keys)
        return f"{text}\n\n**References**\n\n{refs}\n"
    refs = "\n".join(REFERENCES[k].text for k in keys)
    return f"{text}\n\nReferences\n{refs}\n"
