"""IR-MMV: gradient descent on ``X = (g^2 1_L^T) ⊙ V`` for a batch of MMV problems at once.

Written by hand: no library implements this factorization. The step (:class:`RowHadamardStep`)
is the maths: its gradient is :class:`~overparam.parameterizations.RowHadamard`'s pullback, its
step sizes the array forms of the shared step policies; the batched solver loop
(:func:`~overparam.solvers.batch_loop.run_batch_loop`) does the rest. The ``B`` problems of a
batch share nothing but the loop; each has its own step, clock, stopping test and stop reason,
and a problem that has stopped costs nothing in later iterations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._optional import require
from .._validation import check_array, check_positive
from ..parameterizations.row import RowHadamard
from ..stopping import DivergenceError, StoppingRule, Validation
from ._blas import blas_limit
from .batch_loop import BatchResult, run_batch_loop
from .result import History
from .steps import MAX_STEP, MIN_STEP, AdaptiveStep, StepPolicy, as_step_policy

__all__ = ["ACCELERATORS", "INITS", "UPDATES", "BatchResult", "CompiledRowHadamardStep",
           "RowHadamardStep", "candidate_supports", "ir_mmv", "numba_available",
           "refine_row_sparse", "select_step"]

_DEAD = 1e-60  # |g_i| below this is set to zero (a row this small never comes back)
_EPS = float(np.finfo(float).eps)
_REFRESH = 100  # accepted steps between two recomputations of R = Y - A X
# np.add.reduce is np.sum without its Python wrapper (same result, bit for bit)
_sum = np.add.reduce
_fmax = np.fmax.reduce  # the largest entry, NaN skipped (np.nanmax without its wrapper)
_fmin = np.fmin.reduce  # the smallest entry, NaN skipped

#: ``"sequential"``: Algorithm 1 as printed (``V`` is updated with ``g(t+1)``);
#: ``"simultaneous"``: plain gradient descent on ``(g, V)``.
UPDATES = ("sequential", "simultaneous")
#: ``V(0)``: ``"zero"`` (rows free to change sign) or the paper's balanced ``"ones"``.
INITS = ("zero", "ones")




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
    gram: bool | None = None,
    step_class=None,
    accelerator: str = "auto",
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
    gram : bool or None, default=None
        Carry ``Λ = A^T R`` through the Gram matrix ``A^T A`` (formed once): one ``N x N``
        product per step instead of two ``M x N`` ones (``A dX`` and ``A^T R``). None: where
        that is fewer operations, ``N < 2 M``. Both forms give the same iterates up to
        rounding.
    step_class : type, optional
        The step (default :class:`RowHadamardStep`).
        :class:`~overparam.solvers.mmv_active.ActiveRowsStep` steps the fast and stiff rows
        every iteration and the slow rows once per block with their gradient integrated over
        it (products with the active columns of ``A`` only, through their own Gram matrix
        where that is less work; ``gram`` must be off, simultaneous update): the same
        gradient flow and clock, cheaper where few rows are active.
    accelerator : {"auto", "numpy", "numba"}, default="auto"
        ``"numba"``: the compiled step
        (:class:`CompiledRowHadamardStep`, or for ``ActiveRowsStep``
        :class:`~overparam.solvers.mmv_active.CompiledActiveRowsStep`: the same
        iterates up to rounding, several loop passes per call; simultaneous update and
        adaptive step only, a ``ValueError`` otherwise, a ``MissingExtraError`` without
        numba). ``"numpy"``: the numpy step. ``"auto"``: the compiled step where
        numba imports and the setting is one it covers, else the numpy step.

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

    **Cost.** For small problems numpy's per-call overhead, not arithmetic, dominates: the
    loop keeps the running problems compacted
    (:func:`~overparam.solvers.batch_loop.run_batch_loop`), the step asks the step policy
    through its array forms (:meth:`StepPolicy.accept_batch`) and refreshes the residual
    only every 100 accepted steps. Floating-point warnings are off in the loop (a trial step
    that overflows is rejected). ``benchmarks/mmv_overhead.py`` measures the cost per
    iteration. For larger problems the products dominate: two ``M x N`` ones per step
    (``A dX`` and ``A^T R``), or one ``N x N`` one in the Gram form (``gram``), which the
    overdetermined settings (``N < 2 M``) use by default.
    """
    A, Y, batched, validations = _check_inputs(A, Y, update=update, init=init,
                                               init_scale=init_scale, row_tol=row_tol,
                                               validation=validation, history=history)
    g, V = _start_params(init_params, A.shape[0], A.shape[2], Y.shape[2], init_scale=init_scale,
                         v_scale=v_scale, init=init)
    if max_row_change is not None:
        check_positive(max_row_change, "max_row_change")
    stopping = stopping or StoppingRule()
    policy = as_step_policy(step)
    step_class = select_step(accelerator, step_class, policy, update)
    step = (step_class or RowHadamardStep)(
        A, Y, (g, V), policy, update=update, row_tol=row_tol,
        max_row_change=max_row_change, gram=gram,
        patience=stopping.patience if stopping.stagnation_tol > 0 else None)
    with blas_limit(blas_threads):
        result = run_batch_loop(step, np.sqrt(np.sum(Y * Y, axis=(1, 2))), stopping=stopping,
                                validations=validations, history=history, callback=callback,
                                progress=progress)
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



