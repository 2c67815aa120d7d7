"""The blocked algebra of `fit_mixed` against a plain dense implementation written here.

The reference builds the whole ``Z`` (every term's columns for every level), forms
``Lambda'Z'Z Lambda + I`` densely and solves lme4's penalised least squares problem with
numpy (Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 34 and 41): nothing of the blocked
Cholesky, the sort by levels, the Schur complement or the pair lists is shared with it.
Data: the real datasets of tests/data/lmm_multi (written by tests/reference/lme4_multi.R).
The lme4 comparison itself is tests/core/test_lmm_multi_battery.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from mixcv_core import MixcvError
from mixcv_core.models.mixed import banded, fit_mixed
from mixcv_core.models.mixed import pls as pls_module
from mixcv_core.models.mixed.criterion import Criterion
from mixcv_core.models.mixed.optimize import certify, hessian, minimise, rough_minimum

DATA = Path(__file__).parent.parent / "data" / "lmm_multi"


def term(frame: pd.DataFrame, factor: str, columns: list[str]) -> SimpleNamespace:
    # One factor read as it is (a row-wise join takes seconds on STAR's and InstEval's rows).
    labels = frame[factor].astype(str) if ":" not in factor else frame[factor.split(":")].astype(str).agg(":".join, axis=1)
    codes, levels = pd.factorize(labels, sort=True)
    Z = np.column_stack([np.ones(len(frame)) if c == "1" else frame[c].to_numpy(float) for c in columns])
    return SimpleNamespace(codes=codes.astype(np.intp), n_levels=len(levels), Z=Z)


def design(frame: pd.DataFrame, fixed: list[str]) -> np.ndarray:
    return np.column_stack([np.ones(len(frame))] + [frame[c].to_numpy(float) for c in fixed])


# (name, csv, response, fixed columns, terms as (factor, columns)): crossed, nested, partially
# crossed, a vector term in block 1, a vector term in block R, two terms on one factor.
MODELS = {
    "penicillin crossed": ("penicillin", "diameter", [], [("plate", ["1"]), ("sample", ["1"])]),
    "pastes nested": ("pastes", "strength", [], [("batch", ["1"]), ("batch:cask", ["1"])]),
    "scotssec partially crossed with a slope": ("scotssec", "attain", ["verbal", "sexF"],
                                                [("primary", ["1", "verbal"]), ("second", ["1"])]),
    "carrots with a slope in the smaller term": ("carrots", "Preference", ["sens2"],
                                                 [("Consumer", ["1"]), ("Product", ["1", "sens2"])]),
    "sleepstudy two terms on one factor": ("sleepstudy", "Reaction", ["Days"],
                                           [("Subject", ["1"]), ("Subject", ["Days"])]),
}


def model(name: str):
    csv, response, fixed, terms = MODELS[name]
    frame = pd.read_csv(DATA / f"{csv}.csv")
    return design(frame, fixed), frame[response].to_numpy(float), [term(frame, f, c) for f, c in terms]


def lambdas(blocks, theta):
    out, at = [], 0
    for b in blocks:
        q = b.Z.shape[1]
        lam = np.zeros((q, q))
        rows, cols = zip(*[(r, c) for c in range(q) for r in range(c, q)])   # column-major lower triangle
        lam[rows, cols] = theta[at:at + len(rows)]
        at += len(rows)
        out.append(lam)
    return out


def dense(X, y, blocks, theta, reml, byproducts=True):
    """lme4's profiled deviance and its by-products, the obvious dense way; with ``byproducts=False``
    the deviance alone (the conditional variances' q x q solve was half of 5 s per call on STAR)."""
    n, p = X.shape
    Zfull = np.hstack([np.hstack([b.Z * (b.codes == k)[:, None] for k in range(b.n_levels)]) for b in blocks])
    Lam = linalg.block_diag(*[np.kron(np.eye(b.n_levels), lam) for b, lam in zip(blocks, lambdas(blocks, theta))])
    ZL = Zfull @ Lam
    qq = ZL.shape[1]
    M = ZL.T @ ZL + np.eye(qq)
    big = np.block([[M, ZL.T @ X], [X.T @ ZL, X.T @ X]])
    sol = np.linalg.solve(big, np.concatenate([ZL.T @ y, X.T @ y]))
    u, beta = sol[:qq], sol[qq:]
    r2 = float(np.sum((y - X @ beta - ZL @ u) ** 2) + u @ u)
    S = X.T @ X - X.T @ ZL @ np.linalg.solve(M, ZL.T @ X)
    dof = n - p if reml else n
    value = np.linalg.slogdet(M)[1] + dof * (1 + np.log(2 * np.pi * r2 / dof))
    if reml:
        value += np.linalg.slogdet(S)[1]
    if not byproducts:
        return SimpleNamespace(value=value)
    sigma2 = r2 / dof
    cond = sigma2 * Lam @ np.linalg.solve(M, Lam.T)
    return SimpleNamespace(value=value, beta=beta, b=Lam @ u, b_sd=np.sqrt(np.clip(np.diag(cond), 0, None)),
                           beta_cov=sigma2 * np.linalg.inv(S), sigma2=sigma2)


def per_term(blocks, flat):
    out, at = [], 0
    for b in blocks:
        q = b.Z.shape[1]
        out.append(flat[at:at + b.n_levels * q].reshape(b.n_levels, q))
        at += b.n_levels * q
    return out


# Small A_R1 are multiplied as dense arrays (`pls.DENSE_PRODUCTS`), larger ones as sparse
# matrices with the pair list: every model here is small, so the sparse route is forced too.
PRODUCTS = pytest.mark.parametrize("products", ["dense", "sparse"])


def use_products(monkeypatch, products: str) -> None:
    if products == "sparse":
        monkeypatch.setattr(pls_module, "DENSE_PRODUCTS", 0)


# Block R is factored densely, or by blocks after reordering (`banded`) when it is large and
# sparse; these models are small and would all take the dense route, so the other is forced
# too, with blocks of one level each (several blocks even on small data).
ROUTES = pytest.mark.parametrize("route", ["dense R", "banded R"])


def use_route(monkeypatch, route: str) -> None:
    if route == "banded R":
        monkeypatch.setattr(banded, "MIN_SIZE", 0)
        monkeypatch.setattr(banded, "MAX_WORK_SHARE", np.inf)
        monkeypatch.setattr(banded, "MAX_PAIRS_SHARE", np.inf)
        monkeypatch.setattr(banded, "MIN_BLOCK", 1)


def criterion(X, y, blocks, reml, route="dense R") -> Criterion:
    crit = Criterion(X, y, [b.codes for b in blocks], [b.Z for b in blocks], [b.n_levels for b in blocks], reml)
    assert (crit.band is not None) == (route == "banded R")
    return crit


@ROUTES
@PRODUCTS
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", list(MODELS))
def test_the_blocked_criterion_equals_the_dense_one_at_any_theta(name, reml, products, route, monkeypatch):
    use_products(monkeypatch, products)
    use_route(monkeypatch, route)
    X, y, blocks = model(name)
    crit = criterion(X, y, blocks, reml, route)
    rng = np.random.default_rng(3)
    for _ in range(3):
        theta = rng.uniform(-0.5, 1.5, crit.dim)
        np.testing.assert_allclose(crit(theta), dense(X, y, blocks, theta, reml).value, rtol=1e-11)


@ROUTES
@PRODUCTS
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", list(MODELS))
def test_the_exact_gradient_matches_central_differences(name, reml, products, route, monkeypatch):
    use_products(monkeypatch, products)
    use_route(monkeypatch, route)
    X, y, blocks = model(name)
    crit = criterion(X, y, blocks, reml, route)
    theta = np.random.default_rng(4).uniform(0.2, 1.2, crit.dim)
    _, grad = crit.value_and_grad(theta)
    h = 1e-5
    central = np.array([(crit(theta + h * e) - crit(theta - h * e)) / (2 * h) for e in np.eye(crit.dim)])
    np.testing.assert_allclose(grad, central, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(central).max()))


