"""Low-rank matrix sensing by gradient descent on a factorization ``X = U V^T``."""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._registry import register_method
from ..operators import DiagonalScaledOperator, as_operator
from ..parameterizations.factorized import Factorized
from ..solvers.low_rank import (
    equilibrating_scales,
    least_squares_limit,
    low_rank_limit,
)
from ..solvers.steps import AdaptiveStep, as_step_policy
from ..stopping import Oracle, PathControl, Validation
from ._constraints import POSITIVE, POSITIVE_INT, STEP, shared_constraints
from ._exact_limit import ExactLimitMixin
from .base import RecoveryEstimator
from .generic import GradientDescentMixin

__all__ = ["EquilibrationMixin", "FactorizedRegressor", "FewMeasurementsCVMixin",
           "default_factorized_step", "matrix_shape"]


def matrix_shape(operator) -> tuple[int, int]:
    """The ``(n1, n2)`` input shape of a matrix-sensing operator, or a clear error."""
    shape = tuple(operator.input_shape)
    if len(shape) != 2:
        raise ValueError(
            f"low-rank recovery needs a matrix-sensing operator (2-D input_shape), got an "
            f"operator on signals of shape {shape}; pass a stack of sensing matrices (m, n1, n2) "
            f"or a MatrixSensingOperator / GaussianSensingOperator"
        )
    return shape


class EquilibrationMixin:
    """Solve on a row/column-equilibrated operator when the operator is badly scaled.

    Gradient descent on a factorization from a small init cannot fit data whose entries of
    ``X`` are measured on scales 1e6 apart: the gradient of the small ones is 1e12 times
    weaker (docs/matrix_sensing.md, "Measurements behind the defaults"). Equilibrating each
    entry would destroy the low rank of the signal, but scaling rows and columns keeps it:
    the fit runs on ``diag(r) X diag(c)`` with the scales of
    :func:`~overparam.solvers.low_rank.equilibrating_scales` (``r = c`` for a symmetric
    model, which keeps ``X`` PSD), a no-op on well-scaled operators. ``coef`` is returned in
    the original coordinates, the factors (``result_.params``) in the equilibrated ones;
    ``result_.info["equilibration"]`` holds ``(r, c)``. A given
    :class:`~overparam.stopping.Oracle` then measures the distance in the equilibrated
    coordinates. Entry scales that are not a product ``r_i c_j`` stay partly unbalanced.
    """

    _symmetric = False

    def _fit_rule(self, operator, y, rule, a, s):
        matrix_shape(operator)  # a clear error for operators on vectors, before anything else
        scales = equilibrating_scales(operator, symmetric=self._symmetric)
        if scales is None:
            return super()._fit_rule(operator, y, rule, a, s)
        weights = np.outer(*scales)
        equilibrated = DiagonalScaledOperator(operator, weights)
        if isinstance(rule, Validation):  # a user's criterion, in the data's units
            rule = copy.deepcopy(rule)
            if isinstance(rule, Oracle):
                rule.truth = np.asarray(rule.truth) * weights
            else:
                rule.operator = DiagonalScaledOperator(as_operator(rule.operator), weights)
        result = super()._fit_rule(equilibrated, y, rule, a, s)
        result.coef = result.coef / weights
        result.info["equilibration"] = scales
        return result


class FewMeasurementsCVMixin:
    """K-fold cross-validation of the stopping time where one held-out split is too small.

    The held-out error of ``k`` measurements has a relative spread of about ``sqrt(2 / k)``,
    so with few measurements the time chosen on one split is a lottery. Where
    ``round(validation_fraction * m)`` is below the class attribute ``_min_held_out`` (and
    ``m >= 10``), ``early_stopping="validation"`` chooses the time by 5-fold
    cross-validation instead (``result_.info["validation_folds"]``), at the cost of five
    paths (measured: docs/matrix_sensing.md, "Measurements behind the defaults").
    """

    _min_held_out = 5

    def _fit_validated(self, operator, y):
        held = round(self.validation_fraction * operator.n_measurements)
        if self.validation_folds > 1 or held >= self._min_held_out \
                or operator.n_measurements < 10:
            return super()._fit_validated(operator, y)
        self.validation_folds = 5  # shadows the class attribute for this fit only
        try:
            result = super()._fit_validated(operator, y)
        finally:
            del self.validation_folds
        return self._limit_where_folds_learned_nothing(operator, y, result)

    def _limit_where_folds_learned_nothing(self, operator, y, result):
        """The exact limit where the folds' held-out error never fell below its first value.

        Folds of few measurements can hold too few to learn the matrix: their fits predict
        the held-out measurements worse than the zero matrix, the mean held-out curve rises
        from its first check and the time chosen there is a point where nothing has been
        learned (issue 13: a PSD fit of 16 measurements of column-scaled data, seed 2, stopped
        at relative residual 0.92). The held-out data then support no stopping time; the run
        to the limit replaces it if it ends on its optimality check (a locally unique low-rank
        interpolant, which noisy data do not have), else the validated answer stays.
        """
        curve = result.info.get("validation_curve")
        if result.info.get("exact_limit") or result.info.get("chosen_time") is None \
                or curve is None or not len(curve) \
                or curve[:, 2].min() < (1 - Validation.min_drop) * curve[0, 2]:
            return result
        limit = self._solve(operator, y, PathControl())
        if not limit.info.get("exact_limit"):
            result.wall_time += limit.wall_time
            return result
        limit.wall_time += result.wall_time
        limit.info.update({key: result.info[key] for key in (
            "path_iterations", "validation_error", "validation_curve", "validation_folds")
            if key in result.info}, chosen_time=None, folds_learned_nothing=True)
        return limit


