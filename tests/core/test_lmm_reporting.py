"""What a researcher reads and cites from an LMM: summary, variance decomposition, the null model, errors.

Reference values: lme4 (tests/reference/lme4_battery.R -> tests/data/lmm/lme4_battery.json),
including ``confint(m, parm = "beta_", method = "Wald")``. The variance decomposition is
checked against a row-by-row computation written here from lme4's estimates (Nakagawa,
Johnson & Schielzeth 2017), and Dyestuff's ICC against its closed form.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixcv_core import CrossValidation, MixcvError
from mixcv_core.merf import MERF
from mixcv_core.models import LinearMixedEffectsModel

DATA = Path(__file__).parent.parent / "data" / "lmm"
BATTERY = json.loads((DATA / "lme4_battery.json").read_text())["cases"]


def fit(name: str, reml: bool = True) -> tuple[dict, pd.DataFrame, LinearMixedEffectsModel]:
    case = BATTERY[name]
    d = pd.read_csv(DATA / f"{name}.csv")
    X = d[case["fixed"]] if case["fixed"] else pd.DataFrame(index=d.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LinearMixedEffectsModel(reml=reml).fit(X, d[case["response"]], groups=d[case["group"]].astype(str),
                                                   slopes=case["random"] or None)
    return case, d, m


def test_summary_tables_match_lme4():
    case, _, m = fit("sleepstudy")
    ref = case["reml"]
    s = m.summary()
    fe, se = np.array(list(ref["fixef"].values())), np.array(list(ref["se"].values()))
    np.testing.assert_allclose(s.fixed["estimate"], fe, rtol=1e-6)
    np.testing.assert_allclose(s.fixed["std_error"], se, rtol=1e-5)
    np.testing.assert_allclose(s.fixed["t_value"], fe / se, rtol=1e-5)
    np.testing.assert_allclose(s.fixed[["ci_low", "ci_high"]].to_numpy(), ref["wald_ci"], rtol=1e-6)
    cov = np.array(ref["cov_re"])
    np.testing.assert_allclose(s.random["std_dev"], np.sqrt(np.diag(cov)), rtol=1e-5)
    np.testing.assert_allclose(s.random.loc["Days", "corr_(Intercept)"], cov[1, 0] / np.sqrt(cov[0, 0] * cov[1, 1]),
                               rtol=1e-4)
    np.testing.assert_allclose(s.residual_variance, ref["sigma2"], rtol=1e-5)
    assert s.n_obs == 180 and s.n_groups == 18 and s.groups_name == "Subject"


def test_summary_text_reads_like_lme4s():
    _, _, m = fit("sleepstudy")
    text = str(m.summary())
    assert "Linear mixed model fit by REML" in text
    assert "Formula: Reaction ~ Days + (1 + Days | Subject)" in text
    assert "REML criterion at convergence: 1743.6283" in text
    assert "Number of obs: 180, groups: Subject, 18" in text
    assert "Convergence: optimum" in text and "NOT CONVERGED" not in text
    for word in ("Estimate", "Std. Error", "t value", "CI low", "Residual", "ICC"):
        assert word in text


def test_summary_says_boundary_and_non_convergence_out_loud():
    _, d, m = fit("dyestuff2")
    assert "Boundary (singular) fit: Intercept" in str(m.summary())
    assert "optimum on the boundary" in m.summary()._repr_html_()
    sleep = pd.read_csv(DATA / "sleepstudy.csv")
    with pytest.warns(UserWarning):
        short = LinearMixedEffectsModel(max_evals=3).fit(sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"],
                                                         slopes=["Days"])
    assert "NOT CONVERGED" in str(short.summary())
    assert "not converged" in short.summary()._repr_html_()


def test_summary_html_escapes_names():
    d = pd.read_csv(DATA / "sleepstudy.csv").rename(columns={"Days": "<b>days</b>"})
    m = LinearMixedEffectsModel().fit(d[["<b>days</b>"]], d["Reaction"].rename("<i>y</i>"),
                                      groups=d["Subject"].rename("<script>"), slopes=["<b>days</b>"])
    page = m.summary()._repr_html_()
    assert "<b>days</b>" not in page and "<script>" not in page and "&lt;script&gt;" in page


def test_icc_of_the_null_model_is_its_closed_form():
    case, _, m = fit("dyestuff")
    tau2, sigma2 = case["reml"]["cov_re"][0][0], case["reml"]["sigma2"]
    assert m.icc_ == pytest.approx(tau2 / (tau2 + sigma2), rel=1e-5)
    share = m.variance_decomposition_["share"]
    assert share["fixed effects"] == pytest.approx(0.0, abs=1e-12)
    assert share["random effects"] + share["residual"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["sleepstudy", "oxboys_quadratic", "chickweight"])
def test_variance_decomposition_matches_a_row_by_row_computation_from_lme4s_estimates(name):
    case, d, m = fit(name)
    ref = case["reml"]
    D = np.array(ref["cov_re"])
    Z = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in case["random"]])
    X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in case["fixed"]])
    beta = np.array(list(ref["fixef"].values()))
    random = sum(float(z @ D @ z) for z in Z) / len(Z)            # one row at a time
    fixed = float(np.var(X @ beta))
    table = m.variance_decomposition_["variance"]
    assert table["random effects"] == pytest.approx(random, rel=1e-5)
    assert table["fixed effects"] == pytest.approx(fixed, rel=1e-6)
    assert table["residual"] == pytest.approx(ref["sigma2"], rel=1e-5)
    assert m.icc_ == pytest.approx(random / (random + ref["sigma2"]), rel=1e-5)


def test_the_null_model_runs_through_the_engine_and_the_cell():
    from mixcv_core.engine import run
    from mixcv_core.experiment.cell import parse_cell

    d = pd.read_csv(DATA / "dyestuff.csv")
    res = (CrossValidation().set_data(pd.DataFrame(index=d.index), d["Yield"], d["Batch"])
           .set_splits(split_out="GroupKFold", n_splits_out=3).add_model(LinearMixedEffectsModel)
           .set_run(store=False).perform().get_results())
    table = res.to_frame()
    assert len(table) == 3 and table["converged"].all()
    spec = parse_cell("data: d\ntarget: Yield\ngroups: Batch\nfeatures: []\nouter: GroupKFold(3)\n"
                      "models: [LinearMixedEffectsModel]\n").spec
    assert spec.data.features == ()
    assert run(spec, d, store=False).to_frame()["converged"].all()


def test_models_that_need_features_are_refused_without_any_naming_them():
    d = pd.read_csv(DATA / "dyestuff.csv")
    cv = (CrossValidation().set_data(pd.DataFrame(index=d.index), d["Yield"], d["Batch"])
          .add_model("LinearModel").add_model(LinearMixedEffectsModel, add_merf=True))
    with pytest.raises(MixcvError) as info:
        cv.perform()
    assert info.value.field == "data.features"
    assert "LinearModel, MERF(LinearMixedEffectsModel) cannot be fitted" in info.value.message


# -- errors at the model class ----------------------------------------------------------
@pytest.fixture
def ortho():
    return pd.read_csv(DATA / "orthodont.csv").assign(Sex=lambda d: np.where(d["female"] == 1, "Female", "Male"))


@pytest.mark.parametrize("dtype", ["object", "category", "string"])
def test_a_text_column_gets_the_engines_message_naming_it(ortho, dtype):
    X = ortho[["age", "Sex"]].astype({"Sex": dtype})
    with pytest.raises(MixcvError) as info:
        LinearMixedEffectsModel().fit(X, ortho["distance"], groups=ortho["Subject"], slopes=["age"])
    assert info.value.field == "X"
    assert "'Sex'" in info.value.message and "get_dummies" in info.value.message
    # ...the same words as the engine's data check:
    with pytest.raises(MixcvError) as engine:
        (CrossValidation().set_data(X, ortho["distance"], ortho["Subject"]))
    assert "get_dummies" in engine.value.message and "'Sex'" in engine.value.message


def test_two_grouping_columns_are_refused_with_what_to_do(ortho):
    groups = ortho[["Subject"]].assign(clinic=ortho["female"])
    for est in (LinearMixedEffectsModel(), None):
        with pytest.raises(MixcvError) as info:
            if est is not None:
                est.fit(ortho[["age"]], ortho["distance"], groups=groups)
            else:
                MERF(max_iterations=1).fit(ortho[["age"]], np.ones((len(ortho), 1)), groups, ortho["distance"])
        assert "one grouping factor is supported, got 2 columns ('Subject', 'clinic')" in info.value.message
        assert "nested" in info.value.message and "/" in info.value.message


def test_a_constant_slope_and_a_text_target_are_named(ortho):
    with pytest.raises(MixcvError, match="slopes: the slope column"):
        LinearMixedEffectsModel().fit(ortho[["age"]].assign(one=1.0), ortho["distance"], groups=ortho["Subject"],
                                      slopes=["one"])
    with pytest.raises(MixcvError, match="y: the target must be numeric"):
        LinearMixedEffectsModel().fit(ortho[["age"]], ortho["Sex"], groups=ortho["Subject"])


def test_each_column_of_the_summary_has_one_precision_and_shows_lme4s_values():
    import re
    case, _, m = fit("sleepstudy")
    ref = case["reml"]
    text = str(m.summary())
    fixed = text.split("confidence intervals):\n")[1].split("\n\n")[0].splitlines()[1:]
    rows = {line.split()[0]: line.split()[1:] for line in fixed}
    for col, values in enumerate((ref["fixef"], ref["se"])):
        printed = [rows[k][col] for k in ("(Intercept)", "Days")]
        decimals = {len(p.split(".")[1]) for p in printed}
        assert len(decimals) == 1, printed                    # one number of decimals per column
        d = decimals.pop()
        assert printed == [f"{v:.{d}f}" for v in values.values()], (printed, values)   # lme4's values, so rounded
    # The random effects' columns too (8.116 above 1.1 read as different precisions).
    rnd = text.split("Random effects:\n")[1].split("Number of obs")[0]
    sds = re.findall(r"(\d+\.\d+)\s+(\d+\.\d+)\s*(?:-?0\.\d\d)?\s*\n", rnd)
    assert len(sds) == 3 and len({len(sd.split(".")[1]) for _, sd in sds}) == 1, rnd
    cov = np.array(ref["cov_re"])
    step = 10.0 ** -len(sds[0][1].split(".")[1])
    assert [float(sd) for _, sd in sds[:2]] == pytest.approx(np.sqrt(np.diag(cov)), abs=step)


def test_a_model_fitted_on_arrays_is_summarised_under_the_datas_names_and_says_which_fit_it_is():
    d = pd.read_csv(DATA / "sleepstudy.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LinearMixedEffectsModel().fit(d[["Days"]], d["Reaction"].to_numpy(), groups=d["Subject"].to_numpy(),
                                          slopes=["Days"])
    assert "Formula: y ~ Days + (1 + Days | group)" in str(m.summary())    # arrays carry no names
    s = m.summary(response="Reaction", groups="Subject", fitted_on="outer fold 2 of 5: its 144 training rows")
    text = str(s)
    assert "Formula: Reaction ~ Days + (1 + Days | Subject)" in text and "groups: Subject, 18" in text
    assert " Fitted on: outer fold 2 of 5: its 144 training rows" in text
    assert "Fitted on outer fold 2 of 5" in s._repr_html_() and ">Subject<" in s._repr_html_()
