"""Exact gradient flow of the deep Hadamard factorization, through its M-dimensional dual.

Gradient flow on ``1/2 ||A x - y||^2`` with ``x = u^L - v^L`` (or ``x = u^L``), all factors
identical and ``u(0) = v(0) = alpha^(1/L)``, is a mirror flow: with the dual vector
``w(t) = int_0^t (y - A x) dt`` (``w(0) = 0``) and ``s = A^T w``,

- ``L = 2``:  ``u^2 = alpha e^{4 s}``,  ``v^2 = alpha e^{-4 s}``;
- ``L > 2``:  ``u^{2-L} = alpha^{(2-L)/L} - L(L-2) s``,  ``v^{2-L} = alpha^{(2-L)/L} + L(L-2) s``,

and ``x(s) = u^L - v^L``. So the whole trajectory solves the M-dimensional ODE
``w' = y - A x(A^T w)``, which is the gradient flow of the convex dual function
``Phi(w) = sum psi*(A^T w) - <y, w>`` with ``psi*(s) = (u(s)^2 + v(s)^2) / (2L)``
(``d psi*/ds = x``). Its Jacobian ``-A diag(x'(s)) A^T`` is symmetric negative definite and
very stiff, so a stiff integrator (scipy's BDF) follows it in a few hundred steps where plain
gradient descent needs millions; the flow's limit is the minimizer of ``Phi``, i.e. the root of
``A x(A^T w) = y``, found by Newton's method in a few dozen steps.

Time: the ODE runs in the time ``t`` of the flow of the *sum* loss (one GD step ``eta`` advances
it by ``eta``); results report the clock of the *mean*-loss flow, ``m t``, the same clock as
:func:`overparam.solvers.gradient_descent` (see ``docs/DEVELOPING.md``).

No library integrates this particular dual flow or solves its root problem, so the map
``s -> x(s)`` and the damped Newton iteration are written here; the stiff integration is
scipy's :class:`scipy.integrate.BDF` and the linear algebra LAPACK's Cholesky.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import replace

import numpy as np
from scipy.integrate import BDF, OdeSolution
from scipy.linalg import (
    LinAlgError,
    LinAlgWarning,
    cho_factor,
    cho_solve,
    lstsq,
    lu_factor,
    lu_solve,
    qr,
    solve_triangular,
)
from scipy.optimize import brentq

from ..._progress import progress_bar
from ..._validation import check_array, check_positive
from ...parameterizations import Hadamard
from ...stopping import DivergenceError, Monitor, StoppingRule, StopReason, Validation
from .._blas import blas_limit
from ..gradient_descent import gradient_descent
from ..loop import close_validation, private_validation
from ..result import History, SolverResult
from ..steps import AdaptiveStep, as_step_policy

__all__ = [
    "FlowStep",
    "HadamardDual",
    "HadamardDualMap",
    "HadamardFlowPath",
    "NewtonConvergenceError",
    "hadamard_flow",
    "hadamard_gd",
    "hadamard_newton",
]

# Parts u^L are clipped at e^230 ~ 1e100 (squares and sums stay finite); the true path never
# gets near, but trial points of the integrator and of the line search might.
_MAX_LOG_PART = 230.0
# Validation checks are skipped while the training loss is within this fraction of its start.
_PLATEAU_DROP = 1e-3
_JAC_DROP = 0.1  # see the Jacobian in hadamard_flow
# L > 2: u^(2-L) = c * margin is clipped below at c * _MIN_MARGIN (finite trial values); the
# map is exact only above it, where the rounding error of c - k s is eps / margin relative.
_MIN_MARGIN = 1e-12
# A A^T counts as full rank (range(A) = R^m) when its Cholesky pivots stay above this
# fraction of its largest diagonal entry (condition number of A below ~1e5).
_FULL_RANK_RCOND = 1e-10
_MIN_RTOL = 100 * np.finfo(float).eps  # the smallest relative tolerance scipy's BDF accepts
# A least-squares Newton step on a singular H is kept when it leaves at most this fraction
# of the gradient in its linearized residual (an inexact Newton step); else the graded one.
_INEXACT_NEWTON = 0.1
# After a graded Newton step the next step tries the Hessian again only if the squared spread
# of that step's QR pivots, an estimate of cond(H) (from below), is under this: Cholesky
# fails from about 1 / eps (4.5e15), and forming H for a Cholesky that fails is wasted work.
_CHOLESKY_COND = 1e15


def _limit_blas(fun):
    """Add a ``blas_threads`` keyword (default 1) limiting BLAS threads during ``fun``.

    These solvers multiply small dense matrices (``M x N`` by ``N x M``) many times: one thread
    is as fast, and on a shared, oversubscribed machine multi-threaded OpenBLAS is far slower
    (spin-waiting threads; docs/sparse.md, "One BLAS thread"). ``blas_threads=None`` leaves
    BLAS as configured.
    """

    @functools.wraps(fun)
    def wrapper(*args, blas_threads: int | None = 1, **kwargs):
        with blas_limit(blas_threads):
            return fun(*args, **kwargs)

    return wrapper


class NewtonConvergenceError(RuntimeError):
    """The Newton iteration for the flow's limit did not converge (use the dual ODE instead)."""


