"""The magic's careless-input cases from issue 22's rough edges: an output name that would
replace the data or is a keyword, resuming a run made from Python, the `MIXCV_STORE=~/...`
folder."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from mixcv_core import CrossValidation, RunStore
from mixcv_core.engine import run
from mixcv_core.synthesizer import generate_grouped_regression

CELL = "data: df\ntarget: y\ngroups: group\nouter: GroupKFold(2)\nmodels: [LinearModel]\n"


@pytest.fixture
def ip(ipython_shell, tmp_path):
    shell = ipython_shell
    shell.run_line_magic("load_ext", "mixcv_jupyter")
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
    shell.user_ns["df"] = X.assign(y=y, group=g)
    yield shell
    shell.user_ns.pop("df", None)


def test_an_output_name_holding_the_data_frame_is_refused_and_the_data_kept(ip):
    with pytest.raises(UsageError, match="-o: 'df' holds a DataFrame"):
        ip.run_cell_magic("mixcv", "-o df --no-store", CELL)
    assert isinstance(ip.user_ns["df"], pd.DataFrame)


def test_a_keyword_as_output_name_is_refused(ip):
    with pytest.raises(UsageError, match="-o: 'class' is not a valid variable name"):
        ip.run_cell_magic("mixcv", "-o class --no-store", CELL)
    with pytest.raises(UsageError, match="not a valid variable name"):
        ip.run_line_magic("mixcv", "load some-run -o class")


def test_resuming_a_run_made_from_python_says_how_to_resume_it(ip, tmp_path):
    X, y, g, _ = generate_grouped_regression(4, 10, random_seed=1, n_features=2)
    store = RunStore(tmp_path / "store")
    spec = CrossValidation().set_data(X, y, g).set_splits(n_splits_out=2).add_model("LinearModel").to_spec()
    res = run(spec, X.assign(y=y, group=g), store=store, stop=lambda: True)
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mixcv", f'resume {res.run_id} --store "{store.path}"')
    message = str(info.value)
    assert "made from Python" in message and "CrossValidation.resume" in message and "None" not in message
