"""Building, fitting and predicting one estimator on one train/test split.

The single place that knows how mixcv estimators are called: scaling fitted on the
training rows only, feature names kept, mixed models given their groups and
random-slope columns, seeds injected when the user did not fix them. The inner loop
(`mixcv_core.tuning`) and the outer fold (`mixcv_core.fold`) both go through here, so
a model is fitted the same way wherever it is fitted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from .._seeding import derive_seed
from ..experiment.data import PreparedData
from ..experiment.registry import param_names
from ..experiment.spec import ExperimentSpec, ModelSpec
from ..models import is_mixed
from ..models.merf import MERFRegressor
from ..models.merf_binary import MERFClassifier
from .events import EMIteration, Event

__all__ = ["SplitData", "split_data", "fit_scaler", "build_estimator", "build_merf", "fit_estimator",
           "predict_estimator", "is_mixed", "call_scorer", "scorer_uses_train"]


@dataclass
class SplitData:
    """One train/test split, scaled on its training rows, as DataFrames with feature names."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    g_train: np.ndarray | None
    g_test: np.ndarray | None
    slope_names: list[str]
    scaler: StandardScaler | None
    # The test rows' features and those of the held-out rows of groups seen in training (the
    # outer split's known_holdout, if any), or what makes them when first read (`X_test`).
    test_features: Callable[[], tuple[pd.DataFrame, pd.DataFrame | None]] | tuple[pd.DataFrame, pd.DataFrame | None] \
        = field(default_factory=lambda: (pd.DataFrame(), None), repr=False)
    y_known: np.ndarray | None = None
    g_known: np.ndarray | None = None
    # Every grouping column (issue 25: a random part with several factors), rows as above;
    # None for the one-factor shorthand.
    G_train: pd.DataFrame | None = None
    G_test: pd.DataFrame | None = None
    G_known: pd.DataFrame | None = None

    @property
    def X_test(self) -> pd.DataFrame:
        """The test rows' features, scaled with the training rows' scaler; made when first read."""
        return self._features()[0]

    @property
    def X_known(self) -> pd.DataFrame | None:
        """The held-out known-group rows' features (None without them); made with `X_test`."""
        return self._features()[1]

    def _features(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        if callable(self.test_features):
            self.test_features = self.test_features()
        return self.test_features

    @property
    def groups_train(self) -> np.ndarray | pd.DataFrame | None:
        """What a mixed model's ``fit`` gets as ``groups``: every grouping column when there are several."""
        return self.g_train if self.G_train is None else self.G_train

    @property
    def groups_test(self) -> np.ndarray | pd.DataFrame | None:
        return self.g_test if self.G_test is None else self.G_test

    @property
    def groups_known(self) -> np.ndarray | pd.DataFrame | None:
        return self.g_known if self.G_known is None else self.G_known


def _own(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return part.copy() if np.may_share_memory(part, whole) else part


#: Bytes the scaler's fit may hold beside the fold (`fit_scaler`).
SCALER_BYTES = 16 * 2**20


def fit_scaler(X: np.ndarray) -> StandardScaler:
    """``StandardScaler(copy=False).fit(X)``, to the last bit, fitted a block of rows at a time.

    scikit-learn's fit holds ``X - mean`` and a missing-value mask of ``X``'s shape: 137 MB
    next to an 800,000-row fold's 122 MB. A fold larger than `SCALER_BYTES` of temporaries
    is read here by blocks of whole rows instead, with scikit-learn's own arithmetic
    (`_incremental_mean_and_var` from zero, the corrected two-pass variance): numpy adds the
    rows of a C-ordered array one after the other, so each block's rows are added to the
    running sums in that same order (the sums as the first row of the block) and every
    statistic equals the whole fit's to the last bit (tested). Blocks of a few columns,
    as before, were as exact but strided: they took 0.9 s of a 1M-row run's fold, against
    0.4 s for the models.
    """
    n, p = X.shape
    rows = max(1, SCALER_BYTES // max(16 * p, 1))     # the block, its X - T and the sums' row
    # One column, or a column-major X, numpy sums pairwise: only the whole fit gives its bits.
    if rows >= n or p < 2 or X.dtype != np.float64 or not X.flags.c_contiguous:
        return StandardScaler(copy=False).fit(X)
    missing = any(np.isnan(X[a:a + rows]).any() for a in range(0, n, rows))
    buffer = np.empty((rows + 1, p))

    def column_sums(part) -> np.ndarray:
        """The column sums of ``part(block)`` over every block, in numpy's order for the whole."""
        total = np.zeros(0)
        for a in range(0, n, rows):
            block = X[a:a + rows]
            size = block.shape[0]
            values = buffer[1:size + 1]
            values[...] = part(block)
            if missing:
                values[np.isnan(values)] = 0.0     # as scikit-learn's nansum
            if a == 0:
                total = values.sum(axis=0)
            else:
                buffer[0] = total
                total = buffer[:size + 1].sum(axis=0)
        return total

    with np.errstate(invalid="ignore", divide="ignore"):
        new_sum = column_sums(lambda b: b)
        # The rows each column saw (scikit-learn adds them to a count of zero: the same bits).
        count = float(n) - (column_sums(lambda b: np.isnan(b).astype(np.float64)) if missing else np.zeros(p))
        mean = (0.0 + new_sum) / count      # 0.0 + as scikit-learn's: a sum of -0.0 gives a mean of 0.0
        centre = new_sum / count
        correction = column_sums(lambda b: b - centre)
        unnormalised = column_sums(lambda b: (b - centre) ** 2)
        unnormalised -= correction ** 2 / count
        var = unnormalised / count
    scaler = StandardScaler(copy=False)
    scaler.mean_, scaler.var_ = mean, var
    # As scikit-learn keeps it: one number when every column saw the same rows.
    scaler.n_samples_seen_ = count[0] if count.max() == count.min() else count
    scaler.n_features_in_ = p
    # scikit-learn's near-constant rule (`_is_constant_feature`) and unit scale for those columns.
    eps = np.finfo(np.float64).eps
    constant = var <= scaler.n_samples_seen_ * eps * var + (scaler.n_samples_seen_ * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    scaler.scale_ = scale
    return scaler


def split_data(data: PreparedData, train: np.ndarray, test: np.ndarray, scale: bool,
               known: np.ndarray | None = None, test_later: bool = False) -> SplitData:
    """Cut ``data`` into a train/test split, standardising with the training rows' mean and sd.

    The scaler never sees the test rows (nor the held-out ``known`` rows): both play the
    role of new data. With ``test_later``, their features are taken (and scaled) when
    `SplitData.X_test` is first read: an outer fold fits without them beside its training
    rows (32 MB of a 1M-row run's fold).
    """
    # Indexing with row arrays copies, so these are the split's own arrays: scaled in place
    # and wrapped without another copy (a 1M-row fold otherwise briefly held three). Rows
    # given another way (a slice) would be a view of the run's data: copied, never scaled there.
    # The test rows are taken once the scaler's temporaries are gone.
    X_tr = _own(data.X[train], data.X)
    scaler = None
    if scale and data.X.shape[1]:   # the null model has no features to scale
        scaler = fit_scaler(X_tr)
        X_tr = scaler.transform(X_tr)
        scaler.set_params(copy=True)   # kept with the results: it must not change what it is given later
    cols = data.feature_names

    def features(rows: np.ndarray) -> pd.DataFrame:
        X = _own(data.X[rows], data.X)
        if scaler is not None:
            X = scaler.transform(X, copy=False)     # the rows' own copy, scaled in place
        return pd.DataFrame(X, columns=cols, copy=False)

    def test_features() -> tuple[pd.DataFrame, pd.DataFrame | None]:
        return features(test), None if known is None else features(known)

    return SplitData(
        X_train=pd.DataFrame(X_tr, columns=cols, copy=False),
        test_features=test_features if test_later else test_features(),
        y_train=data.y[train],
        y_test=data.y[test],
        g_train=None if data.groups is None else data.groups[train],
        g_test=None if data.groups is None else data.groups[test],
        slope_names=data.slope_names,
        scaler=scaler,
        y_known=None if known is None else data.y[known],
        g_known=None if known is None or data.groups is None else data.groups[known],
        G_train=_group_rows(data, train),
        G_test=_group_rows(data, test),
        G_known=None if known is None else _group_rows(data, known),
    )


def _group_rows(data: PreparedData, rows: np.ndarray) -> pd.DataFrame | None:
    # Positional rows, renumbered like the split's X frames: the estimator pairs them by position.
    return None if data.group_frame is None else data.group_frame.iloc[rows].reset_index(drop=True)


def build_estimator(model: ModelSpec, spec: ExperimentSpec, params: Mapping[str, Any],
                    fold: int) -> object:
    """Instantiate ``model`` with its fixed and tuned arguments.

    ``random_state`` is derived from the run seed, the model's name and the fold when
    the estimator has one and the user did not fix it, so a run is reproducible and
    independent of the order (or process) in which folds are fitted.
    """
    kwargs: dict[str, Any] = {**model.model_kwargs, **params}
    accepted = param_names(model.estimator_class) or set()
    if "random_state" in accepted and "random_state" not in kwargs:
        kwargs["random_state"] = derive_seed(spec.seed, "model", model.name, fold)
    if "predict_known_groups" in accepted and "predict_known_groups" not in kwargs:
        kwargs["predict_known_groups"] = spec.predict_known_groups_lmm
    random = spec.data.random_terms_text
    if random is not None and "random" in accepted and "random" not in kwargs:
        # The spec's random part (several factors): the mixed model fits exactly these terms.
        kwargs["random"] = random
    return model.estimator_class(**kwargs)


def fit_estimator(estimator: Any, s: SplitData, fit_kwargs: Mapping[str, Any]) -> Any:
    """Fit on the training part; mixed models also get groups and the slope columns."""
    if is_mixed(estimator):
        estimator.fit(s.X_train, s.y_train, groups=s.groups_train, slopes=s.slope_names or None, **fit_kwargs)
    else:
        estimator.fit(s.X_train, s.y_train, **fit_kwargs)
    return estimator


def predict_estimator(estimator: Any, X: pd.DataFrame, groups: np.ndarray | pd.DataFrame | None,
                      slope_names: list[str], proba: bool = False) -> np.ndarray:
    """Predict; mixed models use random effects for groups they saw in training.

    With ``proba`` (a classification run) the predictions are probabilities: of the
    positive class (coded 1) for two classes, else the ``(n, K)`` matrix with a column per
    class code ``0 .. K-1``. Mixed models give rows of groups not seen in training their
    marginal probability (averaged over the random-effect distribution).

    In one thread: an estimator fitted in the task's threads (a forest) would otherwise
    predict in them too, adding its trees in the order the threads finish, and the last
    bits of its predictions would differ from run to run.
    """
    from joblib import parallel_config
    with parallel_config(n_jobs=1):
        method = estimator.predict_proba if proba else estimator.predict
        if is_mixed(estimator):
            pred = method(X, groups=groups, slopes=slope_names or None)
        else:
            pred = method(X)
    if not proba:
        return np.asarray(pred, dtype=float).ravel()
    P = np.asarray(pred, dtype=float)
    # Columns in the estimator's class order; every training part holds every class (checked
    # when the splits are made), so its classes are the codes 0..K-1.
    codes = np.asarray(getattr(estimator, "classes_", np.arange(P.shape[1])), dtype=float)
    if P.shape[1] == 2:
        return P[:, int(np.flatnonzero(codes == 1.0)[0])].copy()
    return P[:, np.argsort(codes)]


def _n_positional(fn: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 4
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 4
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def scorer_uses_train(scorer: Callable[..., float]) -> bool:
    """Whether an objective scorer reads the training predictions (flexcv's four arguments).

    A scorer may say it does not with ``uses_train = False`` (mixcv's default does).
    """
    return bool(getattr(scorer, "uses_train", _n_positional(scorer) >= 4))


def call_scorer(scorer: Callable[..., float], y_valid: np.ndarray, y_pred_valid: np.ndarray,
                y_train: np.ndarray, y_pred_train: np.ndarray | None) -> float:
    """Call an objective scorer with flexcv's four arguments, or just the first two.

    ``y_pred_train`` is None when `scorer_uses_train` said it is not needed (decided once
    per study, so no signature is inspected per fit).
    """
    if y_pred_train is not None:
        value = scorer(y_valid, y_pred_valid, y_train, y_pred_train)
    else:
        value = scorer(y_valid, y_pred_valid)
    return float(value)


class _EMReporter:
    """Turns MERF's per-iteration callback into `EMIteration` events.

    Fitted models travel back from worker processes inside the results; the event
    sink does not (it belongs to the run that is over), so it is dropped on pickling.
    """

    def __init__(self, fold: int, name: str, emit: Callable[[Event], None] | None) -> None:
        self.fold, self.name, self.emit = fold, name, emit

    def __call__(self, info: dict[str, Any]) -> None:
        if self.emit is None:
            return
        self.emit(EMIteration(fold=self.fold, model=self.name, iteration=info["iteration"], gll=info["gll"],
                              sigma2=info["sigma2"], D=info["D"]))

    def __getstate__(self) -> dict[str, Any]:
        return {"fold": self.fold, "name": self.name, "emit": None}


def build_merf(model: ModelSpec, spec: ExperimentSpec, params: Mapping[str, Any], fold: int, name: str,
               emit: Callable[[Event], None]) -> MERFRegressor | MERFClassifier:
    """The engine's ``MERF(<model>)`` for one fold: the tuned base estimator inside EM.

    The model knows nothing of the engine: it is handed a callback, which turns each EM
    iteration into an `EMIteration` event. A classification run gets binary MERF
    (`MERFClassifier`), whose callback fires once per PQL iteration (each a warm-started EM).
    """
    cls = MERFClassifier if spec.task == "classification" else MERFRegressor
    return cls(
        fixed_effects_model=build_estimator(model, spec, params, fold),
        max_iterations=spec.merf.max_iterations,
        gll_early_stop_threshold=spec.merf.stopping_threshold,
        gll_early_stop_window=spec.merf.stopping_window or 1,
        callback=_EMReporter(fold, name, emit),
        predict_known_groups=spec.predict_known_groups_lmm,
        linear_fixed_effects=spec.merf.linear_fixed_effects,
        em_estimators=spec.merf.em_estimators,
        random=spec.data.random_terms_text,   # the spec's random part (several factors), as the LMM gets it
    )
