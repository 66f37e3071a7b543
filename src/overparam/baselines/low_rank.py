"""Baselines for low-rank matrix sensing: nuclear-norm minimization (cvxpy), the PSD variant."""

from __future__ import annotations

import time
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from .._optional import require
from .._registry import register_method
from .._validation import check_array, check_positive, check_random_state
from ..estimators._constraints import (
    ARRAY_LIKE,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    shared_constraints,
)
from ..estimators.base import RecoveryEstimator
from ..estimators.low_rank import FactorizedRegressor, matrix_shape
from ..operators import check_measurements
from ..solvers import SolverResult
from ..stopping import StopReason

__all__ = [
    "NuclearNormCV",
    "NuclearNormRegressor",
    "PSDFactorizedRegressor",
    "nuclear_norm_minimization",
    "nuclear_norm_proximal",
]

_OK = ("optimal", "optimal_inaccurate")
#: ``solver`` of :class:`NuclearNormCV` that selects the first-order path (not a cvxpy name)
PROXIMAL = "proximal"


def _variable_and_measurements(operator):
    cp = require("cvxpy", extra="baselines")

    n1, n2 = matrix_shape(operator)
    A = np.asarray(operator.to_dense(), dtype=float)
    X = cp.Variable((n1, n2))
    # to_dense() acts on row-major (C order) flattened matrices.
    return X, A @ cp.vec(X, order="C")


def _solve_problem(problem, solver):
    cp = require("cvxpy", extra="baselines")

    try:
        problem.solve(solver=solver)
    except cp.error.SolverError as exc:
        raise RuntimeError(f"cvxpy could not solve the nuclear-norm problem: {exc}") from exc
    if problem.status in ("infeasible", "infeasible_inaccurate"):
        raise ValueError("the nuclear-norm problem is infeasible: A(X) = y has no solution "
                         "(noisy data? give noise_bound or lam)")
    if problem.status not in _OK:
        raise RuntimeError(f"the nuclear-norm problem ended with status {problem.status!r}")


def nuclear_norm_minimization(operator, y, *, noise_bound=None, lam=None, solver=None):
    """Nuclear-norm minimization for matrix sensing, solved with cvxpy.

    - neither ``noise_bound`` nor ``lam``: ``min ||X||_*  s.t.  A(X) = y``;
    - ``noise_bound``: ``min ||X||_*  s.t.  ||A(X) - y||_2 <= noise_bound``;
    - ``lam``: ``min 1/2 ||A(X) - y||^2 + lam ||X||_*``.

    Parameters
    ----------
    operator : Operator or ndarray of shape (m, n1, n2)
        Any operator with a 2-D ``input_shape`` (its ``to_dense()`` builds the cvxpy expression).
    y : ndarray of shape (m,)
    noise_bound, lam : float, optional
        At most one of them.
    solver : str, optional
        A cvxpy solver name (default: cvxpy's choice for this SDP, e.g. Clarabel or SCS).

    Returns
    -------
    ndarray of shape (n1, n2)
    """
    cp = require("cvxpy", extra="baselines")

    operator, y = check_measurements(operator, y)
    if noise_bound is not None and lam is not None:
        raise ValueError("give noise_bound or lam, not both")
    X, AX = _variable_and_measurements(operator)
    if lam is not None:
        check_positive(lam, "lam", strict=False)
        problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(AX - y) + lam * cp.normNuc(X)))
    elif noise_bound is not None:
        check_positive(noise_bound, "noise_bound", strict=False)
        problem = cp.Problem(cp.Minimize(cp.normNuc(X)), [cp.norm(AX - y, 2) <= noise_bound])
    else:
        problem = cp.Problem(cp.Minimize(cp.normNuc(X)), [AX == y])
    _solve_problem(problem, solver)
    return np.asarray(X.value, dtype=float)


