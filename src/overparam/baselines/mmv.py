"""Classical baselines for row-sparse recovery of multiple measurement vectors (MMV).

M-OMP (simultaneous OMP), M-SP (MMV subspace pursuit) and M-FOCUSS are written by hand: no
well-kept Python library implements them (scikit-learn's ``OrthogonalMatchingPursuit`` fits each
column on its own support, not a shared one). Each step that a library does well (least squares,
linear solves) is NumPy's. The l2,1-penalized MultiTaskLasso and MultiTaskLassoCV are
scikit-learn's, wrapped (no intercept: the model is ``Y = A X``).

Every estimator takes ``Y`` of shape ``(M, L)``. As every MMV estimator of overparam, it sets
``coef_`` in scikit-learn's multi-output orientation ``(L, N)`` (``MultiTaskLasso.coef_``: one
row per target) and ``signal_``, the recovered ``X`` of shape ``(N, L)``, its transpose.
"""

from __future__ import annotations

import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import MultiTaskLasso, MultiTaskLassoCV
from sklearn.utils._param_validation import Interval

from .._registry import register_method
from .._validation import sklearn_random_state
from ..estimators._constraints import NON_NEGATIVE, POSITIVE_INT, shared_constraints
from ..estimators.base import RecoveryEstimator
from ..solvers.result import SolverResult
from ..stopping import StopReason

__all__ = [
    "MFOCUSSRegressor",
    "MSPRegressor",
    "MultiTaskLassoCVRegressor",
    "MultiTaskLassoRegressor",
    "SOMPRegressor",
    "m_focuss",
    "m_sp",
    "somp",
]


def _least_squares_on(A, Y, rows):
    """``X`` supported on ``rows`` minimizing ``||Y - A X||_F`` (minimum norm if not unique)."""
    X = np.zeros((A.shape[1], Y.shape[1]))
    if len(rows):
        X[rows] = np.linalg.lstsq(A[:, rows], Y, rcond=None)[0]
    return X


def _row_correlations(A, R):
    """``||A_j^T R||_2 / ||A_j||_2`` per column ``j`` of ``A`` (shared-support selection rule)."""
    norms = np.linalg.norm(A, axis=0)
    return np.linalg.norm(A.T @ R, axis=1) / np.where(norms > 0, norms, 1.0)


def somp(A, Y, n_nonzero_rows=None, *, tol=1e-6):
    """Simultaneous orthogonal matching pursuit (M-OMP).

    Adds, one at a time, the row whose column of ``A`` correlates most with the residual in
    l2 over the ``L`` columns, then refits ``Y`` by least squares on the chosen rows.

    Parameters
    ----------
    A : ndarray of shape (M, N)
    Y : ndarray of shape (M, L)
    n_nonzero_rows : int, optional
        Number of rows ``K`` to select (the paper gives M-OMP the true ``K``). Default: until
        the residual falls to ``tol ||Y||`` or ``min(M, N)`` rows are chosen.
    tol : float, default=1e-6

    Returns
    -------
    X : ndarray of shape (N, L)
    support : list of int
        Rows in the order chosen.
    """
    M, N = A.shape
    budget = min(M, N) if n_nonzero_rows is None else int(n_nonzero_rows)
    y_norm = np.linalg.norm(Y)
    support: list[int] = []
    X = np.zeros((N, Y.shape[1]))
    R = Y.copy()
    while len(support) < budget and np.linalg.norm(R) > tol * y_norm:
        corr = _row_correlations(A, R)
        corr[support] = -np.inf
        support.append(int(np.argmax(corr)))
        X = _least_squares_on(A, Y, support)
        R = Y - A @ X
    return X, support


def m_sp(A, Y, n_nonzero_rows, *, max_iter=100):
    """MMV subspace pursuit (M-SP, Liu et al. 2019): subspace pursuit with row norms.

    Keeps ``K`` rows; each iteration adds the ``K`` rows most correlated with the residual,
    refits on the ``2K`` rows, keeps the ``K`` largest rows of that fit and refits; stops when
    the residual no longer decreases.

    Returns
    -------
    X : ndarray of shape (N, L)
    support : list of int
    n_iter : int
    """
    K = int(n_nonzero_rows)
    N = A.shape[1]
    if not 1 <= K <= N:
        raise ValueError(f"n_nonzero_rows must be in [1, {N}], got {K}")
    support = np.sort(np.argsort(_row_correlations(A, Y))[::-1][:K])
    X = _least_squares_on(A, Y, support)
    res = np.linalg.norm(Y - A @ X)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        corr = _row_correlations(A, Y - A @ X)
        corr[support] = -np.inf
        merged = np.union1d(support, np.argsort(corr)[::-1][:K])
        X_merged = _least_squares_on(A, Y, merged)
        candidate = np.sort(np.argsort(np.linalg.norm(X_merged, axis=1))[::-1][:K])
        X_new = _least_squares_on(A, Y, candidate)
        res_new = np.linalg.norm(Y - A @ X_new)
        if res_new >= res:
            break
        support, X, res = candidate, X_new, res_new
    return X, [int(i) for i in support], it


