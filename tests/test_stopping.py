import numpy as np
import pytest

from overparam.stopping import (
    DivergenceError,
    PathControl,
    StoppingRule,
    StopReason,
    Validation,
)


def test_monitor_reasons():
    mon = StoppingRule(max_iter=5, tol=1e-3, stagnation_tol=0).monitor(y_norm=1.0)
    assert mon.update(0, 1.0, 1.0) is None
    assert mon.update(1, 0.5, 1e-4) is StopReason.CONVERGED
    mon = StoppingRule(max_iter=3, tol=0, stagnation_tol=0).monitor(1.0)
    assert [mon.update(i, 1.0 / (i + 1), 1.0) for i in range(4)][-1] is StopReason.MAX_ITER


def test_stagnation():
    mon = StoppingRule(tol=0, stagnation_tol=1e-6, patience=3).monitor(1.0)
    reasons = [mon.update(i, 1.0, 1.0) for i in range(5)]
    assert reasons[3] is StopReason.STAGNATED


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e12])
def test_divergence_raises(bad):
    mon = StoppingRule().monitor(1.0)
    mon.update(0, 1.0, 1.0)
    assert mon.is_divergent(bad)
    with pytest.raises(DivergenceError):
        mon.update(1, bad, 1.0)


def test_rule_validates_arguments():
    with pytest.raises(ValueError):
        StoppingRule(tol=-1)
    with pytest.raises(TypeError):
        StoppingRule(max_iter=2.5)
    with pytest.raises(ValueError):
        StoppingRule(discrepancy=0.0)


def test_path_control_fills_rule():
    rule = PathControl(stop_time=3.0, discrepancy=0.5).apply(StoppingRule(max_iter=7))
    assert (rule.max_flow_time, rule.discrepancy, rule.max_iter) == (3.0, 0.5, 7)
    assert PathControl().apply(StoppingRule()) == StoppingRule()


class ScalarValidation(Validation):
    """A Validation whose 'held-out error' is the iterate itself."""

    def __init__(self, **kw):
        super().__init__(operator=None, y=None, **kw)

    def error(self, x):
        return float(x)


def test_validation_waits_out_the_initial_plateau():
    val = ScalarValidation(patience=3, horizon=2.0)
    # flat (round-off wobble) for a long time: nothing learned yet, never a reason to stop
    flat = [1.0, 1.0 + 1e-12, 1.0 - 1e-13, 1.0 + 1e-12, 1.0, 1.0, 1.0 + 1e-12, 1.0]
    assert not any(val.check(it, float(it), err, None) for it, err in enumerate(flat, 1))
    # once the error has fallen and then stopped improving long enough, it stops
    # (3 checks without improvement and at least twice the best time)
    later = {100.0: 0.5, 101.0: 0.4, 150.0: 0.45, 180.0: 0.46, 190.0: 0.47, 210.0: 0.48}
    stops = [val.check(i, clock, err, None) for i, (clock, err) in enumerate(later.items(), 9)]
    assert val.best_time == 101.0
    assert stops == [False, False, False, False, False, True]


def test_record_is_check_with_its_error_given():
    """Validation.record (the error computed by the caller, as a compiled solver does) makes
    the same curve, best and stops as check; a state passed as None is never kept (the
    caller knows the error is no new best)."""
    errors = [1.0, 0.5, 0.4, 0.45, 0.46, 0.47, 0.48]
    a, b = ScalarValidation(patience=3), ScalarValidation(patience=3)
    stops_a = [a.check(i, float(i), err, ("state", i)) for i, err in enumerate(errors, 1)]
    stops_b = [b.record(i, float(i), err, ("state", i) if err < b.best_error else None)
               for i, err in enumerate(errors, 1)]
    assert stops_a == stops_b and stops_a[-1]
    assert a.curve == b.curve and a.best_state == b.best_state == ("state", 3)


def test_path_control_budget_only_tightens():
    assert PathControl(max_iter=50).apply(StoppingRule(max_iter=100)).max_iter == 50
    assert PathControl(max_iter=500).apply(StoppingRule(max_iter=100)).max_iter == 100


