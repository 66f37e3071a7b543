"""The shared solver loop (solvers/loop.py), driven by small step objects."""

import math

import numpy as np
import pytest

from overparam.operators import DenseOperator
from overparam.parameterizations import GroupHadamard
from overparam.solvers import History, weight_normalized_gd
from overparam.solvers.batch_loop import run_batch_loop
from overparam.solvers.loop import Iterate, private_validation, run_loop
from overparam.stopping import DivergenceError, Oracle, StoppingRule, StopReason, Validation


class Relax:
    """``x <- x - rate (x - y)``: the gradient flow of ``1/2 ||x - y||^2`` discretized, with
    clock advance ``rate`` per step (shortened to land on ``time_left``)."""

    name = "relax"
    clock = "flow_time"

    def __init__(self, y, x0, rate=0.5, stop_after=None, nan_at=None):
        self.y, self.x0, self.rate = np.asarray(y, float), np.asarray(x0, float), rate
        self.stop_after, self.nan_at, self.calls = stop_after, nan_at, 0

    def point(self, x, dt=0.0):
        r = x - self.y
        return Iterate((x,), x, 0.5 * float(r @ r), float(np.linalg.norm(r)), dt=dt)

    def init(self):
        return self.point(self.x0)

    def step(self, current, *, time_left, diverged):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            return StopReason.STATIONARY
        rate = min(self.rate, time_left)
        x = current.x - rate * (current.x - self.y)
        if self.nan_at is not None and self.calls >= self.nan_at:
            x = x.copy()
            x[0] = np.nan
        return self.point(x, dt=rate)

    def info(self):
        return {"rate": self.rate}


Y = np.array([1.0, -2.0, 0.5])


def test_converges_and_reports_the_run():
    res = run_loop(Relax(Y, np.zeros(3)), np.linalg.norm(Y), stopping=StoppingRule(tol=1e-6))
    assert res.stop_reason is StopReason.CONVERGED and res.converged
    assert np.linalg.norm(res.coef - Y) <= 1e-6 * np.linalg.norm(Y)
    # 0.5^k <= 1e-6 first at k = 20
    assert res.n_iter == 20 and res.info["time"] == pytest.approx(10.0)
    assert res.info["clock"] == "flow_time" and res.info["rate"] == 0.5
    assert res.info["final_loss"] == pytest.approx(0.5 * np.sum((res.coef - Y) ** 2))
    assert res.params[0] is res.coef and res.wall_time >= 0


def test_a_start_that_fits_takes_no_step():
    step = Relax(Y, Y.copy())
    res = run_loop(step, np.linalg.norm(Y))
    assert res.stop_reason is StopReason.CONVERGED and res.n_iter == 0 and step.calls == 0
    res = run_loop(Relax(Y, np.zeros(3)), np.linalg.norm(Y),
                   stopping=StoppingRule(discrepancy=10.0))
    assert res.stop_reason is StopReason.DISCREPANCY and res.n_iter == 0


def test_the_iteration_budget_bounds_the_run():
    step = Relax(Y, np.zeros(3), rate=1e-9)  # would need ~1e10 steps to converge
    res = run_loop(step, np.linalg.norm(Y),
                   stopping=StoppingRule(max_iter=37, stagnation_tol=0))
    assert res.stop_reason is StopReason.MAX_ITER and res.n_iter == 37 and step.calls == 37


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_a_small_budget_is_exact(max_iter):
    res = run_loop(Relax(Y, np.zeros(3), rate=1e-3), 1.0, stopping=StoppingRule(max_iter=max_iter))
    assert res.n_iter == max_iter and res.stop_reason is StopReason.MAX_ITER


def test_stop_time_is_landed_on_exactly():
    res = run_loop(Relax(Y, np.zeros(3), rate=0.3), np.linalg.norm(Y),
                   stopping=StoppingRule(max_flow_time=1.0, tol=0))
    assert res.stop_reason is StopReason.END_OF_TIME
    assert res.n_iter == 4 and res.info["time"] == pytest.approx(1.0)  # 0.3, 0.3, 0.3, 0.1


