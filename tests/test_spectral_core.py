"""Spectral neural networks: gradients, the aligned operator, the two solvers, estimators."""

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.base import clone

from overparam.baselines import MinNormRegressor
from overparam.datasets import (
    load_digit,
    load_grayscale_sample_image,
    make_aligned_problem,
    make_gaussian_sensing_problem,
    make_low_rank_matrix,
)
from overparam.estimators import DeepMatrixRegressor, SpectralNetworkRegressor
from overparam.metrics import psnr, relative_error
from overparam.operators import AlignedSpectralOperator, MatrixSensingOperator
from overparam.parameterizations import (
    AlignedSpectralNetwork,
    DeepMatrixFactorization,
    SpectralNetwork,
)
from overparam.parameterizations.spectral import (
    ACTIVATIONS,
    get_activation,
    singular_value_function,
    singular_value_function_vjp,
)
from overparam.solvers import (
    ConstantStep,
    History,
    aligned_spectral_flow,
    aligned_spectral_gd,
    spectral_gd,
)
from overparam.stopping import StoppingRule
from overparam.testing import check_adjoint, check_gradient, check_vjp

FIXED = dict(tol=0.0, stagnation_tol=0.0)


def _with_singular_values(rng, shape, modify):
    Z = rng.standard_normal(shape)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U * modify(s.copy())) @ Vt


def _set(s, index, value):
    s[index] = value
    return s


# Singular values: generic, nearly equal (below, near and above the switch to the limit),
# exactly repeated, tiny (the small-init regime), and with a zero (rank deficient).
CASES = {
    "generic": lambda s: s,
    "gap-1e-9": lambda s: _set(s, 1, s[0] * (1 + 1e-9)),
    "gap-5e-6": lambda s: _set(s, 1, s[0] * (1 + 5e-6)),
    "gap-2e-5": lambda s: _set(s, 1, s[0] * (1 + 2e-5)),
    "repeated": lambda s: np.full_like(s, 0.7),
    "rank-deficient": lambda s: _set(s, -1, 0.0),
    "two-zeros": lambda s: _set(_set(s, -1, 0.0), -2, 0.0),
}


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3), (2, 6)])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("activation", ["tanh", "linear"])
def test_singular_value_function_gradient(shape, case, activation, rng):
    act = ACTIVATIONS[activation]
    Z = _with_singular_values(rng, shape, CASES[case])
    C = rng.standard_normal(shape)

    def fun(p):
        return float(np.sum(C * singular_value_function(p[0], act.function)))

    def grad(p):
        return [singular_value_function_vjp(p[0], C, act.function, act.derivative)]

    check_gradient(fun, grad, [Z], rtol=1e-5, eps=1e-6)


def test_singular_value_function_gradient_tiny_matrices(rng):
    # The general solver starts at Z ~ 1e-8 (I + jitter): near-repeated, near-zero values.
    act = ACTIVATIONS["tanh"]
    Z = 1e-8 * (np.eye(4, 6) + 1e-2 * rng.standard_normal((4, 6)))
    C = rng.standard_normal((4, 6))
    check_gradient(lambda p: float(np.sum(C * singular_value_function(p[0], act.function))),
                   lambda p: [singular_value_function_vjp(p[0], C, act.function,
                                                          act.derivative)],
                   [Z], eps=1e-12, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("activation", ["sigmoid", "smooth-clipped-relu", "clipped-relu"])
def test_singular_value_function_gradient_other_activations(activation, rng):
    # gamma(0) != 0 is only differentiable at full rank; clipped ReLU away from its kinks.
    act = ACTIVATIONS[activation]
    Z = _with_singular_values(rng, (4, 5), lambda s: np.array([0.9, 0.6, 0.4, 0.2]))
    C = rng.standard_normal((4, 5))
    check_gradient(lambda p: float(np.sum(C * singular_value_function(p[0], act.function))),
                   lambda p: [singular_value_function_vjp(p[0], C, act.function,
                                                          act.derivative)],
                   [Z], rtol=1e-5)


def test_singular_value_function_values(rng):
    Z = rng.standard_normal((3, 3, 5))
    np.testing.assert_allclose(singular_value_function(Z, lambda s: s), Z, atol=1e-12)
    U, s, Vt = np.linalg.svd(Z[0], full_matrices=False)
    np.testing.assert_allclose(singular_value_function(Z, np.tanh)[0], (U * np.tanh(s)) @ Vt)
    # Batched gradient equals the one of each slice.
    G = rng.standard_normal(Z.shape)
    batched = singular_value_function_vjp(Z, G, np.tanh, ACTIVATIONS["tanh"].derivative)
    single = singular_value_function_vjp(Z[1], G[1], np.tanh, ACTIVATIONS["tanh"].derivative)
    np.testing.assert_allclose(batched[1], single, atol=1e-12)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(4, 6), (6, 4)])
