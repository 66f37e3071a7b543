"""The solver loop of :mod:`overparam.solvers.loop` for a batch of problems at once.

A batched solver (:func:`~overparam.solvers.ir_mmv`) runs ``B`` independent problems along a
leading axis: each has its own step, clock, stopping test, held-out validation and stop
reason, and a problem that has stopped costs nothing in later iterations. The step object
(:class:`BatchStep`) holds the maths and the working arrays of the problems still running;
:func:`run_batch_loop` does the rest as :func:`~overparam.solvers.loop.run_loop` does for one
problem: the stopping rule (the vectorised :class:`~overparam.stopping.BatchMonitor`), the
clocks, when validation is checked and how the held-out record ends
(:func:`~overparam.solvers.loop.close_validation`, the best iterate returned), the history
(a batch of one), the callback, the progress bar, the bound on iterations and the result.

For small problems numpy's per-call overhead, not arithmetic, dominates, so the loop keeps
the running problems compacted (copied only when one stops) and skips the validation checks
in iterations where none can fall due.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .._progress import progress_bar
from ..stopping import BatchMonitor, DivergenceError, StoppingRule, StopReason, Validation
from .loop import _STOP_AT_START, close_validation, private_validation
from .result import History, SolverResult

__all__ = ["BatchResult", "BatchStep", "run_batch_loop"]

_NO_CHECK = 2**62  # the check period of a problem with no validation


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
        exploded.
        """

    def params(self, rows) -> tuple:
        """The parameters of working rows ``rows`` (an index, a mask or a slice)."""

    def signal(self, rows) -> np.ndarray:
        """The signal of working rows ``rows``."""

    def staircase(self, j: int) -> bool:
        """Optional, for paths that learn in steps (components growing one at a time out of a
        small init): whether working row ``j`` is climbing (a component grew since its last
        held-out check). Called at every check."""

    def still_learning(self, rows, ids, n_iter):
        """None, or ``f(j)``: whether row ``rows[j]`` (problem ``ids[j]``), whose loss
        stagnated, still learns by the solver's own measure (the stopping rule then goes on)."""

    def keep(self, mask) -> None:
        """Drop the working rows where ``mask`` is False."""

    def publish(self, rows, dest) -> None:
        """Store the extras of working rows ``rows`` as those of problems ``dest``."""

    def info(self) -> dict:
        """Per-problem extras (arrays over the whole batch) for ``BatchResult.info``."""


