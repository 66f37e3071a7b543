"""Classical sparse-recovery baselines: basis pursuit (LP), OMP, Lasso, LassoCV.

Each wraps a well-kept library: basis pursuit is a linear program solved by HiGHS through
:func:`scipy.optimize.linprog`; OMP, Lasso and LassoCV are scikit-learn's (no intercept: the
model is ``y = A x``). Minimum-l2-norm interpolation is
:class:`overparam.baselines.MinNormRegressor`.
"""

from __future__ import annotations

import time
import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from scipy.optimize import linprog
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LassoCV, OrthogonalMatchingPursuit
from sklearn.utils._param_validation import Interval, StrOptions

from .._registry import register_method
from .._validation import sklearn_random_state
from ..estimators._constraints import NON_NEGATIVE, POSITIVE, POSITIVE_INT, shared_constraints
from ..estimators.base import RecoveryEstimator
from ..solvers import SolverResult
from ..stopping import StopReason

__all__ = [
    "BasisPursuit",
    "LassoCVRegressor",
    "LassoRegressor",
    "OMPRegressor",
    "PositiveBasisPursuit",
]


#: :func:`scipy.optimize.linprog`'s methods
_LINPROG_METHODS = [StrOptions({"highs", "highs-ds", "highs-ipm"})]


def _matrix(operator) -> np.ndarray:
    A = np.asarray(operator.to_dense(), dtype=float)
    if A.ndim != 2:
        raise ValueError("this baseline needs a matrix operator (vector signals)")
    return A


@register_method("basis-pursuit", "sparse vector: min ||x||_1 s.t. Ax = y (LP, HiGHS)")
class BasisPursuit(RecoveryEstimator):
    """Basis pursuit ``min ||x||_1`` subject to ``A x = y`` as a linear program (scipy's HiGHS).

    Written as ``x = p - q``, ``p, q >= 0``, ``min 1^T (p + q)`` s.t. ``A (p - q) = y``; with
    ``positive=True`` it is ``min 1^T x`` s.t. ``A x = y``, ``x >= 0`` (positive basis pursuit).

    Parameters
    ----------
    positive : bool, default=False
        Restrict to non-negative signals.
    method : str, default="highs"
        :func:`scipy.optimize.linprog` method (``"highs"``, ``"highs-ds"``, ``"highs-ipm"``).
    """

    _parameter_constraints: ClassVar[dict] = {"positive": ["boolean"], "method": _LINPROG_METHODS}

    def __init__(self, positive=False, method="highs"):
        self.positive = positive
        self.method = method

    def _solve(self, operator, y, control):
        A = _matrix(operator)
        n = A.shape[1]
        start = time.perf_counter()
        if self.positive:
            res = linprog(np.ones(n), A_eq=A, b_eq=y, bounds=(0, None), method=self.method)
        else:
            res = linprog(np.ones(2 * n), A_eq=np.hstack([A, -A]), b_eq=y, bounds=(0, None),
                          method=self.method)
        if res.status != 0 or res.x is None:
            what = "A x = y, x >= 0" if self.positive else "A x = y"
            raise ValueError(f"basis pursuit LP failed ({res.message.strip()}): {what} may have "
                             "no solution (noisy or overdetermined data?); use a Lasso instead")
        x = res.x if self.positive else res.x[:n] - res.x[n:]
        return SolverResult(coef=x, params=(), n_iter=int(getattr(res, "nit", 0) or 0),
                            wall_time=time.perf_counter() - start,
                            stop_reason=StopReason.CONVERGED,
                            info={"l1_norm": float(res.fun), "clock": "iterations",
                                  "message": res.message})


@register_method("positive-basis-pursuit",
                 "non-negative sparse vector: min 1'x s.t. Ax = y, x >= 0 (LP, HiGHS)")
class PositiveBasisPursuit(BasisPursuit):
    """Positive basis pursuit ``min 1^T x`` subject to ``A x = y, x >= 0`` (scipy's HiGHS).

    Parameters
    ----------
    method : str, default="highs"
        :func:`scipy.optimize.linprog` method.
    """

    _parameter_constraints: ClassVar[dict] = {"method": _LINPROG_METHODS}

    def __init__(self, method="highs"):
        self.method = method

    positive = True