class HadamardDualMap:
    """The map from the dual variable ``s = A^T w`` to the factors and the signal.

    Parameters
    ----------
    depth : int
        Number of factors ``L >= 2``.
    signed : bool
        ``x = u^L - v^L`` when True, ``x = u^L`` when False.
    init_scale : float
        Product init ``alpha``: ``u(0)^L = v(0)^L = alpha``.

    Notes
    -----
    Every quantity is entrywise in ``s``. For ``L > 2`` the map is defined on
    ``|s| < s_max = alpha^{(2-L)/L} / (L (L-2))``: at ``s_max`` the factor ``u`` is infinite
    (the exact flow never gets there, see :func:`hadamard_flow`).

    Internally each part keeps its value at ``s = 0`` per coordinate: ``log u^2``
    (``L = 2``) or the base ``u^{2-L}`` (``L > 2``). :meth:`recentered` moves the origin to a
    point ``s0``, so that later evaluations add only the (small) change ``s - s0`` to bases
    computed once: near the blow-up boundary ``u^{2-L} = c - L(L-2) s`` is a difference of two
    numbers of size ``c = alpha^{(2-L)/L}`` and loses ``log10(1 / margin)`` digits, which limit
    a Newton iteration on ``s`` itself (see :func:`hadamard_newton`).
    """

    def __init__(self, depth: int = 2, signed: bool = True, init_scale: float = 1e-6):
        check_positive(depth, "depth", integer=True)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        check_positive(init_scale, "init_scale")
        self.depth = int(depth)
        self.signed = bool(signed)
        self.init_scale = float(init_scale)
        L = self.depth
        if L > 2:
            self._c = self.init_scale ** ((2.0 - L) / L)  # u(0)^(2-L)
            self._k = float(L * (L - 2))
            self.s_max = self._c / self._k
        else:
            self._c = np.log(self.init_scale)  # log u(0)^2
            self._k = 4.0
            self.s_max = np.inf
        # the parts at s = 0 (u, then v): bases u^(2-L) for L > 2, log u^2 for L = 2
        self._origin = (self._c, self._c)
        # L > 2: bases are clipped here (finite trial values); the map is exact only above,
        # where the rounding of c - k s is eps / margin relative (see recentered)
        self._floor = _MIN_MARGIN * self._c if L > 2 else None

    def recentered(self, s) -> HadamardDualMap:
        """This map with its origin moved to ``s``: ``new.signal(t) == self.signal(s + t)``.

        The parts at ``s`` are computed once (rounded once: for ``L > 2`` a relative change of
        the init of about ``eps``); the copy's ``s_max`` is None (its domain is per coordinate,
        see :meth:`room`).
        """
        new = copy.copy(self)
        s = np.asarray(s, dtype=float)
        new._origin = (self._origin[0] + self._k * s, self._origin[1] - self._k * s) \
            if self.depth == 2 else self._bases(s)
        new.s_max = None
        if self.depth > 2:  # no rounding to avoid now: clip only where a part would overflow
            new._floor = np.exp(-_MAX_LOG_PART * (self.depth - 2) / self.depth)
        return new

    # -- the two parts u^L and v^L and their factors ---------------------------------------
    def _bases(self, s) -> tuple[np.ndarray, np.ndarray]:
        """Unclipped ``(u^{2-L}, v^{2-L})`` for L > 2 (``log u^2``, ``log v^2`` for L = 2)."""
        return (self._origin[0] - self._k * s, self._origin[1] + self._k * s) \
            if self.depth > 2 else (self._origin[0] + self._k * s, self._origin[1] - self._k * s)

    def _base(self, s, sign):
        """``u^{2-L}`` (sign=+1) or ``v^{2-L}`` (sign=-1) for L > 2, clipped inside the domain."""
        p = self._bases(s)[0 if sign > 0 else 1]
        return np.maximum(p, self._floor)

    def _log_squares(self, s):
        """``(log u^2, log v^2)`` for L = 2, clipped where the parts would overflow."""
        log_u, log_v = self._bases(s)
        return np.minimum(log_u, _MAX_LOG_PART), np.minimum(log_v, _MAX_LOG_PART)

    def factors(self, s) -> tuple[np.ndarray, ...]:
        """The factor values ``(u, v)`` (or ``(u,)``) at ``s``: the Hadamard parameters."""
        s = np.asarray(s, dtype=float)
        L = self.depth
        if L == 2:
            log_u, log_v = self._log_squares(s)
            u, v = np.exp(log_u / 2), np.exp(log_v / 2)
        else:
            u = self._base(s, 1) ** (-1.0 / (L - 2))
            v = self._base(s, -1) ** (-1.0 / (L - 2))
        return (u, v) if self.signed else (u,)

    def parts(self, s) -> tuple[np.ndarray, ...]:
        """``(u^L, v^L)`` (or ``(u^L,)``): the two non-negative parts of the signal."""
        s = np.asarray(s, dtype=float)
        L = self.depth
        if L == 2:
            log_u, log_v = self._log_squares(s)
            up, vp = np.exp(log_u), np.exp(log_v)
        else:
            up = self._base(s, 1) ** (-L / (L - 2.0))
            vp = self._base(s, -1) ** (-L / (L - 2.0))
        return (up, vp) if self.signed else (up,)

    def signal(self, s) -> np.ndarray:
        """``x(s) = u^L - v^L`` (or ``u^L``)."""
        p = self.parts(s)
        return p[0] - p[1] if self.signed else p[0]

    def derivative(self, s) -> np.ndarray:
        """``dx/ds = L^2 (u^{2L-2} + v^{2L-2})`` (positive: the map is increasing)."""
        f = self.factors(s)
        L = self.depth
        out = L * L * f[0] ** (2 * L - 2)
        return out + L * L * f[1] ** (2 * L - 2) if self.signed else out

    def _outside(self, s) -> bool:
        """Whether a part is infinite at ``s`` (L > 2) or overflows (L = 2)."""
        bases = self._bases(np.asarray(s, dtype=float))[: 2 if self.signed else 1]
        if self.depth == 2:
            return any(np.max(b, initial=-np.inf) > _MAX_LOG_PART for b in bases)
        return any(np.min(b, initial=np.inf) <= 0 for b in bases)

    def potential(self, s, factors=None) -> float:
        """``sum psi*(s)`` with ``psi* = (u^2 + v^2) / (2L)``; ``inf`` outside the domain.
        ``factors``: :meth:`factors` at ``s`` if already computed."""
        s = np.asarray(s, dtype=float)
        if self._outside(s):
            return np.inf
        return self._potential_of(self.factors(s) if factors is None else factors)

    def _potential_of(self, f) -> float:
        """``sum psi*`` from the factors ``f`` of a point inside the domain."""
        total = np.sum(f[0] ** 2)
        if self.signed:
            total += np.sum(f[1] ** 2)
        return float(total / (2 * self.depth))

    def inside(self, s) -> bool:
        """Whether ``s`` lies where the map is exact (always for ``L = 2``; for ``L > 2``
        strictly inside the domain, where :meth:`_base` does not clip)."""
        return self.depth == 2 or self.margin(s) > _MIN_MARGIN

    def potential_change(self, s, s_new, old=None) -> float:
        """``sum psi*(s_new) - sum psi*(s)``, summed per coordinate (no cancellation between
        two large sums); ``inf`` if ``s_new`` is outside the domain. ``old``: :meth:`factors`
        at ``s`` if already computed (the trials of a line search share it)."""
        if self._outside(np.asarray(s_new, dtype=float)):
            return np.inf
        new = self.factors(s_new)
        if not np.isfinite(self._potential_of(new)):
            return np.inf
        old = self.factors(s) if old is None else old
        total = sum(float(np.sum((b - a) * (b + a))) for a, b in zip(old, new, strict=True))
        return total / (2 * self.depth)

    def margin(self, s) -> float:
        """Relative distance of ``s`` to the blow-up boundary: the smallest base
        ``u^{2-L}`` over its value ``c`` at the init, at most 1 (1 at ``s = 0``; inf for
        L = 2)."""
        if self.depth == 2:
            return np.inf
        s = np.asarray(s, dtype=float)
        if self.s_max is not None:  # not recentered: 1 - max |s| / s_max
            top = np.max(np.abs(s)) if self.signed else max(np.max(s), 0.0)
            return float(1.0 - top / self.s_max)
        bases = self._bases(s)[: 2 if self.signed else 1]
        low = np.min([np.min(b, initial=np.inf) for b in bases])  # NaN stays NaN
        return float(np.minimum(1.0, low / self._c))

    def room(self, s, ds) -> float:
        """The largest ``t`` with ``s - t ds`` inside the domain (``inf`` for L = 2)."""
        if self.depth == 2:
            return np.inf
        bases = self._bases(np.asarray(s, dtype=float))
        # u^(2-L) changes by +k t ds and v^(2-L) by -k t ds along s - t ds
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(ds < 0, bases[0] / (-self._k * ds), np.inf)
            if self.signed:
                room = np.minimum(room, np.where(ds > 0, bases[1] / (self._k * ds), np.inf))
        return float(np.min(room, initial=np.inf))

    def __repr__(self) -> str:
        return (f"HadamardDualMap(depth={self.depth}, signed={self.signed}, "
                f"init_scale={self.init_scale!r})")


class HadamardDual:
    """The dual function ``Phi(w) = sum psi*(A^T w) - <y, w>`` of the flow, and its derivatives.

    The dual ODE is ``w' = -gradient(w)`` (Jacobian ``-hessian(w)``); the flow's limit is the
    minimizer of ``Phi``.

    Parameters
    ----------
    A : ndarray of shape (m, n)
    y : ndarray of shape (m,)
    dual_map : HadamardDualMap
    """

    def __init__(self, A, y, dual_map: HadamardDualMap):
        self.A = A
        self.y = y
        self.map = dual_map

    def value(self, w) -> float:
        """``Phi(w)`` (``inf`` outside the domain, i.e. past the blow-up boundary)."""
        return self.map.potential(self.A.T @ w) - float(self.y @ w)

    def gradient(self, w) -> np.ndarray:
        """``A x(A^T w) - y``: the residual of the signal at ``w``."""
        return self.A @ self.map.signal(self.A.T @ w) - self.y

    def hessian(self, w) -> np.ndarray:
        """``A diag(x'(A^T w)) A^T`` (symmetric positive (semi)definite)."""
        return (self.A * self.map.derivative(self.A.T @ w)) @ self.A.T


