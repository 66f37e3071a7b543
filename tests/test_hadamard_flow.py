"""The exact flow (dual ODE), its Newton limit and the flow-keeping GD agree with small-step GD."""

import warnings

import numpy as np
import pytest
from scipy.optimize import nnls

from overparam.baselines import BasisPursuit
from overparam.datasets import make_sparse_problem
from overparam.implicit_bias import (
    implicit_bias,
    minimize_implicit_bias,
    signed_implicit_bias,
)
from overparam.operators import as_operator
from overparam.solvers import (
    History,
    NewtonConvergenceError,
    hadamard_flow,
    hadamard_newton,
)
from overparam.solvers.sparse.flow import FlowStep, HadamardDualMap, checks_due, hadamard_gd
from overparam.stopping import StoppingRule, StopReason, Validation


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def small():
    p = make_sparse_problem(12, 30, 3, random_state=0)
    return p, as_operator(p.operator)


@pytest.fixture(scope="module")
def small_positive():
    p = make_sparse_problem(12, 30, 3, positive=True, random_state=4)
    return p, as_operator(p.operator)


def _gd_snapshots(op, y, depth, alpha, eta, iterations):
    snaps = {}

    def keep(it, params, x):
        if it in iterations:
            snaps[it] = x.copy()

    hadamard_gd(op, y, depth=depth, init_scale=alpha, step=eta, callback=keep,
                stopping=StoppingRule(max_iter=max(iterations), tol=0, stagnation_tol=0))
    return snaps


@pytest.mark.parametrize("depth", [2, 3])
def test_flow_path_is_the_limit_of_small_step_gd(small, depth):
    """GD with step eta is O(eta) from the flow at equal clock time; halving eta halves it."""
    p, op = small
    alpha, m = 1e-2, 12
    flow = hadamard_flow(op, p.y, depth=depth, init_scale=alpha, dense_output=True,
                         stopping=StoppingRule(tol=1e-9, max_iter=10**6))
    path = flow.info["path"]
    errors = {}
    for eta in (2e-2, 1e-2):
        iters = [round(k * 1e-2 / eta) for k in (300, 1000, 3000)]
        snaps = _gd_snapshots(op, p.y, depth, alpha, eta, set(iters))
        errors[eta] = max(rel(snaps[k], path(k * eta * m)) for k in iters)
    assert errors[1e-2] < 5e-3
    assert errors[1e-2] < 0.7 * errors[2e-2]  # first-order convergence to the flow


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_flow_newton_and_flow_step_gd_share_the_limit(small, depth):
    p, op = small
    alpha = 1e-2
    newton = hadamard_newton(op, p.y, depth=depth, init_scale=alpha)
    flow = hadamard_flow(op, p.y, depth=depth, init_scale=alpha,
                         stopping=StoppingRule(tol=1e-10, max_iter=10**6))
    gd = hadamard_gd(op, p.y, depth=depth, init_scale=alpha, step=FlowStep(0.01),
                     stopping=StoppingRule(tol=1e-9, max_iter=10**6))
    assert newton.converged and flow.converged and gd.converged
    assert rel(flow.coef, newton.coef) < 1e-6
    assert rel(gd.coef, newton.coef) < 3e-3  # measured 0.8e-3 (L=2), 1.2e-3 (L=3)
    # the flow's factors are the Hadamard parameters: (u^L - v^L) = x
    u, v = flow.params
    np.testing.assert_allclose(u**depth - v**depth, flow.coef, atol=1e-12)


def test_plain_backtracking_drifts_but_flow_step_does_not(small):
    """The unbounded Armijo step lands measurably off the flow's limit; FlowStep does not."""
    p, op = small
    newton = hadamard_newton(op, p.y, depth=2, init_scale=1e-2)
    plain = hadamard_gd(op, p.y, depth=2, init_scale=1e-2, step="adaptive",
                        stopping=StoppingRule(tol=1e-9, max_iter=10**6))
    flow_step = hadamard_gd(op, p.y, depth=2, init_scale=1e-2,
                            stopping=StoppingRule(tol=1e-9, max_iter=10**6))
    assert rel(flow_step.coef, newton.coef) < 0.2 * rel(plain.coef, newton.coef)