def default_factorized_step(operator, y) -> AdaptiveStep:
    """Safe adaptive step in the units of the factorized problem.

    Near the solution the Hessian of ``1/2 ||A(U V^T) - y||^2`` scales with ``||Y||``, which the
    back-projection ``||A^*(y)||`` estimates; the step starts at ``0.2 / ||A^*(y)||`` and is
    capped at ``1 / ||A^*(y)||`` so that the iterates stay close to the gradient-flow path.
    """
    s = float(np.linalg.norm(operator.adjoint(y), 2))
    s = s if s > 0 else 1.0
    return AdaptiveStep(initial=0.2 / s, max_step=1.0 / s)


@register_method("factorized",
                 "low-rank matrix: GD on X = U V^T from a small init (tuning-free, any width)")
class FactorizedRegressor(EquilibrationMixin, FewMeasurementsCVMixin, ExactLimitMixin,
                          GradientDescentMixin, RecoveryEstimator):
    """Low-rank matrix sensing with no penalty: gradient descent on ``X = U V^T``.

    Minimizes ``1/2 ||A(U V^T) - y||^2`` by gradient descent from a small initialization of
    scale ``init_scale`` (the paper's epsilon). Wind (Theorem 2.8) shows that after
    ``K ~ log(sigma_r / eps^2) / (eta sigma_r)`` steps the error is
    ``<~ (eps^2/sigma_r)^(2/3) sigma_r + kappa * xi`` for any width ``h``, robustly to
    perturbations ``xi`` such as measurement noise (a bound; see Notes for what is measured).

    Parameters
    ----------
    width : int or None, default=None
        Width ``h`` of the factors; None uses ``max(n1, n2)`` (the paper's guarantee asks for
        ``h >~ max(n1, n2)``).
    init_scale : float, default=1e-3
        Epsilon, the spectral norm scale of ``(U; V)`` at the init.
    init : {"gaussian", "identity"}, default="gaussian"
        I.i.d. Gaussian factors of standard deviation ``eps / (C sqrt(h))`` or the scaled identity
        ``eps / sqrt(2) * I``.
    step : "adaptive", float or StepPolicy, default="adaptive"
        Safe adaptive scalar step (:func:`default_factorized_step`) or the paper's fixed step.
    max_iter : int, default=10_000
    tol : float, default=1e-6
        Relative residual ``||A(X) - y|| / ||y||`` at which to stop.
    early_stopping : {"validation", "discrepancy", None}, default="validation"
        The stopping rule (docs/noise.md): held-out validation needs no noise level;
        ``None`` runs to the limit (exact, noiseless data; one fit instead of about two).
        Automatic stopping under noise (see :class:`RecoveryEstimator`).
    validation_fraction : float, default=0.2
    noise_level : float, optional
        Noise standard deviation per measurement (``early_stopping="discrepancy"``).
    random_state : None, int or Generator
        Seeds the Gaussian init (0 when None) and the hold-out split.
    init_constant : float, default=1.0
        ``C`` of the Gaussian init.
    refine : bool, default=True
        End runs to the limit on its optimality check (below); False: plain gradient descent
        to ``tol`` or ``max_iter``.

    Notes
    -----
    Plain gradient descent from ``eps`` learns the rank-``k`` part within a few hundred
    steps, then creeps: components that overshot decay like ``1/t``, and the error at the
    iteration cap is far above ``eps`` (20 x 20, rank 2, m = 160: 2.5e-2 at ``eps = 1e-3``
    after 10,000 steps; docs/matrix_sensing.md). Run to its limit (``early_stopping=None``,
    or noiseless data under validation), the fit goes in rounds (500 steps, then doubling);
    after each, the rank-``k`` interpolant next to the iterate for each rank at a gap of its
    singular values (:func:`~overparam.solvers.low_rank.refine_low_rank`, Gauss-
    Newton) ends the run if it exists and is locally unique (``k (n1 + n2 - k) < m``): the
    limit the flow creeps towards, reached to ``tol``. Under validation the same check ends
    the base class's attempt at the limit, and a refit that has learned the rank is replaced
    by its interpolant (noisy data have none).
    """

    _symmetric = False
    _accepts_sparse = False  # a matrix signal needs a 3-D stack, not a sparse 2-D X
    _parameter_constraints: ClassVar[dict] = {
        "width": [POSITIVE_INT, None],
        "init_scale": [POSITIVE],
        "init": [StrOptions({"gaussian", "identity"})],
        "step": STEP,
        **shared_constraints(),
        "init_constant": [POSITIVE],
        "refine": ["boolean"],
    }

    def __init__(self, width=None, init_scale=1e-3, init="gaussian", step="adaptive",
                 max_iter=10_000, tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None, init_constant=1.0, refine=True):
        self._set_init_params(locals())

    def _parameterization(self, operator) -> Factorized:
        shape = matrix_shape(operator)
        width = max(shape) if self.width is None else self.width
        return Factorized(shape, width, symmetric=self._symmetric, init=self.init,
                          init_constant=self.init_constant)

    def _step_policy(self, operator, y):
        if isinstance(self.step, str) and self.step == "adaptive":
            return default_factorized_step(operator, y)
        return as_step_policy(self.step)

    def _exact(self, operator, y, coef):
        """The low-rank interpolant next to ``coef``
        (:func:`~overparam.solvers.low_rank.low_rank_limit`)."""
        found = low_rank_limit(operator, y, coef, tol=self.tol, symmetric=self._symmetric)
        return None if found is None else (found[0], {"refined_rank": found[1]})

    def _least_squares(self, operator, y):
        """The limit on inconsistent data where least squares has one solution
        (:func:`~overparam.solvers.low_rank.least_squares_limit`); None for ``U U^T``,
        which reaches PSD matrices only."""
        return None if self._symmetric else least_squares_limit(operator, y)