class HadamardFlowPath:
    """The whole flow path ``x(tau)`` as a function of the mean-loss clock ``tau``.

    Built from the integrator's dense output (one interpolant per step), so evaluating it at
    any time inside the integrated range costs two matrix-vector products.

    Attributes
    ----------
    t_min, t_max : float
        Range of clock times covered.
    """

    def __init__(self, solution: OdeSolution, matrix: np.ndarray, dual_map: HadamardDualMap,
                 n_measurements: int):
        self._sol = solution
        self._A = matrix
        self._map = dual_map
        self._m = n_measurements
        self.t_min = float(solution.t_min) * n_measurements
        self.t_max = float(solution.t_max) * n_measurements

    def dual(self, clock):
        """Dual vector(s) ``w`` at clock time(s) ``clock`` (shape ``(m,)`` or ``(m, k)``)."""
        return self._sol(np.asarray(clock, dtype=float) / self._m)

    def __call__(self, clock) -> np.ndarray:
        """The signal at clock time(s): shape ``(n,)`` for a scalar, ``(k, n)`` for ``k`` times."""
        w = self.dual(clock)
        x = self._map.signal(self._A.T @ w)
        return x if np.ndim(clock) == 0 else x.T


class _LowRankBDF(BDF):
    """scipy's BDF for a Jacobian ``J = -B B^T`` given by its factor ``B`` (``m x k``).

    BDF factors the Newton matrix ``I - c J = I + c B B^T`` (``c > 0``) at every change of
    step or order. With ``k`` well below ``m`` (the columns of ``A`` that matter, see
    :func:`hadamard_flow`) the Woodbury identity
    ``(I + c B B^T)^{-1} = I - B (I/c + B^T B)^{-1} B^T`` needs only a ``k x k`` Cholesky
    factor; otherwise the matrix, symmetric positive definite, is factored by Cholesky (LU
    should rounding spoil that). BDF hands its factorization routine the matrix only; ``c``
    comes from the trace identity ``tr(I + c B B^T) = m + c ||B||_F^2``, checked against the
    largest diagonal entry (a mismatch falls back to the dense factor). The routines replace
    BDF's ``lu`` and ``solve_lu`` attributes (unchanged since scipy 1.0; were they renamed,
    BDF would factor the dense ``-B B^T`` itself: slower, as correct).

    ``jac`` must return ``B``; the solver gives BDF ``-B B^T``.
    """

    #: Woodbury only while c ||B||_F^2 stays below this (its cancellation error is about
    #: eps times that).
    _MAX_STIFFNESS = 1e8

    def __init__(self, fun, t0, y0, t_bound, *, jac, **kwargs):
        self._low_rank = None

        def dense_jac(t, w):
            B = jac(t, w)
            self._low_rank = (B, B.T @ B, np.einsum("ij,ij->i", B, B))
            return -(B @ B.T)

        super().__init__(fun, t0, y0, t_bound, jac=dense_jac, **kwargs)

        def factor(matrix):
            self.nlu += 1
            B, gram, row_sq = self._low_rank
            m, k = B.shape
            if k == 0:
                return "identity", None
            stiffness = float(np.trace(matrix)) - m  # c ||B||_F^2
            c = stiffness / float(np.trace(gram))
            i = int(np.argmax(row_sq))
            if (2 * k <= m and 0 < stiffness <= self._MAX_STIFFNESS
                    and abs(matrix[i, i] - 1 - c * row_sq[i]) <= 1e-8 * matrix[i, i]):
                inner = gram + np.eye(k) / c
                return "woodbury", (B, cho_factor(inner, check_finite=False))
            try:
                return "cholesky", cho_factor(matrix, check_finite=False)
            except LinAlgError:
                # Only at trial points stiffer than 1/eps; a singular factor there gives a
                # non-finite Newton step, which BDF rejects (it shrinks the step)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", LinAlgWarning)
                    return "lu", lu_factor(matrix, check_finite=False)

        def solve(factors, b):
            kind, fac = factors
            if kind == "identity":
                return b
            if kind == "woodbury":
                B, inner = fac
                return b - B @ cho_solve(inner, B.T @ b, check_finite=False)
            if kind == "cholesky":
                return cho_solve(fac, b, check_finite=False)
            return lu_solve(fac, b, check_finite=False)

        self.lu, self.solve_lu = factor, solve


class _GuardedFlow:
    """The dual ODE integrated by :class:`_LowRankBDF`, restarted when a step leaves the path.

    The exact path never increases the residual ``||A x - y||`` (``Phi`` decreases along
    it) and, for ``L > 2``, never reaches the blow-up boundary. An accepted step that more
    than doubles the residual, or an integrator failure (step size underflow, e.g. against
    the boundary), means the error test let the integrator off the path. This happens where
    a coordinate escapes abruptly from a long plateau, over which the steps have grown
    large: the integrator restarts from the last accepted state with tolerances ten times
    tighter, and returns to the given tolerances after ``relax_after`` accepted steps. At
    most ``max_restarts`` restarts in a row from one state: then a failure raises
    :class:`DivergenceError` and a residual increase is accepted.
    """

    max_restarts = 4
    relax_after = 20
    _RESIDUAL_JUMP = 2.0

    def __init__(self, rhs, jac, dmap, A, y, t_bound, rtol, atol, col_norm, floor):
        self._make = functools.partial(_LowRankBDF, rhs, t_bound=t_bound, jac=jac)
        self._dmap, self._A, self._y = dmap, A, y
        self._tol, self._col_norm = (rtol, atol), col_norm
        self._floor = floor  # residuals below it are round-off: never a reason to restart
        self.tightening = 1.0
        self.restarts = 0  # in all
        self._in_a_row = 0  # from the same accepted state
        self._since_restart = 0
        self.njev = self.nlu = 0
        self._start(0.0, np.zeros(A.shape[0]))

    def _tolerances(self, s):
        rtol, atol = self._tol
        return _scaled_tolerances(self._dmap, s, rtol * self.tightening,
                                  atol * self.tightening, self._col_norm)

    def _start(self, t0, w0):
        if hasattr(self, "solver"):
            self.njev += self.solver.njev
            self.nlu += self.solver.nlu
        s = self._A.T @ w0
        rtol, atol = self._tolerances(s)
        self.solver = self._make(t0, w0.copy(), rtol=rtol, atol=atol)
        self.residual_norm = float(np.linalg.norm(self._A @ self._dmap.signal(s) - self._y))

    def step(self):
        """One accepted step on the path; returns its ``(s, residual, residual_norm)``."""
        while True:
            t_old, w_old = self.solver.t, self.solver.y.copy()
            with np.errstate(invalid="ignore"):  # rejected NaN trial points (see rhs)
                message = self.solver.step()
            w = self.solver.y
            failed = self.solver.status == "failed" or not np.all(np.isfinite(w))
            if not failed:
                s = self._A.T @ w
                r = self._A @ self._dmap.signal(s) - self._y
                r_norm = float(np.linalg.norm(r))
                if (r_norm <= self._RESIDUAL_JUMP * self.residual_norm
                        or r_norm <= self._floor or self._in_a_row >= self.max_restarts):
                    self._accept(s, r_norm)
                    return s, r, r_norm
            if self._in_a_row >= self.max_restarts:
                raise DivergenceError(
                    f"the dual-flow integrator failed at flow time {t_old:.3e} "
                    f"({message or 'non-finite state'}) even with tolerances "
                    f"{1 / self.tightening:.0e} times tighter; the init may be too small "
                    f"for double precision at depth {self._dmap.depth}")
            self.restarts += 1
            self._in_a_row += 1
            self._since_restart = 0
            self.tightening *= 0.1
            self._start(t_old, w_old)

    def _accept(self, s, r_norm):
        self.residual_norm = r_norm
        self._in_a_row = 0
        self._since_restart += 1
        if self.tightening < 1 and self._since_restart >= self.relax_after:
            self.tightening = 1.0
        self.solver.rtol, self.solver.atol = self._tolerances(s)

    @property
    def n_jacobians(self) -> int:
        return self.njev + self.solver.njev

    @property
    def n_lu(self) -> int:
        return self.nlu + self.solver.nlu


def _dense_matrix(operator) -> np.ndarray:
    A = np.asarray(operator.to_dense(), dtype=float)
    if A.ndim != 2:
        raise ValueError("the Hadamard flow solvers need a matrix operator (vector signals)")
    return A


