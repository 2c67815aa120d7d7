"""The engine stays free of its front ends and of optional trackers."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_engine_pulls_in_no_front_end_or_tracker():
    code = ("import sys, mixcv_core, mixcv_core.experiment.cell, mixcv_core.tracking.store, mixcv_core.merf, mixcv_core.models.lmm, "
            "mixcv_core.tracking.mirrors; print(sorted(m for m in ('IPython', 'ipywidgets', 'neptune', 'mlflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_is_listed():
    import mixcv_core
    for name in mixcv_core.__all__:
        assert hasattr(mixcv_core, name), name


def test_results_accessors_do_not_import_results_back_even_for_types():
    # import-linter skips imports under TYPE_CHECKING; the accessors read a RunView, so none is needed
    import ast
    from pathlib import Path

    import mixcv_core.results as package
    folder = Path(package.__file__).parent
    for name in ("checks", "compare", "plots", "report", "_run"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "results" not in imported and "mixcv_core.results.results" not in imported, name


def test_importing_the_engine_leaves_tuning_plotting_statistics_and_cluster_packages_for_first_use():
    # import mixcv_core should cost little more than scikit-learn (tests/benchmarks/bench_import.py
    # measures it): Optuna comes with the first search space or study, matplotlib with the first
    # figure, jinja2 with the first HTML report, statsmodels and Dask when asked for.
    heavy = ("optuna", "matplotlib", "statsmodels", "distributed", "dask", "jinja2")
    code = ("import sys, mixcv_core, mixcv_core.experiment.cell, mixcv_core.tracking.store, "
            f"mixcv_core.experiment.model_mapping; print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_results_view_imports_its_plotting_module_when_first_drawn():
    code = ("import sys; from mixcv_core.results import results; before = 'matplotlib' in sys.modules; "
            "fig = results.plots._figure(2, 1); print(before, type(fig).__name__, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "MixcvFigure", "True"]