@dataclass(eq=False)
class _Run:
    """The loop's side of a batched run: the working rows' counters and validations, and
    the whole batch's output."""

    ids: np.ndarray
    n_iter: np.ndarray
    clock: np.ndarray
    loss: np.ndarray
    validations: list  # of the working rows
    every: list  # check period of each working row (2^62 for none)
    all_validations: list  # whole batch
    reasons: list  # whole batch: StopReason once stopped
    out: dict  # whole batch: params, x, loss, clock, n_iter
    done: list = field(default_factory=list)  # working rows that just stopped
    check_wait: int = 0  # iterations in which no validation check can fall due

    def stop(self, j: int, reason: StopReason) -> None:
        """Working row ``j`` stops (retired at the start of the next iteration)."""
        self.reasons[int(self.ids[j])] = reason
        self.done.append(j)

    def stop_all(self, reason: StopReason) -> None:
        for j in range(self.ids.size):
            if self.reasons[int(self.ids[j])] is None:
                self.stop(j, reason)


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
        One per problem, checked every ``every`` accepted steps of that problem. The caller's
        objects are not changed (see :func:`~overparam.solvers.loop.run_loop`).
    history : History, optional
        For a batch of one; adds ``values["flow_time"]``.
    callback : callable, optional
        ``callback(iteration, params, x)`` with batched arrays (every problem's current
        state); True stops every problem.
    progress : bool, default=False
        Show a progress bar (accepted steps of the furthest problem).
    """
    start = time.perf_counter()
    stopping = stopping or StoppingRule()
    loss = step.init()
    B = loss.shape[0]
    copies = [private_validation(v) for v in (validations or [None] * B)]
    if history is not None and B != 1:
        raise ValueError("history is recorded for a single problem only")
    monitor = BatchMonitor(stopping, y_norm, loss)
    zeros = np.zeros(B, dtype=int)
    params = step.params(slice(None))
    out = {"params": tuple(np.empty_like(p) for p in params),
           "x": np.empty_like(step.signal(slice(None))), "loss": np.empty_like(loss),
           "clock": np.zeros(B), "n_iter": zeros.copy()}
    every = [_NO_CHECK if v is None else int(v.every) for v in copies]
    run = _Run(ids=np.arange(B), n_iter=zeros.copy(), clock=np.zeros(B), loss=loss,
               validations=list(copies), every=every, all_validations=copies,
               reasons=[None] * B, out=out, check_wait=_due(zeros.tolist(), every, [False] * B)[1])
    for j, reason in enumerate(monitor.update(run.ids, zeros, loss, np.sqrt(loss), run.clock)
                               or ()):
        if reason in _STOP_AT_START:
            run.stop(j, reason)
    if history is not None:
        _record(history, step, run, start)
    bar = progress_bar(progress, total=stopping.max_iter, desc=step.name)
    with ExitStack() as limits:
        limits.callback(bar.close)
        # Overflow and NaN in a trial step are expected (the step is then rejected), as is the
        # log of a dead row in a stagnation test; once here instead of in each iteration.
        limits.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
        # Bounded: each iteration either moves a problem one accepted step towards
        # stopping.max_iter, or rejects a step (a policy's shrinking ends in DivergenceError).
        while _retire_stopped(step, run):
            _iterate(step, run, monitor, history, start)
            if not bar.disable:
                bar.update(max(int(run.n_iter.max()) - bar.n, 0))
            if callback is not None:
                _publish(step, run, slice(None))
                out = run.out
                if callback(int(out["n_iter"].max()), out["params"], out["x"]):
                    run.stop_all(StopReason.CALLBACK)
    return _finish(step, run, start, history)


def _iterate(step, run: _Run, monitor: BatchMonitor, history, start) -> None:
    """One trial step of every running problem; the stopping rule, validation and history
    of those that moved."""
    end = monitor.rule.max_flow_time
    time_left = None if end is None else end - run.clock
    moved = step.step(time_left, lambda loss: monitor.is_divergent(run.ids, loss))
    if moved is None:
        return
    accepted, dt, run.loss = moved
    run.n_iter += accepted
    run.clock = run.clock + dt
    _stop_tests(step, run, monitor, accepted)
    _validate(step, run, accepted)
    if history is not None and accepted[0] and (history.due(run.n_iter[0])
                                                or run.reasons[0] is not None):
        _record(history, step, run, start)


def _stop_tests(step, run: _Run, monitor: BatchMonitor, accepted) -> None:
    """The stopping rule of the problems that just moved."""
    rows = None if all(accepted) else np.flatnonzero(accepted)
    ids, n_iter, loss, clock = ((run.ids, run.n_iter, run.loss, run.clock) if rows is None else
                                (run.ids[rows], run.n_iter[rows], run.loss[rows],
                                 run.clock[rows]))
    learning = step.still_learning(slice(None) if rows is None else rows, ids, n_iter)
    reasons = monitor.update(ids, n_iter, loss, np.sqrt(loss), clock, learning)
    for j, reason in enumerate(reasons or ()):
        if reason is not None:
            run.stop(j if rows is None else int(rows[j]), reason)


def _validate(step, run: _Run, accepted) -> None:
    """Held-out checks of the problems whose period of accepted steps just came round."""
    if run.check_wait:
        run.check_wait -= 1
        return
    due, run.check_wait = _due(run.n_iter.tolist(), run.every, accepted)
    staircase = getattr(step, "staircase", None)
    for j in due:
        state = tuple(p.copy() for p in step.params(j))
        validation, clock = run.validations[j], float(run.clock[j])
        stop = validation.check(int(run.n_iter[j]), clock, step.signal(j), state)
        # A flat held-out error still below its value a patience ago while a component
        # climbs is the wait for the next stair, not the minimum: a climb that only fits
        # noise raises the held-out error, however slowly. (staircase(j) is asked at every
        # check: it measures growth from one check to the next.)
        climbing = staircase is not None and staircase(j)
        if stop and not (climbing and _still_falling(validation)):
            run.stop(j, StopReason.EARLY_STOPPED)


def _still_falling(validation: Validation) -> bool:
    """Whether the last held-out error is below the one ``patience`` checks before it."""
    curve = validation.curve
    return len(curve) > validation.patience and curve[-1][2] < curve[-1 - validation.patience][2]


def _publish(step, run: _Run, rows) -> None:
    """Copy working rows ``rows`` to the whole-batch output."""
    dest, out = run.ids[rows], run.out
    for target, value in zip(out["params"], step.params(rows), strict=True):
        target[dest] = value
    out["x"][dest] = step.signal(rows)
    for key in ("loss", "clock", "n_iter"):
        out[key][dest] = getattr(run, key)[rows]
    step.publish(rows, dest)


def _retire_stopped(step, run: _Run) -> bool:
    """Move the problems that stopped to the output; whether any is still running."""
    if not run.done:
        return True
    gone = np.zeros(run.ids.size, dtype=bool)
    gone[run.done] = True
    _publish(step, run, gone)
    run.done = []
    if gone.all():
        return False
    keep = ~gone
    for key in ("ids", "n_iter", "clock", "loss"):
        setattr(run, key, getattr(run, key)[keep])
    step.keep(keep)
    kept = keep.tolist()
    run.validations = [v for v, k in zip(run.validations, kept, strict=True) if k]
    run.every = [p for p, k in zip(run.every, kept, strict=True) if k]
    return True


def _finish(step, run: _Run, start: float, history) -> BatchResult:
    """Each problem's last iterate, or its best held-out one."""
    out = run.out
    params, X = out["params"], out["x"]
    if not np.all(np.isfinite(X)):
        raise DivergenceError(f"non-finite estimate after {int(out['n_iter'].max())} "
                              "iterations")
    info = {"time": out["clock"].copy(), "clock": step.clock, **step.info(),
            "final_loss": out["loss"].copy()}
    validations = run.all_validations
    if any(v is not None for v in validations):
        curves, best_it = [], np.full(len(validations), -1)
        for b, val in enumerate(validations):
            if val is None:
                curves.append(None)
                continue
            own = {}
            best = close_validation(val, run.reasons[b], int(out["n_iter"][b]),
                                    float(out["clock"][b]), X[b].copy(),
                                    tuple(p[b].copy() for p in params), own)
            curves.append(own["validation_curve"])
            if best is not None:
                for target, value in zip(params, best, strict=True):
                    target[b] = value
                X[b] = step.parameterization.signal(best)
                best_it[b] = val.best_iteration
        info.update(best_iteration=best_it,
                    best_time=np.array([v.best_time if v else np.nan for v in validations]),
                    validation_error=np.array([v.best_error if v else np.nan
                                               for v in validations]),
                    validation_curve=curves)
    return BatchResult(coef=X, params=params, n_iter=out["n_iter"],
                       wall_time=time.perf_counter() - start, stop_reason=list(run.reasons),
                       info=info, history=history)


def _due(counts, periods, accepted):
    """The problems whose count of accepted steps has just reached a multiple of their period,
    and the number of loop iterations in which none can next (each accepts one step at most
    per iteration)."""
    due = [j for j, (n, p) in enumerate(zip(counts, periods, strict=True))
           if accepted[j] and n % p == 0]
    return due, min((-n - 1) % p for n, p in zip(counts, periods, strict=True))


def _record(history: History, step, run: _Run, start: float) -> None:
    iteration = run.n_iter[0]
    if history.iteration and history.iteration[-1] == iteration:
        return
    history.record(int(iteration), time.perf_counter() - start, float(run.loss[0]),
                   tuple(p.copy() for p in step.params(0)), step.signal(0).copy())
    history.values.setdefault("flow_time", []).append(float(run.clock[0]))