def _prepare(operator, y, depth, signed, init_scale):
    A = _dense_matrix(operator)
    y = check_array(y, "y", ndim=1)
    if y.shape[0] != A.shape[0]:
        raise ValueError(f"A has {A.shape[0]} rows but y has {y.shape[0]} entries")
    return A, y, HadamardDualMap(depth, signed, init_scale)


@_limit_blas
def hadamard_flow(
    operator,
    y,
    *,
    depth: int = 2,
    signed: bool = True,
    init_scale: float = 1e-6,
    stopping: StoppingRule | None = None,
    validation: Validation | None = None,
    validation_ratio: float = 1.05,
    history: History | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-10,
    dense_output: bool = False,
    progress: bool = False,
) -> SolverResult:
    """Exact gradient flow of ``1/2 ||A (u^L - v^L) - y||^2`` by its dual ODE (stiff BDF).

    Integrates ``w' = y - A x(A^T w)``, ``w(0) = 0`` (see the module docstring) with
    :class:`scipy.integrate.BDF` and the analytic Jacobian ``-A diag(x'(s)) A^T``. The Jacobian
    leaves out the columns ``j`` with ``t x'_j ||a_j||^2 < 0.1`` at the time ``t`` it is
    formed: each changes BDF's Newton matrix ``I - c J`` by less than ``0.1 c / t`` (``c`` is
    at most the step, 5-15% of ``t`` on these paths), and from a small init most coordinates
    stay that small, so the Newton matrices are the identity plus a low-rank term, factored
    through a small Cholesky factor (Woodbury). The integrator's error control, not the
    Jacobian, sets the accuracy: on benchmarks/noisy.py (sparse, M=300, N=1000) the steps
    were those of the full Jacobian, and a validated fit took 0.07-0.10 s instead of
    0.27-0.32 s (CPU, one thread).

    Parameters
    ----------
    operator : Operator
        Matrix operator (``to_dense()`` is used: the Jacobian is an ``(m, m)`` matrix).
    y : ndarray of shape (m,)
    depth : int, default=2
    signed : bool, default=True
    init_scale : float, default=1e-6
        Product init ``alpha`` (``u(0)^L = v(0)^L = alpha``), as in :class:`Hadamard`.
    stopping : StoppingRule, optional
        ``tol`` (relative residual ``||r|| / ||y||``, or, for an inconsistent system, the
        optimality of least squares: ``||A^T r|| <= tol ||A|| ||r||``, non-negative the KKT
        conditions, see :func:`_least_squares_optimal`), ``max_iter`` (right-hand-side
        evaluations), ``max_time``, ``max_flow_time`` (clock time to stop at exactly) and
        ``discrepancy`` (stop at the exact time the residual norm falls to it) are honoured.
    validation : Validation, optional
        Held-out early stopping: the held-out error is checked along the dense-output path at
        the clock times ``tau_0 r^k`` (``r = validation_ratio``, ``tau_0`` the end of the first
        step), and the best point of the path is returned. The caller's object is not
        changed: the curve ``(iteration, clock, error)`` is ``info["validation_curve"]``, the
        best point's ``info["best_iteration"]``, ``info["best_time"]`` and
        ``info["validation_error"]`` (as :func:`~overparam.solvers.loop.run_loop`).
    validation_ratio : float, default=1.05
        Spacing of the validation checks (the flow time spans many decades).
    history : History, optional
        Recorded at every ``history.every``-th integrator step (``iteration`` = step count).
    rtol, atol : float
        Integrator tolerances on ``w``.
    dense_output : bool, default=False
        Keep the whole path: ``info["path"]`` is a :class:`HadamardFlowPath` (signal as a
        function of the clock).
    progress : bool, default=False
        Progress bar over the integrator's steps.
    blas_threads : int or None, default=1
        BLAS threads while solving (None: leave as configured).

    Returns
    -------
    SolverResult
        ``params`` are the factors ``(u, v)`` at the end (as :class:`Hadamard` would hold them),
        ``n_iter`` the right-hand-side evaluations, ``info["time"]`` the clock at the end,
        ``info["n_steps"]``, ``info["n_jacobians"]``, ``info["n_lu"]`` the integrator's counts.

    Raises
    ------
    DivergenceError
        If the integrator fails even after its restarts with tighter tolerances (see
        :class:`_GuardedFlow`; e.g. an init too small for double precision at a large depth).
        The exact path never reaches the ``L > 2`` blow-up boundary ``u^{2-L} = 0``: ``Phi``
        decreases along it and ``|w'| <= ||y||``, so ``psi*(s)`` stays bounded at finite
        times; trial points past it are rejected.
    """
    stopping = stopping or StoppingRule()
    A, y, dmap = _prepare(operator, y, depth, signed, init_scale)
    check_positive(validation_ratio, "validation_ratio")
    if validation_ratio <= 1:
        raise ValueError(f"validation_ratio must be > 1, got {validation_ratio}")
    validation = _on_ratio_grid(validation, validation_ratio)
    ode = _DualODE(operator, A, y, dmap, signed, stopping.tol)
    m = A.shape[0]
    t_bound = np.inf if stopping.max_flow_time is None else stopping.max_flow_time / m
    start = time.perf_counter()
    monitor = _flow_monitor(stopping, ode.y_norm)
    flow = _GuardedFlow(ode.rhs, ode.jac, dmap, ode.R, ode.y_r, t_bound, rtol, atol,
                        ode.col_norm, floor=1e-12 * ode.y_norm)
    w0 = np.zeros(ode.R.shape[0])
    r = ode.residual(w0)
    loss0 = monitor.initial_loss = 0.5 * float(r @ r)
    if history is not None:
        history.record(0, 0.0, loss0, ode.factors(w0), ode.signal(w0))
    interpolants, ts = [], [0.0]
    n_checks = n_steps = 0
    reason = stop = None
    bar = progress_bar(progress, desc="dual flow (BDF)")
    try:
        while reason is None:
            t_old = flow.solver.t
            s = flow.step()[0]
            r = A @ dmap.signal(s) - y
            r_norm = float(np.linalg.norm(r))
            solver = flow.solver
            n_steps += 1
            bar.update()
            dense = solver.dense_output()
            if dense_output:
                interpolants.append(dense)
                ts.append(solver.t)
            if validation is not None:
                times = checks_due(validation, solver.t * m, n_checks, r_norm, loss0,
                                   iteration=n_steps)
                n_checks += len(times)
                if _check_grid(validation, times, ode, dense, solver, n_steps):
                    reason = StopReason.EARLY_STOPPED
                    break
            reason, stop = _flow_stop(monitor, ode, s, r, r_norm, dense, t_old, solver)
            if stop is not None:  # the discrepancy's crossing: no history point
                break
            if history is not None and (history.due(n_steps) or reason is not None):
                history.record(n_steps, time.perf_counter() - start, 0.5 * r_norm**2,
                               ode.factors(solver.y), dmap.signal(s))
    finally:
        bar.close()
    t_end, w_end = (solver.t, solver.y.copy()) if stop is None else stop
    info = {"time": t_end * m, "clock": "flow_time", "n_steps": n_steps,
            "n_jacobians": flow.n_jacobians, "n_lu": flow.n_lu, "n_restarts": flow.restarts,
            "solver": "flow"}
    if validation is not None:
        best = close_validation(validation, reason, n_steps, t_end * m, ode.signal(w_end),
                                w_end.copy(), info)
        w_end = w_end if best is None else best
    if dense_output and interpolants:
        info["path"] = HadamardFlowPath(OdeSolution(ts, interpolants), ode.R, dmap, m)
    return _flow_result(ode, w_end, t_end, reason, history, info, time.perf_counter() - start)