def test_stagnation_stops():
    res = run_loop(Relax(Y, np.zeros(3), rate=1e-12), 1.0,
                   stopping=StoppingRule(tol=0, stagnation_tol=1e-6, patience=5))
    assert res.stop_reason is StopReason.STAGNATED and res.n_iter == 5


def test_a_step_may_end_the_run_with_its_reason():
    res = run_loop(Relax(Y, np.zeros(3), stop_after=3), 1.0, stopping=StoppingRule(tol=0))
    assert res.stop_reason is StopReason.STATIONARY and res.n_iter == 3
    np.testing.assert_allclose(res.coef, (1 - 0.5**3) * Y)


def test_callback_sees_every_iterate_and_can_stop():
    seen = []

    def callback(iteration, params, x):
        seen.append((iteration, x.copy()))
        return iteration == 4

    res = run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=StoppingRule(tol=0), callback=callback)
    assert res.stop_reason is StopReason.CALLBACK and res.n_iter == 4
    assert [i for i, _ in seen] == [1, 2, 3, 4]
    np.testing.assert_allclose(seen[1][1], 0.75 * Y)


def test_history_records_the_period_and_the_last_iteration():
    history = History(every=3, truth=Y)
    res = run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=StoppingRule(max_iter=10, tol=0),
                   history=history)
    assert res.history is history and history.iteration == [0, 3, 6, 9, 10]
    np.testing.assert_allclose(history.error, 0.5 ** np.array([0, 3, 6, 9, 10]))


def test_divergence_raises():
    with pytest.raises(DivergenceError, match="loss became"):  # exploding loss
        run_loop(Relax(Y, np.zeros(3), rate=-3.0), 1.0, stopping=StoppingRule(tol=0))
    with pytest.raises(DivergenceError, match="loss became nan"):  # non-finite loss
        run_loop(Relax(Y, np.zeros(3), nan_at=3), 1.0)


def test_a_non_finite_estimate_is_never_returned():
    class FiniteLossNanSignal(Relax):
        def point(self, x, dt=0.0):
            it = super().point(x, dt)
            if dt:  # every stepped iterate: finite loss, NaN estimate
                it.x = np.full_like(x, np.nan)
            return it

    with pytest.raises(DivergenceError, match="non-finite estimate"):
        run_loop(FiniteLossNanSignal(Y, np.zeros(3)), 1.0, stopping=StoppingRule(max_iter=1))


def _validation(target, **kwargs):
    """Held-out error ``||x - target||^2 / 3`` (an identity held-out operator)."""
    return Validation(DenseOperator(np.eye(3)), target, **kwargs)


def test_validation_returns_the_best_iterate_and_leaves_the_caller_object_alone():
    # x_k = (1 - 0.5^k) Y is closest to 0.8 Y at k = 2; the error then rises
    val = _validation(0.8 * Y, every=1, patience=3, horizon=1.0)
    res = run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=StoppingRule(tol=0), validation=val)
    assert res.stop_reason is StopReason.EARLY_STOPPED and res.n_iter == 5
    np.testing.assert_allclose(res.coef, 0.75 * Y)  # the best iterate, restored
    assert res.params[0] is res.coef
    assert res.info["best_iteration"] == 2 and res.info["best_time"] == 1.0
    curve = res.info["validation_curve"]
    np.testing.assert_array_equal(curve[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(curve[:, 1], [0.5, 1.0, 1.5, 2.0, 2.5])
    errors = [((1 - 0.5**k) - 0.8) ** 2 * (Y @ Y) / 3 for k in range(1, 6)]
    np.testing.assert_allclose(curve[:, 2], errors)
    assert res.info["validation_error"] == pytest.approx(errors[1])
    assert res.info["final_loss"] == pytest.approx(0.5 * 0.5**10 * (Y @ Y))  # the last iterate
    # the caller's Validation is untouched: it can be reused for another run
    assert val.curve == [] and val.best_state is None and val.best_error == math.inf
    again = run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=StoppingRule(tol=0), validation=val)
    np.testing.assert_array_equal(again.info["validation_curve"], curve)


def test_validation_records_the_end_of_a_path_that_stopped_on_its_own():
    # noiseless held-out data: the error falls all along, the end of the path is the best
    val = _validation(Y.copy(), every=10, patience=None)
    res = run_loop(Relax(Y, np.zeros(3), rate=0.1), 1.0,
                   stopping=StoppingRule(max_iter=25, tol=0), validation=val)
    assert res.stop_reason is StopReason.MAX_ITER
    np.testing.assert_array_equal(res.info["validation_curve"][:, 0], [10, 20, 25])
    assert res.info["best_iteration"] == 25
    np.testing.assert_allclose(res.coef, (1 - 0.9**25) * Y)


def test_no_end_point_after_an_early_stop_or_on_the_grid():
    val = _validation(Y.copy(), every=5, patience=None)
    res = run_loop(Relax(Y, np.zeros(3), rate=0.1), 1.0,
                   stopping=StoppingRule(max_iter=20, tol=0), validation=val)
    np.testing.assert_array_equal(res.info["validation_curve"][:, 0], [5, 10, 15, 20])


def test_validation_on_a_geometric_clock_grid():
    val = _validation(Y.copy(), ratio=2.0, patience=None)
    res = run_loop(Relax(Y, np.zeros(3), rate=0.25), 1.0,
                   stopping=StoppingRule(max_iter=40, tol=0), validation=val)
    # t0 = 0.25 (iteration 1), checks at the first iterations past 0.25 * 2^k, then the end
    np.testing.assert_array_equal(res.info["validation_curve"][:, 0], [1, 2, 4, 8, 16, 32, 40])


def test_an_oracle_works_through_the_loop_too():
    oracle = Oracle(0.8 * Y, every=1, patience=None)
    res = run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=StoppingRule(max_iter=6, tol=0),
                   validation=oracle)
    np.testing.assert_allclose(res.coef, 0.75 * Y)
    assert oracle.curve == [] and len(res.info["validation_curve"]) == 6