class RowHadamardStep:
    """One gradient step of IR-MMV for every running problem of a batch: the
    :class:`~overparam.solvers.batch_loop.BatchStep` of :func:`ir_mmv`.

    Holds the working rows (row ``j`` of ``g``, ``V``, ``R = Y - A X``, ``Λ = A^T R``, ... is
    the ``j``-th problem still running). The gradient of ``||Y - A X||_F^2`` is
    :meth:`RowHadamard.vjp` at ``G = -2 Λ``; each problem tries ``min(eta, policy limit, row
    change cap, time left)`` and keeps the step where its policy accepts the change of the
    loss. The clock is the flow time of ``1/(2M) ||A X - Y||_F^2``: ``2 M`` per unit step.
    It carries ``R`` (``Λ = A^T R`` from it after each step) or, in the Gram form
    (``gram``), ``Λ`` itself through ``A^T A``; both refresh from ``R = Y - A X`` every 100
    accepted steps.
    """

    name = "IR-MMV"
    clock = "flow_time"

    @classmethod
    def compiled_form(cls):
        """The compiled step that does this step's arithmetic (see :func:`select_step`), for
        this class itself only (a subclass may step otherwise): None where there is none."""
        return CompiledRowHadamardStep if cls is RowHadamardStep else None

    def __init__(self, A, Y, params, policy: StepPolicy, *, update: str = "simultaneous",
                 row_tol: float = 1e-3, max_row_change: float | None = None,
                 patience: int | None = None, gram: bool | None = None):
        B, M, N = A.shape
        self.parameterization = RowHadamard(N, Y.shape[2])
        self.policy, self.sequential = policy, update == "sequential"
        self.policy_limits = policy.sets_limit()
        self.row_tol, self.max_row_change = float(row_tol), max_row_change
        self.time_per_step = 2.0 * M  # loss weight 2 (no 1/2) times M rows
        self.A, self.Y = A, Y
        # one N x N product per step instead of two M x N ones where that is less work
        self.gram = N < 2 * M if gram is None else bool(gram)
        At = np.ascontiguousarray(np.swapaxes(A, 1, 2))  # contiguous: as any subset of it
        self.G = At @ A if self.gram else None
        self.At = None if self.gram else At
        self.g, self.V = params
        # ring buffer of g over the stagnation window (whole batch), for still_learning
        self.g_window = None if patience is None else np.empty((patience + 1, B, N))
        self.ids = np.arange(B)  # the problem of each working row (for messages)
        self.n_accepted, self.n_rejected = np.zeros(B, dtype=int), np.zeros(B, dtype=int)
        self.refresh_wait = _REFRESH - 1  # iterations in which no residual refresh falls due
        # log |g| at each working row's last held-out check (the staircase test; -inf: g = 0)
        with np.errstate(divide="ignore"):
            self.log_g_checked = np.log(np.abs(self.g))
        self.out = {"eta": np.empty(B), "n_rejected": np.zeros(B, dtype=int)}
        self.grad = None  # (∇g, P, ||∇||², g², 2 g) of the working rows at their current iterates

    def init(self) -> np.ndarray:
        """The residuals at the start, and each problem's first trial step."""
        R = self.Y - self.A @ self.signal(slice(None))
        self.loss = np.sum(R * R, axis=(1, 2))
        self.Lam = np.swapaxes(self.A, 1, 2) @ R
        self.R = None if self.gram else R  # the Gram form carries Λ alone
        if self.g_window is not None:
            self.g_window[0] = self.g
        a_norm2 = self._norm2()
        self.eta = self.policy.start_batch(_initial_step_guess(a_norm2, self.g, self.V,
                                                               self.Lam))
        return self.loss

    def _norm2(self) -> np.ndarray:
        """``||A||_2^2`` of each problem, for the first step's guess."""
        return np.linalg.norm(self.A, ord=2, axis=(1, 2)) ** 2

    def params(self, rows) -> tuple:
        return self.g[rows], self.V[rows]

    def signal(self, rows) -> np.ndarray:
        """``X`` of working rows ``rows`` (not kept up to date: only read here)."""
        return self.parameterization.signal((self.g[rows], self.V[rows]))

    def step(self, time_left, diverged):
        if self.grad is None:  # kept while no row moves (a rejected step changes no state)
            self.grad = self._gradient()
        grad_g, P, grad_norm2, gg, two_g = self.grad
        e = self.eta
        if self.policy_limits:
            e = np.minimum(e, self.policy.limit_batch((self.g, self.V), (grad_g, -2.0 * P)))
        e = self._capped(e, self.g, grad_g, time_left)
        trial = self._trial_step(e, grad_g, P, gg, two_g)
        trial["decrease"] = e * grad_norm2
        accepted = self._accept(e, trial, diverged)
        if not any(accepted.tolist()):  # (on a few entries: cheaper than ndarray.any)
            return None
        return self._move(accepted, trial, e)

    def _capped(self, e, g, grad_g, time_left):
        """Steps ``e`` within the row-change cap at ``g`` and landing on the requested time."""
        if self.max_row_change is not None:
            e = np.minimum(e, _row_change_cap(g, grad_g, self.max_row_change))
        if time_left is not None and (2.0 * max(e.tolist()) * self.time_per_step
                                      >= min(time_left.tolist())):
            # land exactly on the requested time (the cap cannot bind before twice the step)
            e = np.minimum(e, np.maximum(time_left, 0.0) / self.time_per_step)
        return e

    def _gradient(self):
        """``(∇g, P, ||∇||², g², 2 g)`` of ``||Y - A X||_F^2`` with ``∇V = -2 P``,
        ``P = g² ⊙ Λ``.

        The pullback of ``G = -2 Λ`` (:meth:`RowHadamard.vjp`, written out here with the
        same operations in the same order, to keep ``g²`` and ``2 g`` for the trial step), by
        linearity ``-2`` times that of ``Λ``. ``∇V`` itself is never formed: the step uses
        ``-e ∇V = 2 e P`` and ``||∇V||² = 4 ||P||²``; products by powers of 2 are exact, so
        every number is the same, bit for bit, as with ``∇V`` formed.
        """
        return row_gradient(self.g, self.V, self.Lam)

    def _trial_step(self, e, grad_g, P, gg, two_g) -> dict:
        """The trial iterate of each working row for steps ``e``, its residual (or ``Λ``) and
        the change of its loss (``∇V = -2 P``, ``gg = g²``, ``two_g = 2 g``)."""
        d_V = None
        if self.sequential:  # Algorithm 1: V steps along its gradient at the new g
            g_new = self.g - e[:, None] * grad_g
            d_V = 2.0 * e[:, None, None] * self.parameterization.signal((g_new, self.Lam))
        return trial_step(e, self.g, self.V, (grad_g, P, gg, two_g), self.loss,
                          gram=self.G if self.gram else None, A=self.A,
                          carried=self.Lam if self.gram else self.R, d_V=d_V)

    def _accept(self, e, trial, diverged) -> np.ndarray:
        """Which trial steps are kept; sets the next steps and counts the rejections.

        A finite trial loss within the divergence limit, then the step policy's test on the
        change of the loss (as ``accept(step, 0, change, decrease)``, for its accuracy), then
        the same test with the change's rounding level as slack (:func:`_rounding_slack`).
        """
        divergent = diverged(trial["loss"])  # None: none
        d_loss, decrease, policy = trial["d_loss"], trial["decrease"], self.policy
        accepted = policy.accept_batch(e, 0.0, d_loss, decrease)
        if divergent is not None:
            accepted = accepted & ~np.asarray(divergent)
        eta = policy.next_after_accept_batch(e)
        self.eta = eta
        if all(accepted.tolist()):
            return accepted
        # a problem or two per iteration (the adaptive step grows until one is rejected):
        # the scalar rules (accept_batch gives accept's answers entry by entry)
        uw = trial["uw"]
        finite = ([True] * e.size if divergent is None
                  else (~np.asarray(divergent)).tolist())
        for j, a in enumerate(accepted.tolist()):
            if a:
                continue
            if finite[j]:
                slack = _rounding_slack(uw[j])
                if policy.accept(float(e[j]), slack, float(d_loss[j]), float(decrease[j])):
                    accepted[j] = True
                    continue
            self.n_rejected[j] += 1
            try:  # raises once the step falls below the policy's minimum
                eta[j] = policy.next_after_reject(float(e[j]))
            except DivergenceError as err:
                raise DivergenceError(f"problem {self.ids[j]} of the batch: {err}") from err
        return accepted

    def _move(self, accepted, trial, e):
        """Keep the accepted trial steps; ``(accepted, dt, loss)`` for the loop."""
        g_new, V_new, loss_new = trial["g"], trial["V"], trial["loss"]
        carried = "Lam" if self.gram else "R"  # Λ, or R (and Λ = A^T R from it)
        new = trial[carried]
        # Rows that died (|g| < 1e-60: escape time ~1e60) become exactly zero, as they would
        # stay: subnormal numbers would slow every later iteration many times.
        if _fmin(np.abs(g_new), None) < _DEAD:  # (rare; fmin: NaN skipped, as `<` does)
            g_new[np.abs(g_new) < _DEAD] = 0.0  # (V: at each residual refresh)
        dt = e * self.time_per_step
        accepted_list = accepted.tolist()
        rejected = [j for j, a in enumerate(accepted_list) if not a]
        self.n_accepted += accepted
        old = getattr(self, carried)
        for j in rejected:  # keeps its state (few rows: cheaper than np.where)
            g_new[j], V_new[j], new[j] = self.g[j], self.V[j], old[j]
            loss_new[j], dt[j] = self.loss[j], 0.0
        self.g, self.V, self.loss = g_new, V_new, loss_new
        self.grad = None
        setattr(self, carried, new)
        self._refresh_residuals(accepted_list)
        if not self.gram:
            Lam_new = self.At @ self.R
            for j in rejected:
                Lam_new[j] = self.Lam[j]
            self.Lam = Lam_new
        return accepted_list, dt, self.loss

    def _refresh_residuals(self, accepted) -> None:
        """``R = Y - A X`` (Gram form: ``Λ = A^T R``) again every ``_REFRESH`` accepted steps
        of a problem, against drift."""
        if self.refresh_wait:
            self.refresh_wait -= 1
            return
        counts = self.n_accepted.tolist()
        rows = [j for j, n in enumerate(counts) if accepted[j] and n % _REFRESH == 0]
        self.refresh_wait = min((-n - 1) % _REFRESH for n in counts)
        if rows:
            V = self.V[rows]
            V[np.abs(V) < _DEAD ** 2] = 0.0  # no subnormal numbers (see _move)
            self.V[rows] = V
            R = self.Y[rows] - self.A[rows] @ self.signal(rows)
            self.loss[rows] = _sum(R ** 2, (1, 2))
            if self.gram:
                self.Lam[rows] = np.swapaxes(self.A[rows], 1, 2) @ R
            else:
                self.R[rows] = R

    def still_learning(self, rows, ids, n_iter):
        """The row-growth test of ``row_tol``: a flat loss is no stagnation while some
        ``g_i`` grew by more than a factor ``exp(row_tol)`` over the stagnation window."""
        window = self.g_window
        if window is None:
            return None
        slots = window.shape[0]
        window[n_iter % slots, ids] = self.g[rows]

        def learning(j: int) -> bool:
            k, i = int(n_iter[j]), int(ids[j])
            # fmax skips NaN (log 0 - log 0): np.nanmax's result without its Python wrapper
            growth = _fmax(np.log(np.abs(window[k % slots, i]))
                           - np.log(np.abs(window[(k - slots + 1) % slots, i])),
                           initial=-np.inf)
            return bool(growth >= self.row_tol)

        return learning

    def staircase(self, j: int) -> bool:
        """Whether some row scale ``g_i`` of working row ``j`` grew by more than a factor
        ``exp(row_tol)`` since its last held-out check: a row escaping from the small init.

        Between two rows being learned the held-out error is flat for long while the next
        row's ``g_i`` grows exponentially; the loop does not take that flat stretch for the
        minimum of the held-out error (:func:`~overparam.solvers.batch_loop.run_batch_loop`).
        """
        log_g = np.log(np.abs(self.g[j]))
        growth = _fmax(log_g - self.log_g_checked[j], initial=-np.inf)
        self.log_g_checked[j] = log_g
        return self._climbing(j, bool(growth >= self.row_tol))

    def _climbing(self, j: int, grew: bool) -> bool:
        """:meth:`staircase` of working row ``j`` given whether a row scale grew since the
        check (a step that moves some rows only now and then adds theirs)."""
        return grew

    def keep(self, mask) -> None:
        for key in ("ids", "A", "Y", "g", "V", "Lam", "loss", "eta", "n_accepted",
                    "n_rejected", "log_g_checked", *(("G",) if self.gram else ("At", "R"))):
            setattr(self, key, getattr(self, key)[mask])
        if self.grad is not None:
            self.grad = tuple(part[mask] for part in self.grad)

    def publish(self, rows, dest) -> None:
        self.out["eta"][dest] = self.eta[rows]
        self.out["n_rejected"][dest] = self.n_rejected[rows]

    def info(self) -> dict:
        return {"step": self.out["eta"].copy(), "n_rejected_steps": self.out["n_rejected"],
                "update": "sequential" if self.sequential else "simultaneous"}


