"""Stopping rules shared by every iterative solver.

A :class:`StoppingRule` is a small frozen description (what to watch); :meth:`StoppingRule.monitor`
makes the per-run state that watches it. Solvers call :meth:`Monitor.update` once per iteration.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from ._validation import check_positive

__all__ = [
    "BatchMonitor",
    "DegenerateInputWarning",
    "DivergenceError",
    "Monitor",
    "Oracle",
    "PathControl",
    "StopReason",
    "StoppingRule",
    "Validation",
]


class StopReason(StrEnum):
    """Why a solver stopped."""

    CONVERGED = "converged"  #: relative residual ||Ax - y|| / ||y|| below ``tol``
    STAGNATED = "stagnated"  #: loss decreased by less than ``stagnation_tol`` over ``patience``
    MAX_ITER = "max_iter"  #: iteration budget spent
    TIME_LIMIT = "time_limit"  #: wall-clock budget spent
    EARLY_STOPPED = "early_stopped"  #: held-out (validation) error stopped improving
    DISCREPANCY = "discrepancy"  #: residual reached the given noise level
    END_OF_TIME = "end_of_time"  #: a flow solver reached its final time
    CALLBACK = "callback"  #: a user callback asked to stop
    STATIONARY = "stationary"  #: zero gradient at a point that does not fit the data
    #: ``A x = y`` has no solution and every ``x`` fits equally well (all-zero ``A``): ``x = 0``
    INCONSISTENT = "inconsistent"
    #: the solver said "converged" but the estimate fails the estimator's optimality check
    #: (neither ``||A x - y|| <= tol ||y||`` nor a least-squares point); see
    #: ``RecoveryEstimator.fit``
    NOT_OPTIMAL = "not_optimal"


class DegenerateInputWarning(UserWarning):
    """The data determine no answer: e.g. an all-zero operator with nonzero measurements
    (every ``x`` fits equally badly; the estimators return ``x = 0``); or they were changed
    before solving: columns of ``A`` on very different scales are equilibrated (docs/scaling.md)."""


class DivergenceError(FloatingPointError):
    """Raised when iterates become non-finite or the loss explodes and cannot be recovered."""


@dataclass(frozen=True)
class StoppingRule:
    """When an iterative solver stops.

    Parameters
    ----------
    max_iter : int, default=100_000
        Iteration budget.
    tol : float, default=1e-6
        Stop when ``||A x - y|| <= tol * ||y||``. Zero disables.
    stagnation_tol : float, default=1e-9
        Stop when the loss decreased by less than this fraction over the last ``patience``
        iterations. Zero disables.
    patience : int, default=1000
        Window, in iterations, of the stagnation test (and, in validation checks, of the
        early-stopping test).
    divergence_factor : float, default=1e8
        The loss exceeding this multiple of its initial value counts as divergence.
    max_time : float or None, default=None
        Wall-clock budget in seconds.
    max_flow_time : float or None, default=None
        Stop when the solver's clock reaches this time (see ``SolverResult.info["time"]``):
        for gradient descent the time of the gradient flow of the mean loss
        ``1/(2m) ||A x - y||^2``, so that paths on different numbers of measurements are
        comparable. Used to refit up to a time chosen on held-out data.
    discrepancy : float or None, default=None
        Discrepancy principle: stop as soon as ``||A x - y|| <= discrepancy``.
    """

    max_iter: int = 100_000
    tol: float = 1e-6
    stagnation_tol: float = 1e-9
    patience: int = 1000
    divergence_factor: float = 1e8
    max_time: float | None = None
    max_flow_time: float | None = None
    discrepancy: float | None = None

    def __post_init__(self):
        check_positive(self.max_iter, "max_iter", integer=True)
        check_positive(self.tol, "tol", strict=False)
        check_positive(self.stagnation_tol, "stagnation_tol", strict=False)
        check_positive(self.patience, "patience", integer=True)
        check_positive(self.divergence_factor, "divergence_factor")
        for name in ("max_time", "max_flow_time", "discrepancy"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name, strict=name != "max_flow_time")

    def monitor(self, y_norm: float) -> Monitor:
        """Fresh per-run state for measurements of norm ``y_norm``."""
        return Monitor(self, y_norm)

    @property
    def end_time(self) -> float | None:
        """The clock time from which a run has reached ``max_flow_time`` (None: no end): a
        relative ``1e-12`` short of it, so that a clock summed from steps that land on it
        counts as there."""
        return None if self.max_flow_time is None else self.max_flow_time * (1 - 1e-12)

    def divergence_limit(self, initial_loss: float | None) -> float:
        """The loss above which a run that started at ``initial_loss`` has diverged:
        ``divergence_factor`` times it (``inf`` when it is not positive, e.g. zero)."""
        if initial_loss is not None and initial_loss > 0:
            return self.divergence_factor * initial_loss
        return math.inf


# The rules of Monitor.update, in their order, shared with BatchMonitor.update.
def _diverged(loss: float, limit: float) -> bool:
    """Non-finite, or above the divergence limit."""
    return not (math.isfinite(loss) and loss <= limit)


def _fit_or_end_reason(rule: StoppingRule, y_norm: float, residual_norm: float,
                       clock: float | None, converged=None) -> StopReason | None:
    """The first rules: the residual fits (``tol``, discrepancy) or the clock reached its end.

    ``converged()``, where given, is a solver's own test of ``tol`` in place of
    ``residual_norm <= tol y_norm``; being costly, it comes after the discrepancy test."""
    if converged is None and rule.tol > 0 and residual_norm <= rule.tol * y_norm:
        return StopReason.CONVERGED
    if rule.discrepancy is not None and residual_norm <= rule.discrepancy:
        return StopReason.DISCREPANCY
    if converged is not None and rule.tol > 0 and converged():
        return StopReason.CONVERGED
    end = rule.end_time
    if end is not None and clock is not None and clock >= end:
        return StopReason.END_OF_TIME
    return None


def _budget_reason(rule: StoppingRule, stagnated: bool, iteration: int,
                   timed_out: bool) -> StopReason | None:
    """The last rules: stagnation, then the iteration and wall-clock budgets."""
    if stagnated:
        return StopReason.STAGNATED
    if iteration >= rule.max_iter:
        return StopReason.MAX_ITER
    if timed_out:
        return StopReason.TIME_LIMIT
    return None


@dataclass
class Monitor:
    """Per-run state of a :class:`StoppingRule`."""

    rule: StoppingRule
    y_norm: float
    start: float = field(default_factory=time.perf_counter)
    initial_loss: float | None = None
    _loss_window: deque = field(default_factory=deque)

    def is_divergent(self, loss: float) -> bool:
        """Whether ``loss`` is non-finite or exploded relative to the initial loss."""
        return _diverged(loss, self.rule.divergence_limit(self.initial_loss))

    def update(self, iteration: int, loss: float, residual_norm: float,
               clock: float | None = None, converged=None) -> StopReason | None:
        """Record iteration ``iteration`` (count done) at solver time ``clock``; stop or not.

        ``converged``, optional, is a solver's own test of ``tol`` (a callable, asked only
        when the cheaper tests before it do not stop), e.g. the dual flow's least-squares
        optimality for inconsistent data."""
        rule = self.rule
        if self.initial_loss is None:
            self.initial_loss = loss
        if self.is_divergent(loss):
            raise DivergenceError(
                f"loss became {loss:.3e} at iteration {iteration} (initial {self.initial_loss:.3e})"
            )
        reason = _fit_or_end_reason(rule, self.y_norm, residual_norm, clock, converged)
        if reason is not None:
            return reason
        stagnated = False
        if rule.stagnation_tol > 0:
            self._loss_window.append(loss)
            if len(self._loss_window) > rule.patience:
                old = self._loss_window.popleft()
                stagnated = old - loss <= rule.stagnation_tol * abs(old)
        return _budget_reason(rule, stagnated, iteration, rule.max_time is not None and (
            time.perf_counter() - self.start > rule.max_time))

    @property
    def elapsed(self) -> float:
        """Seconds since the monitor was made."""
        return time.perf_counter() - self.start


class BatchMonitor:
    """:class:`Monitor` for a batch of problems along a leading axis.

    The same rules in the same order as :meth:`Monitor.update`, each problem with its own
    iteration count, loss window and clock. A solver passes the problems still running by
    their indices ``ids`` in the batch. The tests run on arrays; only for a problem that
    stops is its reason worked out one rule after another.

    A batch of at most ``small_batch`` problems runs the tests on Python floats instead
    (:meth:`_update_small`): the same operations on the same doubles, without numpy's cost
    per call, which dominates on a few entries.

    Parameters
    ----------
    rule : StoppingRule
    y_norm : ndarray of shape (B,)
        Norm of each problem's measurements.
    initial_loss : ndarray of shape (B,)
        Each problem's loss at the start (for :meth:`is_divergent`).
    """

    #: batches up to this size take the scalar path of :meth:`update`
    small_batch = 8

    def __init__(self, rule: StoppingRule, y_norm, initial_loss):
        import numpy as np

        self.rule = rule
        self.start = time.perf_counter()
        self.y_norm = np.asarray(y_norm, dtype=float)
        self._loss_limit = [rule.divergence_limit(x)
                            for x in np.asarray(initial_loss, dtype=float).tolist()]
        self._lowest_limit = min(self._loss_limit, default=math.inf)
        # residual norm at or below which a problem stops (converged or discrepancy)
        self._res_stop = None
        if rule.tol > 0 or rule.discrepancy is not None:
            self._res_stop = np.maximum(rule.tol * self.y_norm if rule.tol > 0 else -np.inf,
                                        -np.inf if rule.discrepancy is None else rule.discrepancy)
        self._end = rule.end_time
        # ring buffer of each problem's last patience + 1 losses, slot iteration % (patience + 1);
        # slot 0 holds iteration 0's loss, the initial one (both paths: nothing unwritten read)
        self._slots = rule.patience + 1
        initial = np.broadcast_to(np.asarray(initial_loss, dtype=float), self.y_norm.shape)
        self._window = None
        if rule.stagnation_tol > 0:
            self._window = np.zeros((self._slots, self.y_norm.size))
            self._window[0] = initial
        self._small = self.y_norm.size <= self.small_batch
        if self._small:  # the scalar path's copies: Python floats, one window per problem
            self._res_stop_list = None if self._res_stop is None else self._res_stop.tolist()
            self._window_rows = (None if self._window is None
                                 else self._window.T.tolist())

    def compiled_state(self):
        """``(limits, residual stops, loss window)`` as arrays over the batch, for a compiled
        loop that runs the tests of :meth:`update` itself and writes the window that
        :meth:`update` reads (from here on the monitor takes the array path: the window of the
        scalar path is not kept). ``-inf`` where no residual stop; the window is None
        without a stagnation test."""
        import numpy as np

        if self._small and self._window is not None:  # carry the scalar path's window over
            self._window[:] = np.array(self._window_rows, dtype=float).T
        self._small = False
        res_stop = (np.full(self.y_norm.size, -np.inf) if self._res_stop is None
                    else self._res_stop)
        return np.array(self._loss_limit, dtype=float), res_stop, self._window

    def is_divergent(self, ids, loss) -> list[bool]:
        """:meth:`Monitor.is_divergent` of each problem ``ids[j]`` at ``loss[j]``."""
        limits = self._loss_limit
        return [_diverged(x, limits[i]) for i, x in zip(ids.tolist(), loss.tolist(), strict=True)]

    def divergent(self, ids, loss):
        """:meth:`is_divergent` as an array of bool, or None where no entry is. Where every
        entry is finite and within every problem's limit (the usual case) the answer is None
        from the extremes alone (on Python floats for a small batch); otherwise the rule
        entry by entry (:meth:`is_divergent`)."""
        import numpy as np

        lowest = self._lowest_limit
        if loss.size <= self.small_batch:
            if all(-math.inf < x < math.inf and x <= lowest for x in loss.tolist()):
                return None
        else:
            low, high = np.minimum.reduce(loss), np.maximum.reduce(loss)  # NaN propagates
            if -math.inf < low and high < math.inf and high <= lowest:
                return None
        return np.array(self.is_divergent(ids, loss), dtype=bool)

    def update(self, ids, iterations, loss, residual_norm, clock,
               still_learning=None) -> list[StopReason | None] | None:
        """Record the problems ``ids`` after their iteration ``iterations`` (counts done).

        Parameters
        ----------
        ids, iterations : ndarray of int
        loss, residual_norm, clock : ndarray
        still_learning : callable, optional
            ``still_learning(j)``: whether problem ``ids[j]``, whose loss stagnated, is still
            learning by another measure (a solver's own test), so that it goes on.

        Returns
        -------
        list or None
            The stop reason (or None) of each problem, in the order of ``ids``; None when no
            problem stops.
        """
        import numpy as np

        if self._small:
            return self._update_small(ids, iterations, loss, residual_norm, clock,
                                      still_learning)
        rule = self.rule
        flags = None if self._res_stop is None else residual_norm <= self._res_stop[ids]
        if self._end is not None:
            flags = _or(flags, clock >= self._end)
        flat = None
        most = max(iterations.tolist())
        if self._window is not None:
            self._window[iterations % self._slots, ids] = loss
            if most >= rule.patience:
                old_k = iterations - rule.patience
                old = self._window[old_k % self._slots, ids]
                flat = (old_k >= 0) & (old - loss <= rule.stagnation_tol * np.abs(old))
                flags = _or(flags, flat)
        if most >= rule.max_iter:
            flags = _or(flags, iterations >= rule.max_iter)
        timed_out = rule.max_time is not None and time.perf_counter() - self.start > rule.max_time
        if timed_out:
            flags = np.ones(ids.size, dtype=bool)
        if flags is None or not flags.any():
            return None
        reasons = [None] * ids.size
        for j in np.flatnonzero(flags).tolist():  # the scalar rules, in Monitor's order
            reasons[j] = _fit_or_end_reason(
                rule, self.y_norm[int(ids[j])], float(residual_norm[j]), clock[j],
            ) or _budget_reason(
                rule, bool(flat is not None and flat[j]
                           and not (still_learning is not None and still_learning(j))),
                iterations[j], timed_out)
        return reasons

    def _update_small(self, ids, iterations, loss, residual_norm, clock, still_learning):
        """:meth:`update` on Python floats, problem by problem: the same tests (each a single
        IEEE operation or comparison, so the same answers) without numpy's cost per call."""
        rule = self.rule
        res_stop, end, rows = self._res_stop_list, self._end, self._window_rows
        patience, slots, tol = rule.patience, self._slots, rule.stagnation_tol
        max_iter = rule.max_iter
        timed_out = rule.max_time is not None and time.perf_counter() - self.start > rule.max_time
        ids, iterations, loss = ids.tolist(), iterations.tolist(), loss.tolist()
        residual_norm = residual_norm.tolist()
        clock = clock.tolist() if hasattr(clock, "tolist") else [clock] * len(ids)
        reasons = None
        for j, i in enumerate(ids):
            k, x = iterations[j], loss[j]
            flat = False
            if rows is not None:
                window = rows[i]
                window[k % slots] = x
                if k >= patience:
                    old = window[(k - patience) % slots]
                    flat = old - x <= tol * abs(old)
            if not (timed_out or flat or k >= max_iter
                    or (res_stop is not None and residual_norm[j] <= res_stop[i])
                    or (end is not None and clock[j] >= end)):
                continue
            if reasons is None:
                reasons = [None] * len(ids)
            reasons[j] = _fit_or_end_reason(
                rule, float(self.y_norm[i]), residual_norm[j], clock[j],
            ) or _budget_reason(
                rule, flat and not (still_learning is not None and still_learning(j)), k,
                timed_out)
        return reasons


def _or(flags, more):
    return more if flags is None else flags | more


@dataclass
class Validation:
    """Early stopping on held-out measurements.

    The solver evaluates the held-out error ``||A_val x - y_val||^2 / m_val`` at the iterations
    where :meth:`due` says so (every ``every`` iterations, or on a geometric grid of solver
    times when ``ratio`` is given), keeps the iterate with the smallest value and the solver
    time at which it occurred (``best_time``), and stops once ``patience`` checks in a row
    brought no improvement and the solver time has passed ``horizon`` times the best time (so
    that a slow start, common from a small init, is not mistaken for the minimum).
    ``patience=None`` follows the whole path.

    Parameters
    ----------
    operator : Operator
        The held-out measurement operator.
    y : ndarray
        The held-out measurements.
    every : int, default=10
        Check every ``every`` iterations (when ``ratio`` is None).
    patience : int or None, default=50
    horizon : float, default=2.0
    ratio : float or None, default=None
        Check instead at the first iterations past the solver times ``t0 ratio^k``
        (``t0`` the time at the first call of :meth:`due`): for paths whose time scale spans
        decades (small initializations), where evenly spaced checks with a patience stop at
        early local minima of the held-out error. Must be > 1.
    """

    operator: object
    y: object
    every: int = 10
    patience: int | None = 50
    horizon: float = 2.0
    ratio: float | None = None
    #: the held-out error must first fall by this fraction of its first value before the
    #: path may be stopped (see :meth:`check`)
    min_drop: float = 0.01
    #: an improvement of the held-out error smaller than this fraction of its fall so far
    #: (first value minus best) does not restart the patience nor move the horizon: a path
    #: that only creeps down (the slow convergence of a larger init on noiseless data) is
    #: followed ``horizon`` times past its last real improvement, not to the end of the budget.
    #: The best iterate is still the one with the smallest error. 0 counts every improvement.
    min_improvement: float = 0.0
    _last_gain_time: float = 0.0
    best_error: float = math.inf
    best_iteration: int = 0
    best_time: float = 0.0
    best_state: object = None
    _since_best: int = 0
    _next_check: float | None = None
    curve: list = field(default_factory=list)

    def __post_init__(self):
        if self.ratio is not None and not self.ratio > 1:
            raise ValueError(f"ratio must be > 1 or None, got {self.ratio}")

    def times_due(self, iteration: int, clock: float, *, skip: bool = False) -> list[float]:
        """The clock times at which to :meth:`check` after iteration ``iteration`` (ending at
        ``clock``): the one rule of when held-out errors are checked, for every solver.

        With ``ratio=None``: ``[clock]`` every ``every`` iterations, else ``[]``. With a ratio:
        the grid times ``t0 ratio^k`` reached by ``clock`` and not returned before
        (:meth:`grid_times`; the first call with a positive ``clock`` sets ``t0``). A solver that
        can evaluate its path between iterations (the dual flow's dense output) checks at these
        times themselves; the others check once, at ``clock`` (:meth:`due`). ``skip=True``
        passes the times by without a check (e.g. on a path's initial plateau).
        """
        if self.ratio is None:
            return [clock] if iteration % self.every == 0 and not skip else []
        return self.grid_times(clock, skip=skip)

    def due(self, iteration: int, clock: float) -> bool:
        """Whether the solver should :meth:`check` once after iteration ``iteration`` (time
        ``clock``): some time of :meth:`times_due` was reached (grid times passed within one
        iteration give a single check)."""
        return bool(self.times_due(iteration, clock))

    def wait(self, iteration: int) -> int:
        """How many more iterations (each adding at most one to the count) can pass after
        iteration ``iteration`` with no check due: ``every - 1`` right after a check on the
        iteration grid, 0 on a ratio grid (a clock can jump past a grid time in any step).
        Lets a batched loop skip the per-problem question in most iterations."""
        return (-iteration - 1) % self.every if self.ratio is None else 0

    def grid_times(self, clock: float, *, skip: bool = False) -> list[float]:
        """The grid times ``t0 ratio^k`` (``ratio`` must be set) reached by ``clock`` and not
        returned before, in increasing order; the first call with a positive ``clock`` sets
        ``t0 = clock``.

        A solver that can evaluate its path between iterations (the dual flow's dense output)
        checks at these times themselves; :meth:`due` checks once at the iteration past them.
        ``skip=True`` passes the times by without returning them (no check there).
        """
        if self._next_check is None:
            if not clock > 0:
                return []
            self._next_check = clock
        times = []
        while clock >= self._next_check * (1 - 1e-12):
            times.append(self._next_check)
            self._next_check *= self.ratio
        return [] if skip else times

    def error(self, x) -> float:
        """Mean squared held-out residual at ``x``."""
        return self.prediction_error(self.operator.forward(x))

    def prediction_error(self, prediction) -> float:
        """Mean squared held-out residual of ``prediction`` (of the held-out measurements)."""
        import numpy as np

        r = prediction - self.y
        return float(np.sum(r * r) / max(np.size(self.y), 1))

    def check(self, iteration: int, clock: float, x, state) -> bool:
        """Record the held-out error at ``x`` (solver time ``clock``); True means stop."""
        return self.record(iteration, clock, self.error(x), state)

    def record(self, iteration: int, clock: float, err: float, state) -> bool:
        """:meth:`check` with the held-out error ``err`` computed by the caller (a compiled
        solver computes it in its own loop). ``state`` is kept only where ``err`` is a new
        best (below ``best_error``): a caller may pass None otherwise. True means stop."""
        self.curve.append((iteration, clock, err))
        first = self.curve[0][2]
        gain = self.best_error - err
        if gain > 0 and (not math.isfinite(self.best_error)
                         or gain > self.min_improvement * (first - err)):
            self._since_best, self._last_gain_time = 0, clock
        else:
            self._since_best += 1
        if err < self.best_error:
            self.best_error, self.best_iteration, self.best_state = err, iteration, state
            self.best_time = clock
        # Never stop on the initial plateau of a small init, before anything has been learned:
        # there the held-out error only wobbles at round-off level around its first value.
        learned = self.best_error <= (1 - self.min_drop) * first
        return (self.patience is not None and self._since_best >= self.patience
                and clock >= self.horizon * self._last_gain_time and learned)

    def finish(self, iteration: int, clock: float, x, state) -> None:
        """Record the end of a path that stopped on its own (converged, budget, end time).

        Checks fall due on a grid (:meth:`due`), and a path that converges between two grid
        points would otherwise hide its last point, on noiseless data the best one: the
        held-out curve would end on the plateau before it, and a rise there of the size of
        the integrator's error would read as overfitting. Records the final point unless the
        last check was already at ``clock``; never asks to stop.
        """
        if self.curve and self.curve[-1][1] >= clock * (1 - 1e-12):
            return
        self.check(iteration, clock, x, state)


class Oracle(Validation):
    """Stop at the iterate closest to a known truth: the best stopping time in hindsight.

    Not usable in practice (it needs the signal); benchmarks use it as the yardstick that a
    data-driven stopping rule is judged against. Pass as ``PathControl(validation=Oracle(x))``.
    """

    def __init__(self, truth, *, every: int = 10, patience: int | None = 50,
                 horizon: float = 2.0, ratio: float | None = None):
        super().__init__(operator=None, y=None, every=every, patience=patience, horizon=horizon,
                         ratio=ratio)
        self.truth = truth

    def error(self, x) -> float:
        import numpy as np

        return float(np.sum((np.asarray(x) - self.truth) ** 2))


@dataclass(frozen=True)
class PathControl:
    """How far an estimator's solver follows its path; set by ``RecoveryEstimator.fit``.

    Parameters
    ----------
    validation : Validation, optional
        Early stopping on held-out measurements.
    stop_time : float, optional
        Stop at this solver time (``StoppingRule.max_flow_time``).
    discrepancy : float, optional
        Stop once the residual norm falls to this value.
    max_iter : int, optional
        A tighter iteration budget than the solver's own.
    """

    validation: Validation | None = None
    stop_time: float | None = None
    discrepancy: float | None = None
    max_iter: int | None = None

    @property
    def stops_early(self) -> bool:
        """Whether the run ends at a point on the path (held-out best, stop time or
        discrepancy) rather than at the solver's own limit; a budget alone does not count."""
        return (self.validation is not None or self.stop_time is not None
                or self.discrepancy is not None)

    def apply(self, rule: StoppingRule) -> StoppingRule:
        """``rule`` with this control's stop time, discrepancy and budget filled in."""
        from dataclasses import replace

        changes = {}
        if self.stop_time is not None:
            changes["max_flow_time"] = self.stop_time
        if self.discrepancy is not None:
            changes["discrepancy"] = self.discrepancy
        if self.max_iter is not None:
            changes["max_iter"] = max(1, min(rule.max_iter, int(self.max_iter)))
        return replace(rule, **changes) if changes else rule