@pytest.mark.parametrize("depth", [2, 3])
def test_positive_flow(small_positive, depth):
    p, op = small_positive
    newton = hadamard_newton(op, p.y, depth=depth, signed=False, init_scale=1e-6)
    flow = hadamard_flow(op, p.y, depth=depth, signed=False, init_scale=1e-6,
                         stopping=StoppingRule(tol=1e-9, max_iter=10**6))
    assert np.all(newton.coef >= 0)
    assert rel(flow.coef, newton.coef) < 1e-5
    assert rel(newton.coef, p.truth) < 1e-3  # exact positive recovery from a small init


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("alpha", [1e-1, 1e-2])
def test_flow_limit_minimizes_the_implicit_bias(small, depth, alpha):
    """Thm 3.1: the limit's parts minimize g(z+) + g(z-) over A(z+ - z-) = y (cvxpy check)."""
    p, op = small
    newton = hadamard_newton(op, p.y, depth=depth, init_scale=alpha, tol=1e-12)
    x_cvx, parts = minimize_implicit_bias(p.operator, p.y, alpha, depth=depth)
    assert rel(newton.coef, x_cvx) < 1e-4
    flow_parts = tuple(f**depth for f in newton.params)
    g_flow = signed_implicit_bias(*flow_parts, alpha, depth=depth)
    g_cvx = signed_implicit_bias(*parts, alpha, depth=depth)
    assert g_flow <= g_cvx + 1e-6 * abs(g_cvx)
    # at this large init the limit is far from the l1 minimizer: the check is discriminating
    bp = BasisPursuit().fit(p.operator, p.y).coef_
    assert rel(newton.coef, bp) > 0.05


def test_implicit_bias_values():
    z = np.array([0.0, 1.0, 2.0])
    x = np.full(3, 0.5)
    expected = (1 * (0 - 1 - np.log(0.5))) + 2 * (np.log(2) - 1 - np.log(0.5))
    assert implicit_bias(z, 0.5, 2) == pytest.approx(expected)
    assert implicit_bias(z, x, 4) == pytest.approx(np.sum(z * 0.5 ** (-0.5)) - 2 * np.sum(
        z**0.5))
    with pytest.raises(ValueError):
        implicit_bias(-z, 0.5)
    with pytest.raises(ValueError):
        implicit_bias(z, 0.0)


def test_positive_implicit_bias_minimizer(small_positive):
    p, op = small_positive
    newton = hadamard_newton(op, p.y, depth=2, signed=False, init_scale=0.1, tol=1e-12)
    x_cvx, _ = minimize_implicit_bias(p.operator, p.y, 0.1, depth=2, signed=False)
    assert rel(newton.coef, x_cvx) < 1e-4
    assert implicit_bias(newton.coef, 0.1) <= implicit_bias(x_cvx, 0.1) + 1e-7


def test_stop_time_is_exact_and_on_the_gd_clock(small):
    p, op = small
    tau = 2000.0  # mean-loss clock: mid-path for alpha = 1e-2
    full = hadamard_flow(op, p.y, init_scale=1e-2, dense_output=True,
                         stopping=StoppingRule(tol=1e-10, max_iter=10**6))
    stopped = hadamard_flow(op, p.y, init_scale=1e-2,
                            stopping=StoppingRule(max_iter=10**6, tol=0, max_flow_time=tau))
    assert stopped.stop_reason is StopReason.END_OF_TIME
    assert stopped.info["time"] == pytest.approx(tau, rel=1e-12)
    assert rel(stopped.coef, full.info["path"](tau)) < 1e-5
    # gradient descent (small constant step) stopped at the same clock time lands there too
    gd = hadamard_gd(op, p.y, init_scale=1e-2, step=5e-3,
                     stopping=StoppingRule(max_iter=10**6, tol=0, max_flow_time=tau))
    assert gd.info["time"] == pytest.approx(tau)
    assert rel(gd.coef, stopped.coef) < 5e-3