def checks_due(validation: Validation, clock: float, n_checks: int, r_norm: float,
               loss0: float, *, iteration: int = 0) -> list[float]:
    """The clock times of :meth:`~overparam.stopping.Validation.times_due` (the one rule of
    when to check, on the validation's ratio grid here) reached by ``clock`` after step
    ``iteration``, at which the held-out error is checked, for a path with ``n_checks``
    checks made so far, training residual norm ``r_norm`` and initial loss ``loss0``.

    Grid times on the initial plateau (training loss within ``_PLATEAU_DROP`` of its start)
    are skipped after the first: nothing has been learned there, the checks cannot stop the
    path (Validation's ``min_drop``), and from a small init they are most of the grid. Shared
    by the dual flow and the matrix-free implicit path.
    """
    on_plateau = n_checks > 0 and r_norm**2 > (1 - _PLATEAU_DROP) * 2 * loss0
    return validation.times_due(iteration, clock, skip=on_plateau)


def _on_ratio_grid(validation: Validation | None, ratio: float) -> Validation | None:
    """A private copy of ``validation`` (the caller's is not changed) checked on the grid of
    clock times ``tau_0 ratio^k``."""
    own = private_validation(validation)
    if own is not None:
        own.ratio = float(ratio)
    return own


class _DualODE:
    """The dual ODE ``w' = y - A x(A^T w)`` of :func:`hadamard_flow`, on range(A).

    The signal depends on ``w`` only through its part in range(A) (see
    :func:`hadamard_newton`): for a tall ``A`` the ODE runs on range(A), ``R = Q^T A``
    (``n`` unknowns instead of ``m``, the same path); residuals, the clock and the result stay
    those of ``A`` and ``y``.
    """

    def __init__(self, operator, A, y, dmap: HadamardDualMap, signed: bool, tol: float):
        self.operator, self.A, self.y, self.map, self.signed = operator, A, y, dmap, signed
        self.tol = tol
        self.y_norm = float(np.linalg.norm(y))
        # ||A||_F >= ||A||_2 bounds the range test of converged cheaply; the spectral norm
        # (an SVD, the cost of tens of steps) is computed only if that bound passes
        self.a_fro = float(np.linalg.norm(A))
        self.a_norm = None
        self.n_rhs = 0
        m = A.shape[0]
        self.R, self.y_r, self.basis = _restrict_to_range(A, y) if m > A.shape[1] else (A, y,
                                                                                         None)
        self.col_sq = np.einsum("ij,ij->j", self.R, self.R)
        self.col_norm = max(float(np.sqrt(np.max(self.col_sq, initial=0.0))), 1e-300)

    def rhs(self, t, w):
        self.n_rhs += 1
        with np.errstate(invalid="ignore"):  # NaN trial points (below) come back in
            s = self.R.T @ w
        if not self.map.inside(s):
            # Past the blow-up boundary (L > 2) the clipped map has spurious fixed points that
            # a loose error test can accept; a non-finite value makes BDF reject the trial
            # step and shrink it (the exact path never leaves the domain, see the Notes).
            return np.full(w.shape, np.nan)
        return self.y_r - self.R @ self.map.signal(s)

    def jac(self, t, w):
        """The factor ``B`` of ``J = -B B^T``: columns with ``t x'_j ||a_j||^2 < _JAC_DROP``
        are left out (see :func:`hadamard_flow`; BDF reuses stale Jacobians for many steps
        anyway). All are kept where ``c J`` would swamp the identity in rounding (the kept
        part alone may be singular)."""
        d = self.map.derivative(self.R.T @ w)
        weight = t * d * self.col_sq
        if np.max(weight) < 1e12:
            keep = weight >= _JAC_DROP
            return self.R[:, keep] * np.sqrt(d[keep])
        return self.R * np.sqrt(d)

    def signal(self, w):
        return self.map.signal(self.R.T @ w)

    def factors(self, w):
        return self.map.factors(self.R.T @ w)

    def residual(self, w):
        return self.A @ self.signal(w) - self.y

    def converged(self, x, r) -> bool:
        """Interpolation, or (inconsistent ``y``) a residual orthogonal to range(A)."""
        tol = self.tol
        if not _least_squares_optimal(self.A, self.y, x, r, self.signed, tol, self.y_norm,
                                      self.a_fro):
            return False  # fails even with the larger ||A||_F
        if self.a_norm is None:
            self.a_norm = float(self.operator.norm_estimate())
        return _least_squares_optimal(self.A, self.y, x, r, self.signed, tol, self.y_norm,
                                      self.a_norm)


def _check_grid(validation: Validation, times, ode: _DualODE, dense, solver,
                n_steps: int) -> bool:
    """Check the held-out error at the clock ``times`` of the last step, along its dense
    output; True when validation stops the path."""
    m = ode.A.shape[0]
    for clock in times:
        w = dense(clock / m) if clock < solver.t * m else solver.y
        if validation.check(n_steps, clock, ode.signal(w), w.copy()):
            return True
    return False


def _flow_monitor(stopping: StoppingRule, y_norm: float) -> Monitor:
    """The stopping rule's monitor for the dual flow, without the stagnation test: the
    integrator's steps grow geometrically along the path, so a window of ``patience`` steps
    measures no progress; the flow ends at its fit, end time or budget."""
    return replace(stopping, stagnation_tol=0.0).monitor(y_norm)


def _flow_stop(monitor: Monitor, ode: _DualODE, s, r, r_norm: float, dense, t_old, solver):
    """``(reason, stop)`` after a step: the stopping rule's reason (or None), decided by
    :meth:`~overparam.stopping.Monitor.update` as for every solver (``iteration`` = the
    right-hand-side evaluations, ``tol`` tested by :meth:`_DualODE.converged`), and, for the
    discrepancy principle, ``(t, w)`` at the exact time the residual norm crosses it."""
    m = ode.A.shape[0]
    reason = monitor.update(ode.n_rhs, 0.5 * r_norm**2, r_norm, solver.t * m,
                            converged=lambda: ode.converged(ode.map.signal(s), r))
    if reason is StopReason.DISCREPANCY:
        t = _crossing(lambda tt: np.linalg.norm(ode.residual(dense(tt))),
                      monitor.rule.discrepancy, t_old, solver.t)
        return reason, (t, dense(t))
    return reason, None


def _flow_result(ode: _DualODE, w_end, t_end: float, reason, history, info: dict,
                 wall_time: float) -> SolverResult:
    """The result at the dual point ``w_end`` (clock ``t_end m``)."""
    s_end = ode.R.T @ w_end
    x = ode.map.signal(s_end)
    if not np.all(np.isfinite(x)):
        raise DivergenceError("non-finite estimate at the end of the dual flow")
    r = ode.A @ x - ode.y
    info["final_loss"] = 0.5 * float(r @ r)
    # the part of w outside range(A) grows as t (I - Q Q^T) y
    basis, y = ode.basis, ode.y
    info["dual"] = (w_end if basis is None
                    else basis @ w_end + t_end * (y - basis @ (basis.T @ y)))
    return SolverResult(coef=x, params=ode.map.factors(s_end), n_iter=ode.n_rhs,
                        wall_time=wall_time, stop_reason=reason, history=history, info=info)


def _scaled_tolerances(dmap: HadamardDualMap, s, rtol: float, atol: float, col_norm: float):
    """Integrator tolerances ``(rtol, atol)`` on ``w`` at the state ``s = A^T w``.

    For ``L = 2``, ``d log x / ds = 4`` and ``|s| ~ log(x / alpha) / 4``: a relative error
    ``rtol`` of ``w`` moves ``log x`` by about ``rtol log(x / alpha)``, and ``(rtol, atol)``
    hold as given. For ``L > 2``, ``d log|x_j| / ds_j = L^2 / u_j^{2-L}`` grows like
    ``1 / margin`` near the blow-up boundary, where ``s`` is of the order of ``s_max``, and
    ``|w|`` grows without bound along the plateaus of the path (``w' = -r``) while ``s``
    does not: an error relative to ``|w|`` says nothing about ``x``, and the given
    tolerances let the integrator step across the boundary. The same accuracy in ``log x``
    as at ``L = 2`` (``log(x / alpha) = L / (L - 2) log(1 / margin)``) needs
    ``|ds| <= rtol s_max f``, ``f = margin max(1, log(1 / margin))`` (current margin): an
    absolute tolerance on ``w`` of that over the largest column norm (plus ``atol f``).
    """
    if dmap.depth == 2:
        return rtol, atol
    margin = max(dmap.margin(s), _MIN_MARGIN)
    factor = margin * max(1.0, -np.log(margin))
    return _MIN_RTOL, factor * (rtol * dmap.s_max / col_norm + atol)