def test_spectral_network_vjp(activation, shape, rng):
    net = SpectralNetwork(*shape, n_components=3, width=7, activation=activation)
    params = (rng.uniform(0.2, 1.0, 3), 0.6 * rng.standard_normal((3, shape[0], 7)),
              0.6 * rng.standard_normal((3, shape[1], 7)))
    check_vjp(net, params, rtol=1e-5)


def test_spectral_network_init_and_user_activation(rng):
    net = SpectralNetwork(3, 5, n_components=2, activation=(np.tanh, lambda x: 1 - np.tanh(x)**2))
    alpha, U, V = net.init(1e-4, rng)
    assert alpha.shape == (2,) and U.shape == (2, 3, 5) and V.shape == (2, 5, 5)
    np.testing.assert_allclose(np.diagonal(U, axis1=1, axis2=2), 1e-4, rtol=0.05)
    assert np.count_nonzero(U[0]) == 3
    check_vjp(net, (alpha, U + 0.1, V - 0.1), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("relu6")
    with pytest.raises(TypeError, match="activation"):
        get_activation(3)


def test_aligned_network_vjp_and_deep_matrix_vjp(rng):
    for act in ACTIVATIONS:
        check_vjp(AlignedSpectralNetwork(5, 3, act), AlignedSpectralNetwork(5, 3).paper_init(rng))
    for depth in (2, 3, 4):
        net = DeepMatrixFactorization(3, 5, depth=depth, width=4, init="gaussian")
        check_vjp(net, net.init(0.8, rng))
    net = DeepMatrixFactorization(3, 5, depth=3)
    np.testing.assert_allclose(net.signal(net.init(1e-4)), 1e-12 * np.eye(3, 5))


# -- aligned operator -------------------------------------------------------------------------
def test_aligned_operator(rng):
    left, right = ortho_group.rvs(4, random_state=1), ortho_group.rvs(6, random_state=2)
    op = AlignedSpectralOperator(left, right, rng.uniform(size=(7, 4)), scale=0.5)
    check_adjoint(op, rng=rng, rtol=1e-12)
    X = rng.standard_normal((4, 6))
    dense = MatrixSensingOperator(op.sensing_matrices(), scale=0.5)
    np.testing.assert_allclose(op.forward(X), dense.forward(X))
    np.testing.assert_allclose(op.to_dense(), dense.to_dense())
    assert np.isclose(op.norm_estimate(), np.linalg.norm(dense.to_dense(), 2))
    sub = op.rows([0, 3])
    np.testing.assert_allclose(sub.forward(X), op.forward(X)[[0, 3]])
    s = rng.standard_normal(4)
    np.testing.assert_allclose(op.to_diagonal(op.from_diagonal(s)), s)
    for A in op.sensing_matrices()[:2]:  # every A_i has singular vectors Phi, Psi
        D = left.T @ A @ right
        assert np.allclose(D - np.diag(np.diag(D)) @ np.eye(4, 6), 0, atol=1e-12)
    with pytest.raises(ValueError, match="orthogonal"):
        AlignedSpectralOperator(2 * left, right, rng.uniform(size=(7, 4)))
    with pytest.raises(ValueError, match="columns"):
        AlignedSpectralOperator(left, right, rng.uniform(size=(7, 5)))


# -- the two solvers ----------------------------------------------------------------------------
def _aligned_pair(problem, seed=1, n_iter=400, step=2e-3):
    """Run the aligned solver and the general solver from the same spectral init."""
    op = problem.operator
    init = AlignedSpectralNetwork(op.rank, 2).paper_init(np.random.default_rng(seed))
    rule = StoppingRule(max_iter=n_iter, **FIXED)
    aligned = aligned_spectral_gd(op, problem.y, init=init, step=ConstantStep(step), stopping=rule)
    net = SpectralNetwork(*op.input_shape, n_components=2)
    G = ortho_group.rvs(net.width, random_state=seed)
    full_init = net.spectral_init(op.left, op.right, init[1], init[2], init[0], rotation=G)
    general = spectral_gd(op, problem.y, init_params=full_init, step=ConstantStep(step),
                          stopping=rule)
    return aligned, general


@pytest.mark.parametrize("shape", [(6, 6), (4, 6)])
def test_aligned_and_general_solvers_agree(shape):
    problem = make_aligned_problem(*shape, rank=3, n_measurements=30, random_state=0)
    aligned, general = _aligned_pair(problem)
    assert aligned.n_iter == general.n_iter == 400
    scale = np.linalg.norm(aligned.coef)
    assert scale > 0.05
    assert np.linalg.norm(aligned.coef - general.coef) <= 1e-9 * scale
    np.testing.assert_allclose(aligned.params[0], general.params[0], rtol=1e-9)


def test_general_solver_keeps_singular_vectors_on_aligned_data():
    problem = make_aligned_problem(6, 6, rank=3, n_measurements=30, random_state=3)
    op = problem.operator
    _, general = _aligned_pair(problem, seed=4)
    inner = SpectralNetwork(6, 6, 2).products(general.params)
    for M in (general.coef, *inner):
        D = op.left.T @ M @ op.right
        off = D - np.diag(np.diag(D))
        assert np.linalg.norm(off) <= 1e-10 * np.linalg.norm(D)


def test_conserved_quantity_under_small_steps():
    problem = make_aligned_problem(random_state=2)
    net = AlignedSpectralNetwork(10, 2)
    init = net.paper_init(np.random.default_rng(0))
    drifts = []
    for step, n_iter in ((2e-3, 500), (1e-3, 1000)):  # the same flow time
        hist = History(every=n_iter, quantities={"q": lambda p, s: net.conserved(p)})
        res = aligned_spectral_gd(problem.operator, problem.y, init=init, step=ConstantStep(step),
                                  stopping=StoppingRule(max_iter=n_iter, **FIXED), history=hist)
        q = np.asarray(hist.values["q"])
        moved = np.abs(res.params[1] ** 2 - init[1] ** 2).max()
        drifts.append(np.abs(q[-1] - q[0]).max())
        assert moved > 0.03  # u^2 did move ...
        assert drifts[-1] < 3e-2 * moved  # ... but u^2 - v^2 barely did
    assert drifts[1] < 0.6 * drifts[0]  # and the drift is a discretization effect, O(step)


def test_aligned_flow_limit_is_the_nuclear_norm_minimizer():
    from overparam.baselines.low_rank import nuclear_norm_minimization

    problem = make_aligned_problem(noise_std=0.0, random_state=5)
    op = problem.operator
    res = aligned_spectral_gd(op, problem.y, init="paper", random_state=1,
                              stopping=StoppingRule(max_iter=50_000, tol=1e-9))
    assert res.converged
    nnm = nuclear_norm_minimization(op, problem.y)
    sigma_star = op.to_diagonal(problem.truth)
    # The minimizer need not be unique (Phi M Psi^T with M PSD and diag(M) = sigma* all have
    # the same nuclear norm when sigma* > 0), so compare the optimal values: the limit is
    # feasible and attains cvxpy's optimum; and it is the paper's Phi Diag(sigma*) Psi^T.
    assert np.linalg.norm(op.forward(res.coef) - problem.y) < 1e-7
    np.testing.assert_allclose(np.linalg.norm(res.coef, "nuc"), np.linalg.norm(nnm, "nuc"),
                               rtol=1e-5)
    assert relative_error(res.coef, op.from_diagonal(sigma_star)) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(res.coef, "nuc"), np.abs(sigma_star).sum(),
                               rtol=1e-6)
    # It is not the truth (the measurements only see its diagonal): the bias decides.
    assert relative_error(res.coef, problem.truth) > 0.1