def test_discrepancy_stops_at_the_level(small):
    p, op = small
    level = 0.05 * np.linalg.norm(p.y)
    res = hadamard_flow(op, p.y, init_scale=1e-3,
                        stopping=StoppingRule(max_iter=10**6, discrepancy=level))
    assert res.stop_reason is StopReason.DISCREPANCY
    residual = np.linalg.norm(p.operator @ res.coef - p.y)
    assert residual == pytest.approx(level, rel=1e-6)
    assert residual <= level  # at or just past the crossing, never a rounding error before


def test_validation_returns_the_best_point_of_the_path():
    p = make_sparse_problem(60, 120, 4, snr=5.0, random_state=1)
    op = as_operator(p.operator)
    train, held = np.arange(48), np.arange(48, 60)
    val = Validation(op.rows(held), p.y[held])
    res = hadamard_flow(op.rows(train), p.y[train], init_scale=1e-4, validation=val,
                        stopping=StoppingRule(max_iter=10**6, tol=1e-10))
    assert res.stop_reason is StopReason.EARLY_STOPPED
    curve = res.info["validation_curve"]
    best = int(np.argmin(curve[:, 2]))
    assert res.info["best_time"] == curve[best, 1] > 0
    assert res.info["validation_error"] == curve[best, 2]
    r = op.rows(held).forward(res.coef) - p.y[held]
    assert float(r @ r / held.size) == pytest.approx(curve[best, 2])
    assert np.all(np.diff(curve[:, 1]) > 0)
    # the caller's object is not changed (the same Validation can serve another fit)
    assert val.curve == [] and val.best_state is None and val.ratio is None


def test_low_rank_newton_matrices_are_solved_exactly():
    """The Woodbury factor of I + c B B^T (B thin) and the dense fallback both solve it."""
    from overparam.solvers.sparse.flow import _LowRankBDF

    rng = np.random.default_rng(0)
    m = 40
    for k in (5, 30):  # Woodbury; dense Cholesky (k > m / 2)
        B = rng.standard_normal((m, k))
        solver = _LowRankBDF(lambda t, w, B=B: -B @ (B.T @ w), 0.0, np.ones(m), 1.0,
                             jac=lambda t, w, B=B: B)
        b = rng.standard_normal(m)
        for c in (1e-3, 1.0, 1e3):
            matrix = np.eye(m) + c * B @ B.T
            factors = solver.lu(matrix.copy())
            assert factors[0] == ("woodbury" if k == 5 else "cholesky")
            x = solver.solve_lu(factors, b)
            assert np.linalg.norm(matrix @ x - b) <= 1e-10 * np.linalg.norm(b)
    # a matrix that is not I - c J for the last Jacobian falls back to the dense factor
    assert solver.lu(np.eye(m) + np.diag(rng.uniform(1, 2, m)))[0] == "cholesky"


def test_newton_failures_are_clear(small, small_positive):
    p, op = small
    with pytest.raises(NewtonConvergenceError, match="did not converge"):
        hadamard_newton(op, p.y, init_scale=1e-6, max_iter=2)
    # a positive model cannot fit y outside the cone of A: the flow's limit (and Newton's
    # answer) is then the non-negative least-squares fit, here x = 0
    A = np.array([[1.0, 1.0], [1.0, -1.0]])
    res = hadamard_newton(as_operator(A), np.array([-1.0, 0.0]), signed=False, max_iter=60)
    np.testing.assert_allclose(res.coef, nnls(A, np.array([-1.0, 0.0]))[0], atol=1e-8)
    with pytest.raises(ValueError, match="NaN"):
        hadamard_newton(op, np.full(12, np.nan))


def test_flow_budget_history_and_counts(small):
    p, op = small
    hist = History(every=5, truth=p.truth)
    res = hadamard_flow(op, p.y, init_scale=1e-6, history=hist,
                        stopping=StoppingRule(max_iter=200, tol=1e-12))
    assert res.stop_reason is StopReason.MAX_ITER
    assert 200 <= res.n_iter < 260  # right-hand-side evaluations (a step may use several)
    assert res.info["n_steps"] > 0 and res.wall_time > 0
    assert len(hist.loss) >= 2 and np.all(np.isfinite(hist.loss))


