"""Column equilibration of badly scaled designs (RecoveryEstimator._equilibration)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from overparam.baselines import GroupPrimalDualRegressor
from overparam.estimators import GroupHadamardRegressor, HadamardRegressor, MMVRegressor
from overparam.estimators import _equilibration as equilibration
from overparam.estimators._equilibration import (
    column_norms,
    equilibrated,
    equilibration_scales,
)
from overparam.operators import DenseOperator, ScipyOperator
from overparam.stopping import DegenerateInputWarning, Oracle
from overparam.testing import check_adjoint


def _sparse_problem(seed=0, m=30, n=80, s=3):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x = np.zeros(n)
    x[rng.choice(n, s, replace=False)] = rng.standard_normal(s) + np.sign(rng.standard_normal(s))
    return A, x


def _group_problem(seed=0, m=30, p=60):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, p))
    w = np.zeros(p)
    w[:6] = rng.standard_normal(6) + np.sign(rng.standard_normal(6))  # groups 0 and 1 (size 3)
    return A, w


def _mmv_problem(seed=0, M=15, N=30, L=4):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, N)) / np.sqrt(M)
    X = np.zeros((N, L))
    X[rng.choice(N, 2, replace=False)] = rng.standard_normal((2, L))
    return A, X


def _bad_columns(n, factor=1e6):
    scale = np.ones(n)
    scale[::2] = factor
    return scale


def _fit(est, A, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(A, y)
    return est, [w for w in caught if issubclass(w.category, DegenerateInputWarning)]


def _estimators():
    return [
        ("hadamard", HadamardRegressor, {}, _sparse_problem),
        ("group-hadamard", GroupHadamardRegressor, {"groups": 3}, _group_problem),
        ("group-primal-dual", GroupPrimalDualRegressor, {"groups": 3}, _group_problem),
        ("ir-mmv", MMVRegressor, {}, _mmv_problem),
    ]


def _signed_problem(problem):
    """The problem with a +-1 design of the same shape: columns of exactly equal norm."""
    A, x = problem()
    return np.where(A >= 0, 1.0, -1.0), x


@pytest.mark.parametrize(("name", "cls", "kwargs", "problem"), _estimators(),
                         ids=[e[0] for e in _estimators()])
def test_equal_column_norms_are_solved_exactly_as_given(name, cls, kwargs, problem):
    """+-1 columns (no spread): no equilibration, bit for bit the fit on A as given."""
    A, x = _signed_problem(problem)
    y = A @ x
    est, caught = _fit(cls(**kwargs), A, y)
    off = cls(**kwargs)
    off.column_spread_limit = np.inf  # the code path without equilibration
    ref, _ = _fit(off, A, y)
    assert not caught
    assert "column_scales" not in est.result_.info
    assert np.array_equal(est.coef_, ref.coef_)


@pytest.mark.parametrize(("name", "cls", "kwargs", "problem"), _estimators(),
                         ids=[e[0] for e in _estimators()])
@pytest.mark.parametrize("factor", [1.0, 3.0, 4.0, 8.0])
def test_moderate_spreads_are_equilibrated_silently(name, cls, kwargs, problem, factor):
    """Gaussian columns (spread about 2) and half of them times 3-8: solved on unit columns,
    no warning, the truth recovered and the data fit. As given, spreads of 3-8 left the
    defaults far from both on some problems (docs/scaling.md)."""
    A0, x0 = problem(seed=1)
    scale = _bad_columns(A0.shape[1], factor)
    A = A0 * scale
    truth = x0 / (scale[:, None] if x0.ndim == 2 else scale)
    y = A0 @ x0
    est, caught = _fit(cls(**kwargs), A, y)
    assert not caught
    a = est.result_.info["data_scales"][0]
    assert np.allclose(est.result_.info["column_scales"] * a, np.linalg.norm(A, axis=0))
    signal = est.signal_
    residual = np.linalg.norm(A @ signal - y) / np.linalg.norm(y)
    tol = 1e-4 if name == "group-primal-dual" else 1e-6  # its own tol is 1e-6 on the residual
    assert residual <= tol
    assert np.linalg.norm(signal - truth) <= tol * np.linalg.norm(truth)


@pytest.mark.parametrize(("name", "cls", "kwargs", "problem"), _estimators(),
                         ids=[e[0] for e in _estimators()])
def test_bad_columns_are_equilibrated_and_the_truth_recovered(name, cls, kwargs, problem):
    A0, x0 = problem()
    scale = _bad_columns(A0.shape[1])
    A = A0 * scale
    truth = x0 / (scale[:, None] if x0.ndim == 2 else scale)  # the same measurements
    est, caught = _fit(cls(**kwargs), A, A0 @ x0)
    assert len(caught) == 1 and "column_spread_limit" in str(caught[0].message)
    d = est.result_.info["column_scales"]
    a = est.result_.info.get("data_scales", (1.0, 1.0))[0]  # OMP: data not normalized
    assert np.allclose(d * a, np.linalg.norm(A, axis=0))
    tol = 1e-4 if name == "group-primal-dual" else 1e-6  # its own tol is 1e-6 on the residual
    assert np.linalg.norm(est.signal_ - truth) <= tol * np.linalg.norm(truth)


def test_fit_is_equivariant_to_column_scaling():
    """Two different bad scalings of the same columns give the same signal (up to round-off)."""
    A0, x0 = _sparse_problem(seed=1)
    y = A0 @ x0
    fits = []
    for factor in (1e3, 1e-5, 1.0, 3.0):  # extreme and moderate: the same standardized fit
        scale = _bad_columns(A0.shape[1], factor)
        est, _ = _fit(HadamardRegressor(early_stopping=None), A0 * scale, y)
        fits.append(est.coef_ * scale)
    for fit in fits[1:]:
        assert np.allclose(fit, fits[0], rtol=0, atol=1e-9 * np.abs(x0).max())


def test_equilibrated_fit_stays_exactly_equivariant_to_powers_of_256():
    A0, x0 = _sparse_problem(seed=2)
    A = A0 * _bad_columns(A0.shape[1])
    y = A0 @ x0
    base, _ = _fit(HadamardRegressor(), A, y)
    scaled, _ = _fit(HadamardRegressor(), A * 256.0**2, y * 256.0**-1)
    assert np.array_equal(scaled.coef_, base.coef_ * 256.0**-3)


@pytest.mark.parametrize("form", ["sparse", "linear-operator"])
def test_sparse_and_matrix_free_inputs_get_the_same_answer(form):
    A0, x0 = _sparse_problem(seed=3)
    A = A0 * _bad_columns(A0.shape[1])
    y = A0 @ x0
    dense, _ = _fit(HadamardRegressor(early_stopping=None), A, y)
    given = sp.csr_matrix(A) if form == "sparse" else aslinearoperator(A)
    other, caught = _fit(HadamardRegressor(early_stopping=None), given, y)
    assert caught
    # Equilibrated the same way (exact column norms); the init may differ (the "auto" init of
    # a non-dense operator is estimated differently): both recover the truth.
    assert np.allclose(other.result_.info["column_scales"], dense.result_.info["column_scales"],
                       rtol=1e-12)
    truth = x0 / _bad_columns(A0.shape[1])
    for est in (dense, other):
        assert np.linalg.norm(est.signal_ - truth) <= 1e-6 * np.linalg.norm(truth)


def test_zero_columns_are_left_alone():
    A0, x0 = _sparse_problem(seed=4)
    A = A0 * _bad_columns(A0.shape[1])
    A[:, 1] = 0.0
    x0[1] = 0.0
    est, caught = _fit(HadamardRegressor(), A, A0 @ x0)
    assert caught
    assert est.result_.info["column_scales"][1] == 1.0
    assert np.all(np.isfinite(est.coef_)) and abs(est.coef_[1]) < 1e-12


def test_oracle_criterion_reads_the_signal_in_data_units():
    """A user's Oracle is given x = D^-1 z: its best error is the returned estimate's."""
    A0, x0 = _sparse_problem(seed=5)
    scale = _bad_columns(A0.shape[1], 1e3)
    A, truth = A0 * scale, x0 / scale
    est, _ = _fit(HadamardRegressor(early_stopping=Oracle(truth)), A, A0 @ x0)
    best = est.result_.info["validation_curve"][:, 2].min()
    assert np.isclose(best, np.sum((est.signal_ - truth) ** 2), rtol=1e-6)


@pytest.mark.parametrize(("factor", "warned"), [(100.0, False), (1e6, True)])
def test_only_extreme_spreads_warn(factor, warned):
    A0, x0 = _sparse_problem(seed=7)
    est, caught = _fit(HadamardRegressor(), A0 * _bad_columns(A0.shape[1], factor), A0 @ x0)
    assert "column_scales" in est.result_.info
    assert len(caught) == int(warned)
    assert not warned or "different units" in str(caught[0].message)


def test_estimated_norms_are_used_only_for_large_spreads(monkeypatch):
    """Norms from random probes (large matrix-free operators) are too noisy to equilibrate a
    moderate spread with: only spreads over ESTIMATED_SPREAD_LIMIT are acted on."""
    monkeypatch.setattr(equilibration, "_DENSE_ENTRIES", 0)  # estimate at every size
    A0, x0 = _sparse_problem(seed=8)
    for factor, expected in ((1.0, False), (1e3, True)):
        A = A0 * _bad_columns(A0.shape[1], factor)
        est, _ = _fit(HadamardRegressor(early_stopping=None), aslinearoperator(A), A0 @ x0)
        assert ("column_scales" in est.result_.info) is expected
    norms = column_norms(ScipyOperator(aslinearoperator(A)))
    assert np.all(norms / np.linalg.norm(A, axis=0) > 1 / 3)  # an estimate, within its noise


def test_threshold_and_scales():
    norms = np.array([1.0, 4.0, 0.0, 2.0])
    assert equilibration_scales(norms, 16.0) == (None, 4.0)
    d, spread = equilibration_scales(norms, 3.0)
    assert spread == 4.0 and np.array_equal(d, [1.0, 4.0, 1.0, 2.0])
    assert equilibration_scales(np.array([0.0, 5.0]), 1.0)[0] is None  # one nonzero column


def test_column_norms_and_operators():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((7, 5)) * np.array([1.0, 1e3, 1e-3, 2.0, 1.0])
    expected = np.linalg.norm(A, axis=0)
    for op in (DenseOperator(A), ScipyOperator(sp.csr_matrix(A)),
               ScipyOperator(aslinearoperator(A))):
        assert np.allclose(column_norms(op), expected)
        scaled = equilibrated(op, expected)
        assert np.allclose(np.linalg.norm(scaled.to_dense(), axis=0), 1.0)
    wrapper = equilibrated(ScipyOperator(aslinearoperator(A)), expected)  # A D^-1, wrapped
    assert np.allclose(wrapper.to_dense(), A / expected)
    assert np.allclose(wrapper.rows([0, 2]).to_dense(), (A / expected)[[0, 2]])
    assert np.allclose(wrapper.forward(np.ones((5, 3))), (A / expected) @ np.ones((5, 3)))
    check_adjoint(wrapper, trailing=(2,), rng=rng, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (64, 7), (65, 9), (1000, 17)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_dense_column_norms_are_numpys_bit_for_bit(shape, order):
    rng = np.random.default_rng(1)
    A = np.asarray(rng.standard_normal(shape) * np.exp(rng.standard_normal(shape)), order=order)
    assert np.array_equal(column_norms(DenseOperator(A)), np.linalg.norm(A, axis=0))


def test_lazy_equilibration_multiplies_as_the_copy_and_copies_only_on_demand():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 12)) * rng.uniform(0.1, 10, 12)
    A[:, 3] = 0.0  # a zero column keeps its scale 1 and norm 0
    norms = np.linalg.norm(A, axis=0)
    d, _ = equilibration_scales(norms, 1.0)
    eager = equilibrated(DenseOperator(A), d)
    lazy = equilibrated(DenseOperator(A), d, lazy=True)
    assert isinstance(lazy, equilibration.ColumnScaledMatrix) and isinstance(lazy, DenseOperator)
    x, z = rng.standard_normal(12), rng.standard_normal(20)
    X, Z = rng.standard_normal((12, 3)), rng.standard_normal((20, 3))
    np.testing.assert_allclose(lazy.forward(x), eager.forward(x), rtol=1e-13)
    np.testing.assert_allclose(lazy.forward(X), eager.forward(X), rtol=1e-13)
    np.testing.assert_allclose(lazy.adjoint(z), eager.adjoint(z), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lazy.adjoint(Z), eager.adjoint(Z), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lazy.columns([5, 1]), eager.columns([5, 1]), rtol=1e-15)
    np.testing.assert_array_equal(lazy.column_norms, np.where(norms > 0, 1.0, 0.0))
    np.testing.assert_allclose(column_norms(lazy), column_norms(eager), rtol=1e-14)
    assert lazy.frobenius_norm() == pytest.approx(eager.frobenius_norm(), rel=1e-14)
    assert check_adjoint(lazy) < 1e-10
    assert lazy._copy is None  # nothing so far needed the matrix
    np.testing.assert_array_equal(lazy.matrix, eager.matrix)  # the same copy, on demand
    np.testing.assert_array_equal(lazy.to_dense(), eager.to_dense())
    np.testing.assert_allclose(lazy.forward(x), eager.forward(x), rtol=0)


def test_hadamard_limit_equilibrates_without_copying_the_design(monkeypatch):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((80, 700)) * rng.uniform(0.5, 2.0, 700)  # Newton-CG's size
    x = np.zeros(700)
    x[rng.choice(700, 8, replace=False)] = rng.standard_normal(8) + 1.0
    seen = []
    original = equilibration.ColumnScaledMatrix.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(equilibration.ColumnScaledMatrix, "__init__", record)
    est = HadamardRegressor(early_stopping=None, tol=1e-10).fit(A, A @ x)
    assert est.result_.info["solver"] == "newton-cg"
    assert len(seen) == 1 and seen[0]._copy is None  # the limit only multiplied
    # the same limit as on the copy A D^-1 (the products differ by rounding only)
    eager = HadamardRegressor(early_stopping=None, tol=1e-10)
    eager._lazy_equilibration = False
    eager.fit(A, A @ x)
    assert len(seen) == 1
    assert np.linalg.norm(est.coef_ - eager.coef_) <= 1e-8 * np.linalg.norm(eager.coef_)


def _peak_bytes(func):
    """``(result, peak)``: the peak of the memory numpy allocated while ``func`` ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = func()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def test_fortran_ordered_column_norms_make_no_full_temporary():
    # np.linalg.norm(A, axis=0) squares the whole design first: a second copy of a large A
    rng = np.random.default_rng(2)
    A = np.asfortranarray(rng.standard_normal((300, 2000)) * rng.uniform(0.1, 10, 2000))
    norms, peak = _peak_bytes(lambda: column_norms(DenseOperator(A)))
    assert np.array_equal(norms, np.linalg.norm(A, axis=0))
    assert peak < A.nbytes / 4


@pytest.mark.parametrize("order", ["C", "F"])
def test_lazy_columns_are_the_scaled_gather_in_one_block(order):
    rng = np.random.default_rng(4)
    A = np.asarray(rng.standard_normal((400, 900)) * rng.uniform(0.1, 10, 900), order=order)
    original = A.copy()
    d = np.linalg.norm(A, axis=0)
    lazy = equilibrated(DenseOperator(A), d, lazy=True)
    index = np.sort(rng.choice(900, 300, replace=False))
    block, peak = _peak_bytes(lambda: lazy.columns(index))
    np.testing.assert_array_equal(block, A[:, index] / d[index])  # the same numbers
    np.testing.assert_array_equal(lazy.columns(7), A[:, [7]] / d[7])
    np.testing.assert_array_equal(A, original)  # the design is never written
    assert lazy._copy is None
    assert peak < 1.5 * block.nbytes  # scaled in place: no second (m, k) temporary
