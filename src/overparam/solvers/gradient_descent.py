"""Gradient descent on ``loss_weight/2 * ||A signal(params) - y||^2`` for any parameterization."""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_positive, check_random_state
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .loop import Iterate, run_loop
from .result import History, SolverResult
from .steps import as_step_policy

__all__ = ["MAX_BACKTRACKS", "GradientStep", "gradient_descent"]

#: Trial steps per iteration before giving up with ``DivergenceError``: enough for a policy to
#: halve from ``MAX_STEP`` (1e300) down to ``MIN_STEP`` (1e-300) once.
MAX_BACKTRACKS = 2100


def _sqnorm(arrays) -> float:
    return float(sum(np.vdot(a, a) for a in arrays))


class GradientStep:
    """One gradient step with a step policy: the :class:`~overparam.solvers.loop.SolverStep`
    of :func:`gradient_descent`.

    The clock is the time of the gradient flow of the mean loss ``1/(2m)||A x - y||^2``
    (see :class:`~overparam.stopping.StoppingRule`): a step ``eta`` advances it by
    ``eta * loss_weight * m``.
    """

    name = "gradient descent"
    clock = "flow_time"

    def __init__(self, parameterization, operator, y, params, policy, loss_weight):
        self.parameterization, self.operator, self.y = parameterization, operator, y
        self.params0, self.policy, self.loss_weight = params, policy, loss_weight
        self.time_per_step = loss_weight * y.shape[0]
        self.eta = math.nan
        self.n_rejected = 0
        self.iteration = 0

    def _evaluate(self, params, dt=0.0) -> Iterate:
        x = self.parameterization.signal(params)
        r = self.operator.forward(x) - self.y
        loss = 0.5 * self.loss_weight * float(np.vdot(r, r))
        return Iterate(params, x, loss, float(np.linalg.norm(r)), dt=dt, cache=r)

    def init(self) -> Iterate:
        """The start, and the policy's first trial step ``1 / (loss_weight ||A||^2)`` (the
        norm only where the policy reads it)."""
        start = self._evaluate(self.params0)
        guess = 1.0 / (self.loss_weight * self.operator.norm_estimate() ** 2 + 1e-300) \
            if self.policy.uses_guess() else None
        self.eta = self.policy.start(guess)
        return start

    def step(self, current, *, time_left, diverged):
        """Backtrack from the current step size until the policy accepts the new loss."""
        params, policy = current.params, self.policy
        grads = self.parameterization.vjp(params, self.loss_weight
                                          * self.operator.adjoint(current.cache))
        gnorm2 = _sqnorm(grads)
        if gnorm2 == 0.0:  # a critical point: no step changes anything
            return StopReason.STATIONARY
        eta = min(self.eta, policy.limit(params, grads))
        if math.isfinite(time_left):  # land exactly on the requested time
            eta = min(eta, max(time_left, 0.0) / self.time_per_step)
        for _ in range(MAX_BACKTRACKS):
            trial = self._evaluate(tuple(p - eta * g for p, g in zip(params, grads, strict=True)),
                                   dt=eta * self.time_per_step)
            if policy.accept(eta, current.loss, trial.loss, eta * gnorm2) and not diverged(
                    trial.loss):
                break
            self.n_rejected += 1
            eta = policy.next_after_reject(eta)
        else:
            raise DivergenceError(f"no acceptable step after {MAX_BACKTRACKS} trials at "
                                  f"iteration {self.iteration + 1} (last step {eta:.3g})")
        self.iteration += 1
        self.eta = policy.next_after_accept(eta)
        return trial

    def info(self) -> dict:
        return {"step": self.eta, "n_rejected_steps": self.n_rejected}


def gradient_descent(
    parameterization,
    operator,
    y,
    *,
    init_scale: float | None = None,
    init_params=None,
    step="adaptive",
    loss_weight: float = 1.0,
    stopping: StoppingRule | None = None,
    random_state=None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Minimize ``loss_weight/2 * ||A x - y||^2`` over the parameters of ``x = signal(params)``.

    Parameters
    ----------
    parameterization : Parameterization
    operator : Operator
    y : ndarray
        Measurements.
    init_scale : float, optional
        Passed to ``parameterization.init``; ignored when ``init_params`` is given.
    init_params : tuple of ndarray, optional
        Explicit starting point.
    step : "adaptive", float or StepPolicy, default="adaptive"
        Safe adaptive scalar step, or a constant step (paper-faithful). Each iteration the
        trial step is capped by the policy's ``limit(params, grads)`` (see
        :meth:`~overparam.solvers.StepPolicy.limit`), then clipped to land on
        ``stopping.max_flow_time``.
    loss_weight : float, default=1.0
        Multiplies the loss (``1/n`` gives the group paper's loss, ``2`` the MMV paper's).
    stopping : StoppingRule, optional
    random_state : None, int or Generator
        Seed for random initializations.
    history : History, optional
        Filled in place every ``history.every`` iterations.
    validation : Validation, optional
        Early stopping on held-out measurements, checked at the iterations where
        ``validation.due(iteration, clock)`` (every ``validation.every`` iterations, or on a
        geometric grid of clock times when ``validation.ratio`` is set); the best iterate is
        returned and the stop reason is ``EARLY_STOPPED`` when it stopped the run. The
        caller's object is not changed: see :func:`~overparam.solvers.loop.run_loop` for
        the ``info`` keys (``validation_curve``, ``best_iteration``, ``best_time``, ...).
    callback : callable, optional
        ``callback(iteration, params, x)``; returning True stops the run.
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    SolverResult
        ``stop_reason`` is ``STATIONARY`` when the gradient vanished at a point that does not
        fit ``y`` (a critical point such as a zero init of a factorization, or a least-squares
        point of an inconsistent system): no step can move it.

    Raises
    ------
    DivergenceError
        Non-finite or exploding loss, or no acceptable step after :data:`MAX_BACKTRACKS`
        trials in one iteration.
    """
    check_positive(loss_weight, "loss_weight")
    policy = as_step_policy(step)
    rng = check_random_state(random_state)
    if init_params is not None:
        params = tuple(np.array(p, dtype=float) for p in init_params)
    else:
        if init_scale is None:
            raise ValueError("give init_scale or init_params")
        params = parameterization.init(init_scale, rng)
    y = np.asarray(y, dtype=float)
    solver_step = GradientStep(parameterization, operator, y, params, policy, loss_weight)
    return run_loop(solver_step, float(np.linalg.norm(y)), stopping=stopping, history=history,
                    validation=validation, callback=callback, progress=progress)
