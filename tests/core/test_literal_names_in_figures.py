"""User strings drawn in figures are shown literally (issue 22, item 14): a pair of ``$`` in
a model, group, target or tuned model name is not read as matplotlib mathtext, which
crashed the report and the explorer."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from optuna.distributions import FloatDistribution

from mixcv_core import CrossValidation
from mixcv_core.synthesizer import generate_grouped_regression

ODD = "spend_$ per visit_$"


@pytest.fixture(scope="module")
def res():
    X, y, g, _ = generate_grouped_regression(4, 12, random_seed=2, n_features=2)
    g = g.map(lambda v: f"${v}$ cohort")            # group labels with a $ pair too
    y = y.rename("cost_$ per_$")
    return (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", "GroupKFold", n_splits_out=2, n_splits_in=2)
            .add_model("Ridge", model_name=ODD, requires_inner_cv=True,
                       params={"alpha": FloatDistribution(0.1, 10, log=True)})
            .add_model("LinearMixedEffectsModel", model_name="LMM $x$")
            .set_inner_cv(n_trials=2).set_run(store=False).perform().get_results())


@pytest.mark.parametrize("plot", ["plot", "plot_predictions", "plot_folds", "plot_group_errors", "plot_tuning",
                                  "plot_random_effects"])
def test_a_dollar_pair_in_a_name_is_drawn_as_written(res, plot):
    fig = getattr(res, plot)("LMM $x$") if plot == "plot_random_effects" else getattr(res, plot)()
    FigureCanvasAgg(fig).draw()                     # mathtext would raise here, or eat the $ signs
    shown = [t.get_text() for t in fig.findobj(Text)]
    wanted = {"plot_random_effects": "LMM $x$", "plot_folds": "fold 0", "plot_group_errors": "$0$ cohort"}
    assert any(wanted.get(plot, ODD) in text for text in shown), shown
    assert fig._repr_png_()[:4] == b"\x89PNG"


def test_the_report_and_the_explorer_render_names_with_dollar_pairs(res):
    from mixcv_jupyter.explorer import _plots
    html = res._repr_html_()
    assert "spend_$ per visit_$" in html
    assert _plots(res).count("<img") >= 4
    assert np.isfinite(res.summary.select_dtypes("number").to_numpy()).any()
