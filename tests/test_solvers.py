import numpy as np
import pytest

from overparam.operators import DenseOperator
from overparam.parameterizations import Hadamard, Identity
from overparam.solvers import (
    AdaptiveStep,
    ConstantStep,
    History,
    StepPolicy,
    gradient_descent,
)
from overparam.stopping import DivergenceError, StoppingRule, StopReason, Validation


@pytest.fixture
def problem(rng):
    A = rng.standard_normal((20, 50)) / np.sqrt(20)
    x = np.zeros(50)
    x[[3, 17, 40]] = [1.0, -0.7, 0.5]
    return DenseOperator(A), A @ x, x


def test_plain_gd_reaches_min_norm_solution(problem):
    op, y, _ = problem
    res = gradient_descent(Identity((50,)), op, y, init_scale=0.0,
                           stopping=StoppingRule(tol=1e-10))
    assert res.stop_reason is StopReason.CONVERGED
    np.testing.assert_allclose(res.coef, np.linalg.pinv(op.matrix) @ y, atol=1e-8)
    assert res.n_iter > 0 and res.wall_time > 0


def test_hadamard_gd_recovers_sparse_vector(problem):
    op, y, x = problem
    res = gradient_descent(Hadamard(50), op, y, init_scale=1e-6,
                           stopping=StoppingRule(tol=1e-7, max_iter=200_000))
    assert res.stop_reason is StopReason.CONVERGED
    assert np.linalg.norm(res.coef - x) / np.linalg.norm(x) < 0.02


def test_constant_step_divergence_raises_clear_error(problem):
    op, y, _ = problem
    with pytest.raises(DivergenceError, match="fixed step"):
        gradient_descent(Identity((50,)), op, y, init_scale=0.0, step=100.0)


def test_constant_step_halving_recovers(problem):
    op, y, _ = problem
    res = gradient_descent(Identity((50,)), op, y, init_scale=0.0,
                           step=ConstantStep(100.0, on_divergence="halve"),
                           stopping=StoppingRule(tol=1e-8))
    assert res.stop_reason is StopReason.CONVERGED
    assert res.info["step"] < 100.0 and res.info["n_rejected_steps"] > 0
    assert np.all(np.isfinite(res.coef))


def test_adaptive_step_never_increases_loss(problem):
    op, y, _ = problem
    hist = History(every=1)
    gradient_descent(Hadamard(50, depth=3), op, y, init_scale=1e-3,
                     step=AdaptiveStep(initial=1e3), history=hist,
                     stopping=StoppingRule(max_iter=300, tol=0))
    loss = np.asarray(hist.loss)
    assert len(loss) == 301
    assert np.all(np.diff(loss) <= 1e-15 * loss[0])


def test_history_records_error_and_quantities(problem):
    op, y, x = problem
    hist = History(every=10, truth=x, quantities={"l1": lambda p, s: np.abs(s).sum()})
    res = gradient_descent(Hadamard(50), op, y, init_scale=1e-4, history=hist,
                           stopping=StoppingRule(max_iter=95, tol=0))
    data = hist.as_dict()
    assert list(data["iteration"][:3]) == [0, 10, 20]
    assert data["iteration"][-1] == res.n_iter == 95
    assert data["error"][0] == pytest.approx(1.0, abs=1e-3)
    assert data["error"][-1] < data["error"][0]
    assert data["l1"][-1] == pytest.approx(np.abs(res.coef).sum())


def test_stop_at_flow_time_lands_exactly(problem):
    op, y, _ = problem
    res = gradient_descent(Hadamard(50), op, y, init_scale=1e-4,
                           stopping=StoppingRule(max_flow_time=123.0, tol=0))
    assert res.stop_reason is StopReason.END_OF_TIME
    assert res.info["time"] == pytest.approx(123.0, rel=1e-12)


def test_flow_time_is_independent_of_step(problem):
    # Two step sizes, same flow time: nearly the same point (the flow path, re-timed).
    op, y, _ = problem
    out = [gradient_descent(Hadamard(50), op, y, init_scale=1e-2, step=step,
                            stopping=StoppingRule(max_flow_time=200.0, tol=0)).coef
           for step in (0.05, 0.025)]
    assert np.linalg.norm(out[0] - out[1]) < 0.02 * np.linalg.norm(out[1])


