"""Gradient descent with weight normalization on the grouped network (Algorithms 1 and 2).

Paper: Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023).
No library implements these updates, so they are written here by hand.
"""

from __future__ import annotations

import math

import numpy as np

from .._progress import progress_bar
from .._validation import check_positive
from ..parameterizations.group import GroupHadamard
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult

__all__ = ["data_scaled_steps", "initial_group_params", "weight_normalized_gd"]

_ALGORITHMS = ("alg1", "alg2")
_LOSS_SCALES = ("half-mean", "authors")


def data_scaled_steps(param: GroupHadamard, operator, y,
                      step_u: float | None = None) -> tuple[float, float, float]:
    """``(step_u, step_v, switch_tol)`` scaled to the data: the ``"auto"`` values.

    With ``c = max_l ||X_l^T y|| / n`` (which estimates ``max_l ||w_l*||`` when ``X^T X / n``
    is near the identity), reached at group ``k``, and ``lam = ||X_k d||^2 / n`` the curvature
    of the loss along that group's correlation direction ``d = X_k^T y / ||X_k^T y||``:

    - ``step_u = 1 / (20 c)``: the paper's bound ``gamma <= 1/(20 max_l ||w_l*||)``. The
      largest group's magnitude then grows by the same factor per iteration whatever the
      scale of ``X`` and ``y``, so iteration counts (this solver's clock) are comparable
      between data sets, e.g. a held-out path and the refit on all measurements;
    - ``step_v = 4 step_u lam / c``: after the switch of Algorithm 2 the direction of that
      group (``u_k^4 ~ (c / lam)^2``) relaxes at the rate ``4 step_u c`` at which its
      magnitude grew;
    - ``switch_tol = step_u c / 3``: switch once every group's correlation ``<v_l, g_l>``
      has fallen below ``c / 6`` (``tau = gamma`` at ``c = 3``; the paper gives no ``tau``,
      the authors' notebooks use 0.1 and 0.03 at ``gamma`` 1e-3 and 0.01).

    All three are unchanged by rescaling ``X`` or ``y`` (in the units of the iterates).

    Parameters
    ----------
    param : GroupHadamard
    operator : Operator
        The design ``X``.
    y : ndarray of shape (n,)
    step_u : float, optional
        A given ``step_u``: ``step_v`` and ``switch_tol`` are then scaled to it instead.
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    correlation = operator.adjoint(y) / n
    norms = param.group_norms(correlation)
    k = int(np.argmax(norms))
    c = float(norms[k])
    if not c > 0:  # X^T y = 0: w = 0 is stationary and no step moves it; the paper's values
        value = 1e-3 if step_u is None else float(step_u)
        return value, value, value
    direction = np.where(param.labels == k, correlation / c, 0.0)
    lam = float(np.sum(operator.forward(direction) ** 2)) / n
    step_u = 1.0 / (20.0 * c) if step_u is None else float(step_u)
    return step_u, 4.0 * step_u * lam / c, step_u * c / 3.0


def stable_direction_step(param: GroupHadamard, operator, n: int) -> float:
    """``kappa = min(1, 1 / lam_max)`` for the normalized phase's direction update.

    Algorithm 1 updates the direction by ``v <- normalize(u^2 v + kappa X^T r / n)``, the
    paper's step ``1 / u^4`` when ``kappa = 1``: a unit gradient step on each group's
    ``w_l``, stable only while ``lam_max = max_l ||X_l||_2^2 / n`` stays below 2 (as for the
    paper's designs, ``X^T X / n`` near the identity). On a design scaled by 1.5 or more the
    iterates oscillate for ever (period 2) and a held-out stopping time picked on such a
    path returns a wrong answer, so the ``"auto"`` steps shrink ``kappa`` to ``1 / lam_max``.
    ``lam_max`` is exact for a design with at most 2**24 entries (per-group spectral norms),
    else bounded above by ``||X||_2^2 / n`` (smaller, still stable steps).
    """
    m, p = operator.shape
    if m * p <= 2**24:
        A = operator.to_dense()
        lam = max(float(np.linalg.norm(A[:, param.labels == k], 2)) ** 2
                  for k in range(param.n_groups))
    else:
        lam = float(operator.norm_estimate()) ** 2
    lam /= n
    return 1.0 if not lam > 1.0 else 1.0 / lam


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
    step_u: float | str = 1e-3,
    step_v: float | str = 1e-3,
    switch_tol: float | str = 1e-3,
    switch_eps: float = 1e-12,
    switch_at: int | None = None,
    loss_scale: str = "half-mean",
    on_divergence: str = "raise",
    stopping: StoppingRule | None = None,
    random_state=None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Algorithm 1 or 2 of the group-sparsity paper on the loss ``(1/2n)||X w - y||^2``.

    (``loss_scale="authors"``: on the authors' ``(1/n)||X w - y||^2`` with their update order,
    see below.)

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
    (the paper's practical criterion; the paper gives no value for ``tau``; the authors'
    notebooks use 0.1 for Fig. 3 and 0.03 for Fig. 4), or at the fixed iteration ``switch_at``
    (their SNR comparison, Fig. 12, switches at epoch 200).

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
    step_u : float or "auto", default=1e-3
        ``gamma``, the step on the magnitudes (paper: ``gamma <= 1/(20 max_l ||w_l*||)``);
        ``"auto"`` scales it to the data (see :func:`data_scaled_steps`).
    step_v : float or "auto", default=1e-3
        ``eta``, the constant direction step of Algorithm 2 after the switch (``"auto"``:
        scaled to the data and to ``step_u``).
    switch_tol : float or "auto", default=1e-3
        ``tau`` of the switching criterion of Algorithm 2 (``"auto"``: as ``step_v``).
    switch_eps : float, default=1e-12
        ``epsilon`` of the switching criterion.
    switch_at : int, optional
        Algorithm 2 switches after this many iterations instead of by ``switch_tol``.
    loss_scale : {"half-mean", "authors"}, default="half-mean"
        ``"half-mean"``: the paper's loss ``(1/2n)||X w - y||^2`` (its gradients, eq. in
        appendix B) and Algorithm 1 as printed: the ``u``-step at the new direction
        ``v(t+1)``. ``"authors"``: the authors' code (github.com/jiangyuan-li/
        Implicit-Group-Sparsity, ``src/group_model.py``): ``torch.nn.MSELoss``, i.e.
        ``(1/n)||X w - y||^2`` (every gradient doubled), and one ``loss.backward()`` per
        epoch, so the ``u``-step uses the gradient at the old ``v(t)``; the direction step
        after Algorithm 2's switch is ``v - step_v grad_v`` then normalized, as there.
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
        the ``switch_tol`` used, final steps and the number of step halvings.
    """
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    if loss_scale not in _LOSS_SCALES:
        raise ValueError(f"loss_scale must be one of {_LOSS_SCALES}, got {loss_scale!r}")
    if switch_at is not None:
        check_positive(switch_at, "switch_at", integer=True)
    if on_divergence not in ("raise", "halve"):
        raise ValueError(f"on_divergence must be 'raise' or 'halve', got {on_divergence!r}")
    steps = {"step_u": step_u, "step_v": step_v, "switch_tol": switch_tol}
    for name, value in steps.items():
        if not (isinstance(value, str) and value == "auto"):
            check_positive(value, name)
    check_positive(switch_eps, "switch_eps", strict=False)
    if operator.shape[1] != param.n_features:
        raise ValueError(f"the design has {operator.shape[1]} columns but the groups cover "
                         f"{param.n_features} features")
    stopping = stopping or StoppingRule()
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    labels = param.labels
    kappa = 1.0  # the paper's direction step, unless step_u is "auto" (see below)
    if isinstance(step_u, str):
        kappa = stable_direction_step(param, operator, n)
    if any(isinstance(v, str) for v in steps.values()):  # "auto": scaled to the data
        auto = data_scaled_steps(param, operator, y,
                                 None if isinstance(step_u, str) else step_u)
        step_u, step_v, switch_tol = (a if isinstance(v, str) else v
                                      for v, a in zip(steps.values(), auto, strict=True))
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

    inv_n = 1.0 / n

    def residual_and_corr(x_):
        r_ = y - operator.forward(x_)
        return r_, operator.adjoint(r_) * inv_n

    monitor = stopping.monitor(float(np.linalg.norm(y)))
    u2 = u[labels] ** 2
    x = u2 * v
    r, g = residual_and_corr(x)
    rr = float(r @ r)
    loss = 0.5 * rr * inv_n
    monitor.update(0, loss, math.sqrt(rr), 0.0)
    if history is not None:
        history.record(0, 0.0, loss, (u, v), x)
    gamma, eta = float(step_u), float(step_v)
    # the authors' MSELoss doubles every gradient; their u-step reads the old direction
    scale = 2.0 if loss_scale == "authors" else 1.0
    u_step_at_old_v = loss_scale == "authors"
    normalized_phase = True
    watch_switch = algorithm == "alg2"
    switch_iteration = None
    n_halvings = 0
    reason = StopReason.MAX_ITER
    it = 0
    bar = progress_bar(progress, total=stopping.max_iter, desc=f"group {algorithm}")
    # The loop body is the whole cost on small problems: two products with X and two with
    # X^T, plus per-group sums; nothing else per iteration that can be skipped is computed.
    try:
        while True:
            while True:  # one iteration; redone with smaller steps on divergence
                z = u2 * v + kappa * scale * g if normalized_phase else v + eta * scale * u2 * g
                v_new = param.normalize(z, v)
                if u_step_at_old_v:
                    drive = param.group_sum(v * g)
                else:
                    _, g_half = residual_and_corr(u2 * v_new)
                    drive = param.group_sum(v_new * g_half)
                u_new = u + gamma * 2.0 * scale * u * drive
                u2_new = u_new[labels] ** 2
                x_new = u2_new * v_new
                r_new, g_new = residual_and_corr(x_new)
                rr = float(r_new @ r_new)
                loss_new = 0.5 * rr * inv_n
                # A non-finite entry of u or v makes the loss non-finite: one test covers both.
                if not monitor.is_divergent(loss_new):
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
            if watch_switch:
                # the authors' first comparison is with u = 1 (their prev_u), never a switch
                base = np.ones_like(u) if u_step_at_old_v and it == 0 else u
                change = np.max(np.abs(u_new - base) / np.abs(base + switch_eps))
            u, v, u2, x, r, g, loss = u_new, v_new, u2_new, x_new, r_new, g_new, loss_new
            it += 1
            bar.update()
            if watch_switch and (change < switch_tol if switch_at is None
                                 else it >= switch_at):
                normalized_phase = watch_switch = False
                switch_iteration = it
            reason = monitor.update(it, loss, math.sqrt(rr), float(it))
            if history is not None and (history.due(it) or reason is not None):
                history.record(it, monitor.elapsed, loss, (u, v), x)
            if validation is not None and validation.due(it, float(it)):
                if validation.check(it, float(it), x, (u, v)):
                    reason = StopReason.EARLY_STOPPED
            if callback is not None and callback(it, (u, v), x):
                reason = StopReason.CALLBACK
            if reason is not None:
                break
    finally:
        bar.close()
    info = {"clock": "iterations", "time": float(it), "algorithm": algorithm,
            "switch_iteration": switch_iteration, "switch_tol": float(switch_tol),
            "loss_scale": loss_scale,
            "step_u": gamma, "step_v": eta, "direction_step": kappa,
            "n_step_halvings": n_halvings, "final_loss": loss}
    params = (u, v)
    if validation is not None and validation.best_state is not None:
        params = validation.best_state
        x = param.signal(params)
        info.update(best_iteration=validation.best_iteration, best_time=validation.best_time,
                    validation_error=validation.best_error)
    return SolverResult(coef=x, params=params, n_iter=it, wall_time=monitor.elapsed,
                        stop_reason=reason, history=history, info=info)
