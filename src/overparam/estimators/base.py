"""scikit-learn style base class: ``fit(A, y)`` sets ``coef_`` and the solver's report."""

from __future__ import annotations

import copy

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._progress import progress_shown, show_progress
from .._validation import check_measurements, check_positive, check_random_state
from ..operators import as_operator
from ..stopping import PathControl, StopReason, Validation

__all__ = ["RecoveryEstimator", "check_validation_fraction", "holdout_split", "kfold_splits"]

_EARLY_STOPPING = (None, "validation", "discrepancy")
_NO_OVERFIT_RTOL = 1e-6


def check_validation_fraction(fraction) -> float:
    """``fraction`` if it is in (0, 1), else a clear error."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    return fraction


def holdout_split(n_measurements: int, fraction: float, random_state=None):
    """Random split of measurement indices into ``(train, held_out)``.

    At least one measurement is held out and at least one kept.
    """
    check_validation_fraction(fraction)
    if n_measurements < 2:
        raise ValueError("holding out measurements needs at least 2 of them")
    n_val = min(max(1, round(fraction * n_measurements)), n_measurements - 1)
    perm = check_random_state(random_state).permutation(n_measurements)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def kfold_splits(n_measurements: int, n_folds: int, random_state=None):
    """``n_folds`` splits ``(train, held_out)`` of the measurement indices, each index held
    out exactly once (shuffled :class:`sklearn.model_selection.KFold`)."""
    from sklearn.model_selection import KFold

    if n_measurements < n_folds:
        raise ValueError(f"{n_folds}-fold validation needs at least {n_folds} measurements, "
                         f"got {n_measurements}")
    seed = int(check_random_state(random_state).integers(2**31 - 1))
    return list(KFold(n_folds, shuffle=True, random_state=seed).split(np.arange(n_measurements)))


def _mean_curve(curves) -> np.ndarray:
    """Mean of held-out curves ``(iteration, clock, error)``.

    Each curve is interpolated (linearly in the clock) at the union of the check times from
    the latest first check on; a curve that ended earlier (its path stopped: past its minimum)
    counts with its last value. The iteration column of the result is NaN.
    """
    lo = max(c[0, 1] for c in curves)
    hi = max(c[-1, 1] for c in curves)
    grid = np.unique(np.concatenate([c[:, 1] for c in curves]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size == 0:
        grid = np.array([hi])
    mean = np.mean([np.interp(grid, c[:, 1], c[:, 2]) for c in curves], axis=0)
    return np.column_stack([np.full(grid.size, np.nan), grid, mean])


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
      Needs no noise level and no sparsity; costs about two fits. With
      ``validation_folds = K > 1`` the time is chosen by K-fold cross-validation instead
      (K paths, the minimum of the mean held-out curve, a refit up to that time).
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
    #: See :attr:`Validation.min_improvement <overparam.stopping.Validation>`.
    validation_min_improvement: float = 0.0
    #: ``1``: one held-out split of ``validation_fraction``. ``K > 1``: K-fold
    #: cross-validation of the stopping time: K paths, each holding out one fold, the time
    #: of the smallest *mean* held-out error (the folds' clocks are comparable: the flow time
    #: of the mean loss), and a refit up to that time. Costs K paths instead of one (solvers
    #: that batch problems run them together, see :meth:`_solve_paths`); worth it where the
    #: held-out error of one split is too noisy a guide (few measurements).
    validation_folds: int = 1
    #: When the held-out error never rose (no overfitting seen), the refit runs to the
    #: solver's own stopping rule (the limit). With a number ``b`` it gets at most ``b`` times
    #: the (median) path's iterations and must converge (or stagnate) within them; otherwise
    #: the refit stops at the chosen time instead (for solvers whose limit on noisy data is
    #: far slower to reach than the paths).
    validation_limit_budget: float | None = None
    #: How the refit on all measurements stops: at the chosen solver ``"time"``, or when its
    #: residual falls to the path's training residual at the chosen iterate (``"residual"``:
    #: for models whose escape from a small init is abrupt, so that a few percent of timing
    #: difference between the path and the refit matters).
    validation_refit: str = "time"
    #: Show the solvers' progress bars during ``fit`` (set on an instance; see also
    #: :func:`overparam.show_progress` for every fit in a block).
    progress: bool = False

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
        if self.progress and not progress_shown():
            with show_progress():
                return self.fit(A, y)
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
        # Deterministic by default: random_state=None holds out the same rows every time.
        seed = getattr(self, "random_state", None)
        seed = 0 if seed is None else seed
        folds = int(self.validation_folds)
        if folds > 1:
            splits = kfold_splits(operator.n_measurements, folds, seed)
        else:
            splits = [holdout_split(operator.n_measurements,
                                    getattr(self, "validation_fraction", 0.2), seed)]
        validations = [Validation(operator.rows(held), y[held], every=self.validation_every,
                                  patience=self.validation_patience,
                                  horizon=self.validation_horizon,
                                  min_improvement=self.validation_min_improvement)
                       for _, held in splits]
        paths = self._solve_paths([(operator.rows(train), y[train], PathControl(validation=v))
                                   for (train, _), v in zip(splits, validations, strict=True)])
        curves = [np.asarray(v.curve, dtype=float).reshape(-1, 3) for v in validations]
        curve = curves[0] if folds == 1 else _mean_curve(curves)
        level = chosen = chosen_iteration = None
        still_improving = True
        if curve.shape[0]:
            best_index = int(np.argmin(curve[:, 2]))
            best, drop = curve[best_index, 2], curve[0, 2] - curve[best_index, 2]
            # Held-out error at the end of the path as low as its best, up to round-off
            # (noiseless data, or too short a path): no sign of overfitting, so the refit runs
            # to its own stopping rule. Overfitting noise, even at 40 dB, raises it far above.
            still_improving = (best_index == curve.shape[0] - 1
                               or curve[-1, 2] <= best + _NO_OVERFIT_RTOL * drop)
            near = np.flatnonzero(curve[:, 2] <= best + self.validation_rtol * drop)
            chosen_index = int(near[-1]) if self.validation_rtol > 0 else best_index
            chosen, chosen_iteration = float(curve[chosen_index, 1]), curve[chosen_index, 0]
        limit = None
        if still_improving and self.validation_limit_budget is not None:
            # Try the limit on a budget: it converges fast on noiseless data, but creeps for
            # long when it has to fit noise that the paths did not show (held-out error flat).
            budget = self.validation_limit_budget * float(np.median([p.n_iter for p in paths]))
            limit = self._solve(operator, y, PathControl(max_iter=budget))
            if limit.stop_reason not in (StopReason.CONVERGED, StopReason.STAGNATED):
                still_improving = False
        if still_improving:
            control = None if limit is not None else PathControl()  # the limit, or run to it
        elif self.validation_refit == "residual" and folds == 1:
            train, _ = splits[0]
            train_op, state = operator.rows(train), paths[0].coef
            if chosen_iteration != validations[0].best_iteration:
                # The path returned its best iterate; re-run it to the chosen iterate.
                state = self._solve(train_op, y[train], PathControl(stop_time=chosen)).coef
            residual = train_op.forward(state) - y[train]
            level = float(np.sqrt(np.mean(residual**2) * y.size))
            control = PathControl(discrepancy=level) if level > 0 else PathControl()
        else:
            control = PathControl(stop_time=chosen)
        if control is None:
            result = limit
        else:
            result = self._solve(operator, y, control)
            result.wall_time += 0.0 if limit is None else limit.wall_time
        result.wall_time += sum(path.wall_time for path in paths)
        result.info.update(
            chosen_time=None if still_improving else chosen,
            chosen_iteration_on_path=(None if chosen_iteration is None
                                      or np.isnan(chosen_iteration) else int(chosen_iteration)),
            path_iterations=(paths[0].n_iter if folds == 1
                             else [path.n_iter for path in paths]),
            validation_error=None if not curve.shape[0] else float(curve[:, 2].min()),
            validation_curve=curve, validation_folds=folds,
            refit="time" if folds > 1 else self.validation_refit, refit_residual=level)
        return result

    def _solve_paths(self, problems):
        """Solve ``[(operator, y, control), ...]``: the validation paths (one per fold).

        One :meth:`_solve` call after another; estimators whose solver batches problems
        override this to run them together.
        """
        return [self._solve(operator, y, control) for operator, y, control in problems]

    def predict(self, A):
        """Measurements ``A coef_`` predicted by the recovered signal."""
        check_is_fitted(self, "coef_")
        return as_operator(A).forward(self.coef_)

    def _solve(self, operator, y, control: PathControl):  # pragma: no cover - abstract
        raise NotImplementedError
