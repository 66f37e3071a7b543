"""The one iteration loop of the gradient-type solvers.

A solver supplies a small step object (:class:`SolverStep`): its starting point, one accepted
step, and a few extras for the report. :func:`run_loop` does everything else, the same way for
every solver: the stopping rule (:class:`~overparam.stopping.Monitor`), the solver clock,
when held-out validation is checked (:meth:`~overparam.stopping.Validation.due`) and the end of
the path recorded (:meth:`~overparam.stopping.Validation.finish`), the history, the callback,
the progress bar, divergence detection, the return of the best validated iterate, and the
:class:`~overparam.solvers.SolverResult`.

The split follows PyLops' ``Solver.setup / step / run / finalize`` and optax's
``init / update``: the step object is the solver's maths and nothing else.

One driver, :func:`drive`, runs every solver: it sequences a pass (step, stopping rule,
validation, history, callback, progress) over a *track*, the loop's state for one problem
(:class:`_Single`, here) or for a batch along a leading axis
(:func:`~overparam.solvers.batch_loop.run_batch_loop`: vectorised monitor, one validation per
problem, stopped problems dropped). The tracks hold the counters in the form that suits them
(Python scalars for one problem, arrays for a batch); the order of the duties is the driver's
alone (see docs/DEVELOPING.md, "The solver loop").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._progress import progress_bar
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult

__all__ = ["Iterate", "SolverStep", "close_validation", "drive", "private_validation", "run_loop"]

#: Stop reasons that may end a run before its first step: the start already fits ``y``.
_STOP_AT_START = (StopReason.CONVERGED, StopReason.DISCREPANCY)


@dataclass
class Iterate:
    """One point of a solver's path.

    Attributes
    ----------
    params : tuple of ndarray
        The solver's parameters (returned as ``SolverResult.params``).
    x : ndarray
        The signal at ``params`` (the estimate).
    loss : float
        The solver's loss at ``params`` (watched by the stopping rule).
    residual_norm : float
        ``||A x - y||`` (read by the tolerance and the discrepancy principle).
    dt : float, default=0.0
        How far the step that produced this iterate advanced the solver clock.
    cache : object, optional
        Whatever the step wants to reuse in the next step (e.g. the residual).
    """

    params: tuple
    x: np.ndarray
    loss: float
    residual_norm: float
    dt: float = 0.0
    cache: Any = None


class SolverStep(Protocol):
    """What a solver gives :func:`run_loop`.

    Attributes
    ----------
    name : str
        Label of the progress bar.
    clock : str
        What the clock measures, reported as ``info["clock"]``: ``"flow_time"`` or
        ``"iterations"`` (then every step has ``dt = 1``).
    """

    name: str
    clock: str

    def init(self) -> Iterate:
        """The starting point."""

    def step(self, current: Iterate, *, time_left: float,
             diverged: Callable[[float], bool]) -> Iterate | StopReason:
        """One accepted step from ``current``, or the reason no step is possible.

        ``time_left`` is the clock time to ``StoppingRule.max_flow_time`` (``inf`` when none):
        a step that can shorten itself lands on it. ``diverged(loss)`` tells whether a trial
        loss is non-finite or exploded (a step may retry with a smaller step size, or raise
        :class:`~overparam.stopping.DivergenceError`).
        """

    def info(self) -> dict:
        """Solver-specific extras for ``SolverResult.info`` (final step size, ...)."""


def private_validation(validation: Validation | None) -> Validation | None:
    """A copy of ``validation`` that the run may fill without touching the caller's object.

    Shallow: the held-out operator and data are shared, the curve is a new list (the only
    state that :meth:`~overparam.stopping.Validation.check` changes in place).
    """
    if validation is None:
        return None
    own = copy.copy(validation)
    own.curve = list(validation.curve)
    return own


def close_validation(validation: Validation, reason, iteration: int, clock: float, x, state,
                     info: dict):
    """End a validated run: the path's end on the curve, the curve and best point in ``info``.

    Unless held-out validation stopped the run, the end of the path (``x`` at ``clock``,
    with ``state``) is recorded too (:meth:`~overparam.stopping.Validation.finish`).
    ``info`` gets ``validation_curve`` (an ``(n, 3)`` array of ``(iteration, clock, error)``)
    and, where a check was made, ``best_iteration``, ``best_time`` and ``validation_error``.
    Every solver ends its held-out record here (:func:`run_loop`, the dual flow).

    Returns
    -------
    object or None
        The state of the best validated point, None when no check was made.
    """
    if reason != StopReason.EARLY_STOPPED:  # the end of the path is on the curve too
        validation.finish(iteration, clock, x, state)
    info["validation_curve"] = np.asarray(validation.curve, dtype=float).reshape(-1, 3)
    if validation.best_state is None:
        return None
    info.update(best_iteration=validation.best_iteration, best_time=validation.best_time,
                validation_error=validation.best_error)
    return validation.best_state


def run_loop(step: SolverStep, y_norm: float, *, stopping: StoppingRule | None = None,
             history: History | None = None, validation: Validation | None = None,
             callback=None, progress: bool = False) -> SolverResult:
    """Run ``step`` from its starting point until the stopping rule, validation or callback
    ends the path; return the result.

    Parameters
    ----------
    step : SolverStep
    y_norm : float
        ``||y||``, the scale of the tolerance ``stopping.tol``.
    stopping : StoppingRule, optional
        Bounds the run: it ends at ``stopping.max_iter`` iterations at the latest.
    history : History, optional
        Filled in place every ``history.every`` iterations and at the last one.
    validation : Validation, optional
        Held-out early stopping, checked where ``validation.due(iteration, clock)``; the end
        of a path that stopped on its own is recorded too. The caller's object is not changed:
        the curve ``(iteration, clock, error)`` is ``info["validation_curve"]``, and the best
        iterate is returned with ``info["best_iteration"]``, ``info["best_time"]`` and
        ``info["validation_error"]``.
    callback : callable, optional
        ``callback(iteration, params, x)`` after each step; True stops the run.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    SolverResult
        ``info`` holds the step's :meth:`~SolverStep.info`, ``final_loss`` (of the last
        iterate, also when the best validated one is returned), ``time`` (the clock at the
        end) and ``clock``.

    Raises
    ------
    DivergenceError
        Non-finite or exploding loss, or a non-finite estimate at the end.
    """
    stopping = stopping or StoppingRule()
    return drive(_Single(step, y_norm, stopping, validation), stopping, history=history,
                 callback=callback, progress=progress)


def drive(track, stopping: StoppingRule, *, history: History | None = None, callback=None,
          progress: bool = False):
    """The loop of every solver: passes over ``track`` until it stops; its result.

    A pass is one trial step (``track.advance()``, False when nothing moved), then, in this
    order, the stopping rule (``stop_tests``), held-out validation (``validate``), the history
    (where ``history_due``: on its period and at the last iteration), the callback (True stops
    every problem: ``stop_all``) and the progress bar. ``track.result(history)`` ends the
    run: the estimate checked finite, each validation closed (:func:`close_validation`) and
    its best iterate returned.

    Bounded: each pass moves some problem one accepted step towards ``stopping.max_iter``,
    where its monitor stops it, or rejects a step (a step policy's shrinking ends in
    :class:`~overparam.stopping.DivergenceError`); a step that cannot move ends its problem
    with a reason.
    """
    bar = progress_bar(progress, total=stopping.max_iter, desc=track.step.name)
    with ExitStack() as scope:
        scope.callback(bar.close)
        track.enter(scope)
        if history is not None:
            track.record(history)
        while track.running():
            if not track.advance():
                continue
            track.stop_tests()
            track.validate()
            if history is not None and track.history_due(history):
                track.record(history)
            if callback is not None and track.call(callback):
                track.stop_all(StopReason.CALLBACK)
            if not bar.disable:
                bar.update(track.progress() - bar.n)
    return track.result(history)


class _Single:
    """The loop's state for one problem: the current :class:`Iterate`, its count and clock,
    the monitor, the private validation and the stop reason."""

    def __init__(self, step: SolverStep, y_norm: float, stopping: StoppingRule,
                 validation: Validation | None):
        self.step = step
        self.validation = private_validation(validation)
        self.monitor = stopping.monitor(float(y_norm))
        self.end = math.inf if stopping.max_flow_time is None else stopping.max_flow_time
        self.current = step.init()
        self.iteration, self.clock = 0, 0.0
        reason = self.monitor.update(0, self.current.loss, self.current.residual_norm)
        self.reason = reason if reason in _STOP_AT_START else None

    def enter(self, scope: ExitStack) -> None:
        """Nothing to set up (floating-point warnings stay as the caller set them)."""

    def running(self) -> bool:
        return self.reason is None

    def advance(self) -> bool:
        """One step; False (with the step's reason) when none is possible."""
        outcome = self.step.step(self.current, time_left=self.end - self.clock,
                                 diverged=self.monitor.is_divergent)
        if isinstance(outcome, StopReason):  # no step possible (e.g. a critical point)
            self.reason = outcome
            return False
        self.current, self.iteration, self.clock = (outcome, self.iteration + 1,
                                                    self.clock + outcome.dt)
        return True

    def stop_tests(self) -> None:
        current = self.current
        self.reason = self.monitor.update(self.iteration, current.loss, current.residual_norm,
                                          self.clock)

    def validate(self) -> None:
        validation = self.validation
        if validation is not None and validation.due(self.iteration, self.clock):
            if validation.check(self.iteration, self.clock, self.current.x, self.current):
                self.reason = StopReason.EARLY_STOPPED

    def history_due(self, history: History) -> bool:
        return history.due(self.iteration) or self.reason is not None

    def record(self, history: History) -> None:
        current = self.current
        elapsed = self.monitor.elapsed if self.iteration else 0.0
        history.record(self.iteration, elapsed, current.loss, current.params, current.x)

    def call(self, callback) -> bool:
        return bool(callback(self.iteration, self.current.params, self.current.x))

    def stop_all(self, reason: StopReason) -> None:
        self.reason = reason

    def progress(self) -> int:
        return self.iteration

    def result(self, history: History | None) -> SolverResult:
        """Check the estimate, close the validation curve, return the best iterate."""
        current, iteration, clock = self.current, self.iteration, self.clock
        check_finite(current.x, iteration)
        info = self.step.info()
        info.update(final_loss=current.loss, time=clock, clock=self.step.clock)
        if self.validation is not None:
            best = close_validation(self.validation, self.reason, iteration, clock, current.x,
                                    current, info)
            current = current if best is None else best
        return SolverResult(coef=current.x, params=current.params, n_iter=iteration,
                            wall_time=self.monitor.elapsed, stop_reason=self.reason,
                            history=history, info=info)


def check_finite(x, iteration: int) -> None:
    """Raise :class:`~overparam.stopping.DivergenceError` unless the estimate ``x`` is finite
    (the monitor guards the loss; this the estimate)."""
    if not np.all(np.isfinite(x)):
        raise DivergenceError(f"non-finite estimate after {iteration} iterations")
