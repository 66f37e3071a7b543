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
from math import isfinite

import numpy as np

from .._progress import progress_bar
from .._validation import check_array, check_positive
from ..stopping import DivergenceError, StoppingRule, StopReason, Validation
from ._blas import blas_limit
from .result import History, SolverResult
from .steps import AdaptiveStep, as_step_policy

__all__ = ["INITS", "UPDATES", "BatchResult", "candidate_supports", "ir_mmv", "refine_row_sparse"]

_DEAD = 1e-60  # |g_i| below this is set to zero (a row this small never comes back)
_EPS = float(np.finfo(float).eps)

#: ``"sequential"``: Algorithm 1 as printed (``V`` is updated with ``g(t+1)``);
#: ``"simultaneous"``: plain gradient descent on ``(g, V)``.
UPDATES = ("sequential", "simultaneous")
#: ``V(0)``: ``"zero"`` (rows free to change sign) or the paper's balanced ``"ones"``.
INITS = ("zero", "ones")


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
    init: str = "ones",
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

    Minimizes the paper's loss ``||Y - A X||_F^2`` (no 1/2) over ``(g, V)`` from
    ``g(0) = init_scale 1_N`` and the paper's balanced ``V(0) = v_scale 1_{N x L}`` (default,
    Algorithm 1) or ``V(0) = 0`` (``init="zero"``, the default of
    :class:`~overparam.estimators.MMVRegressor`), with ``∇g = -4 g ⊙ rowsum(Λ ⊙ V)``,
    ``∇V = -2 g^2 ⊙ Λ``, ``Λ = A^T (Y - A X)``.

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
        Used by ``init="ones"``.
    init : {"ones", "zero"}, default="ones"
        ``"zero"``: ``V(0) = 0``, so each row first moves along its row of ``A^T Y`` and the
        conserved imbalance ``g_i^2/2 - ||V_i||^2 = init_scale^2/2 > 0`` keeps ``g_i >=
        init_scale``: a row can shrink through zero and change sign. ``"ones"``: the paper's
        balanced ``V(0) = v_scale 1_{N x L}`` (Algorithm 1). There the imbalance is zero, so
        ``||V_i|| = g_i / sqrt(2)`` never vanishes: a row turns only through directions
        orthogonal to its own, at a rate set by its size, and a row of ``X`` pointing away
        from ``1_L`` (e.g. ``-1_L``; any sign change when the rows of ``X`` are collinear)
        is not learned; other rows grow in its place (docs/mmv.md).
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
        ``callback(iteration, params, X)`` with batched arrays (a copy of every problem's
        current state); True stops every problem.
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

    **Cost.** For small problems numpy's per-call overhead, not arithmetic, dominates, so the
    loop keeps the active problems' rows compacted (copied only when one stops), applies the
    default :class:`~overparam.solvers.AdaptiveStep`'s rules to the whole batch at once (any
    other step policy is asked problem by problem, with the same result bit for bit), skips
    the validation checks and residual refreshes in iterations where none can fall due, and
    keeps ``X`` only where it is read. Floating-point warnings are off in the loop (a trial
    step that overflows is rejected). Measured with ``benchmarks/mmv_overhead.py`` on a loaded
    2-core machine, per iteration: 63 µs for ``B = 5`` problems of ``24 x 60 x 20`` (a fifth of
    it in the products ``A dX`` and ``A^T R``) and 35 µs for one of ``30 x 60 x 20``, against
    116 and 81 µs for the previous, problem-by-problem loop, with identical results; and
    0.4 ms instead of 2.3 ms per call (the BLAS thread limiter is now made once).
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
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
        V = np.full((B, N, L), float(v_scale) if init == "ones" else 0.0)
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
    time_per_step = 2.0 * M  # loss weight 2 (||.||^2, no 1/2) times M rows
    clock = np.zeros(B)
    n_iter = np.zeros(B, dtype=int)
    n_rejected = np.zeros(B, dtype=int)
    a_norm2 = np.linalg.norm(A, ord=2, axis=(1, 2)) ** 2
    guess = _initial_step_guess(a_norm2, g, V, Lam)
    eta = np.array([policy.start(float(s)) for s in guess])
    if not float(row_tol) >= 0:  # inf allowed: the loss-only stagnation test
        raise ValueError(f"row_tol must be >= 0, got {row_tol!r}")

    tol, discrepancy, max_iter = stopping.tol, stopping.discrepancy, stopping.max_iter
    patience, max_time = stopping.patience, stopping.max_time
    max_flow_time = stopping.max_flow_time
    end_time = None if max_flow_time is None else max_flow_time * (1 - 1e-12)
    loss_limit = stopping.divergence_factor * loss  # beyond it a trial step has diverged
    # A residual norm at or below this per-problem level stops the problem (CONVERGED or
    # DISCREPANCY: stop_reason tells which); None when neither test is on.
    res_stop = None
    if tol > 0 or discrepancy is not None:
        res_stop = np.maximum(tol * y_norm if tol > 0 else -np.inf,
                              -np.inf if discrepancy is None else discrepancy)
    # Stagnation: ring buffers of the loss and of g over the last patience + 1 accepted steps
    # of each problem, slot n_iter % (patience + 1).
    n_slots = patience + 1
    window = g_window = None
    if stopping.stagnation_tol > 0:
        window = np.empty((n_slots, B))
        g_window = np.empty((n_slots, B, N))
        window[0], g_window[0] = loss, g
    no_check = 2**62  # the check period of a problem with no validation
    every = [no_check if v is None else int(v.every) for v in validations]

    # The loop works on the active problems only: ``ids`` are their indices in the batch and
    # every working array holds their rows, compacted (copied) only when a problem stops. A
    # stopped problem's final state goes to these arrays:
    g_out, V_out, X_out = np.empty_like(g), np.empty_like(V), np.empty_like(X)
    loss_out, clock_out, eta_out = np.empty_like(loss), np.empty_like(clock), np.empty_like(eta)
    n_iter_out, n_rejected_out = np.empty_like(n_iter), np.empty_like(n_rejected)
    ids, cols, vals = np.arange(B), np.arange(B), list(validations)
    limit_list = loss_limit.tolist()
    A_w, At_w, Y_w = A, np.ascontiguousarray(At), Y  # contiguous A^T: as any subset of it

    def signal(rows):
        # X is only read here (results, checks, the periodic refresh): not kept up to date.
        return (g[rows] * g[rows])[..., None] * V[rows]

    def scatter(rows) -> None:
        dest = ids[rows]
        g_out[dest], V_out[dest], X_out[dest] = g[rows], V[rows], signal(rows)
        loss_out[dest], clock_out[dest], eta_out[dest] = loss[rows], clock[rows], eta[rows]
        n_iter_out[dest], n_rejected_out[dest] = n_iter[rows], n_rejected[rows]

    def stop_reason(j: int) -> StopReason | None:
        """Why working problem ``j`` stops now (None: it goes on); its window slot is current."""
        res = float(np.sqrt(loss[j]))
        if tol > 0 and res <= tol * y_norm[j]:
            return StopReason.CONVERGED
        if discrepancy is not None and res <= discrepancy:
            return StopReason.DISCREPANCY
        if end_time is not None and clock[j] >= end_time:
            return StopReason.END_OF_TIME
        k = int(n_iter[j])
        if window is not None and k >= patience:
            slot, old_slot = k % n_slots, (k - patience) % n_slots
            old = window[old_slot, j]
            if old - loss[j] <= stopping.stagnation_tol * abs(old):
                growth = np.nanmax(np.log(np.abs(g_window[slot, j]))
                                   - np.log(np.abs(g_window[old_slot, j])), initial=-np.inf)
                if not growth >= row_tol:
                    return StopReason.STAGNATED
        if k >= max_iter:
            return StopReason.MAX_ITER
        if max_time is not None and time.perf_counter() - start > max_time:
            return StopReason.TIME_LIMIT
        return None

    reasons: list[StopReason | None] = [stop_reason(b) for b in range(B)]
    done = [b for b in range(B) if reasons[b] is not None]  # working rows that just stopped
    if history is not None:
        _record(history, 0, start, loss[0], g[0], V[0], X[0], clock[0])
    bar = progress_bar(progress, total=stopping.max_iter, desc="IR-MMV")
    limits = ExitStack()
    limits.enter_context(blas_limit(blas_threads))
    # Overflow and NaN in a trial step are expected (the step is then rejected), as is the log
    # of a dead row in the stagnation test; once here instead of in each iteration.
    limits.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
    sequential = update == "sequential"
    # The default policy's accept/next rules, vectorized over the batch; any other policy is
    # asked problem by problem.
    adaptive = type(policy) is AdaptiveStep
    if adaptive:
        neg_armijo, grow, shrink = -policy.armijo, policy.grow, policy.shrink
        max_step = policy.max_step if policy.max_step < np.inf else None
    # Each problem accepts at most one step per iteration, so a test due at multiples of a
    # period of accepted steps is skipped for the iterations in which none can fall due.
    refresh_wait = _due(n_iter.tolist(), [100] * B, [False] * B)[1]
    check_wait = _due(n_iter.tolist(), every, [False] * B)[1]
    it = 0  # loop iterations: no problem has more accepted steps
    _sum = np.add.reduce
    try:
        while True:
            if done:
                gone = np.zeros(ids.size, dtype=bool)
                gone[done] = True
                scatter(gone)
                done = []
                if gone.all():
                    break
                keep = ~gone
                ids, cols = ids[keep], np.arange(np.count_nonzero(keep))
                vals = [v for v, k in zip(vals, keep.tolist(), strict=True) if k]
                g, V, R, Lam = g[keep], V[keep], R[keep], Lam[keep]
                loss, clock, eta, n_iter = loss[keep], clock[keep], eta[keep], n_iter[keep]
                n_rejected, y_norm = n_rejected[keep], y_norm[keep]
                limit_list = [x for x, k in zip(limit_list, keep.tolist(), strict=True) if k]
                every = [p for p, k in zip(every, keep.tolist(), strict=True) if k]
                A_w, At_w, Y_w = A_w[keep], At_w[keep], Y_w[keep]
                if res_stop is not None:
                    res_stop = res_stop[keep]
                if window is not None:
                    window, g_window = window[:, keep], g_window[:, keep]
            it += 1
            # np.add.reduce is np.sum without its Python wrapper (same result, bit for bit).
            gg = g * g
            grad_g = -4.0 * g * _sum(Lam * V, -1)
            grad_V = -2.0 * gg[..., None] * Lam
            # Land exactly on the requested time (the cap cannot bind before twice the step
            # from it).
            if max_flow_time is not None and (max(clock.tolist()) + 2.0 * max(eta.tolist())
                                              * time_per_step >= max_flow_time):
                eta = np.minimum(eta, np.maximum(max_flow_time - clock, 0.0) / time_per_step)
            e = eta
            neg_e = -e
            d_g = neg_e[:, None] * grad_g
            g_new = g + d_g
            if sequential:
                d_V = 2.0 * e[:, None, None] * (g_new * g_new)[..., None] * Lam
            else:
                d_V = neg_e[:, None, None] * grad_V
            V_new = V + d_V
            # The change of the loss from the change of X, not as a difference of two losses:
            # on a plateau it is far below the rounding error of the loss itself, and a
            # rounding-noise "increase" would make the step policy shrink the step for ever.
            # With d_R = -A d_X: sum(d_R * (d_R + 2 R)) and R + d_R, exactly.
            A_dX = A_w @ ((d_g * (2.0 * g + d_g))[..., None] * V_new + gg[..., None] * d_V)
            d_loss = -_sum(A_dX * (2.0 * R - A_dX), (1, 2))
            R_new = R - A_dX
            loss_new = loss + d_loss
            decrease = e * (_sum(grad_g * grad_g, -1) + _sum(grad_V * grad_V, (1, 2)))
            # A finite trial loss within the divergence limit, then the step policy's test.
            # Python floats (the same IEEE arithmetic) are cheaper than numpy for a few values.
            ok = [isfinite(x) and x <= lim
                  for x, lim in zip(loss_new.tolist(), limit_list, strict=True)]
            d_loss_list, decrease_list = d_loss.tolist(), decrease.tolist()
            if adaptive:
                # Policies compare losses; this is AdaptiveStep.accept with old loss 0 and new
                # loss the change, for its accuracy.
                accepted_list = [a and d <= neg_armijo * c
                                 for a, d, c in zip(ok, d_loss_list, decrease_list, strict=True)]
                all_accepted = all(accepted_list)
                if not all_accepted:
                    accepted_list = _accept_within_rounding(
                        accepted_list, ok, d_loss_list, decrease_list, neg_armijo, A_dX, R)
                    all_accepted = all(accepted_list)
                eta = eta * grow if max_step is None else np.minimum(eta * grow, max_step)
                if not all_accepted:
                    rejected = [j for j, a in enumerate(accepted_list) if not a]
                    for j in rejected:
                        n_rejected[j] += 1
                        eta[j] = e[j] * shrink
                        if eta[j] < policy.min_step:
                            try:  # raises: the step fell below the policy's minimum
                                policy.next_after_reject(float(e[j]))
                            except DivergenceError as err:
                                raise DivergenceError(
                                    f"problem {ids[j]} of the batch: {err}") from err
            else:
                eta = eta.copy()
                accepted_list = [False] * ids.size
                for j in range(ids.size):
                    # as the vectorized test: strict, then within the rounding slack
                    if ok[j] and (policy.accept(float(e[j]), 0.0, d_loss_list[j],
                                                decrease_list[j])
                                  or policy.accept(float(e[j]), _rounding_slack(A_dX[j], R[j]),
                                                   d_loss_list[j], decrease_list[j])):
                        accepted_list[j] = True
                    else:
                        n_rejected[j] += 1
                        try:
                            eta[j] = policy.next_after_reject(float(eta[j]))
                        except DivergenceError as err:
                            raise DivergenceError(f"problem {ids[j]} of the batch: {err}") from err
                for j in range(ids.size):
                    if accepted_list[j]:
                        eta[j] = policy.next_after_accept(float(eta[j]))
                all_accepted = all(accepted_list)
                rejected = [j for j, a in enumerate(accepted_list) if not a]
            if all_accepted or any(accepted_list):
                # Rows that died (|g| < 1e-60: escape time ~1e60) become exactly zero, as they
                # would stay: subnormal numbers would slow every later iteration many times.
                g_new[np.abs(g_new) < _DEAD] = 0.0
                V_new[np.abs(V_new) < _DEAD ** 2] = 0.0
                clock_new = clock + e * time_per_step
                if all_accepted:
                    n_iter += 1
                else:
                    accepted = np.array(accepted_list)
                    n_iter += accepted
                    for j in rejected:  # keeps its state (few rows: cheaper than np.where)
                        g_new[j], V_new[j], R_new[j] = g[j], V[j], R[j]
                        loss_new[j], clock_new[j] = loss[j], clock[j]
                g, V, R, loss, clock = g_new, V_new, R_new, loss_new, clock_new
                if refresh_wait:
                    refresh_wait -= 1
                else:  # R = Y - A X again every 100 accepted steps, against drift
                    refresh, refresh_wait = _due(n_iter.tolist(), [100] * ids.size,
                                                 accepted_list)
                    if refresh:
                        R[refresh] = Y_w[refresh] - A_w[refresh] @ signal(refresh)
                        loss[refresh] = _sum(R[refresh] ** 2, (1, 2))
                Lam_new = At_w @ R
                for j in rejected if not all_accepted else ():
                    Lam_new[j] = Lam[j]
                Lam = Lam_new

                # Stopping tests, vectorized as a superset; stop_reason decides (rarely).
                flags = None if res_stop is None else np.sqrt(loss) <= res_stop
                if end_time is not None:
                    late = clock >= end_time
                    flags = late if flags is None else flags | late
                if window is not None:
                    # A rejected problem rewrites its current slot with the same values.
                    slots = n_iter % n_slots
                    window[slots, cols], g_window[slots, cols] = loss, g
                    if it >= patience:
                        k_old = n_iter - patience
                        old = window[k_old % n_slots, cols]
                        flat = (k_old >= 0) & (old - loss
                                               <= stopping.stagnation_tol * np.abs(old))
                        flags = flat if flags is None else flags | flat
                if it >= max_iter:
                    flags = n_iter >= max_iter if flags is None else flags | (n_iter >= max_iter)
                if max_time is not None and time.perf_counter() - start > max_time:
                    flags = np.ones(ids.size, dtype=bool)
                if flags is not None:
                    if not all_accepted:
                        flags &= accepted
                    flags = flags.tolist()
                    if any(flags):
                        for j in range(ids.size):
                            reason = stop_reason(j) if flags[j] else None
                            if reason is not None:
                                reasons[ids[j]] = reason
                                done.append(j)
                if check_wait:
                    check_wait -= 1
                else:
                    due, check_wait = _due(n_iter.tolist(), every, accepted_list)
                    for j in due:
                        if vals[j].check(int(n_iter[j]), float(clock[j]), signal(j),
                                         (g[j].copy(), V[j].copy())):
                            reasons[ids[j]] = StopReason.EARLY_STOPPED
                            done.append(j)
                if history is not None and accepted_list[0] and (history.due(n_iter[0])
                                                                 or reasons[0] is not None):
                    _record(history, n_iter[0], start, loss[0], g[0], V[0], signal(0), clock[0])
                if not bar.disable:
                    bar.update(max(int(n_iter.max()) - bar.n, 0))
            if callback is not None:
                scatter(slice(None))
                if callback(int(n_iter_out.max()), (g_out, V_out), X_out):
                    for j in range(ids.size):
                        if reasons[ids[j]] is None:
                            reasons[ids[j]] = StopReason.CALLBACK
                            done.append(j)
    finally:
        bar.close()
        limits.close()
    g, V, X, loss, clock, eta = g_out, V_out, X_out, loss_out, clock_out, eta_out
    n_iter, n_rejected = n_iter_out, n_rejected_out
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