@ROUTES
@PRODUCTS
@pytest.mark.parametrize("name", list(MODELS))
def test_the_fit_reports_the_dense_solution_at_its_theta(name, products, route, monkeypatch):
    use_products(monkeypatch, products)
    use_route(monkeypatch, route)
    X, y, blocks = model(name)
    fit = fit_mixed(X, y, blocks, reml=True)
    assert fit.converged, fit.message
    ref = dense(X, y, blocks, fit.theta, True)
    np.testing.assert_allclose(fit.criterion, ref.value, rtol=1e-11)
    np.testing.assert_allclose(fit.beta, ref.beta, rtol=1e-8)
    np.testing.assert_allclose(fit.beta_cov, ref.beta_cov, rtol=1e-7)
    np.testing.assert_allclose(fit.sigma2, ref.sigma2, rtol=1e-9)
    for ours, want, sd, want_sd in zip(fit.b, per_term(blocks, ref.b), fit.b_sd, per_term(blocks, ref.b_sd)):
        np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())
        np.testing.assert_allclose(sd, want_sd, rtol=1e-6, atol=1e-8 * want_sd.max())
    for cov, lam in zip(fit.covs, lambdas(blocks, fit.theta)):
        np.testing.assert_allclose(cov, fit.sigma2 * lam @ lam.T, rtol=1e-10, atol=1e-12)


