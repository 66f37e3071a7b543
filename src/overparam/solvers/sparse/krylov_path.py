"""Matrix-free path of the Hadamard flow: implicit Euler on its dual, each step by Newton-CG.

:func:`~overparam.solvers.sparse.flow.hadamard_flow` follows the dual flow
``w' = y - A x(A^T w)`` with scipy's BDF and ``m x m`` Jacobians ``A D A^T``: it needs the
matrix. Here the path is followed by backward (implicit) Euler,
``w_{k+1} = w_k + h (y - A x(A^T w_{k+1}))``, i.e. ``w_{k+1}`` minimizes the strongly convex
``F(w) = Phi(w) + ||w - w_k||^2 / (2 h)``, solved by damped Newton whose systems
``(A D A^T + I / h) p = grad F`` go to conjugate gradients with the working-set preconditioner
of :mod:`~overparam.solvers.sparse.krylov_newton` (products ``A v``, ``A^T w`` and a few columns
only). Implicit Euler is stable at any step, so the step follows the path's own time scale:
it is chosen from the local error estimate (corrector minus the linear predictor, measured on
``x`` relative to ``||x||``, below ``path_rtol``) and grows geometrically along plateaus, where
the predictor is exact and a step costs one product. As ``h`` grows the steps become Newton
steps on ``Phi``: the path ends at the same limit as :func:`hadamard_newton_cg`.

The path is that of the flow to first order in the step (``path_rtol``); it is meant for
choosing a stopping time (validation, discrepancy) and for the point at that time, as the
loose-tolerance BDF path of the estimators is.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import brentq

from ..._validation import check_array, check_positive
from ...operators import as_operator
from ...stopping import DivergenceError, Monitor, StoppingRule, StopReason
from .._blas import blas_limit
from ..loop import close_validation
from ..result import SolverResult
from .flow import HadamardDualMap, _on_ratio_grid, checks_due
from .krylov_newton import (
    WorkingSetPreconditioner,
    _Columns,
    _first_trial,
    _newton_step,
    _Products,
    is_matrix,
)

__all__ = ["hadamard_path_cg", "prefers_matrix_free_path"]

#: Step-size control: growth at most _GROWTH per step, shrink at least to _SHRINK.
_GROWTH, _SHRINK, _SAFETY = 1.5, 0.2, 0.9
#: Newton on F stops at ||grad F|| <= _NEWTON_RTOL times the current velocity ||A x_k - y||.
_NEWTON_RTOL = 1e-2
_MAX_NEWTON = 30
_MAX_CG = 200
_CG_RTOL = 0.1
_MIN_STEP = 1e-14  # relative to the time: below this the path cannot be followed


def prefers_matrix_free_path(operator, depth: int) -> bool:
    """Whether the estimators follow the path with :func:`hadamard_path_cg` rather than the
    dense dual flow: at depth 2 for an underdetermined operator that is not a matrix (the
    flow would densify it). Depth ``L > 2`` stays on the flow (as the limit stays on the
    dense Newton: the working-set preconditioner does not fit its spread weights)."""
    op = as_operator(operator)
    m, n = op.shape
    return depth == 2 and m < n and len(op.input_shape) == 1 and not is_matrix(op)


class _ImplicitStep:
    """Solves ``min_w Phi(w) + ||w - w_k||^2 / (2 h)`` by damped Newton-CG."""

    def __init__(self, products, dmap, y, precond):
        self.A, self.dmap, self.y, self.precond = products, dmap, y, precond
        self.n_newton = 0

    def solve(self, w_k, h, w, s, target):
        """From ``(w, s = A^T w)``; returns ``(w, s, x, r)`` with ``r = A x - y`` or None
        (Newton stalled, or no descent: the caller shortens the step)."""
        A, dmap, y = self.A, self.dmap, self.y
        x = dmap.signal(s)
        r = A.forward(x) - y
        for _ in range(_MAX_NEWTON):
            dw = w - w_k
            g = r + dw / h
            if not np.all(np.isfinite(g)):
                return None
            if np.linalg.norm(g) <= target:
                return w, s, x, r
            self.n_newton += 1
            p, ds = _newton_step(A, dmap.derivative(s), g, self.precond, _CG_RTOL, _MAX_CG,
                                 shift=1.0 / h)
            decrement = float(g @ p)
            if not (np.isfinite(decrement) and decrement > 0):
                return None
            t, s_new = self._line_search(s, ds, p, dw, h, decrement)
            if t is None:
                return None
            w, s = w - t * p, s_new
            x = dmap.signal(s)
            r = A.forward(x) - y
        return None

    def _line_search(self, s, ds, p, dw, h, decrement):
        """Armijo on ``F`` along ``w - t p``: ``Phi``'s change summed per coordinate plus
        the exact change of the quadratic term."""
        dmap = self.dmap
        y_p, p_dw, p_p = float(self.y @ p), float(p @ dw), float(p @ p)
        old = dmap.factors(s)  # shared by the trials
        scale = dmap.potential(s, old) + float(dw @ dw) / (2 * h)
        t = _first_trial(dmap, s, ds)
        while t >= 1e-20:
            s_new = s - t * ds
            with np.errstate(over="ignore", invalid="ignore"):
                change = (dmap.potential_change(s, s_new, old) + t * y_p
                          + (t * t * p_p - 2 * t * p_dw) / (2 * h))
            slack = 10 * np.finfo(float).eps * (scale + abs(t * y_p))
            if np.isfinite(change) and change <= -1e-4 * t * decrement + slack:
                return t, s_new
            t *= 0.5
        return None, s


def hadamard_path_cg(operator, y, *, depth: int = 2, signed: bool = True,
                     init_scale: float = 1e-6, stopping: StoppingRule | None = None,
                     validation=None, validation_ratio: float = 1.05, path_rtol: float = 1e-2,
                     working_set: bool = True, blas_threads: int | None = 1) -> SolverResult:
    """The path of the Hadamard gradient flow, matrix-free (see the module docstring).

    Parameters
    ----------
    operator : Operator, ndarray, sparse matrix or LinearOperator
        Only ``forward``, ``adjoint`` and a few ``columns`` are used.
    y : ndarray of shape (m,)
    depth, signed, init_scale
        As :func:`~overparam.solvers.sparse.flow.hadamard_flow`.
    stopping : StoppingRule, optional
        ``tol`` (interpolation ``||A x - y|| <= tol ||y||``), ``max_iter`` (implicit steps
        plus Newton steps), ``max_time``, ``max_flow_time`` (exactly), ``discrepancy``
        (the crossing located on the linear interpolant between steps) and
        ``divergence_factor`` (after every accepted step) are honoured, by the rules of
        :class:`~overparam.stopping.Monitor`; the loss's stagnation is not a stop.
    validation : Validation, optional
        Checked at the clock times ``tau_0 r^k`` (``r = validation_ratio``) on the linear
        interpolant of ``A^T w`` between steps; the best point is returned and the curve is
        ``info["validation_curve"]`` (the caller's object is left as it was).
    validation_ratio : float, default=1.05
    path_rtol : float, default=1e-2
        Local error per step allowed on ``x``, relative to ``||x||``.
    working_set : bool, default=True
        Precondition CG with the working set of :class:`WorkingSetPreconditioner`.
    blas_threads : int or None, default=1

    Returns
    -------
    SolverResult
        ``info["time"]`` the clock ``t m`` of the mean-loss flow (as ``hadamard_flow``),
        ``info["solver"] = "newton-cg-path"``, ``info["n_steps"]`` (accepted implicit
        steps), ``info["n_rejected"]``, ``info["n_newton"]``, ``info["n_cg"]``,
        ``info["n_products"]``; ``n_iter`` implicit plus Newton steps.

    Raises
    ------
    DivergenceError
        If the step falls below ``1e-14`` times the time (the implicit steps keep failing), or
        an accepted step's loss is non-finite or above ``divergence_factor`` times the
        initial loss.
    """
    stopping = stopping or StoppingRule()
    check_positive(path_rtol, "path_rtol")
    if not validation_ratio > 1:
        raise ValueError(f"validation_ratio must be > 1, got {validation_ratio}")
    op = as_operator(operator)
    y = check_array(y, "y", ndim=1)
    if y.shape[0] != op.shape[0] or len(op.input_shape) != 1:
        raise ValueError(f"need a vector-input operator with {y.shape[0]} rows, got {op.shape}")
    with blas_limit(blas_threads):
        return _follow(op, y, HadamardDualMap(depth, signed, init_scale), stopping,
                       _on_ratio_grid(validation, validation_ratio), float(path_rtol),
                       working_set)


class _Checks:
    """Validation at the grid times of :func:`~overparam.solvers.sparse.flow.checks_due`
    along the piecewise-linear path (as in :func:`~overparam.solvers.sparse.flow.hadamard_flow`).
    """

    def __init__(self, validation, m, loss0):
        self.validation, self.m, self.loss0 = validation, m, loss0
        self.n = 0

    def after_step(self, dmap, t0, s0, w0, t1, s1, w1, r_norm, n_steps) -> bool:
        """Checks due in ``(t0, t1]``; True: the validation asks to stop."""
        v, m = self.validation, self.m
        if v is None:
            return False
        for clock in checks_due(v, t1 * m, self.n, r_norm, self.loss0):
            theta = min(1.0, max(0.0, (clock / m - t0) / (t1 - t0)))
            s, w = (1 - theta) * s0 + theta * s1, (1 - theta) * w0 + theta * w1
            self.n += 1
            if v.check(n_steps, clock, dmap.signal(s), w.copy()):
                return True
        return False


def _follow(op, y, dmap, stopping, validation, path_rtol, working_set):
    m, n = op.shape
    # Monitor's rules after each accepted step (the path has no stagnation rule)
    monitor = Monitor(replace(stopping, stagnation_tol=0.0), float(np.linalg.norm(y)))
    A = _Products(op)
    # products given: operators with a closed-form column Gram (or fast products) apply the
    # set's columns by products, as the limit's preconditioner does
    precond = WorkingSetPreconditioner(_Columns(op), products=A) if working_set else None
    step = _ImplicitStep(A, dmap, y, precond)
    y_norm = monitor.y_norm
    t, w, s = 0.0, np.zeros(m), np.zeros(n)
    x = dmap.signal(s)
    r = A.forward(x) - y
    loss0 = 0.5 * float(r @ r)
    monitor.initial_loss = loss0  # divergence is judged against the start
    checks = _Checks(validation, m, loss0)
    velocity = None  # (dw/dt, ds/dt) of the last accepted step: the predictor
    t_bound = np.inf if stopping.max_flow_time is None else stopping.max_flow_time / m
    back = np.abs(A.adjoint(-r))
    h = 0.1 / max(float(np.max(back)), 1e-300)
    h_prev, n_steps, n_rejected, reason = None, 0, 0, None
    while reason is None:
        h = min(h, t_bound - t)  # lands on the stop time
        if velocity is None:
            w_p, s_p = w - h * r, s - h * A.adjoint(r)
        else:
            w_p, s_p = w + h * velocity[0], s + h * velocity[1]
        target = max(_NEWTON_RTOL * float(np.linalg.norm(r)), 1e-14 * y_norm)
        solved = step.solve(w, h, w_p, s_p, target) if dmap.inside(s_p) else None
        if solved is None:
            solved = step.solve(w, h, w, s, target)  # from the last point instead
        error = np.inf if solved is None else _local_error(dmap, solved[2], s_p, h, h_prev)
        if not error <= path_rtol:
            n_rejected += 1
            h *= max(_SHRINK, _SAFETY * np.sqrt(path_rtol / error)) if np.isfinite(error) \
                else _SHRINK
            if h < _MIN_STEP * max(t, 1e-300):
                raise DivergenceError(f"the implicit path stalled at clock {t * m:.3e} "
                                      f"(step {h:.3e})")
            continue
        w1, s1, x, r = solved
        velocity = ((w1 - w) / h, (s1 - s) / h)
        t0, s0, w0, t = t, s, w, t + h
        w, s, n_steps, h_prev = w1, s1, n_steps + 1, h
        r_norm = float(np.linalg.norm(r))
        # Monitor raises on divergence; the discrepancy then goes before its tol, as the
        # crossing of the level is located between the steps
        reason = monitor.update(n_steps + step.n_newton, 0.5 * r_norm**2, r_norm, t * m)
        if checks.after_step(dmap, t0, s0, w0, t, s, w, r_norm, n_steps):
            reason = StopReason.EARLY_STOPPED
        elif stopping.discrepancy is not None and r_norm <= stopping.discrepancy:
            t, w, s = _crossing(A, dmap, y, stopping.discrepancy, t0, s0, w0, t, s, w)
            x, reason = dmap.signal(s), StopReason.DISCREPANCY
        h *= min(_GROWTH, _SAFETY * np.sqrt(path_rtol / max(error, 1e-12)))
    info = {"time": t * m, "clock": "flow_time", "solver": "newton-cg-path",
            "n_steps": n_steps, "n_rejected": n_rejected, "n_newton": step.n_newton,
            "n_cg": A.n_cg, "n_products": A.count,
            "working_set": precond.size if precond is not None else 0}
    if validation is not None:
        best = close_validation(validation, reason, n_steps, t * m, x, w.copy(), info)
        if best is not None:
            w = best
            s = A.adjoint(w)
            x = dmap.signal(s)
    if not np.all(np.isfinite(x)):
        raise DivergenceError("non-finite point on the implicit path")
    r = A.forward(x) - y
    info.update(final_loss=0.5 * float(r @ r), dual=w)
    return SolverResult(coef=x, params=dmap.factors(s), n_iter=n_steps + step.n_newton,
                        wall_time=monitor.elapsed, stop_reason=reason, info=info)


def _local_error(dmap, x, s_pred, h, h_prev) -> float:
    """Backward Euler's local error on ``x`` relative to ``||x||``: the corrector minus the
    linear predictor, times ``h / (h + h_prev)`` (1/2 after the explicit first step)."""
    with np.errstate(over="ignore", invalid="ignore"):
        gap = float(np.linalg.norm(x - dmap.signal(s_pred)))
    factor = 0.5 if h_prev is None else h / (h + h_prev)
    size = float(np.linalg.norm(x))
    return factor * gap / size if size > 0 else (0.0 if gap == 0 else np.inf)


def _crossing(A, dmap, y, level, t0, s0, w0, t1, s1, w1):
    """The point of the linear interpolant between two steps where ``||A x - y|| = level``."""

    def excess(theta):
        s = (1 - theta) * s0 + theta * s1
        return float(np.linalg.norm(A.forward(dmap.signal(s)) - y)) - level

    theta = 1.0 if excess(0.0) <= 0 else brentq(excess, 0.0, 1.0, xtol=1e-6)
    return ((1 - theta) * t0 + theta * t1, (1 - theta) * w0 + theta * w1,
            (1 - theta) * s0 + theta * s1)