def candidate_supports(X, *, gap: float = 10.0) -> list[np.ndarray]:
    """The sets of largest rows of ``X`` at which the sorted row norms drop by more than
    ``gap``, smallest first."""
    norms = np.linalg.norm(X, axis=-1)
    order = np.argsort(-norms, kind="stable")
    s = norms[order]
    if s.size < 2 or s[0] == 0:
        return []
    return [np.sort(order[:k + 1]) for k in np.flatnonzero(s[:-1] >= gap * s[1:]).tolist()]


def refine_row_sparse(A, Y, X, *, tol: float = 1e-6):
    """The interpolant supported on the learned rows of ``X``, if it exists and is unique.

    From a small init, IR-MMV learns the rows of its limit one at a time; once they are all
    grown, the rest of the run only creeps (the last digits of a grown row, the decay of rows
    that overshot). Where the limit is supported on ``S`` with ``A_S`` of full column rank
    (``|S| < M``), it is the least-squares solution on ``S``. Each candidate support of
    :func:`candidate_supports` is tried, smallest first.

    Returns
    -------
    ndarray or None
        ``X`` on the first support whose least-squares fit reaches
        ``||Y - A X||_F <= tol ||Y||_F``; None if none does.
    """
    M = A.shape[0]
    target = tol * float(np.linalg.norm(Y))
    for rows in candidate_supports(X):
        if rows.size >= M:
            break
        coef, _, rank, _ = np.linalg.lstsq(A[:, rows], Y, rcond=None)
        if rank < rows.size:
            continue
        if float(np.linalg.norm(Y - A[:, rows] @ coef)) <= target:
            out = np.zeros_like(X)
            out[rows] = coef
            return out
    return None