def test_without_the_pair_list_the_algebra_gives_the_same_numbers(monkeypatch):
    # Block 1 crossed with most of block R makes the pair list too long; the fallback
    # (sparse products at each evaluation) must agree with it exactly. Both on sparse
    # products: these models are small enough for dense ones, which use neither.
    monkeypatch.setattr(pls_module, "DENSE_PRODUCTS", 0)
    for name in ["scotssec partially crossed with a slope", "carrots with a slope in the smaller term"]:
        X, y, blocks = model(name)
        args = (X, y, [b.codes for b in blocks], [b.Z for b in blocks], [b.n_levels for b in blocks], True)
        theta = np.random.default_rng(5).uniform(0.2, 1.2, sum(b.Z.shape[1] * (b.Z.shape[1] + 1) // 2
                                                               for b in blocks))
        with_pairs = Criterion(*args)
        assert with_pairs.stats.has_pairs
        v1, g1 = with_pairs.value_and_grad(theta)
        fit1 = fit_mixed(X, y, blocks)
        monkeypatch.setattr(pls_module.Statistics, "_pair_map", lambda self: None)
        without = Criterion(*args)
        assert not without.stats.has_pairs
        v2, g2 = without.value_and_grad(theta)
        fit2 = fit_mixed(X, y, blocks)
        monkeypatch.undo()
        monkeypatch.setattr(pls_module, "DENSE_PRODUCTS", 0)
        np.testing.assert_allclose(v2, v1, rtol=1e-12)
        np.testing.assert_allclose(g2, g1, rtol=1e-8, atol=1e-9 * np.abs(g1).max())
        for a, b in zip(fit2.b_sd, fit1.b_sd):
            np.testing.assert_allclose(a, b, rtol=1e-7)


def test_the_rough_start_leaves_the_saddle_that_lbfgs_lands_on():
    # Penicillin's plate term alone: from Lambda = 1, L-BFGS-B's first step (unit length,
    # down the gradient) lands on Lambda = 0 exactly, where the gradient vanishes by
    # symmetry. The rough start must not stay there: the certified minimum is 0.1535.
    X, y, blocks = model("penicillin crossed")
    plate = blocks[0]
    crit = Criterion(X, y, [plate.codes], [plate.Z], [plate.n_levels], True)
    best = minimise(crit, np.ones(1), max_evals=200)
    assert best.converged and best.theta[0] > 0.1
    rough = Criterion(X, y, [plate.codes], [plate.Z], [plate.n_levels], True)
    start = rough_minimum(rough, np.ones(1), max_evals=200)
    np.testing.assert_allclose(start, best.theta, rtol=1e-3)
    assert rough.n_evals < crit.n_evals     # and it is cheaper than the certified fit