def _crossing(fun, level, t0, t1):
    """First time in ``[t0, t1]`` where the decreasing ``fun`` falls to ``level``."""
    f0 = fun(t0) - level
    if f0 <= 0:
        return t0
    xtol = 1e-12 * max(t1, 1e-300)
    root = brentq(lambda tt: fun(tt) - level, t0, t1, xtol=xtol, rtol=1e-10)
    # brentq may land a rounding error before the crossing: step onto its far side
    while root < t1 and fun(root) > level:
        root = min(t1, root + xtol)
        xtol *= 2
    return root


@_limit_blas
def hadamard_newton(
    operator,
    y,
    *,
    depth: int = 2,
    signed: bool = True,
    init_scale: float = 1e-6,
    tol: float = 1e-10,
    max_iter: int = 500,
    dual_init=None,
) -> SolverResult:
    """The limit of the gradient flow (time to infinity), by damped Newton on its dual.

    Minimizes the convex ``Phi(w) = sum psi*(A^T w) - <y, w>`` whose gradient is
    ``A x(A^T w) - y`` and Hessian ``A diag(x'(s)) A^T`` (see the module docstring): its
    minimizer is the root of ``A x(A^T w) = y``, the flow's limit. Each step solves the Newton
    system by Cholesky (least squares if singular; when that is no inexact Newton step, or its
    line search stalls, from a QR of the system's square-root factor: see
    :func:`_newton_direction`) and backtracks (Armijo, on the change of
    ``Phi`` summed per coordinate, free of the cancellation in ``Phi`` itself, whose
    ``<y, w>`` is huge for a small init) from a step that changes ``s`` by at most 1
    (``L = 2``: a factor ``e^4`` in ``x``) or, for ``L > 2``, goes at most 99% of the way to
    the blow-up boundary.

    When ``A x = y`` has no solution (overdetermined noisy data, rank-deficient ``A``), ``Phi``
    has no minimizer, but the flow's signal depends only on the part of ``w`` in range(A):
    the flow with ``y`` and with its projection ``P y`` onto range(A) have the same signal.
    Newton therefore runs on range(A) (see :func:`_restrict_to_range`), where the limit is the
    least-squares solution that the flow reaches (for a signed model among the least-squares
    solutions; non-negative, a non-negative least-squares point).

    Parameters
    ----------
    operator : Operator
        Matrix operator.
    y : ndarray of shape (m,)
    depth, signed, init_scale
        As :func:`hadamard_flow`.
    tol : float, default=1e-10
        Stop when ``||A x - P y|| <= tol ||P y||`` (``P y = y`` for a consistent system), or,
        non-negative and ``P y`` outside the cone of ``A``, when the KKT conditions of
        non-negative least squares hold to ``tol`` (:func:`_least_squares_optimal`). "Converged"
        is reported only then.
    max_iter : int, default=500
        Newton steps.
    dual_init : ndarray of shape (m,), optional
        Starting dual vector (default zero, the init of the flow).
    blas_threads : int or None, default=1
        BLAS threads while solving (None: leave as configured).

    Returns
    -------
    SolverResult
        ``n_iter`` Newton steps; ``info["n_backtracks"]``, ``info["n_graded"]`` (steps from the
        square-root factor), ``info["dual"]``, ``info["range_rank"]`` (the rank of ``A``
        used).

    Raises
    ------
    NewtonConvergenceError
        If the iteration stalls (the line search finds no decrease: rounding level, e.g. an
        init too small for double precision at a large depth) or reaches ``max_iter``, before
        the optimality test holds (the dual ODE, :func:`hadamard_flow`, may still work then).
    """
    A, y, dmap = _prepare(operator, y, depth, signed, init_scale)
    check_positive(tol, "tol")
    check_positive(max_iter, "max_iter", integer=True)
    start = time.perf_counter()
    m = A.shape[0]
    w = np.zeros(m) if dual_init is None else check_array(dual_init, "dual_init", ndim=1).copy()
    if w.shape != (m,):
        raise ValueError(f"dual_init must have shape ({m},), got {w.shape}")
    # The flow's s = A^T w only sees the part of w in range(A) (w' = y - A x: the rest of w
    # grows along the part of y outside range(A) and never reaches s), so the flow with y and
    # with its projection P y are the same path: Newton works on range(A), where A x = P y
    # always has a solution (least squares), and the dual function has a minimizer.
    B, z_y, basis = _restrict_to_range(A, y)
    z = w if basis is None else basis.T @ w
    z_norm = float(np.linalg.norm(z_y))
    s = B.T @ z
    if not np.isfinite(dmap.potential(s)):
        raise ValueError("dual_init lies outside the domain of the dual function")
    # The iteration moves the map's origin to each new point (HadamardDualMap.recentered):
    # s = A^T w is large near the limit (for L > 2 of the order of s_max, where the factors
    # are c - L(L-2) s, a difference of two large numbers), and recomputing it from w at every
    # step would round x by eps / margin relative, which keeps a tight tol out of reach for a
    # tiny init at depth L > 2. From the moving origin only the steps are added.
    dmap, s = dmap.recentered(s), np.zeros_like(s)
    n_backtracks = n_graded = 0
    hessian = True  # whether the next step tries the Hessian H first (see _CHOLESKY_COND)
    reason = None
    it = 0
    x = dmap.signal(s)
    g = B @ x - z_y
    for it in range(1, max_iter + 1):
        if _least_squares_optimal(B, z_y, x, g, signed, tol, z_norm):
            reason = StopReason.CONVERGED
            it -= 1
            break
        d = dmap.derivative(s)
        # a Hessian step whose line search stalls is tried again as the graded step
        for graded in (False, True) if hessian else (True,):
            step, cond = _newton_direction(B, d, g, x, z_norm, tol, graded)
            decrement = float(g @ step)
            if not np.isfinite(decrement):
                raise NewtonConvergenceError(f"non-finite Newton step at iteration {it}")
            ds = B.T @ step
            t, new_s, halvings = _dual_line_search(dmap, s, ds, float(z_y @ step), decrement,
                                                   _max_step(dmap, s, ds))
            n_backtracks += halvings
            if t is not None or cond is not None:
                break
        n_graded += cond is not None
        hessian = cond is None or cond < _CHOLESKY_COND
        if t is None:
            raise NewtonConvergenceError(
                f"Newton line search stalled at iteration {it} (relative residual "
                f"{np.linalg.norm(g) / max(z_norm, 1e-300):.3e}, not optimal); the init may "
                "be too small for double precision at this depth; use solver='flow'")
        z = z - t * step
        dmap, s = dmap.recentered(new_s), np.zeros_like(s)
        x = dmap.signal(s)
        g = B @ x - z_y
    if reason is None:
        raise NewtonConvergenceError(
            f"Newton did not converge in {max_iter} steps (relative residual "
            f"{np.linalg.norm(g) / max(z_norm, 1e-300):.3e}); "
            "use the dual ODE (solver='flow')")
    if not np.all(np.isfinite(x)):  # (x: the signal at the last s)
        raise DivergenceError("non-finite flow limit from Newton's method")
    r = A @ x - y
    info = {"n_backtracks": n_backtracks, "n_graded": n_graded,
            "dual": z if basis is None else basis @ z, "final_loss": 0.5 * float(r @ r),
            "time": np.inf, "clock": "flow_time",
            "solver": "newton", "range_rank": B.shape[0]}
    return SolverResult(coef=x, params=dmap.factors(s), n_iter=it,
                        wall_time=time.perf_counter() - start, stop_reason=reason, info=info)