def row_gradient(g, V, Lam):
    """``(∇g, P, ||∇||², g², 2 g)`` of ``||Y - A X||_F^2`` at ``(g, V)`` with ``Λ = A^T R``
    (``∇V = -2 P``; see :meth:`RowHadamardStep._gradient`), for the rows given."""
    gg, two_g = g * g, 2.0 * g
    grad_g = two_g * _sum(Lam * V, -1)  # RowHadamard.vjp's dg
    grad_g *= -2.0
    P = gg[..., None] * Lam  # RowHadamard.vjp's dV
    return grad_g, P, _sum(grad_g * grad_g, -1) + 4.0 * _sum(P * P, (1, 2)), gg, two_g


def trial_step(e, g, V, gradient, loss, *, gram, A, carried, d_V=None) -> dict:
    """The trial iterate ``(g, V) - e ∇`` of each problem, its carried residual and the change
    of its loss: shared by :class:`RowHadamardStep` and the multirate step (on its active
    rows). ``gradient``: :func:`row_gradient`'s ``(∇g, P, g², 2 g)``; ``carried``: ``R`` (or
    ``Λ`` in the Gram form, ``gram`` the ``A^T A`` stack, else None); ``d_V``: the change of
    ``V`` if not ``2 e P`` (Algorithm 1's sequential update)."""
    grad_g, P, gg, two_g = gradient
    d_g = -e[:, None] * grad_g
    g_new = g + d_g
    if d_V is None:
        d_V = (2.0 * e)[:, None, None] * P  # -e ∇V, bit for bit
    V_new = V + d_V
    d_X = (d_g * (two_g + d_g))[..., None] * V_new
    d_X += gg[..., None] * d_V  # in place: the same sum, one array fewer
    # The change of the loss from the change of X, not as a difference of two losses: on
    # a plateau it is far below the rounding error of the loss itself, and a rounding-noise
    # "increase" would make the step policy shrink the step for ever. It is
    # -sum(u * w): with d_R = -A d_X, u = A d_X and w = 2 R - A d_X, and R + d_R exactly;
    # in the Gram form u = d_X and w = 2 Λ - A^T A d_X, and Λ - A^T A d_X.
    if gram is not None:
        u = d_X
        G_dX = gram @ d_X
    else:
        u = G_dX = A @ d_X
    w = 2.0 * carried
    w -= G_dX  # 2 R - A dX (2 Λ - A^T A dX), in place
    uw = u * w
    d_loss = _sum(uw, (1, 2))
    d_loss *= -1.0
    return {"u": u, "w": w, "uw": uw, "Lam" if gram is not None else "R": carried - G_dX,
            "g": g_new, "V": V_new, "loss": loss + d_loss, "d_loss": d_loss}


