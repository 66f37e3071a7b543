"""Matrix-free Newton-CG for the Hadamard flow's limit: the same limit as the dense Newton."""

import numpy as np
import pytest
import scipy.fft
from scipy.linalg import LinAlgError
from scipy.sparse.linalg import aslinearoperator

import overparam.solvers.sparse.krylov_newton as kn
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.operators import (
    DenseOperator,
    DiagonalScaledOperator,
    RandomizedDCTSensing,
    RowSubset,
    SubsampledDCT,
    as_operator,
)
from overparam.solvers.sparse.flow import HadamardDualMap, NewtonConvergenceError, hadamard_newton
from overparam.solvers.sparse.krylov_newton import (
    WorkingSetPreconditioner,
    _Columns,
    _first_trial,
    _gradient,
    _newton_step,
    _Products,
    hadamard_limit,
    hadamard_newton_cg,
)
from overparam.testing import check_adjoint


def _alpha(A, y, depth=2):
    scale = np.max(np.abs(A.T @ y) / np.sum(A**2, axis=0))
    return HadamardRegressor.relative_init(depth) * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("working_set", [True, False])
def test_newton_cg_limit_equals_dense_newton(seed, working_set):
    p = make_sparse_problem(60, 300, 6, random_state=seed)
    alpha = _alpha(p.operator, p.y)
    dense = hadamard_newton(DenseOperator(p.operator), p.y, init_scale=alpha)
    free = hadamard_newton_cg(DenseOperator(p.operator), p.y, init_scale=alpha,
                              working_set=working_set)
    assert free.stop_reason == "converged"
    assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)
    r = p.operator @ free.coef - p.y
    assert np.linalg.norm(r) <= 1e-10 * np.linalg.norm(p.y)


@pytest.mark.parametrize("signed", [True, False])
def test_newton_cg_moderate_init_and_nonnegative(signed, rng):
    A = rng.standard_normal((40, 120)) / np.sqrt(40)
    x = np.zeros(120)
    x[[3, 50, 99]] = [1.0, 2.0, 0.5] if not signed else [1.0, -2.0, 0.5]
    y = A @ x
    dense = hadamard_newton(DenseOperator(A), y, init_scale=1e-3, signed=signed)
    free = hadamard_newton_cg(A, y, init_scale=1e-3, signed=signed)
    assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)


def test_matrix_free_operator_gives_the_dense_limit(rng):
    n, m = 256, 80
    rows = np.sort(rng.choice(n, m, replace=False))
    op = SubsampledDCT(n, rows)
    A = scipy.fft.dct(np.eye(n), norm="ortho", axis=0)[rows]
    np.testing.assert_allclose(op.to_dense(), A, atol=1e-12)
    np.testing.assert_allclose(op.rows([1, 4]).to_dense(), A[[1, 4]], atol=1e-12)
    rng.standard_normal(m + n)  # the draws of the former inline dot test: same problem below
    check_adjoint(op, rtol=1e-12)
    assert np.isclose(op.norm_estimate(), np.linalg.norm(A, 2))
    assert np.isclose(op.frobenius_norm(), np.linalg.norm(A))
    x = np.zeros(n)
    x[rng.choice(n, 6, replace=False)] = rng.standard_normal(6) + 2
    y = A @ x
    alpha = 1e-20 * np.max(np.abs(A.T @ y) / np.sum(A**2, axis=0))
    dense = hadamard_newton(DenseOperator(A), y, init_scale=alpha)
    free = hadamard_newton_cg(op, y, init_scale=alpha)
    assert free.info["working_set"] <= 256  # columns read by forward applications
    assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)
    assert np.linalg.norm(free.coef - x) <= 1e-6 * np.linalg.norm(x)


def test_preconditioner_is_the_woodbury_inverse(rng):
    A = rng.standard_normal((30, 90))
    d = np.exp(rng.uniform(-20, 2, 90))
    pre = WorkingSetPreconditioner(_Columns(DenseOperator(A)))
    pre.update(d)
    assert 0 < pre.size < 30
    outside = np.setdiff1d(np.arange(90), pre.index)
    P = (A[:, pre.index] * d[pre.index]) @ A[:, pre.index].T + pre.delta * np.eye(30)
    np.testing.assert_allclose(pre.delta, np.sum(d[outside] * np.sum(A[:, outside]**2, 0)) / 30)
    v = rng.standard_normal(30)
    np.testing.assert_allclose(P @ pre.solve(v), v, rtol=1e-8, atol=1e-8 * np.linalg.norm(v))
    try:
        np.linalg.cholesky(P)
    except LinAlgError:  # pragma: no cover - P is positive definite by construction
        pytest.fail("P not positive definite")


