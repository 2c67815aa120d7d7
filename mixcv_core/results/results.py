"""A finished (or interrupted) run as data: tables, predictions, fitted models, studies.

`Results` holds every (model, fold) outcome in task order. Everything else is a
view computed from them: the per-fold table, the summary, out-of-fold predictions,
failures. It renders itself in Jupyter (`_repr_html_`, through `mixcv_core.report`)
and exports to CSV and JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..experiment.data import PreparedData
from ..experiment.spec import ExperimentSpec
from ..metrics import higher_is_better, predicted_class
from ..outcome import FoldOutcome
from . import checks, compare, factors
from ._later import Later
from .citations import REFERENCES
from .flexcv_view import FlexcvView
from .methods import methods_sentences, software_versions
from .prose import FORMATS, cited_keys, render_methods

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from . import classification, plots, report
else:   # figures and the HTML report import matplotlib and jinja2: when first drawn, not with mixcv_core
    classification, plots, report = (Later(f"{__package__}.{m}") for m in ("classification", "plots", "report"))

__all__ = ["Results"]


class Results(FlexcvView):
    """The outcome of `mixcv_core.run` / ``CrossValidation.perform``.

    It also reads as flexcv's results dict (``results[name]["metrics"][fold]["r2"]``,
    ``name in results``, ``get_predictions``...): see `mixcv_core.results.flexcv_view`.

    Attributes
    ----------
    spec : ExperimentSpec
        What was run.
    status : {"finished", "interrupted"}
    outcomes : list of FoldOutcome
        One per (model, outer fold), failed ones included.
    wall_time : float
        Seconds for the whole run.
    run_id : str or None
        The run's id in the run store (`mixcv_core.store`), if it was stored.
    software : dict of str to str
        The versions of the libraries the run used (mixcv, scikit-learn, Optuna, numpy,
        scipy, pandas, and the models' own packages), for `methods`; ``{}`` for a run
        stored before mixcv recorded them.
    """

    def __init__(self, spec: ExperimentSpec, outcomes: Sequence[FoldOutcome], data: PreparedData,
                 outer: Sequence[tuple[np.ndarray, np.ndarray]], status: str = "finished",
                 wall_time: float = float("nan"), software: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.outcomes = list(outcomes)
        self.status = status
        self.wall_time = wall_time
        self._data = data
        self._outer = list(outer)
        #: The inner splits per outer fold (absolute rows), for runs in memory; None when
        #: loaded from a store, which does not keep them.
        self.inner: list[Any] | None = None
        self.run_id: str | None = None  # set when the run is in a RunStore
        #: Whether the run store holds the whole run (False when it was not recorded, or
        #: when the store failed part-way; `record_error` then says why).
        self.recorded: bool = False
        self.record_error: str | None = None
        #: The versions of the libraries the run used (`methods.software_versions`), read
        #: when it ran; a stored run brings back those recorded when it started ({}: none were).
        self.software: dict[str, str] = dict(software_versions(spec) if software is None else software)

    # -- tables ----------------------------------------------------------------------
    @property
    def model_names(self) -> list[str]:
        """Models in the order they were specified (MERF variants last)."""
        return [n for n in self.spec.model_names() if any(o.model == n for o in self.outcomes)]

    @property
    def metric_names(self) -> list[str]:
        return list(self.spec.metrics)

    @property
    def has_known(self) -> bool:
        """Whether the run also scored held-out rows of known groups (``known_holdout``)."""
        return bool(self.spec.outer.known_holdout)

    @property
    def splits(self) -> tuple[str, ...]:
        """The row sets scored: ``test`` (the outer test folds), ``known`` (if held out), ``train``."""
        return ("test", "known", "train") if self.has_known else ("test", "train")

    @property
    def repeats(self) -> np.ndarray:
        """The repeat of each outer fold (all 0 without repeats)."""
        return np.asarray(self.spec.outer.repeat_labels(len(self._outer)))

    def to_frame(self, include_failed: bool = False) -> pd.DataFrame:
        """One row per model and outer fold.

        Columns: ``model``, ``repeat``, ``fold`` (numbered across repeats),
        ``test_<metric>`` for each metric (the outer test fold: with a group split, groups
        never seen in training), ``known_<metric>`` with a known-group holdout (rows held out
        of groups that were in training), ``train_<metric>``, ``fit_time`` and ``tune_time``
        (seconds), ``best_params`` (dict), ``converged`` (mixed models and MERF: True only when
        the fit verified it), ``convergence`` (how the fit ended, in the model's words),
        ``n_train``, ``n_test`` (and ``n_known``); with ``include_failed=True`` also ``ok`` and
        ``error``.
        """
        metric_cols = [f"{s}_{m}" for s in self.splits for m in self.metric_names]
        repeats = self.repeats
        rows = []
        for o in self.outcomes:
            if not o.ok and not include_failed:
                continue
            train, test = self._outer[o.fold]
            row: dict[str, Any] = {"model": o.model, "repeat": int(repeats[o.fold]), "fold": o.fold}
            row.update({c: o.metrics.get(c, math.nan) for c in metric_cols})
            row.update(fit_time=o.fit_time, tune_time=o.tune_time, best_params=o.best_params,
                       converged=o.converged, convergence=o.convergence, n_train=len(train), n_test=len(test))
            if self.has_known:
                row["n_known"] = math.nan if o.known_rows is None else len(o.known_rows)
            if include_failed:
                row.update(ok=o.ok, error=o.error)
            rows.append(row)
        cols = ["model", "repeat", "fold", *metric_cols, "fit_time", "tune_time", "best_params", "converged",
                "convergence", "n_train", "n_test"] + (["n_known"] if self.has_known else []) \
            + (["ok", "error"] if include_failed else [])
        return pd.DataFrame(rows, columns=cols)

    def summarize(self, split: str = "test") -> pd.DataFrame:
        """Mean, sd, median and number of folds per model and metric, for one split.

        Parameters
        ----------
        split : {"test", "known", "train", "both"}
            ``"known"``: the held-out rows of known groups (with ``known_holdout``);
            ``"both"``: test and train.

        Notes
        -----
        RMSE is reported as the square root of the mean (median) MSE over folds, not the
        mean of per-fold roots, which is biased low; its ``sd`` is the sd of per-fold roots.
        """
        if split not in ("test", "train", "both", "known"):
            raise SpecError("split", f"expected 'test', 'known', 'train' or 'both', got {split!r}")
        if split == "known" and not self.has_known:
            raise SpecError("split", "this run held out no rows of known groups; set known_holdout in set_splits "
                                     "(cell: 'known_holdout: 0.2') to score them")
        splits = ("test", "train") if split == "both" else (split,)
        table = self.to_frame()
        records = []
        for model in self.model_names:
            sub = table[table["model"] == model]
            for s in splits:
                for m in self.metric_names:
                    v = sub[f"{s}_{m}"].to_numpy(dtype=float)
                    if m == "rmse":
                        continue  # derived below from MSE
                    records.append(_agg(model, f"{s}_{m}" if split == "both" else m, v))
                sq = None
                if "mse" in self.metric_names:
                    sq = sub[f"{s}_mse"].to_numpy(dtype=float)
                elif "rmse" in self.metric_names:
                    sq = sub[f"{s}_rmse"].to_numpy(dtype=float) ** 2
                if sq is not None and len(sq):
                    roots = np.sqrt(sq)
                    records.append({"model": model, "metric": f"{s}_rmse" if split == "both" else "rmse",
                                    "mean": float(np.sqrt(np.mean(sq))),
                                    "sd": float(np.std(roots, ddof=1)) if len(roots) > 1 else math.nan,
                                    "median": float(np.sqrt(np.median(sq))), "n_folds": len(sq)})
        out = pd.DataFrame(records, columns=["model", "metric", "mean", "sd", "median", "n_folds"])
        return out.set_index(["model", "metric"])

    @property
    def summary(self) -> pd.DataFrame:
        """Test-fold summary: index (model, metric), columns mean, sd, median, n_folds."""
        return self.summarize("test")

    def best_model(self, metric: str | None = None) -> str:
        """The model with the best mean test ``metric`` (default: mse when the run has it, else its
        first metric), in the metric's own direction."""
        if metric is None:
            metric = "mse" if "mse" in self.metric_names else self.metric_names[0]
        s = self.summary.xs(metric, level="metric")["mean"]
        return str(s.idxmax() if higher_is_better(metric) else s.idxmin())

    def compare(self, a: str | None = None, b: str | None = None, metric: str | None = None,
                split: str = "test", confidence: float = 0.95) -> Any:
        """Is one model really better than another, or is it fold noise?

        With two model names, the corrected resampled t-test (Nadeau & Bengio 2003, in the
        repeated form of Bouckaert & Frank 2004) of ``a - b`` over the outer folds both
        finished: a `Comparison` with ``mean_diff``, ``t``, ``df``, ``p_value``
        (two-sided), the confidence interval, the wins and a plain-language ``sentence``.
        Without names, the table of every pair on every metric (``metric`` first),
        with Holm-adjusted p-values per metric.

        Parameters
        ----------
        a, b : str, optional
            Model names; both or neither.
        metric : str, optional
            Default: the first metric (r2 unless set otherwise).
        split : {"test", "known"}
            New groups (the outer test folds) or held-out rows of known groups.
        confidence : float, default=0.95

        Notes
        -----
        ``results.compare("MERF(RandomForestRegressor)", "LinearModel").sentence`` reads like
        "MERF(RandomForestRegressor) beats LinearModel on R² in 14 of 15 folds (...); corrected
        t-test p = 0.003"; a difference the test does not support is said to be within
        fold-to-fold noise. tests/core/test_compare.py checks it on lme4's sleepstudy.
        """
        if (a is None) != (b is None):
            raise SpecError("b" if b is None else "a", "name both models to compare two, or neither for all pairs")
        if a is not None and b is not None:
            return compare.compare_models(self, a, b, metric, split, confidence)
        metrics = self.metric_names
        if metric is not None:
            if metric not in metrics:
                raise SpecError("metric", f"{metric!r} is not a metric of these results; metrics are {metrics}")
            metrics = [metric] + [m for m in metrics if m != metric]
        return compare.compare_all(self, metrics, split, confidence)

    @property
    def predictions(self) -> pd.DataFrame:
        """Out-of-fold predictions: model, repeat, fold, row (the data's index label), group, y_true, y_pred.

        Classification: ``y_true`` is the class code (two classes: 1 for the positive class)
        and ``y_pred`` the predicted probability of the positive class; with more classes
        ``y_pred`` is the most probable class and ``proba_<k>`` the probability of class ``k``.
        ``y_true_label`` and ``y_pred_label`` name those classes by the target's own labels
        (the predicted one: the most probable, as accuracy counts it); a run stored before its
        labels were kept has codes only.
        """
        return self._predictions("test")

    @property
    def known_predictions(self) -> pd.DataFrame:
        """Predictions for the held-out rows of known groups (``known_holdout``); columns as `predictions`."""
        return self._predictions("known")

    def _predictions(self, which: str) -> pd.DataFrame:
        d = self._data
        repeats = self.repeats
        # The target's own labels by class code (an object array: 0 and "one" stay as they are).
        labels = np.array(list(d.classes) + [None], dtype=object)[:-1] if d.classes else None
        parts = []
        for o in self.outcomes:
            rows, pred = (o.test_rows, o.y_pred) if which == "test" else (o.known_rows, o.y_pred_known)
            if not o.ok or rows is None:
                continue
            pred = np.asarray(pred)
            columns = {"y_pred": pred} if pred.ndim == 1 else {
                "y_pred": np.argmax(pred, axis=1).astype(float),
                **{f"proba_{k}": pred[:, k] for k in range(pred.shape[1])}}
            if labels is not None:
                columns["y_true_label"] = labels[d.y[rows].astype(np.int64)]
                columns["y_pred_label"] = labels[predicted_class(pred)]
            parts.append(pd.DataFrame({
                "model": o.model, "repeat": int(repeats[o.fold]), "fold": o.fold, "row": d.index[rows],
                "group": d.groups[rows] if d.groups is not None else None,
                "y_true": d.y[rows], **columns,
            }))
        if not parts:
            return pd.DataFrame(columns=["model", "repeat", "fold", "row", "group", "y_true", "y_pred"])
        return pd.concat(parts, ignore_index=True)

    @property
    def failures(self) -> pd.DataFrame:
        """Failed fits: model, fold, error, traceback."""
        rows = [{"model": o.model, "fold": o.fold, "error": o.error, "traceback": o.traceback}
                for o in self.outcomes if not o.ok]
        return pd.DataFrame(rows, columns=["model", "fold", "error", "traceback"])

    @property
    def warnings(self) -> pd.DataFrame:
        """Warnings raised while fitting: model, fold, warning."""
        rows = [{"model": o.model, "fold": o.fold, "warning": w} for o in self.outcomes for w in o.warnings]
        return pd.DataFrame(rows, columns=["model", "fold", "warning"])

    # -- objects ---------------------------------------------------------------------
    def _by_key(self, attr: str) -> dict[tuple[str, int], Any]:
        return {(o.model, o.fold): getattr(o, attr) for o in self.outcomes
                if o.ok and getattr(o, attr) is not None}

    @property
    def models(self) -> dict[tuple[str, int], Any]:
        """Fitted estimators by (model, fold)."""
        return self._by_key("estimator")

    @property
    def studies(self) -> dict[tuple[str, int], Any]:
        """Optuna studies of the inner loop by (model, fold)."""
        return self._by_key("study")

    @property
    def insights(self) -> dict[tuple[str, int], pd.DataFrame]:
        """Post-processor tables (coefficients, importances) by (model, fold)."""
        return self._by_key("insight")

    @property
    def histories(self) -> dict[tuple[str, int], pd.DataFrame]:
        """MERF EM histories (iteration, gll, sigma2, ...) by (model, fold)."""
        return self._by_key("history")

    def insight_table(self, model: str) -> pd.DataFrame:
        """A model's post-processor tables of all folds side by side, with their mean."""
        tables = {k[1]: v for k, v in self.insights.items() if k[0] == model}
        if not tables:
            raise KeyError(f"no insight tables for {model!r}; models with a post_processor: "
                           f"{sorted({k[0] for k in self.insights})}")
        first_col = next(iter(tables.values())).columns[0]
        wide = pd.concat({f"fold {k}": t[first_col] for k, t in sorted(tables.items())}, axis=1)
        wide.insert(0, "mean", wide.mean(axis=1, numeric_only=True))
        return wide

    # -- export ----------------------------------------------------------------------
    def to_csv(self, path: str | Path) -> Path:
        """Write the per-fold table (best params as JSON text) to ``path``."""
        path = Path(path)
        table = self.to_frame(include_failed=True)
        table["best_params"] = table["best_params"].map(lambda p: json.dumps(p, default=str))
        table.to_csv(path, index=False)
        return path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: spec (when it can be written as text), status, folds, summary."""
        try:
            spec: Any = self.spec.to_dict()
        except SpecError as exc:
            spec = {"unserialisable": str(exc)}
        folds = self.to_frame(include_failed=True)
        summary = self.summary.reset_index()
        return {
            "status": self.status,
            "wall_time": self.wall_time,
            "spec": spec,
            "folds": json.loads(folds.to_json(orient="records")),
            "summary": json.loads(summary.to_json(orient="records")),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The `to_dict` content as JSON text; also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            Path(path).write_text(text)
        return text

    def methods(self, format: str = "text", references: bool = True) -> str:  # noqa: A002 - the word users type
        """The methods paragraph of this run, for a paper: the design exactly as it ran.

        Outer and inner splits (method, k, repeats, shuffling and seeds), the factor a test
        fold holds out and what the scores therefore estimate, the known-group holdout,
        tuning (sampler, trials, each model's search space, the objective and its
        direction), every model with its fixed settings, the mixed models' and MERF's
        settings with how many of their fits converged, the metrics, the comparison test,
        the seed, and the software with versions and citations. Every value comes from the
        run (a run loaded from the store gives the same text).

        Parameters
        ----------
        format : {"text", "markdown", "latex", "html"}
            LaTeX cites with ``\\cite{key}``: `citations` gives the BibTeX entries.
        references : bool, default=True
            End with the list of works cited (text, Markdown, HTML).

        Returns
        -------
        str

        Raises
        ------
        SpecError
            An unknown ``format``, naming the valid ones.
        """
        if format not in FORMATS:
            raise SpecError("format", f"expected one of {', '.join(map(repr, FORMATS))}, got {format!r}")
        return render_methods(methods_sentences(self), format, references)

    def citations(self) -> pd.DataFrame:
        """The works `methods` cites: key (BibTeX), cite (as in the text), reference, bibtex."""
        keys = cited_keys(methods_sentences(self))
        return pd.DataFrame([{"key": k, "cite": REFERENCES[k].short, "reference": REFERENCES[k].text,
                              "bibtex": REFERENCES[k].bibtex} for k in keys],
                            columns=["key", "cite", "reference", "bibtex"])

    def to_latex(self, split: str = "test", digits: int = 3, label: str = "tab:mixcv") -> str:
        """The summary and (two models or more) the comparison as booktabs LaTeX tables.

        Written by pandas' ``Styler.to_latex(hrules=True)`` with captions and labels
        (``<label>-summary``, ``<label>-comparison``); model names and other user strings are
        escaped for LaTeX. The document needs ``\\usepackage{booktabs}``.

        Parameters
        ----------
        split : {"test", "known", "train"}
        digits : int, default=3
            Decimals of the scores.
        label : str, default="tab:mixcv"
        """
        from .latex import tables_latex
        return tables_latex(self, split, digits, label)

    def save_report(self, path: str | Path) -> Path:
        """Write the whole run to one self-contained HTML file and return its path.

        The report (summary, comparison, checks, per-fold table), every figure as an
        embedded PNG and the methods paragraph with its references: the file needs no
        network, notebook or mixcv to open.
        """
        from .standalone import save_report
        return save_report(self, path)

    # -- display ---------------------------------------------------------------------
    def _repr_html_(self) -> str:
        return report.render_html(self)

    def __repr__(self) -> str:
        n_ok = sum(o.ok for o in self.outcomes)
        head = (f"<Results {self.status}: {len(self.model_names)} model(s) x {len(self._outer)} folds, "
                f"{n_ok} fits, {len(self.outcomes) - n_ok} failed>")
        if not self.model_names:
            return head
        return f"{head}\nTest folds, mean ± sd:\n{report.summary_table(self).to_string()}"

    def plot(self, metric: str = "r2", split: str = "test") -> Figure:
        """Per-fold values of one metric for every model (points) with their mean (bar)."""
        return plots.plot_metric(self, metric, split)

    def plot_predictions(self, model: str | None = None) -> Figure:
        """Out-of-fold predictions against the truth, one panel per model."""
        return plots.plot_predictions(self, model)

    def plot_convergence(self, model: str | None = None) -> Figure:
        """MERF's EM convergence (generalised log-likelihood per iteration) for each fold."""
        return plots.plot_convergence(self, model)

    def plot_folds(self, outer_fold: int = 0) -> Figure:
        """Which groups are tested (and held out as known) in which outer fold, and the inner folds."""
        return plots.plot_folds(self, outer_fold)

    def plot_group_errors(self, top: int = 25) -> Figure:
        """Mean out-of-fold error (log loss for a binary classification) per group and model, hardest first."""
        return plots.plot_group_errors(self, top)

    def plot_random_effects(self, model: str | None = None, fold: int = 0, level: float = 0.95) -> Figure:
        """A mixed model's random effects per group with intervals (LMM or MERF, one outer fold)."""
        return plots.plot_random_effects(self, model, fold, level)

    def plot_tuning(self, model: str | None = None) -> Figure:
        """The inner loop's Optuna history per outer fold."""
        return plots.plot_tuning(self, model)

    def plot_roc(self, model: str | None = None, split: str = "test") -> Figure:
        """ROC curves per model pooled over the outer test folds, each fold's own faint (binary classification)."""
        return classification.plot_roc(self, model, split)

    def plot_precision_recall(self, model: str | None = None, split: str = "test") -> Figure:
        """Precision-recall curves per model, pooled and per fold (binary classification)."""
        return classification.plot_precision_recall(self, model, split)

    def plot_calibration(self, n_bins: int = 10, strategy: str = "uniform", split: str = "test") -> Figure:
        """A reliability diagram per model on the pooled out-of-fold probabilities, with rows per bin."""
        return classification.plot_calibration(self, n_bins, strategy, split)

    def roc_points(self, model: str | None = None, split: str = "test") -> pd.DataFrame:
        """The points of `plot_roc`: model, fold (<NA> pooled), fpr, tpr, threshold."""
        return classification.roc_points(self, model, split)

    def precision_recall_points(self, model: str | None = None, split: str = "test") -> pd.DataFrame:
        """The points of `plot_precision_recall`: model, fold (<NA> pooled), precision, recall, threshold."""
        return classification.precision_recall_points(self, model, split)

    def calibration_table(self, n_bins: int = 10, strategy: str = "uniform", split: str = "test") -> pd.DataFrame:
        """The bins of `plot_calibration`: model, bin, mean_predicted, fraction_positive, count."""
        return classification.calibration_table(self, n_bins, strategy, split)

    def class_balance(self) -> pd.DataFrame:
        """Rows of each class in each outer fold's training and test parts (shown by `plot_folds`)."""
        return plots.class_balance(self)

    def group_errors(self) -> pd.DataFrame:
        """Mean out-of-fold error per group (rows) and model (columns): absolute error, or log loss for
        a binary classification."""
        return plots.group_errors(self)

    def random_effects(self, model: str | None = None, fold: int = 0) -> pd.DataFrame:
        """A fitted mixed model's random effects per group and term, with their conditional sd."""
        return plots.random_effects(self, model, fold)

    def unused_rows(self) -> pd.Series:
        """Per outer fold, the rows used neither to train nor to test (a split by several factors
        leaves out rows that mix a held-out level with a training one; zero otherwise)."""
        return factors.unused_rows(self)

    def what_is_new(self) -> str | None:
        """The report's line on what "new" means with several grouping factors (None with one)."""
        return factors.what_is_new(self)

    def checks(self) -> pd.DataFrame:
        """Group-aware methodology checks: code, severity, message, evidence (see `mixcv_core.results.checks`)."""
        found = checks.run_checks(self)
        return pd.DataFrame([vars(c) for c in found], columns=["code", "severity", "message", "evidence"])


def _agg(model: str, metric: str, v: np.ndarray) -> dict[str, Any]:
    v = v[np.isfinite(v)]
    return {"model": model, "metric": metric,
            "mean": float(np.mean(v)) if len(v) else math.nan,
            "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
            "median": float(np.median(v)) if len(v) else math.nan,
            "n_folds": int(len(v))}