def _row_change_cap(g, grad_g, max_change: float) -> np.ndarray:
    """The largest step of each problem with ``|step grad_g_i| <= max_change |g_i|`` for
    every row; dead rows (``g_i = 0``) do not move and set no cap."""
    rate = grad_g / g
    np.abs(rate, out=rate)  # |a / b| = |a| / |b|, bit for bit (rounding is symmetric in sign)
    top = np.maximum.reduce(rate, -1)
    if any(x != x for x in top.tolist()):  # a dead row (0/0 = NaN; rare): as it was
        rate[g == 0] = 0.0
        top = np.maximum.reduce(rate, -1)
    return max_change / top  # 1/0 = inf: no cap (warnings are off)


# --- the compiled step (optional accelerator) -------------------------------------------------
#
# For small problems each iteration of RowHadamardStep is some seventy numpy calls on arrays of
# a few thousand entries, plus the batch loop's Python (stopping tests, held-out countdown): the
# cost is the calls', not the arithmetic's. CompiledRowHadamardStep does the same arithmetic in
# one numba call (overparam.solvers._mmv_numba.run_passes) and runs several passes of the loop
# in it, with the loop's per-pass tests compiled in; each pass on which the loop has something
# to do in Python (a stopping test that may fire, a due held-out check or history record) is
# handed back to the loop, which runs it as usual. Same iterates up to rounding (sums taken in
# another order); measured in docs/mmv.md ("A compiled step").