def test_scalar_terms_on_a_small_block_start_from_the_identity_and_others_from_each_term_alone(monkeypatch):
    # The one-term starts cost more evaluations than they save when a joint evaluation is as
    # cheap as a one-term one (scalar terms, small block R); a vector term still gets them.
    from mixcv_core.models.mixed import fit as fit_module
    calls: list[int] = []
    rough = fit_module.rough_minimum
    monkeypatch.setattr(fit_module, "rough_minimum", lambda crit, *a, **k: calls.append(crit.dim) or rough(crit, *a, **k))
    for name, starts in [("penicillin crossed", []), ("scotssec partially crossed with a slope", [3, 1])]:
        calls.clear()
        X, y, blocks = model(name)
        assert fit_mixed(X, y, blocks).converged
        assert calls == starts
    monkeypatch.setattr(fit_module, "PREFIT_MIN_EFFECTS", 0)
    calls.clear()
    X, y, blocks = model("penicillin crossed")
    assert fit_mixed(X, y, blocks).converged and calls == [1, 1]


def test_the_order_of_the_terms_changes_nothing_but_the_order_of_the_output():
    X, y, blocks = model("scotssec partially crossed with a slope")
    fit = fit_mixed(X, y, blocks)
    rev = fit_mixed(X, y, blocks[::-1])
    np.testing.assert_allclose(rev.criterion, fit.criterion, rtol=1e-12)
    np.testing.assert_allclose(rev.theta, np.concatenate([fit.theta[3:], fit.theta[:3]]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rev.covs[1], fit.covs[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rev.b[0], fit.b[1], rtol=1e-5, atol=1e-7)


def test_a_singular_vector_term_is_a_certified_boundary_fit():
    # ScotsSec with a random verbal slope per primary school: lme4 (tight bobyqa) ends with
    # the slope perfectly correlated with the intercept (Lambda's second diagonal 5e-11),
    # REML criterion 14857.7191806664: a singular fit.
    X, y, blocks = model("scotssec partially crossed with a slope")
    fit = fit_mixed(X, y, blocks, reml=True)
    assert fit.converged and fit.message == "optimum on the boundary (a singular covariance)"
    assert fit.boundary == [(0, 1)]
    assert fit.criterion <= 14857.7191806664 + 1e-6
    cov = fit.covs[0]
    np.testing.assert_allclose(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), 1.0, atol=1e-6)


def test_converged_is_false_when_the_budget_ends_the_fit_or_the_point_is_not_a_minimum():
    X, y, blocks = model("carrots with a slope in the smaller term")
    short = fit_mixed(X, y, blocks, max_evals=3)
    assert not short.converged and short.message == "stopped at the limit of 3 criterion evaluations"
    full = fit_mixed(X, y, blocks)
    crit = Criterion(X, y, [b.codes for b in blocks], [b.Z for b in blocks], [b.n_levels for b in blocks], True)
    away = certify(crit, full.theta * 1.1)
    assert not away.ok and away.newton_decrement > 1e-3


def test_the_callback_sees_every_evaluation_of_the_optimiser():
    X, y, blocks = model("penicillin crossed")
    seen: list[tuple[int, float]] = []
    fit = fit_mixed(X, y, blocks, callback=lambda n, value: seen.append((n, value)))
    assert seen and min(v for _, v in seen) == pytest.approx(fit.criterion, abs=1e-8)
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)


@pytest.mark.parametrize("change,field", [
    (lambda X, y, b: (X[:, 0], y, b), "X"),
    (lambda X, y, b: (X, y[:-1], b), "y"),
    (lambda X, y, b: (X, np.where(np.arange(len(y)) == 0, np.nan, y), b), "y"),
    (lambda X, y, b: (X, y, []), "blocks"),
    (lambda X, y, b: (X, y, [SimpleNamespace(codes=b[0].codes, n_levels=3, Z=b[0].Z)]), "blocks[0].codes"),
    (lambda X, y, b: (X, y, [SimpleNamespace(codes=b[0].codes[:-1], n_levels=24, Z=b[0].Z)]), "blocks[0]"),
])
def test_bad_input_is_refused_naming_the_argument(change, field):
    X, y, blocks = model("penicillin crossed")
    with pytest.raises(MixcvError) as info:
        fit_mixed(*change(X, y, blocks))
    assert info.value.field == field


