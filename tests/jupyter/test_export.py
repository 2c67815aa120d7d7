"""``%mixcv export NAME FILE``: the file's extension picks what is written; NAME is a stored run."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from mixcv_core import engine
from mixcv_core.experiment.spec import DataSpec, ExperimentSpec, ModelSpec, SplitSpec
from mixcv_core.tracking.store import RunStore


@pytest.fixture(scope="module")
def ip(ipython_shell):
    ipython_shell.run_line_magic("load_ext", "mixcv_jupyter")
    return ipython_shell


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-store")
    sleep = pd.read_csv("tests/data/sleepstudy.csv")
    spec = ExperimentSpec(DataSpec(target="Reaction", groups="Subject", slopes=("Days",)),
                          models=(ModelSpec("LMM", "LinearMixedEffectsModel"), ModelSpec("OLS", "LinearModel")),
                          outer=SplitSpec("GroupKFold", n_splits=3, _field="outer"))
    res = engine.run(spec, sleep, store=RunStore(folder))
    return folder, RunStore(folder).load(res.run_id)


@pytest.mark.parametrize(("name", "expected"), [
    ("report.html", '<div class="mixcv-methods">'),
    ("methods.md", "**References**"),
    ("methods.tex", r"\cite{bates2015}"),
    ("tables.tex", r"\toprule"),
])
def test_the_extension_picks_what_is_written_from_the_stored_run(ip, stored, tmp_path, capsys, name, expected):
    folder, run = stored
    ip.run_line_magic("mixcv", f'export {run.run_id[:12]} "{tmp_path / name}" --store "{folder}"')
    text = (tmp_path / name).read_text(encoding="utf-8")
    assert expected in text
    assert f"run {run.run_id} exported to" in capsys.readouterr().out
    if name == "methods.md":
        assert text == run.methods("markdown")
    if name == "tables.tex":
        assert text == run.to_latex()


def test_methods_tex_comes_with_the_bibtex_of_what_it_cites(ip, stored, tmp_path):
    folder, run = stored
    ip.run_line_magic("mixcv", f'export {run.run_id} "{tmp_path / "methods.tex"}" --store "{folder}"')
    bib = (tmp_path / "methods.bib").read_text(encoding="utf-8")
    assert [line.split("{")[1].rstrip(",") for line in bib.splitlines() if line.startswith("@")] \
        == list(run.citations()["key"])


def test_a_results_variable_may_be_named_instead_of_a_run_id(ip, stored, tmp_path):
    _, run = stored
    ip.user_ns["paper_run"] = run
    ip.run_line_magic("mixcv", f'export paper_run "{tmp_path / "m.txt"}"')
    assert (tmp_path / "m.txt").read_text(encoding="utf-8") == run.methods("text")


def test_an_unknown_extension_is_refused_naming_the_valid_ones_before_any_loading(ip, tmp_path):
    with pytest.raises(UsageError) as err:
        # The run id does not exist: the extension is refused first.
        ip.run_line_magic("mixcv", f'export no-such-run "{tmp_path / "paper.docx"}" --store "{tmp_path}"')
    message = str(err.value)
    assert "'.docx'" in message and ".html" in message and ".md" in message and ".tex" in message
    assert not (tmp_path / "runs.sqlite").exists()


def test_a_run_that_is_not_in_the_store_is_one_usage_error(ip, tmp_path):
    RunStore(tmp_path)
    with pytest.raises(UsageError, match="no run 'nope'"):
        ip.run_line_magic("mixcv", f'export nope "{tmp_path / "r.html"}" --store "{tmp_path}"')


def test_export_is_listed_in_the_help(ip):
    from mixcv_jupyter.cmd import help_text
    assert "%mixcv export [--store DIR] NAME FILE" in help_text()
