"""Gradient descent on ``loss_weight/2 * ||A signal(params) - y||^2`` for any parameterization."""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from .._validation import check_positive, check_random_state
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult
from .steps import as_step_policy

__all__ = ["MAX_BACKTRACKS", "gradient_descent"]

#: Trial steps per iteration before giving up with ``DivergenceError``: enough for a policy to
#: halve from ``MAX_STEP`` (1e300) down to ``MIN_STEP`` (1e-300) once.
MAX_BACKTRACKS = 2100


def _sqnorm(arrays) -> float:
    return float(sum(np.vdot(a, a) for a in arrays))


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
        returned and the stop reason is ``EARLY_STOPPED`` when it stopped the run.
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
    stopping = stopping or StoppingRule()
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
    monitor = stopping.monitor(float(np.linalg.norm(y)))
    # Solver clock: time of the flow of the mean loss 1/(2m)||Ax - y||^2 (see StoppingRule).
    time_per_step = loss_weight * y.shape[0]
    clock = 0.0
    x = parameterization.signal(params)
    r = operator.forward(x) - y
    loss = 0.5 * loss_weight * float(np.vdot(r, r))
    reason = monitor.update(0, loss, float(np.linalg.norm(r)))
    if reason not in (StopReason.CONVERGED, StopReason.DISCREPANCY):
        reason = None  # only "already fits" ends a run before its first step
    if history is not None:
        history.record(0, 0.0, loss, params, x)
    eta = policy.start(1.0 / (loss_weight * operator.norm_estimate() ** 2 + 1e-300))
    n_rejected = 0
    bar = progress_bar(progress, total=stopping.max_iter, desc="gradient descent")
    it = 0
    try:
        while reason is None:
            grads = parameterization.vjp(params, loss_weight * operator.adjoint(r))
            gnorm2 = _sqnorm(grads)
            if gnorm2 == 0.0:  # a critical point: no step changes anything
                reason = StopReason.STATIONARY
                break
            eta = min(eta, policy.limit(params, grads))
            if stopping.max_flow_time is not None:  # land exactly on the requested time
                eta = min(eta, max(stopping.max_flow_time - clock, 0.0) / time_per_step)
            for _ in range(MAX_BACKTRACKS):
                trial = tuple(p - eta * g for p, g in zip(params, grads, strict=True))
                x_new = parameterization.signal(trial)
                r_new = operator.forward(x_new) - y
                loss_new = 0.5 * loss_weight * float(np.vdot(r_new, r_new))
                if policy.accept(eta, loss, loss_new, eta * gnorm2) and not monitor.is_divergent(
                        loss_new):
                    break
                n_rejected += 1
                eta = policy.next_after_reject(eta)
            else:
                raise DivergenceError(f"no acceptable step after {MAX_BACKTRACKS} trials at "
                                      f"iteration {it + 1} (last step {eta:.3g})")
            params, x, r, loss = trial, x_new, r_new, loss_new
            clock += eta * time_per_step
            eta = policy.next_after_accept(eta)
            it += 1
            bar.update()
            reason = monitor.update(it, loss, float(np.linalg.norm(r)), clock)
            if history is not None and (history.due(it) or reason is not None):
                history.record(it, monitor.elapsed, loss, params, x)
            if validation is not None and validation.due(it, clock):
                if validation.check(it, clock, x, params):
                    reason = StopReason.EARLY_STOPPED
            if callback is not None and callback(it, params, x):
                reason = StopReason.CALLBACK
    finally:
        bar.close()
    if not np.all(np.isfinite(x)):  # the monitor guards the loss; this guards the iterate itself
        raise DivergenceError(f"non-finite estimate after {it} iterations")
    info = {"step": eta, "n_rejected_steps": n_rejected, "final_loss": loss, "time": clock,
            "clock": "flow_time"}
    if validation is not None and reason != StopReason.EARLY_STOPPED:
        validation.finish(it, clock, x, params)  # the end of the path is on the curve too
    if validation is not None and validation.best_state is not None:
        params = validation.best_state
        x = parameterization.signal(params)
        info.update(best_iteration=validation.best_iteration, best_time=validation.best_time,
                    validation_error=validation.best_error)
    return SolverResult(coef=x, params=params, n_iter=it, wall_time=monitor.elapsed,
                        stop_reason=reason, history=history, info=info)