def _squared_norm(operator) -> float:
    """``||A||_2^2`` by ARPACK on the products (a stored Gaussian operator's own estimate
    is a full SVD), with 1 % to spare: the step ``1 / L`` must not exceed the inverse
    Lipschitz constant of the gradient."""
    from scipy.sparse.linalg import svds

    m, n = operator.shape
    if min(m, n) <= 3 or m * n <= 40_000:
        top = float(np.linalg.norm(operator.to_dense(), 2))
    else:
        v0 = np.random.default_rng(0).standard_normal(min(m, n))
        top = float(svds(operator.as_linear_operator(), k=1, tol=1e-4,
                         return_singular_vectors=False, v0=v0)[0])
    return 1.01 * top**2


def nuclear_norm_proximal(operator, y, lam, *, x0=None, tol=1e-6, max_iter=5000,
                          lipschitz=None):
    """``min 1/2 ||A(X) - y||^2 + lam ||X||_*`` by accelerated proximal gradient.

    pyproximal's :class:`~pyproximal.optimization.cls_primal.ProximalGradient` (FISTA
    acceleration, step ``1 / ||A||_2^2``) with its ``Nuclear`` prox (singular-value
    thresholding) and ``L2`` data term: only products with ``A`` and ``A^*``, so it runs
    where cvxpy's conic form (``m n1 n2`` nonzeros) cannot be built. Stops when the
    gradient mapping at the extrapolated point, ``||z - prox(z - tau grad f(z))|| / tau``,
    falls to ``tol ||A^*(y)||_F`` (zero exactly at the minimizer).

    Parameters
    ----------
    operator : Operator or ndarray of shape (m, n1, n2)
    y : ndarray of shape (m,)
    lam : float
        Penalty of the sum loss.
    x0 : ndarray of shape (n1, n2), optional
        Warm start (zero by default).
    tol : float, default=1e-6
    max_iter : int, default=5000
    lipschitz : float, optional
        ``||A||_2^2`` when known (the folds of a grid reuse it).

    Returns
    -------
    X : ndarray of shape (n1, n2)
    info : dict
        ``n_iter``, ``converged`` (the stopping test above was met) and
        ``gradient_mapping`` (its last value relative to ``||A^*(y)||_F``).
    """
    pyproximal = require("pyproximal", extra="proximal")
    pylops = require("pylops", extra="proximal")
    from pyproximal.optimization.cls_primal import ProximalGradient

    operator, y = check_measurements(operator, y)
    check_positive(lam, "lam", strict=False)
    shape = matrix_shape(operator)
    lipschitz = _squared_norm(operator) if lipschitz is None else float(lipschitz)
    scale = float(np.linalg.norm(operator.adjoint(y)))
    x = np.zeros(shape[0] * shape[1]) if x0 is None else np.asarray(x0, float).ravel().copy()
    if scale == 0 or lipschitz == 0:
        return np.zeros(shape), {"n_iter": 0, "converged": True, "gradient_mapping": 0.0}
    data = pyproximal.L2(Op=pylops.aslinearoperator(operator.as_linear_operator()), b=y)
    solver = ProximalGradient()
    x, z = solver.setup(data, pyproximal.Nuclear(shape, sigma=float(lam)), x,
                        tau=1.0 / lipschitz, acceleration="fista")
    tau = float(solver.tau[0])  # pyproximal keeps the step in single precision
    mapping, n_iter = np.inf, 0
    while n_iter < max_iter and mapping > tol:
        z_before = z
        x, z = solver.step(x, z)
        n_iter += 1
        mapping = float(np.linalg.norm(z_before - x)) / (tau * scale)
    if not np.all(np.isfinite(x)):
        raise RuntimeError("the proximal gradient iterates of the nuclear-norm problem are "
                           "not finite")
    return x.reshape(shape), {"n_iter": n_iter, "converged": mapping <= tol,
                              "gradient_mapping": mapping}


def _result(X, start, info) -> SolverResult:
    if not np.all(np.isfinite(X)):
        raise RuntimeError("the nuclear-norm solver returned a non-finite matrix")
    return SolverResult(coef=X, params=(), n_iter=1, wall_time=time.perf_counter() - start,
                        stop_reason=StopReason.CONVERGED, info={"clock": "iterations", **info})