def test_private_validation_copies_state_but_shares_data():
    val = _validation(0.8 * Y, every=1)
    val.check(1, 0.5, np.zeros(3), "s")
    own = private_validation(val)
    own.check(2, 1.0, 0.8 * Y, "t")
    assert len(val.curve) == 1 and len(own.curve) == 2 and own.operator is val.operator
    assert val.best_state == "s" and own.best_state == "t"
    assert private_validation(None) is None


def test_weight_normalized_gd_on_the_loop_keeps_the_callers_validation_and_finishes_the_path():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((50, 24)) / np.sqrt(50)
    labels = np.repeat(np.arange(6), 4)
    w = np.zeros(24)
    w[:8] = rng.standard_normal(8)
    y = A @ w + 0.1 * rng.standard_normal(50)
    op = DenseOperator(A)
    val = Validation(op.rows(np.arange(40, 50)), y[40:], every=10, patience=None)
    res = weight_normalized_gd(GroupHadamard(labels), op.rows(np.arange(40)), y[:40],
                               step_u="auto", step_v="auto", switch_tol="auto",
                               validation=val, stopping=StoppingRule(max_iter=205, tol=0))
    assert val.curve == []
    curve = res.info["validation_curve"]
    assert curve[-1, 0] == 205 and curve[-2, 0] == 200  # the end of the path: Validation.finish
    best = int(np.argmin(curve[:, 2]))
    assert res.info["best_iteration"] == curve[best, 0]
    r = A[40:] @ res.coef - y[40:]
    assert float(r @ r) / 10 == pytest.approx(curve[best, 2])
    assert res.info["clock"] == "iterations" and res.info["time"] == 205.0


class BatchRelax:
    """:class:`Relax` for ``B`` problems along a leading axis: the
    :class:`~overparam.solvers.batch_loop.BatchStep` form of the same maths. The batched loop
    reads ``sqrt(loss)`` as the residual norm: the loss is ``||x - y||^2`` (twice Relax's)."""

    name = "relax (batch)"
    clock = "flow_time"

    def __init__(self, Y, X0, rate=0.5):
        self.Y, self.X, self.rate = np.array(Y, float), np.array(X0, float), rate
        self.parameterization = self  # signal(params) = params[0]
        self.out = {"rate": np.full(self.Y.shape[0], rate)}

    def signal(self, rows):
        return rows[0] if isinstance(rows, tuple) else self.X[rows]

    def params(self, rows):
        return (self.X[rows],)

    def _loss(self):
        r = self.X - self.Y
        return np.sum(r * r, axis=1)

    def init(self):
        return self._loss()

    def step(self, time_left, diverged):
        rate = np.full(self.X.shape[0], self.rate)
        if time_left is not None:
            rate = np.minimum(rate, time_left)
        self.X = self.X - rate[:, None] * (self.X - self.Y)
        return [True] * self.X.shape[0], rate, self._loss()

    def still_learning(self, rows, ids, n_iter):
        return None

    def keep(self, mask):
        self.X, self.Y = self.X[mask], self.Y[mask]

    def publish(self, rows, dest):
        pass

    def info(self):
        return dict(self.out)