def test_discrepancy_stops_at_noise_level(problem):
    op, y, _ = problem
    res = gradient_descent(Hadamard(50), op, y, init_scale=1e-4,
                           stopping=StoppingRule(discrepancy=0.1 * np.linalg.norm(y)))
    assert res.stop_reason is StopReason.DISCREPANCY
    resid = np.linalg.norm(op.forward(res.coef) - y)
    assert resid <= 0.1 * np.linalg.norm(y)


def test_validation_returns_best_iterate(rng):
    A = rng.standard_normal((60, 40)) / np.sqrt(60)
    x = np.zeros(40)
    x[:3] = [1.0, -1.0, 0.8]
    noise = 0.3 * rng.standard_normal(60)
    y = A @ x + noise
    train, held = np.arange(45), np.arange(45, 60)
    op = DenseOperator(A)
    val = Validation(op.rows(held), y[held], every=5, patience=None)
    res = gradient_descent(Hadamard(40), op.rows(train), y[train], init_scale=1e-4,
                           validation=val, stopping=StoppingRule(max_iter=3000, tol=0))
    curve = res.info["validation_curve"]  # the solver leaves val untouched
    assert val.curve == []
    assert res.info["best_iteration"] == int(curve[np.argmin(curve[:, 2]), 0])
    best_err = np.sum((op.rows(held).forward(res.coef) - y[held]) ** 2) / 15
    assert best_err == pytest.approx(curve[:, 2].min())
    assert best_err < curve[-1, 2]  # the path overfits after the best point


def test_deterministic(problem):
    op, y, _ = problem
    runs = [gradient_descent(Hadamard(50), op, y, init_scale=1e-3,
                             stopping=StoppingRule(max_iter=500)).coef for _ in range(2)]
    np.testing.assert_array_equal(*runs)


def test_requires_an_init(problem):
    op, y, _ = problem
    with pytest.raises(ValueError, match="init_scale"):
        gradient_descent(Hadamard(50), op, y)


class _CappedLargeStep(StepPolicy):
    """A constant step far too large to converge, held back only by a gradient-dependent limit."""

    def __init__(self, step, cap):
        self.step, self.cap = step, cap
        self.limits, self.tried = [], []

    def start(self, initial):
        return self.step

    def limit(self, params, grads):
        value = self.cap / (1.0 + float(np.linalg.norm(grads[0])))
        self.limits.append(value)
        return value

    def accept(self, step, loss_old, loss_new, decrease):
        self.tried.append(step)
        return np.isfinite(loss_new)

    def next_after_accept(self, step):
        return self.step  # back to the large step: only the limit keeps the run stable

    def next_after_reject(self, step):
        raise DivergenceError("rejected")


def test_step_limit_caps_every_step(problem):
    op, y, _ = problem
    cap = 0.5 / op.norm_estimate() ** 2
    policy = _CappedLargeStep(100.0, cap)
    res = gradient_descent(Identity((50,)), op, y, init_scale=0.0, step=policy,
                           stopping=StoppingRule(tol=1e-8, max_iter=20_000))
    assert res.stop_reason is StopReason.CONVERGED
    # one limit per iteration, every trial step within it, and the limit was what bound it
    assert len(policy.limits) == len(policy.tried) == res.n_iter
    np.testing.assert_array_equal(policy.tried, policy.limits)
    assert max(policy.limits) <= cap and min(policy.limits) < 0.5 * cap
    # the clock counts the limited steps
    assert res.info["time"] == pytest.approx(y.shape[0] * sum(policy.tried), rel=1e-12)
    with pytest.raises(DivergenceError):  # the same step without the limit diverges
        gradient_descent(Identity((50,)), op, y, init_scale=0.0, step=100.0)


def test_default_step_limit_is_unbounded():
    assert StepPolicy().limit((np.ones(3),), (np.ones(3),)) == np.inf
    assert ConstantStep(0.1).limit((np.ones(3),), (np.ones(3),)) == np.inf


