"""On Dask, a model that crashes its worker fails only its own folds (issue 22, item 11): the
tasks that shared the dead worker run again alone, as on the local backend, instead of
failing as "cancelled outside this run (twice)"."""

from __future__ import annotations

import pytest
from _helpers import DiesInFold

from mixcv_core import CrossValidation, FoldFailedWarning
from mixcv_core.run import cluster
from mixcv_core.synthesizer import generate_grouped_regression

pytest.importorskip("distributed", reason="the Dask backend is tested with mixcv[dask] installed")


def test_a_model_that_kills_its_dask_worker_fails_only_its_own_folds():
    X, y, g, _ = generate_grouped_regression(6, 10, random_seed=1, n_features=2)
    # GroupKFold(3) on 6 groups of 10: every outer training set has 40 rows, so the
    # culprit kills its worker in every fold; the LinearModel and Ridge fits must all survive.
    try:
        with pytest.warns(FoldFailedWarning, match="every fold of DiesInFold failed"):
            res = (CrossValidation().set_data(X, y, g).set_splits("GroupKFold", n_splits_out=3)
                   .add_model("LinearModel").add_model(DiesInFold, model_kwargs={"die_n": 40}).add_model("Ridge")
                   .set_run(backend="dask", n_jobs=2, store=False).perform().get_results())
    finally:
        cluster.close_local_cluster()
    ok = {(o.model, o.fold): o.ok for o in res.outcomes}
    assert all(ok[(m, k)] for m in ("LinearModel", "Ridge") for k in range(3)), res.failures
    assert not any(ok[("DiesInFold", k)] for k in range(3))
    assert all("cancelled outside this run (twice)" not in e for e in res.failures["error"])
