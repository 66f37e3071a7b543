"""Perturbed gradient descent and mini-batch SGD for factorized matrix sensing."""

import numpy as np
import pytest

from overparam.datasets import make_low_rank_problem
from overparam.metrics import relative_error
from overparam.parameterizations import Factorized
from overparam.solvers import (
    ConstantStep,
    FixedMeasurements,
    GaussianStream,
    History,
    factorized_sgd,
    gradient_descent,
    perturbed_gradient_descent,
)
from overparam.stopping import DivergenceError, StoppingRule, Validation


@pytest.fixture(scope="module")
def problem():
    return make_low_rank_problem((8, 6), 2, 40, condition_number=1.5, random_state=0)


def test_without_perturbation_it_is_plain_gradient_descent(problem):
    param = Factorized((8, 6), 6)
    init = param.init(1e-2, np.random.default_rng(0))
    rule = StoppingRule(max_iter=300, tol=0, stagnation_tol=0)
    ours = perturbed_gradient_descent(param, problem.operator, problem.y, step=0.2,
                                      init_params=init, stopping=rule)
    ref = gradient_descent(param, problem.operator, problem.y, init_params=init,
                           step=ConstantStep(0.2), stopping=rule)
    np.testing.assert_allclose(ours.coef, ref.coef, rtol=1e-10, atol=1e-14)
    assert ours.n_iter == 300
    assert ours.info["paper_time"] == pytest.approx(300 * 0.2)
    assert ours.info["time"] == pytest.approx(ref.info["time"])


def test_one_perturbed_step_follows_definition_2_1(problem, rng):
    n1, n2, h, eta = 8, 6, 4, 0.05
    param = Factorized((n1, n2), h)
    U, V = param.init(0.5, rng)
    E = rng.standard_normal((n1 + n2, n1 + n2))
    seen = []

    def perturbation(k, params):
        seen.append(k)
        return E

    res = perturbed_gradient_descent(param, problem.operator, problem.y, step=eta,
                                     init_params=(U, V), perturbation=perturbation,
                                     stopping=StoppingRule(max_iter=1, tol=0))
    G = problem.operator.adjoint(problem.y - problem.operator.forward(U @ V.T))
    W = np.vstack([U, V])
    expected = W + eta * np.vstack([G @ V, G.T @ U]) + eta * E @ W
    np.testing.assert_allclose(np.vstack(res.params), expected, atol=1e-12)
    assert seen == [0]
    with pytest.raises(ValueError, match=r"\(n1 \+ n2\)"):
        perturbed_gradient_descent(param, problem.operator, problem.y, step=eta,
                                   init_params=(U, V), perturbation=np.eye(3))


def test_error_floor_grows_with_the_perturbation(problem):
    # Theorem 2.8: error <~ (eps^2)^(2/3) + kappa * xi. With a tiny init the floor is the
    # perturbation's; it must scale linearly with xi and stay within a modest multiple of it.
    param = Factorized((8, 6), 6)
    rng = np.random.default_rng(5)
    direction = rng.standard_normal((14, 14))
    direction /= np.linalg.norm(direction, 2)
    errors = []
    for xi in (1e-3, 1e-2):
        res = perturbed_gradient_descent(
            param, problem.operator, problem.y, step=0.2, init_scale=1e-5, random_state=0,
            perturbation=xi * direction, stopping=StoppingRule(max_iter=800, tol=0))
        errors.append(np.linalg.norm(res.coef - problem.truth, 2))
    assert errors[1] / errors[0] == pytest.approx(10, rel=0.3)
    kappa = 1.5
    assert errors[1] < 10 * kappa * 1e-2


def test_divergence_is_detected_or_the_step_halved(problem):
    param = Factorized((8, 6), 6)
    with pytest.raises(DivergenceError):
        perturbed_gradient_descent(param, problem.operator, problem.y, step=50.0,
                                   init_scale=1e-1, random_state=0,
                                   stopping=StoppingRule(max_iter=200))
    res = perturbed_gradient_descent(param, problem.operator, problem.y, step=50.0,
                                     init_scale=1e-1, random_state=0, on_divergence="halve",
                                     stopping=StoppingRule(max_iter=300))
    assert res.info["n_halved"] > 0
    assert np.all(np.isfinite(res.coef))