def _creeping(val, n):
    """Fall from 1 to 0.1 by t=10, then creep down by 1e-6 per check; True once it stops."""
    for it in range(1, n + 1):
        err = 1.0 if it < 10 else 0.1 - 1e-6 * it
        if val.check(it, float(it), err, None):
            return it
    return None


def test_min_improvement_stops_a_creeping_path_but_keeps_its_best():
    # every creep counts as an improvement: followed to the end of the budget
    assert _creeping(ScalarValidation(patience=5, horizon=2.0), 1000) is None
    # creeps below 0.1% of the fall so far do not count: stopped 5 checks after the last real
    # gain (t=10) and past twice its time; the best iterate is still the lowest error seen
    val = ScalarValidation(patience=5, horizon=2.0, min_improvement=1e-3)
    assert _creeping(val, 1000) == 20
    assert val.best_time == 20.0


def test_finish_puts_the_end_of_a_path_on_the_curve():
    val = ScalarValidation(patience=3)
    for it, (clock, err) in enumerate([(1.0, 1.0), (2.0, 0.5), (4.0, 0.3)], 1):
        val.check(it, clock, err, None)
    # the path converged at t=5, between two checks: its last (best) point is recorded ...
    val.finish(4, 5.0, 1e-9, "end")
    assert val.curve[-1] == (4, 5.0, 1e-9)
    assert val.best_time == 5.0 and val.best_state == "end"
    # ... once: a path that ended on a check adds nothing
    val.finish(4, 5.0, 1e-9, "end")
    assert len(val.curve) == 4


def test_batch_monitor_gives_each_problem_what_monitor_gives():
    """BatchMonitor: the reasons and stop iterations of one Monitor per problem, for problems
    that stop on different rules (residual, discrepancy, stagnation, budget, end time)."""
    from overparam.stopping import BatchMonitor, Monitor

    rule = StoppingRule(max_iter=60, tol=1e-3, stagnation_tol=1e-3, patience=5,
                        discrepancy=0.06, max_flow_time=40.0)
    t = np.arange(61.0)
    losses = np.array([np.exp(-0.3 * t),  # converged (tol * y_norm = 0.1) at 16
                       0.01 + np.exp(-t),  # stagnates at 17
                       1.0 - 0.001 * t,  # reaches the end time (clock 1.04 t) at 39
                       0.0025 + np.exp(-t),  # discrepancy at 7
                       1.0 - 0.001 * t])  # budget
    y_norm = np.array([100.0, 1.0, 1.0, 1.0, 1.0])
    clocks = np.vstack([t, t, 1.04 * t, 0.1 * t, 0.1 * t])
    expected = []
    for b in range(5):
        monitor = Monitor(rule, y_norm[b])
        for k in range(61):
            reason = monitor.update(k, losses[b, k], np.sqrt(losses[b, k]), clocks[b, k])
            if reason is not None:
                expected.append((k, reason))
                break
    batch = BatchMonitor(rule, y_norm, losses[:, 0])
    got, ids = {}, np.arange(5)
    for k in range(61):
        running = np.array([b for b in ids if b not in got])
        if running.size == 0:
            break
        reasons = batch.update(running, np.full(running.size, k), losses[running, k],
                               np.sqrt(losses[running, k]), clocks[running, k])
        for b, reason in zip(running, reasons or [None] * running.size, strict=True):
            if reason is not None:
                got[int(b)] = (k, reason)
    assert [got[b] for b in range(5)] == expected
    assert [reason for _, reason in expected] == [
        StopReason.CONVERGED, StopReason.STAGNATED, StopReason.END_OF_TIME,
        StopReason.DISCREPANCY, StopReason.MAX_ITER]
    assert batch.is_divergent(ids, np.array([np.nan, 1e9, 1.0, np.inf, 2.0])) == [
        True, True, False, True, False]