def _dual_line_search(dmap: HadamardDualMap, s, ds, y_dot_step: float, decrement: float,
                      t: float):
    """Backtracking (Armijo) on ``Phi`` along ``w - t p`` (``s - t ds``) from the trial ``t``.

    The change of ``Phi`` is summed per coordinate (:meth:`HadamardDualMap.potential_change`)
    plus ``t <y, p>``, free of the cancellation in ``Phi`` itself. Returns ``(t, new_s,
    halvings)``, with ``t = None`` when halving took the step below ``1e-20`` (stalled).
    """
    halvings = 0
    # the factors and potential at s, once for all trials (each costs exponentials over n)
    old = dmap.factors(s)
    potential = dmap.potential(s, old)
    while True:  # the first trial is always tried, however small
        new_s = s - t * ds
        change = dmap.potential_change(s, new_s, old) + t * y_dot_step
        # rounding of the change: eps times the potential (not the large <y, w>)
        slack = 10 * np.finfo(float).eps * (potential + abs(t * y_dot_step))
        if change <= -1e-4 * t * decrement + slack:
            return t, new_s, halvings
        t *= 0.5
        halvings += 1
        if t < 1e-20:
            return None, s, halvings


def _newton_direction(B, d, g, x, y_norm: float, tol: float, graded: bool = False):
    """``(step, cond)``: the Newton step ``H^{-1} g``, ``H = B diag(d) B^T`` at the signal ``x``.

    By Cholesky of ``H``, or, if that fails (``H`` numerically singular), least squares on
    ``H``, kept when its linearized residual ``||g - B diag(d) B^T p||`` (by products) is at most
    ``_INEXACT_NEWTON ||g||`` (``cond`` None). Otherwise, or when ``graded``, the graded step
    (:func:`_graded_direction`) down to the residual ``max(4 eps (|| |B| |x| || + ||y||),
    tol ||y|| / 100)`` (the rounding level of ``B x - y`` or, if larger, a hundredth of the
    Newton tolerance), with ``cond`` its estimate of ``cond(H)``. Least squares on ``H`` drops
    the directions below ``eps ||H||``; mostly they carry little of ``g``, but from a tiny init
    at depth ``L > 2`` they can be the directions along which the small coordinates must
    grow, and its steps then leave ``g`` as it was (ratio ~1: Newton stalled).
    """
    if not graded:
        H = (B * d) @ B.T
        try:
            return cho_solve(cho_factor(H, check_finite=False), g, check_finite=False), None
        except LinAlgError:
            pass
        try:
            step = lstsq(H, g, check_finite=False)[0]
        except LinAlgError:  # the SVD of gelsd can fail to converge (depth 3, N = 1e4)
            step = lstsq(H, g, lapack_driver="gelsy", check_finite=False)[0]
        residual = np.linalg.norm(g - B @ (d * (B.T @ step)))
        if residual <= _INEXACT_NEWTON * np.linalg.norm(g):
            return step, None
    rounding = float(np.linalg.norm(np.abs(B) @ np.abs(x))) + y_norm
    floor = max(4 * np.finfo(float).eps * rounding, 0.01 * tol * y_norm)
    return _graded_direction(B, d, g, floor)


def _graded_direction(B, d, g, floor: float):
    """``(step, cond)``: the Newton step ``H^{-1} g``, ``H = F^T F``, from a column-pivoted QR
    of the square-root factor ``F = diag(sqrt(d)) B^T``, on the fewest pivots that reach the
    residual ``floor``.

    Why not ``H``: at depth ``L > 2`` from a tiny init the weights ``d = x'(s)`` of the
    coordinates that must still grow are ``~ |x|^(2 - 2/L)``, tens of orders of magnitude below
    those of the large ones, and ``cond(H)`` reaches ``1e17`` and beyond. Squaring ``F`` into
    ``H`` loses everything below ``eps ||H||``: Cholesky fails, and a least-squares solve of
    ``H`` drops those directions, which can be the ones along which the small coordinates must
    grow: Newton then stalls short of the limit. ``F`` keeps them to ``eps ||F||`` (the
    square root of the conditioning), and with its rows sorted by decreasing weight,
    Householder QR with column pivoting is accurate row by row for such graded rows (Cox and
    Higham, 1998).

    With ``F P = Q R`` and ``h = P^T g``, the step ``p = P [q; 0]`` on the first ``k`` pivots
    solves ``R_11^T u = h_1``, ``R_11 q = u``; its decrement ``g^T p = ||u||^2`` is positive (a
    descent direction for ``Phi``), and the linearized residual after it,
    ``B x_new - y = g - H p``, is ``[0; h_2 - R_12^T u]``. ``k`` is the fewest pivots for which
    that residual is at most ``floor`` (else the smallest residual): the rank is chosen by the
    residual reached, not by a cutoff on ``R``'s diagonal, which would drop the small pivots
    that the growing coordinates need. ``Q`` is never formed. On all ``m`` pivots ``p`` is the
    exact Newton step. ``cond = (|R_11| / |R_rr|)^2`` (``r`` nonzero pivots) estimates
    ``cond(H)``.
    """
    order = np.argsort(-d, kind="stable")
    # (n x m) in Fortran order, so that LAPACK works on it in place
    F = np.multiply(B[:, order], np.sqrt(d[order]), order="C").T
    R, piv = qr(F, mode="r", pivoting=True, overwrite_a=True, check_finite=False)
    diag = np.abs(np.diag(R))
    rank = int(np.argmin(diag > 0)) if diag.size and diag[-1] == 0 else diag.size
    if rank == 0:
        raise NewtonConvergenceError("zero Newton system (all weights vanish)")
    R, h = R[:rank], g[piv]
    with np.errstate(all="ignore"):
        u = solve_triangular(R[:, :rank], h[:rank], trans="T", check_finite=False)
        # misfit[k - 1, j] = h_j - sum_{i < k} R_ij u_i, the residual of row j on k pivots
        misfit = h - np.cumsum(R * u[:, None], axis=0)
        residual = np.sqrt(np.sum(np.triu(misfit, 1) ** 2, axis=1))
    reached = np.flatnonzero(residual <= floor)
    if reached.size:
        k = int(reached[0]) + 1
    elif np.any(np.isfinite(residual)):
        k = int(np.nanargmin(np.where(np.isfinite(residual), residual, np.nan))) + 1
    else:
        raise NewtonConvergenceError("non-finite Newton step (graded QR)")
    step = np.zeros_like(g)
    step[piv[:k]] = solve_triangular(R[:k, :k], u[:k], check_finite=False)
    return step, float((diag[0] / diag[rank - 1]) ** 2)


def _restrict_to_range(A, y):
    """``(B, z, Q)``: ``B = Q^T A``, ``z = Q^T y`` for an orthonormal basis ``Q`` of range(A).

    ``Q`` is None (``B = A``, ``z = y``) when ``A A^T`` is well conditioned (full row rank,
    the usual underdetermined case: one Cholesky factor of an ``m x m`` matrix); otherwise
    ``Q`` comes from a column-pivoted QR factorization of ``A`` (LAPACK), its rank from the
    usual threshold ``max(m, n) eps |R_11|``.
    """
    m, n = A.shape
    eps = np.finfo(float).eps
    if 0 < m <= n:
        gram = A @ A.T
        try:
            factor = cho_factor(gram, check_finite=False)[0]
            pivots = np.diag(factor) ** 2
            if np.min(pivots) > _FULL_RANK_RCOND * np.max(np.diag(gram)):
                return A, y, None
        except LinAlgError:
            pass
    Q, R, _ = qr(A, mode="economic", pivoting=True, check_finite=False)
    diag = np.abs(np.diag(R))
    rank = 0 if diag.size == 0 or diag[0] == 0 else int(np.sum(diag > max(m, n) * eps * diag[0]))
    Q = Q[:, :rank]
    return Q.T @ A, Q.T @ y, Q


