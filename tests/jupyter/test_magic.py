"""The magics through a real IPython InteractiveShell, and the live dashboard's throttle."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from mixcv_core import Results
from mixcv_core.experiment.cell import TOP_KEYS
from mixcv_core.run.events import EMIteration, FoldFinished, FoldStarted, RunFinished, RunStarted, TrialFinished
from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter.dashboard import LiveDashboard

CELL = """data: df
target: y
groups: group
slopes: [X0]
outer: GroupKFold(3)
inner: GroupKFold(2)
trials: 2
merf: {iterations: 3}
models:
  LinearMixedEffectsModel:
  RandomForestRegressor:
    n_estimators: 5
    max_depth: int(2, 4)
    merf: true
"""


@pytest.fixture(scope="module")
def ip(ipython_shell):
    shell = ipython_shell
    shell.run_line_magic("load_ext", "mixcv_jupyter")
    X, y, g, _ = generate_grouped_regression(6, 12, random_seed=1, n_features=3)
    shell.user_ns["df"] = X.assign(y=y, group=g)
    shell.user_ns["not_a_frame"] = [1, 2, 3]
    yield shell
    shell.user_ns.pop("df", None)


def test_cell_magic_runs_and_stores_results(ip, capsys):
    ip.run_cell_magic("mixcv", "-o res", CELL)
    res = ip.user_ns["res"]
    assert isinstance(res, Results)
    assert res.model_names == ["LinearMixedEffectsModel", "RandomForestRegressor", "MERF(RandomForestRegressor)"]
    out = capsys.readouterr().out
    # Outside a kernel (this shell, a terminal) the magic prints a readable text table.
    assert "Test folds, mean ± sd" in out and "MERF(RandomForestRegressor)" in out and "stored as 'res'" in out


def test_default_output_name_and_n_jobs_option(ip):
    ip.run_cell_magic("mixcv", "--n-jobs 2 --quiet", CELL)
    res = ip.user_ns["mixcv_results"]
    assert res.spec.n_jobs == 2


def test_backend_option_runs_the_cell_on_a_local_dask_cluster_with_the_same_results(ip):
    pytest.importorskip("distributed")
    ip.run_cell_magic("mixcv", "-o on_dask --backend dask --n-jobs 2 --quiet", CELL)
    ip.run_cell_magic("mixcv", "-o here --quiet", CELL)
    on_dask, here = ip.user_ns["on_dask"], ip.user_ns["here"]
    assert (on_dask.spec.backend, on_dask.spec.n_jobs) == ("dask", 2)
    times = ["fit_time", "tune_time"]
    assert on_dask.to_frame().drop(columns=times).equals(here.to_frame().drop(columns=times))


def test_dry_run_fits_nothing(ip, monkeypatch, capsys):
    from mixcv_core.run import task, tuning
    calls = []
    for module in (task, tuning):  # where fits are called from
        monkeypatch.setattr(module, "fit_estimator", lambda *a, **k: calls.append(a))
    ip.user_ns.pop("dry", None)
    ip.run_cell_magic("mixcv", "--dry-run -o dry", CELL)
    assert calls == [] and "dry" not in ip.user_ns


def test_spec_line_magic_prints_the_cell_that_reproduces_results(ip, capsys):
    ip.run_cell_magic("mixcv", "-o again --quiet", CELL)
    capsys.readouterr()
    ip.run_line_magic("mixcv", "spec again")
    printed = capsys.readouterr().out
    assert printed.startswith("%%mixcv -o again\n")
    from mixcv_core.experiment.cell import parse_cell
    assert parse_cell(printed.split("\n", 1)[1]).spec == ip.user_ns["again"].spec


def test_show_models_splits_help(ip):
    ip.run_cell_magic("mixcv", "-o shown --quiet --no-store", CELL)
    shown = ip.run_line_magic("mixcv", "show shown")
    assert shown.results is ip.user_ns["shown"] and "application/vnd.jupyter.widget-view+json" in \
        shown._repr_mimebundle_()
    assert "RandomForestRegressor" in repr(ip.run_line_magic("mixcv", "models"))
    assert "StratifiedGroupKFold" in repr(ip.run_line_magic("mixcv", "splits"))
    assert "choice(" in repr(ip.run_line_magic("mixcv", "help"))


@pytest.mark.parametrize("line,cell,message", [
    ("", CELL.replace("data: df", "data: dff"), "line 2, data: there is no variable named 'dff'; DataFrames"),
    ("", CELL.replace("data: df", "data: not_a_frame"), "line 2, data: 'not_a_frame' is a list"),
    ("", CELL.replace("target: y", "target: yy"), "line 3, target: column 'yy' is not in the data"),
    ("", CELL.replace("slopes: [X0]", "slopes: [Z9]"), "line 5, slopes: column 'Z9'"),
    ("", CELL.replace("outer: GroupKFold(3)", "outer: GroupKFold(9)"), "line 6, outer: GroupKFold with 9 folds"),
    ("", CELL.replace("trials: 2", "trails: 2"), "line 8, trails: unknown key (did you mean 'trials'?)"),
    ("", CELL.replace("max_depth: int(2, 4)", "max_depth: int(2, four)"), "line 14, models.RandomForestRegressor.max_depth: bad range"),
    ("-o 3x", CELL, "-o: '3x' is not a valid variable name"),
    ("--n-jobs 0", CELL, "--n-jobs: must be a positive number"),
    ("--scheduler localhost:8786", CELL, "--scheduler: must be an address such as 'tcp://host:port'"),
    ("--backend dask", CELL + "timeout: 5\n", "--backend: a time limit needs local worker processes"),
    ("--bogus", CELL, "unrecognized arguments: --bogus; usage: %%mixcv [-o NAME]"),
])
def test_bad_cells_give_one_short_message(ip, line, cell, message):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("mixcv", line, cell)
    assert message in str(info.value)


def test_bad_cell_shows_no_traceback_in_the_notebook(ip, capsys):
    result = ip.run_cell("%%mixcv\n" + CELL.replace("target: y", "target: yy"))
    assert isinstance(result.error_in_exec, UsageError)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "line 3, target" in text and "Traceback" not in text


def test_extension_can_be_unloaded_and_loaded_again(ip):
    ip.run_line_magic("unload_ext", "mixcv_jupyter")
    assert "mixcv" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "mixcv_jupyter")
    assert "mixcv" in ip.magics_manager.magics["cell"]


# -- dashboard ---------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeHandle:
    def __init__(self, log):
        self.log = log

    def update(self, obj):
        self.log.append(obj)


def test_dashboard_redraws_the_plot_within_its_time_budget(monkeypatch):
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
    clock = FakeClock()
    log = []
    dash = LiveDashboard(display=lambda obj: (log.append(obj), FakeHandle(log))[1], clock=clock)

    def slow_draw(self=dash):
        # Each redraw "takes" 0.1 s of the fake clock.
        clock.t += 0.1
        dash.draw_seconds += 0.1
        dash.n_draws += 1
        dash._last_draw = clock.t
        dash._png = f"data:image/png;base64,{dash.n_draws}"

    monkeypatch.setattr(dash, "_draw_plot", slow_draw)
    spec = ExperimentSpec(DataSpec("y", "g"), (ModelSpec("RF", "RandomForestRegressor", add_merf=True),))
    dash.on_event(RunStarted(spec=spec, n_folds=2, model_names=("RF", "MERF(RF)"), n_rows=10))
    for it in range(1, 401):       # 400 EM iterations arriving every 0.05 s: 20 s of run
        clock.t += 0.05
        dash.on_event(EMIteration(fold=it % 2, model="MERF(RF)", iteration=it, gll=1.0 / it, sigma2=1.0, D=None))
        assert dash.draw_seconds <= dash.budget * clock.t + 0.1 + 1e-9  # at most one draw over budget
    assert dash.n_draws >= 5
    assert dash.draw_seconds / clock.t <= 0.05 + 0.1 / clock.t
    images = {o._repr_html_().split("src='")[1].split("'")[0] for o in log if "mixcv-em-live" in o._repr_html_()}
    assert len(images) == dash.n_draws  # every redraw replaced the image


def test_dashboard_tracks_progress_per_model_and_fold():
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
    log = []
    dash = LiveDashboard(display=lambda obj: (log.append(obj), FakeHandle(log))[1], progress_interval=0)
    spec = ExperimentSpec(DataSpec("y"), (ModelSpec("Ridge", "Ridge"),))
    dash.on_event(RunStarted(spec=spec, n_folds=2, model_names=("Ridge",), n_rows=10))
    dash.on_event(TrialFinished(fold=0, model="Ridge", trial=2, value=1.0, params={}, n_trials=5))
    assert "tuning 3/5" in repr(log[-1])
    dash.on_event(FoldFinished(fold=0, model="Ridge", metrics={"test_r2": 0.5, "test_mse": 0.25}, fit_time=0.1))
    assert "done · MSE 0.250 ↓" in repr(log[-1]) and "1/2 fits finished" in repr(log[-1])   # tuning's metric


def test_runs_and_load_line_magics(ip, tmp_path, capsys):
    store = tmp_path / "store"
    ip.run_cell_magic("mixcv", f"-o stored --quiet --store {store}", CELL)
    run_id = ip.user_ns["stored"].run_id
    table = ip.run_line_magic("mixcv", f"runs {store}")
    assert table["id"].tolist() == [run_id] and table.loc[0, "status"] == "finished"
    ip.run_line_magic("mixcv", f"load {run_id[:15]} -o reloaded --store {store}")
    assert "loaded as 'reloaded'" in capsys.readouterr().out
    import pandas as pd
    pd.testing.assert_frame_equal(ip.user_ns["reloaded"].summary, ip.user_ns["stored"].summary)
    with pytest.raises(UsageError, match="no run 'nope'"):
        ip.run_line_magic("mixcv", f"load nope --store {store}")


def test_no_store_option(ip, tmp_path, monkeypatch):
    ip.run_cell_magic("mixcv", "-o unstored --quiet --no-store", CELL)
    assert ip.user_ns["unstored"].run_id is None


def test_tracker_options(ip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    ip.run_cell_magic("mixcv", f"-o tracked --quiet --no-store --neptune-mode offline --neptune ws/proj --mlflow {uri}",
                      CELL)
    assert list(tmp_path.glob(".neptune/offline/run__*/data-1.log"))
    from mlflow.tracking import MlflowClient
    (exp,) = [e for e in MlflowClient(uri).search_experiments() if e.name == "mixcv"]
    (run,) = MlflowClient(uri).search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"


# -- help and options, written once ----------------------------------------------------
def test_help_is_written_for_a_researcher_and_lists_every_option_and_subcommand(ip):
    from mixcv_core.experiment.cell import TOP_KEYS
    from mixcv_jupyter.cmd import CELL_PARSER, COMMANDS
    text = repr(ip.run_line_magic("mixcv", "help"))
    for action in CELL_PARSER._actions:
        for flag in action.option_strings:
            assert flag in text, flag
    for name in COMMANDS:
        assert f"%mixcv {name}" in text, name
    for key in TOP_KEYS:
        assert f"\n  {key} " in text, key
    assert "%%mixcv -o results\n  data: df" in text          # an example cell
    assert "choice(" in text and "README" in text              # ranges; where to read more
    for internal in ("ExperimentSpec", "parse_cell", "spec_to_cell", "``", ":func:", "`mixcv_core"):
        assert internal not in text, internal
    html = ip.run_line_magic("mixcv", "help")._repr_html_()
    assert "&lt;name&gt;" in html and "<name>" not in html    # escaped in the HTML view


def test_the_magic_docstring_is_the_same_help():
    from mixcv_jupyter.cmd import help_text
    from mixcv_jupyter.magic import MixcvMagics
    assert MixcvMagics.mixcv.__doc__ == help_text()


def test_every_subcommand_has_its_own_parser_and_bad_arguments_show_its_usage(ip):
    with pytest.raises(UsageError, match=r"usage: %mixcv load .*RUN_ID"):
        ip.run_line_magic("mixcv", "load")
    with pytest.raises(UsageError, match=r"unrecognized arguments: extra; usage: %mixcv spec NAME"):
        ip.run_line_magic("mixcv", "spec a extra")
    with pytest.raises(UsageError, match="unknown %mixcv command 'bogus'; use one of: help, models"):
        ip.run_line_magic("mixcv", "bogus")


def test_options_use_shell_quoting(ip, tmp_path):
    folder = tmp_path / "dir with spaces"
    ip.run_cell_magic("mixcv", f'-o quoted --quiet --store "{folder}"', CELL)
    assert (folder / "runs.sqlite").exists()
    assert not list(tmp_path.glob('"*'))  # no folder named with the quote characters
    table = ip.run_line_magic("mixcv", f'runs "{folder}"')
    assert table["id"].tolist() == [ip.user_ns["quoted"].run_id]
    with pytest.raises(UsageError, match="No closing quotation"):
        ip.run_line_magic("mixcv", 'runs "unclosed')


def test_a_cell_with_several_mistakes_names_them_all(ip):
    bad = (CELL.replace("outer: GroupKFold(3)", "outer: GroupKFold(1)").replace("trials: 2", "trails: 2")
           .replace("max_depth: int(2, 4)", "max_depth: int(2, four)"))
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("mixcv", "", bad)
    assert str(info.value).splitlines() == [
        "3 problems in the cell:",
        "  line 6, outer: must be an integer >= 2, got 1",
        "  line 8, trails: unknown key (did you mean 'trials'?); expected one of " + ", ".join(TOP_KEYS),
        "  line 14, models.RandomForestRegressor.max_depth: bad range 'int(2, four)': high must be an integer, "
        "got 'four'",
    ]


def test_the_live_view_estimates_the_time_left_once_a_few_fits_finished():
    from mixcv_jupyter.dashboard import MIN_FOR_ESTIMATE, LiveDashboard
    dash = LiveDashboard(display=lambda obj: None)
    assert dash.time_left(MIN_FOR_ESTIMATE - 1, 10, 30.0) is None        # too early to say
    assert dash.time_left(4, 10, 40.0) == pytest.approx(60.0)             # 10 s a fit, 6 to go
    assert dash.time_left(10, 10, 40.0) is None                           # nothing left


def test_the_explorer_has_every_tab_built_on_the_report_pieces(ip):
    from mixcv_jupyter.explorer import TABS, Explorer
    ip.run_cell_magic("mixcv", "-o explored --quiet --no-store", CELL)
    res = ip.user_ns["explored"]
    ex = Explorer(res)
    assert ex.widget.titles == ("Summary", "Per fold", "Comparison", "Plots", "Models", "Checks") == tuple(TABS)
    assert [p.value != "" for p in ex._panes] == [True] + [False] * 5    # the rest drawn when opened
    ex.widget.selected_index = 3
    assert ex._panes[3].value.count("<img") >= 4                          # the figures, as images
    assert "p_holm" in ex.tab_html("Comparison") and "corrected" in ex.tab_html("Comparison")
    models = ex.tab_html("Models")
    assert "Linear mixed model fit by REML" in models and "random effects" in models
    assert "best_params" in models                                        # the tuned forest's choices
    assert "Methodology checks" in ex.tab_html("Checks")
    assert "mixcv-scroll" in ex.tab_html("Per fold")
    bundle = ex._repr_mimebundle_()
    assert bundle["text/html"] == ex._panes[0].value and "mixcv-report" in bundle["text/html"]
    # With the extension loaded, any Results displayed in the notebook is the explorer.
    data, _ = ip.display_formatter.format(res)
    assert "application/vnd.jupyter.widget-view+json" in data and "mixcv-report" in data["text/html"]


def test_resume_line_magic_finishes_an_interrupted_run(ip, tmp_path, capsys):
    import pandas as pd

    from mixcv_core.engine import run
    from mixcv_core.experiment.cell import parse_cell
    from mixcv_core.run.events import FoldFinished
    store = tmp_path / "store"
    spec = parse_cell(CELL).spec
    seen: list[int] = []
    cut = run(spec, ip.user_ns["df"], store=store, stop=lambda: len(seen) >= 2,
              observers=[lambda e: seen.append(e.fold) if isinstance(e, FoldFinished) else None])
    assert cut.status == "interrupted"
    ip.run_line_magic("mixcv", f"resume {cut.run_id} -o finished --store {store}")
    assert "resumed (finished)" in capsys.readouterr().out
    ip.run_cell_magic("mixcv", "-o whole --quiet --no-store", CELL)
    times = ["fit_time", "tune_time"]
    pd.testing.assert_frame_equal(ip.user_ns["finished"].to_frame().drop(columns=times),
                                  ip.user_ns["whole"].to_frame().drop(columns=times))
    frame = ip.user_ns.pop("df")
    try:
        with pytest.raises(UsageError, match="'df', which is not in this notebook"):
            ip.run_line_magic("mixcv", f"resume {cut.run_id} --store {store}")
    finally:
        ip.user_ns["df"] = frame   # the module's other tests use it


def test_the_backend_option_lists_and_explains_its_values_in_help():
    from mixcv_jupyter.cmd import CELL_PARSER
    text = " ".join(CELL_PARSER.format_help().split())
    assert "--backend {local,dask}" in text
    assert "local (worker processes on this machine, the default) or dask (a Dask cluster" in text


def test_a_shown_report_is_not_followed_by_the_same_convergence_warning_in_stderr(ip, monkeypatch):
    import warnings

    from mixcv_core import ConvergenceWarning
    from mixcv_jupyter.cmd import run as magic
    cell = CELL.replace("merf: {iterations: 3}", "merf: {iterations: 1}")   # MERF cannot converge in one
    monkeypatch.setattr(magic, "_kernel_frontend", lambda shell: True)       # the report is displayed
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        ip.run_cell_magic("mixcv", "-o conv --no-store", cell)
    assert not ip.user_ns["conv"].to_frame()["converged"].dropna().all()     # the report says so...
    assert not [w for w in shown if issubclass(w.category, ConvergenceWarning)]  # ...once
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        ip.run_cell_magic("mixcv", "-o conv --no-store --quiet", cell)      # no report: the warning is it
    assert [w for w in quiet if issubclass(w.category, ConvergenceWarning)]


def test_a_stopped_run_counts_in_the_live_view_the_folds_each_model_finished():
    from types import SimpleNamespace

    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
    log = []
    dash = LiveDashboard(display=lambda obj: (log.append(obj), FakeHandle(log))[1], progress_interval=0)
    spec = ExperimentSpec(DataSpec("y", "g"), (ModelSpec("LinearModel", "LinearModel"), ModelSpec("Ridge", "Ridge")))
    dash.on_event(RunStarted(spec=spec, n_folds=5, model_names=("LinearModel", "Ridge"), n_rows=10))
    for k in range(4):
        dash.on_event(FoldFinished(fold=k, model="LinearModel", metrics={"test_r2": 0.5}, fit_time=0.1))
    for k in range(2):
        dash.on_event(FoldFinished(fold=k, model="Ridge", metrics={"test_r2": 0.5}, fit_time=0.1))
    dash.on_event(FoldStarted(fold=2, model="Ridge"))
    dash.on_event(RunFinished(results=SimpleNamespace(status="interrupted")))
    shown = log[-1]
    assert "the outer folds each model finished, of 5: LinearModel 4, Ridge 2" in shown._repr_html_()
    assert "stopped; the outer folds each model finished, of 5: LinearModel 4, Ridge 2" in repr(shown)
    assert "fitting" not in repr(shown) and repr(shown).count("not run") == 4


def test_the_live_table_says_which_repeat_each_fold_belongs_to():
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
    log = []
    dash = LiveDashboard(display=lambda obj: (log.append(obj), FakeHandle(log))[1], progress_interval=0)
    spec = ExperimentSpec(DataSpec("y", "g"), (ModelSpec("Ridge", "Ridge"),),
                          outer=SplitSpec("GroupKFold", 2, n_repeats=3))
    dash.on_event(RunStarted(spec=spec, n_folds=6, model_names=("Ridge",), n_rows=10))
    page = log[-1]._repr_html_()
    assert page.count("colspan='2' class='mixcv-repeat'") == 3 and "repeat 2</th>" in page
    assert "Ridge: r0 waiting | r0 waiting | r1 waiting" in repr(log[-1])


def test_the_explorer_shows_an_lmm_under_the_datas_names_and_says_which_fold():
    from pathlib import Path

    import pandas as pd

    from mixcv_core.engine import run
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
    from mixcv_jupyter.explorer import Explorer
    d = pd.read_csv(Path(__file__).parent.parent / "data" / "lmm" / "oxboys.csv")   # nlme's Oxboys
    spec = ExperimentSpec(DataSpec("height", "Subject", slopes=("age",)), (ModelSpec("LMM", "LinearMixedEffectsModel"),),
                          outer=SplitSpec("GroupKFold", 3, n_repeats=2))
    res = run(spec, d, store=False, save_models=True)
    models = Explorer(res).tab_html("Models")
    assert "height ~ age + (1 + age | Subject)" in models and "y ~" not in models
    n_train = int(res.to_frame().query("model == 'LMM' and fold == 0")["n_train"].iloc[0])
    assert f"Fitted on outer fold 0 of 6 (repeat 0): its {n_train} training rows" in models


def test_the_per_fold_wide_tables_say_each_folds_repeat_and_scroll_sideways():
    import re
    from pathlib import Path

    import optuna.distributions as od
    import pandas as pd

    from mixcv_core.engine import run
    from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec, TuningSpec
    from mixcv_core.results import report as rp
    from mixcv_jupyter.explorer import Explorer
    d = pd.read_csv(Path(__file__).parent.parent / "data" / "sleepstudy.csv")   # lme4's sleepstudy
    spec = ExperimentSpec(DataSpec("Reaction", "Subject", features=("Days",)),
                          (ModelSpec("LinearModel", "LinearModel"),
                           ModelSpec("Ridge", "Ridge", params={"alpha": od.FloatDistribution(0.01, 10, log=True)},
                                     requires_inner_cv=True)),
                          outer=SplitSpec("GroupKFold", 3, n_repeats=2), inner=SplitSpec("GroupKFold", 2),
                          tuning=TuningSpec(2))
    res = run(spec, d, store=False, save_models=True)
    tuned = rp.tuned_params_html(res)
    header = re.findall(r"<th [^>]*>([^<]*)</th>", tuned)[:4]
    assert header[:3] == ["model", "repeat", "fold"], header
    # fold 4 is the second repeat's second fold: 3 folds per repeat.
    assert re.search(r">Ridge</td>\s*<td[^>]*>1</td>\s*<td[^>]*>4</td>", tuned)
    models = Explorer(res).tab_html("Models")
    assert "fold 4 (repeat 1)" in models and "fold 0 (repeat 0)" in models
    for page in (tuned, rp.fold_table_html(res), models):
        assert "mixcv-scroll" in page
    assert "::-webkit-scrollbar" in rp.CSS                        # a scrollbar that stays in sight
    single = run(ExperimentSpec(DataSpec("Reaction", "Subject", features=("Days",)),
                                (ModelSpec("LinearModel", "LinearModel"),), outer=SplitSpec("GroupKFold", 3)),
                 d, store=False)
    assert ">repeat<" not in rp.fold_table_html(single) and ">repeat<" in rp.fold_table_html(res)
