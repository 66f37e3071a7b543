"""The solver loop of :mod:`overparam.solvers.loop` for a batch of problems at once.

A batched solver (:func:`~overparam.solvers.ir_mmv`) runs ``B`` independent problems along a
leading axis: each has its own step, clock, stopping test, held-out validation and stop
reason, and a problem that has stopped costs nothing in later iterations. The step object
(:class:`BatchStep`) holds the maths and the working arrays of the problems still running;
:func:`run_batch_loop` runs it on the one driver of every solver,
:func:`~overparam.solvers.loop.drive`, through :class:`_Batch`, the loop's state in array
form: the vectorised monitor (:class:`~overparam.stopping.BatchMonitor`), each problem's
count, clock and validation (checked by the one rule,
:meth:`~overparam.stopping.Validation.due`), and the whole batch's output.

For small problems numpy's per-call overhead, not arithmetic, dominates, so the track keeps
the running problems compacted (copied only when one stops) and skips the validation
questions in iterations where none can fall due (:meth:`~overparam.stopping.Validation.wait`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..operators import DenseOperator
from ..stopping import BatchMonitor, StoppingRule, StopReason, Validation
from .loop import _STOP_AT_START, check_finite, close_validation, drive, private_validation
from .result import History, SolverResult

__all__ = ["BatchResult", "BatchStep", "run_batch_loop"]

_NO_CHECK = 2**62  # iterations to wait for a check in a batch with no validation


@dataclass
class BatchResult:
    """The outcome of a batched solver run: one entry per problem along the leading axis.

    Attributes
    ----------
    coef : ndarray of shape (B, ...)
        Estimates (the best held-out iterate where a validation was given).
    params : tuple of ndarray
        The parameters, each with the leading batch axis.
    n_iter : ndarray of int, shape (B,)
        Accepted steps per problem.
    wall_time : float
        Seconds for the whole batch.
    stop_reason : list of StopReason
        Why each problem stopped.
    info : dict
        Per-problem arrays: ``time`` (the clock at the end), ``final_loss`` and the step's
        extras (e.g. ``step``, ``n_rejected_steps``); ``clock``; with validation
        ``best_iteration`` (-1 where none), ``best_time``, ``validation_error`` and
        ``validation_curve`` (a list of ``(n, 3)`` arrays, None where no validation).
    history : History or None
        Only for a batch of one.
    """

    coef: np.ndarray
    params: tuple
    n_iter: np.ndarray
    wall_time: float
    stop_reason: list
    info: dict = field(default_factory=dict)
    history: History | None = None

    def __len__(self) -> int:
        return self.coef.shape[0]

    def __getitem__(self, b: int) -> SolverResult:
        """Problem ``b`` as a :class:`SolverResult` (``wall_time`` is that of the batch)."""
        info = {k: (v[b] if isinstance(v, np.ndarray | list) else v)
                for k, v in self.info.items()}
        for k, v in info.items():
            if isinstance(v, np.generic):
                info[k] = v.item()
        return SolverResult(coef=self.coef[b], params=tuple(p[b] for p in self.params),
                            n_iter=int(self.n_iter[b]), wall_time=self.wall_time,
                            stop_reason=self.stop_reason[b],
                            history=self.history if len(self) == 1 else None, info=info)


class BatchStep(Protocol):
    """What a batched solver gives :func:`run_batch_loop`.

    The step holds the working rows: row ``j`` of its arrays is the ``j``-th problem still
    running (the loop drops the rows of problems that stop through :meth:`keep`).

    Attributes
    ----------
    name : str
        Label of the progress bar.
    clock : str
        What the clock measures (``info["clock"]``).
    parameterization : Parameterization
        Maps one problem's parameters to its signal (the best held-out iterate's).
    """

    name: str
    clock: str
    parameterization: object

    def init(self) -> np.ndarray:
        """The loss of each problem at its start."""

    def step(self, time_left, diverged) -> tuple | None:
        """One trial step of every working row; ``(accepted, dt, loss)`` (a list of bool, the
        clock advance and the loss of each row, unchanged where not accepted), or None when
        no row moved.

        ``time_left`` is each row's clock time to ``StoppingRule.max_flow_time`` (None when
        none); ``diverged(loss)`` tells, per row, whether a trial loss is non-finite or
        exploded (an array of bool, or None where no row did:
        :meth:`~overparam.stopping.BatchMonitor.divergent`).
        """

    def params(self, rows) -> tuple:
        """The parameters of working rows ``rows`` (an index, a mask or a slice)."""

    def signal(self, rows) -> np.ndarray:
        """The signal of working rows ``rows``."""

    def staircase(self, j: int) -> bool:
        """Optional, for paths that learn in steps (components growing one at a time out of a
        small init): whether working row ``j`` is climbing (a component grew since its last
        held-out check). Called at every check."""

    def held_out_check(self, j: int, matrix, y) -> tuple[float, bool]:
        """Optional: ``(validation.error(signal(j)), staircase(j))`` for a plain
        :class:`~overparam.stopping.Validation` on dense held-out rows ``matrix`` and
        measurements ``y`` (C-ordered, 2-D), computed by the step itself (a compiled step: one
        call instead of a dozen numpy ones); equal to rounding."""

    def still_learning(self, rows, ids, n_iter):
        """None, or ``f(j)``: whether row ``rows[j]`` (problem ``ids[j]``), whose loss
        stagnated, still learns by the solver's own measure (the stopping rule then goes on)."""

    def sync(self, rows) -> None:
        """Optional: bring working rows ``rows`` fully up to date before their state is
        output (a step that moves some components only now and then; held-out checks read
        the state as it is)."""

    def passes(self, n_iter, clock, monitor, *, n_max, max_flow_time, history_every):
        """Optional (a compiled step): up to ``n_max`` passes that move some row in one call,
        with the stopping tests of ``monitor`` run in it, ``n_iter`` and ``clock`` advanced in
        place; it returns after the first pass whose checks the loop must run (a stopping
        test that may fire, a history record due every ``history_every``) as ``(passes,
        accepted, may_stop)``, or None: this pass is one of :meth:`step` (a state the compiled
        passes do not cover). The loop then uses it instead of :meth:`step` (not with a
        callback: :class:`_Batch`)."""

    def keep(self, mask) -> None:
        """Drop the working rows where ``mask`` is False."""

    def publish(self, rows, dest) -> None:
        """Store the extras of working rows ``rows`` as those of problems ``dest``."""

    def info(self) -> dict:
        """Per-problem extras (arrays over the whole batch) for ``BatchResult.info``."""


