import numpy as np
import pytest

from overparam.parameterizations import Hadamard, Identity, Parameterization
from overparam.testing import check_gradient, check_vjp


@pytest.mark.parametrize("depth", [2, 3, 5])
@pytest.mark.parametrize("signed", [True, False])
def test_hadamard_vjp_matches_finite_differences(depth, signed, rng):
    param = Hadamard(8, depth=depth, signed=signed)
    params = tuple(rng.uniform(0.2, 1.5, 8) for _ in range(2 if signed else 1))
    check_vjp(param, params, rng=rng)


def test_hadamard_init_is_product_init():
    param = Hadamard(5, depth=3)
    u, v = param.init(1e-3)
    np.testing.assert_allclose(u**3, 1e-3)
    np.testing.assert_allclose(param.signal((u, v)), 0.0)
    (w,) = Hadamard(5, depth=4, signed=False).init(1e-4)
    np.testing.assert_allclose(w**4, 1e-4)


def test_hadamard_rejects_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        Hadamard(3, depth=1)
    with pytest.raises(TypeError):
        Hadamard(3.5)
    with pytest.raises(ValueError, match="init_scale"):
        Hadamard(3).init(-1.0)


def test_identity_vjp(rng):
    check_vjp(Identity((3, 4)), (rng.standard_normal((3, 4)),), rng=rng)


class WrongGradient(Parameterization):
    """x = w**2 with the gradient off by a factor: the checker must catch it."""

    signal_shape = (4,)

    def init(self, scale, rng=None):
        return (np.full(4, scale),)

    def signal(self, params):
        return params[0] ** 2

    def vjp(self, params, grad_signal):
        return (params[0] * grad_signal,)  # should be 2 * w * g


def test_gradient_checker_catches_wrong_gradient(rng):
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_vjp(WrongGradient(), (rng.uniform(0.5, 1, 4),), rng=rng)


def test_gradient_checker_catches_wrong_shape(rng):
    with pytest.raises(AssertionError, match="shapes"):
        check_gradient(lambda p: float(np.sum(p[0])), lambda p: (np.ones(3),), [np.ones(4)])
