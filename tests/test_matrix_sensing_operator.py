"""The memory-aware Gaussian matrix-sensing operator."""

import tracemalloc

import numpy as np
import pytest

from overparam.operators import GaussianSensingOperator, MatrixSensingOperator, as_operator
from overparam.testing import check_adjoint


@pytest.mark.parametrize("store", [True, False])
def test_adjoint_test_passes(store, rng):
    op = GaussianSensingOperator(37, (5, 4), random_state=3, store=store, block_size=8)
    assert op.stored is store
    check_adjoint(op, rng=rng, rtol=1e-12)
    check_adjoint(op, trailing=(3,), rng=rng, rtol=1e-12)
    check_adjoint(op.rows([0, 5, 9, 30, 36]), rng=rng, rtol=1e-12)


def test_stored_and_streamed_operators_are_the_same_operator(rng):
    kw = dict(random_state=7, block_size=6)
    stored = GaussianSensingOperator(40, (6, 3), store=True, **kw)
    streamed = GaussianSensingOperator(40, (6, 3), store=False, **kw)
    X = rng.standard_normal((6, 3))
    z = rng.standard_normal(40)
    np.testing.assert_allclose(streamed.forward(X), stored.forward(X), rtol=1e-13)
    np.testing.assert_allclose(streamed.adjoint(z), stored.adjoint(z), rtol=1e-13)
    np.testing.assert_allclose(streamed.to_dense(), stored.to_dense())
    idx = [1, 2, 17, 39]
    np.testing.assert_allclose(streamed.rows(idx).forward(X), stored.forward(X)[idx], rtol=1e-13)
    np.testing.assert_allclose(stored.rows(idx).forward(X), stored.forward(X)[idx], rtol=1e-13)
    # The scale is 1/sqrt(m), and the materialized stack is a MatrixSensingOperator.
    mat = stored.materialize()
    assert isinstance(mat, MatrixSensingOperator)
    assert stored.scale == pytest.approx(1 / np.sqrt(40))
    np.testing.assert_allclose(mat.forward(X), stored.forward(X), rtol=1e-13)
    # Seeds matter: a different seed is a different operator.
    other = GaussianSensingOperator(40, (6, 3), random_state=8, block_size=6)
    assert not np.allclose(other.forward(X), stored.forward(X))


def test_large_operator_never_allocates_its_stack():
    m, shape = 100_000, (20, 20)
    stack_bytes = 8 * m * shape[0] * shape[1]  # 320 MB
    op = GaussianSensingOperator(m, shape, random_state=0)
    assert not op.stored
    X = np.outer(np.arange(20.0), np.ones(20)) / 100
    tracemalloc.start()
    try:
        y = op.forward(X)
        G = op.adjoint(y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < stack_bytes / 10, f"peak {peak / 2**20:.0f} MiB"
    assert y.shape == (m,) and G.shape == shape
    # With m = 100k the normalized ensemble is nearly an isometry: A*A(X) ~ X.
    assert np.linalg.norm(G - X) / np.linalg.norm(X) < 0.1
    assert op.norm_estimate() == pytest.approx(1 + np.sqrt(400 / m))


def test_as_operator_and_bad_input():
    op = GaussianSensingOperator(10, (3, 2), random_state=0)
    assert as_operator(op) is op
    with pytest.raises(ValueError, match="shape"):
        op.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="measurements"):
        op.adjoint(np.ones(9))
    with pytest.raises(TypeError, match="Generator"):
        GaussianSensingOperator(10, (3, 2), random_state=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        GaussianSensingOperator(10, (3,), random_state=0)
    with pytest.raises(ValueError):
        GaussianSensingOperator(0, (3, 2))