def _same_run(single, batch):
    np.testing.assert_array_equal(batch.coef, single.coef)
    assert batch.n_iter == single.n_iter and batch.stop_reason is single.stop_reason
    assert batch.info["time"] == single.info["time"]
    assert batch.info["final_loss"] == pytest.approx(2 * single.info["final_loss"], rel=1e-15)


@pytest.mark.parametrize("rule, every", [
    (StoppingRule(tol=1e-6), None),  # converged
    (StoppingRule(max_iter=7, tol=0), None),  # the budget
    (StoppingRule(max_flow_time=1.0, tol=0), None),  # landed on the end time
    (StoppingRule(tol=0, max_iter=60), 1),  # early stopped by validation
    (StoppingRule(tol=0, max_iter=25), 10),  # validation, the end of the path recorded
])
def test_one_problem_runs_the_same_through_the_single_and_the_batched_step(rule, every):
    """The one driver: a scalar step and the same maths as a batch of one give one run."""
    target = 0.8 * Y
    val = None if every is None else _validation(target, every=every, patience=3, horizon=1.0)
    single = run_loop(Relax(Y, np.zeros(3), rate=0.3), 1.0 * np.linalg.norm(Y), stopping=rule,
                      validation=val)
    batch = run_batch_loop(BatchRelax(Y[None], np.zeros((1, 3)), rate=0.3),
                           np.array([np.linalg.norm(Y)]), stopping=rule,
                           validations=None if val is None else [val])[0]
    _same_run(single, batch)
    if val is not None:
        np.testing.assert_array_equal(batch.info["validation_curve"],
                                      single.info["validation_curve"])
        assert batch.info["best_iteration"] == single.info["best_iteration"]


def test_a_batch_retires_each_problem_as_its_own_run_would():
    """Problems that stop at different iterations (different reasons) each end as alone."""
    Ys = np.array([Y, 10 * Y, 1e-3 * Y])
    vals = [None, _validation(8 * Y, every=1, patience=3, horizon=1.0), None]
    rule = StoppingRule(tol=1e-4, max_iter=40)
    batch = run_batch_loop(BatchRelax(Ys, np.zeros((3, 3)), rate=0.2),
                           np.linalg.norm(Ys, axis=1), stopping=rule, validations=vals)
    reasons = set()
    for b in range(3):
        alone = run_loop(Relax(Ys[b], np.zeros(3), rate=0.2), np.linalg.norm(Ys[b]),
                         stopping=rule, validation=vals[b])
        _same_run(alone, batch[b])
        reasons.add(alone.stop_reason)
    assert StopReason.EARLY_STOPPED in reasons and len(set(batch.n_iter.tolist())) > 1


def test_history_ends_on_the_last_iterate_whatever_stopped_the_run():
    """Both forms record the history's period and the last iteration, an early stop too."""
    val = _validation(0.8 * Y, every=1, patience=3, horizon=1.0)
    rule = StoppingRule(tol=0)
    one, many = History(every=4), History(every=4)
    run_loop(Relax(Y, np.zeros(3)), 1.0, stopping=rule, validation=val, history=one)
    run_batch_loop(BatchRelax(Y[None], np.zeros((1, 3))), np.ones(1), stopping=rule,
                   validations=[val], history=many)
    assert one.iteration == many.iteration == [0, 4, 5]  # early stopped at 5
    np.testing.assert_allclose(many.loss, 2 * np.array(one.loss), rtol=1e-15)