def star(schools: int | None = None, slope: bool = False):
    """mlmRev's STAR (pupils in classes of teachers within schools, partially crossed), or its first schools."""
    frame = pd.read_csv(DATA / "star.csv.gz", dtype={"id": str, "tch": str, "sch": str})
    if schools is not None:
        frame = frame[frame["sch"].isin(sorted(frame["sch"].unique())[:schools])]
    X = design(frame, ["yrs", "cltypereg", "cltypereg_A"])
    terms = [term(frame, "id", ["1", "yrs"] if slope else ["1"]), term(frame, "tch", ["1"]), term(frame, "sch", ["1"])]
    return X, frame["math"].to_numpy(float), terms


@pytest.mark.parametrize("slope", [False, True], ids=["intercepts", "slope"])
def test_on_part_of_star_the_banded_route_equals_the_dense_reference(slope, monkeypatch):
    # Ten schools: block R (their teachers and the schools) is small, so the size threshold
    # is lowered; the thresholds of the pattern stay, and the reordered pattern must make
    # several blocks for the test to mean anything.
    monkeypatch.setattr(banded, "MIN_SIZE", 0)
    X, y, blocks = star(10, slope)
    for reml in (True, False):
        crit = criterion(X, y, blocks, reml, "banded R")
        assert len(crit.band.blocks) >= 3
        theta = np.random.default_rng(6).uniform(0.2, 1.5, crit.dim)
        np.testing.assert_allclose(crit(theta), dense(X, y, blocks, theta, reml, byproducts=False).value,
                                   rtol=1e-11)
        value, grad = crit.value_and_grad(theta)
        h = 1e-5
        central = np.array([(crit(theta + h * e) - crit(theta - h * e)) / (2 * h) for e in np.eye(crit.dim)])
        np.testing.assert_allclose(grad, central, rtol=1e-5, atol=1e-5 * np.abs(central).max())


def test_the_block_factor_gives_the_dense_inverse_on_its_pattern_its_solves_and_its_log_determinant(monkeypatch):
    monkeypatch.setattr(banded, "MIN_SIZE", 0)
    X, y, blocks = star(10, True)
    crit = criterion(X, y, blocks, True, "banded R")
    m = crit.stats.m
    theta = np.array([1.2, -0.3, 0.5, 0.9, 0.7])
    s = crit.solve(theta, banded=True)
    C = crit.solve(theta).D[:m, :m]               # the dense route's block R
    assert s.band is not None and s.layout is not None
    lay = s.layout
    # Block R held packed on the pattern: the same entries as the dense one, and no nonzero
    # of the dense one left out.
    packed_C = s.RRu * s.lamIJ
    packed_C[lay.on_diagonal] += 1.0
    np.testing.assert_allclose(packed_C, C[lay.rows, lay.cols], rtol=1e-12, atol=1e-12 * np.abs(C).max())
    covered = np.zeros((m, m), dtype=bool)
    covered[lay.rows, lay.cols] = covered[lay.cols, lay.rows] = True
    assert not C[~covered].any()
    inverse = np.linalg.inv(C)
    selected = s.band.selected_inverse(m)
    on = selected != 0
    assert on[C != 0].all()                       # every entry where C is nonzero is given
    np.testing.assert_allclose(selected[on], inverse[on], rtol=1e-10, atol=1e-13 * np.abs(inverse).max())
    np.testing.assert_allclose(s.band.selected_inverse_packed(lay), inverse[lay.rows, lay.cols], rtol=1e-10,
                               atol=1e-13 * np.abs(inverse).max())
    B = np.random.default_rng(7).normal(size=(m, 3))
    np.testing.assert_allclose(s.band.solve(B), np.linalg.solve(C, B), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.band.logdet, np.linalg.slogdet(C)[1], rtol=1e-12)