def _accept_within_rounding(accepted, ok, d_loss, decrease, neg_armijo, A_dX, R):
    """Armijo's test with the rounding error of the computed change of the loss as slack.

    At a stationary point with a nonzero residual (a least-squares point of inconsistent
    data) the gradient is at the rounding level, and so is the computed change
    ``d_loss = -sum(A dX * (2 R - A dX))``: its sign is noise, whatever the step, since both
    scale with it. The strict test then rejects every step until the step underflows (a
    ``DivergenceError`` at a point that solves the problem). A change within ``10 eps`` of
    the sum of the magnitudes of its terms is no evidence of an increase: such a step is
    accepted, the loss stays flat and the stopping rule ends the run (stagnation or budget).
    Only called for the rejected problems (rare), so the plain test costs nothing more. A
    policy asked through the protocol gets the same second chance, as ``accept(step, slack,
    change, decrease)`` (the old loss is the slack, the new one the change).
    """
    out = list(accepted)
    for j, a in enumerate(accepted):
        if ok[j] and not a:
            out[j] = d_loss[j] <= _rounding_slack(A_dX[j], R[j]) + neg_armijo * decrease[j]
    return out


def _rounding_slack(A_dX, R) -> float:
    """Rounding level of ``-sum(A dX * (2 R - A dX))``: ``10 eps`` times the sum of the
    magnitudes of its terms."""
    return 10.0 * _EPS * float(np.sum(np.abs(A_dX) * np.abs(2.0 * R - A_dX)))


def _due(counts, periods, accepted):
    """The problems whose count of accepted steps has just reached a multiple of their period,
    and the number of loop iterations in which none can next (each accepts one step at most
    per iteration)."""
    due = [j for j, (n, p) in enumerate(zip(counts, periods, strict=True))
           if accepted[j] and n % p == 0]
    return due, min((-n - 1) % p for n, p in zip(counts, periods, strict=True))


def _record(history: History, iteration, start, loss, g, V, X, clock) -> None:
    if history.iteration and history.iteration[-1] == iteration:
        return
    history.record(int(iteration), time.perf_counter() - start, float(loss), (g.copy(),
                   V.copy()), X.copy())
    history.values.setdefault("flow_time", []).append(float(clock))