@register_method("omp", "sparse vector: orthogonal matching pursuit (scikit-learn), given s")
class OMPRegressor(RecoveryEstimator):
    """Orthogonal matching pursuit (:class:`sklearn.linear_model.OrthogonalMatchingPursuit`).

    Each step selects the column most correlated with the residual, the correlation
    normalized by the column's norm (``|a_j^T r| / ||a_j||``, the standard OMP): scikit-learn
    assumes unit-norm columns, so it runs on ``A`` with normalized columns and the
    coefficients are scaled back. The selection is then independent of the columns' scales
    (a column of ``A`` multiplied by 1e6 is not preferred for its size).

    Parameters
    ----------
    n_nonzero_coefs : int, optional
        Sparsity ``s`` (needs to be known: OMP is not tuning-free).
    tol : float, optional
        Alternatively, stop when the squared residual norm falls below ``tol``.
    """

    # tol is an absolute squared residual norm (scikit-learn's): not normalized; a greedy
    # method with a sparsity budget need not interpolate.
    _rescale_data = False
    _limit_interpolates = False
    _parameter_constraints: ClassVar[dict] = {"n_nonzero_coefs": [POSITIVE_INT, None],
                              "tol": [NON_NEGATIVE, None]}

    def __init__(self, n_nonzero_coefs=None, tol=None):
        self.n_nonzero_coefs = n_nonzero_coefs
        self.tol = tol

    def _solve(self, operator, y, control):
        A = _matrix(operator)
        start = time.perf_counter()
        norms = np.linalg.norm(A, axis=0)
        norms[norms == 0] = 1.0  # a zero column has zero correlation: never selected
        model = OrthogonalMatchingPursuit(n_nonzero_coefs=self.n_nonzero_coefs, tol=self.tol,
                                          fit_intercept=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # sklearn warns on early exact fit
            model.fit(A / norms, y)
        return SolverResult(coef=model.coef_ / norms, params=(), n_iter=int(model.n_iter_),
                            wall_time=time.perf_counter() - start,
                            stop_reason=StopReason.CONVERGED, info={"clock": "iterations"})


def _lasso_result(model, start) -> SolverResult:
    n_iter = int(np.max(model.n_iter_))
    reason = StopReason.MAX_ITER if n_iter >= model.max_iter else StopReason.CONVERGED
    info = {"clock": "iterations", "alpha": float(model.alpha_ if hasattr(model, "alpha_")
                                                  else model.alpha)}
    return SolverResult(coef=model.coef_.copy(), params=(), n_iter=n_iter,
                        wall_time=time.perf_counter() - start, stop_reason=reason, info=info)


@register_method("lasso", "sparse vector: Lasso 1/(2m)||Ax-y||^2 + alpha ||x||_1 (scikit-learn)")
class LassoRegressor(RecoveryEstimator):
    """The Lasso (:class:`sklearn.linear_model.Lasso`, no intercept).

    Minimizes ``1/(2m) ||A x - y||^2 + alpha ||x||_1``.

    Parameters
    ----------
    alpha : float, default=1e-3
        Penalty weight (needs tuning: see :class:`LassoCVRegressor`).
    max_iter : int, default=100_000
    tol : float, default=1e-8
    positive : bool, default=False
    """

    # A penalty in the units of the data: not normalized (see RecoveryEstimator); the
    # library's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [POSITIVE],
        **shared_constraints("max_iter", "tol"),
        "positive": ["boolean"],
    }

    def __init__(self, alpha=1e-3, max_iter=100_000, tol=1e-8, positive=False):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        A = _matrix(operator)
        start = time.perf_counter()
        model = Lasso(alpha=self.alpha, fit_intercept=False, max_iter=self.max_iter,
                      tol=self.tol, positive=self.positive)
        # scikit-learn's ConvergenceWarning is kept: an answer short of the Lasso's optimality
        # is reported as MAX_ITER and said aloud. scikit-learn is silent when its duality-gap
        # test passes at the last iteration of the budget (y * 1e6 with alpha = 1e-3: the
        # optimality conditions off by 2.6 alpha): then the warning is given here.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(A, y)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        result = _lasso_result(model, start)
        if result.stop_reason == StopReason.MAX_ITER and not any(
                issubclass(w.category, ConvergenceWarning) for w in caught):
            warnings.warn(f"Lasso used its whole budget (max_iter={self.max_iter}); duality gap "
                          f"{float(model.dual_gap_):.3g}: the optimality conditions may not hold",
                          ConvergenceWarning, stacklevel=4)
        return result


@register_method("lasso-cv", "sparse vector: Lasso with alpha by cross-validation (scikit-learn)")
class LassoCVRegressor(RecoveryEstimator):
    """Lasso with the penalty chosen by K-fold cross-validation (scikit-learn's ``LassoCV``).

    Parameters
    ----------
    cv : int, default=5
        Number of folds.
    n_alphas : int, default=100
        Length of the penalty path.
    eps : float, default=1e-4
        ``alpha_min / alpha_max`` of the path (small: noiseless data wants a tiny penalty).
    max_iter : int, default=100_000
    tol : float, default=1e-6
    positive : bool, default=False
    n_jobs : int, optional
    random_state : None or int, default=None
        Seeds the folds (they are shuffled; 0 when None).
    """

    # alpha_ is reported in the units of the data: not normalized (see RecoveryEstimator); the
    # library's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False

    _parameter_constraints: ClassVar[dict] = {
        "cv": [Interval(Integral, 2, None, closed="left")],
        "n_alphas": [POSITIVE_INT],
        "eps": [POSITIVE],
        **shared_constraints("max_iter", "tol"),
        "positive": ["boolean"],
        "n_jobs": [Integral, None],
        **shared_constraints("random_state"),
    }

    def __init__(self, cv=5, n_alphas=100, eps=1e-4, max_iter=100_000, tol=1e-6,
                 positive=False, n_jobs=None, random_state=None):
        self._set_init_params(locals())

    def _solve(self, operator, y, control):
        from sklearn.model_selection import KFold

        A = _matrix(operator)
        start = time.perf_counter()
        folds = KFold(n_splits=self.cv, shuffle=True,
                      random_state=sklearn_random_state(self.random_state))
        model = LassoCV(cv=folds, eps=self.eps, alphas=int(self.n_alphas), fit_intercept=False,
                        max_iter=self.max_iter, tol=self.tol, positive=self.positive,
                        n_jobs=self.n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(A, y)
        return _lasso_result(model, start)