def test_flow_solver_is_the_limit_of_small_steps():
    problem = make_aligned_problem(basis="truth", random_state=0)
    op, y = problem.operator, problem.y
    gaps = []
    for step, n_iter in ((1e-3, 1000), (5e-4, 2000)):
        gd = aligned_spectral_gd(op, y, init="paper", random_state=1, step=ConstantStep(step),
                                 stopping=StoppingRule(max_iter=n_iter, **FIXED))
        flow = aligned_spectral_flow(op, y, init="paper", random_state=1,
                                     t_max=gd.info["time"], n_points=3)
        assert np.isclose(flow.info["times"][-1], gd.info["time"])
        gaps.append(relative_error(gd.coef, flow.coef))
    assert gaps[0] < 1e-2
    assert 1.5 < gaps[0] / gaps[1] < 2.5  # first order in the step
    limit = aligned_spectral_flow(op, y, init="paper", random_state=1, t_max=5e6)
    s_ls = np.linalg.lstsq(op.diagonal_operator().matrix, y, rcond=None)[0]
    assert np.linalg.norm(limit.info["diagonal"] - s_ls) < 1e-8 * np.linalg.norm(s_ls)
    assert limit.stop_reason == "end_of_time" and limit.info["path"].shape[1] == 10
    assert np.all(np.diff(limit.info["path_loss"]) <= 1e-12)  # a gradient flow