def test_validation_due_schedules():
    every = Validation(None, None, every=3)
    assert [it for it in range(1, 11) if every.due(it, 0.1 * it)] == [3, 6, 9]
    geometric = Validation(None, None, ratio=2.0)
    assert not geometric.due(1, 0.0)  # no time has passed: the grid is not set yet
    clocks = {2: 1.0, 3: 1.5, 4: 2.0, 5: 3.9, 6: 8.5, 7: 9.0, 8: 15.0, 9: 16.0}
    due = [it for it, clock in clocks.items() if geometric.due(it, clock)]
    # grid 1, 2, 4, 8, 16, ...: 8.5 passes both 4 and 8 yet gives a single check
    assert due == [2, 4, 6, 9]
    with pytest.raises(ValueError, match="ratio"):
        Validation(None, None, ratio=1.0)


def test_geometric_validation_checks_on_the_clock_grid(rng):
    A = rng.standard_normal((60, 40)) / np.sqrt(60)
    x = np.zeros(40)
    x[:3] = [1.0, -1.0, 0.8]
    y = A @ x + 0.3 * rng.standard_normal(60)
    op = DenseOperator(A)
    train, held = np.arange(45), np.arange(45, 60)
    ratio, eta = 1.5, 0.05
    val = Validation(op.rows(held), y[held], ratio=ratio, patience=None)
    res = gradient_descent(Hadamard(40), op.rows(train), y[train], init_scale=1e-4, step=eta,
                           validation=val, stopping=StoppingRule(max_iter=3000, tol=0))
    curve = res.info["validation_curve"]  # the solver leaves val untouched
    assert val.curve == []
    # constant step: the clock is iteration * eta * m, so the grid t0 ratio^k (t0 = the clock
    # after iteration 1) is crossed first at iteration ceil(ratio^k)
    expected = sorted({int(np.ceil(ratio**k - 1e-9))
                       for k in range(int(np.log(3000) / np.log(ratio)) + 1)})
    # ... and the end of the path (the budget, 3000 iterations) is on the curve too
    # (Validation.finish), off the grid
    np.testing.assert_array_equal(curve[:-1, 0], expected)
    assert curve[-1, 0] == 3000 and 3000 not in expected
    np.testing.assert_allclose(curve[:, 1], curve[:, 0] * eta * 45, rtol=1e-12)
    assert len(curve) < 25  # vs 300 checks every 10 iterations
    assert res.info["best_iteration"] == int(curve[np.argmin(curve[:, 2]), 0])
    best_err = np.sum((op.rows(held).forward(res.coef) - y[held]) ** 2) / 15
    assert best_err == pytest.approx(curve[:, 2].min())


@pytest.mark.parametrize("policy", [AdaptiveStep(grow=1.3, max_step=5.0), AdaptiveStep(),
                                    ConstantStep(0.5)])
def test_step_policy_array_forms_are_the_scalar_rules_entry_by_entry(policy):
    rng = np.random.default_rng(0)
    step = rng.uniform(0.1, 10.0, 20)
    old, new, dec = rng.standard_normal(20), rng.standard_normal(20), rng.uniform(0, 1, 20)
    new[3], new[4] = np.nan, np.inf
    accepted = policy.accept_batch(step, old, new, dec)
    assert accepted.dtype == bool and accepted.any() and not accepted.all()
    assert accepted.tolist() == [policy.accept(*a) for a in zip(step, old, new, dec,
                                                                  strict=True)]
    assert policy.accept_batch(step, 0.0, new, dec).tolist() == [
        policy.accept(s, 0.0, n, d) for s, n, d in zip(step, new, dec, strict=True)]
    assert policy.next_after_accept_batch(step).tolist() == [policy.next_after_accept(s)
                                                             for s in step]
    assert policy.start_batch(step).tolist() == [policy.start(s) for s in step]
    # the array form caps as the scalar one: at MAX_STEP, NaN and overflow included
    edge = np.array([np.nan, np.inf, 1e300, 1e299, 2.0])
    np.testing.assert_array_equal(policy.next_after_accept_batch(edge),
                                  [policy.next_after_accept(s) for s in edge.tolist()])
