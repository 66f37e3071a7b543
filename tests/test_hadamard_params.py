"""Deep Hadamard / DLNN parameterizations and the dual map of their flow: gradients checked."""

import numpy as np
import pytest

from overparam.parameterizations import DiagonalLinearNetwork, Hadamard
from overparam.solvers import HadamardDual, HadamardDualMap
from overparam.testing import check_gradient, check_vjp


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("signed", [True, False])
def test_hadamard_vjp(depth, signed, rng):
    param = Hadamard(7, depth=depth, signed=signed)
    params = tuple(0.5 + rng.random(7) for _ in range(2 if signed else 1))
    check_vjp(param, params)


def test_hadamard_init_is_product_init():
    for depth in (2, 3, 5):
        u, v = Hadamard(4, depth=depth).init(1e-3)
        np.testing.assert_allclose(u**depth, 1e-3)
        np.testing.assert_allclose(Hadamard(4, depth=depth).signal((u, v)), 0.0)


def test_dlnn_signal_init_and_vjp(rng):
    dlnn = DiagonalLinearNetwork(6)
    u, v = dlnn.init(0.1)
    np.testing.assert_allclose(u, 0.1)  # per-factor init, not the product init
    np.testing.assert_allclose(dlnn.signal((u, v)), 0.0)
    params = (rng.standard_normal(6), rng.standard_normal(6))
    np.testing.assert_allclose(dlnn.signal(params), params[0] ** 2 - params[1] ** 2)
    check_vjp(dlnn, params)
    # same model as Hadamard(depth=2) with product init scale**2
    np.testing.assert_allclose(Hadamard(6).init(0.01)[0], dlnn.init(0.1)[0])
    with pytest.raises(ValueError):
        dlnn.init(-1.0)
    with pytest.raises(TypeError):
        DiagonalLinearNetwork(2.5)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("signed", [True, False])
def test_dual_map_derivatives(depth, signed, rng):
    dmap = HadamardDualMap(depth, signed, init_scale=1e-2)
    s = 0.3 * dmap.s_max * rng.uniform(-1, 1, 9) if depth > 2 else rng.uniform(-1, 1, 9)
    # psi*' = x (the potential's gradient is the signal)
    check_gradient(lambda p: dmap.potential(p[0]), lambda p: (dmap.signal(p[0]),), [s])
    # x' = derivative (entrywise): check <c, x(s)> against c * x'(s)
    c = rng.standard_normal(9)
    check_gradient(lambda p: float(c @ dmap.signal(p[0])),
                   lambda p: (c * dmap.derivative(p[0]),), [s])
    # factors ** L are the parts, and the flow starts at the Hadamard init
    for f, part in zip(dmap.factors(s), dmap.parts(s), strict=True):
        np.testing.assert_allclose(f**depth, part, rtol=1e-12)
    init = Hadamard(9, depth, signed).init(1e-2)
    for f, p0 in zip(dmap.factors(np.zeros(9)), init, strict=True):
        np.testing.assert_allclose(f, p0, rtol=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_dual_map_solves_the_factor_flow(depth):
    # u' = -L g u^(L-1) with constant g: the closed form must satisfy the factor ODE
    dmap = HadamardDualMap(depth, True, init_scale=1e-2)
    g = np.array([0.3, -0.2, 0.05])
    h = 1e-6

    def u_at(t):
        return dmap.factors(-g * t)  # s(t) = -int g = -g t

    t = 0.7
    (u1, v1), (u0, v0) = u_at(t + h), u_at(t - h)
    u, v = u_at(t)
    np.testing.assert_allclose((u1 - u0) / (2 * h), -depth * g * u ** (depth - 1), rtol=1e-6)
    np.testing.assert_allclose((v1 - v0) / (2 * h), depth * g * v ** (depth - 1), rtol=1e-6)


@pytest.mark.parametrize("depth", [2, 4])
def test_dual_function_gradient_and_hessian(depth, rng):
    A = rng.standard_normal((5, 12)) / np.sqrt(5)
    y = rng.standard_normal(5)
    dual = HadamardDual(A, y, HadamardDualMap(depth, True, init_scale=1e-1))
    w = 0.2 * rng.standard_normal(5)
    check_gradient(lambda p: dual.value(p[0]), lambda p: (dual.gradient(p[0]),), [w])
    c = rng.standard_normal(5)
    check_gradient(lambda p: float(c @ dual.gradient(p[0])),
                   lambda p: (dual.hessian(p[0]) @ c,), [w])
    np.testing.assert_allclose(dual.hessian(w), dual.hessian(w).T)


def test_dual_map_domain_and_errors():
    dmap = HadamardDualMap(3, True, init_scale=1e-3)
    assert dmap.potential(np.array([1.01 * dmap.s_max])) == np.inf
    assert dmap.margin(np.zeros(2)) == pytest.approx(1.0)
    assert dmap.margin(np.array([0.5 * dmap.s_max])) == pytest.approx(0.5)
    assert HadamardDualMap(2).potential(np.array([1e3])) == np.inf  # exp overflow -> inf
    assert np.all(np.isfinite(HadamardDualMap(2).signal(np.array([1e3, -1e3]))))
    with pytest.raises(ValueError):
        HadamardDualMap(1)
    with pytest.raises(ValueError):
        HadamardDualMap(2, init_scale=0.0)