def _least_squares_optimal(A, y, x, r, signed, tol, y_norm, a_norm=None) -> bool:
    """Whether ``x`` (residual ``r = A x - y``) solves what the flow's limit solves, to ``tol``.

    Interpolation: ``||r|| <= tol ||y||``. Otherwise the flow's limit is a least-squares
    point over the model's signals: signed, the normal equations ``||A^T r|| <= tol ||A||
    ||r||``; non-negative, the KKT conditions of non-negative least squares
    (``A^T r >= -tol ||A|| ||y||`` and ``sum |x_j (A^T r)_j| <= tol ||y||^2``).
    ``a_norm`` (``||A||_2``) defaults to the cheaper upper bound ``||A||_F``.
    """
    r_norm = float(np.linalg.norm(r))
    if r_norm <= tol * y_norm:
        return True
    g = A.T @ r
    a_norm = float(np.linalg.norm(A)) if a_norm is None else a_norm
    if signed:
        return float(np.linalg.norm(g)) <= tol * a_norm * r_norm
    return (float(np.min(g, initial=0.0)) >= -tol * a_norm * y_norm
            and float(np.sum(np.abs(x * g))) <= tol * y_norm**2)


def _max_step(dmap: HadamardDualMap, s, ds) -> float:
    """Largest trial step length along ``-ds``: at most 1; for ``L = 2`` a growing part changes
    by at most ``e^4``; for ``L > 2`` at most 99% of the way to the blow-up boundary."""
    # only growing parts can overflow: s rises where -ds > 0 (and, signed, falls where ds > 0)
    peak = float(np.max(np.abs(ds)) if dmap.signed else max(np.max(-ds), 0.0))
    if peak == 0:
        return 1.0
    if dmap.depth == 2:
        return min(1.0, 1.0 / peak)
    # fraction-to-boundary: keep u^{2-L}, v^{2-L} positive
    limit = dmap.room(s, ds)
    return min(1.0, 0.99 * limit)


class FlowStep(AdaptiveStep):
    """Safe adaptive scalar step for the Hadamard factorization that keeps the flow's path.

    Backtracking (Armijo) as :class:`~overparam.solvers.AdaptiveStep`, so the loss never
    increases, plus a cap (:meth:`limit`) recomputed every iteration from the current factors
    ``p`` and their gradient:

    - the largest relative change of a factor in one step, ``step * max |grad_p / p|``, is at
      most ``relative_change`` (so the multiplicative growth of the small coordinates, which
      decides the implicit bias, is followed closely). For ``x = u^L - v^L`` and ``g = A^T r``,
      ``grad_u / u = L g u^{L-2}``: the factor's relative speed;
    - once bound to a depth ``L`` and ``||A||^2`` (:meth:`bind`),
      ``step <= curvature / (||A||^2 L^2 max p^{2L-2})``, a bound on the inverse curvature of the
      loss in the factors (no oscillation across the stiff directions).

    Small factors therefore move with large steps and the path stays within ``O(relative_change)``
    of the gradient flow. :func:`hadamard_gd` binds it to its problem.

    Parameters
    ----------
    relative_change : float, default=0.01
    curvature : float, default=1.0
    grow, shrink, armijo
        As :class:`~overparam.solvers.AdaptiveStep`.
    depth : int, optional
        Number of factors ``L``; with ``norm_sq``, enables the curvature cap.
    norm_sq : float, optional
        ``||A||^2`` (squared operator norm) of the measurement operator.
    """

    def __init__(self, relative_change: float = 0.01, curvature: float = 1.0, grow: float = 1.1,
                 shrink: float = 0.5, armijo: float = 1e-4, *, depth: int | None = None,
                 norm_sq: float | None = None):
        check_positive(relative_change, "relative_change")
        check_positive(curvature, "curvature")
        super().__init__(grow=grow, shrink=shrink, armijo=armijo)
        self.relative_change = float(relative_change)
        self.curvature = float(curvature)
        self.depth = None if depth is None else int(depth)
        self.norm_sq = None if norm_sq is None else float(norm_sq)

    def bind(self, depth: int, norm_sq: float) -> FlowStep:
        """A copy of this policy with the curvature cap set for ``depth`` and ``||A||^2``."""
        check_positive(depth, "depth", integer=True)
        check_positive(norm_sq, "norm_sq", strict=False)
        bound = copy.copy(self)
        bound.depth, bound.norm_sq = int(depth), float(norm_sq)
        return bound

    def limit(self, params, grads) -> float:
        """The step bound at factors ``params`` with gradient ``grads`` (see the class)."""
        bound = np.inf
        speed = 0.0
        for p, g in zip(params, grads, strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                peak = float(np.max(np.abs(g / p), initial=0.0))
            if not np.isfinite(peak):
                # a zero factor stays zero under the multiplicative update: it sets no speed
                rel = np.divide(np.abs(g), np.abs(p), out=np.zeros(np.shape(p)), where=p != 0)
                peak = float(np.max(rel, initial=0.0))
            speed = max(speed, peak)
        if speed > 0:
            bound = self.relative_change / speed
        if self.depth is not None and self.norm_sq is not None:
            L = self.depth
            top = max(float(np.max(np.abs(p), initial=0.0)) for p in params)
            bound = min(bound, self.curvature / max(self.norm_sq * L * L * top ** (2 * L - 2),
                                                    1e-300))
        return bound

    def start(self, initial):
        return self.max_step if initial is None else min(float(initial), self.max_step)


@_limit_blas
def hadamard_gd(
    operator,
    y,
    *,
    depth: int = 2,
    signed: bool = True,
    init_scale: float = 1e-6,
    step="flow",
    stopping: StoppingRule | None = None,
    validation: Validation | None = None,
    validation_ratio: float = 1.05,
    history: History | None = None,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Gradient descent on ``1/2 ||A (u^L - v^L) - y||^2`` over the factors.

    A call of :func:`~overparam.solvers.gradient_descent` on the
    :class:`~overparam.parameterizations.Hadamard` factorization with the flow-keeping step.

    Parameters
    ----------
    operator : Operator
    y : ndarray of shape (m,)
    depth, signed, init_scale
        As :class:`~overparam.parameterizations.Hadamard` (``init_scale`` = product init).
    step : "flow", float or StepPolicy, default="flow"
        ``"flow"``: the safe adaptive scalar step :class:`FlowStep` (never increases the loss,
        stays close to the gradient-flow path; a given :class:`FlowStep` is bound to this
        problem's depth and ``||A||^2``); a number: the paper's fixed step (the paper used
        ``1e-2``); or any :class:`~overparam.solvers.StepPolicy` (e.g. ``"adaptive"``, plain
        backtracking, whose large steps drift from the flow's limit by a few percent).
    stopping, history, callback, progress
        As :func:`~overparam.solvers.gradient_descent` (same mean-loss flow clock).
    validation : Validation, optional
        Held-out early stopping, checked (as in :func:`hadamard_flow`) at the first iterations
        past the clock times ``tau_0 r^k``, ``r = validation_ratio``: the path's time scale
        spans decades, and evenly spaced checks with a patience stop at early local minima of
        the held-out error. The caller's object is not changed (its ``ratio`` is set on a
        copy); the best iterate is returned, the curve is ``info["validation_curve"]``.
    validation_ratio : float, default=1.05
    blas_threads : int or None, default=1
        BLAS threads while solving (None: leave as configured).

    Returns
    -------
    SolverResult
        ``info["solver"] = "gd"``, ``info["step_policy"]`` (``"flow"`` or the policy's class).
    """
    param = Hadamard(operator.shape[1], depth=depth, signed=signed)
    check_positive(validation_ratio, "validation_ratio")
    if validation_ratio <= 1:
        raise ValueError(f"validation_ratio must be > 1, got {validation_ratio}")
    flow_step = isinstance(step, FlowStep) or (isinstance(step, str) and step == "flow")
    if flow_step:
        policy = (step if isinstance(step, FlowStep) else FlowStep()).bind(
            depth, operator.norm_estimate() ** 2)
    else:
        policy = as_step_policy(step)
    validation = _on_ratio_grid(validation, validation_ratio)
    result = gradient_descent(param, operator, np.asarray(y, dtype=float),
                              init_params=param.init(init_scale), step=policy,
                              stopping=stopping, history=history, validation=validation,
                              callback=callback, progress=progress)
    result.info.update(solver="gd", step_policy="flow" if flow_step else type(policy).__name__)
    return result