def test_aligned_solver_validation_and_errors():
    problem = make_aligned_problem(noise_std=0.05, random_state=0)
    with pytest.raises(TypeError, match="AlignedSpectralOperator"):
        aligned_spectral_gd(make_gaussian_sensing_problem().operator, problem.y)
    with pytest.raises(ValueError, match="init"):
        aligned_spectral_gd(problem.operator, problem.y, init="zeros")
    with pytest.raises(ValueError, match="shapes"):
        aligned_spectral_gd(problem.operator, problem.y, init=(np.ones(2), np.ones((2, 3)),
                                                               np.ones((2, 3))))


def test_general_solver_warns_for_discontinuous_activation():
    problem = make_gaussian_sensing_problem(4, 4, rank=2, n_measurements=10, random_state=0)
    with pytest.warns(RuntimeWarning, match="discontinuous"):
        spectral_gd(problem.operator, problem.y, activation="sigmoid", init_scale=0.5,
                    stopping=StoppingRule(max_iter=5))


# -- estimators ---------------------------------------------------------------------------------
def test_snn_beats_least_squares_on_gaussian_sensing():
    nuc, gain = [], []
    for seed in range(3):
        p = make_gaussian_sensing_problem(random_state=seed)
        snn = SpectralNetworkRegressor(random_state=seed, early_stopping=None).fit(p.operator,
                                                                                   p.y)
        ls = MinNormRegressor(solver="gd").fit(p.operator, p.y)
        assert snn.stop_reason_ == "converged"
        nuc.append((np.linalg.norm(snn.coef_, "nuc"), np.linalg.norm(ls.coef_, "nuc")))
        gain.append(psnr(snn.coef_, p.truth) - psnr(ls.coef_, p.truth))
    nuc = np.asarray(nuc)
    assert np.all(nuc[:, 0] < 1.0) and np.all(nuc[:, 1] > 1.2)  # paper: ~0.95 vs ~1.5
    assert np.min(gain) > 5.0  # dB


