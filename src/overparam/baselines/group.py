"""Group-sparse baselines: group lasso (skglm) and primal-dual iterative regularization.

Both are the comparisons of Li, Nguyen, Hegde, Wong, "Implicit regularization for group
sparsity" (ICLR 2023), appendix E (Fig. 12, Table 3).
"""

from __future__ import annotations

import time
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import Interval, StrOptions

from .._optional import require
from .._registry import register_method
from .._validation import sklearn_random_state
from ..estimators._constraints import (
    ARRAY_LIKE,
    GROUPS,
    GROUPS_REQUIRED,
    POSITIVE,
    POSITIVE_INT,
    shared_constraints,
)
from ..estimators.base import RecoveryEstimator
from ..parameterizations.group import as_group_labels
from ..solvers.loop import Iterate, run_loop
from ..solvers.result import SolverResult
from ..stopping import StopReason

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


#: group weights: by size, ones, or one positive number per group
_WEIGHTS = [StrOptions({"sqrt", "ones"}), *ARRAY_LIKE]


def _check_groups_and_weights(groups, weights, n_features) -> None:
    """A clear error, before any solve, unless ``groups`` partition the ``n_features``
    features and ``weights`` give one positive weight per group."""
    group_weights(as_group_labels(groups, n_features), weights)


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
    labels = as_group_labels(groups, X.shape[1])
    c = group_weights(labels, weights)
    alphas = np.asarray(alphas, dtype=float)
    coefs = np.zeros((alphas.size, X.shape[1]))
    top = group_lasso_alpha_max(X, y, labels, c)
    if not top > 0:  # X^T y = 0: w = 0 is optimal at every alpha
        return coefs
    solve = _skglm_group_lasso(X, y, labels, c, tol=float(tol) * top, max_iter=max_iter)
    w = None
    for k in np.argsort(-alphas):
        w = solve(float(alphas[k]), w)
        coefs[k] = w
    return coefs


