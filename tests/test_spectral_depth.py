"""Deep spectral networks (layers of blocks) and float32-orthogonal aligned bases."""

import warnings

import numpy as np
import pytest

from overparam.datasets import make_gaussian_sensing_problem
from overparam.operators import AlignedSpectralOperator
from overparam.parameterizations import DeepSpectralNetwork, SpectralNetwork, spectral
from overparam.solvers import gradient_descent
from overparam.stopping import StoppingRule
from overparam.testing import check_vjp


@pytest.mark.parametrize("layers, shape", [((2,), (4, 4)), ((2, 2, 2, 2), (4, 5)),
                                           ((3, 1, 2), (5, 3))])
def test_deep_vjp_matches_finite_differences(layers, shape):
    rng = np.random.default_rng(0)
    net = DeepSpectralNetwork(*shape, layers=layers)
    U, V, *alphas = net.init(0.5, rng)
    params = (U + 0.3 * rng.standard_normal(U.shape), V + 0.3 * rng.standard_normal(V.shape),
              *alphas)
    assert len(alphas) == len(layers) and alphas[-1].shape == (layers[-1], 1)
    check_vjp(net, params, rtol=1e-5)


@pytest.mark.parametrize("layers, shape", [((2, 2, 2, 2), (4, 4)), ((3, 1, 2), (5, 3)),
                                           ((2, 3), (3, 6))])
def test_deep_vjp_batches_the_layers_as_the_single_matrix_formula(layers, shape):
    """The deep vjp computes every layer's divided differences in one call: the same
    numbers as :func:`singular_value_function_vjp` applied layer by layer."""
    from overparam.parameterizations.spectral import singular_value_function_vjp

    rng = np.random.default_rng(3)
    net = DeepSpectralNetwork(*shape, layers=layers)
    params = net.init(0.5, rng)
    params = (params[0] + 0.3 * rng.standard_normal(params[0].shape),
              params[1] + 0.3 * rng.standard_normal(params[1].shape), *params[2:])
    G = rng.standard_normal(shape)
    U, V, *alphas = params
    act = net.activation
    Z = U @ np.swapaxes(V, -1, -2)
    inputs = []
    for alpha in alphas:  # forward, layer by layer
        P, s, Qt = np.linalg.svd(Z, full_matrices=False)
        neurons = (P * act.function(s)[..., None, :]) @ Qt
        inputs.append((Z, neurons))
        Z = np.einsum("kl,kab->lab", alpha, neurons)
    grad_z = G[None]
    for (Z, _), alpha in zip(inputs[::-1], alphas[::-1], strict=True):
        grad_z = singular_value_function_vjp(Z, np.einsum("kl,lab->kab", alpha, grad_z),
                                             act.function, act.derivative)
    got = net.vjp(params, G)
    np.testing.assert_allclose(got[0], grad_z @ V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], np.swapaxes(grad_z, -1, -2) @ U, rtol=1e-10,
                               atol=1e-12)


def test_depth_one_is_the_spectral_network():
    rng = np.random.default_rng(1)
    shallow = SpectralNetwork(4, 6, n_components=3)
    alpha, U, V = shallow.init(0.4, rng)
    U, V = U + 0.2 * rng.standard_normal(U.shape), V + 0.2 * rng.standard_normal(V.shape)
    deep = DeepSpectralNetwork(4, 6, layers=(3,))
    np.testing.assert_allclose(deep.signal((U, V, alpha[:, None])),
                               shallow.signal((alpha, U, V)), rtol=1e-13)
    G = rng.standard_normal((4, 6))
    ga, gu, gv = shallow.vjp((alpha, U, V), G)
    du, dv, dalpha = deep.vjp((U, V, alpha[:, None]), G)
    np.testing.assert_allclose(du, gu, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dv, gv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dalpha[:, 0], ga, rtol=1e-12)


