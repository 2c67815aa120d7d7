"""MERF against a straightforward implementation of the paper's EM updates.

The reference below is written the obvious way — a Python loop over clusters with
the dense n_i x n_i covariance V_i and its pseudo-inverse, as in Hajjem et al. (2014)
and merf 1.0 — and shares no code with mixcv's vectorised version.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor

from mixcv_core import MixcvError
from mixcv_core.merf import MERF, MERFRegressor

#: merf 1.0's algorithm: no linear fixed part, a fixed number of iterations.
CLASSIC = {"linear_fixed_effects": False, "tol": None}


def reference_merf(base, X, Z, clusters, y, n_iter):
    labels = sorted(set(clusters))
    idx = {c: np.flatnonzero(clusters == c) for c in labels}
    n, q = Z.shape
    K = len(labels)
    b = {c: np.zeros(q) for c in labels}
    sigma2, D = 1.0, np.eye(q)
    out = []
    for _ in range(n_iter):
        y_star = y.copy()
        for c in labels:
            y_star[idx[c]] = y[idx[c]] - Z[idx[c]] @ b[c]
        base.fit(X, y_star)
        f = base.predict(X)
        s_sum, D_sum = 0.0, np.zeros((q, q))
        for c in labels:
            i = idx[c]
            Zi, ri = Z[i], y[i] - f[i]
            Vinv = np.linalg.pinv(Zi @ D @ Zi.T + sigma2 * np.eye(len(i)))
            b[c] = D @ Zi.T @ Vinv @ ri
            e = ri - Zi @ b[c]
            s_sum += e @ e + sigma2 * (len(i) - sigma2 * np.trace(Vinv))
            D_sum += np.outer(b[c], b[c]) + D - D @ Zi.T @ Vinv @ Zi @ D
        sigma2, D = s_sum / n, D_sum / K
        gll = 0.0
        for c in labels:
            i = idx[c]
            e = y[i] - f[i] - Z[i] @ b[c]
            gll += (e @ e / sigma2 + b[c] @ np.linalg.pinv(D) @ b[c]
                    + np.linalg.slogdet(D)[1] + len(i) * np.log(sigma2))
        out.append({"b": np.array([b[c] for c in labels]), "sigma2": sigma2, "D": D.copy(), "gll": gll})
    return labels, out


def clustered(q, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 3, 7, 12, 20, 5, 9, 1, 15]          # unbalanced, two clusters of size one
    names = [f"c{j:02d}" for j in range(len(sizes))]
    clusters = np.repeat(names, sizes)
    n = len(clusters)
    X = rng.normal(size=(n, 3))
    Z = np.column_stack([np.ones(n), rng.normal(size=(n, q - 1))]) if q > 1 else np.ones((n, 1))
    codes = pd.factorize(clusters, sort=True)[0]
    B = rng.normal(0, 1.0, (len(sizes), q))
    y = X @ [1.5, -1.0, 0.5] + np.einsum("nj,nj->n", Z, B[codes]) + rng.normal(0, 0.3, n)
    return X, Z, clusters, y


@pytest.mark.parametrize("q", [1, 3])
@pytest.mark.parametrize("base", [LinearRegression(), DecisionTreeRegressor(max_depth=3, random_state=0)],
                         ids=["linear", "tree"])
def test_em_matches_the_reference_updates(q, base):
    # linear_fixed_effects=False is merf 1.0's algorithm, update for update.
    X, Z, clusters, y = clustered(q)
    n_iter = 6
    labels, ref = reference_merf(base, X, Z, clusters, y, n_iter)
    m = MERF(base, max_iterations=n_iter, **CLASSIC).fit(X, Z, clusters, y)
    assert list(m.trained_b.index) == labels
    assert len(m.gll_history) == n_iter and len(m.sigma2_hat_history) == n_iter + 1
    for it in range(n_iter):
        np.testing.assert_allclose(m.b_hat_history[it + 1].to_numpy(), ref[it]["b"], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(m.sigma2_hat_history[it + 1], ref[it]["sigma2"], rtol=1e-8)
        np.testing.assert_allclose(m.D_hat_history[it + 1], ref[it]["D"], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(m.gll_history[it], ref[it]["gll"], rtol=1e-8)


def test_prediction_uses_random_effects_only_for_known_clusters():
    X, Z, clusters, y = clustered(2)
    m = MERF(LinearRegression(), max_iterations=5, **CLASSIC).fit(X, Z, clusters, y)
    new = np.array(["c03", "unseen", "c09"])
    pred = m.predict(X[:3], Z[:3], new)
    fixed = m.trained_fe_model.predict(X[:3])
    b = m.trained_b
    np.testing.assert_allclose(pred, fixed + np.array([Z[0] @ b.loc["c03"], 0.0, Z[2] @ b.loc["c09"]]))


def test_accepts_arrays_series_frames_and_any_hashable_labels():
    X, Z, clusters, y = clustered(2)
    codes = pd.factorize(clusters, sort=True)[0]
    tuples = [(int(c), "x") for c in codes]
    a = MERF(LinearRegression(), max_iterations=3, **CLASSIC).fit(pd.DataFrame(X), pd.DataFrame(Z), pd.Series(clusters), pd.Series(y))
    b = MERF(LinearRegression(), max_iterations=3, **CLASSIC).fit(X, Z, pd.Series(tuples), y.reshape(-1, 1))
    np.testing.assert_allclose(a.gll_history, b.gll_history, rtol=1e-12)


def test_never_mutates_the_base_model_and_refits_cleanly():
    X, Z, clusters, y = clustered(1)
    base = DecisionTreeRegressor(max_depth=2, random_state=0)
    m = MERF(base, max_iterations=3, **CLASSIC)
    m.fit(X, Z, clusters, y)
    assert not hasattr(base, "tree_")
    assert m.trained_fe_model is not base
    first = list(m.gll_history)
    m.fit(X, Z, clusters, y)
    assert m.gll_history == first and len(m.b_hat_history) == 4
    # histories are snapshots, not views of the final state
    assert not np.shares_memory(m.b_hat_history[-1].to_numpy(), m.trained_b.to_numpy())


def test_an_early_stop_on_the_gll_is_called_stopped_early_not_converged():
    X, Z, clusters, y = clustered(1)
    # tol=1e-12: the estimates have not settled to that when the GLL's relative change is 1e-4
    m = MERF(LinearRegression(), max_iterations=200, gll_early_stop_threshold=1e-4, gll_early_stop_window=3,
             linear_fixed_effects=False, tol=1e-12)
    m.fit(X, Z, clusters, y)
    assert m.converged_ is False and m.n_iter_ < 200
    assert m.stop_reason_.startswith(f"stopped early at iteration {m.n_iter_} (relative GLL change < 0.0001 for 3")
    assert "before the EM converged" in m.stop_reason_
    g = np.array(m.gll_history)
    assert np.all(np.abs(np.diff(g[-4:]) / g[-4:-1]) < 1e-4)
    assert np.abs((g[-4] - g[-5]) / g[-5]) >= 1e-4  # it did not stop a window late
    capped = MERF(LinearRegression(), max_iterations=2, gll_early_stop_threshold=1e-12,
                  linear_fixed_effects=False).fit(X, Z, clusters, y)
    assert capped.converged_ is False and "max_iterations=2" in capped.stop_reason_


def test_callback_sees_every_iteration():
    X, Z, clusters, y = clustered(2)
    seen = []
    m = MERF(LinearRegression(), max_iterations=4, callback=seen.append, **CLASSIC).fit(X, Z, clusters, y)
    assert [s["iteration"] for s in seen] == [1, 2, 3, 4]
    assert [s["gll"] for s in seen] == m.gll_history
    assert list(m.history_["iteration"]) == [1, 2, 3, 4]
    assert (m.history_[["fe_time", "em_time"]] >= 0).all().all()


@pytest.mark.parametrize("kwargs,field", [
    ({"Z": np.ones((5, 1))}, "Z"),
    ({"Z": np.array([["a"]] * 75)}, "Z"),
    ({"clusters": np.array([1.0] * 74 + [np.nan])}, "clusters"),
    ({"clusters": np.array([1.0] * 70)}, "clusters"),
    ({"y": np.ones(74)}, "y"),
])
def test_bad_input_names_the_argument(kwargs, field):
    X, Z, clusters, y = clustered(1)
    args = {"X": X, "Z": Z, "clusters": clusters, "y": y, **kwargs}
    with pytest.raises(MixcvError) as info:
        MERF(LinearRegression(), max_iterations=2).fit(**args)
    assert info.value.field == field


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_max_iterations_below_one(bad):
    X, Z, clusters, y = clustered(1)
    with pytest.raises(MixcvError) as info:
        MERF(LinearRegression(), max_iterations=bad).fit(X, Z, clusters, y)
    assert info.value.field == "max_iterations"


def test_grouped_adapter_pickles_without_its_event_sink():
    from mixcv_core.run.fitting import _EMReporter
    X, Z, clusters, y = clustered(2)
    events = []
    reg = MERFRegressor(LinearRegression(), max_iterations=2, callback=_EMReporter(0, "MERF(x)", events.append),
                        **CLASSIC)
    reg.fit(pd.DataFrame(X, columns=["a", "b", "c"]), y, groups=clusters, slopes=["a"])
    assert len(events) == 2
    back = pickle.loads(pickle.dumps(reg))
    np.testing.assert_allclose(back.predict(pd.DataFrame(X, columns=["a", "b", "c"]), groups=clusters),
                               reg.predict(pd.DataFrame(X, columns=["a", "b", "c"]), groups=clusters))
