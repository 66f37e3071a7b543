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

A batch of problems along a leading axis runs on the batched form of this loop,
:func:`~overparam.solvers.batch_loop.run_batch_loop` (vectorised monitor, one validation per
problem, stopped problems dropped; see docs/DEVELOPING.md, "The solver loop").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._progress import progress_bar
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult

__all__ = ["Iterate", "SolverStep", "close_validation", "private_validation", "run_loop"]

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
    validation = private_validation(validation)
    monitor = stopping.monitor(float(y_norm))
    current = step.init()
    reason = monitor.update(0, current.loss, current.residual_norm)
    if reason not in _STOP_AT_START:
        reason = None
    if history is not None:
        history.record(0, 0.0, current.loss, current.params, current.x)
    clock, iteration = 0.0, 0
    bar = progress_bar(progress, total=stopping.max_iter, desc=step.name)
    try:
        # Bounded: the monitor returns MAX_ITER at stopping.max_iter iterations.
        while reason is None:
            time_left = (math.inf if stopping.max_flow_time is None
                         else stopping.max_flow_time - clock)
            outcome = step.step(current, time_left=time_left, diverged=monitor.is_divergent)
            if isinstance(outcome, StopReason):  # no step possible (e.g. a critical point)
                reason = outcome
                break
            current, iteration, clock = outcome, iteration + 1, clock + outcome.dt
            bar.update()
            reason = _after_step(monitor, history, validation, callback, iteration, clock,
                                 current)
    finally:
        bar.close()
    return _result(step, current, iteration, clock, reason, monitor, history, validation)


def _after_step(monitor, history, validation, callback, iteration, clock, current):
    """The stopping rule, the history, validation and the callback after one step."""
    reason = monitor.update(iteration, current.loss, current.residual_norm, clock)
    if history is not None and (history.due(iteration) or reason is not None):
        history.record(iteration, monitor.elapsed, current.loss, current.params, current.x)
    if validation is not None and validation.due(iteration, clock):
        if validation.check(iteration, clock, current.x, current):
            reason = StopReason.EARLY_STOPPED
    if callback is not None and callback(iteration, current.params, current.x):
        reason = StopReason.CALLBACK
    return reason


def _result(step, current, iteration, clock, reason, monitor, history, validation):
    """Check the estimate, close the validation curve, return the best iterate."""
    if not np.all(np.isfinite(current.x)):  # the monitor guards the loss; this the estimate
        raise DivergenceError(f"non-finite estimate after {iteration} iterations")
    info = step.info()
    info.update(final_loss=current.loss, time=clock, clock=step.clock)
    if validation is not None:
        best = close_validation(validation, reason, iteration, clock, current.x, current, info)
        current = current if best is None else best
    return SolverResult(coef=current.x, params=current.params, n_iter=iteration,
                        wall_time=monitor.elapsed, stop_reason=reason, history=history,
                        info=info)