def test_the_packed_layout_places_each_entry_of_the_pattern_once_and_refuses_one_outside_it():
    # Three blocks of two: entries of neighbouring blocks share one place whichever way round.
    lay = banded.layout(banded.Plan([np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]))
    assert lay.size == 3 * 4 + 2 * 4
    places = lay.place(lay.rows, lay.cols)
    np.testing.assert_array_equal(places, np.arange(lay.size))
    np.testing.assert_array_equal(lay.place(lay.cols, lay.rows)[lay.is_off], places[lay.is_off])
    np.testing.assert_array_equal(lay.rows[lay.on_diagonal], lay.cols[lay.on_diagonal])
    assert len(lay.on_diagonal) == 6
    with pytest.raises(ValueError, match="outside the plan's pattern"):
        lay.place(np.array([0]), np.array([5]))


@pytest.mark.parametrize("slope", [False, True], ids=["intercepts", "slope"])
def test_on_the_whole_of_star_the_banded_route_is_chosen_and_equals_the_dense_one(slope):
    # The default thresholds: STAR's 1,454 teachers and schools are 99% zeros after block 1
    # is eliminated, and the plan must take them by blocks; criterion and gradient agree with
    # the dense factor to rounding.
    X, y, blocks = star(None, slope)
    for reml in (True, False):
        crit = criterion(X, y, blocks, reml, "banded R")
        theta = np.random.default_rng(8).uniform(0.3, 1.5, crit.dim)
        value, grad = crit.value_and_grad(theta)
        assert crit.solve(theta, banded=True).layout is not None      # block R held packed, no m x m array
        plan, crit.band, crit._last = crit.band, None, None
        value_dense, grad_dense = crit.value_and_grad(theta)
        assert plan is not None
        np.testing.assert_allclose(value, value_dense, rtol=1e-10)
        np.testing.assert_allclose(grad, grad_dense, rtol=1e-10, atol=1e-10 * np.abs(grad_dense).max())


def test_a_fully_crossed_second_factor_keeps_the_dense_route():
    # InstEval: students rate dozens of lecturers, so block R fills in; no plan is made.
    frame = pd.read_csv(DATA / "insteval.csv.gz", dtype={"s": str, "d": str, "dept": str})
    blocks = [term(frame, "s", ["1"]), term(frame, "d", ["1"]), term(frame, "dept", ["1"])]
    assert banded.plan([blocks[1].codes, blocks[2].codes], [1, 1], [blocks[1].n_levels, blocks[2].n_levels],
                       blocks[0].codes, blocks[0].n_levels) is None


def test_a_second_factor_too_large_for_the_dense_block_is_refused_before_the_fit():
    # Two crossed factors of 13,000 levels each: block R alone would be 13,000 x 13,000 dense.
    rng = np.random.default_rng(0)
    n = 26_000
    a, b = np.arange(n) % 13_000, rng.permutation(np.arange(n) % 13_000)
    ones = np.ones((n, 1))
    with pytest.raises(MixcvError) as info:
        fit_mixed(ones, rng.normal(size=n), [SimpleNamespace(codes=a, n_levels=13_000, Z=ones),
                                             SimpleNamespace(codes=b, n_levels=13_000, Z=ones)])
    assert info.value.field == "blocks" and "13,000 effects" in info.value.message


def one_term_model(q: int):
    """sleepstudy with (1 | Subject), (1 + Days | Subject) or (1 + Days + Days^2/10 | Subject): one term of q columns."""
    frame = pd.read_csv(DATA / "sleepstudy.csv").assign(Days2=lambda d: d["Days"] ** 2 / 10)
    columns = ["1", "Days", "Days2"][:q]
    return design(frame, ["Days"]), frame["Reaction"].to_numpy(float), [term(frame, "Subject", columns)]