def test_inconsistent_system_raises_and_limit_falls_back(rng):
    A = rng.standard_normal((30, 60))
    A[-1] = A[0]  # rank-deficient rows: y with y[-1] != y[0] has no exact solution
    y = rng.standard_normal(30)
    with pytest.raises(NewtonConvergenceError):
        hadamard_newton_cg(A, y, init_scale=1e-6, max_iter=60)
    wide = DenseOperator(np.tile(A, (1, 250)))  # 450,000 entries: Newton-CG is tried first
    limit = hadamard_limit(wide, y, init_scale=1e-6)
    assert limit.info["solver"] == "newton"  # the dense solver's least-squares limit
    np.testing.assert_allclose(limit.coef, hadamard_newton(wide, y, init_scale=1e-6).coef)


def test_limit_dispatch_uses_newton_cg_for_large_matrices():
    p = make_sparse_problem(300, 1500, 30, random_state=0)
    res = hadamard_limit(DenseOperator(p.operator), p.y, init_scale=_alpha(p.operator, p.y))
    assert res.info["solver"] == "newton-cg"
    assert np.linalg.norm(res.coef - p.truth) <= 1e-6 * np.linalg.norm(p.truth)
    small = make_sparse_problem(30, 90, 3, random_state=0)
    res = hadamard_limit(DenseOperator(small.operator), small.y, init_scale=1e-6)
    assert res.info["solver"] == "newton"
    deep = hadamard_limit(DenseOperator(p.operator), p.y, depth=3, init_scale=1e-12)
    assert deep.info["solver"] == "newton"


def test_evicting_columns_keeps_the_block_and_its_gram_consistent(rng):
    A = rng.standard_normal((30, 80))
    precond = WorkingSetPreconditioner(_Columns(DenseOperator(A)))
    precond._grow(np.arange(12))
    for keep, new in (([0, 2, 3, 7, 9, 11], [20, 21, 22]), ([1, 3, 4, 6, 7, 8], [40])):
        precond._keep(np.array(keep))
        precond._grow(np.array(new))
        block = A[:, precond.index]
        assert np.unique(precond.index).size == precond.size == len(keep) + len(new)
        np.testing.assert_array_equal(precond._block, block)
        np.testing.assert_allclose(precond._gram, block.T @ block, atol=1e-12)


def test_written_out_cg_solves_the_newton_system_and_returns_its_adjoint(rng):
    A = rng.standard_normal((40, 150))
    d = np.exp(rng.uniform(-6, 2, 150))
    g = rng.standard_normal(40)
    op = DenseOperator(A)
    for working_set in (True, False):
        for shift in (0.0, 0.3):  # shift: the I / h of an implicit step on the path
            products = _Products(op)
            precond = WorkingSetPreconditioner(_Columns(op)) if working_set else None
            p, atp = _newton_step(products, d, g, precond, 1e-10, 500, shift=shift)
            H = (A * d) @ A.T + shift * np.eye(40)
            assert np.linalg.norm(H @ p - g) <= 1e-9 * np.linalg.norm(g)
            np.testing.assert_allclose(atp, A.T @ p, rtol=1e-9,
                                       atol=1e-12 * np.linalg.norm(atp))
            assert products.count == 2 * products.n_cg > 0  # no adjoint beyond CG's own
    products = _Products(op)
    precond = WorkingSetPreconditioner(_Columns(op))
    z, atz = _newton_step(products, d, g, precond, 1e-10, 500, quick=True)
    np.testing.assert_allclose(z, precond.solve(g))  # the preconditioned gradient itself
    np.testing.assert_allclose(atz, A.T @ z)
    assert products.count == 1 and products.n_cg == 0