def test_tiny_init_does_not_overflow(small):
    p, op = small
    with np.errstate(over="raise", invalid="raise"):
        newton = hadamard_newton(op, p.y, init_scale=1e-30)
        flow = hadamard_flow(op, p.y, init_scale=1e-30,
                             stopping=StoppingRule(tol=1e-8, max_iter=10**6))
    assert rel(flow.coef, newton.coef) < 1e-5
    bp = BasisPursuit().fit(p.operator, p.y).coef_
    assert rel(newton.coef, bp) < 1e-2  # alpha -> 0: the l1 minimizer


def test_inconsistent_system_converges_to_least_squares():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 8))
    y = rng.standard_normal(20)
    op = as_operator(A)
    ls = np.linalg.lstsq(A, y, rcond=None)[0]
    flow = hadamard_flow(op, y, depth=3, init_scale=1e-2,
                         stopping=StoppingRule(tol=1e-8, max_iter=10**6))
    newton = hadamard_newton(op, y, depth=3, init_scale=1e-2)
    assert flow.converged and newton.converged
    assert rel(flow.coef, ls) < 1e-5
    assert rel(newton.coef, ls) < 1e-5


@pytest.mark.parametrize("depth", [2, 3])
def test_flow_step_limit_matches_the_factor_speed(small, depth):
    """FlowStep.limit from (params, grads) is the relative-change and curvature cap."""
    p, op = small
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0.1, 1.5, 30), rng.uniform(0.1, 1.5, 30)
    r = p.operator @ (u**depth - v**depth) - p.y
    g = p.operator.T @ r
    grads = (depth * u ** (depth - 1) * g, -depth * v ** (depth - 1) * g)
    speed = max(np.max(np.abs(depth * g * u ** (depth - 2))),
                np.max(np.abs(depth * g * v ** (depth - 2))))
    assert FlowStep(0.01).limit((u, v), grads) == pytest.approx(0.01 / speed, rel=1e-12)
    norm_sq = op.norm_estimate() ** 2
    top = max(u.max(), v.max())
    curvature = 1.0 / (norm_sq * depth**2 * top ** (2 * depth - 2))
    bound = FlowStep(0.01).bind(depth, norm_sq).limit((u, v), grads)
    assert bound == pytest.approx(min(0.01 / speed, curvature), rel=1e-12)
    assert FlowStep(10.0).bind(depth, norm_sq).limit((u, v), grads) == pytest.approx(curvature)
    # a zero factor stays zero under the multiplicative update: it sets no speed
    u0 = u.copy()
    u0[np.argmax(np.abs(grads[0] / u))] = 0.0
    without = max(np.max(np.abs(grads[0] / u)[u0 != 0]), np.max(np.abs(grads[1] / v)))
    assert FlowStep(0.01).limit((u0, v), grads) == pytest.approx(0.01 / without, rel=1e-12)


def test_flow_step_bounds_the_relative_change_of_the_factors(small):
    p, op = small
    worst = []
    previous = {}

    def watch(it, params, x):
        if "params" in previous:
            worst.append(max(float(np.max(np.abs(q / q0 - 1)))
                             for q, q0 in zip(params, previous["params"], strict=True)))
        previous["params"] = params

    res = hadamard_gd(op, p.y, depth=3, init_scale=1e-4, step=FlowStep(0.02), callback=watch,
                      stopping=StoppingRule(max_iter=3000, tol=0))
    assert res.info["step_policy"] == "flow" and res.info["n_rejected_steps"] == 0
    assert max(worst) <= 0.02 * (1 + 1e-9)
    assert max(worst) > 0.015  # the cap binds: the step is as large as it allows


def test_gd_validation_checks_on_a_geometric_clock_grid():
    p = make_sparse_problem(60, 120, 4, snr=5.0, random_state=1)
    op = as_operator(p.operator)
    train, held = np.arange(48), np.arange(48, 60)
    val = Validation(op.rows(held), p.y[held])
    res = hadamard_gd(op.rows(train), p.y[train], init_scale=1e-4, validation=val,
                      stopping=StoppingRule(max_iter=10**6, tol=1e-10))
    assert res.stop_reason is StopReason.EARLY_STOPPED
    assert val.ratio is None and val.curve == []  # the caller's object is not changed
    curve = res.info["validation_curve"]
    assert res.info["best_time"] == curve[np.argmin(curve[:, 2]), 1] > 0
    r = op.rows(held).forward(res.coef) - p.y[held]
    assert float(r @ r / held.size) == pytest.approx(res.info["validation_error"])
    assert res.info["validation_error"] == curve[:, 2].min()
    clocks = curve[:, 1]
    # one check per grid interval [t0 r^k, t0 r^(k+1)), t0 the clock of the first iteration
    cells = np.floor(np.log(clocks / clocks[0]) / np.log(1.05) + 1e-9)
    assert np.all(np.diff(cells) >= 1)
    assert res.n_iter > 20 * len(clocks)  # far fewer checks than iterations