def one_term_points(q: int, reml: bool, seed: int, n_random: int):
    """`one_term_model`, its criterion, and thetas to test at: random ones and the first with its last column zero."""
    X, y, blocks = one_term_model(q)
    crit = criterion(X, y, blocks, reml)
    rng = np.random.default_rng(seed)
    thetas = [rng.uniform(-0.5, 1.5, crit.dim) for _ in range(n_random)]
    thetas.append(np.where(np.arange(crit.dim) < q, thetas[0], 0.0))        # the last column of Lambda zero
    return X, y, blocks, crit, thetas


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_with_one_term_the_optimisers_short_route_equals_the_dense_criterion_and_its_differences(q, reml):
    # One term takes `one_term.OneTerm` (q = 1 and 2 in closed form, 3 by the batched
    # factor), not pls.solve: its value against the dense reference, its gradient against
    # central differences of that reference, on the boundary (a zero column) too.
    X, y, blocks, crit, thetas = one_term_points(q, reml, seed=5, n_random=3)
    thetas.append(np.zeros(crit.dim))                                         # no random effects at all
    h = 1e-5
    for theta in thetas:
        reference = dense(X, y, blocks, theta, reml).value
        value, grad = crit.value_and_grad(theta)
        np.testing.assert_allclose([crit(theta), value], reference, rtol=1e-11)
        central = np.array([(dense(X, y, blocks, theta + h * e, reml).value
                             - dense(X, y, blocks, theta - h * e, reml).value) / (2 * h) for e in np.eye(crit.dim)])
        np.testing.assert_allclose(grad, central, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(central).max()))


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_with_one_term_the_solution_the_fit_record_reads_equals_the_dense_one(q, reml):
    # `Criterion.solution` takes the short route with one term (`OneTerm.solution`): the
    # criterion, beta, sigma^2, the BLUPs, their conditional sds and vcov(beta) against the
    # obvious dense computation, on the boundary (a zero column) too.
    X, y, blocks, crit, thetas = one_term_points(q, reml, seed=11, n_random=2)
    for theta in thetas:
        ref = dense(X, y, blocks, theta, reml)
        s = crit.solution(theta)
        lam = lambdas(blocks, theta)[0]
        sigma2 = s.pwrss / crit.dof
        np.testing.assert_allclose(s.value, ref.value, rtol=1e-11)
        np.testing.assert_allclose(crit.beta_ols + s.beta, ref.beta, rtol=1e-9)
        np.testing.assert_allclose(sigma2, ref.sigma2, rtol=1e-10)
        np.testing.assert_allclose((s.u[0] @ lam.T).ravel(), ref.b, rtol=1e-8, atol=1e-10 * np.abs(ref.b).max())
        cond_var = sigma2 * np.einsum("ij,kjl,il->ki", lam, s.cond[0], lam)
        np.testing.assert_allclose(np.sqrt(np.clip(cond_var, 0, None)).ravel(), ref.b_sd, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(sigma2 * np.linalg.inv(s.RX @ s.RX.T), ref.beta_cov, rtol=1e-8)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("q", [1, 2, 3])
def test_with_one_term_the_certificates_hessian_is_exact_and_costs_no_evaluation(q, reml):
    # The one-term criterion's analytic Hessian (`OneTerm.hessian`) against central
    # differences of its exact gradient on sleepstudy: at random theta, with the last column
    # of Lambda zero (the boundary) and just off it; the certificate takes it instead of
    # dim gradient evaluations.
    X, y, blocks, crit, thetas = one_term_points(q, reml, seed=7, n_random=3)
    thetas.append(np.where(np.arange(crit.dim) < q, thetas[1], 1e-4))       # near the boundary
    h = 1e-6
    for theta in thetas:
        central = np.array([(crit.value_and_grad(theta + h * e)[1] - crit.value_and_grad(theta - h * e)[1]) / (2 * h)
                            for e in np.eye(crit.dim)])
        evals = crit.n_evals
        H = hessian(crit, theta, crit.value_and_grad(theta)[1])
        assert crit.n_evals - evals <= 1        # the point's own gradient, no differences
        np.testing.assert_allclose(H, H.T, rtol=0, atol=0)
        np.testing.assert_allclose(H, (central + central.T) / 2, rtol=1e-6, atol=1e-6 * np.abs(central).max())
