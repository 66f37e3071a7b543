"""IR-MMV: gradient descent on ``X = (g^2 1_L^T) ⊙ V`` for a batch of MMV problems at once.

Written by hand: no library implements this factorization. The ``B`` problems of a batch share
nothing but the loop; each has its own step, clock, stopping test and stop reason, and a
problem that has stopped costs nothing in later iterations.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_array, check_positive
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from .result import History, SolverResult
from .steps import as_step_policy

__all__ = ["UPDATES", "BatchResult", "ir_mmv"]

_DEAD = 1e-60  # |g_i| below this is set to zero (a row this small never comes back)

#: ``"sequential"``: Algorithm 1 as printed (``V`` is updated with ``g(t+1)``);
#: ``"simultaneous"``: plain gradient descent on ``(g, V)``.
UPDATES = ("sequential", "simultaneous")


@dataclass
class BatchResult:
    """The outcome of a batched solver run: one entry per problem along the leading axis.

    Attributes
    ----------
    coef : ndarray of shape (B, N, L)
        Estimates (the best held-out iterate where a validation was given).
    params : tuple of ndarray
        ``(g, V)`` of shapes ``(B, N)`` and ``(B, N, L)``.
    n_iter : ndarray of int, shape (B,)
        Accepted steps per problem.
    wall_time : float
        Seconds for the whole batch.
    stop_reason : list of StopReason
        Why each problem stopped.
    info : dict
        Per-problem arrays: ``time`` (the flow clock at the end), ``step`` (last step),
        ``n_rejected_steps``, ``final_loss``; and ``clock`` (``"flow_time"``).
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


def _initial_step_guess(A_norm2, g, V, Lam):
    """``1 /`` a local curvature bound of ``||Y - A X||_F^2`` in ``(g, V)``, per problem.

    Gauss-Newton part ``2 ||A||^2 (g_i^4 + 4 g_i^2 ||V_i||^2)`` plus the residual part of the
    Hessian (``4 |<Λ_i, V_i>|`` on ``g``, ``4 g_i ||Λ_i||`` across ``g`` and ``V``). Near a small
    init the residual part dominates; the adaptive step takes it from there.
    """
    g2 = g * g
    v2 = np.sum(V * V, axis=-1)
    gauss_newton = 2.0 * A_norm2 * np.max(g2 * g2 + 4.0 * g2 * v2, axis=-1)
    residual = (4.0 * np.max(np.abs(np.sum(Lam * V, axis=-1)), axis=-1)
                + 4.0 * np.max(np.abs(g) * np.linalg.norm(Lam, axis=-1), axis=-1))
    return 1.0 / (gauss_newton + residual + 1e-300)


