"""The Dask backend from a script (issue 22, item 13): a run at the top level of a script
without ``if __name__ == "__main__":`` is refused in one line with the fix, before any
worker starts (they would import the script and start the run again)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")

RUN = """
from mixcv_core import CrossValidation
from mixcv_core.synthesizer import generate_grouped_regression
X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
{indent}res = (CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel")
{indent}       .set_run(backend="dask", n_jobs=1, store=False).perform().get_results())
{indent}print("status", res.status)
"""


def _script(tmp_path, guarded: bool) -> subprocess.CompletedProcess:
    body = RUN.format(indent="    " if guarded else "")
    if guarded:
        head, _, rest = body.partition("    res = ")
        body = head + 'if __name__ == "__main__":\n    res = ' + rest
    path = tmp_path / "experiment.py"
    path.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)


def test_an_unguarded_script_is_refused_in_one_line_with_the_fix(tmp_path):
    out = _script(tmp_path, guarded=False)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("mixcv_core.errors.SpecError: backend:") and "if __name__ == \"__main__\":" in last
    assert "Nanny" not in out.stderr and "status" not in out.stdout


def test_a_guarded_script_runs_on_a_local_cluster(tmp_path):
    out = _script(tmp_path, guarded=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "status finished" in out.stdout