def _monitor_run(monitor_class, rule, y_norm, losses, clocks, moves):
    """Feed a BatchMonitor the problems' paths, each moving where ``moves`` says (rejected
    steps leave problems at different counts); even problems still learn (no stagnation).
    Returns ``{problem: (round, iteration, reason)}``."""
    B = y_norm.size
    monitor = monitor_class(rule, y_norm, losses[:, 0])
    count, got = np.zeros(B, dtype=int), {}
    for r in range(moves.shape[1]):
        ids = np.array([b for b in range(B) if b not in got and moves[b, r]])
        if ids.size == 0:
            continue
        count[ids] += 1
        k = count[ids]
        loss = losses[ids, k]
        reasons = monitor.update(ids, k, loss, np.sqrt(loss), clocks[ids, k],
                                 lambda j, ids=ids: ids[j] % 2 == 0)
        for b, k_b, reason in zip(ids.tolist(), k.tolist(), reasons or [None] * ids.size,
                                  strict=True):
            if reason is not None:
                got[b] = (r, k_b, reason)
    return got


def test_batch_monitor_scalar_path_of_small_batches_is_the_array_path():
    """BatchMonitor's tests on Python floats (batches of at most ``small_batch``) stop each
    problem at the same iteration for the same reason as its tests on arrays: residual,
    discrepancy, end time, stagnation (vetoed while the problem still learns) and budget."""
    from overparam.stopping import BatchMonitor

    class ArrayMonitor(BatchMonitor):
        small_batch = 0

    rng = np.random.default_rng(4)
    B, K = 8, 120
    t = np.arange(K + 1.0)
    floor = np.array([0.0, 1e-3, 0.02, 0.05, 0.3, 0.3, 0.3, 0.3])[:, None]
    losses = floor + np.exp(-rng.uniform(0.05, 0.4, (B, 1)) * t)
    clocks = rng.uniform(0.3, 1.2, (B, 1)) * t
    moves = rng.random((B, 2 * K)) < 0.8
    rule = StoppingRule(max_iter=100, tol=1e-3, stagnation_tol=1e-4, patience=7,
                        discrepancy=0.16, max_flow_time=90.0)
    y_norm = rng.uniform(1.0, 30.0, B)
    assert B <= BatchMonitor.small_batch
    small = _monitor_run(BatchMonitor, rule, y_norm, losses, clocks, moves)
    array = _monitor_run(ArrayMonitor, rule, y_norm, losses, clocks, moves)
    assert small == array
    assert len(small) == B and {StopReason.STAGNATED, StopReason.DISCREPANCY,
                                StopReason.MAX_ITER} <= {r for _, _, r in small.values()}
    assert len({k for _, k, _ in small.values()}) > 3


@pytest.mark.parametrize("size", [5, 12])
def test_batch_divergence_array_form_is_the_rule_per_problem(size):
    """BatchMonitor.divergent (None where no entry diverged) answers as is_divergent, on the
    scalar path of small batches and on arrays."""
    from overparam.stopping import BatchMonitor

    rule = StoppingRule(divergence_factor=10.0)
    initial = np.resize([1.0, 1.0, 0.0, 2.0, np.inf, 1.0], size)
    monitor = BatchMonitor(rule, np.ones(size), initial)
    ids = np.arange(size)
    cases = [[10.0, 10.5, 1e300, np.nan, 5.0, -np.inf], [1.0, 2, 3, 4, 5, 6],
             [1.0, 2, 3, 4, 5, -np.inf], [1.0, 2, 3, 4, 5, np.inf], [np.nan] * 6,
             [10.0] * 6, [10.0, 10, 10, 10, 10, 10.5], [9.0, 19.0, 1e300, 1, 1, 1]]
    answers = []
    for case in cases:
        loss = np.resize(np.array(case), size)
        found = monitor.divergent(ids, loss)
        answers.append([False] * size if found is None else found.tolist())
        assert answers[-1] == monitor.is_divergent(ids, loss)
    assert any(any(a) for a in answers) and not all(any(a) for a in answers)
    sub = np.array([0, 3])  # limits 10 and 20, some other problem's is lower
    assert monitor.divergent(sub, np.array([10.0, 20.0])).tolist() == [False, False]
    assert monitor.divergent(sub, np.array([10.0, 21.0])).tolist() == [False, True]
    assert monitor.divergent(sub, np.array([10.0, 9.0])) is None
