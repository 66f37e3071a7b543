"""Factorized gradient descent for matrix sensing: GD, perturbed GD, mini-batch SGD.

Wind, "Implicit regularization makes overparameterized asymmetric matrix sensing robust to
perturbations", Definition 2.1 (perturbed gradient descent):

    W_{k+1} = W_k - eta * grad L_k(W_k) + eta * E_k W_k,   W = (U; V),
    L_k(W) = 1/2 ||A_k(Y) - A_k(U V^T)||^2,

where the operator ``A_k`` may change between iterations (mini-batch SGD, Theorem 2.9) and
``E_k`` is any ``(n1 + n2) x (n1 + n2)`` perturbation. These iterations (a fixed step, a
non-gradient term, a changing loss) are not what :func:`~overparam.solvers.gradient_descent`
does, and no library implements them, so the loop is written here; the gradient itself is the
parameterization's hand-written, finite-difference-checked ``vjp``.

For plain GD on a fixed operator with the safe adaptive step, use
:func:`overparam.solvers.gradient_descent` with :class:`~overparam.parameterizations.Factorized`
(that is what :class:`~overparam.estimators.low_rank.FactorizedRegressor` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._validation import check_positive, check_random_state
from ..operators import GaussianSensingOperator, check_measurements
from ..stopping import DivergenceError, StoppingRule, Validation
from .loop import Iterate, run_loop
from .result import History, SolverResult

__all__ = [
    "FixedMeasurements",
    "GaussianStream",
    "equilibrating_scales",
    "factorized_sgd",
    "least_squares_limit",
    "low_rank_limit",
    "perturbed_gradient_descent",
    "refine_low_rank",
]


# --------------------------------------------------------------------------------------------
# Where each step's measurements come from
# --------------------------------------------------------------------------------------------
@dataclass
class _FullBatch:
    """The same operator and measurements at every step (plain / perturbed GD)."""

    operator: object
    y: np.ndarray

    def sample(self, k: int):
        return self.operator, self.y, 1.0


class GaussianStream:
    """Fresh Gaussian measurements of a fixed matrix at every step (streaming SGD, Thm 2.9).

    Step ``k`` draws a new :class:`~overparam.operators.GaussianSensingOperator` ``A_k`` with
    ``batch_size`` measurements, ``[A_k(X)]_i = <A_i, X> / sqrt(batch_size)``, and measures
    ``y_k = A_k(Y) + e_k`` with i.i.d. ``N(0, noise_level^2)`` noise ``e_k``.

    Parameters
    ----------
    Y : ndarray of shape (n1, n2)
        The matrix being measured (the stream plays the role of a measurement device).
    batch_size : int
        Measurements per step ``m``.
    noise_level : float, default=0.0
        Noise standard deviation per measurement.
    random_state : None or int
        Seeds the whole stream; step ``k`` uses the ``k``-th spawned seed, so the stream is
        reproducible and independent of how far it is read.
    """

    def __init__(self, Y, batch_size: int, *, noise_level: float = 0.0, random_state=None):
        self.Y = np.asarray(Y, dtype=float)
        if self.Y.ndim != 2:
            raise ValueError(f"Y must be a matrix, got shape {self.Y.shape}")
        check_positive(batch_size, "batch_size", integer=True)
        check_positive(noise_level, "noise_level", strict=False)
        self.batch_size = int(batch_size)
        self.noise_level = float(noise_level)
        self._seed = np.random.SeedSequence(random_state)
        self.n_measurements = self.batch_size  # per step

    @property
    def input_shape(self):
        return self.Y.shape

    def sample(self, k: int):
        seq = np.random.SeedSequence(self._seed.entropy, spawn_key=(*self._seed.spawn_key, k))
        op_seed, noise_seed = seq.spawn(2)
        op = GaussianSensingOperator(self.batch_size, self.Y.shape, random_state=op_seed)
        y = op.forward(self.Y)
        if self.noise_level > 0:
            y = y + self.noise_level * np.random.default_rng(noise_seed).standard_normal(y.shape)
        return op, y, 1.0


class FixedMeasurements:
    """Mini-batches resampled from one fixed set of ``m`` measurements.

    Each step draws ``batch_size`` of the ``m`` measurements without replacement. The batch
    loss is weighted by ``m / batch_size`` so that its gradient is an unbiased estimate of the
    full-batch gradient of ``1/2 ||A(X) - y||^2``.

    Parameters
    ----------
    operator : Operator
    y : ndarray of shape (m,)
    batch_size : int
    random_state : None or int
    """

    def __init__(self, operator, y, batch_size: int, *, random_state=None):
        self.operator, self.y = check_measurements(operator, y)
        check_positive(batch_size, "batch_size", integer=True)
        if batch_size > self.operator.n_measurements:
            raise ValueError(f"batch_size={batch_size} exceeds the {self.operator.n_measurements} "
                             "measurements")
        self.batch_size = int(batch_size)
        self._seed = np.random.SeedSequence(random_state)
        self.n_measurements = self.operator.n_measurements

    @property
    def input_shape(self):
        return self.operator.input_shape

    def sample(self, k: int):
        seq = np.random.SeedSequence(self._seed.entropy, spawn_key=(*self._seed.spawn_key, k))
        idx = np.sort(np.random.default_rng(seq).choice(self.n_measurements, self.batch_size,
                                                        replace=False))
        return (self.operator.rows(idx), self.y[idx],
                self.n_measurements / self.batch_size)


# --------------------------------------------------------------------------------------------
# Badly scaled entries: a diagonal equilibration that keeps the rank
# --------------------------------------------------------------------------------------------
_EQUILIBRATE_SPREAD = 16.0  # scales within this ratio are left alone (as the base class does)


def equilibrating_scales(operator, *, symmetric: bool = False):
    """Row and column scales ``(r, c)`` that equilibrate a matrix-sensing operator, or None.

    The column norms ``w_ij = ||A(E_ij)||`` of the flattened operator are fitted, in log
    scale and by least squares, by a product ``r_i c_j`` (``r_i r_j`` when ``symmetric``);
    ``r`` and ``c`` are rounded to powers of two (exact rescaling). Entry-wise equilibration
    (``w_ij`` itself) would make gradient descent well conditioned but destroy the low rank
    of the signal; a product keeps it (``diag(r) X diag(c)`` has the rank of ``X``), and is
    exact where the badly scaled entries come from badly scaled rows or columns of ``X``
    (units). Returns None when the fitted scales are within a factor 16 of each other (a
    well-scaled operator is left as it is), when the operator is too large to hold densely,
    or when it has fewer than two nonzero columns.
    """
    n1, n2 = operator.input_shape
    m = operator.n_measurements
    if m * n1 * n2 > _REFINE_MAX_ENTRIES:
        return None
    norms = np.linalg.norm(operator.to_dense().reshape(m, n1 * n2), axis=0)
    used = norms > 0
    if used.sum() < 2:
        return None
    rows, cols = np.divmod(np.flatnonzero(used), n2)
    design = np.zeros((rows.size, n1 if symmetric else n1 + n2))
    design[np.arange(rows.size), rows] = 1.0
    design[np.arange(rows.size), cols if symmetric else n1 + cols] += 1.0
    solution = np.linalg.lstsq(design, np.log2(norms[used]), rcond=None)[0]
    log_r = solution[:n1]
    log_c = log_r if symmetric else solution[n1:]
    fitted = log_r[rows] + log_c[cols]
    if np.ptp(fitted) < np.log2(_EQUILIBRATE_SPREAD):
        return None
    # Columns of unit norm after the equilibration, as the base class's normalization makes
    # them on average, so that an init scale keeps its meaning
    r, c = 2.0 ** np.round(log_r), 2.0 ** np.round(log_c)
    return (r, r) if symmetric else (r, c)


# --------------------------------------------------------------------------------------------
# The limit of the flow, once its rank is known
# --------------------------------------------------------------------------------------------
_REFINE_MAX_ENTRIES = 20_000_000  # the dense (m, n1 n2) operator must fit in memory (160 MB)


def candidate_ranks(X, *, gap: float = 10.0) -> list[int]:
    """The ranks ``k`` at which the singular values of ``X`` drop by more than ``gap``
    (``sigma_k >= gap sigma_{k+1}``), smallest first."""
    s = np.linalg.svd(np.asarray(X, dtype=float), compute_uv=False)
    if s.size < 2 or s[0] == 0:
        return []
    return [k + 1 for k in np.flatnonzero(s[:-1] >= gap * s[1:]).tolist()]


def refine_low_rank(operator, y, X, rank: int, *, tol: float = 1e-6, max_iter: int = 50,
                    symmetric: bool = False):
    """Gauss-Newton on ``X = U V^T`` (``U U^T`` when ``symmetric``) of rank ``rank`` from the
    truncated SVD (eigendecomposition) of ``X``.

    From a small init, gradient descent on ``U V^T`` learns the rank-``k`` interpolant it
    converges to within a few hundred steps, but then creeps: components that overshot during
    the learning decay like ``1/t`` (their gradient is proportional to their own size). Where
    that interpolant is locally unique (``k (n1 + n2 - k) < m``; ``k n - k (k - 1) / 2 < m``
    for ``U U^T``) it is the zero of the residual on the rank-``k`` manifold next to the
    iterate, which Gauss-Newton (minimum-norm steps, quadratic convergence) finds in a few
    iterations. Written here: scipy's ``least_squares`` has no minimum-norm steps for the
    gauge freedom of ``U V^T``.

    Parameters
    ----------
    operator : Operator
        Matrix-sensing operator; used as a dense ``(m, n1 n2)`` matrix.
    y : ndarray of shape (m,)
    X : ndarray of shape (n1, n2)
        Start (the gradient-descent iterate).
    rank : int
    tol : float, default=1e-6
        Success: ``||A(X) - y|| <= tol ||y||``.
    max_iter : int, default=50
        Bound on the Gauss-Newton steps; a residual that has settled above ``tol`` (moved by
        less than 0.1 % in each of 3 steps: no low-rank interpolant near ``X``) ends the
        search earlier.
    symmetric : bool, default=False
        Search the PSD matrices ``U U^T`` (the model of a symmetric factorization), starting
        from the top ``rank`` eigenpairs of the symmetric part of ``X``. Without it the
        interpolant found on data measured by a non-symmetric operator can be a matrix that a
        PSD model cannot reach.

    Returns
    -------
    ndarray or None
        The rank-``rank`` interpolant, or None where it is not locally unique, the operator is
        too large to hold densely, or Gauss-Newton did not reach ``tol``.
    """
    n1, n2 = X.shape
    m = operator.n_measurements
    dof = rank * n1 - rank * (rank - 1) // 2 if symmetric else rank * (n1 + n2 - rank)
    if not 0 < rank < min(n1, n2) or dof >= m or m * n1 * n2 > _REFINE_MAX_ENTRIES:
        return None
    A = operator.to_dense().reshape(m, n1, n2)
    factors = _top_factors(X, rank, symmetric)
    if factors is None:
        return None
    target = tol * float(np.linalg.norm(y))
    norms = []
    for _ in range(max_iter):
        r = y - np.einsum("mij,ij->m", A, _product(factors))
        norms.append(float(np.linalg.norm(r)))
        if norms[-1] <= target:
            return _product(factors)
        if _stalled(norms):
            return None
        step = np.linalg.lstsq(_jacobian(A, factors), r, rcond=None)[0]
        factors = _split_step(factors, step)
        if not all(np.all(np.isfinite(f)) for f in factors):
            return None
    r = y - np.einsum("mij,ij->m", A, _product(factors))
    return _product(factors) if float(np.linalg.norm(r)) <= target else None


#: Gauss-Newton has stalled when its residual norm moved by less than this fraction in each
#: of the last ``_STALL_STEPS`` steps
_STALL_RTOL, _STALL_STEPS = 1e-3, 3


def _stalled(norms) -> bool:
    """Whether the residual norms have settled above the target: a least-squares point of
    the rank-``k`` manifold (noisy data has no low-rank interpolant), where Gauss-Newton
    (quadratic near a zero residual) makes no more progress. Ends in a few steps what ran
    the full ``max_iter`` (100 least-squares solves, 80 % of a fit at ``n = 100``)."""
    if len(norms) <= _STALL_STEPS:
        return False
    recent = np.asarray(norms[-_STALL_STEPS - 1:])
    return bool(np.all(np.abs(np.diff(recent)) <= _STALL_RTOL * recent[1:]))


def _top_factors(X, rank: int, symmetric: bool):
    """``(U, V)`` of the rank-``rank`` truncated SVD of ``X`` split evenly, or ``(U,)`` of its
    top eigenpairs when symmetric (None if one of them is not positive: no PSD start)."""
    if symmetric:
        values, vectors = np.linalg.eigh((X + X.T) / 2)
        values, vectors = values[::-1][:rank], vectors[:, ::-1][:, :rank]
        return None if values[-1] <= 0 else (vectors * np.sqrt(values),)
    W, s, Zt = np.linalg.svd(X, full_matrices=False)
    root = np.sqrt(s[:rank])
    return W[:, :rank] * root, Zt[:rank].T * root


def _product(factors):
    return factors[0] @ factors[-1].T


def _jacobian(A, factors):
    """Jacobian of ``A(U V^T)`` (``A(U U^T)``) in the flattened factors."""
    m = A.shape[0]
    if len(factors) == 1:
        return ((A + np.swapaxes(A, 1, 2)) @ factors[0]).reshape(m, -1)
    U, V = factors
    return np.concatenate([(A @ V).reshape(m, -1),
                           (np.swapaxes(A, 1, 2) @ U).reshape(m, -1)], axis=1)


def _split_step(factors, step):
    sizes = np.cumsum([f.size for f in factors])[:-1]
    return tuple(f + s.reshape(f.shape) for f, s in zip(factors, np.split(step, sizes),
                                                          strict=True))


def low_rank_limit(operator, y, X, *, tol: float = 1e-6, symmetric: bool = False):
    """``(limit, rank)`` for the first rank at a gap of the singular values of ``X`` whose
    interpolant is locally unique and found (:func:`refine_low_rank`; ``U U^T`` when
    ``symmetric``), else None."""
    for rank in candidate_ranks(X):
        limit = refine_low_rank(operator, y, X, rank, tol=tol, symmetric=symmetric)
        if limit is not None:
            return limit, rank
    return None


def least_squares_limit(operator, y):
    """The least-squares point of an injective matrix-sensing operator, else None.

    With ``m >= n1 n2`` measurements and a full-column-rank operator, ``1/2 ||A(X) - y||^2``
    is strictly convex in ``X``: its minimizer ``X_ls`` is the limit of every descent in the
    factors that converges to a minimizer, whatever the path. Such runs can stall for long
    near rank-deficient iterates on inconsistent data (from a small init, the last singular
    values of ``X_ls`` are learned in a time that grows like ``init^-(L-2)/L`` at depth
    ``L``), but a stall with ``A^*(r) != 0`` is a plateau of the flow, not its limit. Also
    None where the operator is too large to hold densely.

    Parameters
    ----------
    operator : Operator
        Matrix-sensing operator (2-D ``input_shape``).
    y : ndarray of shape (m,)

    Returns
    -------
    ndarray of shape (n1, n2) or None
    """
    n1, n2 = operator.input_shape
    m = operator.n_measurements
    if m < n1 * n2 or m * n1 * n2 > _REFINE_MAX_ENTRIES:
        return None
    A = operator.to_dense().reshape(m, n1 * n2)
    W, s, Zt = np.linalg.svd(A, full_matrices=False)
    if s[-1] <= 1e-10 * s[0]:
        return None  # not injective: the least-squares set is not a point
    return (Zt.T @ ((W.T @ y) / s)).reshape(n1, n2)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def _perturbation_at(perturbation, k, params):
    if perturbation is None:
        return None
    E = perturbation(k, params) if callable(perturbation) else perturbation
    return None if E is None else np.asarray(E, dtype=float)


def _apply_perturbation(E, params, symmetric: bool):
    """``E W`` split back into the factors (``W = (U; V)``, or ``U`` when symmetric)."""
    if symmetric:
        U = params[0]
        if E.shape != (U.shape[0], U.shape[0]):
            raise ValueError(f"the perturbation must be {U.shape[0]} x {U.shape[0]}, "
                             f"got {E.shape}")
        return (E @ U,)
    U, V = params
    n1 = U.shape[0]
    n = n1 + V.shape[0]
    if E.shape != (n, n):
        raise ValueError(f"the perturbation must be (n1 + n2) x (n1 + n2) = {n} x {n}, "
                         f"got {E.shape}")
    EW = E @ np.vstack([U, V])
    return (EW[:n1], EW[n1:])


class _FactorizedDescentStep:
    """One step ``W <- W - eta grad L_k(W) + eta E_k W`` of Definition 2.1: the
    :class:`~overparam.solvers.loop.SolverStep` of :func:`perturbed_gradient_descent` and
    :func:`factorized_sgd`.

    The step is fixed; a trial whose loss diverges (or whose signal is non-finite) raises
    :class:`DivergenceError` or, with ``on_divergence="halve"``, halves the step for good and
    is retried. The clock advances by ``eta * weight_k * m_k`` (the flow time of the mean
    loss); ``paper_time`` sums the steps ``eta`` (the paper's ``t = k eta``).
    """

    clock = "flow_time"

    def __init__(self, parameterization, source, params, *, step, perturbation,
                 on_divergence, name, full_batch):
        self.parameterization, self.source, self.params0 = parameterization, source, params
        self.perturbation, self.on_divergence = perturbation, on_divergence
        self.name, self.full_batch = name, full_batch
        self.symmetric = bool(getattr(parameterization, "symmetric", False))
        self.eta = float(step)
        self.n_halved = 0
        self.paper_time = 0.0
        self.iteration = 0
        self.first_batch = source.sample(0)

    def _evaluate(self, params, batch, x=None, dt=0.0) -> Iterate:
        op, yk, weight = batch
        x = self.parameterization.signal(params) if x is None else x
        r = op.forward(x) - yk
        return Iterate(params, x, 0.5 * weight * float(r @ r), float(np.linalg.norm(r)),
                       dt=dt, cache=(batch, r))

    def init(self) -> Iterate:
        return self._evaluate(self.params0, self.first_batch)

    def step(self, current, *, time_left, diverged):
        """The step from ``current`` (halved until finite with ``on_divergence="halve"``)."""
        (op, yk, weight), r = current.cache
        params = current.params
        grads = self.parameterization.vjp(params, weight * op.adjoint(r))
        E = _perturbation_at(self.perturbation, self.iteration, params)
        drift = _apply_perturbation(E, params, self.symmetric) if E is not None else None
        time_per_step = weight * op.n_measurements
        eta = self.eta
        if np.isfinite(time_left):  # land exactly on the requested time
            eta = min(eta, max(time_left, 0.0) / time_per_step)
        while True:
            trial = tuple(p - eta * g for p, g in zip(params, grads, strict=True))
            if drift is not None:
                trial = tuple(t + eta * d for t, d in zip(trial, drift, strict=True))
            new = self._evaluate(trial, (op, yk, weight), dt=eta * time_per_step)
            if not diverged(new.loss) and np.all(np.isfinite(new.x)):
                break
            if self.on_divergence == "raise":
                raise DivergenceError(
                    f"factorized gradient descent diverged at iteration {self.iteration + 1} "
                    f"with step {eta:.3g}; use a smaller step or on_divergence='halve'")
            self.eta, eta, self.n_halved = self.eta / 2, eta / 2, self.n_halved + 1
            if eta < 1e-300:
                raise DivergenceError("the step fell below 1e-300 without a finite iterate")
        self.iteration += 1
        self.paper_time += eta
        if not self.full_batch:  # the loss watched next is that of the next batch
            new = self._evaluate(trial, self.source.sample(self.iteration), x=new.x,
                                 dt=new.dt)
        return new

    def info(self) -> dict:
        return {"step": self.eta, "n_halved": self.n_halved, "paper_time": self.paper_time}


def _descent(parameterization, source, *, step, init_params, perturbation, stopping, history,
             validation, callback, on_divergence, progress, desc, full_batch: bool):
    check_positive(step, "step")
    if on_divergence not in ("raise", "halve"):
        raise ValueError(f"on_divergence must be 'raise' or 'halve', got {on_divergence!r}")
    params = tuple(np.array(p, dtype=float) for p in init_params)
    solver_step = _FactorizedDescentStep(parameterization, source, params, step=step,
                                         perturbation=perturbation,
                                         on_divergence=on_divergence, name=desc,
                                         full_batch=full_batch)
    y_norm = float(np.linalg.norm(solver_step.first_batch[1]))
    return run_loop(solver_step, y_norm, stopping=stopping, history=history,
                    validation=validation, callback=callback, progress=progress)


def _init(parameterization, init_params, init_scale, random_state):
    if init_params is not None:
        return init_params
    if init_scale is None:
        raise ValueError("give init_scale or init_params")
    return parameterization.init(init_scale, check_random_state(random_state))


def perturbed_gradient_descent(
    parameterization,
    operator,
    y,
    *,
    step: float,
    perturbation: np.ndarray | Callable | None = None,
    init_scale: float | None = None,
    init_params=None,
    random_state=None,
    stopping: StoppingRule | None = None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    on_divergence: str = "raise",
    progress: bool = False,
) -> SolverResult:
    """Gradient descent with a fixed step and an optional perturbation ``E_k W_k`` per step.

    ``W_{k+1} = W_k - step * grad L(W_k) + step * E_k W_k`` with ``L = 1/2 ||A(X) - y||^2``
    and ``W = (U; V)`` (``W = U`` for the symmetric parameterization). Without a perturbation
    this is the paper's plain factorized gradient descent; noisy measurements are simply a
    noisy ``y`` (the paper's Example 2.4: a constant perturbation of norm ``||A^*(e)||``).

    Parameters
    ----------
    parameterization : Factorized
    operator : Operator
        Matrix-sensing operator (2-D ``input_shape``).
    y : ndarray of shape (m,)
    step : float
        The learning rate ``eta``.
    perturbation : ndarray or callable, optional
        ``E_k``: a fixed ``(n1 + n2) x (n1 + n2)`` matrix (``n x n`` when symmetric), or
        ``perturbation(k, params) -> matrix or None`` called at every step ``k``.
    init_scale, init_params, random_state
        Initialization (``parameterization.init(init_scale, rng)``) or explicit factors.
    stopping : StoppingRule, optional
        Default: ``StoppingRule(max_iter=10_000)``. ``max_flow_time`` is honoured exactly.
    history : History, optional
    validation : Validation, optional
        Held-out early stopping; the best iterate is returned.
    callback : callable, optional
        ``callback(iteration, params, x)``; True stops.
    on_divergence : {"raise", "halve"}, default="raise"
        An exploding or non-finite loss raises :class:`DivergenceError`, or halves the step.
    progress : bool, default=False

    Returns
    -------
    SolverResult
        ``info["paper_time"]`` is the paper's time ``t = k * eta``; ``info["time"]`` the
        library's clock (flow time of the mean loss).
    """
    operator, y = check_measurements(operator, y)
    stopping = stopping or StoppingRule(max_iter=10_000)
    params = _init(parameterization, init_params, init_scale, random_state)
    return _descent(parameterization, _FullBatch(operator, y), step=step, init_params=params,
                    perturbation=perturbation, stopping=stopping, history=history,
                    validation=validation, callback=callback, on_divergence=on_divergence,
                    progress=progress, desc="perturbed GD", full_batch=True)


def factorized_sgd(
    parameterization,
    source,
    *,
    step: float,
    n_iter: int,
    perturbation: np.ndarray | Callable | None = None,
    init_scale: float | None = None,
    init_params=None,
    random_state=None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    on_divergence: str = "raise",
    progress: bool = False,
) -> SolverResult:
    """Mini-batch SGD: step ``k`` takes a gradient step on the loss of batch ``k``.

    Parameters
    ----------
    parameterization : Factorized
    source : GaussianStream or FixedMeasurements
        Anything with ``sample(k) -> (operator_k, y_k, weight_k)``: fresh Gaussian operators
        per step (:class:`GaussianStream`, the paper's Theorem 2.9) or batches resampled from
        a fixed set (:class:`FixedMeasurements`).
    step : float
        The learning rate.
    n_iter : int
        Number of steps (SGD has no reliable full residual to stop on; ``validation`` or a
        ``callback`` can stop earlier).
    perturbation, init_scale, init_params, random_state, history, validation, callback,
    on_divergence, progress
        As in :func:`perturbed_gradient_descent`. Divergence is judged on each step's own
        batch: its loss after the step becoming non-finite or exceeding 1e8 times the first
        batch loss.

    Returns
    -------
    SolverResult
        ``history.loss`` holds the batch losses.
    """
    check_positive(n_iter, "n_iter", integer=True)
    stopping = StoppingRule(max_iter=int(n_iter), tol=0.0, stagnation_tol=0.0)
    params = _init(parameterization, init_params, init_scale, random_state)
    return _descent(parameterization, source, step=step, init_params=params,
                    perturbation=perturbation, stopping=stopping, history=history,
                    validation=validation, callback=callback, on_divergence=on_divergence,
                    progress=progress, desc="factorized SGD", full_batch=False)