def run_batch_loop(step: BatchStep, y_norm, *, stopping: StoppingRule | None = None,
                   validations: Sequence[Validation | None] | None = None,
                   history: History | None = None, callback=None,
                   progress: bool = False) -> BatchResult:
    """Run every problem of ``step`` until its stopping rule or validation (or the callback)
    ends it; return the batch's result.

    Parameters
    ----------
    step : BatchStep
    y_norm : ndarray of shape (B,)
        ``||y||`` of each problem, the scale of ``stopping.tol``.
    stopping : StoppingRule, optional
        Applied to each problem separately; ``max_iter`` counts its accepted steps.
    validations : sequence of Validation or None, optional
        One per problem, checked where :meth:`~overparam.stopping.Validation.due` says so,
        counting that problem's accepted steps. The caller's objects are not changed (see
        :func:`~overparam.solvers.loop.run_loop`).
    history : History, optional
        For a batch of one; adds ``values["flow_time"]``.
    callback : callable, optional
        ``callback(iteration, params, x)`` with batched arrays (every problem's current
        state) after each iteration in which some problem moved; True stops every problem.
    progress : bool, default=False
        Show a progress bar (accepted steps of the furthest problem).
    """
    stopping = stopping or StoppingRule()
    track = _Batch(step, y_norm, stopping, validations)
    if history is not None and track.ids.size != 1:
        raise ValueError("history is recorded for a single problem only")
    if callback is None and hasattr(step, "passes"):  # a compiled step runs several passes
        track.compiled = {"history_every": 0 if history is None else history.every}
    return drive(track, stopping, history=history, callback=callback, progress=progress)


