"""Operators from the ecosystem: duck-typed objects and real PyLops operators."""

import numpy as np
import pytest

from overparam.estimators import HadamardRegressor
from overparam.operators import ScipyOperator, as_operator, is_operator_like
from overparam.testing import check_adjoint


class MatvecOnly:
    """An operator known only by its shape and products (the PyLops / scipy protocol)."""

    def __init__(self, A):
        self._A = A
        self.shape = A.shape
        self.dtype = A.dtype

    def matvec(self, v):
        return self._A @ v

    def rmatvec(self, z):
        return self._A.T @ z


class MatmulWithAdjoint:
    """An operator known by ``@`` and an adjoint ``.H`` (no ``__array__``)."""

    def __init__(self, A):
        self._A = A
        self.shape = A.shape

    def __matmul__(self, v):
        return self._A @ v

    @property
    def H(self):
        return MatmulWithAdjoint(self._A.T)


def _sparse_problem(rng, m=30, n=80, k=4):
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x = np.zeros(n)
    x[rng.choice(n, k, replace=False)] = rng.standard_normal(k) + np.sign(rng.standard_normal(k))
    return A, x


@pytest.mark.parametrize("kind", [MatvecOnly, MatmulWithAdjoint])
def test_duck_operator_adjoint_and_values(kind, rng):
    A = rng.standard_normal((7, 11))
    op = as_operator(kind(A))
    assert isinstance(op, ScipyOperator) and op.shape == (7, 11)
    x = rng.standard_normal(11)
    np.testing.assert_allclose(op.forward(x), A @ x, rtol=1e-13)
    check_adjoint(op, rtol=1e-12)
    X = rng.standard_normal((11, 3))
    np.testing.assert_allclose(op.forward(X), A @ X, rtol=1e-13)


def test_arrays_and_frames_are_not_duck_operators(rng):
    A = rng.standard_normal((4, 5))
    assert not is_operator_like(A)
    assert not is_operator_like(A.tolist())
    assert not is_operator_like(np.float64(3.0))
    assert is_operator_like(MatvecOnly(A))


class ShapeOnly:
    shape = (3, 4)


@pytest.mark.parametrize("bad", [object(), ShapeOnly()])
def test_non_operators_get_a_clear_error(bad):
    with pytest.raises(TypeError, match="matvec"):
        HadamardRegressor(early_stopping=None).fit(bad, np.ones(3))
    with pytest.raises(TypeError, match="matvec"):
        as_operator(bad)


def test_complex_duck_operator_is_refused(rng):
    A = rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5))
    with pytest.raises(TypeError, match="complex"):
        as_operator(MatvecOnly(A))


@pytest.mark.parametrize("kind", [MatvecOnly, MatmulWithAdjoint])
def test_estimator_fits_duck_operator_like_the_matrix(kind, rng):
    A, x = _sparse_problem(rng)
    y = A @ x
    ref = HadamardRegressor(early_stopping=None).fit(A, y).coef_
    est = HadamardRegressor(early_stopping=None).fit(kind(A), y)
    assert np.linalg.norm(est.coef_ - ref) <= 1e-6 * np.linalg.norm(ref)
    np.testing.assert_allclose(est.predict(kind(A)), A @ est.coef_, rtol=1e-10, atol=1e-12)


def _pylops():
    return pytest.importorskip("pylops", reason="PyLops not installed (pip install "
                                                "overparam[pylops])")


def test_pylops_operators_adjoint(rng):
    pylops = _pylops()
    n = 64
    ops = {
        "dct": pylops.signalprocessing.DCT(dims=n),
        "restriction": pylops.Restriction(n, np.arange(0, n, 3)),
        "matrixmult": pylops.MatrixMult(rng.standard_normal((20, n))),
    }
    ops["restricted-dct"] = ops["restriction"] @ ops["dct"].H
    for name, pl in ops.items():
        op = as_operator(pl)
        assert op.shape == tuple(pl.shape), name
        x = rng.standard_normal(op.shape[1])
        np.testing.assert_allclose(op.forward(x), pl @ x, rtol=1e-12, err_msg=name)
        check_adjoint(op, rtol=1e-10)


@pytest.mark.parametrize("solver, stopping", [("auto", None), ("flow", None),
                                               ("auto", "validation")])
def test_pylops_subsampled_dct_in_the_solvers(solver, stopping, rng):
    pylops = _pylops()
    n, m, k = 96, 40, 3
    op = pylops.Restriction(n, np.sort(rng.choice(n, m, replace=False))) @ \
        pylops.signalprocessing.DCT(dims=n).H
    x = np.zeros(n)
    x[rng.choice(n, k, replace=False)] = [1.5, -2.0, 1.0]
    y = op @ x
    est = HadamardRegressor(solver=solver, early_stopping=stopping, random_state=0).fit(op, y)
    # the limit is exact (to the solver's tolerance); a validated path stops near it
    bound = 1e-5 if stopping is None else 0.05
    assert np.linalg.norm(est.coef_ - x) <= bound * np.linalg.norm(x)