def ir_mmv(
    A,
    Y,
    *,
    init_scale: float = 1e-4,
    v_scale: float | None = None,
    init_params=None,
    update: str = "simultaneous",
    step="adaptive",
    stopping: StoppingRule | None = None,
    row_tol: float = 1e-3,
    validation: Validation | Sequence[Validation | None] | None = None,
    history: History | None = None,
    callback=None,
    progress: bool = False,
    blas_threads: int | None = 1,
):
    """Recover row-sparse ``X`` from ``Y = A X (+ W)`` by gradient descent on ``X = g^2 ⊙ V``.

    Minimizes the paper's loss ``||Y - A X||_F^2`` (no 1/2) over ``(g, V)`` from the balanced
    init ``g(0) = init_scale 1_N``, ``V(0) = v_scale 1_{N x L}`` with
    ``∇g = -4 g ⊙ rowsum(Λ ⊙ V)``, ``∇V = -2 g^2 ⊙ Λ``, ``Λ = A^T (Y - A X)``.

    Parameters
    ----------
    A : ndarray of shape (M, N) or (B, M, N)
        Sensing matrices; a leading axis solves ``B`` problems at once.
    Y : ndarray of shape (M, L) or (B, M, L)
        Measurements.
    init_scale : float, default=1e-4
        ``alpha_g``.
    v_scale : float, optional
        ``alpha_V``; default ``alpha_g / sqrt(2 L)`` (perfect row balance ``g_i^2/2 = ||V_i||^2``).
    init_params : tuple (g, V), optional
        Explicit start, shapes ``([B,] N)`` and ``([B,] N, L)``; overrides the scales.
    update : {"sequential", "simultaneous"}, default="simultaneous"
        ``"sequential"`` is Algorithm 1 as printed: ``V(t+1)`` uses ``g(t+1)``. ``"simultaneous"``
        is plain gradient descent. Both follow the same gradient flow as the step goes to zero.
    step : "adaptive", float or StepPolicy, default="adaptive"
        ``"adaptive"``: a safe scalar step per problem (backtracking Armijo with growth,
        :class:`~overparam.solvers.AdaptiveStep`), which re-times the flow but keeps its path.
        A float is the paper's fixed ``eta_g = eta_v`` (its ``1e-2`` diverges on its own
        setting: :class:`DivergenceError` is raised), or pass
        ``ConstantStep(eta, on_divergence="halve")``.
    stopping : StoppingRule, optional
        Applied to each problem separately. ``patience`` and ``max_iter`` count accepted steps.
        Stagnation also needs ``row_tol`` (below).
    row_tol : float, default=1e-3
        A problem counts as stagnated only if, over the last ``patience`` steps, its loss fell
        by less than ``stopping.stagnation_tol`` (relative) *and* no row scale ``g_i`` grew by
        more than this factor (``log(g_i(t) / g_i(t - patience)) < row_tol``). Between two rows
        being learned the loss is flat for a long time while the next row's ``g_i`` grows
        exponentially from its small init; a loss-only test (``row_tol=inf``) would stop on
        these plateaus.
    validation : Validation or sequence of Validation, optional
        Held-out early stopping, one per problem (a single one for an unbatched call). The
        problem stops when its validation says so and returns its best iterate.
    history : History, optional
        Recorded for an unbatched call (or a batch of one); adds ``values["flow_time"]``.
    callback : callable, optional
        ``callback(iteration, params, X)`` with batched arrays; True stops every problem.
    progress : bool, default=False
        Show a progress bar (iterations of the slowest problem).
    blas_threads : int or None, default=1
        BLAS threads during the run (:mod:`threadpoolctl`); None leaves them as they are. The
        products here are small, and several BLAS threads per product were measured 5-10x
        slower than one on a loaded 2-core machine.

    Returns
    -------
    SolverResult or BatchResult
        A :class:`SolverResult` for 2-D ``A``, a :class:`BatchResult` for 3-D ``A``.

    Notes
    -----
    **Clock.** ``info["time"]`` is the time of the gradient flow of the mean loss
    ``1/(2M) ||A X - Y||_F^2`` (``M`` measurement rows) that the iterates follow:
    ``sum(step) * 2 * M``. For ``update="simultaneous"`` this is the exact clock of scalar-step
    gradient descent (as in :func:`gradient_descent`); Algorithm 1's sequential update has no
    exact flow clock (it differs from a gradient step by ``O(step^2)``) and is given the same
    clock, which agrees to first order in the step. Paths run on different numbers of
    measurements are thereby comparable, which the estimators' held-out stopping needs.

    Each iteration tries one step per active problem; a problem whose trial fails its step
    policy keeps its iterate and retries with the smaller step in the next iteration.
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    check_positive(init_scale, "init_scale")
    A = check_array(A, "A", ndim=(2, 3))
    Y = check_array(Y, "Y", ndim=(2, 3))
    batched = A.ndim == 3
    if A.ndim != Y.ndim:
        raise ValueError(f"A and Y must both be batched or both not: A {A.shape}, Y {Y.shape}")
    if not batched:
        A, Y = A[None], Y[None]
    B, M, N = A.shape
    if Y.shape[:2] != (B, M):
        raise ValueError(f"Y must have shape ({B}, {M}, L) to match A {A.shape}, got {Y.shape}")
    L = Y.shape[2]
    if v_scale is None:
        v_scale = init_scale / np.sqrt(2.0 * L)
    check_positive(v_scale, "v_scale")
    stopping = stopping or StoppingRule()
    if validation is None or isinstance(validation, Validation):
        validations = [validation] * B if validation is None else [validation]
    else:
        validations = list(validation)
    if len(validations) != B:
        raise ValueError(f"give one validation per problem: {len(validations)} for {B}")
    if history is not None and B != 1:
        raise ValueError("history is recorded for a single problem only")
    policy = as_step_policy(step)

    start = time.perf_counter()
    At = np.swapaxes(A, 1, 2)
    if init_params is None:
        g = np.full((B, N), float(init_scale))
        V = np.full((B, N, L), float(v_scale))
    else:
        g0, V0 = (check_array(p, name) for p, name in zip(init_params, ("g", "V"),
                                                           strict=True))
        try:
            g = np.array(np.broadcast_to(g0, (B, N)))
            V = np.array(np.broadcast_to(V0, (B, N, L)))
        except ValueError:
            raise ValueError(f"init_params must have shapes ([B,] {N}) and ([B,] {N}, {L}), "
                             f"got {g0.shape} and {V0.shape}") from None
    X = (g * g)[..., None] * V
    R = Y - A @ X
    loss = np.sum(R * R, axis=(1, 2))
    Lam = At @ R
    y_norm = np.sqrt(np.sum(Y * Y, axis=(1, 2)))
    initial_loss = loss.copy()
    time_per_step = 2.0 * M  # loss weight 2 (||.||^2, no 1/2) times M rows
    clock = np.zeros(B)
    n_iter = np.zeros(B, dtype=int)
    n_rejected = np.zeros(B, dtype=int)
    a_norm2 = np.linalg.norm(A, ord=2, axis=(1, 2)) ** 2
    guess = _initial_step_guess(a_norm2, g, V, Lam)
    eta = np.array([policy.start(float(s)) for s in guess])
    if not float(row_tol) >= 0:  # inf allowed: the loss-only stagnation test
        raise ValueError(f"row_tol must be >= 0, got {row_tol!r}")
    window = g_window = None
    if stopping.stagnation_tol > 0:
        window = np.empty((stopping.patience + 1, B))
        g_window = np.empty((stopping.patience + 1, B, N))
        with np.errstate(divide="ignore"):  # a zero row stays zero: log = -inf is fine
            window[0], g_window[0] = loss, np.log(np.abs(g))
    reasons: list[StopReason | None] = [None] * B

    def check_stop(b: int) -> StopReason | None:
        res = float(np.sqrt(loss[b]))
        if stopping.tol > 0 and res <= stopping.tol * y_norm[b]:
            return StopReason.CONVERGED
        if stopping.discrepancy is not None and res <= stopping.discrepancy:
            return StopReason.DISCREPANCY
        if (stopping.max_flow_time is not None
                and clock[b] >= stopping.max_flow_time * (1 - 1e-12)):
            return StopReason.END_OF_TIME
        k = n_iter[b]
        if window is not None and k > 0:
            slot, old_slot = k % window.shape[0], (k - stopping.patience) % window.shape[0]
            window[slot, b] = loss[b]
            with np.errstate(divide="ignore"):
                g_window[slot, b] = np.log(np.abs(g[b]))
            if k >= stopping.patience:
                old = window[old_slot, b]
                if old - loss[b] <= stopping.stagnation_tol * abs(old):
                    with np.errstate(invalid="ignore"):
                        growth = np.nanmax(g_window[slot, b] - g_window[old_slot, b],
                                           initial=-np.inf)
                    if not growth >= row_tol:
                        return StopReason.STAGNATED
        if k >= stopping.max_iter:
            return StopReason.MAX_ITER
        if stopping.max_time is not None and time.perf_counter() - start > stopping.max_time:
            return StopReason.TIME_LIMIT
        return None

    for b in range(B):
        reasons[b] = check_stop(b)
    if history is not None:
        _record(history, 0, start, loss[0], g[0], V[0], X[0], clock[0])
    bar = tqdm(total=stopping.max_iter, disable=not progress, desc="IR-MMV", leave=False)
    limits = ExitStack()
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limits.enter_context(threadpool_limits(int(blas_threads), user_api="blas"))
    sequential = update == "sequential"
    try:
        while True:
            active = np.array([r is None for r in reasons])
            if not active.any():
                break
            idx = np.flatnonzero(active)
            gi, Vi, Li = g[idx], V[idx], Lam[idx]
            grad_g = -4.0 * gi * np.sum(Li * Vi, axis=-1)
            grad_V = -2.0 * (gi * gi)[..., None] * Li
            if stopping.max_flow_time is not None:  # land exactly on the requested time
                eta[idx] = np.minimum(eta[idx], np.maximum(stopping.max_flow_time - clock[idx],
                                                           0.0) / time_per_step)
            e = eta[idx]
            d_g = -e[:, None] * grad_g
            g_new = gi + d_g
            if sequential:
                d_V = 2.0 * e[:, None, None] * (g_new * g_new)[..., None] * Li
            else:
                d_V = -e[:, None, None] * grad_V
            V_new = Vi + d_V
            X_new = (g_new * g_new)[..., None] * V_new
            # The change of the loss from the change of X, not as a difference of two losses:
            # on a plateau it is far below the rounding error of the loss itself, and a
            # rounding-noise "increase" would make the step policy shrink the step for ever.
            with np.errstate(over="ignore", invalid="ignore"):
                d_X = (d_g * (2.0 * gi + d_g))[..., None] * V_new + (gi * gi)[..., None] * d_V
                d_R = -(A[idx] @ d_X)
                d_loss = np.sum(d_R * (d_R + 2.0 * R[idx]), axis=(1, 2))
                R_new = R[idx] + d_R
                loss_new = loss[idx] + d_loss
            decrease = e * (np.sum(grad_g * grad_g, axis=-1) + np.sum(grad_V * grad_V,
                                                                       axis=(1, 2)))
            ok = np.isfinite(loss_new) & ~(loss_new > stopping.divergence_factor
                                           * initial_loss[idx])
            accepted = np.zeros(idx.size, dtype=bool)
            for j, b in enumerate(idx):
                # Policies compare losses; give them the change (old loss 0) for its accuracy.
                if ok[j] and policy.accept(float(e[j]), 0.0, float(d_loss[j]),
                                           float(decrease[j])):
                    accepted[j] = True
                else:
                    n_rejected[b] += 1
                    try:
                        eta[b] = policy.next_after_reject(float(eta[b]))
                    except DivergenceError as err:
                        raise DivergenceError(f"problem {b} of the batch: {err}") from err
            if accepted.any():
                acc, loc = idx[accepted], np.flatnonzero(accepted)
                # Rows that died (|g| < 1e-60: escape time ~1e60) become exactly zero, as they
                # would stay: subnormal numbers would slow every later iteration many times.
                g_new[np.abs(g_new) < _DEAD] = 0.0
                V_new[np.abs(V_new) < _DEAD ** 2] = 0.0
                X_new = (g_new * g_new)[..., None] * V_new
                g[acc], V[acc], X[acc] = g_new[loc], V_new[loc], X_new[loc]
                R[acc], loss[acc] = R_new[loc], loss_new[loc]
                refresh = acc[n_iter[acc] % 100 == 99]  # R = Y - A X again, against drift
                if refresh.size:
                    R[refresh] = Y[refresh] - A[refresh] @ X[refresh]
                    loss[refresh] = np.sum(R[refresh] ** 2, axis=(1, 2))
                Lam[acc] = At[acc] @ R[acc]
                clock[acc] += e[loc] * time_per_step
                n_iter[acc] += 1
                for b in acc:
                    eta[b] = policy.next_after_accept(float(eta[b]))
                    reasons[b] = check_stop(b)
                    val = validations[b]
                    if val is not None and n_iter[b] % val.every == 0:
                        if val.check(int(n_iter[b]), float(clock[b]), X[b].copy(),
                                     (g[b].copy(), V[b].copy())):
                            reasons[b] = StopReason.EARLY_STOPPED
                if history is not None and 0 in acc and (history.due(n_iter[0])
                                                         or reasons[0] is not None):
                    _record(history, n_iter[0], start, loss[0], g[0], V[0], X[0], clock[0])
                bar.update(int(n_iter.max()) - bar.n)
            if callback is not None and callback(int(n_iter.max()), (g, V), X):
                reasons = [StopReason.CALLBACK if r is None else r for r in reasons]
    finally:
        bar.close()
        limits.close()
    if not np.all(np.isfinite(X)):
        raise DivergenceError(f"non-finite estimate after {int(n_iter.max())} iterations")
    info = {"time": clock.copy(), "clock": "flow_time", "step": eta.copy(),
            "n_rejected_steps": n_rejected, "final_loss": loss.copy(), "update": update}
    best_it = np.full(B, -1)
    for b, val in enumerate(validations):
        if val is not None and val.best_state is not None:
            g[b], V[b] = val.best_state
            X[b] = (g[b] * g[b])[:, None] * V[b]
            best_it[b] = val.best_iteration
    if any(v is not None for v in validations):
        info.update(best_iteration=best_it,
                    best_time=np.array([v.best_time if v else np.nan for v in validations]),
                    validation_error=np.array([v.best_error if v else np.nan
                                               for v in validations]))
    result = BatchResult(coef=X, params=(g, V), n_iter=n_iter,
                         wall_time=time.perf_counter() - start, stop_reason=list(reasons),
                         info=info, history=history)
    return result if batched else result[0]


def _record(history: History, iteration, start, loss, g, V, X, clock) -> None:
    if history.iteration and history.iteration[-1] == iteration:
        return
    history.record(int(iteration), time.perf_counter() - start, float(loss), (g.copy(),
                   V.copy()), X.copy())
    history.values.setdefault("flow_time", []).append(float(clock))
