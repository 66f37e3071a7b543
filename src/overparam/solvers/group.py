"""Gradient descent with weight normalization on the grouped network (Algorithms 1 and 2).

Paper: Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023).
No library implements these updates, so they are written here by hand.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_positive
from ..parameterizations.group import GroupHadamard
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult

__all__ = ["initial_group_params", "weight_normalized_gd"]

_ALGORITHMS = ("alg1", "alg2")


def initial_group_params(param: GroupHadamard, operator, y, init_scale: float,
                         direction: str = "correlation", random_state=None):
    """``u(0) = init_scale`` and a unit-norm direction ``v_l(0)`` per group.

    ``direction="correlation"`` points ``v_l(0)`` along ``X_l^T y`` (the paper's Lemma 3:
    one gradient step from zero); ``"uniform"``, ``"random"`` and ``"zero"`` are as in
    :class:`~overparam.parameterizations.GroupHadamard`. The norm of ``v_l(0)`` follows
    ``param.direction_scale``.
    """
    if direction == "correlation":
        return param.init_from_data(init_scale, operator.adjoint(np.asarray(y, float)))
    probe = GroupHadamard(param.labels, direction=direction,
                          direction_scale=param.direction_scale)
    return probe.init(init_scale, random_state)


def weight_normalized_gd(
    param: GroupHadamard,
    operator,
    y,
    *,
    algorithm: str = "alg2",
    init_scale: float = 1e-6,
    init_params=None,
    direction: str = "correlation",
    step_u: float = 1e-3,
    step_v: float = 1e-3,
    switch_tol: float = 1e-3,
    switch_eps: float = 1e-12,
    on_divergence: str = "raise",
    stopping: StoppingRule | None = None,
    random_state=None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Algorithm 1 or 2 of the group-sparsity paper on the loss ``(1/2n)||X w - y||^2``.

    One iteration, with ``g = X^T (y - X w) / n`` the negative gradient in ``w``:

    1. direction step and normalization, per group ``l``:
       ``v_l <- normalize(v_l - eta_l * grad_v) = normalize(v_l + eta_l u_l^2 g_l)``.
       With the paper's ``eta_l = 1/u_l^4`` this is computed as ``normalize(u_l^2 v_l + g_l)``
       (same direction, multiplied by ``u_l^2 > 0``), which cannot overflow when ``u_l`` is
       tiny;
    2. magnitude step at the new direction: ``u_l <- u_l + step_u * 2 u_l <v_l, g_l(v_new)>``.

    Algorithm 1 keeps ``eta_l = 1/u_l^4``. Algorithm 2 switches, once, to the constant
    ``eta_l = step_v`` at the first iteration where the largest relative change of the
    magnitudes ``max_l |u_l(t+1) - u_l(t)| / |u_l(t) + switch_eps|`` falls below ``switch_tol``
    (the paper's practical criterion; the paper gives no value for ``tau``).

    Parameters
    ----------
    param : GroupHadamard
        The groups.
    operator : Operator
        Design ``X`` (``n`` rows).
    y : ndarray of shape (n,)
    algorithm : {"alg1", "alg2"}, default="alg2"
    init_scale : float, default=1e-6
        ``u(0) = alpha``.
    init_params : tuple (u, v), optional
        Explicit start (each ``v_l`` is normalized first).
    direction : {"correlation", "uniform", "random", "zero"}, default="correlation"
        Initial direction (see :func:`initial_group_params`); with ``eta = 1/u^4`` the first
        step replaces it by ``X_l^T y`` anyway, as the paper notes any unit vector works.
    step_u : float, default=1e-3
        ``gamma``, the step on the magnitudes (paper: ``gamma <= 1/(20 max_l ||w_l*||)``).
    step_v : float, default=1e-3
        ``eta``, the constant direction step of Algorithm 2 after the switch.
    switch_tol, switch_eps : float, default=1e-3, 1e-12
        ``tau`` and ``epsilon`` of the switching criterion of Algorithm 2.
    on_divergence : {"raise", "halve"}, default="raise"
        On a non-finite or exploding loss raise :class:`DivergenceError`, or halve ``step_u``
        (and ``step_v``) and redo the iteration.
    stopping : StoppingRule, optional
        ``max_flow_time`` is read as an iteration count (this solver's clock).
    random_state : None, int or Generator
        Seeds ``direction="random"``.
    history : History, optional
        Records ``iteration, loss, error`` and ``history.quantities(params, x)``.
    validation : Validation, optional
        Held-out early stopping; the best iterate is returned.
    callback : callable, optional
        ``callback(iteration, params, x)``; True stops.
    progress : bool, default=False

    Returns
    -------
    SolverResult
        ``info`` holds ``clock="iterations"``, ``time`` (iterations done), the
        ``switch_iteration`` of Algorithm 2 (None if it never switched or for Algorithm 1),
        final steps and the number of step halvings.
    """
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    if on_divergence not in ("raise", "halve"):
        raise ValueError(f"on_divergence must be 'raise' or 'halve', got {on_divergence!r}")
    for value, name in ((step_u, "step_u"), (step_v, "step_v"), (switch_tol, "switch_tol")):
        check_positive(value, name)
    check_positive(switch_eps, "switch_eps", strict=False)
    if operator.shape[1] != param.n_features:
        raise ValueError(f"the design has {operator.shape[1]} columns but the groups cover "
                         f"{param.n_features} features")
    stopping = stopping or StoppingRule()
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    labels = param.labels
    if init_params is not None:
        u, v = (np.array(p, dtype=float) for p in init_params)
        if u.shape != (param.n_groups,) or v.shape != (param.n_features,):
            raise ValueError(f"init_params must have shapes ({param.n_groups},) and "
                             f"({param.n_features},), got {u.shape} and {v.shape}")
    else:
        check_positive(init_scale, "init_scale")
        u, v = initial_group_params(param, operator, y, init_scale, direction, random_state)
    uniform = param.normalize(np.ones(param.n_features))
    v = param.normalize(v, uniform)

    def residual_and_corr(u_, v_):
        x_ = u_[labels] ** 2 * v_
        r_ = y - operator.forward(x_)
        return x_, r_, operator.adjoint(r_) / n

    monitor = stopping.monitor(float(np.linalg.norm(y)))
    x, r, g = residual_and_corr(u, v)
    loss = 0.5 * float(r @ r) / n
    monitor.update(0, loss, float(np.linalg.norm(r)), 0.0)
    if history is not None:
        history.record(0, 0.0, loss, (u, v), x)
    gamma, eta = float(step_u), float(step_v)
    normalized_phase = True
    switch_iteration = None
    n_halvings = 0
    reason = StopReason.MAX_ITER
    it = 0
    bar = tqdm(total=stopping.max_iter, disable=not progress, desc=f"group {algorithm}",
               leave=False)
    try:
        while True:
            while True:  # one iteration; redone with smaller steps on divergence
                u2 = u[labels] ** 2
                z = u2 * v + g if normalized_phase else v + eta * u2 * g
                v_new = param.normalize(z, v)
                _, _, g_half = residual_and_corr(u, v_new)
                u_new = u + gamma * 2.0 * u * param.group_sum(v_new * g_half)
                x_new, r_new, g_new = residual_and_corr(u_new, v_new)
                loss_new = 0.5 * float(r_new @ r_new) / n
                if not (monitor.is_divergent(loss_new) or not np.all(np.isfinite(x_new))):
                    break
                if on_divergence == "raise":
                    raise DivergenceError(
                        f"weight-normalized gradient descent diverged at iteration {it + 1} "
                        f"(loss {loss_new:.3e}) with step_u={gamma:.3g}: use a smaller step_u or "
                        "on_divergence='halve'")
                gamma, eta = gamma / 2, eta / 2
                n_halvings += 1
                if gamma < 1e-300:
                    raise DivergenceError("step_u underflowed while halving after divergence")
            change = np.max(np.abs(u_new - u) / np.abs(u + switch_eps))
            u, v, x, r, g, loss = u_new, v_new, x_new, r_new, g_new, loss_new
            it += 1
            bar.update()
            if algorithm == "alg2" and normalized_phase and change < switch_tol:
                normalized_phase, switch_iteration = False, it
            reason = monitor.update(it, loss, float(np.linalg.norm(r)), float(it))
            if history is not None and (history.due(it) or reason is not None):
                history.record(it, monitor.elapsed, loss, (u, v), x)
            if validation is not None and it % validation.every == 0:
                if validation.check(it, float(it), x, (u, v)):
                    reason = StopReason.EARLY_STOPPED
            if callback is not None and callback(it, (u, v), x):
                reason = StopReason.CALLBACK
            if reason is not None:
                break
    finally:
        bar.close()
    info = {"clock": "iterations", "time": float(it), "algorithm": algorithm,
            "switch_iteration": switch_iteration, "step_u": gamma, "step_v": eta,
            "n_step_halvings": n_halvings, "final_loss": loss}
    params = (u, v)
    if validation is not None and validation.best_state is not None:
        params = validation.best_state
        x = param.signal(params)
        info.update(best_iteration=validation.best_iteration, best_time=validation.best_time,
                    validation_error=validation.best_error)
    return SolverResult(coef=x, params=params, n_iter=it, wall_time=monitor.elapsed,
                        stop_reason=reason, history=history, info=info)
