"""Every figure: drawn with one mark per fold or group, displayed as an image without
``%matplotlib inline``, saved as PNG and SVG. Data: lme4's sleepstudy (tests/data/sleepstudy.csv)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from optuna.distributions import FloatDistribution

from mixcv_core import CrossValidation
from mixcv_core.errors import SpecError

SLEEP = pd.read_csv(Path(__file__).parents[1] / "data" / "sleepstudy.csv")
N_FOLDS, N_SUBJECTS, N_TRIALS = 3, 18, 4


@pytest.fixture(scope="module")
def res():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"], "Days")
                .set_splits("GroupKFold", "GroupKFold", n_splits_out=N_FOLDS, n_splits_in=2, known_holdout=0.2)
                .add_model("LinearModel", add_merf=True)
                .add_model("LinearMixedEffectsModel")
                .add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.01, 10, log=True)})
                .set_inner_cv(n_trials=N_TRIALS).set_merf(em_max_iterations=20)
                .set_run(store=False).perform().get_results())


def _points(ax):
    return [line for line in ax.get_lines() if line.get_linestyle() == "None"]


def test_per_fold_scores_a_dot_per_fold_and_fold_lines_across_models(res):
    fig = res.plot("r2")
    ax = fig.axes[0]
    dots = _points(ax)
    assert len(dots) == len(res.model_names) and all(len(d.get_xdata()) == N_FOLDS for d in dots)
    joins = [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) > 2]
    assert len(joins) == N_FOLDS
    assert "corrected t-test" in ax.get_title()
    table = res.to_frame()
    lmm = table.loc[table["model"] == "LinearMixedEffectsModel", "test_r2"].to_numpy()
    assert np.allclose(sorted(dots[res.model_names.index("LinearMixedEffectsModel")].get_ydata()), sorted(lmm))


def test_predicted_against_observed_one_colour_per_fold(res):
    fig = res.plot_predictions("LinearMixedEffectsModel")
    folds = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("fold")]
    assert [line.get_label() for line in folds] == [f"fold {k}" for k in range(N_FOLDS)]
    assert sum(len(line.get_xdata()) for line in folds) == len(SLEEP)


def test_fold_assignment_of_groups_outer_and_inner(res):
    fig = res.plot_folds()
    outer = fig.axes[0].get_images()[0].get_array()
    assert outer.shape == (N_FOLDS, len(SLEEP))                 # a column per row, group by group
    per_subject = outer.reshape(N_FOLDS, N_SUBJECTS, 10)       # sleepstudy: 10 days per subject
    tested = (per_subject == 2).all(axis=2)
    assert (tested.sum(axis=0) == 1).all()                    # each subject tested in exactly one fold
    # ...and in the others it trains on 8 of its 10 days, 2 (known_holdout=0.2) held out as known:
    # one cell shows the subject's training rows and its held-out rows, side by side.
    assert ((per_subject == 1).sum(axis=2)[~tested] == 2).all() and ((per_subject == 0).sum(axis=2)[~tested] == 8).all()
    inner = fig.axes[1].get_images()[0].get_array()
    assert inner.shape == (2, N_SUBJECTS - len(np.unique(SLEEP["Subject"][res._outer[0][1]])))
    assert ((inner == 2).sum(axis=0) == 1).all()


def test_training_known_holdout_and_test_rows_have_distinct_colours_and_a_legend_each(res):
    from matplotlib.colors import to_hex
    fig = res.plot_folds()
    image = fig.axes[0].get_images()[0]
    shown = {to_hex(image.cmap(image.norm(v))) for v in (0, 1, 2)}
    assert len(shown) == 3
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == {"training rows", "known-group rows held out", "test rows"}


def test_errors_by_group_one_dot_per_group_and_model(res):
    fig = res.plot_group_errors(top=10)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 10
    assert all(len(d.get_xdata()) == 10 for d in _points(ax)) and len(_points(ax)) == len(res.model_names)
    errors = res.group_errors()
    assert errors.shape == (N_SUBJECTS, len(res.model_names))
    worst = errors.mean(axis=1).sort_values(ascending=False).index[0]
    assert ax.get_yticklabels()[0].get_text() == str(worst)
    assert ax.get_ylabel() == "Subject"              # the axis says what its labels are


def test_the_report_says_merf_reuses_its_base_models_tuned_parameters_and_it_does():
    from mixcv_core.results.report import tuned_params_html
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"], SLEEP["Subject"])
             .set_splits("GroupKFold", "GroupKFold", n_splits_out=3, n_splits_in=2)
             .add_model("Ridge", requires_inner_cv=True, params={"alpha": FloatDistribution(0.01, 10, log=True)},
                        add_merf=True)
             .set_inner_cv(n_trials=3).set_merf(em_max_iterations=3).set_run(store=False).perform().get_results())
    assert "MERF(Ridge) reuses Ridge's tuned parameters of the same fold" in tuned_params_html(r)
    table = r.to_frame().set_index(["model", "fold"])
    for fold in range(3):
        chosen = table.loc[("Ridge", fold), "best_params"]["alpha"]
        assert r.models[("MERF(Ridge)", fold)].merf_.fixed_effects_model.alpha == chosen


@pytest.mark.parametrize("model", ["LinearMixedEffectsModel", "MERF(LinearModel)"])
def test_random_effects_with_intervals_per_group(res, model):
    fig = res.plot_random_effects(model, fold=1)
    assert [ax.get_title() for ax in fig.axes] == ["Intercept", "Days"]
    est = res.models[(model, 1)]
    for ax, term in zip(fig.axes, ["Intercept", "Days"]):
        points = ax.containers[0].lines[0]
        assert len(points.get_xdata()) == est.random_effects_.shape[0]
        assert np.allclose(np.sort(points.get_xdata()), np.sort(est.random_effects_[term]))
    table = res.random_effects(model, fold=1)
    assert set(table.columns) == {"group", "term", "effect", "sd"} and (table["sd"] > 0).all()


def test_optuna_history_one_line_per_fold(res):
    fig = res.plot_tuning()
    best = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("fold")]
    assert len(best) == N_FOLDS and all(len(line.get_xdata()) == N_TRIALS for line in best)
    assert all(np.all(np.diff(line.get_ydata()) <= 0) for line in best)   # best so far never worsens


def test_em_convergence_one_line_per_fold(res):
    fig = res.plot_convergence()
    assert len(fig.axes[0].get_lines()) == N_FOLDS


ALL = ["plot", "plot_predictions", "plot_folds", "plot_group_errors", "plot_random_effects", "plot_tuning",
       "plot_convergence"]


@pytest.mark.parametrize("name", ALL)
def test_every_figure_displays_as_an_image_without_the_matplotlib_magic(res, name):
    from IPython.core.formatters import DisplayFormatter
    formatter = DisplayFormatter()   # a fresh one: no %matplotlib inline hook registered
    fig = getattr(res, name)()
    data, _ = formatter.format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    # What the user saw before: a bare matplotlib Figure is text only.
    plain, _ = formatter.format(Figure())
    assert "image/png" not in plain


@pytest.mark.parametrize("suffix,head", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_figures_save_as_png_and_svg(res, tmp_path, suffix, head):
    path = tmp_path / f"folds.{suffix}"
    res.plot_folds().savefig(path)
    assert path.read_bytes()[:5].startswith(head)


def test_figures_refuse_what_the_run_does_not_have(res):
    no_groups = (CrossValidation().set_data(SLEEP[["Days"]], SLEEP["Reaction"]).add_model("LinearModel")
                 .set_splits(n_splits_out=3).set_run(store=False).perform().get_results())
    with pytest.raises(SpecError, match="data.groups"):
        no_groups.plot_folds()
    with pytest.raises(SpecError, match="model: no fitted mixed model"):
        no_groups.plot_random_effects()
    with pytest.raises(SpecError, match="model: no tuning"):
        no_groups.plot_tuning()
    with pytest.raises(SpecError, match="metric: no column 'test_auc'"):
        res.plot("auc")