def test_validation_checks_skip_the_initial_plateau():
    p = make_sparse_problem(80, 200, 5, snr=20, random_state=4)
    A_tr, y_tr = as_operator(p.operator[:64]), p.y[:64]
    val = Validation(as_operator(p.operator[64:]), p.y[64:], patience=None)
    res = hadamard_flow(A_tr, y_tr, init_scale=1e-6, validation=val, rtol=1e-2, atol=1e-5)
    # the path converged: its end is the curve's last point (Validation.finish), off the grid
    curve = res.info["validation_curve"]
    assert res.converged and curve[-1, 1] == res.info["time"]
    clocks = curve[:-1, 1].tolist()
    np.testing.assert_allclose(np.diff(np.log(clocks[1:])) / np.log(1.05),
                               np.round(np.diff(np.log(clocks[1:])) / np.log(1.05)),
                               atol=1e-6)  # the grid t0 1.05^k
    skipped = round(np.log(clocks[1] / clocks[0]) / np.log(1.05)) - 1
    assert skipped > 20
    # the last skipped grid time was on the plateau: training loss within 0.1% of its start
    before = hadamard_flow(A_tr, y_tr, init_scale=1e-6, rtol=1e-2, atol=1e-5,
                           stopping=StoppingRule(max_flow_time=clocks[1] / 1.05))
    loss = np.sum((A_tr.forward(before.coef) - y_tr) ** 2)
    assert loss > (1 - 1e-3) * np.sum(y_tr**2)


def test_checks_due_skips_plateau_grid_times_after_the_first():
    val = Validation(None, None, ratio=2.0)
    loss0 = 0.5  # residual norm 1 at the start
    assert checks_due(val, 1.0, 0, 1.0, loss0) == [1.0]  # the first check, on the plateau
    assert checks_due(val, 5.0, 1, 0.9999, loss0) == []  # 2, 4 passed by: loss within 0.1 %
    assert checks_due(val, 9.0, 1, 0.99, loss0) == [8.0]  # learning: checked again
    assert checks_due(val, 40.0, 2, 0.5, loss0) == [16.0, 32.0]


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_loose_flow_stays_inside_the_domain(depth):
    """Issue 13: with loose tolerances the L > 2 flow used to step across the blow-up boundary
    (DivergenceError on solvable data). Trial points past it are rejected, the tolerances
    follow the margin, and steps that leave the path are redone: the limit is Newton's."""
    p = make_sparse_problem(60, 200, 6, random_state=1)
    op = as_operator(p.operator)
    newton = hadamard_newton(op, p.y, depth=depth, init_scale=1e-6, tol=1e-10)
    for rtol, atol in ((1e-2, 1e-5), (1e-3, 1e-7)):
        flow = hadamard_flow(op, p.y, depth=depth, init_scale=1e-6, rtol=rtol, atol=atol,
                             stopping=StoppingRule(tol=1e-8, max_iter=10**6))
        assert flow.converged
        assert rel(flow.coef, newton.coef) < 1e-5


@pytest.mark.parametrize("depth", [4, 5])
def test_newton_reaches_its_tolerance_from_a_tiny_init(depth):
    """The line search on the change of Phi (not Phi, whose <y, w> is ~1e6 here) reaches the
    tolerance; before, a rounding-level decrement test stopped at relative residual 1e-3 and
    called it converged."""
    p = make_sparse_problem(60, 200, 6, random_state=2)
    res = hadamard_newton(as_operator(p.operator), p.y, depth=depth, init_scale=1e-11, tol=1e-8)
    assert res.converged
    assert np.linalg.norm(p.operator @ res.coef - p.y) <= 1e-8 * np.linalg.norm(p.y)
    assert rel(res.coef, BasisPursuit().fit(p.operator, p.y).coef_) < 1e-6