class _Batch:
    """The loop's state for a batch (:func:`~overparam.solvers.loop.drive`): the working
    rows' counters and validations, and the whole batch's output.

    Row ``j`` of the counters is the ``j``-th problem still running (``ids[j]`` in the batch),
    as in the step's arrays; a problem that stops is retired at the start of the next pass.
    """

    def __init__(self, step: BatchStep, y_norm, stopping: StoppingRule, validations):
        self.start = time.perf_counter()
        self.step = step
        loss = step.init()
        B = loss.shape[0]
        self.all_validations = [private_validation(v) for v in (validations or [None] * B)]
        self.validations = list(self.all_validations)  # of the working rows
        self.monitor = BatchMonitor(stopping, y_norm, loss)
        self.end = stopping.max_flow_time
        self.ids, self.n_iter, self.clock, self.loss = (np.arange(B), np.zeros(B, dtype=int),
                                                        np.zeros(B), loss)
        self.accepted = [True] * B
        self.compiled = None  # set by run_batch_loop where the step runs several passes
        self.skip_stop_tests = False  # a compiled pass whose stopping tests found no stop
        params = step.params(slice(None))
        self.out = {"params": tuple(np.empty_like(p) for p in params),
                    "x": np.empty_like(step.signal(slice(None))), "loss": np.empty_like(loss),
                    "clock": np.zeros(B), "n_iter": np.zeros(B, dtype=int)}
        self.reasons = [None] * B  # whole batch: StopReason once stopped
        self.done = []  # working rows that just stopped
        self._compiled_checks = _compiled_checks(step, self.all_validations)
        self.check_wait = self._checks_due([False] * B)[1]
        for j, reason in enumerate(self.monitor.update(self.ids, self.n_iter, loss,
                                                       np.sqrt(loss), self.clock) or ()):
            if reason in _STOP_AT_START:
                self.stop(j, reason)

    def enter(self, scope: ExitStack) -> None:
        # Overflow and NaN in a trial step are expected (the step is then rejected), as is the
        # log of a dead row in a stagnation test; once here instead of in each iteration.
        scope.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))

    def stop(self, j: int, reason: StopReason) -> None:
        """Working row ``j`` stops (retired at the start of the next pass)."""
        self.reasons[int(self.ids[j])] = reason
        self.done.append(j)

    def stop_all(self, reason: StopReason) -> None:
        for j in range(self.ids.size):
            if self.reasons[int(self.ids[j])] is None:
                self.stop(j, reason)

    def running(self) -> bool:
        """Retire the problems that stopped (to the output); whether any is still running."""
        if not self.done:
            return True
        gone = np.zeros(self.ids.size, dtype=bool)
        gone[self.done] = True
        self._publish(gone)
        self.done = []
        if gone.all():
            return False
        keep = ~gone
        for key in ("ids", "n_iter", "clock", "loss"):
            setattr(self, key, getattr(self, key)[keep])
        self.step.keep(keep)
        self.validations = [v for v, k in zip(self.validations, keep.tolist(), strict=True) if k]
        return True

    def advance(self) -> bool:
        """One trial step of every working row; False when none was accepted.

        A compiled step (``step.passes``) runs instead several passes with the loop's tests
        compiled in, up to the first one after which a stopping test may fire, a held-out
        check or a history record may fall due: that pass is this one. Where it hands a pass
        back undone (None), the pass is one of :meth:`step`, tested by the loop."""
        if self.compiled is not None:
            out = self.step.passes(self.n_iter, self.clock, self.monitor,
                                   n_max=self.check_wait + 1, max_flow_time=self.end,
                                   **self.compiled)
            if out is not None:
                passes, self.accepted, may_stop = out
                self.check_wait -= passes - 1  # the passes in between had no check due
                self.loss = self.step.loss
                # the compiled tests found no stop (the wall clock is the loop's to read)
                self.skip_stop_tests = not may_stop and self.monitor.rule.max_time is None
                return True
            self.skip_stop_tests = False
        time_left = None if self.end is None else self.end - self.clock
        moved = self.step.step(time_left, lambda loss: self.monitor.divergent(self.ids, loss))
        if moved is None:
            return False
        self.accepted, dt, self.loss = moved
        if all(self.accepted):  # (the usual case: a scalar add, no list to convert)
            self.n_iter += 1
        else:
            self.n_iter += self.accepted
        self.clock = self.clock + dt
        return True

    def stop_tests(self) -> None:
        """The stopping rule of the rows that just moved."""
        if self.skip_stop_tests:
            return
        accepted = self.accepted
        rows = None if all(accepted) else np.flatnonzero(accepted)
        ids, n_iter, loss, clock = ((self.ids, self.n_iter, self.loss, self.clock)
                                    if rows is None else
                                    (self.ids[rows], self.n_iter[rows], self.loss[rows],
                                     self.clock[rows]))
        learning = self.step.still_learning(slice(None) if rows is None else rows, ids, n_iter)
        reasons = self.monitor.update(ids, n_iter, loss, np.sqrt(loss), clock, learning)
        for j, reason in enumerate(reasons or ()):
            if reason is not None:
                self.stop(j if rows is None else int(rows[j]), reason)

    def validate(self) -> None:
        """Held-out checks of the rows that moved and whose check is due."""
        if self.check_wait:
            self.check_wait -= 1
            return
        due, self.check_wait = self._checks_due(self.accepted)
        staircase = getattr(self.step, "staircase", None)
        for j in due:
            validation, clock = self.validations[j], float(self.clock[j])
            held_out = self._compiled_checks.get(id(validation))
            if held_out is None:
                state = tuple(p.copy() for p in self.step.params(j))
                stop = validation.check(int(self.n_iter[j]), clock, self.step.signal(j), state)
                climbing = staircase is not None and staircase(j)
            else:  # the same check, its arithmetic in one compiled call
                err, climbing = self.step.held_out_check(j, *held_out)
                # the state is kept only where it is the best so far: copied only then
                state = tuple(p.copy() for p in self.step.params(j)) \
                    if err < validation.best_error else None
                stop = validation.record(int(self.n_iter[j]), clock, err, state)
            # A flat held-out error still below its value a patience ago while a component
            # climbs is the wait for the next stair, not the minimum: a climb that only fits
            # noise raises the held-out error, however slowly. (The staircase is asked at
            # every check: it measures growth from one check to the next.)
            if stop and not (climbing and _still_falling(validation)):
                self.stop(j, StopReason.EARLY_STOPPED)

    def _checks_due(self, accepted):
        """The working rows that moved and whose validation is due
        (:meth:`~overparam.stopping.Validation.due`), and the number of passes in which none
        can next be (:meth:`~overparam.stopping.Validation.wait`)."""
        due, wait = [], _NO_CHECK
        for j, (n, v) in enumerate(zip(self.n_iter.tolist(), self.validations, strict=True)):
            if v is not None:
                if accepted[j] and v.due(n, float(self.clock[j])):
                    due.append(j)
                wait = min(wait, v.wait(n))
        return due, wait

    def history_due(self, history: History) -> bool:
        return bool(self.accepted[0]) and (history.due(int(self.n_iter[0]))
                                           or self.reasons[0] is not None)

    def record(self, history: History) -> None:
        iteration = int(self.n_iter[0])
        if history.iteration and history.iteration[-1] == iteration:
            return
        self._sync(0)
        history.record(iteration, time.perf_counter() - self.start, float(self.loss[0]),
                       tuple(p.copy() for p in self.step.params(0)), self.step.signal(0).copy())
        history.values.setdefault("flow_time", []).append(float(self.clock[0]))

    def call(self, callback) -> bool:
        self._publish(slice(None))
        out = self.out
        return bool(callback(int(out["n_iter"].max()), out["params"], out["x"]))

    def progress(self) -> int:
        return int(self.n_iter.max())

    def _publish(self, rows) -> None:
        """Copy working rows ``rows`` to the whole-batch output."""
        dest, out = self.ids[rows], self.out
        self._sync(rows)
        for target, value in zip(out["params"], self.step.params(rows), strict=True):
            target[dest] = value
        out["x"][dest] = self.step.signal(rows)
        for key in ("loss", "clock", "n_iter"):
            out[key][dest] = getattr(self, key)[rows]
        self.step.publish(rows, dest)

    def _sync(self, rows) -> None:
        sync = getattr(self.step, "sync", None)
        if sync is not None:
            sync(rows)

    def result(self, history: History | None) -> BatchResult:
        """Each problem's last iterate, or its best held-out one."""
        out = self.out
        check_finite(out["x"], int(out["n_iter"].max()))
        info = {"time": out["clock"].copy(), "clock": self.step.clock, **self.step.info(),
                "final_loss": out["loss"].copy()}
        if any(v is not None for v in self.all_validations):
            info.update(self._close_validations())
        return BatchResult(coef=out["x"], params=out["params"], n_iter=out["n_iter"],
                           wall_time=time.perf_counter() - self.start,
                           stop_reason=list(self.reasons), info=info, history=history)

    def _close_validations(self) -> dict:
        """Close each problem's held-out record; its best iterate into the output."""
        out, validations = self.out, self.all_validations
        params, X = out["params"], out["x"]
        curves, best_it = [], np.full(len(validations), -1)
        for b, val in enumerate(validations):
            if val is None:
                curves.append(None)
                continue
            own = {}
            best = close_validation(val, self.reasons[b], int(out["n_iter"][b]),
                                    float(out["clock"][b]), X[b].copy(),
                                    tuple(p[b].copy() for p in params), own)
            curves.append(own["validation_curve"])
            if best is not None:
                for target, value in zip(params, best, strict=True):
                    target[b] = value
                X[b] = self.step.parameterization.signal(best)
                best_it[b] = val.best_iteration
        return {"best_iteration": best_it,
                "best_time": np.array([v.best_time if v else np.nan for v in validations]),
                "validation_error": np.array([v.best_error if v else np.nan
                                              for v in validations]),
                "validation_curve": curves}


