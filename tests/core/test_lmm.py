"""LinearMixedEffectsModel against independent references.

1. A balanced one-way random-intercept design has closed-form REML estimates (the
   ANOVA estimators, when the between-group variance is positive) and BLUPs.
2. statsmodels' MixedLM called directly on the same data with random slopes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

from mixcv_core.models import LinearMixedEffectsModel


def balanced_one_way(m: int, n: int, tau: float, sigma: float, seed: int):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(m), n)
    y = 3.0 + rng.normal(0, tau, m)[g] + rng.normal(0, sigma, m * n)
    return g, y


@pytest.mark.parametrize("backend,rtol", [("native", 1e-6), ("statsmodels", 1e-4)])
@pytest.mark.parametrize("m,n,seed", [(8, 5, 0), (20, 3, 1), (5, 40, 2)])
def test_balanced_random_intercept_matches_closed_form(m, n, seed, backend, rtol):
    g, y = balanced_one_way(m, n, tau=2.0, sigma=1.0, seed=seed)
    means = pd.Series(y).groupby(g).mean().to_numpy()
    grand = y.mean()
    msw = ((y - means[g]) ** 2).sum() / (m * (n - 1))
    msb = n * ((means - grand) ** 2).sum() / (m - 1)
    assert msb > msw  # the closed form holds on the interior of the parameter space
    tau2 = (msb - msw) / n
    shrink = tau2 / (tau2 + msw / n)
    blup = shrink * (means - grand)

    X = pd.DataFrame(index=range(m * n))  # intercept only
    lmm = LinearMixedEffectsModel(backend=backend).fit(X, y, groups=g)
    assert lmm.converged_
    np.testing.assert_allclose(lmm.fe_params_["Intercept"], grand, rtol=1e-6)
    np.testing.assert_allclose(lmm.scale_, msw, rtol=rtol)
    np.testing.assert_allclose(lmm.cov_re_.iloc[0, 0], tau2, rtol=rtol)
    np.testing.assert_allclose(lmm.random_effects_["Intercept"].to_numpy(), blup, rtol=rtol, atol=1e-6)
    # Known groups are predicted with their BLUP, unseen groups with the fixed effects.
    pred = lmm.predict(pd.DataFrame(index=range(2)), groups=np.array([0, 999]))
    np.testing.assert_allclose(pred, [grand + blup[0], grand], rtol=rtol)
    # The standard error of the mean in a balanced one-way design: sqrt((tau2 + sigma2/n) / m).
    np.testing.assert_allclose(lmm.bse_["Intercept"], np.sqrt((tau2 + msw / n) / m), rtol=10 * rtol)


@pytest.mark.parametrize("backend,rtol", [("native", 1e-6), ("statsmodels", 1e-4)])
def test_ml_variance_matches_closed_form(backend, rtol):
    m, n = 10, 6
    g, y = balanced_one_way(m, n, tau=1.5, sigma=1.0, seed=3)
    means = pd.Series(y).groupby(g).mean().to_numpy()
    msw = ((y - means[g]) ** 2).sum() / (m * (n - 1))
    sb = n * ((means - y.mean()) ** 2).sum()
    # ML: sigma^2 = MSW and tau^2 = (SSB/m - MSW)/n (divides by m, not m - 1).
    tau2_ml = (sb / m - msw) / n
    lmm = LinearMixedEffectsModel(reml=False, backend=backend).fit(pd.DataFrame(index=range(m * n)), y, groups=g)
    np.testing.assert_allclose(lmm.scale_, msw, rtol=rtol)
    np.testing.assert_allclose(lmm.cov_re_.iloc[0, 0], tau2_ml, rtol=rtol)


def test_statsmodels_backend_is_statsmodels_called_directly(grouped):
    X, y, group, slopes = grouped
    lmm = LinearMixedEffectsModel(backend="statsmodels").fit(X, y, groups=group, slopes=slopes)

    exog = np.column_stack([np.ones(len(X)), X.to_numpy()])
    exog_re = np.column_stack([np.ones(len(X)), slopes.to_numpy()])
    ref = MixedLM(y.to_numpy(), exog, groups=group.to_numpy(), exog_re=exog_re).fit(reml=True, gtol=1e-8)
    np.testing.assert_allclose(lmm.fe_params_.to_numpy(), ref.fe_params, rtol=1e-8)
    np.testing.assert_allclose(lmm.cov_re_.to_numpy(), ref.cov_re, rtol=1e-8)
    np.testing.assert_allclose(lmm.scale_, ref.scale, rtol=1e-8)
    assert list(lmm.fe_params_.index) == ["Intercept", *X.columns]
    assert list(lmm.cov_re_.columns) == ["Intercept", *slopes.columns]
    assert len(lmm.random_effects_) == group.nunique()

    # Predictions: fixed part plus the group's BLUP times (1, slope), written out by hand.
    re = ref.random_effects
    expected = exog @ ref.fe_params + np.array([re[gi] @ zi for gi, zi in zip(group, exog_re)])
    np.testing.assert_allclose(lmm.predict(X, groups=group, slopes=slopes), expected, rtol=1e-8)
    # With known-group prediction off, every row gets the fixed effects only.
    lmm.set_params(predict_known_groups=False)
    np.testing.assert_allclose(lmm.predict(X, groups=group, slopes=slopes), exog @ ref.fe_params, rtol=1e-10)


def test_lmm_is_a_proper_sklearn_estimator():
    from sklearn.base import clone
    est = LinearMixedEffectsModel(reml=False, predict_known_groups=False)
    assert clone(est).get_params() == est.get_params()