def test_depth_four_network_fits_gaussian_measurements():
    problem = make_gaussian_sensing_problem(6, 6, rank=2, n_measurements=30, random_state=0)
    net = DeepSpectralNetwork(6, 6, layers=(2, 2, 2, 2))
    res = gradient_descent(net, problem.operator, problem.y, init_scale=1e-2,
                           stopping=StoppingRule(max_iter=20_000, tol=1e-3), random_state=0)
    assert np.linalg.norm(problem.operator.forward(res.coef) - problem.y) < 1e-2 * np.linalg.norm(
        problem.y)


def test_bad_layers_raise():
    with pytest.raises(ValueError, match="layer"):
        DeepSpectralNetwork(3, 3, layers=())
    with pytest.raises(ValueError):
        DeepSpectralNetwork(3, 3, layers=(2, 0))


def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def test_float32_orthogonal_bases_are_orthogonalized_with_a_warning():
    rng = np.random.default_rng(2)
    phi, psi = _orthogonal(6, rng), _orthogonal(8, rng)
    phi32, psi32 = phi.astype(np.float32), psi.astype(np.float32)  # ||Q^T Q - I|| ~ 1e-7
    diagonals = rng.random((10, 6))
    with pytest.warns(UserWarning, match="orthogonal only to"):
        op = AlignedSpectralOperator(phi32, psi32, diagonals)
    for q, q32 in ((op.left, phi32), (op.right, psi32)):
        np.testing.assert_allclose(q.T @ q, np.eye(q.shape[0]), atol=1e-13)
        assert np.max(np.abs(q - q32)) < 1e-5  # the nearest orthogonal matrix: a tiny change
    X = rng.standard_normal((6, 8))
    np.testing.assert_allclose(op.from_diagonal(op.to_diagonal(op.from_diagonal(
        op.to_diagonal(X)))), op.from_diagonal(op.to_diagonal(X)), atol=1e-12)
    # exactly orthogonal bases pass silently, clearly non-orthogonal ones are refused
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AlignedSpectralOperator(phi, psi, diagonals)
    with pytest.raises(ValueError, match="not orthogonal"):
        AlignedSpectralOperator(phi + 1e-2, psi, diagonals)


@pytest.mark.parametrize("shape", [(2, 10, 10), (3, 4, 6), (2, 7, 5), (5, 5), (1, 28, 28)])
def test_thin_svd_is_numpys_bit_for_bit(shape):
    """The networks' SVD (numpy's kernel called directly) equals ``np.linalg.svd``."""
    Z = np.random.default_rng(7).standard_normal(shape)
    Z[..., 0, :] *= 1e-9  # a spread of scales, as small inits give
    got = spectral._thin_svd(Z)
    expected = np.linalg.svd(Z, full_matrices=False)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    bad = Z.copy()
    bad[..., 0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError):
        spectral._thin_svd(bad)


@pytest.mark.parametrize("layers", [(2, 2, 2, 2), (3, 2), None])
def test_gradient_descent_is_the_reference_path_bit_for_bit(layers, monkeypatch):
    """A seeded GD run of the SNN (the experiments' setting, a few hundred steps) gives the
    very same iterates with the kernel SVD as with ``np.linalg.svd`` (the reference path)."""
    problem = make_gaussian_sensing_problem(6, 6, rank=2, n_measurements=30, noise_std=1e-2,
                                            scale=10.0, random_state=3)

    def run():
        net = (SpectralNetwork(6, 6, n_components=4) if layers is None
               else DeepSpectralNetwork(6, 6, layers=layers))
        return gradient_descent(net, problem.operator, problem.y, init_scale=1e-4,
                                random_state=3, stopping=StoppingRule(max_iter=300, tol=0.0))

    fast = run()
    monkeypatch.setattr(spectral, "_THIN_SVD", None)  # np.linalg.svd for every SVD
    reference = run()
    assert fast.n_iter == reference.n_iter == 300
    assert np.array_equal(fast.coef, reference.coef)
    for a, b in zip(fast.params, reference.params, strict=True):
        assert np.array_equal(a, b)
