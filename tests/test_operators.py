import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from overparam.operators import (
    DenseOperator,
    DiagonalScaledOperator,
    MatrixSensingOperator,
    Operator,
    ScipyOperator,
    as_operator,
)
from overparam.testing import check_adjoint


def make_operators(rng):
    A = rng.standard_normal((7, 11))
    return {
        "dense": DenseOperator(A),
        "scipy-sparse": ScipyOperator(sp.random(7, 11, density=0.4, random_state=1)),
        "linear-operator": ScipyOperator(aslinearoperator(A)),
        "matrix-sensing": MatrixSensingOperator(rng.standard_normal((9, 3, 4)), scale=1 / 3),
    }


@pytest.mark.parametrize("name", ["dense", "scipy-sparse", "linear-operator", "matrix-sensing"])
def test_adjoint_identity(name, rng):
    op = make_operators(rng)[name]
    check_adjoint(op, rng=rng, rtol=1e-12)
    check_adjoint(op.rows([0, 2, 3]), rng=rng, rtol=1e-12)


@pytest.mark.parametrize("name", ["dense", "scipy-sparse", "linear-operator"])
def test_adjoint_with_columns(name, rng):
    check_adjoint(make_operators(rng)[name], trailing=(4,), rng=rng, rtol=1e-12)


@pytest.mark.parametrize("name", ["dense", "linear-operator", "matrix-sensing"])
def test_diagonal_scaled_operator_is_a_times_d_inverse(name, rng):
    """``A D^{-1}``: column equilibration (vector signals, MMV columns) and row/column
    equilibration of matrix sensing (weights ``r c^T``) are the same operator."""
    op = make_operators(rng)[name]
    shape = op.input_shape
    weights = (np.outer(2.0 ** rng.integers(-6, 6, shape[0]), 2.0 ** rng.integers(-6, 6, shape[1]))
               if len(shape) == 2 else 10.0 ** rng.uniform(-3, 3, shape))
    scaled = DiagonalScaledOperator(op, weights)
    check_adjoint(scaled, rng=rng, rtol=1e-12)
    check_adjoint(scaled.rows([0, 2, 3]), rng=rng, rtol=1e-12)
    check_adjoint(scaled.scaled(-2.5), rng=rng, rtol=1e-12)
    if len(shape) == 1:
        check_adjoint(scaled, trailing=(4,), rng=rng, rtol=1e-12)
    z = rng.standard_normal(shape)
    np.testing.assert_allclose(scaled.forward(z), op.forward(z / weights), rtol=1e-12)
    np.testing.assert_allclose(scaled.to_dense(), op.to_dense() / weights.ravel(), rtol=1e-12)
    np.testing.assert_allclose(scaled.rows([1, 4]).forward(z), scaled.forward(z)[[1, 4]],
                               rtol=1e-12)
    np.testing.assert_allclose(scaled.scaled(-2.5).forward(z), -2.5 * scaled.forward(z),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="weights of shape"):
        DiagonalScaledOperator(op, np.ones(7))


@pytest.mark.parametrize("name", ["dense", "scipy-sparse", "linear-operator"])
def test_diagonal_scaled_columns_are_the_parent_columns_over_their_weights(name, rng):
    """``A D^{-1}`` column ``j`` is ``a_j / w_j``, read by the parent's ``columns`` (a slice
    of a matrix) rather than by one product of the wrapper per column."""
    op = make_operators(rng)[name]
    weights = 10.0 ** rng.uniform(-3, 3, op.shape[1])
    scaled = DiagonalScaledOperator(op, weights)
    dense = op.to_dense() / weights
    for index in ([7, 0, 3], 4, np.arange(11), np.array([], dtype=int)):
        np.testing.assert_allclose(scaled.columns(index), dense[:, np.atleast_1d(index)],
                                   rtol=1e-12, atol=0)
    np.testing.assert_allclose(scaled.rows([1, 4]).columns([2, 5]), dense[[1, 4]][:, [2, 5]],
                               rtol=1e-12)
    # the same bits as the products on unit vectors (the generic reader)
    np.testing.assert_array_equal(scaled.columns(np.arange(11)),
                                  Operator.columns(scaled, np.arange(11)))

    def refuse(x):
        raise AssertionError("a column read by a product of the wrapper")

    scaled.forward = refuse
    np.testing.assert_allclose(scaled.columns([5, 6]), dense[:, [5, 6]], rtol=1e-12)


def test_check_adjoint_catches_a_wrong_adjoint_or_shape(rng):
    A = rng.standard_normal((7, 11))

    class Wrong(DenseOperator):
        def adjoint(self, z):
            return 1.001 * super().adjoint(z)

    class BadShape(DenseOperator):
        def forward(self, x):
            return super().forward(x)[:-1]

    assert check_adjoint(DenseOperator(A), rtol=1e-12) < 1e-13
    with pytest.raises(AssertionError, match="dot test failed"):
        check_adjoint(Wrong(A))
    with pytest.raises(AssertionError, match="shape"):
        check_adjoint(BadShape(A))
    assert check_adjoint(np.zeros((3, 4))) == 0.0  # zero operator: no division by zero