def test_grid_times_are_the_check_times_of_due():
    """The dual flow checks at the grid times themselves (Validation.grid_times), the loop
    once at the iteration past them (Validation.due): the same grid t0 ratio^k."""
    grid, loop = Validation(None, None, ratio=2.0), Validation(None, None, ratio=2.0)
    assert grid.grid_times(0.0) == [] and not loop.due(1, 0.0)  # t0 needs a positive clock
    clocks = [3.0, 5.0, 6.0, 6.5, 30.0, 40.0, 50.0]
    times = [grid.grid_times(c) for c in clocks]
    assert times == [[3.0], [], [6.0], [], [12.0, 24.0], [], [48.0]]
    assert [loop.due(i, c) for i, c in enumerate(clocks, 1)] == [bool(t) for t in times]
    # skipped times are passed by, not returned later
    skip = Validation(None, None, ratio=2.0)
    assert skip.grid_times(1.0) == [1.0] and skip.grid_times(5.0, skip=True) == []
    assert skip.grid_times(9.0) == [8.0]


def test_batch_and_scalar_divergence_are_one_rule():
    """BatchMonitor.is_divergent is Monitor.is_divergent per problem (one copy of the rule:
    StoppingRule.divergence_limit), zero and non-finite initial losses included."""
    from overparam.stopping import BatchMonitor, Monitor

    rule = StoppingRule(divergence_factor=10.0)
    initial = np.array([1.0, 1.0, 0.0, 2.0, np.inf, 1.0])
    loss = np.array([10.0, 10.5, 1e300, np.nan, 5.0, -np.inf])
    batch = BatchMonitor(rule, np.ones(6), initial)
    scalar = []
    for first, x in zip(initial, loss, strict=True):
        monitor = Monitor(rule, 1.0)
        monitor.initial_loss = first
        scalar.append(monitor.is_divergent(x))
    assert batch.is_divergent(np.arange(6), loss) == scalar == [
        False, True, False, True, False, True]
    assert rule.end_time is None and StoppingRule(max_flow_time=5.0).end_time < 5.0


def test_times_due_is_the_one_rule_of_when_to_check():
    """Validation.times_due: ``[clock]`` every ``every`` iterations or the ratio grid's times;
    due() is whether it is non-empty, and wait() never skips an iteration where one is due."""
    val = Validation(None, None, every=4)
    assert [val.times_due(i, 0.5 * i) for i in range(1, 9)] == [
        [], [], [], [2.0], [], [], [], [4.0]]
    assert val.times_due(8, 4.0, skip=True) == []
    for start in range(12):  # wait(n): the next wait(n) iterations have no check due
        skipped = range(start + 1, start + 1 + val.wait(start))
        assert not any(val.due(i, 1.0) for i in skipped) and val.due(skipped.stop, 1.0)
    grid, times = Validation(None, None, ratio=2.0), Validation(None, None, ratio=2.0)
    clocks = [3.0, 5.0, 6.0, 30.0]
    assert ([times.times_due(i, c) for i, c in enumerate(clocks)]
            == [grid.grid_times(c) for c in clocks] == [[3.0], [], [6.0], [12.0, 24.0]])
    assert times.wait(7) == 0  # a clock can pass a grid time in any step


def test_a_solvers_own_convergence_test_is_asked_after_the_discrepancy():
    """Monitor.update(converged=...): the solver's test replaces ``||r|| <= tol ||y||`` and,
    being costly, is asked only when the discrepancy does not already stop the run."""
    asked = []

    def converged():
        asked.append(True)
        return True

    rule = StoppingRule(tol=1e-3, discrepancy=0.1, stagnation_tol=0)
    assert rule.monitor(1.0).update(1, 1.0, 0.05, converged=converged) is StopReason.DISCREPANCY
    assert asked == []  # without the hook this residual would read CONVERGED only if <= 1e-3
    assert rule.monitor(1.0).update(1, 1.0, 0.5, converged=converged) is StopReason.CONVERGED
    assert asked == [True]
    assert rule.monitor(1.0).update(1, 1.0, 1e-4) is StopReason.CONVERGED  # the plain rule
    never = StoppingRule(tol=0, stagnation_tol=0)
    assert never.monitor(1.0).update(1, 1.0, 0.5, converged=converged) is None  # tol=0: off
    assert asked == [True]
