"""The factorization's gradients, inits, and the paper's lemmas as checks (Wind, App. B, G)."""

import numpy as np
import pytest

from overparam.operators import GaussianSensingOperator
from overparam.parameterizations import Factorized
from overparam.parameterizations.factorized import balance, dilation_residual
from overparam.testing import check_gradient, check_vjp


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("width", [1, 3, 9])
def test_vjp_matches_finite_differences(symmetric, width, rng):
    shape = (5, 5) if symmetric else (5, 4)
    param = Factorized(shape, width, symmetric=symmetric)
    check_vjp(param, param.init(1.0, rng), rng=1)


def test_loss_gradient_matches_finite_differences(rng):
    op = GaussianSensingOperator(30, (4, 3), random_state=0)
    param = Factorized((4, 3), 5)
    y = rng.standard_normal(30)

    def loss(p):
        r = op.forward(param.signal(tuple(p))) - y
        return 0.5 * float(r @ r)

    def grad(p):
        return param.vjp(tuple(p), op.adjoint(op.forward(param.signal(tuple(p))) - y))

    check_gradient(loss, grad, param.init(0.5, rng))


def test_inits_have_the_papers_scale(rng):
    n1, n2, h, eps = 30, 20, 400, 1e-3
    U, V = Factorized((n1, n2), h, init_constant=2.0).init(eps, rng)
    # Remark 2.6: i.i.d. N(0, (eps / (C sqrt(h)))^2) entries.
    sd = eps / (2.0 * np.sqrt(h))
    assert np.std(np.concatenate([U.ravel(), V.ravel()])) == pytest.approx(sd, rel=0.05)
    # Identity init: U = V = eps / sqrt(2) I, so ||(U; V)|| = eps and misalignment is 1.
    U, V = Factorized((6, 6), 6, init="identity").init(eps)
    np.testing.assert_allclose(U, eps / np.sqrt(2) * np.eye(6))
    assert np.linalg.norm(np.vstack([U, V]), 2) == pytest.approx(eps)
    assert balance((U, V)) == 0.0
    (Us,) = Factorized((6, 6), 4, symmetric=True).init(eps, rng)
    assert Us.shape == (6, 4)
    with pytest.raises(ValueError, match="square"):
        Factorized((6, 5), 4, symmetric=True)


def test_dilation_lemmas_b43_b46(rng):
    n1, n2, h = 6, 4, 5
    Y = rng.standard_normal((n1, 2)) @ rng.standard_normal((2, n2))
    U, V = rng.standard_normal((n1, h)), rng.standard_normal((n2, h))
    R = dilation_residual(Y, U, V)
    J = np.diag(np.r_[np.ones(n1), -np.ones(n2)])
    # Lemma B.43: ||R|| = ||Y - U V^T||, J R J = -R, J R + R J = 0.
    assert np.linalg.norm(R, 2) == pytest.approx(np.linalg.norm(Y - U @ V.T, 2), rel=1e-12)
    np.testing.assert_allclose(J @ R @ J, -R, atol=1e-12)
    np.testing.assert_allclose(J @ R + R @ J, 0, atol=1e-12)
    # Lemma B.46: lambda_1(R) = ||R|| (the spectrum of R is symmetric about zero).
    eig = np.linalg.eigvalsh(R)
    assert eig[-1] == pytest.approx(np.linalg.norm(R, 2), rel=1e-12)
    np.testing.assert_allclose(np.sort(eig), np.sort(-eig), atol=1e-10)
    # Gradient descent is W <- (I + eta R~) W with R~ the dilation of A*A(Y - UV^T) (eq. 5):
    # for A = I one GD step equals the multiplicative update.
    eta = 0.01
    W = np.vstack([U, V])
    param = Factorized((n1, n2), h)
    gU, gV = param.vjp((U, V), U @ V.T - Y)
    np.testing.assert_allclose(np.vstack([U - eta * gU, V - eta * gV]), W + eta * R @ W,
                               atol=1e-12)


def test_imbalance_is_conserved_by_gradient_flow_not_by_large_steps(rng):
    # d/dt (U^T U - V^T V) = 0 under the flow; a GD step changes it by O(eta^2).
    n1, n2, h = 5, 4, 3
    Y = rng.standard_normal((n1, n2))
    U0, V0 = 0.1 * rng.standard_normal((n1, h)), 0.1 * rng.standard_normal((n2, h))
    param = Factorized((n1, n2), h)

    def drift(eta):
        gU, gV = param.vjp((U0, V0), U0 @ V0.T - Y)
        U1, V1 = U0 - eta * gU, V0 - eta * gV
        return np.linalg.norm((U1.T @ U1 - V1.T @ V1) - (U0.T @ U0 - V0.T @ V0))

    ratio = drift(1e-2) / drift(1e-3)
    assert ratio == pytest.approx(100, rel=0.01)


def _a_star_a_deviation(m, rank, seed):
    n1, n2 = 8, 6
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n1, rank)) @ rng.standard_normal((rank, n2))
    op = GaussianSensingOperator(m, (n1, n2), random_state=seed)
    return np.linalg.norm(op.adjoint(op.forward(X)) - X, 2) / np.linalg.norm(X)


def test_a_star_a_concentrates_like_m_to_the_minus_half():
    # Lemma G.2: ||(A*A)(X) - X|| <= rho ||X||_F for RIP constant rho; for Gaussian A,
    # rho ~ sqrt(r (n1 + n2) / m), so the deviation must fall like m^(-1/2).
    ms = np.array([50, 200, 800, 3200])
    dev = np.array([np.mean([_a_star_a_deviation(m, 1, s) for s in range(6)]) for m in ms])
    slope = np.polyfit(np.log(ms), np.log(dev), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.08), (slope, dev)
    # and sqrt(m) * deviation stays of order sqrt(n1 + n2) (a constant in m).
    scaled = dev * np.sqrt(ms)
    assert scaled.max() / scaled.min() < 1.6
    assert 0.5 < scaled.mean() / np.sqrt(8 + 6) < 2
