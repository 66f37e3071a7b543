"""Minimum-norm least squares: the "no structure" baseline (linear regression from zero)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.sparse.linalg import lsqr
from sklearn.utils._param_validation import StrOptions

from .._registry import register_method
from ..estimators._constraints import STEP, shared_constraints
from ..estimators.base import RecoveryEstimator
from ..parameterizations import Identity
from ..solvers import SolverResult, gradient_descent
from ..stopping import StopReason

__all__ = ["MinNormRegressor"]


@register_method("min-norm", "minimum-l2-norm least squares (GD from zero / LSQR), no structure")
class MinNormRegressor(RecoveryEstimator):
    """Minimum-Euclidean-norm least-squares fit, for signals of any shape (vectors, matrices).

    Gradient descent from zero on ``1/2 ||A x - y||^2`` stays in the row space of ``A`` and so
    converges to the minimum-norm interpolant (the implicit bias of the plain parameterization).

    Parameters
    ----------
    solver : {"lsqr", "gd"}, default="lsqr"
        ``"lsqr"`` uses :func:`scipy.sparse.linalg.lsqr` from zero (same limit, far fewer
        iterations); ``"gd"`` runs plain gradient descent from zero (its path is the baseline
        "linear regression" curve of the papers).
    step : "adaptive" or float, default="adaptive"
        Step of ``solver="gd"``.
    max_iter : int, default=10_000
    tol : float, default=1e-8
    early_stopping, validation_fraction, noise_level, random_state
        Automatic stopping (``solver="gd"`` only), see :class:`RecoveryEstimator`.
    """

    _parameter_constraints: ClassVar[dict] = {
        "solver": [StrOptions({"lsqr", "gd"})],
        "step": STEP,
        **shared_constraints(),
    }

    def __init__(self, solver="lsqr", step="adaptive", max_iter=10_000, tol=1e-8,
                 early_stopping=None, validation_fraction=0.2, noise_level=None,
                 random_state=None):
        self._set_init_params(locals())

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        if self.solver == "lsqr" and self.early_stopping is not None:
            raise ValueError("automatic stopping needs solver='gd' (LSQR has no flow path)")

    def _solve(self, operator, y, control):
        if self.solver == "gd":
            rule = self._stopping_rule(control)
            return gradient_descent(Identity(operator.input_shape), operator, y, init_scale=0.0,
                                    step=self.step, stopping=rule,
                                    validation=control.validation)
        if y.ndim != 1:
            raise ValueError("solver='lsqr' takes one measurement vector; use solver='gd'")
        import time

        start = time.perf_counter()
        out = lsqr(operator.as_linear_operator(), y, atol=self.tol, btol=self.tol,
                   iter_lim=self.max_iter)
        x, istop, n_iter = out[0], out[1], out[2]
        if not np.all(np.isfinite(x)):
            from ..stopping import DivergenceError

            raise DivergenceError("LSQR returned a non-finite solution")
        reason = StopReason.MAX_ITER if istop == 7 else StopReason.CONVERGED
        return SolverResult(coef=np.reshape(x, operator.input_shape), params=(), n_iter=int(n_iter),
                            wall_time=time.perf_counter() - start, stop_reason=reason,
                            info={"lsqr_istop": int(istop), "clock": "iterations"})
