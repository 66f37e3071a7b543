"""The generic estimator: gradient descent on any parameterization of the signal.

After skglm's ``GeneralizedLinearEstimator(datafit, penalty, solver)``: the structure is an
argument, a :class:`~overparam.parameterizations.Parameterization`, so that a new
implicit-regularization structure is one such class and no estimator code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from ..parameterizations.base import Parameterization
from ..solvers.gradient_descent import gradient_descent
from ._constraints import POSITIVE, STEP, shared_constraints
from .base import RecoveryEstimator

__all__ = ["GradientDescentMixin", "ParameterizedRegressor", "build_parameterization"]


def build_parameterization(parameterization, input_shape: tuple[int, ...]) -> Parameterization:
    """The parameterization of a signal of ``input_shape``.

    Parameters
    ----------
    parameterization : Parameterization or callable
        An instance, returned as is once its ``signal_shape`` is checked against
        ``input_shape``; or a callable (a Parameterization class, a ``functools.partial`` of
        one) called with the sizes of the signal, ``parameterization(*input_shape)``.
    input_shape : tuple of int
        The operator's input shape.

    Returns
    -------
    Parameterization

    Raises
    ------
    ValueError
        When the signal shape does not match ``input_shape``.
    TypeError
        When the callable does not return a Parameterization.
    """
    input_shape = tuple(int(n) for n in input_shape)
    built = parameterization if isinstance(parameterization, Parameterization) \
        else parameterization(*input_shape)
    if not isinstance(built, Parameterization):
        raise TypeError(f"parameterization{input_shape} returned {type(built).__name__}, not a "
                        "Parameterization")
    shape = tuple(built.signal_shape)
    if shape != input_shape:
        raise ValueError(f"the parameterization {built!r} gives signals of shape {shape}, but the "
                         f"operator takes signals of shape {input_shape}; pass the class (or a "
                         "callable of the signal's sizes) to fit data of any size")
    return built


def _init_seed(random_state):
    # A random init is seeded even when the user did not: fits are deterministic.
    return 0 if random_state is None else random_state


class GradientDescentMixin:
    """Gradient descent on a parameterization, for a :class:`RecoveryEstimator` with the
    parameters ``init_scale``, ``step``, ``max_iter``, ``tol`` and ``random_state``.

    Subclasses say which parameterization (:meth:`_parameterization`) and, if not the
    parameter ``step``, which step (:meth:`_step_policy`); :meth:`_gradient_round` runs
    :func:`~overparam.solvers.gradient_descent` under the estimator's
    :class:`~overparam.stopping.PathControl`. Shared by :class:`ParameterizedRegressor` and
    the named gradient-descent estimators (:class:`~overparam.estimators.FactorizedRegressor`,
    :class:`~overparam.estimators.DeepMatrixRegressor`), which add their own runs to the
    limit (:class:`~overparam.estimators._exact_limit.ExactLimitMixin`).
    """

    def _parameterization(self, operator) -> Parameterization:  # pragma: no cover - abstract
        """The parameterization of the signal of ``operator``."""
        raise NotImplementedError

    def _step_policy(self, operator, y):
        """The step given to :func:`~overparam.solvers.gradient_descent`."""
        return self.step

    def _gradient_round(self, operator, y, control, params, max_iter):
        """Gradient descent under ``control`` for at most ``max_iter`` steps, from ``params``
        (or from the init when None)."""
        rule = self._stopping_rule(control)
        return gradient_descent(self._parameterization(operator), operator, y,
                                init_scale=self.init_scale, init_params=params,
                                step=self._step_policy(operator, y),
                                stopping=replace(rule, max_iter=max_iter),
                                validation=control.validation,
                                random_state=_init_seed(self.random_state))


class ParameterizedRegressor(GradientDescentMixin, RecoveryEstimator):
    """Implicit regularization on any structure: gradient descent on ``x = signal(params)``.

    Minimizes ``1/2 ||A signal(params) - y||^2`` by gradient descent
    (:func:`~overparam.solvers.gradient_descent`) from ``parameterization.init(init_scale)``;
    the structure the small init favours is that of the parameterization. Automatic
    stopping (held-out validation, the discrepancy principle, a
    :class:`~overparam.stopping.Validation` criterion) is :class:`RecoveryEstimator`'s.
    The named gradient-descent estimators share its gradient round
    (:class:`GradientDescentMixin`) and add their own runs to the limit.

    Parameters
    ----------
    parameterization : Parameterization or callable
        The signal as a function of the parameters: an instance, whose ``signal_shape`` must
        be the operator's input shape, or a callable (e.g. a Parameterization class, or a
        ``functools.partial`` of one) called with the sizes of the signal,
        ``parameterization(*input_shape)``, on the data of each fit, so that one estimator
        fits data of any size. The parameterization used is ``parameterization_``.
    init_scale : float, default=1e-3
        Passed to ``parameterization.init``: the size of the init (the papers' alpha).
    step : "adaptive", float or StepPolicy, default="adaptive"
        The safe adaptive scalar step (backtracking; keeps the gradient flow's path), a
        constant step, or a :class:`~overparam.solvers.StepPolicy`.
    max_iter : int, default=10_000
        Gradient steps at most.
    tol : float, default=1e-6
        Relative residual ``||A x - y|| / ||y||`` at which to stop.
    early_stopping : {"validation", "discrepancy", None} or Validation, default="validation"
        The stopping rule (see :class:`RecoveryEstimator`): held-out validation needs no noise
        level; ``None`` runs to the limit.
    validation_fraction : float, default=0.2
        Share of measurements held out when ``early_stopping="validation"``.
    noise_level : float, optional
        Noise standard deviation per measurement, for ``early_stopping="discrepancy"``.
    random_state : None, int or Generator
        Seeds a random init (0 when None) and the hold-out split.

    Attributes
    ----------
    parameterization_ : Parameterization
        The parameterization used on the data of the last ``fit``.
    """

    #: The stopping time under validation is chosen by 5-fold cross-validation (see
    #: :class:`RecoveryEstimator`): from a small init the held-out error of one split of a
    #: few measurements is too noisy a guide (measured: docs/DEVELOPING.md).
    validation_folds = 5

    _parameter_constraints: ClassVar[dict] = {
        "parameterization": [Parameterization, callable],
        "init_scale": [POSITIVE],
        "step": STEP,
        **shared_constraints(),
    }

    def __init__(self, parameterization, *, init_scale=1e-3, step="adaptive", max_iter=10_000,
                 tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self._set_init_params(locals())

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        # the parameterization against the data: a clear error before any solver runs
        self.parameterization_ = self._parameterization(operator)

    def _parameterization(self, operator) -> Parameterization:
        return build_parameterization(self.parameterization, operator.input_shape)

    def _solve(self, operator, y, control):
        rule = self._stopping_rule(control)
        return self._gradient_round(operator, y, control, None, rule.max_iter)
