"""Sparse recovery by gradient descent on a deep Hadamard factorization."""

from __future__ import annotations

from ..methods import register_method
from ..parameterizations import Hadamard
from ..solvers import gradient_descent
from ..stopping import StoppingRule
from .base import RecoveryEstimator

__all__ = ["HadamardRegressor"]


@register_method("hadamard", "sparse vector: GD on x = u^L - v^L (deep Hadamard, tuning-free)")
class HadamardRegressor(RecoveryEstimator):
    """Sparse recovery with no penalty: gradient descent on ``x = u^L - v^L`` from a small init.

    From a small init ``alpha`` the limit approaches the minimum-l1 interpolant (Chou, Maly,
    Rauhut, "More is less"); deeper factorizations get there from larger ``alpha``.

    Parameters
    ----------
    depth : int, default=2
        Number of factors ``L``.
    signed : bool, default=True
        False restricts to non-negative signals (``x = u^L``).
    init_scale : float, default=1e-6
        Product init alpha of each part.
    step : "adaptive" or float, default="adaptive"
        Safe adaptive scalar step, or the paper's fixed step.
    max_iter : int, default=100_000
    tol : float, default=1e-6
        Relative residual at which to stop.
    early_stopping : {None, "validation", "discrepancy"}, default=None
        Automatic stopping under noise (see :class:`RecoveryEstimator`).
    validation_fraction : float, default=0.2
        Share of measurements held out when ``early_stopping="validation"``.
    noise_level : float, optional
        Noise standard deviation per measurement, for ``early_stopping="discrepancy"``.
    random_state : None or int, default=None
        Seeds the hold-out split (the init itself is deterministic).
    """

    def __init__(self, depth=2, signed=True, init_scale=1e-6, step="adaptive", max_iter=100_000,
                 tol=1e-6, early_stopping=None, validation_fraction=0.2, noise_level=None,
                 random_state=None):
        self.depth = depth
        self.signed = signed
        self.init_scale = init_scale
        self.step = step
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_level = noise_level
        self.random_state = random_state

    def _solve(self, operator, y, control):
        param = Hadamard(operator.shape[1], depth=self.depth, signed=self.signed)
        rule = control.apply(StoppingRule(max_iter=self.max_iter, tol=self.tol))
        return gradient_descent(param, operator, y, init_scale=self.init_scale, step=self.step,
                                stopping=rule, validation=control.validation,
                                random_state=self.random_state)