def m_focuss(A, Y, *, p=0.8, lam=0.0, max_iter=500, tol=1e-8, prune=1e-12):
    """Regularized M-FOCUSS (Cotter, Rao, Engan, Kreutz-Delgado 2005).

    Reweighted minimum-norm iterations ``W = diag(c_i^{1 - p/2})`` with ``c_i = ||X_i||_2``,
    ``X = W (A W)^T ((A W)(A W)^T + lam I)^{-1} Y`` (or its push-through form when M > N; a
    minimum-norm least-squares solve when ``lam = 0``), from the minimum-norm solution, until
    the relative change of ``X`` falls below ``tol``. Rows below ``prune`` times the largest are
    set to zero (they could not come back: their weight is zero).

    Parameters
    ----------
    p : float, default=0.8
        The diversity measure's exponent (the paper's value).
    lam : float, default=0.0
        Regularization; Cotter et al. suggest the noise variance (per entry of ``Y``).

    Returns
    -------
    X : ndarray of shape (N, L)
    n_iter : int
    converged : bool
    """
    M, N = A.shape

    def weighted_solve(w):
        Aw = A * w
        if lam == 0:
            Q = np.linalg.lstsq(Aw, Y, rcond=None)[0]
        elif M <= N:
            Q = Aw.T @ np.linalg.solve(Aw @ Aw.T + lam * np.eye(M), Y)
        else:
            Q = np.linalg.solve(Aw.T @ Aw + lam * np.eye(N), Aw.T @ Y)
        return w[:, None] * Q

    X = weighted_solve(np.ones(N))
    for it in range(1, max_iter + 1):
        c = np.linalg.norm(X, axis=1)
        c[c < prune * c.max(initial=0.0)] = 0.0
        X_new = weighted_solve(c ** (1 - p / 2))
        change = np.linalg.norm(X_new - X) / max(np.linalg.norm(X), 1e-300)
        X = X_new
        if change < tol:
            return X, it, True
    return X, max_iter, False


def _result(X, start, n_iter, converged=True, **info):
    return SolverResult(coef=X, params=(), n_iter=int(n_iter),
                        wall_time=time.perf_counter() - start,
                        stop_reason=StopReason.CONVERGED if converged else StopReason.MAX_ITER,
                        info={"clock": "iterations", **info})


class _MMVBaseline(RecoveryEstimator):
    # Multi-output: coef_ is (L, N) as scikit-learn's; signal_ is X, (N, L).
    _y_ndim = 2
    _coef_transposed = True

    @staticmethod
    def _matrix(operator):
        return np.asarray(operator.to_dense(), dtype=float)


@register_method("m-omp", "row-sparse MMV: simultaneous OMP (needs the row sparsity K)")
class SOMPRegressor(_MMVBaseline):
    """M-OMP / simultaneous OMP (hand-written: no library implements a shared support).

    Parameters
    ----------
    n_nonzero_rows : int, optional
        Rows to select; without it, until the residual is ``tol ||Y||``.
    tol : float, default=1e-6
    """

    _limit_interpolates = False  # a row budget K need not fit Y
    _parameter_constraints: ClassVar[dict] = {"n_nonzero_rows": [POSITIVE_INT, None],
                              **shared_constraints("tol")}

    def __init__(self, n_nonzero_rows=None, tol=1e-6):
        self.n_nonzero_rows = n_nonzero_rows
        self.tol = tol

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        X, support = somp(self._matrix(operator), y, self.n_nonzero_rows, tol=self.tol)
        return _result(X, start, len(support), support=support)


@register_method("m-sp", "row-sparse MMV: MMV subspace pursuit (needs the row sparsity K)")
class MSPRegressor(_MMVBaseline):
    """M-SP, MMV subspace pursuit (hand-written: no library implements it).

    Parameters
    ----------
    n_nonzero_rows : int
        The row sparsity ``K`` (required, as in the paper).
    max_iter : int, default=100
    """

    _limit_interpolates = False  # K rows need not fit Y
    _parameter_constraints: ClassVar[dict] = {"n_nonzero_rows": [POSITIVE_INT, None],
                              **shared_constraints("max_iter")}
    _required_params: ClassVar[dict[str, str]] = {"n_nonzero_rows": "the row sparsity K"}

    def __init__(self, n_nonzero_rows=None, max_iter=100):
        self.n_nonzero_rows = n_nonzero_rows
        self.max_iter = max_iter

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        X, support, it = m_sp(self._matrix(operator), y, self.n_nonzero_rows,
                              max_iter=self.max_iter)
        return _result(X, start, it, support=support)