@register_method("nuclear-norm", "low-rank matrix: nuclear-norm minimization (cvxpy)")
class NuclearNormRegressor(RecoveryEstimator):
    """Nuclear-norm minimization (the convex baseline of matrix sensing), via cvxpy.

    Parameters
    ----------
    noise_bound : float, optional
        Constrain ``||A(X) - y|| <= noise_bound`` instead of ``A(X) = y``.
    lam : float, optional
        Solve the penalized form ``1/2 ||A(X) - y||^2 + lam ||X||_*``.
    solver : str, optional
        cvxpy solver name.
    """

    # A given noise_bound or lam is in the units of the data: then not normalized. The
    # solver's status is the optimality check (its tolerances are looser than 1e-4).
    _absolute_params = ("noise_bound", "lam")
    _accepts_sparse = False  # a matrix signal needs a 3-D stack, not a sparse 2-D X
    _limit_interpolates = False
    _parameter_constraints: ClassVar[dict] = {
        "noise_bound": [NON_NEGATIVE, None],
        "lam": [NON_NEGATIVE, None],
        "solver": [str, None],
    }

    def __init__(self, noise_bound=None, lam=None, solver=None):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        X = nuclear_norm_minimization(operator, y, noise_bound=self.noise_bound, lam=self.lam,
                                      solver=self.solver)
        return _result(X, start, {})


@register_method("nuclear-norm-cv",
                 "low-rank matrix: nuclear-norm penalty with lambda by cross-validation (cvxpy)")
