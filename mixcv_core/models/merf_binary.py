"""Binary MERF: mixed effects around any model of a 0/1 outcome (GMERF), by penalised quasi-likelihood.

The model (Pellagatti, Masci, Ieva & Paganoni 2021, "Generalized mixed-effects random forest: A
flexible approach to predict university student dropout", Stat. Anal. Data Min. 14:241-257, eq. 3)::

    logit P(y_i = 1 | b) = eta_i = W_i beta + f(X_i) + Z_i b,      b ~ N(0, D)

GMERF fits it by penalised quasi-likelihood (Breslow & Clayton 1993; their Algorithm 1): an outer
loop linearises the logit around the current ``eta``,

    mu = expit(eta),    z = eta + (y - mu) / (mu (1 - mu)),    w = p mu (1 - mu)

(``p`` the prior weights, ``sample_weight``), and the inner loop is today's MERF EM (`merf.MERF`)
on the working response ``z`` with precision weights ``w``: ``z = W beta + f(X) + Z b + e``,
``e_i ~ N(0, sigma^2 / w_i)``. The base model is fitted on this working (logit) scale, with
``sample_weight = w`` when its ``fit`` takes one; the GLS fixed part and the conditional modes
are weighted by ``w``. The new ``eta`` is the inner fit's conditional prediction on the training
rows; the loop stops when ``eta`` moves by less than ``outer_tol`` (root mean square over rows,
on the logit scale). With a linear base model this is exactly MASS's ``glmmPQL``: ``lme`` on
``z`` with ``method = "ML"`` and ``weights = varFixed(~1/w)``, ``sigma^2`` (the dispersion)
estimated, not fixed at 1 (tests/core/test_merf_binary.py checks it on Contraception and cbpp).
The start is ``eta = logit`` of the (weighted) mean outcome; glmmPQL starts from a GLM, the
fixed point is the same.

Cost. Each PQL iteration changes the working response, so its EM need not converge while ``eta``
still moves: PQL with a partial inner solve, warm-started from the previous iteration's random
effects and variances, has the same fixed point (Breslow & Clayton alternate single updates). So
while ``eta`` moves, an iteration runs ``EARLY_EM_STEPS`` EM steps at most, and once it has settled
the EM runs to its own tolerance; ``converged_`` needs both (``eta`` within ``outer_tol`` twice in
a row, the last EM converged). A forest that MERF's own EM would iterate on a light copy of
(`merf.em_trees`: ``em_estimators`` trees, or a quarter of a smaller forest's, with the linear part) costs
most, so it goes further, in two phases:

- *light*: one EM step per PQL iteration on that light copy, while ``eta``'s
  change still shrinks geometrically (below ``LIGHT_STALL`` times the previous one) and is above
  ``outer_tol``, leaving ``FULL_RESERVE`` of ``outer_max_iterations`` at least to the real model;
- *full*: the real base model from then on, one EM step per PQL iteration while ``eta`` moves
  and a whole EM (small forest, then the real one once, as `MERFRegressor` does) once it has
  settled. The model returned comes from the real base model, and so does every change of ``eta``
  that ``converged_`` (or the stall rule below) counts: the first full iteration's change, from
  the small forest's ``eta``, is not counted.

A forest refitted to a moving working response also keeps moving ``eta`` by its own noise: on
GPBoost's Bernoulli simulation (500 groups of 10) by 0.06-0.07 at every iteration, never twice
below ``outer_tol``, so the loop stops, not converged, once the change has gone ``outer_patience``
iterations without a new low (`DEFAULT_PATIENCE`) rather than resample that noise up to
``outer_max_iterations``.

With a 300-tree forest this took a fit on Contraception from 7.2 to about 4 CPU s (the light
phase), and on GPBoost's Bernoulli simulation from 81 to 41 (the light phase) and to 18 (the stall
rule too), with held-out log loss and AUC within the forest's own noise (tests/benchmarks/README.md,
bench_binary.py). A linear base model has no light phase, and its ``eta`` moves less at every
iteration (geometric convergence), so the stall rule never ends its fit early: the fit is the
glmmPQL one above.

Prediction (`MERFClassifier.predict_proba`): a row whose levels were all seen in training gets
``expit(eta)`` conditional on their modes; for a level not seen in training the probability is
the *marginal* one, ``E expit(eta_known + z'b_new)`` over ``b_new ~ N(0, D)``, by the
Gauss-Hermite rule the GLMM uses (`mixed.glmer.marginal_mean`): plugging in ``b_new = 0`` would
give a typical group's probability, further from 0.5 than the average new group's.

A classifier as the base model (``MERFClassifier(RandomForestClassifier(max_depth=5))``) is
replaced by its regression counterpart for the working-scale fits, its parameters carried over
(`regression_counterpart`; the table `COUNTERPARTS` is the one place that says which regressor
stands for which classifier and which parameters have no counterpart).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from sklearn.base import ClassifierMixin, clone, is_classifier
from sklearn.utils.validation import check_is_fitted

from ..constraints import Integer, Real
from ..errors import ConvergenceWarning, SpecError, SpecTypeError
from ._base import MixedEffectsRegressor, is_mixed
from .merf import DEFAULT_TOL, DEFAULT_WINDOW, MERFRegressor, _weights, em_trees
from .mixed.family import get_family
from .mixed.glmer import marginal_mean

__all__ = ["MERFClassifier", "COUNTERPARTS", "Counterpart", "regression_counterpart", "check_binary_base",
           "counterpart_note",
           "DEFAULT_OUTER_TOL", "DEFAULT_PATIENCE"]

#: The outer loop's tolerance on the root mean square change of ``eta`` (logit scale). A forest
#: refitted to a working response that moved keeps moving ``eta`` by a few hundredths whatever
#: the number of iterations: on Contraception (3/4 of each district's rows, a 300-tree forest
#: with min_samples_leaf=20) the change was 0.73, 0.13, 0.048, then between 0.019 and 0.050 for
#: iterations 4 to 30, so a tighter default would call every forest fit unconverged. 0.05 on
#: the logit scale is at most 1.25 percentage points of probability. With a linear base PQL
#: converges geometrically: pass a small ``outer_tol`` for a tight fit (the glmmPQL tests use 1e-7).
DEFAULT_OUTER_TOL = 0.05
#: PQL iterations without a new low of eta's change after which the loop stops as stalled
#: (`MERFClassifier`'s ``outer_patience``). GPBoost's Bernoulli simulation (3,160 training rows
#: in 500 groups of 10, a 300-tree forest) moves eta by 0.056-0.071 at every iteration from the
#: 5th to the 30th, never twice below outer_tol; its held-out log loss at iteration 14 or 30 is
#: the same within that noise (tests/benchmarks/README.md). With a linear base eta's change
#: falls geometrically, a new low at every iteration, so this never ends a fit that converges.
DEFAULT_PATIENCE = 5
#: EM iterations at most per PQL iteration while eta is still moving, for a base model with no
#: smaller version (see `MERFClassifier.fit`).
EARLY_EM_STEPS = 5
#: EM iterations per PQL iteration on the small forest (``em_estimators`` trees) of the light phase.
LIGHT_EM_STEPS = 1
#: The light phase ends when eta's change is above this share of the previous one: it has stopped
#: shrinking geometrically and is at the small forest's refit noise. On Contraception (300 trees,
#: em_estimators=50) the changes were 0.83, 0.18, 0.115, 0.099 (ratio 0.86: the switch).
LIGHT_STALL = 0.8
#: PQL iterations the light phase leaves to the real base model at least: the first, whose change
#: starts from the small forest's eta and is not counted, and two within outer_tol to converge.
FULL_RESERVE = DEFAULT_WINDOW + 1


@dataclass(frozen=True)
class Counterpart:
    """The regressor that fits a classifier's working-scale steps, and what of its parameters carries over.

    ``regressor``: ``"module:Class"``; ``drop``: the classifier's parameters with no meaning
    for the regressor (its split criterion, class weights, classification loss); ``carry``:
    only these are carried (None: every parameter the regressor also takes, less ``drop``);
    ``translate``: a classifier parameter turned into a regressor's, ``name -> (name, function)``.
    """

    regressor: str
    drop: tuple[str, ...] = ()
    carry: tuple[str, ...] | None = None
    translate: Mapping[str, tuple[str, Callable[[Any], Any]]] = field(default_factory=dict)


def _inverse(c: Any) -> float:
    return 1.0 / float(c)


#: Classifier (``"package:Class"``, the top-level package and the class name) -> its regression
#: counterpart. LogisticRegression -> Ridge with ``alpha = 1/C``: one PQL step of an L2-penalised
#: logistic regression is the weighted least squares ``sum w (z - x'b)^2 + ||b||^2 / C``, which is
#: Ridge's criterion with ``sample_weight = w`` and ``alpha = 1/C`` (its intercept unpenalised in
#: both); its solver, penalty and iteration settings have no Ridge meaning and are dropped.
COUNTERPARTS: dict[str, Counterpart] = {
    "sklearn:RandomForestClassifier": Counterpart("sklearn.ensemble:RandomForestRegressor",
                                                  drop=("criterion", "class_weight")),
    "sklearn:ExtraTreesClassifier": Counterpart("sklearn.ensemble:ExtraTreesRegressor",
                                                drop=("criterion", "class_weight")),
    "sklearn:GradientBoostingClassifier": Counterpart("sklearn.ensemble:GradientBoostingRegressor", drop=("loss",)),
    "sklearn:HistGradientBoostingClassifier": Counterpart("sklearn.ensemble:HistGradientBoostingRegressor",
                                                          drop=("loss", "class_weight")),
    "sklearn:DecisionTreeClassifier": Counterpart("sklearn.tree:DecisionTreeRegressor",
                                                  drop=("criterion", "class_weight")),
    "sklearn:ExtraTreeClassifier": Counterpart("sklearn.tree:ExtraTreeRegressor", drop=("criterion", "class_weight")),
    "sklearn:KNeighborsClassifier": Counterpart("sklearn.neighbors:KNeighborsRegressor"),
    "sklearn:LogisticRegression": Counterpart("sklearn.linear_model:Ridge", carry=("fit_intercept",),
                                              translate={"C": ("alpha", _inverse)}),
    "lightgbm:LGBMClassifier": Counterpart("lightgbm:LGBMRegressor", drop=("objective", "class_weight")),
    "xgboost:XGBClassifier": Counterpart("xgboost:XGBRegressor", drop=("objective", "eval_metric")),
}


def _key(cls: type) -> str:
    return f"{cls.__module__.split('.')[0]}:{cls.__name__}"


def check_binary_base(cls: type, field_name: str) -> None:
    """Refuse, naming ``field_name``, a classifier with no regression counterpart in `COUNTERPARTS`, and a
    mixed model (its random effects would compete with MERF's, and its fit needs the groups MERF keeps)."""
    if is_mixed(cls):
        raise SpecError(field_name, f"{cls.__name__} has random effects of its own; binary MERF fits a model of the "
                                    "fixed part only (a forest, boosting, a linear model). Use "
                                    f"{cls.__name__} on its own, or MERF around a classifier")
    if issubclass(cls, ClassifierMixin) and _key(cls) not in COUNTERPARTS:
        known = ", ".join(k.split(":")[1] for k in COUNTERPARTS)
        raise SpecError(field_name, f"binary MERF fits its base model on the logit scale, so a classifier needs a "
                                    f"regression counterpart; {cls.__name__} has none. Use one of {known}, or a "
                                    "regressor (e.g. RandomForestRegressor)")


def counterpart_note(cls: type) -> str:
    """One sentence for the report: which regressor fits a classifier's working-scale steps, what is left out."""
    spec = COUNTERPARTS.get(_key(cls))
    if spec is None:
        return f"{cls.__name__} is fitted on the logit scale as it is"
    target = spec.regressor.split(":")[1]
    moved = [*(f"{k} as {new}" for k, (new, _) in spec.translate.items()), *(spec.carry or ())]
    carried = ("its parameters (the tuned ones of each fold too) carried over" if spec.carry is None and not
               spec.translate else "carrying " + ", ".join(moved))
    left = f"; left out, with no regression meaning: {', '.join(spec.drop)}" if spec.drop else \
        ("; its other parameters have no regression meaning" if spec.carry is not None else "")
    return f"{cls.__name__} is fitted on the logit scale as {target}, {carried}{left}"


def regression_counterpart(model: Any, field_name: str = "fixed_effects_model") -> tuple[Any, dict[str, Any],
                                                                                          dict[str, Any]]:
    """The regressor standing for ``model`` (a classifier) on the working scale, and what was carried.

    Returns
    -------
    regressor, carried, dropped
        A new, unfitted regressor; the parameters carried over to it (after translation, by
        the regressor's names); the classifier's parameters left behind, with their values.
        A regressor (or anything not a classifier) is returned as a clone, with nothing
        carried or dropped.

    Raises
    ------
    SpecError
        Naming ``field_name``: a classifier with no counterpart.
    """
    if not is_classifier(model):
        return clone(model), {}, {}
    check_binary_base(type(model), field_name)
    spec = COUNTERPARTS[_key(type(model))]
    module, name = spec.regressor.split(":")
    target = getattr(importlib.import_module(module), name)
    accepted = set(target().get_params(deep=False))
    params = model.get_params(deep=False)
    carried: dict[str, Any] = {}
    for k, v in params.items():
        if k in spec.translate:
            new, fn = spec.translate[k]
            carried[new] = fn(v)
        elif k in accepted and k not in spec.drop and (spec.carry is None or k in spec.carry):
            carried[k] = v
    dropped = {k: v for k, v in params.items() if k not in carried and k not in spec.translate}
    return target(**carried), carried, dropped


def _light_base(reg: Any, linear: bool, em_estimators: int | None) -> tuple[Any, Any]:
    """The base model (MERF's default forest for None) and its small version for the light phase:
    a copy with as many trees as MERF's own EM iterates with (`merf.em_trees`: ``em_estimators``, or a
    quarter of a forest no larger; with the linear part only), else None."""
    from sklearn.ensemble import RandomForestRegressor
    full = RandomForestRegressor(n_estimators=300) if reg is None else reg
    small = em_trees(full.get_params().get("n_estimators"), em_estimators) if linear else None
    if small is None:
        return full, None
    return full, clone(full).set_params(n_estimators=small)


def _expit(eta: np.ndarray) -> np.ndarray:
    return np.asarray(special.expit(eta))


class MERFClassifier(ClassifierMixin, MixedEffectsRegressor):
    """Binary MERF (GMERF): penalised quasi-likelihood around `MERFRegressor`'s EM (see the module docstring).

    Parameters
    ----------
    fixed_effects_model : regressor or classifier, optional
        The model of ``f``, fitted on the logit scale. A classifier is replaced by its regression
        counterpart with its parameters (`regression_counterpart`; ``counterpart_`` and
        ``dropped_params_`` say what happened). Default: ``RandomForestRegressor(n_estimators=300)``.
    max_iterations, gll_early_stop_threshold, gll_early_stop_window, linear_fixed_effects, em_estimators, tol, random :
        The inner EM's, as for `MERFRegressor`. ``em_estimators`` also sizes the forest of the
        first PQL iterations (the light phase, module docstring).
    callback : callable, optional
        Called after every outer (PQL) iteration with ``{"iteration", "gll", "sigma2", "D",
        "eta_change"}``: the working model's GLL, dispersion and covariance at that iteration.
    predict_known_groups : bool, default=True
        False: every probability is marginal over all random effects.
    outer_max_iterations : int, default=30
        PQL iterations at most; reaching it first leaves ``converged_`` False.
    outer_tol : float, default=0.05
        Stop when the root mean square change of ``eta`` (logit scale) over the training rows
        is below this for two iterations in a row (`DEFAULT_OUTER_TOL` says why 0.05).
    outer_patience : int or None, default=5
        Stop, not converged, when ``eta``'s change (with the real base model) has not reached a
        new low for this many PQL iterations: it has stalled at the base model's own refit noise,
        above ``outer_tol``, and further iterations only resample that noise (`DEFAULT_PATIENCE`).
        None: run to ``outer_max_iterations``.

    Attributes
    ----------
    classes_ : ndarray
        The two labels of ``y``; the second is the positive class (coded 1).
    merf_ : MERFRegressor
        The last inner fit (working scale).
    converged_ : bool
        True when ``eta`` settled within ``outer_tol`` and the last inner EM converged; False
        with a `ConvergenceWarning` otherwise.
    convergence_ : str
        How the PQL loop ended: converged, stalled (``outer_patience``) or out of iterations.
    history_ : DataFrame
        One row per outer iteration: ``iteration``, ``gll``, ``sigma2``, ``D`` entries,
        ``eta_change``, ``inner_iterations``, ``inner_converged``, ``full_base`` (False for the
        light phase's iterations on a forest of ``em_estimators`` trees; module docstring).
    counterpart_ : str or None
        The regressor that stood for a classifier base, None for a regressor base.
    carried_params_, dropped_params_ : dict
        The classifier's parameters carried to the regressor (by its names) and left behind.
    weighted_base_ : bool
        Whether the base model took the working weights as ``sample_weight``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(30), 20)
    >>> x = rng.normal(size=600)
    >>> y = (rng.random(600) < 1 / (1 + np.exp(-(x + rng.normal(0, 1, 30)[g])))).astype(int)
    >>> m = MERFClassifier(LinearRegression()).fit(pd.DataFrame({"x": x}), y, groups=g)
    >>> m.predict_proba(pd.DataFrame({"x": [0.0]}), groups=[99]).shape
    (1, 2)
    """

    def __init__(self, fixed_effects_model: Any = None, max_iterations: int = 100,
                 gll_early_stop_threshold: float | None = None, gll_early_stop_window: int = DEFAULT_WINDOW,
                 callback: Callable[[dict[str, Any]], None] | None = None, predict_known_groups: bool = True,
                 linear_fixed_effects: bool = True, em_estimators: int | None = 50, tol: float | None = DEFAULT_TOL,
                 random: str | None = None, outer_max_iterations: int = 30,
                 outer_tol: float = DEFAULT_OUTER_TOL, outer_patience: int | None = DEFAULT_PATIENCE) -> None:
        self.fixed_effects_model = fixed_effects_model
        self.max_iterations = max_iterations
        self.gll_early_stop_threshold = gll_early_stop_threshold
        self.gll_early_stop_window = gll_early_stop_window
        self.callback = callback
        self.predict_known_groups = predict_known_groups
        self.linear_fixed_effects = linear_fixed_effects
        self.em_estimators = em_estimators
        self.tol = tol
        self.random = random
        self.outer_max_iterations = outer_max_iterations
        self.outer_tol = outer_tol
        self.outer_patience = outer_patience

    def _check(self, y: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray]:
        Integer(1, None).check(self.outer_max_iterations, "outer_max_iterations")
        Real(0.0, None, closed="neither").check(self.outer_tol, "outer_tol")
        Integer(1, None, none=True).check(self.outer_patience, "outer_patience")
        yv = np.asarray(y).ravel()
        classes = np.unique(yv)
        if len(classes) != 2:
            raise SpecError("y", f"binary MERF needs a target of two classes, got {len(classes)} "
                                 f"({', '.join(map(str, classes[:5]))}{'...' if len(classes) > 5 else ''})")
        self.classes_ = classes
        y01 = (yv == classes[1]).astype(float)
        if sample_weight is None:
            return y01, np.ones(len(y01))
        w = _weights(sample_weight, len(y01))
        assert w is not None
        return y01, w

    def _inner(self, base: Any, steps: int, em_estimators: int | None) -> MERFRegressor:
        """One PQL iteration's EM on the working response (no callback: the outer loop reports)."""
        return MERFRegressor(base, steps, self.gll_early_stop_threshold, self.gll_early_stop_window, None, True,
                             self.linear_fixed_effects, em_estimators, self.tol, self.random)

    def fit(self, X: Any, y: Any, groups: Any = None, slopes: Any = None,
            sample_weight: Any = None) -> MERFClassifier:
        """Fit by PQL around MERF's EM.

        Parameters
        ----------
        X, groups, slopes : as for `MERFRegressor.fit`.
        y : two classes (0/1, bool or two labels; the larger is the positive class).
        sample_weight : prior weights per row, optional (they multiply the working weights).

        Raises
        ------
        SpecError, SpecTypeError
            Before any fit, naming ``y`` (not two classes), ``fixed_effects_model`` (a
            classifier with no regression counterpart), ``outer_max_iterations``,
            ``outer_tol``, ``outer_patience``, ``sample_weight``, or what `MERFRegressor` names.
        """
        if groups is None:
            raise SpecError("groups", "MERF needs groups")
        y01, prior = self._check(y, sample_weight)
        base = self.fixed_effects_model
        if base is not None and not all(callable(getattr(base, m, None)) for m in ("fit", "predict")):
            raise SpecTypeError("fixed_effects_model", f"expected a regressor or classifier instance with fit and "
                                                       f"predict, got {base!r}")
        if base is not None:
            check_binary_base(type(base), "fixed_effects_model")
        if base is not None and is_classifier(base):
            reg, self.carried_params_, self.dropped_params_ = regression_counterpart(base)
            self.counterpart_: str | None = type(reg).__name__
        else:
            reg, self.carried_params_, self.dropped_params_, self.counterpart_ = base, {}, {}, None
        full, light = _light_base(reg, self.linear_fixed_effects, self.em_estimators)
        mean = float(np.clip(np.average(y01, weights=prior), 1e-3, 1 - 1e-3))
        eta = np.full(len(y01), np.log(mean / (1 - mean)))
        rows: list[dict[str, Any]] = []
        previous: MERFRegressor | None = None
        converged = False
        settled = 0             # consecutive outer iterations within outer_tol, with the real base model
        change = np.nan
        best, since_best = np.inf, 0     # eta's lowest change with the real base model, iterations since
        stalled = False
        # Phase "light" (a forest larger than em_estimators): while eta is far from the fixed point,
        # one warm-started EM step on the small forest per PQL iteration moves it as far as a whole
        # EM would (the next linearisation changes the working response anyway). It ends when eta
        # settles or its change stops shrinking (the small forest's own refit noise, larger than
        # the full forest's), and at the latest with FULL_RESERVE iterations left: every iteration
        # after it, and so the fit returned, uses the real base model, and the change from the
        # small forest's eta to the first real one counts neither for converged_ nor for a stall.
        phase_light = light is not None and self.outer_max_iterations > FULL_RESERVE
        from_light = False
        for it in range(1, self.outer_max_iterations + 1):
            mu = np.clip(_expit(eta), 1e-10, 1 - 1e-10)
            var = mu * (1 - mu)
            z = eta + (y01 - mu) / var
            w = prior * var
            if phase_light:
                inner = self._inner(light, LIGHT_EM_STEPS, None)
            elif settled:
                # eta has settled: the EM runs to its own convergence (small forest, then the real
                # base model once, as MERFRegressor does), so a fit called converged ends with a
                # converged EM.
                inner = self._inner(full, self.max_iterations, self.em_estimators)
            elif light is not None:
                # Near the fixed point each EM step on the small forest only resamples its noise:
                # one step with the real base model per PQL iteration (PQL alternates single
                # updates, Breslow & Clayton 1993), the same cost as the final forest a capped EM
                # would end with.
                inner = self._inner(full, 1, None)
            else:
                # A base model with no smaller version (a linear model, boosting...): a few warm-started
                # EM steps while eta still moves; the working response will change again.
                inner = self._inner(full, min(self.max_iterations, EARLY_EM_STEPS), self.em_estimators)
            with warnings.catch_warnings():
                # The inner EM's own warning would repeat per outer iteration; its state is in history_.
                warnings.simplefilter("ignore", ConvergenceWarning)
                inner.fit(X, z, groups=groups, slopes=slopes, sample_weight=w, start=previous)
            previous = inner
            new = inner.predict(X, groups=groups, slopes=slopes)
            shrinking = change  # the previous iteration's change
            change = float(np.sqrt(np.mean((new - eta) ** 2)))
            eta = new
            self.merf_ = inner
            last = inner.history_.iloc[-1]
            D = inner.merf_.D_hat_history[-1]
            row = {"iteration": it, "gll": float(last["gll"]), "sigma2": float(last["sigma2"]),
                   **{f"D[{j},{k}]": D[j, k] for j in range(len(D)) for k in range(j + 1)},
                   "eta_change": change, "inner_iterations": int(inner.merf_.n_iter_),
                   "inner_converged": bool(inner.converged_), "full_base": not phase_light}
            rows.append(row)
            if self.callback is not None:
                self.callback({"iteration": it, "gll": row["gll"], "sigma2": row["sigma2"], "D": D.copy(),
                               "eta_change": change})
            if phase_light:
                phase_light = (change >= self.outer_tol and not change > LIGHT_STALL * shrinking
                               and it < self.outer_max_iterations - FULL_RESERVE)
                from_light = not phase_light
                continue
            if from_light:
                from_light = False
                continue
            settled = settled + 1 if change < self.outer_tol else 0
            if settled >= DEFAULT_WINDOW:
                converged = True
                break
            best, since_best = (change, 0) if change < best else (best, since_best + 1)
            if self.outer_patience is not None and since_best >= self.outer_patience:
                stalled = True
                break
        self.history_ = pd.DataFrame(rows)
        self.n_iter_ = len(rows)
        self.weighted_base_ = bool(self.merf_.merf_.weighted_base_)
        inner_ok = bool(self.merf_.converged_)
        self.converged_ = converged and inner_ok
        if self.converged_:
            self.convergence_ = (f"converged at PQL iteration {self.n_iter_}: eta moved by {change:.2g} (root mean "
                                 f"square, logit scale) < outer_tol={self.outer_tol:g}; the last EM "
                                 f"{self.merf_.convergence_}")
        elif stalled:
            self.convergence_ = (f"eta stalled: its change has not fallen below its lowest, {best:.3g}, for "
                                 f"{self.outer_patience} PQL iterations (outer_patience), and was not below "
                                 f"outer_tol={self.outer_tol:g} twice in a row (the last: {change:.3g}; root mean "
                                 f"square, logit scale): the base model's refit noise sets a floor above "
                                 f"outer_tol (a larger forest lowers it; outer_patience=None runs to "
                                 f"outer_max_iterations)")
        elif converged:
            self.convergence_ = (f"eta settled at PQL iteration {self.n_iter_} but the last inner EM did not "
                                 f"converge: {self.merf_.convergence_}")
        else:
            self.convergence_ = (f"reached outer_max_iterations={self.outer_max_iterations} before eta settled: "
                                 f"the last iteration moved it by {change:.3g} (root mean square, logit scale; "
                                 f"outer_tol={self.outer_tol:g})")
        if not self.converged_:
            warnings.warn(ConvergenceWarning(f"binary MERF did not converge: {self.convergence_}"), stacklevel=2)
        self.n_features_in_ = self.merf_.merf_.n_features_in_
        return self

    # -- prediction --------------------------------------------------------------------------
    def decision_function(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """The linear predictor (logit scale): fixed part plus the modes of every known level."""
        check_is_fitted(self, "merf_")
        return self.merf_.predict(X, groups=groups if self.predict_known_groups else None, slopes=slopes)

    def predict_proba(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """``[P(classes_[0]), P(classes_[1])]`` per row: conditional on the modes of known levels,
        marginal over the random-effect distribution for levels not seen in training."""
        check_is_fitted(self, "merf_")
        eta, s2 = self.merf_.predict_parts(X, groups=groups if self.predict_known_groups else None, slopes=slopes)
        p = marginal_mean(get_family("binomial"), eta, s2)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, groups: Any = None, slopes: Any = None) -> np.ndarray:
        """The more probable class per row."""
        p = self.predict_proba(X, groups, slopes)[:, 1]
        return np.asarray(self.classes_)[(p > 0.5).astype(int)]

    # The inner fit's estimates, under the names MERFRegressor gives them (working/logit scale).
    @property
    def fe_linear_(self) -> pd.Series | None:
        return self.merf_.fe_linear_

    @property
    def random_effects_(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        return self.merf_.random_effects_

    @property
    def varcorr_(self) -> dict[str, pd.DataFrame]:
        return self.merf_.varcorr_

    @property
    def scale_(self) -> float:
        """The working model's dispersion sigma^2 (near 1 when the binomial variance fits)."""
        return self.merf_.scale_

    @property
    def trained_fe_model(self) -> Any:
        return self.merf_.trained_fe_model

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.merf_.feature_importances_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        return tags