@register_method("m-focuss", "row-sparse MMV: M-FOCUSS, reweighted min-norm (p, noise variance)")
class MFOCUSSRegressor(_MMVBaseline):
    """Regularized M-FOCUSS (hand-written: no library implements it).

    Parameters
    ----------
    p : float, default=0.8
    lam : float, default=0.0
        Regularization; set it to the noise variance per entry of ``Y`` (Cotter et al.).
    max_iter : int, default=500
    tol : float, default=1e-8
        Relative change of ``X`` at which to stop.
    """

    # lam (a noise variance) is in the units of the data: not normalized (see
    # RecoveryEstimator); the method's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False
    _parameter_constraints: ClassVar[dict] = {
        "p": [Interval(Real, 0, 2, closed="right")],
        "lam": [NON_NEGATIVE],
        **shared_constraints("max_iter", "tol"),
    }

    def __init__(self, p=0.8, lam=0.0, max_iter=500, tol=1e-8):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        X, it, converged = m_focuss(self._matrix(operator), y, p=self.p, lam=self.lam,
                                    max_iter=self.max_iter, tol=self.tol)
        return _result(X, start, it, converged)


@register_method("multitask-lasso", "row-sparse MMV: l2,1-penalized least squares "
                 "(scikit-learn MultiTaskLasso, fixed alpha)")
class MultiTaskLassoRegressor(_MMVBaseline):
    """scikit-learn's :class:`~sklearn.linear_model.MultiTaskLasso` with no intercept.

    Minimizes ``1/(2M) ||Y - A X||_F^2 + alpha sum_i ||X_i||_2``.

    ``coef_`` is ``MultiTaskLasso.coef_``, of shape ``(L, N)``, as for every MMV estimator
    here; ``signal_`` is ``X``, of shape ``(N, L)``.
    """

    # A penalty in the units of the data: not normalized (see RecoveryEstimator); the
    # library's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False
    _parameter_constraints: ClassVar[dict] = {"alpha": [NON_NEGATIVE],
                                              **shared_constraints("max_iter", "tol")}

    def __init__(self, alpha=1.0, max_iter=10_000, tol=1e-6):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        model = MultiTaskLasso(alpha=self.alpha, fit_intercept=False, max_iter=self.max_iter,
                               tol=self.tol)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(self._matrix(operator), y)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not converged:  # said aloud, not only reported as MAX_ITER
            warnings.warn(f"MultiTaskLasso did not reach its tolerance in {self.max_iter} "
                          "iterations", ConvergenceWarning, stacklevel=2)
        return _result(model.coef_.T.copy(), start, model.n_iter_, converged,
                       alpha=self.alpha)


@register_method("multitask-lasso-cv", "row-sparse MMV: MultiTaskLasso with alpha chosen by "
                 "cross-validation (scikit-learn MultiTaskLassoCV)")
class MultiTaskLassoCVRegressor(_MMVBaseline):
    """scikit-learn's :class:`~sklearn.linear_model.MultiTaskLassoCV` with no intercept.

    The penalty is chosen by ``cv``-fold cross-validation over the rows of ``Y`` (whole
    measurements), the tuning-free peer that users already have. ``coef_`` is
    ``MultiTaskLassoCV.coef_``, of shape ``(L, N)``; ``signal_`` is ``X``, ``(N, L)``.
    """

    # alpha_ is reported in the units of the data: not normalized (see RecoveryEstimator); the
    # library's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False
    _parameter_constraints: ClassVar[dict] = {
        "cv": [Interval(Integral, 2, None, closed="left")],
        "n_alphas": [POSITIVE_INT],
        **shared_constraints("max_iter", "tol", "random_state"),
    }

    def __init__(self, cv=5, n_alphas=50, max_iter=5000, tol=1e-4, random_state=None):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        from sklearn.model_selection import KFold

        start = time.perf_counter()
        folds = KFold(self.cv, shuffle=True,
                      random_state=sklearn_random_state(self.random_state))
        model = MultiTaskLassoCV(alphas=self.n_alphas, fit_intercept=False, cv=folds,
                                 max_iter=self.max_iter, tol=self.tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self._matrix(operator), y)
        return _result(model.coef_.T.copy(), start, model.n_iter_, alpha=float(model.alpha_))