class NuclearNormCV(RecoveryEstimator):
    """Penalized nuclear-norm minimization with the penalty chosen by K-fold cross-validation.

    The penalty is set for the mean loss, ``1/(2m) ||A(X) - y||^2 + alpha ||X||_*`` (as in
    scikit-learn's ``LassoCV``), so that a value chosen on ``(K-1)/K`` of the measurements
    carries over to the refit on all of them. The grid runs from ``alpha_max = ||A^*(y)||/m``
    (where ``X = 0`` is optimal) down over ``n_alphas`` log-spaced values to
    ``eps * alpha_max``; while the smallest penalty is the best, the grid continues below
    it with the same ratio, down to ``1e-4 alpha_max``. Folds come from
    :class:`sklearn.model_selection.KFold`; each fold's problem is compiled once with a cvxpy
    ``Parameter`` for the penalty. The chosen penalty
    is the smallest whose mean held-out error is within ``tie_rtol`` of the minimum: on clean
    data the held-out errors of the small penalties tie (the folds hold too few measurements
    to recover the matrix), and the smallest one biases the refit least.

    Without an explicit grid the data are normalized before solving (see
    :class:`~overparam.estimators.base.RecoveryEstimator`): the conic solver's tolerances are
    absolute, and its answers on data scaled by 1e-6 or 1e6 were far from the optimum
    (issue 13). ``alpha_``, ``alphas_`` and ``cv_errors_`` are reported in the data's units.

    Parameters
    ----------
    alphas : sequence of float, optional
        Explicit grid (mean-loss penalties).
    n_alphas : int, default=8
    eps : float, default=1e-3
    cv : int, default=5
        Number of folds. The folds' problems must be close to the whole one: with 3 folds a
        fold of the 28 measurements of a 6 x 6 rank-1 matrix keeps 19, too few to recover it,
        and the penalty chosen there (a positive one predicts better) biases the refit.
    solver : str, optional
        A cvxpy solver name, or ``"proximal"``: accelerated proximal gradient with
        singular-value thresholding (:func:`nuclear_norm_proximal`, the ``proximal`` extra),
        warm-started along the grid. It needs only products with the operator, so it runs
        where cvxpy's conic form cannot be built (docs/matrix_sensing.md, "Cost at scale").
    random_state : None or int
        Shuffles the folds.
    tie_rtol : float, default=0.01
        Held-out errors within this fraction of the smallest count as ties (see above).
    proximal_tol, proximal_max_iter : float and int, default=1e-5 and 5000
        Stopping test and step budget of each first-order solve (``solver="proximal"``); a
        refit that ends on the budget is reported as ``result_.stop_reason == "max_iter"``.

    Attributes
    ----------
    alpha_ : float
        Chosen penalty (mean loss); ``lam_ = alpha_ * m`` is the penalty of the sum loss.
    cv_errors_ : ndarray of shape (n_alphas,)
        Mean held-out squared error per alpha.
    """

    # The solver's status is its optimality check. Normalized to within sqrt(2) (not 16, the
    # default): the conic solver's absolute tolerances leave 50% error at a factor of 15.
    _limit_interpolates = False
    _scale_quantum_log2 = 1

    _accepts_sparse = False  # a matrix signal needs a 3-D stack, not a sparse 2-D X
    _parameter_constraints: ClassVar[dict] = {
        "alphas": [*ARRAY_LIKE, None],
        "n_alphas": [POSITIVE_INT],
        "eps": [Interval(Real, 0, 1, closed="right")],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "solver": [str, None],
        **shared_constraints("random_state"),
        "tie_rtol": [NON_NEGATIVE],
        "proximal_tol": [POSITIVE],
        "proximal_max_iter": [POSITIVE_INT],
    }

    def __init__(self, alphas=None, n_alphas=8, eps=1e-3, cv=5, solver=None, random_state=None,
                 tie_rtol=0.01, proximal_tol=1e-5, proximal_max_iter=5000):
        self._set_init_params(locals())

    def _rescalable(self) -> bool:
        return self.alphas is None and super()._rescalable()  # a given grid is in data units

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        if self.alphas is not None:
            alphas = check_array(self.alphas, "alphas", ndim=1)
            if np.any(alphas < 0):
                raise ValueError(f"alphas must be >= 0, got {self.alphas!r}")

    def _fit_operator(self, operator, y):
        result = super()._fit_operator(operator, y)
        a, s = result.info.get("data_scales", (1.0, 1.0))
        if hasattr(self, "alpha_") and (a, s) != (1.0, 1.0):
            # x' = (a / s) x on data (A / a, y / s): the mean-loss penalty scales by a s
            self.alpha_, self.alphas_ = self.alpha_ * a * s, self.alphas_ * (a * s)
            self.lam_, self.cv_errors_ = self.lam_ * a * s, self.cv_errors_ * s**2
            result.info.update(alpha=self.alpha_, cv_errors=self.cv_errors_)
        return result

    def _fold(self, operator, y):
        """A solver of the penalized problem on ``(operator, y)``: ``solve(lam) -> X``."""
        if self.solver == PROXIMAL:
            return _ProximalPath(operator, y, self.proximal_tol, self.proximal_max_iter)
        return _ConicPath(operator, y, self.solver)

    def _solve(self, operator, y, control):
        from sklearn.model_selection import KFold

        start = time.perf_counter()
        m = y.shape[0]
        top = float(np.linalg.norm(operator.adjoint(y), 2)) / m
        if self.alphas is not None:
            alphas = np.sort(np.asarray(self.alphas, dtype=float))[::-1]
        else:
            alphas = top * np.logspace(0, np.log10(self.eps), int(self.n_alphas))
        seed = 0 if self.random_state is None else self.random_state  # deterministic folds
        seed = check_random_state(seed).integers(2**31)
        folds = [(self._fold(operator.rows(train), y[train]), operator.rows(held), y[held])
                 for train, held in KFold(self.cv, shuffle=True, random_state=int(seed)).split(
                     np.arange(m))]
        fold_mean = {}  # the folds' mean solution per penalty: the refit's warm start

        def held_out_error(alpha):
            total, mean = 0.0, 0.0
            for path, op_held, y_held in folds:
                X = path.solve(alpha * (m - y_held.size))
                r = op_held.forward(X) - y_held
                total, mean = total + float(r @ r) / m, mean + X / len(folds)
            fold_mean[alpha] = mean
            return total

        errors = np.array([held_out_error(a) for a in alphas])
        if self.alphas is None:
            alphas, errors = self._extend_grid(alphas, errors, top, held_out_error)
        # alphas run from large to small: the last within the tie window is the smallest
        best = int(np.flatnonzero(errors <= errors.min() * (1 + self.tie_rtol))[-1])
        path = self._fold(operator, y)
        X = path.solve(alphas[best] * m, warm=fold_mean[alphas[best]])
        self.alpha_ = float(alphas[best])
        self.lam_ = self.alpha_ * m
        self.alphas_ = alphas
        self.cv_errors_ = errors
        info = {"alpha": self.alpha_, "cv_errors": errors}
        if self.solver == PROXIMAL:
            info.update(proximal_iterations=sum(p.n_iter for p, _, _ in folds) + path.n_iter,
                        gradient_mapping=path.mapping)
        result = _result(X, start, info)
        if self.solver == PROXIMAL and not path.converged:
            result.stop_reason = StopReason.MAX_ITER
        return result

    def _extend_grid(self, alphas, errors, top, held_out_error):
        """Continue the default grid below ``eps * alpha_max`` while its smallest penalty is
        the best (clean data: the held-out error falls with the penalty, and the refit's bias
        is that of the grid's end), down to ``_MIN_ALPHA_RATIO * alpha_max`` at most."""
        ratio = alphas[-1] / alphas[-2] if alphas.size > 1 else 0.1
        while errors.argmin() == errors.size - 1 and alphas[-1] * ratio >= \
                _MIN_ALPHA_RATIO * top and top > 0:
            alphas = np.append(alphas, alphas[-1] * ratio)
            errors = np.append(errors, held_out_error(alphas[-1]))
        return alphas, errors


