"""scikit-learn style base class: ``fit(A, y)`` sets ``coef_`` and the solver's report."""

from __future__ import annotations

import copy

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_measurements, check_positive, check_random_state
from ..operators import as_operator
from ..stopping import PathControl, Validation

__all__ = ["RecoveryEstimator", "holdout_split"]

_EARLY_STOPPING = (None, "validation", "discrepancy")
_NO_OVERFIT_RTOL = 1e-6


def holdout_split(n_measurements: int, fraction: float, random_state=None):
    """Random split of measurement indices into ``(train, held_out)``.

    At least one measurement is held out and at least one kept.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    if n_measurements < 2:
        raise ValueError("holding out measurements needs at least 2 of them")
    n_val = min(max(1, round(fraction * n_measurements)), n_measurements - 1)
    perm = check_random_state(random_state).permutation(n_measurements)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class RecoveryEstimator(RegressorMixin, BaseEstimator):
    """Recover a signal ``x`` from measurements ``y = A x (+ noise)``.

    Subclasses implement ``_solve(operator, y, control) -> SolverResult`` and honour the
    :class:`~overparam.stopping.PathControl` (held-out validation, a stop time on the solver's
    clock, a discrepancy level). Implicit-regularization estimators expose the parameters
    ``early_stopping``, ``validation_fraction`` and ``noise_level``, used here:

    - ``early_stopping=None``: run the solver to its own stopping rule.
    - ``"validation"``: hold out ``validation_fraction`` of the measurements, follow the path on
      the rest, pick the solver time with the smallest held-out error, then refit on all
      measurements up to that time (or down to the path's training residual there; the
      class attributes ``validation_*`` set how the path is followed and read). If the
      held-out error was still falling at the end of the path (no overfitting seen, e.g.
      noiseless data), the refit runs to its own stopping rule and ``chosen_time`` is None.
      Needs no noise level and no sparsity; costs about two fits.
    - ``"discrepancy"``: stop once ``||A x - y|| <= noise_level * sqrt(y.size)``, with
      ``noise_level`` the standard deviation of the noise per measurement.
    - a :class:`~overparam.stopping.Validation` instance: that criterion is followed along the
      path on all measurements and the best iterate returned (e.g.
      :class:`~overparam.stopping.Oracle` for the best stopping time in hindsight).

    After ``fit``:

    Attributes
    ----------
    coef_ : ndarray
        The recovered signal.
    result_ : SolverResult
        Full solver report (parameters, history, info). With validation, ``info`` also holds
        ``chosen_time``, ``validation_curve`` and the path run's iteration count.
    n_iter_ : int
    stop_reason_ : StopReason
    fit_time_ : float
        Seconds spent in the solver(s).
    """

    #: allowed dimensions of ``y`` (2 for multiple measurement vectors)
    _y_ndim: int | tuple[int, ...] = 1
    #: How ``early_stopping="validation"`` follows and reads the path (class-level settings
    #: of the rule, not hyperparameters to tune). Held-out error every ``validation_every``
    #: iterations; the path stops after ``validation_patience`` checks without improvement
    #: once past ``validation_horizon`` times the best time. The chosen time is the *latest*
    #: check whose held-out error is within ``validation_rtol`` of the path's total decrease
    #: from the best: incremental learning makes the held-out error fall in steps, and the
    #: first minimum can be a transient dip in the middle of a step that the refit, whose
    #: steps come slightly earlier or later, would stop just before.
    validation_every: int = 10
    validation_patience: int = 50
    validation_horizon: float = 2.0
    validation_rtol: float = 0.0
    #: How the refit on all measurements stops: at the chosen solver ``"time"``, or when its
    #: residual falls to the path's training residual at the chosen iterate (``"residual"``:
    #: for models whose escape from a small init is abrupt, so that a few percent of timing
    #: difference between the path and the refit matters).
    validation_refit: str = "time"

    def fit(self, A, y):
        """Recover the signal.

        Parameters
        ----------
        A : ndarray of shape (m, n), LinearOperator or Operator
            Measurement operator.
        y : ndarray of shape (m,) (or (m, L) for multiple measurement vectors)
            Measurements.

        Returns
        -------
        self
        """
        operator, y = check_measurements(A, y, y_ndim=self._y_ndim)
        rule = getattr(self, "early_stopping", None)
        if isinstance(rule, Validation):  # a custom criterion along the path, e.g. an Oracle
            criterion = copy.deepcopy(rule)  # fresh state each fit
            result = self._solve(operator, y, PathControl(validation=criterion))
            result.info.update(validation_curve=np.asarray(criterion.curve),
                               chosen_time=criterion.best_time)
        elif rule not in _EARLY_STOPPING:
            raise ValueError(f"early_stopping must be one of {_EARLY_STOPPING} or a "
                             f"Validation, got {rule!r}")
        elif rule == "validation":
            result = self._fit_validated(operator, y)
        elif rule == "discrepancy":
            sigma = getattr(self, "noise_level", None)
            if sigma is None:
                raise ValueError("early_stopping='discrepancy' needs noise_level (the noise "
                                 "standard deviation per measurement)")
            check_positive(sigma, "noise_level")
            control = PathControl(discrepancy=float(sigma) * np.sqrt(y.size))
            result = self._solve(operator, y, control)
        else:
            result = self._solve(operator, y, PathControl())
        self.result_ = result
        self.coef_ = result.coef
        self.n_iter_ = result.n_iter
        self.stop_reason_ = result.stop_reason
        self.fit_time_ = result.wall_time
        return self

    def _fit_validated(self, operator, y):
        fraction = getattr(self, "validation_fraction", 0.2)
        # Deterministic by default: random_state=None holds out the same rows every time.
        seed = getattr(self, "random_state", None)
        train, held = holdout_split(operator.n_measurements, fraction,
                                    0 if seed is None else seed)
        validation = Validation(operator.rows(held), y[held], every=self.validation_every,
                                patience=self.validation_patience,
                                horizon=self.validation_horizon)
        train_op = operator.rows(train)
        path = self._solve(train_op, y[train], PathControl(validation=validation))
        curve = np.asarray(validation.curve, dtype=float).reshape(-1, 3)
        # Held-out error at the end of the path as low as its best, up to round-off (noiseless
        # data, or too short a path): no sign of overfitting, so the refit runs to its own
        # stopping rule. Overfitting noise, even at 40 dB, raises it far above this level.
        still_improving = curve.shape[0] > 0 and (
            validation.best_iteration == curve[-1, 0]
            or curve[-1, 2] <= validation.best_error
            + _NO_OVERFIT_RTOL * (curve[0, 2] - validation.best_error))
        chosen, chosen_iteration = validation.best_time, validation.best_iteration
        if curve.shape[0] and self.validation_rtol > 0:
            best = validation.best_error
            near = np.flatnonzero(curve[:, 2] <= best + self.validation_rtol * (curve[0, 2] - best))
            chosen_iteration, chosen = int(curve[near[-1], 0]), float(curve[near[-1], 1])
        level = None
        if still_improving:
            control = PathControl()
        elif self.validation_refit == "residual":
            state = path.coef
            if chosen_iteration != validation.best_iteration:
                # The path returned its best iterate; re-run it to the chosen iterate.
                state = self._solve(train_op, y[train], PathControl(stop_time=chosen)).coef
            residual = train_op.forward(state) - y[train]
            level = float(np.sqrt(np.mean(residual**2) * y.size))
            control = PathControl(discrepancy=level) if level > 0 else PathControl()
        else:
            control = PathControl(stop_time=chosen)
        result = self._solve(operator, y, control)
        result.wall_time += path.wall_time
        result.info.update(chosen_time=None if still_improving else chosen,
                           chosen_iteration_on_path=chosen_iteration,
                           path_iterations=path.n_iter, validation_error=validation.best_error,
                           validation_curve=curve, refit=self.validation_refit,
                           refit_residual=level)
        return result

    def predict(self, A):
        """Measurements ``A coef_`` predicted by the recovered signal."""
        check_is_fitted(self, "coef_")
        return as_operator(A).forward(self.coef_)

    def _solve(self, operator, y, control: PathControl):  # pragma: no cover - abstract
        raise NotImplementedError