@pytest.mark.parametrize("name", ["dense", "scipy-sparse", "linear-operator", "matrix-sensing"])
def test_norm_estimate_matches_dense(name, rng):
    op = make_operators(rng)[name]
    assert op.norm_estimate() == pytest.approx(np.linalg.norm(op.to_dense(), 2), rel=1e-10)


def test_large_operator_norm_uses_arpack(rng):
    A = rng.standard_normal((150, 400))
    op = ScipyOperator(aslinearoperator(A))
    assert op.norm_estimate() == pytest.approx(np.linalg.norm(A, 2), rel=1e-8)


def test_matrix_sensing_forward_is_inner_products(rng):
    stack = rng.standard_normal((5, 3, 2))
    X = rng.standard_normal((3, 2))
    op = MatrixSensingOperator(stack, scale=0.5)
    expected = 0.5 * np.array([np.sum(Ai * X) for Ai in stack])
    np.testing.assert_allclose(op.forward(X), expected)
    np.testing.assert_allclose(op.to_dense() @ X.ravel(), expected)
    assert op.shape == (5, 6)
    with pytest.raises(ValueError, match="shape"):
        op.forward(np.zeros((2, 3)))


def test_rows_subset_matches_matrix_rows(rng):
    A = rng.standard_normal((6, 4))
    x = rng.standard_normal(4)
    idx = [5, 1]
    for op in (DenseOperator(A), ScipyOperator(aslinearoperator(A))):
        np.testing.assert_allclose(op.rows(idx).forward(x), A[idx] @ x)
        assert op.rows(idx).n_measurements == 2


def test_as_operator_dispatch(rng):
    A = rng.standard_normal((3, 4))
    assert isinstance(as_operator(A), DenseOperator)
    assert isinstance(as_operator(sp.csr_matrix(A)), ScipyOperator)
    assert isinstance(as_operator(rng.standard_normal((2, 3, 3))), MatrixSensingOperator)
    op = DenseOperator(A)
    assert as_operator(op) is op
    with pytest.raises(ValueError, match="2-D"):
        as_operator(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        as_operator(np.array([[1.0, np.nan]]))
    with pytest.raises(TypeError, match="complex"):
        as_operator(np.ones((2, 2), dtype=complex))


def _column_operators(rng):
    from overparam.operators import RandomizedDCTSensing, SubsampledDCT

    ops = make_operators(rng)
    ops.pop("matrix-sensing")  # matrix input: no columns
    ops["dct"] = SubsampledDCT(50, rng.choice(50, 20, replace=False))
    ops["randomized-dct"] = RandomizedDCTSensing.random(8, 20, rng)
    ops["scaled-row-subset"] = SubsampledDCT(64, rng.choice(64, 30, replace=False)).scaled(
        -3.0).rows([1, 4, 5, 9])
    return ops


@pytest.mark.parametrize("name", ["dense", "scipy-sparse", "linear-operator", "dct",
                                  "randomized-dct", "scaled-row-subset"])
def test_columns_are_the_columns_of_the_matrix(name, rng):
    op = _column_operators(rng)[name]
    index = [3, 0, 7, 3]
    np.testing.assert_allclose(op.columns(index), op.to_dense()[:, index], atol=1e-14)


def test_dct_columns_closed_form_at_large_n(rng):
    from overparam.operators import SubsampledDCT

    n = 100_000  # k (2j + 1) reaches 4e10: the angle is reduced exactly in integers
    op = SubsampledDCT(n, rng.choice(n, 500, replace=False))
    index = np.array([0, 1, 54_321, n - 1])
    unit = np.zeros((n, index.size))
    unit[index, np.arange(index.size)] = 1.0
    np.testing.assert_allclose(op.columns(index), op.forward(unit), atol=1e-15)


def test_randomized_dct_sensing_is_adjoint_with_orthonormal_rows(rng):
    from overparam.operators import RandomizedDCTSensing

    op = RandomizedDCTSensing.random(8, 20, rng)
    check_adjoint(op, rng=rng, rtol=1e-12)
    check_adjoint(op, trailing=(3,), rng=rng, rtol=1e-12)
    check_adjoint(op.rows([0, 5, 6]), rng=rng, rtol=1e-12)
    A = op.to_dense()
    np.testing.assert_allclose(A @ A.T, np.eye(20), atol=1e-12)


def test_dense_scaled_checks_only_what_can_overflow():
    """A contraction of finite entries is trusted (no second scan); a factor above 1 that
    overflows is still a clear error, not an operator full of inf."""
    from overparam.operators import DenseOperator

    A = np.array([[1e300, -2.0], [3.0, 4.0]])
    op = DenseOperator(A)
    np.testing.assert_array_equal(op.scaled(0.5).matrix, A * 0.5)
    np.testing.assert_array_equal(op.rows([1]).matrix, A[[1]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        op.scaled(1e10)
    with pytest.raises(ValueError, match="no columns"):
        DenseOperator.from_finite(np.zeros((3, 0)))