#: ``"auto"``: the compiled step where numba imports and covers the setting, else numpy;
#: ``"numpy"``: always numpy; ``"numba"``: the compiled step (an error where it cannot be).
ACCELERATORS = ("auto", "numpy", "numba")
#: Most passes of the loop in one compiled call: bounds the time between two wall-clock
#: tests (``StoppingRule.max_time``) and between two updates of a progress bar.
_MAX_PASSES = 1000


def numba_available() -> bool:
    """Whether numba imports."""
    try:
        require("numba", extra="numba")
    except ImportError:
        return False
    return True


def _kernel(name: str = "run_passes"):
    require("numba", extra="numba")
    from . import _mmv_numba

    return getattr(_mmv_numba, name)


def select_step(accelerator: str, step_class, policy, update: str):
    """The step class of :func:`~overparam.solvers.ir_mmv` for ``accelerator``
    (:data:`ACCELERATORS`): ``step_class`` (None: the plain step), or the compiled step
    where asked for and the setting allows it."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {ACCELERATORS}, got {accelerator!r}")
    base = RowHadamardStep if step_class is None else step_class
    compiled = base.compiled_form() if hasattr(base, "compiled_form") else None
    covered = (compiled is not None and update == "simultaneous"
               and type(policy) is AdaptiveStep)
    if accelerator == "numpy" or (accelerator == "auto" and not (covered
                                                                 and numba_available())):
        return step_class
    if not covered:
        raise ValueError("accelerator='numba' covers the plain and the multirate step "
                         "(no step_class, or ActiveRowsStep) with update='simultaneous' and "
                         "step='adaptive' only")
    _kernel()  # the one-line MissingExtraError where numba is missing
    return compiled


class _CompiledPasses:
    """What the compiled steps share: the step policy's and the stopping rule's numbers as
    the kernels' arrays, the loop's monitor state, and the policy's error on an underflow.
    Mixed into a :class:`RowHadamardStep` (simultaneous update, adaptive step)."""

    def _compiled_setup(self, policy, n_iparams: int) -> None:
        if self.sequential or type(policy) is not AdaptiveStep:
            raise ValueError(f"{type(self).__name__} takes the simultaneous update and the "
                             "adaptive step only")
        p = policy
        self.fparams = np.array([p.grow, p.shrink, p.armijo, p.max_step,
                                 max(p.min_step, MIN_STEP), MAX_STEP,
                                 np.inf if self.max_row_change is None else self.max_row_change,
                                 self.time_per_step, 0.0, 0.0, 0.0, self.row_tol, _DEAD])
        self.iparams = np.zeros(n_iparams, dtype=np.int64)
        self.monitor_state = None  # the loop's monitor's arrays, at the first call
        self._check = _kernel("held_out_check")

    def held_out_check(self, j: int, matrix, y) -> tuple[float, bool]:
        """``(validation.error(signal(j)), staircase(j))`` for held-out rows ``matrix`` and
        measurements ``y`` (C-ordered, 2-D), in one compiled call
        (:func:`~overparam.solvers._mmv_numba.held_out_check`; equal to rounding)."""
        err, grew = self._check(matrix, y, self.g[j], self.V[j], self.log_g_checked[j],
                                self.row_tol)
        return float(err), self._climbing(j, bool(grew))

    def _loop_state(self, monitor, max_flow_time) -> tuple:
        """``(limit, res_stop, window, g_window)`` of the loop's monitor (fixed for the run:
        the windows are written in place); sets the rule's numbers in ``fparams``."""
        if self.monitor_state is None:
            limit, res_stop, window = monitor.compiled_state()
            rule = monitor.rule
            use_window = window is not None and self.g_window is not None
            self.monitor_state = (limit, res_stop, window if use_window else np.empty((1, 1)),
                                  self.g_window if use_window else np.empty((1, 1, 1)))
            self.use_window = use_window
            f = self.fparams
            f[8] = np.inf if max_flow_time is None else max_flow_time
            f[9] = np.inf if rule.end_time is None else rule.end_time
            f[10] = rule.stagnation_tol
        return self.monitor_state

    def _rule_iparams(self, monitor) -> tuple:
        """``(patience, use_window, max_iter)`` of the loop's stopping rule."""
        rule = monitor.rule
        return rule.patience, int(self.use_window), rule.max_iter

    def _underflow(self, row: int, step: float):
        """The policy's own error where a compiled step underflowed, as the numpy step raises
        it."""
        try:
            self.policy.next_after_reject(float(step))
        except DivergenceError as err:
            raise DivergenceError(f"problem {self.ids[row]} of the batch: {err}") from err
        raise AssertionError("the compiled step underflowed where the policy did not")