def _compiled_checks(step, validations) -> dict:
    """The held-out checks a compiled step runs itself (``step.held_out_check``): ``id`` of
    each validation that qualifies (a plain :class:`~overparam.stopping.Validation`, its own
    ``error``, on a dense matrix and 2-D measurements) -> its matrix and measurements as the
    kernel takes them (C-ordered floats)."""
    if not hasattr(step, "held_out_check"):
        return {}
    checks = {}
    for v in validations:
        if type(v) is Validation and type(v.operator) is DenseOperator and np.ndim(v.y) == 2:
            checks[id(v)] = (np.ascontiguousarray(v.operator.matrix, dtype=float),
                             np.ascontiguousarray(v.y, dtype=float))
    return checks


#: A fall of the held-out error over ``patience`` checks by less than this fraction of its
#: level is no fall: it is the creep of a converged path (its last digits), not the start of
#: the next stair.
_FALL_RTOL = 1e-6


def _still_falling(validation: Validation) -> bool:
    """Whether the last held-out error is below the one ``patience`` checks before it (by
    more than ``_FALL_RTOL`` of it)."""
    curve = validation.curve
    return (len(curve) > validation.patience
            and curve[-1][2] < curve[-1 - validation.patience][2] * (1.0 - _FALL_RTOL))