def test_gradient_leaves_out_only_a_negligible_product():
    A = np.eye(3, 5)
    y = np.array([1.0, 2.0, 2.0])
    a_norm = np.linalg.norm(A)
    g, exact = _gradient(lambda v: A @ v, np.full(5, 1e-6), y, 3.0, a_norm)
    assert not exact and np.array_equal(g, -y)
    x = np.full(5, 1e-2)
    g, exact = _gradient(lambda v: A @ v, x, y, 3.0, a_norm)
    assert exact and np.array_equal(g, A @ x - y)


def test_quick_steps_and_plateau_gradients_keep_the_dense_limit():
    # 300 x 1500: the plateau (gradient -y), P^{-1} g steps and gradients updated through the
    # working set are all taken (convergence is tested on exact gradients only)
    p = make_sparse_problem(300, 1500, 30, random_state=1)
    alpha = _alpha(p.operator, p.y)
    op = DenseOperator(p.operator)
    free = hadamard_newton_cg(op, p.y, init_scale=alpha)
    assert free.info["n_quick"] > 0 and free.info["n_updated"] > 0
    dense = hadamard_newton(op, p.y, init_scale=alpha)
    assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)
    assert np.linalg.norm(p.operator @ free.coef - p.y) <= 1e-10 * np.linalg.norm(p.y)
    # at the estimators' tolerance: fewer than the 3 products a step of CG's first iteration
    loose = hadamard_newton_cg(op, p.y, init_scale=alpha, tol=1e-6)
    assert loose.info["n_products"] < 2 * loose.n_iter and loose.info["n_updated"] > 0
    assert np.linalg.norm(p.operator @ loose.coef - p.y) <= 1e-6 * np.linalg.norm(p.y)
    assert np.linalg.norm(loose.coef - dense.coef) <= 1e-5 * np.linalg.norm(dense.coef)


def test_working_set_limit_starts_low_and_rises_to_the_cap(rng):
    A = rng.standard_normal((40, 200))
    pre = WorkingSetPreconditioner(_Columns(DenseOperator(A)), limit=5)
    pre.update(np.exp(rng.uniform(-30, 2, 200)))
    assert pre.size <= 5 < pre._cols.max_size
    pre.enlarge()
    pre.update(np.exp(rng.uniform(-30, 2, 200)))
    assert 5 < pre.size <= pre._cols.max_size == 20