def _skglm_group_lasso(X, y, labels, weights, *, tol, max_iter):
    """``solve(alpha, w_start)``: the group-lasso fit of :class:`skglm.GroupLasso` (no
    intercept, warm-started from ``w_start``, zeros when None), its datafit, penalty and
    solver made once for a whole path.

    ``GroupLasso.fit`` validates the data and builds these objects at each ``alpha``: along
    a CV path that costs about as much as the solves. This calls the same solver the same
    way (its defaults, ``X`` in Fortran order as ``fit`` passes it), so the path is the one
    the estimator gives (tests/test_group_lasso_path.py compares them).
    """
    skglm = require("skglm", extra="baselines")
    from skglm.datafits import QuadraticGroup
    from skglm.penalties import WeightedGroupL2
    from skglm.solvers import GroupBCD
    from skglm.utils.data import grp_converter

    grp_indices, grp_ptr = grp_converter(_index_lists(labels), X.shape[1])
    defaults = skglm.GroupLasso(groups=1)  # the estimator's solver settings
    X = np.asfortranarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    datafit = QuadraticGroup(grp_ptr=grp_ptr, grp_indices=grp_indices)
    penalty = WeightedGroupL2(alpha=1.0, grp_ptr=grp_ptr, grp_indices=grp_indices,
                              weights=np.asarray(weights, dtype=float),
                              positive=defaults.positive)
    solver = GroupBCD(max_iter, defaults.max_epochs, defaults.p0, tol=tol,
                      fit_intercept=False, warm_start=True, ws_strategy=defaults.ws_strategy)

    def solve(alpha, w_start):
        penalty.alpha = alpha
        w = np.zeros(X.shape[1]) if w_start is None else w_start.copy()
        Xw = X @ w if w_start is not None else np.zeros(X.shape[0])
        return solver.solve(X, y, datafit, penalty, w, Xw)[0]

    return solve


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
    _parameter_constraints: ClassVar[dict] = {
        "groups": GROUPS,
        "alpha": [POSITIVE, None],
        "weights": _WEIGHTS,
        "cv": [Interval(Integral, 2, None, closed="left")],
        "n_alphas": [POSITIVE_INT],
        "alpha_min_ratio": [Interval(Real, 0, 1, closed="neither")],
        **shared_constraints("tol", "random_state"),
    }
    _required_params: ClassVar[dict[str, str]] = {"groups": GROUPS_REQUIRED}

    def __init__(self, groups=None, alpha=None, weights="sqrt", cv=5, n_alphas=30,
                 alpha_min_ratio=1e-3, tol=1e-6, random_state=None):
        self._set_init_params(locals())

    def alpha_grid(self, X, y) -> np.ndarray:
        """The CV grid, decreasing, relative to ``alpha_max`` (so scale-equivariant); all
        zeros when ``X^T y = 0``."""
        labels = as_group_labels(self.groups, X.shape[1])
        top = group_lasso_alpha_max(X, y, labels, group_weights(labels, self.weights))
        if not top > 0:
            return np.zeros(int(self.n_alphas))
        return np.geomspace(top, top * self.alpha_min_ratio, int(self.n_alphas))

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        _check_groups_and_weights(self.groups, self.weights, operator.shape[1])

    def _solve(self, operator, y, control):
        start = time.perf_counter()
        X = operator.to_dense()
        info = {}
        alphas = self.alpha_grid(X, y) if self.alpha is None else None
        if alphas is not None and not alphas[0] > 0:
            alpha = 0.0  # X^T y = 0: w = 0 at every alpha (group_lasso_path returns it)
        elif alphas is not None:
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
            alpha = float(self.alpha)
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

    _parameter_constraints: ClassVar[dict] = {
        "groups": GROUPS,
        "weights": _WEIGHTS,
        "step_ratio": [POSITIVE],
        "rho": [Interval(Real, 0, 1, closed="neither")],
        **shared_constraints(),
    }
    _required_params: ClassVar[dict[str, str]] = {"groups": GROUPS_REQUIRED}

    def __init__(self, groups=None, weights="sqrt", step_ratio=1.0, rho=0.99, max_iter=10_000,
                 tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self._set_init_params(locals())

    #: badly scaled columns are equilibrated (RecoveryEstimator._equilibration)
    _equilibrate_columns = True

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        _check_groups_and_weights(self.groups, self.weights, operator.shape[1])

    def _solve(self, operator, y, control):
        labels = as_group_labels(self.groups, operator.shape[1])
        c = group_weights(labels, self.weights)
        rule = self._stopping_rule(control, stagnation_tol=0.0)
        norm = operator.norm_estimate()
        step = _PrimalDualStep(operator, y, labels, tau=np.sqrt(self.rho) * self.step_ratio / norm,
                               sigma=np.sqrt(self.rho) / (self.step_ratio * norm),
                               thresholds=c)
        return run_loop(step, float(np.linalg.norm(y)), stopping=rule,
                        validation=control.validation)


class _PrimalDualStep:
    """One Chambolle-Pock iteration of :class:`GroupPrimalDualRegressor` (a
    :class:`~overparam.solvers.SolverStep`; the clock counts iterations)."""

    name = "group primal-dual"
    clock = "iterations"

    def __init__(self, operator, y, labels, *, tau, sigma, thresholds):
        self.operator, self.y, self.labels = operator, y, labels
        self.n_groups = int(labels.max()) + 1
        self.tau, self.sigma, self.thresholds = tau, sigma, thresholds

    def _point(self, w, theta, theta_old, r, dt=1.0):
        loss = 0.5 * float(r @ r) / self.y.shape[0]
        return Iterate((w,), w, loss, float(np.linalg.norm(r)), dt=dt, cache=(theta, theta_old))

    def init(self):
        theta = np.zeros(self.y.shape[0])
        return self._point(np.zeros(self.operator.shape[1]), theta, theta.copy(), -self.y, 0.0)

    def step(self, current, *, time_left, diverged):
        theta, theta_old = current.cache
        w = _block_shrink(current.x - self.tau * self.operator.adjoint(2 * theta - theta_old),
                          self.tau * self.thresholds, self.labels, self.n_groups)
        r = self.operator.forward(w) - self.y
        return self._point(w, theta + self.sigma * r, theta, r)

    def info(self):
        return {"tau": self.tau, "sigma": self.sigma}