class _ConicPath:
    """One cvxpy problem compiled once with the penalty as a ``Parameter``."""

    def __init__(self, operator, y, solver):
        cp = require("cvxpy", extra="baselines")

        X, AX = _variable_and_measurements(operator)
        # Solved in the sum-loss scaling 1/2 ||A(X) - y||^2 + lam ||X||_*: the same
        # minimizer, but the mean-loss objective is so small at high SNR that SCS's
        # tolerances stop it far from the optimum (measured: 0.32 vs 0.018 relative error).
        self.X, self.lam = X, cp.Parameter(nonneg=True)
        self.problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(AX - y)
                                              + self.lam * cp.normNuc(X)))
        self.solver = solver

    def solve(self, lam, warm=None):
        self.lam.value = lam
        _solve_problem(self.problem, self.solver)
        return np.asarray(self.X.value, dtype=float)


class _ProximalPath:
    """Accelerated proximal gradient (:func:`nuclear_norm_proximal`) along a grid of
    penalties, each solve warm-started at the previous one's answer; ``||A||_2^2`` is
    computed once."""

    def __init__(self, operator, y, tol, max_iter):
        self.operator, self.y, self.tol, self.max_iter = operator, y, tol, max_iter
        self.lipschitz = _squared_norm(operator)
        self.X, self.n_iter, self.converged, self.mapping = None, 0, True, 0.0

    def solve(self, lam, warm=None):
        self.X, info = nuclear_norm_proximal(
            self.operator, self.y, lam, x0=self.X if warm is None else warm, tol=self.tol,
            max_iter=self.max_iter, lipschitz=self.lipschitz)
        self.n_iter += info["n_iter"]
        self.converged, self.mapping = info["converged"], info["gradient_mapping"]
        return self.X


_MIN_ALPHA_RATIO = 1e-4  # where the default grid's extension ends (see NuclearNormCV)


@register_method("factorized-psd",
                 "symmetric PSD matrix: GD on X = U U^T from a small init (baseline variant)")
class PSDFactorizedRegressor(FactorizedRegressor):
    """The symmetric PSD variant ``X = U U^T`` of :class:`FactorizedRegressor`.

    The classical simplification studied before the asymmetric case (Li et al. 2018, Stöger &
    Soltanolkotabi 2021): it can only recover symmetric PSD matrices. Same parameters as
    :class:`FactorizedRegressor`; its run to the limit ends on the PSD interpolant ``U U^T``
    next to the iterate (:func:`~overparam.solvers.low_rank.refine_low_rank` with
    ``symmetric=True``), which on a non-symmetric operator can have a higher rank than the
    best ``U V^T`` interpolant.
    """

    _symmetric = True