def test_newton_never_calls_an_unreached_tolerance_converged(small):
    # tol = 1e-20 is below the rounding of the residual itself (~1e-16 relative): never met.
    # (Depth 5 from 1e-40 used to stall short of tol = 1e-14; since the dual map's origin
    # moves with the iteration it reaches 1e-16.)
    p, op = small
    with pytest.raises(NewtonConvergenceError):
        hadamard_newton(op, p.y, depth=5, init_scale=1e-40, tol=1e-20, max_iter=50)
    res = hadamard_newton(op, p.y, depth=5, init_scale=1e-40, tol=1e-14, max_iter=50)
    assert res.converged
    assert np.linalg.norm(op.forward(res.coef) - p.y) <= 1e-14 * np.linalg.norm(p.y)


def test_tall_flow_runs_on_the_range_and_keeps_the_clock():
    """Overdetermined: the ODE runs on range(A) (n unknowns), with the same path."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((80, 10))
    y = rng.standard_normal(80)
    op = as_operator(A)
    tau = 50.0
    flow = hadamard_flow(op, y, depth=3, init_scale=1e-3,
                         stopping=StoppingRule(max_flow_time=tau, tol=0, max_iter=10**6))
    gd = hadamard_gd(op, y, depth=3, init_scale=1e-3, step=2e-4,
                     stopping=StoppingRule(max_flow_time=tau, tol=0, max_iter=10**6))
    assert flow.info["time"] == pytest.approx(tau)
    assert rel(gd.coef, flow.coef) < 5e-3
    w = flow.info["dual"]
    assert w.shape == (80,)
    np.testing.assert_allclose(flow.coef, HadamardDualMap(3, True, 1e-3).signal(A.T @ w),
                               rtol=1e-8, atol=1e-12)



@pytest.mark.parametrize("depth", [2, 3, 5])
def test_recentered_map_is_the_same_map(depth):
    """Moving the origin of the dual map to s0 changes no value: signal, derivative, potential,
    margin and the room to the boundary at s0 + t are those of the original map at s0 + t."""
    rng = np.random.default_rng(depth)
    dmap = HadamardDualMap(depth, True, 1e-6)
    bound = 2.0 if depth == 2 else 0.3 * dmap.s_max
    s0, t = rng.uniform(-bound, bound, 7), rng.uniform(-bound, bound, 7) / 3
    moved = dmap.recentered(s0)
    np.testing.assert_allclose(moved.signal(t), dmap.signal(s0 + t), rtol=1e-10)
    np.testing.assert_allclose(moved.derivative(t), dmap.derivative(s0 + t), rtol=1e-10)
    assert moved.potential(t) == pytest.approx(dmap.potential(s0 + t), rel=1e-10)
    assert moved.margin(t) == pytest.approx(dmap.margin(s0 + t), rel=1e-8)
    ds = rng.standard_normal(7)
    assert moved.room(t, ds) == pytest.approx(dmap.room(s0 + t, ds), rel=1e-8)
    if depth > 2:  # just past the room, a part is infinite
        assert not np.isfinite(moved.potential(t - 1.001 * moved.room(t, ds) * ds))


@pytest.mark.parametrize(("signed", "depth", "seed"), [(False, 3, 4261317779), (True, 3, 7),
                                                       (True, 4, 7)])
def test_newton_reaches_a_tight_tol_from_the_per_factor_init(signed, depth, seed):
    """Issue 13: with u(0) = 1e-6 per factor (product 1e-6^L) the limit's factors sit at a
    relative distance ~1e-6 of the blow-up boundary, where recomputing u^(2-L) = c - L(L-2) s
    from s = A^T w rounds x by ~1e-10 relative: Newton stalled short of tol = 1e-10 (and the
    dual flow it fell back to stalled at flow times 1e19-1e49). Moving the map's origin along
    the iteration keeps x exact to rounding: the limit, here (positive) basis pursuit."""
    p = make_sparse_problem(4 if not signed else 6, 20, 2, positive=not signed, unit_norm=True,
                            random_state=seed)
    res = hadamard_newton(as_operator(p.operator), p.y, depth=depth, signed=signed,
                          init_scale=1e-6**depth, tol=1e-10)
    assert res.converged
    assert np.linalg.norm(p.operator @ res.coef - p.y) <= 1e-10 * np.linalg.norm(p.y)
    bp = BasisPursuit(positive=not signed).fit(p.operator, p.y).coef_
    assert rel(res.coef, bp) < 1e-4


def test_the_flow_stops_through_the_monitor_of_every_solver(small, monkeypatch):
    """The flow's stop reasons come from Monitor.update (the iteration count is the
    right-hand-side evaluations); its stagnation test is off (geometric steps); the
    discrepancy is asked before the costly convergence test."""
    from overparam.solvers.sparse import flow as flow_module
    from overparam.stopping import Monitor

    p, op = small
    calls = []
    update = Monitor.update

    def spy(self, iteration, loss, residual_norm, clock=None, converged=None):
        reason = update(self, iteration, loss, residual_norm, clock, converged)
        calls.append((iteration, reason))
        return reason

    monkeypatch.setattr(Monitor, "update", spy)
    res = hadamard_flow(op, p.y, init_scale=1e-6,
                        stopping=StoppingRule(max_iter=50, tol=1e-12, stagnation_tol=0.5,
                                              patience=1))
    assert res.stop_reason is StopReason.MAX_ITER and calls[-1] == (res.n_iter, res.stop_reason)
    assert len(calls) == res.info["n_steps"]  # one decision per integrator step
    asked = []
    monkeypatch.setattr(flow_module._DualODE, "converged",
                        lambda self, x, r: bool(asked.append(1)))
    level = 0.5 * float(np.linalg.norm(p.y))
    res = hadamard_flow(op, p.y, init_scale=1e-6, stopping=StoppingRule(discrepancy=level))
    assert res.stop_reason is StopReason.DISCREPANCY
    assert float(np.linalg.norm(op.forward(res.coef) - p.y)) == pytest.approx(level, rel=1e-6)
    assert len(asked) == res.info["n_steps"] - 1  # not at the step that crossed the level


# Trial 16 of "more-is-less-phase-transition" (signed, M = 14, s = 6, per-factor init,
# PHASE_TRANSITION.trial_seed(..., 16) = 2799233385): depth 3 from u(0)^3 ~ 1e-18.
_TRIAL_SEED = 2799233385


@pytest.fixture(scope="module")
def phase_trial():
    p = make_sparse_problem(14, 20, 6, positive=False, unit_norm=True, random_state=_TRIAL_SEED)
    return p, as_operator(p.operator), BasisPursuit().fit(p.operator, p.y).coef_


@pytest.mark.parametrize("init", [1e-19, 1e-18, 1e-6**3, 1.01e-18])
def test_depth3_newton_from_a_tiny_init_keeps_the_small_directions(phase_trial, init):
    """cond(A diag(x') A^T) reaches 1e17-1e19 here: Cholesky fails, and least squares on the
    squared Hessian dropped the directions along which the small coordinates grow, so Newton
    stalled (1e-6**3 = 9.999999999999999e-19: no convergence in 500 steps; 1.01e-18: line
    search stalled at step 19; 1e-18: 472 steps; 1e-19 converged in 45, the control). The
    graded steps (QR of the square-root factor) converge in 44-48 steps, to the l1 minimizer
    (the limit at this init: 5e-16 from BP at 1e-19)."""
    p, op, bp = phase_trial
    res = hadamard_newton(op, p.y, depth=3, init_scale=init, tol=1e-10)
    assert res.converged
    assert res.n_iter <= 60
    assert np.linalg.norm(p.operator @ res.coef - p.y) <= 1e-10 * np.linalg.norm(p.y)
    assert rel(res.coef, bp) < 1e-9


def test_phase_trial_fit_takes_newton_without_a_warning(phase_trial):
    """The experiment's fit of that trial fell back to the dual ODE (16 s, max_iter) with a
    Newton warning; now Newton converges."""
    from overparam.estimators import HadamardRegressor

    p, _, bp = phase_trial
    est = HadamardRegressor(depth=3, signed=True, init_scale=1e-6**3, tol=1e-10,
                            early_stopping=None)
    est.column_spread_limit = np.inf  # as the experiment (the paper's flow on A as given)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(p.operator, p.y)
    assert est.result_.info["solver"] == "newton"
    assert est.result_.stop_reason is StopReason.CONVERGED
    assert rel(est.coef_, bp) < 1e-9


@pytest.mark.parametrize("init", [1e-6, 1e-12, 1e-18, 1e-30])
def test_depth2_newton_never_takes_the_graded_path(phase_trial, small, init, monkeypatch):
    """The graded direction runs only where Cholesky fails and least squares on the Hessian
    is no inexact Newton step: never at depth 2 here (nor on 444 depth-2 limits compared
    with the previous code: the same bit for bit)."""
    from overparam.solvers.sparse import flow as flow_module

    def fail(*args):
        raise AssertionError("graded direction at depth 2")

    monkeypatch.setattr(flow_module, "_graded_direction", fail)
    for p, op in ((phase_trial[0], phase_trial[1]), small):
        res = hadamard_newton(op, p.y, depth=2, init_scale=init, tol=1e-10)
        assert res.converged and res.info.get("n_graded", 0) == 0


def test_graded_direction_is_the_newton_step_on_a_well_conditioned_hessian():
    """On all pivots the graded direction is H^{-1} g (here against Cholesky of H)."""
    from scipy.linalg import cho_factor, cho_solve

    from overparam.solvers.sparse.flow import _graded_direction

    rng = np.random.default_rng(3)
    B = rng.standard_normal((8, 20))
    d = rng.uniform(0.1, 2.0, 20)
    g = rng.standard_normal(8)
    step, cond = _graded_direction(B, d, g, 0.0)
    expected = cho_solve(cho_factor((B * d) @ B.T), g)
    np.testing.assert_allclose(step, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    assert 1 <= cond < 1e4



def _line_search_afresh(dmap, s, ds, y_dot_step, decrement, t):
    """The dual line search with every potential computed afresh (its definition)."""
    halvings = 0
    while True:
        new_s = s - t * ds
        change = dmap.potential(new_s) - dmap.potential(s) if np.isfinite(
            dmap.potential(new_s)) else np.inf
        slack = 10 * np.finfo(float).eps * (dmap.potential(s) + abs(t * y_dot_step))
        if change + t * y_dot_step <= -1e-4 * t * decrement + slack:
            return t, halvings
        t *= 0.5
        halvings += 1


@pytest.mark.parametrize("depth", [2, 3])
def test_line_search_computes_the_factors_once_per_trial(depth, monkeypatch):
    """The dual line search shares the factors at ``s`` between its trials: one evaluation at
    ``s`` and one per trial inside the domain (each a pass of exponentials over ``n``), and
    takes the step of the potentials computed afresh."""
    from overparam.solvers.sparse.flow import _dual_line_search

    rng = np.random.default_rng(depth)
    dmap = HadamardDualMap(depth, True, 1e-3)
    bound = 3.0 if depth == 2 else 0.05 * dmap.s_max
    s = rng.uniform(-bound, bound, 50)
    ds = dmap.signal(s) * rng.uniform(0.5, 1.5, 50)  # downhill for Phi
    decrement, y_step = float(dmap.signal(s) @ ds), 0.0
    # too long a first trial: log u^2 moves by up to 128 (L = 2), or half the way to the
    # boundary of the domain
    first = 32.0 / np.max(np.abs(ds)) if depth == 2 else 0.5 * dmap.room(s, ds)
    expected = _line_search_afresh(dmap, s, ds, y_step, decrement, first)
    calls = []
    factors = HadamardDualMap.factors
    monkeypatch.setattr(HadamardDualMap, "factors",
                        lambda self, x: calls.append(1) or factors(self, x))
    t, new_s, halvings = _dual_line_search(dmap, s, ds, y_step, decrement, first)
    assert halvings > 0  # the test takes several trials
    assert (t, halvings) == expected
    np.testing.assert_array_equal(new_s, s - t * ds)
    assert len(calls) == 2 + halvings
