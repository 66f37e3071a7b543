"""Runs to the limit that end on an optimality check: gradient rounds, then the exact limit.

Shared by :class:`~overparam.estimators.MMVRegressor` and
:class:`~overparam.estimators.FactorizedRegressor`: from a small init both learn the structure
of their limit (the rows, the rank) quickly and then creep towards it. Their limit is the
interpolant with that structure next to the iterate, which a direct solve gives.
"""

from __future__ import annotations

import time

from ..stopping import StopReason

__all__ = ["ExactLimitMixin"]

FIRST_ROUND = 500  # gradient steps before the first attempt at the limit (doubled after)


class ExactLimitMixin:
    """For a :class:`RecoveryEstimator` with a ``refine`` parameter and a ``tol``.

    Subclasses implement ``_exact(operator, y, coef) -> (coef, info) or None`` (the
    structured interpolant next to ``coef``, if it exists and is unique) and
    ``_gradient_round(operator, y, control, params, max_iter) -> SolverResult`` (resuming
    from ``params``, or from the init when None). They may implement
    ``_least_squares(operator, y) -> coef or None``: the limit of a run to the limit when
    least squares has a unique solution (then every descent that converges to a minimizer
    ends there, however long it stalls on the way). Used with ``early_stopping=None`` only:
    under validation, a path that stalled on a plateau (no overfitting seen) sends the refit
    to the limit, and the plateau it stalls on is the answer the held-out data support.
    """

    def _solve(self, operator, y, control):
        """A point on the path (``control`` stops early, or ``refine=False``): one gradient
        round; else the run to the limit (:meth:`_solve_to_limit`)."""
        rule = self._stopping_rule(control)
        if control.stops_early or not self.refine:
            return self._gradient_round(operator, y, control, None, rule.max_iter)
        return self._solve_to_limit(operator, y, control, rule.max_iter)

    def _solve_to_limit(self, operator, y, control, max_iter: int):
        """Gradient rounds of doubling length; after each, the exact limit ends the run if
        it exists. Bounded by ``max_iter`` steps in all."""
        params, n_iter, wall, clock, round_length = None, 0, 0.0, 0.0, FIRST_ROUND
        while True:
            result = self._gradient_round(operator, y, control, params,
                                          min(round_length, max_iter - n_iter))
            n_iter, wall = n_iter + result.n_iter, wall + result.wall_time
            clock += result.info.get("time", 0.0)
            result.n_iter, result.info["time"] = n_iter, clock
            start = time.perf_counter()
            found = self._exact(operator, y, result.coef)
            result.wall_time = wall = wall + time.perf_counter() - start
            if found is None and hasattr(self, "_least_squares") \
                    and getattr(self, "early_stopping", None) is None:
                unique = self._least_squares(operator, y)
                found = None if unique is None else (unique, {"least_squares_limit": True})
            if found is not None:
                # params stay the gradient iterate's; coef is the limit it creeps towards
                result.coef, result.stop_reason = found[0], StopReason.CONVERGED
                result.info.update(found[1], exact_limit=True)
                return result
            if result.stop_reason != StopReason.MAX_ITER or n_iter >= max_iter:
                return result
            params, round_length = result.params, 2 * round_length

    def _fit_validated(self, operator, y):
        """The held-out rule of :class:`RecoveryEstimator`, whose answer is replaced by the
        interpolant of its structure where that exists (noiseless data: all of the structure
        was learned, but a spurious rise of the held-out error, e.g. while an MMV row changes
        sign, stopped the refit short of the limit). Noisy data have no such interpolant.
        Where no overfitting shows, the limit tried by the base class ends on the same
        check (:meth:`_solve_to_limit`)."""
        result = super()._fit_validated(operator, y)
        if not self.refine or result.info.get("exact_limit"):
            return result
        start = time.perf_counter()
        found = self._exact(operator, y, result.coef)
        result.wall_time += time.perf_counter() - start
        if found is not None:
            result.coef, result.stop_reason = found[0], StopReason.CONVERGED
            result.info.update(found[1])
        result.info["exact_limit"] = found is not None
        return result