class CompiledRowHadamardStep(_CompiledPasses, RowHadamardStep):
    """:class:`~overparam.solvers.mmv.RowHadamardStep` (simultaneous update, adaptive step)
    with its passes compiled: :meth:`passes` runs several passes of the batch loop in one
    call (module docstring). :meth:`step` stays the numpy one."""

    def __init__(self, A, Y, params, policy, **kwargs):
        super().__init__(A, Y, params, policy, **kwargs)
        self._compiled_setup(policy, 7)
        self._run = _kernel()
        # C order throughout (one compiled version: each layout would compile anew)
        self.A, self.Y, self.g, self.V = (np.ascontiguousarray(x, dtype=float)
                                          for x in (self.A, self.Y, self.g, self.V))
        # A^T: the numpy step keeps it for the direct form only (Λ = A^T R); the compiled
        # Gram form's residual refresh needs it too
        if self.gram:
            self.At = np.ascontiguousarray(np.swapaxes(self.A, 1, 2))

    def passes(self, n_iter, clock, monitor, *, n_max: int, max_flow_time, history_every: int):
        """Up to ``n_max`` passes of the loop in which some row moves (working rows, in
        place; ``n_iter`` and ``clock`` are the loop's), stopping after the first one whose
        checks the loop must run. Returns the number of passes, the last one's ``accepted``
        (a list of bool) and whether a stopping test may fire after it (else, with no
        wall-clock limit, the loop skips them: the compiled tests wrote their windows)."""
        limit, res_stop, window, g_window = self._loop_state(monitor, max_flow_time)
        self.iparams[:] = (int(self.gram), min(int(n_max), _MAX_PASSES),
                           *self._rule_iparams(monitor), int(history_every), _REFRESH)
        B = self.A.shape[0]
        empty = np.empty((B, 0, 0))
        accepted = np.zeros(B, dtype=np.bool_)
        passes, status, row, step, may_stop = self._run(
            self.A, self.At, self.G if self.gram else empty, self.Y, self.g, self.V,
            empty if self.gram else self.R, self.Lam, self.loss, self.eta, self.n_accepted,
            self.n_rejected, n_iter, clock, self.ids, accepted, limit, res_stop, window,
            g_window, self.fparams, self.iparams)
        self.grad, self.refresh_wait = None, 0  # the numpy step recomputes both
        if status:
            self._underflow(row, step)
        return passes, accepted.tolist(), may_stop

    def keep(self, mask) -> None:
        super().keep(mask)
        if self.gram:  # (the numpy step's keep subsets A^T in the direct form)
            self.At = self.At[mask]


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


def _rounding_slack(uw) -> float:
    """Rounding level of the change of the loss ``-sum(u * w)`` (``u = A dX``,
    ``w = 2 R - A dX``, or the Gram form's ``u = dX``, ``w = 2 Λ - A^T A dX``) from the
    products ``uw = u * w``: ``10 eps`` times the sum of the magnitudes of its terms
    (``|u w| = |u| |w|`` bit for bit: rounding is symmetric in the sign).

    At a stationary point with a nonzero residual (a least-squares point of inconsistent
    data) the gradient is at the rounding level, and so is the computed change of the loss:
    its sign is noise, whatever the step, since both scale with it. The strict test would
    reject every step until the step underflows (a ``DivergenceError`` at a point that solves
    the problem). A change within this slack is no evidence of an increase: the step is
    accepted, the loss stays flat and the stopping rule ends the run. The policy gets this
    second chance as ``accept(step, slack, change, decrease)``.
    """
    return 10.0 * _EPS * float(_sum(np.abs(uw), None))
