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

from .._progress import progress_bar
from .._validation import check_array, check_positive
from ..parameterizations.row import RowHadamard
from ..stopping import BatchMonitor, DivergenceError, StoppingRule, StopReason, Validation
from ._blas import blas_limit
from .loop import private_validation
from .result import History, SolverResult
from .steps import StepPolicy, as_step_policy

__all__ = ["INITS", "UPDATES", "BatchResult", "MMVState", "candidate_supports", "ir_mmv",
           "mmv_finish", "mmv_init", "mmv_step", "refine_row_sparse"]

_DEAD = 1e-60  # |g_i| below this is set to zero (a row this small never comes back)
_EPS = float(np.finfo(float).eps)
_REFRESH = 100  # accepted steps between two recomputations of R = Y - A X
_NO_CHECK = 2**62  # the check period of a problem with no validation
# np.add.reduce is np.sum without its Python wrapper (same result, bit for bit)
_sum = np.add.reduce

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
    max_row_change: float | None = None,
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
        ``ConstantStep(eta, on_divergence="halve")``. Each trial step is capped by the
        policy's :meth:`~overparam.solvers.StepPolicy.limit` (per problem), as in
        :func:`gradient_descent`.
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
    max_row_change : float, optional
        Cap every trial step so that no row scale changes by more than this fraction of
        itself (``|Δg_i| <= max_row_change |g_i|``). From a small init the curvature is tiny
        and the adaptive step grows until a few steps cover the whole escape of the rows; the
        cap keeps the iterates near the flow's path there, so that paths on different rows of
        the same data (held-out folds and their refit) agree at equal flow times. None: no cap.
    validation : Validation or sequence of Validation, optional
        Held-out early stopping, one per problem (a single one for an unbatched call). The
        problem stops when its validation says so and returns its best iterate. The run
        records into copies (the caller's objects are not changed) and reports each curve,
        ending with the path's last point, as ``info["validation_curve"]``, ``(n, 3)`` arrays
        of ``(iteration, clock, error)``.
    history : History, optional
        Recorded for an unbatched call (or a batch of one); adds ``values["flow_time"]``.
    callback : callable, optional
        ``callback(iteration, params, X)`` with batched arrays (a copy of every problem's
        current state); True stops every problem.
    progress : bool, default=False
        Show a progress bar (iterations of the slowest problem).
    blas_threads : int or None, default=1
        BLAS threads during the run (:mod:`threadpoolctl`); None leaves them as they are. The
        products here are small, and several BLAS threads per product are slower than one on
        a loaded machine (docs/sparse.md, "One BLAS thread").

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
    loop keeps the active problems' rows compacted (copied only when one stops), asks the step
    policy and the stopping rule through their array forms (:meth:`StepPolicy.accept_batch`,
    :class:`~overparam.stopping.BatchMonitor`), skips the validation checks and residual
    refreshes in iterations where none can fall due, and keeps ``X`` only where it is read.
    Floating-point warnings are off in the loop (a trial step that overflows is rejected).
    ``benchmarks/mmv_overhead.py`` measures the cost per iteration.
    """
    A, Y, batched, validations = _check_inputs(A, Y, update=update, init=init,
                                               init_scale=init_scale, row_tol=row_tol,
                                               validation=validation, history=history)
    g, V = _start_params(init_params, A.shape[0], A.shape[2], Y.shape[2], init_scale=init_scale,
                         v_scale=v_scale, init=init)
    if max_row_change is not None:
        check_positive(max_row_change, "max_row_change")
    stopping = stopping or StoppingRule()
    state = mmv_init(A, Y, (g, V), policy=as_step_policy(step), stopping=stopping,
                     validations=validations, update=update, row_tol=row_tol,
                     max_row_change=max_row_change, history=history)
    bar = progress_bar(progress, total=stopping.max_iter, desc="IR-MMV")
    with ExitStack() as limits:
        limits.callback(bar.close)
        limits.enter_context(blas_limit(blas_threads))
        # Overflow and NaN in a trial step are expected (the step is then rejected), as is the
        # log of a dead row in the stagnation test; once here instead of in each iteration.
        limits.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
        while _retire_stopped(state):
            accepted = mmv_step(state)
            if accepted is not None:
                _stop_tests(state, accepted)
                _validate(state, accepted)
                if history is not None and accepted[0] and (history.due(state.n_iter[0])
                                                            or state.reasons[0] is not None):
                    _record(history, state, 0)
                if not bar.disable:
                    bar.update(max(int(state.n_iter.max()) - bar.n, 0))
            if callback is not None:
                _publish(state, slice(None))
                out = state.out
                if callback(int(out["n_iter"].max()), (out["g"], out["V"]), out["X"]):
                    state.stop_all(StopReason.CALLBACK)
    result = mmv_finish(state)
    return result if batched else result[0]


def _check_inputs(A, Y, *, update, init, init_scale, row_tol, validation, history):
    """``A``, ``Y`` with a leading batch axis, whether it was given, and one validation (or
    None) per problem."""
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    check_positive(init_scale, "init_scale")
    if not float(row_tol) >= 0:  # inf allowed: the loss-only stagnation test
        raise ValueError(f"row_tol must be >= 0, got {row_tol!r}")
    A = check_array(A, "A", ndim=(2, 3))
    Y = check_array(Y, "Y", ndim=(2, 3))
    batched = A.ndim == 3
    if A.ndim != Y.ndim:
        raise ValueError(f"A and Y must both be batched or both not: A {A.shape}, Y {Y.shape}")
    if not batched:
        A, Y = A[None], Y[None]
    B, M, _ = A.shape
    if Y.shape[:2] != (B, M):
        raise ValueError(f"Y must have shape ({B}, {M}, L) to match A {A.shape}, got {Y.shape}")
    if validation is None or isinstance(validation, Validation):
        validations = [validation] * B if validation is None else [validation]
    else:
        validations = list(validation)
    if len(validations) != B:
        raise ValueError(f"give one validation per problem: {len(validations)} for {B}")
    if history is not None and B != 1:
        raise ValueError("history is recorded for a single problem only")
    return A, Y, batched, validations


def _start_params(init_params, B, N, L, *, init_scale, v_scale, init):
    """``(g, V)`` of shapes ``(B, N)`` and ``(B, N, L)``: given, or from the scales."""
    if init_params is None:
        param = RowHadamard(N, L)
        v_scale = param.balanced_v_scale(init_scale) if v_scale is None else v_scale
        check_positive(v_scale, "v_scale")
        g, V = param.init(init_scale, v_scale=v_scale)
        if init == "zero":
            V = np.zeros_like(V)
        return np.array(np.broadcast_to(g, (B, N))), np.array(np.broadcast_to(V, (B, N, L)))
    g0, V0 = (check_array(p, name) for p, name in zip(init_params, ("g", "V"), strict=True))
    try:
        return np.array(np.broadcast_to(g0, (B, N))), np.array(np.broadcast_to(V0, (B, N, L)))
    except ValueError:
        raise ValueError(f"init_params must have shapes ([B,] {N}) and ([B,] {N}, {L}), "
                         f"got {g0.shape} and {V0.shape}") from None


@dataclass(eq=False)
class MMVState:
    """One run of :func:`ir_mmv`: made by :func:`mmv_init`, advanced by :func:`mmv_step`,
    read out by :func:`mmv_finish`.

    The problems still running are compacted along the leading axis: row ``j`` of ``g``,
    ``V``, ``R``, ... is problem ``ids[j]`` of the batch. A problem that stops is copied to
    ``out`` (whole-batch arrays) and dropped from the working rows, so it costs nothing more.
    The caller's :class:`~overparam.stopping.Validation` objects are not touched: the run
    works on copies (``all_validations``) and reports their curves.
    """

    param: RowHadamard
    policy: StepPolicy
    policy_limits: bool  # whether the policy caps steps (StepPolicy.limit overridden)
    monitor: BatchMonitor
    sequential: bool
    row_tol: float
    max_row_change: float | None
    max_flow_time: float | None
    time_per_step: float  # flow time per unit step: loss weight 2 (no 1/2) times M rows
    start: float
    all_validations: list  # whole batch: a copy of each problem's validation, or None
    reasons: list  # whole batch: StopReason once stopped
    out: dict  # whole batch: final g, V, X, loss, clock, eta, n_iter, n_rejected
    g_window: np.ndarray | None  # ring buffer of g over the stagnation window (whole batch)
    # the working rows
    ids: np.ndarray
    A: np.ndarray
    At: np.ndarray
    Y: np.ndarray
    g: np.ndarray
    V: np.ndarray
    R: np.ndarray  # Y - A X
    Lam: np.ndarray  # A^T R
    loss: np.ndarray
    clock: np.ndarray
    eta: np.ndarray
    n_iter: np.ndarray
    n_rejected: np.ndarray
    validations: list
    every: list  # check period of each validation (2^62 for none)
    history: History | None = None
    done: list = field(default_factory=list)  # working rows that just stopped
    it: int = 0  # loop iterations: no problem has more accepted steps
    refresh_wait: int = 0  # iterations in which no residual refresh can fall due
    check_wait: int = 0  # iterations in which no validation check can fall due

    def signal(self, rows) -> np.ndarray:
        """``X`` of working rows ``rows`` (not kept up to date: only read here)."""
        return self.param.signal((self.g[rows], self.V[rows]))

    def stop(self, j: int, reason: StopReason) -> None:
        """Working row ``j`` stops (removed at the next :func:`_retire_stopped`)."""
        self.reasons[int(self.ids[j])] = reason
        self.done.append(j)

    def stop_all(self, reason: StopReason) -> None:
        """Every problem still running stops (a callback asked)."""
        for j in range(self.ids.size):
            if self.reasons[int(self.ids[j])] is None:
                self.stop(j, reason)


def mmv_init(A, Y, params, *, policy: StepPolicy, stopping: StoppingRule, validations,
             update: str = "simultaneous", row_tol: float = 1e-3,
             max_row_change: float | None = None, history: History | None = None) -> MMVState:
    """The state of :func:`ir_mmv` at ``params = (g, V)`` (batched arrays, checked).

    Problems that already meet a stopping test (a fit within ``tol``) stop before any step.
    """
    start = time.perf_counter()
    B, M, N = A.shape
    param = RowHadamard(N, Y.shape[2])
    g, V = params
    R = Y - A @ param.signal((g, V))
    loss = np.sum(R * R, axis=(1, 2))
    At = np.ascontiguousarray(np.swapaxes(A, 1, 2))  # contiguous: as any subset of it
    Lam = At @ R
    a_norm2 = np.linalg.norm(A, ord=2, axis=(1, 2)) ** 2
    monitor = BatchMonitor(stopping, np.sqrt(np.sum(Y * Y, axis=(1, 2))), loss)
    copies = [private_validation(v) for v in validations]
    g_window = None
    if stopping.stagnation_tol > 0:
        g_window = np.empty((stopping.patience + 1, B, N))
        g_window[0] = g
    zeros = np.zeros(B, dtype=int)
    out = {"g": np.empty_like(g), "V": np.empty_like(V), "X": np.empty_like(V),
           "loss": np.empty_like(loss), "clock": np.zeros(B), "eta": np.empty(B),
           "n_iter": zeros.copy(), "n_rejected": zeros.copy()}
    every = [_NO_CHECK if v is None else int(v.every) for v in copies]
    state = MMVState(
        param=param, policy=policy, policy_limits=type(policy).limit is not StepPolicy.limit,
        monitor=monitor, sequential=update == "sequential",
        row_tol=float(row_tol), max_row_change=max_row_change,
        max_flow_time=stopping.max_flow_time, time_per_step=2.0 * M,
        start=start, all_validations=copies, reasons=[None] * B, out=out, g_window=g_window,
        ids=np.arange(B), A=A, At=At, Y=Y, g=g, V=V, R=R, Lam=Lam, loss=loss,
        clock=np.zeros(B), eta=policy.start_batch(_initial_step_guess(a_norm2, g, V, Lam)),
        n_iter=zeros.copy(), n_rejected=zeros.copy(), validations=list(copies), every=every,
        history=history, refresh_wait=_due(zeros.tolist(), [_REFRESH] * B, [False] * B)[1],
        check_wait=_due(zeros.tolist(), every, [False] * B)[1])
    reasons = monitor.update(state.ids, zeros, loss, np.sqrt(loss), state.clock)
    for b, reason in enumerate(reasons or ()):
        if reason is not None:
            state.stop(b, reason)
    if history is not None:
        _record(history, state, 0)
    return state


def mmv_step(state: MMVState) -> list[bool] | None:
    """One iteration: a trial step for every problem still running, kept where its step
    policy accepts it. Returns which problems moved (None when none did)."""
    s = state
    s.it += 1
    # The gradient of RowHadamard.vjp at G = d||Y - A X||^2/dX = -2 Λ, written out so that
    # ∇V = c ⊙ Λ (c = -2 g^2 per row) is formed only where it is read (a policy's limit):
    # ∇g = -4 g ⊙ <Λ_i, V_i>, and ||∇V||^2 = sum_i c_i^2 ||Λ_i||^2.
    lam_v = _sum(s.Lam * s.V, -1)
    grad_g, c = -4.0 * s.g * lam_v, -2.0 * s.g * s.g
    e = s.eta
    if s.policy_limits:
        cap = s.policy.limit_batch((s.g, s.V), (grad_g, c[..., None] * s.Lam))
        e = np.minimum(e, cap)
    if s.max_row_change is not None:
        e = np.minimum(e, _row_change_cap(s.g, lam_v, s.max_row_change))
    if s.max_flow_time is not None and (max(s.clock.tolist()) + 2.0 * max(e.tolist())
                                        * s.time_per_step >= s.max_flow_time):
        # land exactly on the requested time (the cap cannot bind before twice the step)
        e = np.minimum(e, np.maximum(s.max_flow_time - s.clock, 0.0) / s.time_per_step)
    trial = _trial_step(s, e, grad_g, c)
    accepted = _accept(s, e, trial)
    if not accepted.any():
        return None
    g_new, V_new, R_new, loss_new = trial["g"], trial["V"], trial["R"], trial["loss"]
    # Rows that died (|g| < 1e-60: escape time ~1e60) become exactly zero, as they would
    # stay: subnormal numbers would slow every later iteration many times.
    g_new[np.abs(g_new) < _DEAD] = 0.0  # (V: at each residual refresh)
    clock_new = s.clock + e * s.time_per_step
    accepted_list = accepted.tolist()
    rejected = [j for j, a in enumerate(accepted_list) if not a]
    s.n_iter += accepted
    for j in rejected:  # keeps its state (few rows: cheaper than np.where)
        g_new[j], V_new[j], R_new[j] = s.g[j], s.V[j], s.R[j]
        loss_new[j], clock_new[j] = s.loss[j], s.clock[j]
    s.g, s.V, s.R, s.loss, s.clock = g_new, V_new, R_new, loss_new, clock_new
    _refresh_residuals(s, accepted_list)
    Lam_new = s.At @ s.R
    for j in rejected:
        Lam_new[j] = s.Lam[j]
    s.Lam = Lam_new
    return accepted_list


def _row_change_cap(g, lam_v, max_change: float) -> np.ndarray:
    """The largest step of each problem with ``|step grad_g_i| <= max_change |g_i|`` for
    every row, from ``grad_g_i / g_i = -4 <Λ_i, V_i>`` (``lam_v``); dead rows (``g_i = 0``)
    do not move and set no cap."""
    rate = np.abs(lam_v)
    rate[g == 0] = 0.0
    return max_change / (4.0 * rate.max(axis=-1))  # 1/0 = inf: no cap (warnings are off)


def _trial_step(s: MMVState, e, grad_g, c) -> dict:
    """The trial iterate of each working row for steps ``e`` along the gradient ``(grad_g,
    c ⊙ Λ)`` (see :func:`mmv_step`), with its residual and loss."""
    g, V, R, Lam = s.g, s.V, s.R, s.Lam
    neg_e = -e
    d_g = neg_e[:, None] * grad_g
    g_new = g + d_g
    if s.sequential:  # Algorithm 1: V steps along its gradient at the new g
        d_V = (2.0 * e[:, None] * g_new * g_new)[..., None] * Lam
    else:
        d_V = (neg_e[:, None] * c)[..., None] * Lam
    V_new = V + d_V
    # The change of the loss from the change of X, not as a difference of two losses: on a
    # plateau it is far below the rounding error of the loss itself, and a rounding-noise
    # "increase" would make the step policy shrink the step for ever. With
    # d_R = -A d_X: sum(d_R * (d_R + 2 R)) and R + d_R, exactly.
    A_dX = s.A @ ((d_g * (2.0 * g + d_g))[..., None] * V_new + (g * g)[..., None] * d_V)
    d_loss = -_sum(A_dX * (2.0 * R - A_dX), (1, 2))
    return {"g": g_new, "V": V_new, "R": R - A_dX, "loss": s.loss + d_loss, "d_loss": d_loss,
            "A_dX": A_dX,
            "decrease": e * (_sum(grad_g * grad_g, -1)
                             + _sum(c * c * _sum(Lam * Lam, -1), -1))}


def _accept(s: MMVState, e, trial) -> np.ndarray:
    """Which trial steps are kept; sets the next steps and counts the rejections.

    A finite trial loss within the divergence limit, then the step policy's test on the
    change of the loss (as ``accept(step, 0, change, decrease)``, for its accuracy), then the
    same test with the change's rounding level as slack (:func:`_rounding_slack`).
    """
    ok = ~np.array(s.monitor.is_divergent(s.ids, trial["loss"]))
    d_loss, decrease = trial["d_loss"], trial["decrease"]
    accepted = ok & s.policy.accept_batch(e, 0.0, d_loss, decrease)
    eta = s.policy.next_after_accept_batch(e)
    if accepted.all():
        s.eta = eta
        return accepted
    for j in np.flatnonzero(ok & ~accepted).tolist():
        slack = _rounding_slack(trial["A_dX"][j], s.R[j])
        accepted[j] = s.policy.accept_batch(e[j:j + 1], slack, d_loss[j:j + 1],
                                            decrease[j:j + 1])[0]
    for j in np.flatnonzero(~accepted).tolist():
        s.n_rejected[j] += 1
        try:  # raises once the step falls below the policy's minimum
            eta[j] = s.policy.next_after_reject(float(e[j]))
        except DivergenceError as err:
            raise DivergenceError(f"problem {s.ids[j]} of the batch: {err}") from err
    s.eta = eta
    return accepted


def _refresh_residuals(s: MMVState, accepted) -> None:
    """``R = Y - A X`` again every ``_REFRESH`` accepted steps of a problem, against drift."""
    if s.refresh_wait:
        s.refresh_wait -= 1
        return
    rows, s.refresh_wait = _due(s.n_iter.tolist(), [_REFRESH] * s.ids.size, accepted)
    if rows:
        V = s.V[rows]
        V[np.abs(V) < _DEAD ** 2] = 0.0  # no subnormal numbers (see mmv_step)
        s.V[rows] = V
        s.R[rows] = s.Y[rows] - s.A[rows] @ s.signal(rows)
        s.loss[rows] = _sum(s.R[rows] ** 2, (1, 2))


def _stop_tests(s: MMVState, accepted) -> None:
    """The stopping rule for the problems that just moved (:class:`BatchMonitor`), with the
    row-growth test of ``row_tol`` before a flat loss counts as stagnation."""
    rows = None if all(accepted) else np.flatnonzero(accepted)
    ids, n_iter, loss, clock = ((s.ids, s.n_iter, s.loss, s.clock) if rows is None else
                                (s.ids[rows], s.n_iter[rows], s.loss[rows], s.clock[rows]))
    window, slots = s.g_window, s.monitor.rule.patience + 1
    if window is not None:
        window[n_iter % slots, ids] = s.g if rows is None else s.g[rows]

    def still_learning(j: int) -> bool:
        # some g_i grew by more than a factor exp(row_tol) over the stagnation window
        k, i = int(n_iter[j]), int(ids[j])
        growth = np.nanmax(np.log(np.abs(window[k % slots, i]))
                           - np.log(np.abs(window[(k - slots + 1) % slots, i])),
                           initial=-np.inf)
        return bool(growth >= s.row_tol)

    reasons = s.monitor.update(ids, n_iter, loss, np.sqrt(loss), clock, still_learning)
    for j, reason in enumerate(reasons or ()):
        if reason is not None:
            s.stop(j if rows is None else int(rows[j]), reason)


def _validate(s: MMVState, accepted) -> None:
    """Held-out checks of the problems whose period of accepted steps just came round."""
    if s.check_wait:
        s.check_wait -= 1
        return
    due, s.check_wait = _due(s.n_iter.tolist(), s.every, accepted)
    for j in due:
        if s.validations[j].check(int(s.n_iter[j]), float(s.clock[j]), s.signal(j),
                                  (s.g[j].copy(), s.V[j].copy())):
            s.stop(j, StopReason.EARLY_STOPPED)


def _publish(s: MMVState, rows) -> None:
    """Copy working rows ``rows`` to the whole-batch output."""
    dest, out = s.ids[rows], s.out
    out["g"][dest], out["V"][dest], out["X"][dest] = s.g[rows], s.V[rows], s.signal(rows)
    for key in ("loss", "clock", "eta", "n_iter", "n_rejected"):
        out[key][dest] = getattr(s, key)[rows]


def _retire_stopped(s: MMVState) -> bool:
    """Move the problems that stopped to the output; whether any is still running."""
    if not s.done:
        return True
    gone = np.zeros(s.ids.size, dtype=bool)
    gone[s.done] = True
    _publish(s, gone)
    s.done = []
    if gone.all():
        return False
    keep = ~gone
    for key in ("ids", "A", "At", "Y", "g", "V", "R", "Lam", "loss", "clock", "eta", "n_iter",
                "n_rejected"):
        setattr(s, key, getattr(s, key)[keep])
    kept = keep.tolist()
    s.validations = [v for v, k in zip(s.validations, kept, strict=True) if k]
    s.every = [p for p, k in zip(s.every, kept, strict=True) if k]
    return True


def mmv_finish(s: MMVState) -> BatchResult:
    """The batch's result: each problem's last iterate, or its best held-out one."""
    out = s.out
    g, V, X = out["g"], out["V"], out["X"]
    if not np.all(np.isfinite(X)):
        raise DivergenceError(f"non-finite estimate after {int(out['n_iter'].max())} "
                              "iterations")
    info = {"time": out["clock"].copy(), "clock": "flow_time", "step": out["eta"].copy(),
            "n_rejected_steps": out["n_rejected"], "final_loss": out["loss"].copy(),
            "update": "sequential" if s.sequential else "simultaneous"}
    validations = s.all_validations
    best_it = np.full(len(validations), -1)
    for b, val in enumerate(validations):
        if val is not None and s.reasons[b] != StopReason.EARLY_STOPPED:
            # the end of the path is on the curve too (a path that stops between two checks)
            val.finish(int(out["n_iter"][b]), float(out["clock"][b]), X[b].copy(),
                       (g[b].copy(), V[b].copy()))
        if val is not None and val.best_state is not None:
            g[b], V[b] = val.best_state
            X[b] = s.param.signal((g[b], V[b]))
            best_it[b] = val.best_iteration
    if any(v is not None for v in validations):
        info.update(best_iteration=best_it,
                    best_time=np.array([v.best_time if v else np.nan for v in validations]),
                    validation_error=np.array([v.best_error if v else np.nan
                                               for v in validations]),
                    validation_curve=[None if v is None else
                                      np.asarray(v.curve, dtype=float).reshape(-1, 3)
                                      for v in validations])
    return BatchResult(coef=X, params=(g, V), n_iter=out["n_iter"],
                       wall_time=time.perf_counter() - s.start, stop_reason=list(s.reasons),
                       info=info, history=s.history)


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

def _rounding_slack(A_dX, R) -> float:
    """Rounding level of ``-sum(A dX * (2 R - A dX))``: ``10 eps`` times the sum of the
    magnitudes of its terms.

    At a stationary point with a nonzero residual (a least-squares point of inconsistent
    data) the gradient is at the rounding level, and so is the computed change of the loss:
    its sign is noise, whatever the step, since both scale with it. The strict test would
    reject every step until the step underflows (a ``DivergenceError`` at a point that solves
    the problem). A change within this slack is no evidence of an increase: the step is
    accepted, the loss stays flat and the stopping rule ends the run. The policy gets this
    second chance as ``accept(step, slack, change, decrease)``.
    """
    return 10.0 * _EPS * float(_sum(np.abs(A_dX) * np.abs(2.0 * R - A_dX), None))


def _due(counts, periods, accepted):
    """The problems whose count of accepted steps has just reached a multiple of their period,
    and the number of loop iterations in which none can next (each accepts one step at most
    per iteration)."""
    due = [j for j, (n, p) in enumerate(zip(counts, periods, strict=True))
           if accepted[j] and n % p == 0]
    return due, min((-n - 1) % p for n, p in zip(counts, periods, strict=True))


def _record(history: History, s: MMVState, j: int) -> None:
    iteration = s.n_iter[j]
    if history.iteration and history.iteration[-1] == iteration:
        return
    history.record(int(iteration), time.perf_counter() - s.start, float(s.loss[j]),
                   (s.g[j].copy(), s.V[j].copy()), s.signal(j).copy())
    history.values.setdefault("flow_time", []).append(float(s.clock[j]))
