"""Group-sparse baselines: group lasso (skglm) and primal-dual iterative regularization.

Both are the comparisons of Li, Nguyen, Hegde, Wong, "Implicit regularization for group
sparsity" (ICLR 2023), appendix E (Fig. 12, Table 3).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.model_selection import KFold

from .._optional import require
from .._registry import register_method
from .._validation import check_positive, sklearn_random_state
from ..estimators.base import RecoveryEstimator
from ..parameterizations.group import as_group_labels
from ..solvers.result import SolverResult
from ..stopping import StoppingRule, StopReason

__all__ = [
    "GroupLassoRegressor",
    "GroupPrimalDualRegressor",
    "group_lasso_alpha_max",
    "group_lasso_path",
    "group_weights",
]


def group_weights(labels: np.ndarray, weights="sqrt") -> np.ndarray:
    """Penalty weight per group: ``sqrt(p_l)`` (``"sqrt"``, Yuan & Lin), ones, or an array."""
    sizes = np.bincount(labels)
    if isinstance(weights, str):
        if weights == "sqrt":
            return np.sqrt(sizes.astype(float))
        if weights == "ones":
            return np.ones(sizes.size)
        raise ValueError(f"weights must be 'sqrt', 'ones' or an array, got {weights!r}")
    out = np.asarray(weights, dtype=float)
    if out.shape != sizes.shape or np.any(out <= 0):
        raise ValueError(f"weights must be {sizes.size} positive numbers, one per group")
    return out


def _index_lists(labels: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(labels == k).tolist() for k in range(int(labels.max()) + 1)]


def group_lasso_alpha_max(X, y, labels, weights) -> float:
    """Smallest ``alpha`` at which the group lasso ``(1/2n)||y-Xw||^2 + alpha sum c_l||w_l||``
    is zero: ``max_l ||X_l^T y|| / (n c_l)``."""
    corr = X.T @ y / X.shape[0]
    norms = np.sqrt(np.bincount(labels, weights=corr**2))
    return float(np.max(norms / weights))


def group_lasso_path(X, y, groups, alphas, *, weights="sqrt", tol=1e-6,
                     max_iter=100) -> np.ndarray:
    """Group-lasso solutions along ``alphas`` (solved in decreasing order, warm-started).

    Uses :class:`skglm.GroupLasso` (no intercept) on ``(1/2n)||y - X w||^2 +
    alpha sum_l c_l ||w_l||``. ``tol`` is relative: skglm's stopping criterion (the largest
    violation of the optimality conditions, in the units of ``X^T y / n``) must fall below
    ``tol * alpha_max`` (:func:`group_lasso_alpha_max` of ``X, y``), so that the solutions
    scale with the data (skglm's own ``tol`` is absolute: with ``X`` or ``y`` multiplied by
    1e-6, ``w = 0`` already met it and the CV path was all zeros).

    Returns
    -------
    ndarray of shape (len(alphas), p)
        Row ``k`` is the solution at ``alphas[k]``.
    """
    GroupLasso = require("skglm", extra="baselines").GroupLasso

    labels = as_group_labels(groups, X.shape[1])
    c = group_weights(labels, weights)
    alphas = np.asarray(alphas, dtype=float)
    order = np.argsort(-alphas)
    coefs = np.zeros((alphas.size, X.shape[1]))
    top = group_lasso_alpha_max(X, y, labels, c)
    if not top > 0:  # X^T y = 0: w = 0 is optimal at every alpha
        return coefs
    model = GroupLasso(groups=_index_lists(labels), alpha=float(alphas[order[0]]), weights=c,
                       fit_intercept=False, warm_start=True, tol=float(tol) * top,
                       max_iter=max_iter)
    for k in order:
        model.alpha = float(alphas[k])
        model.fit(X, y)
        coefs[k] = model.coef_
    return coefs


@register_method("group-lasso", "group-sparse vector: group lasso (skglm), lambda by K-fold CV")
class GroupLassoRegressor(RecoveryEstimator):
    """Group lasso ``(1/2n)||y - X w||^2 + alpha sum_l c_l ||w_l||`` with ``skglm``.

    With ``alpha=None`` the penalty is chosen by K-fold cross-validation on a geometric grid
    of ``n_alphas`` values from ``alpha_max`` (all groups zero) down to
    ``alpha_min_ratio * alpha_max``, each fold's path warm-started, and the model refitted on
    all data at the best ``alpha``.

    Parameters
    ----------
    groups : int, sequence of index arrays, or array of labels
    alpha : float or None, default=None
        Penalty; None cross-validates it.
    weights : "sqrt", "ones" or array, default="sqrt"
        Group weights ``c_l`` (``sqrt(p_l)`` by default).
    cv : int, default=5
    n_alphas : int, default=30
    alpha_min_ratio : float, default=1e-3
    tol : float, default=1e-6
        skglm's tolerance, relative to ``alpha_max`` (see :func:`group_lasso_path`): the fit
        of ``(s X, t y)`` is ``t / s`` times the fit of ``(X, y)`` (with ``alpha`` given, at
        ``alpha`` times ``s t``).
    random_state : None or int, default=None
        Seeds the shuffled folds (0 when None).

    Attributes
    ----------
    alpha_ : float
        The penalty used (chosen by CV when ``alpha=None``).
    """

    # A penalty in the units of the data: not normalized (see RecoveryEstimator); the
    # library's own convergence report is the optimality check.
    _rescale_data = False
    _limit_interpolates = False

    def __init__(self, groups=None, alpha=None, weights="sqrt", cv=5, n_alphas=30,
                 alpha_min_ratio=1e-3, tol=1e-6, random_state=None):
        self.groups = groups
        self.alpha = alpha
        self.weights = weights
        self.cv = cv
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.tol = tol
        self.random_state = random_state

    def alpha_grid(self, X, y) -> np.ndarray:
        """The CV grid, decreasing, relative to ``alpha_max`` (so scale-equivariant); all
        zeros when ``X^T y = 0``."""
        labels = as_group_labels(self.groups, X.shape[1])
        top = group_lasso_alpha_max(X, y, labels, group_weights(labels, self.weights))
        if not top > 0:
            return np.zeros(int(self.n_alphas))
        return np.geomspace(top, top * self.alpha_min_ratio, int(self.n_alphas))

    def _solve(self, operator, y, control):
        if self.groups is None:
            raise ValueError("groups is required")
        start = time.perf_counter()
        X = operator.to_dense()
        info = {}
        alphas = self.alpha_grid(X, y) if self.alpha is None else None
        if alphas is not None and not alphas[0] > 0:
            alpha = 0.0  # X^T y = 0: w = 0 at every alpha (group_lasso_path returns it)
        elif alphas is not None:
            check_positive(self.cv, "cv", integer=True)
            folds = KFold(int(self.cv), shuffle=True,
                          random_state=sklearn_random_state(self.random_state))
            mse = np.zeros((int(self.cv), alphas.size))
            for f, (tr, te) in enumerate(folds.split(X)):
                coefs = group_lasso_path(X[tr], y[tr], self.groups, alphas,
                                         weights=self.weights, tol=self.tol)
                mse[f] = np.mean((X[te] @ coefs.T - y[te, None]) ** 2, axis=0)
            best = int(np.argmin(mse.mean(axis=0)))
            alpha = float(alphas[best])
            info.update(alphas=alphas, cv_mse=mse.mean(axis=0))
        else:
            alpha = float(check_positive(self.alpha, "alpha"))
        coef = group_lasso_path(X, y, self.groups, [alpha], weights=self.weights,
                                tol=self.tol)[0]
        self.alpha_ = alpha
        info["alpha"] = alpha
        return SolverResult(coef=coef, params=(), n_iter=0,
                            wall_time=time.perf_counter() - start,
                            stop_reason=StopReason.CONVERGED, info=info)


def _block_shrink(w, threshold, labels, n_groups):
    """Proximal operator of ``sum_l t_l ||w_l||`` (block soft-thresholding)."""
    norms = np.sqrt(np.bincount(labels, weights=w * w, minlength=n_groups))
    scale = np.maximum(1.0 - threshold / np.where(norms > 0, norms, 1.0), 0.0)
    return w * scale[labels]


@register_method("group-primal-dual",
                 "group-sparse vector: primal-dual iterative regularization (Molinari et al.)")
class GroupPrimalDualRegressor(RecoveryEstimator):
    """Primal-dual iterative regularization for ``min sum_l c_l ||w_l||`` subject to ``X w = y``.

    Molinari, Massias, Rosasco, Villa, "Iterative regularization for convex regularizers"
    (AISTATS 2021): Chambolle-Pock iterations on the constrained problem, with the number of
    iterations as the regularization parameter (early stopping), here with the group norm.
    Written by hand (the authors' ``iterreg`` package is not on PyPI), following its
    ``dual_primal`` variant: ``w <- prox_{tau R}(w - tau X^T (2 theta - theta_old))``,
    ``theta <- theta + sigma (X w - y)``, with ``tau sigma ||X||^2 = rho < 1``.

    Parameters
    ----------
    groups : int, sequence of index arrays, or array of labels
    weights : "sqrt", "ones" or array, default="sqrt"
        Group weights ``c_l``.
    step_ratio : float, default=1.0
        ``tau / sigma`` balance: ``tau = sqrt(rho) step_ratio / ||X||``,
        ``sigma = sqrt(rho) / (step_ratio ||X||)``.
    rho : float, default=0.99
    max_iter : int, default=10_000
    tol : float, default=1e-6
        Stop when ``||X w - y|| <= tol ||y||``.
    early_stopping : {None, "validation", "discrepancy"}, default="validation"
        Without early stopping the iterates tend to the minimum-group-norm interpolant. The
        clock is the iteration count.
    validation_fraction : float, default=0.2
    noise_level : float, optional
    random_state : None or int, default=None

    Notes
    -----
    The fit solves on the columns of ``A`` scaled to unit norm whenever their norms differ
    (``column_spread_limit``; a warning above a spread of 1e3): it is that of the
    standardized problem (unit columns; the bias weighted by the column norms,
    ``min sum_l c_l ||D_l w_l||`` instead of ``sum_l c_l ||w_l||``);
    see :meth:`RecoveryEstimator._equilibration` and docs/scaling.md.
    """

    def __init__(self, groups=None, weights="sqrt", step_ratio=1.0, rho=0.99, max_iter=10_000,
                 tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self.groups = groups
        self.weights = weights
        self.step_ratio = step_ratio
        self.rho = rho
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_level = noise_level
        self.random_state = random_state

    #: badly scaled columns are equilibrated (RecoveryEstimator._equilibration)
    _equilibrate_columns = True

    def _solve(self, operator, y, control):
        if self.groups is None:
            raise ValueError("groups is required")
        check_positive(self.step_ratio, "step_ratio")
        if not 0 < self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho!r}")
        labels = as_group_labels(self.groups, operator.shape[1])
        n_groups = int(labels.max()) + 1
        c = group_weights(labels, self.weights)
        rule = control.apply(StoppingRule(max_iter=self.max_iter, tol=self.tol,
                                          stagnation_tol=0.0))
        monitor = rule.monitor(float(np.linalg.norm(y)))
        norm = operator.norm_estimate()
        tau = np.sqrt(self.rho) * self.step_ratio / norm
        sigma = np.sqrt(self.rho) / (self.step_ratio * norm)
        n = y.shape[0]
        w = np.zeros(operator.shape[1])
        theta = np.zeros(n)
        theta_old = np.zeros(n)
        r = -y
        monitor.update(0, 0.5 * float(r @ r) / n, float(np.linalg.norm(r)), 0.0)
        validation = control.validation
        reason = StopReason.MAX_ITER
        it = 0
        while True:
            w = _block_shrink(w - tau * operator.adjoint(2 * theta - theta_old), tau * c,
                              labels, n_groups)
            r = operator.forward(w) - y
            theta_old = theta
            theta = theta + sigma * r
            it += 1
            reason = monitor.update(it, 0.5 * float(r @ r) / n, float(np.linalg.norm(r)),
                                    float(it))
            if validation is not None and validation.due(it, float(it)):
                if validation.check(it, float(it), w, (w,)):
                    reason = StopReason.EARLY_STOPPED
            if reason is not None:
                break
        info = {"clock": "iterations", "time": float(it), "tau": tau, "sigma": sigma}
        if validation is not None and validation.best_state is not None:
            w = validation.best_state[0]
            info.update(best_iteration=validation.best_iteration, best_time=validation.best_time,
                        validation_error=validation.best_error)
        return SolverResult(coef=w, params=(w,), n_iter=it, wall_time=monitor.elapsed,
                            stop_reason=reason, info=info)