def test_validation_and_stop_time(problem):
    param = Factorized((8, 6), 6)
    val = Validation(problem.operator.rows(np.arange(30, 40)), problem.y[30:40], every=5)
    res = perturbed_gradient_descent(param, problem.operator.rows(np.arange(30)),
                                     problem.y[:30], step=0.2, init_scale=1e-3,
                                     random_state=0, validation=val)
    curve = res.info["validation_curve"]
    assert res.info["best_iteration"] == curve[np.argmin(curve[:, 2]), 0] > 0
    assert res.info["validation_error"] == pytest.approx(curve[:, 2].min())
    assert val.curve == [] and val.best_state is None  # the caller's object is not changed
    timed = perturbed_gradient_descent(param, problem.operator, problem.y, step=0.2,
                                       init_scale=1e-3, random_state=0,
                                       stopping=StoppingRule(max_flow_time=123.4, tol=0))
    assert timed.info["time"] == pytest.approx(123.4)
    assert timed.stop_reason.value == "end_of_time"


def test_the_end_of_a_path_is_on_the_held_out_curve(problem):
    # Checks fall due every `every` iterations; a path that ends between two of them (here:
    # before the first) must still record its last point, on noiseless data the best one.
    param = Factorized((8, 6), 6)
    train, held = np.arange(30), np.arange(30, 40)
    val = Validation(problem.operator.rows(held), problem.y[held], every=10_000)
    res = perturbed_gradient_descent(param, problem.operator.rows(train), problem.y[train],
                                     step=0.2, init_scale=1e-3, random_state=0,
                                     validation=val, stopping=StoppingRule(max_iter=437))
    assert res.n_iter == 437 and res.stop_reason.value == "max_iter"
    assert res.info["validation_curve"][:, 0].tolist() == [437]
    assert res.info["best_iteration"] == 437
    assert res.info["validation_error"] == pytest.approx(val.error(res.coef))


def test_streaming_sgd_recovers_and_is_reproducible():
    pb = make_low_rank_problem((8, 8), 2, 10, random_state=1)  # only Y is used
    param = Factorized((8, 8), 8)
    hist = History(every=50, truth=pb.truth)
    kw = dict(step=0.1, n_iter=600, init_scale=1e-3, random_state=0)
    res = factorized_sgd(param, GaussianStream(pb.truth, 48, random_state=3), history=hist, **kw)
    again = factorized_sgd(param, GaussianStream(pb.truth, 48, random_state=3), **kw)
    np.testing.assert_array_equal(res.coef, again.coef)
    # Each batch alone (48 < 64 entries) cannot determine Y, yet the stream recovers it.
    assert relative_error(res.coef, pb.truth) < 1e-3
    assert hist.error[0] > 0.99 and hist.error[-1] < 1e-3
    # Noisy streams settle at a floor set by the noise.
    noisy = factorized_sgd(param, GaussianStream(pb.truth, 48, noise_level=0.01, random_state=3),
                           **kw)
    assert 1e-3 < relative_error(noisy.coef, pb.truth) < 0.2


def test_fixed_batches_are_unbiased_and_run(problem):
    src = FixedMeasurements(problem.operator, problem.y, 10, random_state=0)
    X = np.ones((8, 6))
    full = problem.operator.adjoint(problem.operator.forward(X) - problem.y)
    mean = np.zeros_like(full)
    n = 3000
    for k in range(n):
        op, y, w = src.sample(k)
        assert op.n_measurements == 10 and w == 4.0
        mean += w * op.adjoint(op.forward(X) - y) / n
    assert np.linalg.norm(mean - full) / np.linalg.norm(full) < 0.05
    res = factorized_sgd(Factorized((8, 6), 6), src, step=0.02, n_iter=300, init_scale=1e-3,
                         random_state=0)
    assert res.n_iter == 300 and np.all(np.isfinite(res.coef))
    with pytest.raises(ValueError, match="batch_size"):
        FixedMeasurements(problem.operator, problem.y, 41)
