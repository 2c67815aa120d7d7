"""The magic's settings: each source (%%mixcv option, cell key, %config, MIXCV_* variables,
[tool.mixcv] in pyproject.toml, defaults), their order, and misspelt names in every source; and the
form, which opens with them (a choice made in the form wins for its run, a bad value is said in the
form as the magic says it)."""

from __future__ import annotations

import html

import pytest
from IPython.core.error import UsageError

from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec
from mixcv_core.synthesizer import generate_grouped_regression
from mixcv_jupyter import Configurator
from mixcv_jupyter.settings import (
    FORM_PRECEDENCE,
    PRECEDENCE,
    SETTINGS,
    Resolved,
    env_name,
    precedence_text,
    resolve,
)

CELL = "data: df\ntarget: y\ngroups: group\nouter: GroupKFold(2)\ninner: GroupKFold(2)\nmodels: [LinearModel]\n"


@pytest.fixture
def ip(ipython_shell, tmp_path, monkeypatch):
    shell = ipython_shell
    shell.run_line_magic("load_ext", "mixcv_jupyter")
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
    shell.user_ns["df"] = X.assign(y=y, group=g)
    monkeypatch.chdir(tmp_path)                      # no pyproject.toml above tmp_path
    for var in [v for v in __import__("os").environ if v.startswith("MIXCV_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("MIXCV_STORE", str(tmp_path / "store"))
    yield shell
    magic = shell.magics_manager.registry["MixcvMagic"]
    for name in SETTINGS:
        setattr(magic, name, None)
    shell.config.pop("MixcvMagic", None)
    shell.user_ns.pop("df", None)


def magic_of(ip):
    return ip.magics_manager.registry["MixcvMagic"]


def dry_run(ip, line: str = "", cell: str = CELL, capsys=None) -> str:
    """The cell a dry run prints: the experiment as it would run."""
    ip.run_cell_magic("mixcv", f"--dry-run {line}", cell)
    return capsys.readouterr().out


def test_every_setting_is_a_config_trait_of_mixcv_magic(ip, capsys):
    magic = magic_of(ip)
    assert set(magic.class_own_traits(config=True)) == set(SETTINGS)
    ip.run_line_magic("config", "MixcvMagic")
    listed = capsys.readouterr().out
    for name in SETTINGS:
        assert f"MixcvMagic.{name}=" in listed and env_name(name) in listed


def test_help_lists_every_setting_with_its_variable_and_the_order(ip):
    text = repr(ip.run_line_magic("mixcv", "help"))
    for name in SETTINGS:
        assert f"\n  {name} " in text and env_name(name) in text
    assert " ".join(precedence_text().split()) in " ".join(text.split())


def test_defaults_are_the_experiments_own(ip):
    chosen = resolve(magic_of(ip), environ={})
    spec = ExperimentSpec(DataSpec("y"), (ModelSpec("Ridge", "Ridge"),))
    assert (chosen["seed"].value, chosen["n_jobs"].value, chosen["backend"].value) == (spec.seed, spec.n_jobs,
                                                                                      spec.backend)
    assert {c.source for c in chosen.values()} == {"default"}


def test_the_first_source_in_the_order_wins_at_every_level(ip, tmp_path):
    # n_jobs can come from all six sources: give each level and those below it a different value.
    values = dict(zip(PRECEDENCE, (6, 5, 4, 3, 2, 1)))
    for top in range(len(PRECEDENCE) - 1):
        present = PRECEDENCE[top:]
        (tmp_path / "pyproject.toml").write_text("[tool.mixcv]\nn_jobs = 2\n" if "pyproject" in present else "")
        magic_of(ip).n_jobs = 4 if "config" in present else None
        environ = {"MIXCV_N_JOBS": "3"} if "environment" in present else {}
        given = {source: {"n_jobs": Resolved(values[source], source, source)}
                 for source in ("option", "cell") if source in present}
        chosen = resolve(magic_of(ip), given, environ=environ)["n_jobs"]
        assert (chosen.source, chosen.value) == (PRECEDENCE[top], values[PRECEDENCE[top]])


def test_the_readme_states_the_order_the_code_keeps():
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert precedence_text() in readme


def test_pyproject_is_found_above_the_working_folder(ip, tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'study'\n\n[tool.mixcv]\nseed = 11\nn_jobs = 2\n")
    deeper = tmp_path / "notebooks" / "week1"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    chosen = resolve(magic_of(ip))
    assert chosen["seed"].value == 11 and str(tmp_path / "pyproject.toml") in chosen["seed"].where
    out = dry_run(ip, capsys=capsys)
    assert "seed: 11" in out and "n_jobs: 2" in out


def test_config_sets_the_seed_of_a_cell_that_names_none_and_the_cell_keeps_its_own(ip, capsys):
    ip.run_line_magic("config", "MixcvMagic.seed = 7")
    assert "seed: 7" in dry_run(ip, capsys=capsys)
    assert "seed: 3" in dry_run(ip, cell=CELL + "seed: 3\n", capsys=capsys)


def test_environment_sets_n_jobs_and_the_option_overrides_it(ip, monkeypatch, capsys):
    monkeypatch.setenv("MIXCV_N_JOBS", "2")
    assert "n_jobs: 2" in dry_run(ip, capsys=capsys)
    assert "n_jobs:" not in dry_run(ip, "--n-jobs 1", capsys=capsys)   # 1 is the default: not written


def test_quiet_from_pyproject_and_no_quiet_on_the_line(ip, tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text("[tool.mixcv]\nquiet = true\n")
    ip.run_cell_magic("mixcv", "-o quietly --no-store", CELL)
    assert "mixcv: finished; results stored as 'quietly'" in capsys.readouterr().out
    ip.run_cell_magic("mixcv", "-o loudly --no-store --no-quiet", CELL)
    out = capsys.readouterr().out
    assert "mixcv: finished" not in out and "stored as 'loudly'" in out


def test_the_store_setting_decides_where_runs_are_recorded_and_listed(ip, tmp_path):
    folder = tmp_path / "configured store"
    magic_of(ip).store = str(folder)
    ip.run_cell_magic("mixcv", "-o recorded --quiet", CELL)
    assert (folder / "runs.sqlite").exists()
    assert ip.run_line_magic("mixcv", "runs")["id"].tolist() == [ip.user_ns["recorded"].run_id]


def test_store_off_in_the_environment_records_nothing_and_runs_says_so(ip, monkeypatch):
    monkeypatch.setenv("MIXCV_STORE", "off")
    ip.run_cell_magic("mixcv", "-o unrecorded --quiet", CELL)
    assert ip.user_ns["unrecorded"].run_id is None
    with pytest.raises(UsageError, match=r"switched off \(\$MIXCV_STORE = 'off'\)"):
        ip.run_line_magic("mixcv", "runs")


def test_the_refresh_setting_reaches_the_live_view(ip, monkeypatch):
    from mixcv_jupyter import dashboard
    from mixcv_jupyter.cmd import run as run_module
    made = []

    class Recording(dashboard.LiveDashboard):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, display=lambda obj: None, **kwargs)
            made.append(self)

    monkeypatch.setattr(run_module, "_kernel_frontend", lambda shell: True)
    monkeypatch.setattr(dashboard, "LiveDashboard", Recording)
    monkeypatch.setenv("MIXCV_REFRESH", "1.5")
    ip.run_cell_magic("mixcv", "-o refreshed --no-store", CELL)
    assert [d.progress_interval for d in made] == [1.5]


def test_the_settings_subcommand_shows_each_value_and_its_source(ip, monkeypatch):
    monkeypatch.setenv("MIXCV_SEED", "5")
    ip.run_line_magic("config", "MixcvMagic.quiet = True")
    shown = ip.run_line_magic("mixcv", "settings")
    text = repr(shown)
    assert "seed = 5  ($MIXCV_SEED" in text and "quiet = True  (%config MixcvMagic.quiet" in text
    assert precedence_text() in text and "&gt;" in shown._repr_html_()
    form_order = precedence_text(FORM_PRECEDENCE)    # the form's order is said too, where it differs
    assert form_order in text and html.escape(form_order) in shown._repr_html_()


# -- misspelt names and bad values, named by their source --------------------------------
def test_a_misspelt_environment_variable_names_the_setting_and_others_are_left_alone(ip, monkeypatch):
    monkeypatch.setenv("MIXCV_N_JBOS", "2")
    with pytest.raises(UsageError, match=r"\$MIXCV_N_JBOS: no such setting \(did you mean \$MIXCV_N_JOBS\?\)"):
        ip.run_cell_magic("mixcv", "--dry-run", CELL)
    monkeypatch.delenv("MIXCV_N_JBOS")
    monkeypatch.setenv("MIXCV_ANCHORS_PYTHON", "/usr/bin/python3")   # a benchmark's variable, no typo
    assert resolve(magic_of(ip))["n_jobs"].source == "default"


def test_a_misspelt_pyproject_key_or_table_names_the_nearest(ip, tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.mixcv]\nn_job = 2\n")
    with pytest.raises(UsageError, match=r"\[tool.mixcv\]: no setting named 'n_job' \(did you mean 'n_jobs'\?\)"):
        ip.run_cell_magic("mixcv", "--dry-run", CELL)
    path.write_text("[tool.mixvc]\nn_jobs = 2\n")
    with pytest.raises(UsageError, match=r"\[tool.mixvc\] is not a table mixcv reads \(did you mean \[tool.mixcv\]"):
        resolve(magic_of(ip))


def test_a_misspelt_config_name_refuses_the_cell_once_naming_the_nearest(ip, capsys):
    with pytest.warns(UserWarning, match="Did you mean `refresh`"):      # traitlets' own word, at %config
        ip.run_line_magic("config", "MixcvMagic.refersh = 1.0")
    with pytest.raises(UsageError, match=r"MixcvMagic.refersh: no setting named 'refersh' \(did you mean 'refresh'"):
        ip.run_cell_magic("mixcv", "--dry-run", CELL)
    dry_run(ip, capsys=capsys)                                            # forgotten: the next cell runs


@pytest.mark.parametrize("source,message", [
    ("env", r"\$MIXCV_N_JOBS: expected a positive number of processes, or -1 for all cores, got 'two'"),
    ("env0", r"\$MIXCV_N_JOBS: must be a positive number of processes"),
    ("toml", r"pyproject.toml \[tool.mixcv\] n_jobs: expected a positive number of processes.*got '2' \(str\)"),
    ("toml_backend", r"\[tool.mixcv\] backend: must be one of 'local', 'dask', got 'dsk' \(did you mean 'dask'\?\)"),
    ("bad_toml", r"pyproject.toml: cannot be read as TOML"),
    ("quiet", r"\$MIXCV_QUIET: expected true or false \(also 1/0, yes/no, on/off\), got 'maybe'"),
])
def test_a_bad_value_is_refused_before_any_work_naming_where_it_was_written(ip, tmp_path, monkeypatch, source, message):
    if source == "env":
        monkeypatch.setenv("MIXCV_N_JOBS", "two")
    elif source == "env0":
        monkeypatch.setenv("MIXCV_N_JOBS", "0")
    elif source == "toml":
        (tmp_path / "pyproject.toml").write_text('[tool.mixcv]\nn_jobs = "2"\n')
    elif source == "toml_backend":
        (tmp_path / "pyproject.toml").write_text('[tool.mixcv]\nbackend = "dsk"\n')
    elif source == "bad_toml":
        (tmp_path / "pyproject.toml").write_text("[tool.mixcv\n")
    else:
        monkeypatch.setenv("MIXCV_QUIET", "maybe")
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("mixcv", "-o never", CELL)
    assert "never" not in ip.user_ns


def test_config_refuses_a_bad_value_at_once_and_keeps_the_last_good_one(ip, capsys):
    ip.run_line_magic("config", "MixcvMagic.n_jobs = 2")
    ip.run_line_magic("config", "MixcvMagic.n_jobs = 0")
    assert magic_of(ip).n_jobs == 2


def test_a_setting_that_conflicts_with_the_cell_names_its_source(ip, monkeypatch):
    monkeypatch.setenv("MIXCV_BACKEND", "dask")
    with pytest.raises(UsageError, match=r"\$MIXCV_BACKEND: a time limit needs local worker processes"):
        ip.run_cell_magic("mixcv", "--dry-run", CELL + "timeout: 5\n")


# -- the form opens with the settings -------------------------------------------------------
def ready(form):
    """Fill the form as a person would for the smallest valid run: y by group, LinearModel, 2 folds."""
    form.target.value, form.groups.value = "y", "group"
    form.outer_k.value = form.inner_k.value = 2
    next(c for c in form.cards if c.label == "LinearModel").enabled.value = True
    form.trials.value = 1
    return form


def test_the_form_opens_with_each_setting_from_the_first_source_that_gives_it(ip, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.mixcv]\nseed = 9\nn_jobs = 2\nbackend = 'dask'\n")
    monkeypatch.setenv("MIXCV_SEED", "5")
    monkeypatch.setenv("MIXCV_N_JOBS", "3")
    ip.run_line_magic("config", "MixcvMagic.seed = 7")
    form = ip.run_line_magic("mixcv", "ui df")
    # seed: %config (7) over the environment (5) and pyproject (9); n_jobs: the environment (3) over
    # pyproject (2); backend: pyproject over the default (local).
    assert (form.seed.value, form.n_jobs.value, form.backend.value) == (7, 3, "dask")
    spec = ready(form).to_spec()
    assert (spec.seed, spec.n_jobs, spec.backend) == (7, 3, "dask")
    note = html.unescape(form.settings_note.value)
    assert "seed 7 (%config MixcvMagic.seed)" in note and "n_jobs 3 ($MIXCV_N_JOBS)" in note
    assert f"backend dask ({tmp_path / 'pyproject.toml'} [tool.mixcv] backend)" in note
    assert form.scheduler.layout.display != "none"      # a Dask backend shows its scheduler's field


def test_a_form_made_in_python_reads_the_settings_of_its_shell_too(ip, monkeypatch):
    ip.run_line_magic("config", "MixcvMagic.n_jobs = 2")
    form = Configurator(ip.user_ns["df"], shell=ip)
    note = html.unescape(form.settings_note.value)
    assert form.n_jobs.value == 2 and "n_jobs 2 (%config MixcvMagic.n_jobs)" in note
    assert form.seed.value == 42 and "seed" not in note     # a default is not said to come from anywhere


def test_the_store_setting_fills_the_store_folder_or_ticks_do_not_record(ip, tmp_path, monkeypatch):
    monkeypatch.setenv("MIXCV_STORE", "off")
    assert ip.run_line_magic("mixcv", "ui df").no_store.value
    ip.run_line_magic("config", f"MixcvMagic.store = '{tmp_path / 'runs'}'")    # %config before the environment
    form = ip.run_line_magic("mixcv", "ui df")
    assert not form.no_store.value and form.store_dir.value == str(tmp_path / "runs")
    monkeypatch.delenv("MIXCV_STORE")
    ip.run_line_magic("config", "MixcvMagic.store = None")
    assert ip.run_line_magic("mixcv", "ui df").store_dir.value == ""   # the default: the engine's own folder


def test_what_the_user_sets_in_the_form_wins_for_its_run(ip, tmp_path, monkeypatch):
    from mixcv_core.tracking.store import RunStore
    monkeypatch.setenv("MIXCV_N_JOBS", "2")
    monkeypatch.setenv("MIXCV_STORE", str(tmp_path / "from_env"))
    form = ready(ip.run_line_magic("mixcv", "ui df"))
    assert form.n_jobs.value == 2
    form.n_jobs.value = 1
    form.store_dir.value = str(tmp_path / "from_form")
    results = form.run()
    assert results is not None and results.spec.n_jobs == 1, form.status.value
    assert RunStore(tmp_path / "from_form").runs()["id"].tolist() == [results.run_id]
    assert not (tmp_path / "from_env").exists()


def test_the_refresh_setting_reaches_the_forms_live_view(ip, monkeypatch):
    from mixcv_jupyter import dashboard
    made = []

    class Recording(dashboard.LiveDashboard):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dashboard, "LiveDashboard", Recording)
    monkeypatch.setenv("MIXCV_REFRESH", "1.5")
    form = ready(ip.run_line_magic("mixcv", "ui df"))
    form.no_store.value = True
    assert form.run() is not None
    assert [d.progress_interval for d in made] == [1.5]


@pytest.mark.parametrize("variable,text,slot", [
    ("MIXCV_N_JOBS", "two", "n_jobs"),
    ("MIXCV_N_JOBS", "0", "n_jobs"),
    ("MIXCV_BACKEND", "dsk", "backend"),
    ("MIXCV_SEED", "-1", "seed"),
    ("MIXCV_QUIET", "maybe", None),      # a setting without a control: said in the status line
])
def test_a_bad_environment_value_is_said_in_the_form_as_the_magic_says_it(ip, monkeypatch, variable, text, slot):
    monkeypatch.setenv(variable, text)
    with pytest.raises(UsageError) as refused:
        ip.run_cell_magic("mixcv", "--dry-run", CELL)
    said = str(refused.value)
    assert said.startswith(f"${variable}: ")
    form = ready(ip.run_line_magic("mixcv", "ui df"))    # opens: no traceback
    assert said in form.errors.values()
    assert html.escape(said) in form.status.value and form.run_button.disabled
    if slot is not None:
        assert html.escape(said) in getattr(form, f"msg_{slot}").value
    form.n_jobs.value = 1                                # a choice in the form does not make it go away
    assert form.run() is None and form.results is None


def test_the_readme_states_the_forms_order():
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert precedence_text(FORM_PRECEDENCE) in readme


def test_a_misspelt_config_name_is_said_in_the_form_without_speaking_of_a_cell(ip):
    with pytest.warns(UserWarning):
        ip.run_line_magic("config", "MixcvMagic.refersh = 1.0")
    form = ready(ip.run_line_magic("mixcv", "ui df"))    # opens: no traceback
    said = next(iter(form.errors.values()))
    assert "no setting named 'refersh' (did you mean 'refresh'" in said
    assert "cell" not in said and "nothing was run" in said
    assert html.escape(said) in form.status.value and form.run_button.disabled
