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