def test_estimator_solver_choice_and_errors():
    aligned = make_aligned_problem(noise_std=0.0, random_state=1)
    auto = SpectralNetworkRegressor(max_iter=300).fit(aligned.operator, aligned.y)
    assert auto.result_.info["solver"] == "aligned"
    general = SpectralNetworkRegressor(solver="general", max_iter=300).fit(aligned.operator,
                                                                          aligned.y)
    assert general.result_.info["solver"] == "general"
    gauss = make_gaussian_sensing_problem(4, 4, rank=2, n_measurements=10, random_state=0)
    with pytest.raises(ValueError, match="aligned"):
        SpectralNetworkRegressor(solver="aligned").fit(gauss.operator, gauss.y)
    with pytest.raises(ValueError, match="solver"):
        SpectralNetworkRegressor(solver="svd").fit(gauss.operator, gauss.y)
    with pytest.raises(ValueError, match="matrices"):
        SpectralNetworkRegressor().fit(np.ones((5, 4)), np.ones(5))
    est = clone(SpectralNetworkRegressor(n_components=3, activation="sigmoid"))
    assert est.get_params()["n_components"] == 3
    # Deterministic: the same seed gives the same fit.
    a = SpectralNetworkRegressor(max_iter=200).fit(gauss.operator, gauss.y).coef_
    b = SpectralNetworkRegressor(max_iter=200).fit(gauss.operator, gauss.y).coef_
    np.testing.assert_array_equal(a, b)


def test_deep_matrix_regressor_is_low_rank():
    p = make_gaussian_sensing_problem(random_state=0)
    deep = DeepMatrixRegressor().fit(p.operator, p.y)
    ls = MinNormRegressor().fit(p.operator, p.y)
    s = np.linalg.svd(deep.coef_, compute_uv=False)
    assert np.linalg.norm(deep.coef_, "nuc") < np.linalg.norm(ls.coef_, "nuc")
    assert s[1] < 0.5 * s[0]


def test_validation_stopping_beats_interpolation_under_noise():
    errors = {None: [], "validation": [], "discrepancy": []}
    deep_errors = []
    for seed in range(4):
        p = make_gaussian_sensing_problem(noise_std=0.3, random_state=seed)
        for rule in errors:
            est = SpectralNetworkRegressor(early_stopping=rule, noise_level=0.3,
                                           random_state=seed).fit(p.operator, p.y)
            errors[rule].append(relative_error(est.coef_, p.truth))
        deep = DeepMatrixRegressor(early_stopping="validation", random_state=seed)
        deep_errors.append(relative_error(deep.fit(p.operator, p.y).coef_, p.truth))
        assert deep.result_.info["refit"] == "residual"
    assert np.median(errors["validation"]) < 0.8 * np.median(errors[None])
    assert np.median(errors["discrepancy"]) < 0.9 * np.median(errors[None])
    # The refit leaves the plateau (an estimate near zero would have relative error ~1).
    assert max(deep_errors) < 0.7


# -- datasets -----------------------------------------------------------------------------------
def test_datasets():
    X = make_low_rank_matrix((10, 10), 6, factors="uniform", symmetric_psd=True, random_state=0)
    assert np.isclose(np.linalg.norm(X, "nuc"), 1.0) and np.linalg.matrix_rank(X) == 6
    assert np.allclose(X, X.T) and np.linalg.eigvalsh(X).min() > -1e-12
    assert make_low_rank_matrix((4, 7), 2, factors="uniform", random_state=0).shape == (4, 7)
    p = make_aligned_problem(random_state=0)
    assert p.operator.n_measurements == 50 and np.all(np.diff(p.operator.diagonals, axis=1) <= 0)
    assert 0.003 < np.std(p.noise) < 0.02
    digit = load_digit(3)
    assert digit.shape == (8, 8) and digit.min() >= 0 and digit.max() <= 1
    img = load_grayscale_sample_image(shape=(24, 32))
    assert img.shape == (24, 32) and 0 <= img.min() < img.max() <= 1
    with pytest.raises(ValueError, match="index"):
        load_digit(5000)


@pytest.mark.parametrize("seed", range(2))
def test_snn_default_limit_is_exact_and_ends_on_its_optimality_check(seed):
    """10 x 10 rank 2 from 60 clean Gaussian measurements: plain GD creeps (0.8-4e-3 error
    after 20,000 steps); the rounds end on the locally unique rank-2 interpolant."""
    from overparam.stopping import StopReason

    p = make_gaussian_sensing_problem(10, 10, rank=2, n_measurements=60, noise_std=0.0,
                                      random_state=seed)
    est = SpectralNetworkRegressor(early_stopping=None).fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.CONVERGED and est.n_iter_ < est.max_iter
    assert est.result_.info["refined_rank"] == 2
    assert relative_error(est.coef_, p.truth) < 1e-6