def test_closed_form_columns_raise_the_operator_working_set_cap():
    n, m = 100_000, 20_000
    dct = SubsampledDCT(n, np.arange(0, n, n // m))
    cap = kn._WORKING_BYTES // (8 * m)  # a 320 MiB block of columns: 2,097
    assert kn._MAX_WORKING_OPERATOR < cap < m // 8
    for op in (dct, dct.scaled(3.0), DiagonalScaledOperator(dct, np.full(n, 2.0))):
        assert op.closed_form_columns and _Columns(op).max_size == cap
    assert dct.rows(np.arange(5000)).closed_form_columns
    # at most m / 8 columns, and never fewer than any operator's 1,024
    assert _Columns(dct.rows(np.arange(12_000))).max_size == 1500
    assert _Columns(dct.rows(np.arange(6_000))).max_size == kn._MAX_WORKING_OPERATOR
    sensing = RandomizedDCTSensing.random(150, 4000, np.random.default_rng(0))
    generic = as_operator(aslinearoperator(np.ones((4000, 5000))))
    for op in (sensing, generic):  # columns by transforms or forward: the low cap
        assert not op.closed_form_columns
        assert _Columns(op).max_size == kn._MAX_WORKING_OPERATOR


def _dct_limit_problem(rng, n=512, m=160):
    """A subsampled DCT, a 12-sparse signal's measurements, a tiny init and the dense limit."""
    op = SubsampledDCT(n, np.sort(rng.choice(n, m, replace=False)))
    A = op.to_dense()
    x = np.zeros(n)
    x[rng.choice(n, 12, replace=False)] = rng.standard_normal(12) + 2
    y = A @ x
    alpha = 1e-20 * np.max(np.abs(A.T @ y) / np.sum(A**2, axis=0))
    return op, y, alpha, hadamard_newton(DenseOperator(A), y, init_scale=alpha)


def test_operator_limit_is_the_dense_one_whatever_the_working_set_cap(rng, monkeypatch):
    m = 160
    op, y, alpha, dense = _dct_limit_problem(rng, m=m)
    monkeypatch.setattr(kn, "_MAX_WORKING_OPERATOR", 4)
    sizes = {}
    for closed in (False, True):
        monkeypatch.setattr(SubsampledDCT, "closed_form_columns", closed)
        monkeypatch.setattr(kn, "_WORKING_BYTES", 8 * m * 40)  # closed form: 40 columns
        monkeypatch.setattr(kn, "_MAX_WORKING_CLOSED_FORM", 0.5)
        free = hadamard_newton_cg(op, y, init_scale=alpha)
        sizes[closed] = free.info["working_set"]
        assert free.stop_reason == "converged"
        assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)
    assert sizes[False] <= 4 < sizes[True] <= 40


@pytest.mark.parametrize("signed", [True, False])
def test_first_trial_past_the_plateau_caps_only_parts_that_become_large(signed):
    dmap = HadamardDualMap(2, signed, 1e-20)
    s = np.array([0.0, 11.0, 2.0])
    ds = np.array([-100.0, -1.0, 50.0])  # coordinate 0: tiny and pushed far up
    capped = _first_trial(dmap, s, ds)
    assert capped == pytest.approx(kn._MAX_DS / 100)
    t = _first_trial(dmap, s, ds, negligible=1e-3)
    assert t > capped
    before, after = np.abs(dmap.signal(s)), np.abs(dmap.signal(s - t * ds))
    grown = after > before * np.exp(4 * kn._MAX_DS) * (1 + 1e-9)
    assert np.all(after[grown] <= 1e-3 * (1 + 1e-9))  # beyond e^(4 _MAX_DS): still negligible
    assert after[0] == pytest.approx(1e-3, rel=1e-6)  # the binding coordinate


def test_residual_update_is_exact_on_the_working_set_and_refuses_a_large_rest(rng):
    A = rng.standard_normal((30, 80))
    y = rng.standard_normal(30)
    op = DenseOperator(A)
    columns = _Columns(op)
    pre = WorkingSetPreconditioner(columns, 10)
    pre.update(np.exp(rng.standard_normal(80) * 3))
    products = _Products(op)
    residual = kn._Residual(products, y, np.linalg.norm(y), np.linalg.norm(A),
                            columns.norms_sq)
    x = rng.standard_normal(80)
    g, exact = residual.exact(x)
    assert exact and products.count == 1
    moved = x.copy()
    moved[pre.index] += rng.standard_normal(pre.size)  # a change on the working set only
    g, exact = residual.update(moved, pre)
    assert not exact and residual.updated and products.count == 1
    np.testing.assert_allclose(g, A @ moved - y, rtol=1e-12, atol=1e-12)
    outside = np.setdiff1d(np.arange(80), pre.index)
    moved[outside] += 1.0  # a large change outside: the product is made
    g, exact = residual.update(moved, pre)
    assert exact and not residual.updated and products.count == 2
    np.testing.assert_allclose(g, A @ moved - y)


def test_subsampled_dct_column_gram_is_the_gram_of_its_columns(rng):
    n = 300
    rows = np.concatenate([[0], np.sort(rng.choice(np.arange(1, n), 79, replace=False))])
    dct = SubsampledDCT(n, rows)
    a = np.concatenate([[0, n - 1], rng.choice(n, 20)])  # the ends of both index ranges
    b = np.concatenate([[n - 1, 0], rng.choice(n, 15)])
    weights = rng.uniform(0.5, 2.0, n)
    for op, closed in ((dct, True), (dct.scaled(3.0), True),
                       (DiagonalScaledOperator(dct, weights), True),
                       (dct.rows(np.arange(40)), True),  # a SubsampledDCT again
                       (RowSubset(dct, np.arange(0, 80, 2)), False),
                       (RandomizedDCTSensing.random(12, 40, rng), False)):
        assert op.closed_form_gram is closed
        dense = op.to_dense()
        np.testing.assert_allclose(op.column_gram(a % op.shape[1], b % op.shape[1]),
                                   dense[:, a % op.shape[1]].T @ dense[:, b % op.shape[1]],
                                   rtol=1e-12, atol=1e-14)


def test_implicit_preconditioner_keeps_no_columns_and_is_the_woodbury_inverse(rng):
    n, m = 400, 100
    op = SubsampledDCT(n, np.sort(rng.choice(n, m, replace=False)))
    A = op.to_dense()
    products = _Products(op)
    pre = WorkingSetPreconditioner(_Columns(op), products=products)
    assert pre.implicit and pre.columns is None
    d = np.exp(rng.uniform(-20, 2, n))
    pre.update(d)
    assert 0 < pre.size < m
    P = (A[:, pre.index] * d[pre.index]) @ A[:, pre.index].T + pre.delta * np.eye(m)
    v = rng.standard_normal(m)
    count = products.count
    np.testing.assert_allclose(P @ pre.solve(v), v, rtol=1e-8, atol=1e-8 * np.linalg.norm(v))
    assert products.count == count + 2  # A_W^T v and A_W t by one product each
    # weights within _STALE of the factored ones: the factor (and its P) stays
    factor = pre._factor
    pre.update(d * rng.uniform(0.8, 1.2, n))
    assert pre._factor is factor
    np.testing.assert_allclose(P @ pre.solve(v), v, rtol=1e-8, atol=1e-8 * np.linalg.norm(v))
    # the heavy columns' weights moved far: a new factor
    heavy = d * np.where(np.isin(np.arange(n), pre.index), 10.0, 1.0)
    pre.update(heavy)
    assert pre._factor is not factor
    P = (A[:, pre.index] * heavy[pre.index]) @ A[:, pre.index].T + pre.delta * np.eye(m)
    np.testing.assert_allclose(P @ pre.solve(v), v, rtol=1e-8, atol=1e-8 * np.linalg.norm(v))
    block = WorkingSetPreconditioner(_Columns(op))  # without products: the cached columns
    assert not block.implicit and not block.by_products and block.columns.shape == (m, 0)


@pytest.mark.parametrize("kind", ["sensing", "matrix"])
def test_fast_transform_caches_columns_for_the_gram_and_applies_them_by_products(kind, rng):
    if kind == "sensing":  # a fast transform without a closed-form Gram matrix
        op = RandomizedDCTSensing.random(16, 60, rng)
    else:  # a matrix: its cached columns are cheaper than its products
        op = DenseOperator(rng.standard_normal((60, 256)))
    A = op.to_dense()
    products = _Products(op)
    pre = WorkingSetPreconditioner(_Columns(op), products=products)
    assert not pre.implicit and pre.by_products is (kind == "sensing")
    d = np.exp(rng.uniform(-20, 2, 256))
    pre.update(d)
    assert 0 < pre.size < 60
    np.testing.assert_allclose(pre.columns, A[:, pre.index], rtol=1e-12, atol=1e-14)
    P = (A[:, pre.index] * d[pre.index]) @ A[:, pre.index].T + pre.delta * np.eye(60)
    v = rng.standard_normal(60)
    count = products.count
    np.testing.assert_allclose(P @ pre.solve(v), v, rtol=1e-8, atol=1e-8 * np.linalg.norm(v))
    assert products.count == count + (2 if kind == "sensing" else 0)


def test_implicit_limit_with_stale_factors_is_the_dense_limit(rng, monkeypatch):
    m = 160
    op, y, alpha, dense = _dct_limit_problem(rng, m=m)
    factors = []
    for stale, outliers in ((kn._STALE, kn._STALE_OUTLIERS), (1e3, m)):  # default; lax reuse
        monkeypatch.setattr(kn, "_STALE", stale)
        monkeypatch.setattr(kn, "_STALE_OUTLIERS", outliers)
        free = hadamard_newton_cg(op, y, init_scale=alpha)
        assert free.stop_reason == "converged" and free.info["n_updated"] == 0
        assert np.linalg.norm(op.forward(free.coef) - y) <= 1e-10 * np.linalg.norm(y)
        assert np.linalg.norm(free.coef - dense.coef) <= 1e-8 * np.linalg.norm(dense.coef)
        factors.append(free.info["n_factors"])
    assert factors[1] < factors[0]


@pytest.mark.parametrize("form", ["C", "F", "equilibrated", "sparse", "linear_operator"])
def test_working_set_reads_the_columns_of_any_layout(form, rng):
    import scipy.sparse as sp

    from overparam.estimators._equilibration import equilibrated

    A = rng.standard_normal((40, 150)) * rng.uniform(0.2, 5.0, 150)
    d = np.linalg.norm(A, axis=0)
    expected = A / d if form == "equilibrated" else A
    op = {"C": lambda: DenseOperator(np.ascontiguousarray(A)),
          "F": lambda: DenseOperator(np.asfortranarray(A)),
          "equilibrated": lambda: equilibrated(DenseOperator(A), d, lazy=True),
          "sparse": lambda: as_operator(sp.csr_array(A)),
          "linear_operator": lambda: as_operator(aslinearoperator(A))}[form]()
    # the estimator passes the known norms (1) of an equilibrated design
    norms_sq = np.ones(150) if form == "equilibrated" else None
    precond = WorkingSetPreconditioner(_Columns(op, norms_sq))
    first, second = np.array([3, 7, 100, 149]), np.array([0, 50, 51])
    precond._grow(first)
    precond._keep(np.array([0, 2, 3]))
    precond._grow(second)
    block = expected[:, precond.index]
    tol = 1e-12 if form == "linear_operator" else 0
    np.testing.assert_allclose(precond.columns, block, rtol=tol, atol=tol)
    np.testing.assert_allclose(precond._gram, block.T @ block, rtol=1e-12, atol=1e-12)
    if form == "equilibrated":
        assert op._copy is None  # read without copying the design


def test_evicted_columns_of_an_operator_are_kept_for_their_next_read(rng, monkeypatch):
    """An operator whose columns cost products keeps the columns evicted from the working set
    (the set's churn reads them again); the block and Gram matrix are those of fresh reads,
    and the cache drops the earliest evicted when full."""
    op = RandomizedDCTSensing.random(16, 60, rng)
    A = op.to_dense()
    cols = _Columns(op)
    assert cols.costly and not _Columns(DenseOperator(A)).costly
    pre = WorkingSetPreconditioner(cols, products=_Products(op))
    assert pre._evicted is not None
    read = []
    take = _Columns.take
    monkeypatch.setattr(_Columns, "take", lambda self, index: read.append(
        np.array(index)) or take(self, index))
    pre._grow(np.arange(8))
    pre._keep(np.array([0, 2, 4, 6]))  # evicts 1, 3, 5, 7
    pre._grow(np.array([3, 7, 20, 21]))  # 3 and 7 from the cache, 20 and 21 read
    np.testing.assert_array_equal(read[-1], [20, 21])
    assert pre.n_read == 10 and len(pre._evicted) == 2  # 1 and 5 still kept
    block = A[:, pre.index]
    np.testing.assert_allclose(pre.columns, block, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pre._gram, block.T @ block, rtol=1e-12, atol=1e-13)
    # bounded: the earliest evicted go first
    cache = kn._EvictedColumns(5, 2)
    cache.put([4, 9, 11], np.arange(15.0).reshape(5, 3))
    out = np.zeros((5, 3))
    np.testing.assert_array_equal(cache.take([4, 9, 11], out), [False, True, True])
    np.testing.assert_array_equal(out[:, 1:], np.arange(15.0).reshape(5, 3)[:, 1:])
    assert len(cache) == 0


def test_limit_on_an_operator_with_kept_columns_is_the_same(rng, monkeypatch):
    """The cache of evicted columns changes which columns are read, not the limit."""
    n, m = 256, 64
    op = RandomizedDCTSensing.random(16, m, rng)  # a 16 x 16 image
    x = np.zeros(n)
    x[rng.choice(n, 10, replace=False)] = rng.standard_normal(10) + 1.0
    y = op.forward(x)
    alpha = _alpha(op.to_dense(), y)
    cached = hadamard_newton_cg(op, y, init_scale=alpha)
    monkeypatch.setattr(kn, "_EVICTED_BYTES", 0)
    fresh = hadamard_newton_cg(op, y, init_scale=alpha)
    np.testing.assert_array_equal(cached.coef, fresh.coef)
    assert cached.n_iter == fresh.n_iter
    assert cached.info["columns_read"] < fresh.info["columns_read"]  # the churn was cached
