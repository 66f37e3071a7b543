"""scikit-learn style base class: ``fit(A, y)`` sets ``coef_`` and the solver's report."""

from __future__ import annotations

import copy
import numbers
import warnings
from math import prod
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .._progress import progress_shown, show_progress
from .._validation import check_random_state
from ..operators import DenseOperator, Operator, as_operator, check_measurements, is_operator_like
from ..solvers.result import SolverResult
from ..solvers.steps import StepPolicy
from ..stopping import (
    DegenerateInputWarning,
    Oracle,
    PathControl,
    StoppingRule,
    StopReason,
    Validation,
)
from ._constraints import shared_constraints
from ._equilibration import (
    ESTIMATED_SPREAD_LIMIT,
    WARNING_SPREAD,
    column_norms,
    equilibrated,
    equilibration_scales,
    norms_are_estimated,
    unscaled,
)

__all__ = ["RecoveryEstimator", "check_validation_fraction", "holdout_split", "kfold_splits"]

_NO_OVERFIT_RTOL = 1e-6
#: A rise of the held-out error above its best by less than this fraction of the best is no
#: sign of overfitting: it is below the statistical error of any held-out estimate (relative
#: standard error sqrt(2 / m_val)), and of the order of the path's own error (loose
#: integrator tolerances, interpolation between steps). Overfitting noise raises it by
#: about the noise variance, i.e. by a multiple of the best.
_SIGNIFICANT_RISE = 1e-2
_SPARSE = ("csr", "csc", "coo")
#: stop reasons of a run to the limit, checked by RecoveryEstimator._check_optimality
_LIMIT_REASONS = (StopReason.CONVERGED, StopReason.STAGNATED, StopReason.MAX_ITER,
                  StopReason.TIME_LIMIT, StopReason.STATIONARY)
_DEFAULT_TOL = 1e-6
_RESIDUAL_SLACK = 100.0
_LEAST_SQUARES_RTOL = 1e-4


def _is_operator_input(A) -> bool:
    """Whether ``A`` takes the Operator path (operators, LinearOperators, 3-D stacks)."""
    if isinstance(A, Operator | LinearOperator) or is_operator_like(A):
        return True
    if not (isinstance(A, numbers.Number | str | bytes) or hasattr(A, "__array__")
            or hasattr(A, "__len__")):
        return True  # neither an operator nor array-like: as_operator says what is needed
    if sp.issparse(A):
        return False
    if isinstance(A, list | tuple):
        try:
            return np.ndim(A) == 3
        except ValueError:  # ragged nested lists: validate_data gives the error
            return False
    return getattr(A, "ndim", None) == 3  # array-likes without ndim go to validate_data


def _validated_operator(X) -> Operator:
    """The operator of data that ``validate_data`` has checked (finite float64): a dense
    array is not scanned for finite entries a second time."""
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return DenseOperator.from_finite(X)
    return as_operator(X)


def _log2_norm(norm, data) -> float:
    """``log2`` of a norm that may overflow: ``norm()`` once, and if it is not finite, the
    norm of ``data`` scaled down by ``2^-600`` (an ``Operator``'s ``scaled`` or an array)."""
    value = norm()
    if np.isfinite(value):
        return float(np.log2(value)) if value > 0 else -np.inf
    small = data.scaled(2.0**-600) if isinstance(data, Operator) else data * 2.0**-600
    value = small.frobenius_norm() if isinstance(data, Operator) else np.linalg.norm(small)
    return float(np.log2(value)) + 600.0


def _as_input(signal: np.ndarray, input_shape: tuple) -> np.ndarray:
    """``signal`` reshaped to ``input_shape`` plus its trailing (MMV column) axes, e.g. a
    matrix fitted on a 3-D stack and predicted with the flattened ``(m, n1 n2)`` matrix."""
    if signal.shape[:len(input_shape)] == input_shape:
        return signal
    n, k, size = prod(input_shape), 0, 1
    while size < n and k < signal.ndim:
        size *= signal.shape[k]
        k += 1
    return signal.reshape(input_shape + signal.shape[k:])


def _criterion_in_units(criterion: Validation, a: float, s: float):
    """A fresh copy of a user's criterion for the data normalized by ``(a, s)`` and the
    factor that turns its errors back into the data's units."""
    criterion = copy.deepcopy(criterion)
    if a == 1 and s == 1:
        return criterion, 1.0
    if isinstance(criterion, Oracle):  # x' = (a / s) x
        criterion.truth = np.asarray(criterion.truth) * (a / s)
        return criterion, (s / a) ** 2
    criterion.operator = as_operator(criterion.operator).scaled(1 / a)
    criterion.y = np.asarray(criterion.y, dtype=float) / s
    return criterion, s**2


def _criterion_on_columns(criterion: Validation, d) -> None:
    """Make ``criterion`` read the solver's ``z = D x`` as ``x`` (equilibrated columns), so
    that a user's held-out operator or Oracle truth keeps its meaning."""
    if d is not None:
        error = criterion.error
        criterion.error = lambda z: error(unscaled(np.asarray(z), d))


def _held_out_record(result):
    """``(curve, best_iteration, best_time)`` of a validated path, from ``result.info`` (every
    solver returns its held-out curve there and leaves the caller's ``Validation`` as it was);
    an empty curve for a solver that made no check."""
    info = result.info
    return (np.asarray(info.get("validation_curve", ()), dtype=float).reshape(-1, 3),
            info.get("best_iteration", 0), info.get("best_time", 0.0))


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


def _mean_curve(curves, geometric: bool = False) -> np.ndarray:
    """Mean of held-out curves ``(iteration, clock, error)`` (``geometric``: of their logs).

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
    values = np.array([np.interp(grid, c[:, 1], c[:, 2]) for c in curves])
    if geometric:
        with np.errstate(divide="ignore"):
            mean = np.exp(np.mean(np.log(values), axis=0))
    else:
        mean = np.mean(values, axis=0)
    return np.column_stack([np.full(grid.size, np.nan), grid, mean])


def _overfitting_seen(curve) -> bool:
    """Whether a held-out curve ``(iteration, clock, error)`` shows overfitting: its end
    significantly above its best.

    A rise of less than ``_SIGNIFICANT_RISE`` of the best (or ``_NO_OVERFIT_RTOL`` of the
    fall, for a best at round-off level) is not (noiseless data, or too short a path): the
    refit then runs to its own stopping rule. Overfitting noise, even at 40 dB, raises the
    held-out error by about the noise variance, a multiple of the best.
    """
    errors = np.asarray(curve, dtype=float)[:, 2]
    best = float(errors.min())
    allowed = max(_NO_OVERFIT_RTOL * (errors[0] - best), _SIGNIFICANT_RISE * best)
    return bool(errors[-1] > best + allowed)


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

    #: allowed dimensions of ``y`` (2 for multiple measurement vectors: multi-output, which
    #: also takes a 1-D ``y`` as one column)
    _y_ndim: int | tuple[int, ...] = 1
    #: whether ``fit`` takes scipy sparse matrices (as a ``ScipyOperator``)
    _accepts_sparse: bool = True
    #: ``coef_`` is the transpose of the signal (scikit-learn's multi-output ``(L, n)``)
    _coef_transposed: bool = False
    #: normalize the data before solving (see :meth:`_data_scales`); off for methods whose
    #: parameters carry the units of the data (penalties), so that they keep their meaning
    _rescale_data: bool = True
    #: the normalization scales are powers of ``2**_scale_quantum_log2`` (see _data_scales)
    _scale_quantum_log2: int = 8
    #: solve on equilibrated columns when their norms spread over more than
    #: ``column_spread_limit`` (see :meth:`_equilibration`); set by the estimators whose
    #: structure is a pattern of entries of a vector signal (sparse, group-sparse, row-sparse)
    _equilibrate_columns: bool = False
    #: scale a dense design's columns inside its products, copying ``A D^{-1}`` only when a
    #: solver needs the matrix (``_equilibration.ColumnScaledMatrix``)
    _lazy_equilibration: bool = False
    #: Column norms of ``A`` spreading over more than this factor (max / min over the nonzero
    #: columns) are equilibrated by the estimators that support it (see :meth:`_equilibration`
    #: and docs/scaling.md). ``1.0``, the default: whenever they are not all equal. A
    #: class-level setting, like ``validation_*``: set it on an instance (``np.inf``: always
    #: use ``A`` as given, the papers' flows).
    column_spread_limit: float = 1.0
    #: parameters that, when given as a number (or a StepPolicy), carry the units of the data
    #: and switch the normalization off
    _absolute_params: tuple[str, ...] = ("step", "step_u", "step_v")
    #: run to its limit, the method solves ``A x = y`` (or least squares): checked after the
    #: fit (:meth:`_check_optimality`)
    _limit_interpolates: bool = True
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
    #: How the K folds' held-out errors are averaged at each time: ``"arithmetic"`` or
    #: ``"geometric"`` (mean of the logs: one fold with a few large held-out residuals, e.g.
    #: a heavy-tailed small fold, does not decide the time alone).
    validation_mean: str = "arithmetic"
    #: When the held-out error never rose (no overfitting seen), the refit runs to the
    #: solver's own stopping rule (the limit). With a number ``b`` it gets at most ``b`` times
    #: the (median) path's iterations and must converge (or stagnate) within them; otherwise
    #: the refit stops at the chosen time instead (for solvers whose limit on noisy data is
    #: far slower to reach than the paths).
    validation_limit_budget: float | None = None
    #: Exact data need no stopping time: before the K paths, the limit of the first fold's
    #: training rows (:meth:`_quick_limit`, only where the estimator has a fast solver for
    #: it) predicts that fold's held-out rows; within this relative residual the limit on
    #: all measurements is returned without the paths (no path point can predict them
    #: meaningfully better, and on clean data the paths end at the limit anyway). None: off.
    validation_exact_rtol: float | None = None
    #: How the refit on all measurements stops: at the chosen solver ``"time"``, or when its
    #: residual falls to the path's training residual at the chosen iterate (``"residual"``:
    #: for models whose escape from a small init is abrupt, so that a few percent of timing
    #: difference between the path and the refit matters).
    validation_refit: str = "time"
    #: Show the solvers' progress bars during ``fit`` (set on an instance; see also
    #: :func:`overparam.show_progress` for every fit in a block).
    progress: bool = False
    #: The allowed values of each ``__init__`` parameter (scikit-learn's mechanism, see
    #: :mod:`overparam.estimators._constraints`), validated once at the start of ``fit``.
    #: Each subclass declares all of its parameters; one that declares none still has the
    #: shared ones (stopping rule, budget, seed) checked.
    _parameter_constraints: ClassVar[dict] = shared_constraints()
    #: Parameters whose default None only stands for "not given" but that ``fit`` needs:
    #: name -> what to give.
    _required_params: ClassVar[dict[str, str]] = {}

    def fit(self, A, y):
        """Recover the signal.

        Parameters
        ----------
        A : array-like or sparse matrix of shape (m, n), ndarray of shape (m, n1, n2), \
LinearOperator or Operator
            Measurement operator. A matrix (also a pandas DataFrame or a scipy sparse
            matrix) goes through :func:`sklearn.utils.validation.validate_data` (sets
            ``n_features_in_`` and, for a DataFrame, ``feature_names_in_``); a 3-D stack of
            sensing matrices, a ``LinearOperator`` or an overparam ``Operator`` is used as an
            operator.
        y : array-like of shape (m,) (or (m, L) for multiple measurement vectors)
            Measurements. Single-output estimators also take ``(m, 1)`` (with scikit-learn's
            ``DataConversionWarning``); multi-output ones also take ``(m,)`` and then return a
            ``coef_`` of shape ``(n,)``.

        Returns
        -------
        self

        Notes
        -----
        Degenerate data: ``y = 0`` gives ``coef_ = 0`` (exact for every method here) and an
        all-zero ``A`` gives ``coef_ = 0``, with a
        :class:`~overparam.stopping.DegenerateInputWarning` and
        ``stop_reason_ = "inconsistent"`` when ``y`` is not zero (every ``x`` fits equally:
        0 is the minimum-norm least-squares point). Estimators that run to a limit which
        solves ``A x = y`` (or least squares) check it afterwards: see :meth:`_check_optimality`.
        The data are normalized by powers of two before solving (see :meth:`_data_scales`).
        Sparse, group- and row-sparse estimators solve on the columns of ``A`` scaled to unit
        norm whenever their norms differ (``column_spread_limit``): see :meth:`_equilibration`.
        """
        if self.progress and not progress_shown():
            with show_progress():
                return self.fit(A, y)
        self._validate_params()  # _parameter_constraints, once per fit, before the data
        operator, y = self._validate_fit_data(A, y)
        self._check_params(operator, y)
        one_column = self._multi_output and y.ndim == 1
        result = self._fit_operator(operator, y[:, None] if one_column else y)
        if one_column:
            result.coef = result.coef[..., 0]
        self.result_ = result
        self.coef_ = result.coef.T if self._coef_transposed else result.coef
        self.n_iter_ = result.n_iter
        self.stop_reason_ = result.stop_reason
        self.fit_time_ = result.wall_time
        return self

    # -- input validation (scikit-learn conventions) ----------------------------------------
    def _validate_params(self) -> None:
        """scikit-learn's check of ``_parameter_constraints``, and that the parameters of
        ``_required_params`` are given (raises ``InvalidParameterError``)."""
        super()._validate_params()
        for name, what in self._required_params.items():
            if getattr(self, name) is None:
                raise InvalidParameterError(f"The {name!r} parameter of {type(self).__name__} "
                                            f"is required: {what}. Got None instead.")

    def _check_params(self, operator, y) -> None:
        """What ``_parameter_constraints`` cannot say, checked once at the start of ``fit``
        (after the constraints and the data's own checks, before any solver): combinations
        of parameters, and parameters against the data (e.g. groups against the number of
        features). Subclasses extend it (calling ``super()``)."""
        if getattr(self, "early_stopping", None) == "discrepancy" \
                and getattr(self, "noise_level", None) is None:
            raise ValueError("early_stopping='discrepancy' needs noise_level (the noise "
                             "standard deviation per measurement)")

    @property
    def _multi_output(self) -> bool:
        return 2 in ((self._y_ndim,) if isinstance(self._y_ndim, int) else self._y_ndim)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accepts_sparse
        tags.target_tags.multi_output = self._multi_output
        tags.target_tags.single_output = True
        return tags

    def _validate_fit_data(self, A, y):
        """``(operator, y)``: scikit-learn's ``validate_data`` for matrices, the Operator path
        (:func:`~overparam.operators.check_measurements`) for operators and 3-D stacks."""
        if y is None:  # scikit-learn's wording (check_requires_y_none)
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None")
        if _is_operator_input(A):
            operator, y = check_measurements(A, y, y_ndim=(1, 2))
            if not self._multi_output:
                y = column_or_1d(y, warn=True)
            self.n_features_in_ = operator.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return operator, y
        X, y = validate_data(self, A, y, accept_sparse=_SPARSE if self._accepts_sparse else False,
                             dtype=np.float64, y_numeric=True, multi_output=self._multi_output)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1- or 2-dimensional, got shape {y.shape}")
        return _validated_operator(X), y

    def _validate_predict_operator(self, A):
        if _is_operator_input(A):
            operator = as_operator(A)
            expected = getattr(self, "n_features_in_", operator.shape[1])
            if operator.shape[1] != expected:
                raise ValueError(f"A has {operator.shape[1]} features, but "
                                 f"{type(self).__name__} is expecting {expected} features as "
                                 "input.")
            return operator
        return _validated_operator(validate_data(self, A, reset=False, dtype=np.float64,
                                                 accept_sparse=_SPARSE if self._accepts_sparse
                                                 else False))

    # -- the fit on validated data ------------------------------------------------------------
    def _fit_operator(self, operator, y):
        """Degenerate cases, normalization, the stopping rule, and the optimality check."""
        rule = getattr(self, "early_stopping", None)
        log_a = _log2_norm(operator.frobenius_norm, operator) - 0.5 * np.log2(operator.shape[1])
        if log_a == -np.inf or not np.any(y):
            return self._trivial_result(operator, y, zero_operator=log_a == -np.inf)
        a, s = self._data_scales(log_a, y)
        op_n = operator if a == 1 else operator.scaled(1 / a)
        y_n = y if s == 1 else y / s
        d, norms = self._equilibration(op_n)
        self._column_scales = d
        if d is not None:
            op_n = equilibrated(op_n, d, lazy=self._lazy_equilibration, norms=norms)
        result = self._fit_rule(op_n, y_n, rule, a, s)
        if not isinstance(rule, Validation):  # a criterion returns its best iterate instead
            self._check_optimality(op_n, y_n, result)
        if d is not None:
            result.coef = unscaled(result.coef, d)
            result.info["column_scales"] = d
        if s != a:
            result.coef = result.coef * (s / a)
        result.info["data_scales"] = (a, s)
        return result

    def _data_scales(self, log_a, y) -> tuple[float, float]:
        """Powers of ``Q = 2**_scale_quantum_log2`` ``(a, s)``: the fit solves
        ``(A / a) x' = y / s`` and returns ``x = (s / a) x'``.

        ``a`` is the power of ``Q`` nearest (in log scale) to the column RMS
        ``||A||_F / sqrt(n)``, and ``s = a q`` with ``q`` the power of ``Q`` nearest to the
        signal scale ``||y||_F / (sqrt(L) ||A||_F / sqrt(n))`` (about ``||x||`` per
        column), so that the normalized signal ``x' = x / q`` is of unit scale. A fit of
        ``(Q^i A, Q^j y)`` equals ``Q^(j - i)`` times the fit of ``(A, y)`` exactly (the
        scaling is exact in floating point), other factors are reduced to within ``sqrt(Q)``
        of unit scale, and extreme scales (``y`` of 1e150, an ``A`` of 1e-200) cannot
        overflow or underflow inside a solver.

        Why quanta of ``Q = 256`` and not exact normalization: columns of ``A`` and signals
        within ``[1/16, 16]`` of unit scale are left untouched, so that the papers' settings
        keep the meaning of absolute sizes such as ``init_scale``, and the measured results
        of the experiments stand. A subclass may set ``_scale_quantum_log2 = 1`` for
        equivariance to within a factor ``sqrt(2)``. Estimators whose parameters carry the
        units of the data (a numeric step, a penalty) are not normalized: ``(1, 1)``.
        """
        if not self._rescalable():
            return 1.0, 1.0
        n_columns = y.shape[1] if y.ndim == 2 else 1
        log_signal = _log2_norm(lambda: np.linalg.norm(y), y) - 0.5 * np.log2(n_columns) - log_a
        q = self._scale_quantum_log2
        a = 2.0 ** (q * round(log_a / q))
        return a, a * 2.0 ** (q * round(log_signal / q))

    def _equilibration(self, operator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(d, norms)``: column scales ``d`` (``x = D^{-1} z``) when the column norms differ,
        else None, and the column norms computed for the decision (None where none were).

        The implicit bias of a sparse, group- or row-sparse factorization depends on the
        scale of each column of ``A``: the flow favours large columns. Already half of the
        columns 3 times the others makes the defaults miss the truth and stop far from a fit
        (docs/scaling.md). When the nonzero column norms ``||a_j||`` spread over more than
        ``column_spread_limit`` (max / min; 1 by default: whenever they differ), the fit
        solves for ``z = D x`` on ``A D^{-1}``, ``d_j`` the norm of column ``j`` (unit
        columns; zero columns untouched), and returns ``x = D^{-1} z``: the standardized
        problem, e.g. close to ``min ||D x||_1`` (``sum_l ||D_l x_l||`` for groups,
        ``sum_j d_j ||x_j||`` for the shared columns of MMV) instead of ``min ||x||_1``, so the
        answer does not depend on the units of each column. ``result_.params`` and
        ``init_scale_`` refer to ``z``; ``result_.info["column_scales"]`` holds ``d``.
        Computed on the normalized data (see :meth:`_data_scales`), so the fit stays exactly
        equivariant to powers of 256. Designs whose columns have exactly equal norms (+-1)
        are used as given.

        Spreads over ``WARNING_SPREAD`` (1e3: columns in different units) are reported with
        a :class:`~overparam.stopping.DegenerateInputWarning`. Norms estimated from random
        probes (matrix-free operators of more than 4 million entries) are used only when
        they spread over ``ESTIMATED_SPREAD_LIMIT`` (16), the resolution of the estimate. Off
        when a step is given as a number (it carries the units of ``A``) and for signals that
        are not vectors. Residual norms are unchanged, so an absolute residual tolerance
        keeps its meaning.
        """
        if not self._equilibrate_columns or self._steps_in_data_units() \
                or len(operator.input_shape) != 1:
            return None, None
        limit = float(self.column_spread_limit)
        if not limit < np.inf:
            return None, None
        if norms_are_estimated(operator):
            limit = max(limit, ESTIMATED_SPREAD_LIMIT)
        norms = column_norms(operator)
        d, spread = equilibration_scales(norms, limit)
        if d is not None and spread > WARNING_SPREAD:
            warnings.warn(
                f"{type(self).__name__}: the column norms of A spread over a factor "
                f"{spread:.3g} (columns in different units?): solving on the columns scaled to "
                "equal norm (z = D x on A D^-1, D the column norms) and returning x = D^-1 z; "
                "the implicit bias is that of the standardized problem, not that of A as given "
                "(column_spread_limit = np.inf; docs/scaling.md)", DegenerateInputWarning,
                stacklevel=4)
        return d, norms

    def _rescalable(self) -> bool:
        return self._rescale_data and not self._steps_in_data_units()

    def _steps_in_data_units(self) -> bool:
        """Whether a parameter of ``_absolute_params`` (a step) is given as a number."""
        for name in self._absolute_params:
            value = getattr(self, name, None)
            if isinstance(value, StepPolicy) or (isinstance(value, numbers.Real)
                                                 and not isinstance(value, bool)):
                return True
        return False

    def _trivial_result(self, operator, y, *, zero_operator):
        """``x = 0``: exact for ``y = 0``; for ``A = 0`` and ``y != 0`` every ``x`` is a
        least-squares point (0 the minimum-norm one) and nothing can be recovered."""
        reason, message = StopReason.CONVERGED, "y = 0: x = 0 fits exactly"
        if zero_operator and np.any(y):
            reason = StopReason.INCONSISTENT
            message = ("A is all zero, so A x = 0 for every x and y != 0 cannot be fitted: "
                       "returning x = 0, the minimum-norm least-squares point")
            warnings.warn(f"{type(self).__name__}: {message}", DegenerateInputWarning,
                          stacklevel=4)
        coef = np.zeros(tuple(operator.input_shape) + y.shape[1:])
        return SolverResult(coef=coef, params=(), n_iter=0, wall_time=0.0, stop_reason=reason,
                            info={"degenerate": message, "clock": "iterations", "time": 0.0})

    def _fit_rule(self, operator, y, rule, a, s):
        """Run the stopping rule on normalized data; report errors in the data's units."""
        if isinstance(rule, Validation):  # a custom criterion along the path, e.g. an Oracle
            criterion, factor = _criterion_in_units(rule, a, s)  # fresh state each fit
            _criterion_on_columns(criterion, getattr(self, "_column_scales", None))
            result = self._solve(operator, y, PathControl(validation=criterion))
            curve, _, best_time = _held_out_record(result)
            result.info.update(validation_curve=curve, chosen_time=best_time)
        elif rule == "validation":
            result, factor = self._fit_validated(operator, y), s**2
        elif rule == "discrepancy":
            control = PathControl(discrepancy=float(self.noise_level) / s * np.sqrt(y.size))
            result, factor = self._solve(operator, y, control), 1.0
        else:
            result, factor = self._solve(operator, y, PathControl()), 1.0
        info = result.info
        if factor != 1:
            if isinstance(info.get("validation_curve"), np.ndarray) and info[
                    "validation_curve"].size:
                info["validation_curve"] = info["validation_curve"] * [1, 1, factor]
            if info.get("validation_error") is not None:
                info["validation_error"] = info["validation_error"] * factor
            if info.get("refit_residual") is not None:
                info["refit_residual"] = info["refit_residual"] * s
        return result

    def _check_optimality(self, operator, y, result):
        """Check a run to the limit of a method whose limit solves ``A x = y``.

        The estimate passes if ``||A x - y|| <= 100 tol ||y||`` (it interpolates; ``tol`` the
        estimator's, default 1e-6) or if ``||A^T r|| <= 1e-4 ||A||_F ||r||`` (a least-squares
        point: ``A x = y`` has no solution). Otherwise a ``ConvergenceWarning`` gives both
        numbers, and a solver's claim ``"converged"`` becomes ``"not_optimal"``. Runs stopped
        on purpose on the path (held-out error, discrepancy, a stop time) are not checked.
        Both numbers are in ``result_.info`` (``relative_residual``, ``relative_gradient``).
        """
        if not self._limit_interpolates or result.stop_reason not in _LIMIT_REASONS:
            return
        r = operator.forward(result.coef) - y
        r_norm = float(np.linalg.norm(r))
        rel = r_norm / float(np.linalg.norm(y))
        grad = float(np.linalg.norm(operator.adjoint(r)))
        gamma = grad / (operator.frobenius_norm() * r_norm) if r_norm > 0 else 0.0
        result.info.update(relative_residual=rel, relative_gradient=gamma)
        tol = getattr(self, "tol", None)
        tol = tol if isinstance(tol, numbers.Real) and tol > 0 else _DEFAULT_TOL
        if rel <= _RESIDUAL_SLACK * tol or gamma <= _LEAST_SQUARES_RTOL:
            return
        reason = result.stop_reason
        if reason == StopReason.CONVERGED:
            result.stop_reason = StopReason.NOT_OPTIMAL
        warnings.warn(
            f"{type(self).__name__} stopped ({reason.value}) at relative residual {rel:.3g} "
            f"and relative gradient ||A^T r|| / (||A||_F ||r||) = {gamma:.3g}: the estimate "
            "neither fits y nor is a least-squares point. Badly scaled columns of A or too "
            "small an iteration budget (max_iter) are the usual causes.",
            ConvergenceWarning, stacklevel=4)

    def _fit_validated(self, operator, y):
        # Deterministic by default: random_state=None holds out the same rows every time.
        seed = getattr(self, "random_state", None)
        seed = 0 if seed is None else seed
        folds = int(self.validation_folds)
        if operator.n_measurements < max(2, folds):
            warnings.warn(f"{type(self).__name__}: {operator.n_measurements} measurement(s) "
                          f"are too few to hold out ({max(2, folds)} needed); running to the "
                          "limit (early_stopping=None)", UserWarning, stacklevel=4)
            return self._solve(operator, y, PathControl())
        if folds > 1:
            splits = kfold_splits(operator.n_measurements, folds, seed)
        else:
            splits = [holdout_split(operator.n_measurements,
                                    getattr(self, "validation_fraction", 0.2), seed)]
        exact = self._limit_predicts_held_out(operator, y, splits[0], folds)
        if exact is not None:
            return exact
        validations = [Validation(operator.rows(held), y[held], every=self.validation_every,
                                  patience=self.validation_patience,
                                  horizon=self.validation_horizon,
                                  min_improvement=self.validation_min_improvement)
                       for _, held in splits]
        problems = [(operator.rows(train), y[train], PathControl(validation=v))
                    for (train, _), v in zip(splits, validations, strict=True)]
        paths = self._solve_paths(problems)
        records = [_held_out_record(p) for p in paths]
        curves = [curve for curve, _, _ in records]
        curve = curves[0] if folds == 1 else _mean_curve(
            curves, geometric=self.validation_mean == "geometric")
        level = chosen = chosen_iteration = None
        still_improving = True
        if curve.shape[0]:
            best_index = int(np.argmin(curve[:, 2]))
            best, drop = curve[best_index, 2], curve[0, 2] - curve[best_index, 2]
            still_improving = not _overfitting_seen(curve)
            near = np.flatnonzero(curve[:, 2] <= best + self.validation_rtol * drop)
            chosen_index = int(near[-1]) if self.validation_rtol > 0 else best_index
            chosen, chosen_iteration = float(curve[chosen_index, 1]), curve[chosen_index, 0]
        limit = None
        if still_improving and self.validation_limit_budget is not None \
                and not self._limit_ruled_out(problems, paths):
            # Try the limit on a budget: it converges fast on noiseless data, but creeps for
            # long when it has to fit noise that the paths did not show (held-out error flat).
            budget = self.validation_limit_budget * float(np.median([p.n_iter for p in paths]))
            limit = self._solve(operator, y, PathControl(max_iter=budget))
            if limit.stop_reason not in (StopReason.CONVERGED, StopReason.STAGNATED):
                still_improving = False
        elif still_improving and self.validation_limit_budget is not None:
            still_improving = False  # the limit is ruled out: the refit stops at the time
        if still_improving:
            control = None if limit is not None else PathControl()  # the limit, or run to it
        elif self.validation_refit == "residual" and folds == 1:
            train, _ = splits[0]
            train_op, state = operator.rows(train), paths[0].coef
            if chosen_iteration != records[0][1]:
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

    def _limit_predicts_held_out(self, operator, y, split, folds):
        """The limit on all measurements when the first fold's limit predicts its held-out
        rows to ``validation_exact_rtol`` (relative residual), else None (the paths decide).
        """
        rtol = self.validation_exact_rtol
        if rtol is None:
            return None
        train, held = split
        fold = self._quick_limit(operator.rows(train), y[train])
        if fold is None or fold.stop_reason != StopReason.CONVERGED:
            return None
        y_held = y[held]
        miss = float(np.linalg.norm(operator.rows(held).forward(fold.coef) - y_held)) / max(
            float(np.linalg.norm(y_held)), 1e-300)  # relative
        if not miss <= rtol:
            return None
        result = self._quick_limit(operator, y)
        if result is None or result.stop_reason != StopReason.CONVERGED:
            return None
        result.wall_time += fold.wall_time
        result.info.update(
            chosen_time=None, chosen_iteration_on_path=None, path_iterations=[],
            validation_error=None, validation_curve=np.zeros((0, 3)), validation_folds=folds,
            refit="limit", held_out_limit_residual=miss)
        return result

    def _quick_limit(self, operator, y):
        """The limit of the flow by a fast solver (for :attr:`validation_exact_rtol`), or
        None where the estimator has none or it failed. None by default."""
        return None

    def _limit_ruled_out(self, problems, paths) -> bool:
        """Whether the validation paths show that the limit tried on a budget
        (``validation_limit_budget``) cannot converge within it, so that the try is skipped
        and the refit stops at the chosen time. ``problems`` and ``paths`` as in
        :meth:`_solve_paths`. Never, by default."""
        return False

    def _solve_paths(self, problems):
        """Solve ``[(operator, y, control), ...]``: the validation paths (one per fold).

        One :meth:`_solve` call after another; estimators whose solver batches problems
        override this to run them together.
        """
        return [self._solve(operator, y, control) for operator, y, control in problems]

    @property
    def signal_(self) -> np.ndarray:
        """The recovered signal in the operator's input shape (plus the MMV column axis):
        ``coef_``, or its transpose where ``coef_`` follows scikit-learn's multi-output
        orientation ``(L, n)`` (:class:`~overparam.baselines.MultiTaskLassoRegressor`)."""
        check_is_fitted(self, "coef_")
        return self.coef_.T if self._coef_transposed else self.coef_

    def predict(self, A):
        """Measurements ``A coef_`` predicted by the recovered signal.

        Parameters
        ----------
        A : array-like, sparse matrix, 3-D stack, LinearOperator or Operator
            As in :meth:`fit`, with the same number of features.

        Returns
        -------
        ndarray of shape (m,) or (m, L)
        """
        check_is_fitted(self, "coef_")
        operator = self._validate_predict_operator(A)
        return operator.forward(_as_input(self.signal_, tuple(operator.input_shape)))

    def _set_init_params(self, arguments: dict) -> None:
        """Store the arguments of ``__init__`` as attributes, unchanged (scikit-learn's rule:
        no logic in ``__init__``): ``self._set_init_params(locals())`` in place of one
        assignment per parameter."""
        for name, value in arguments.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _stopping_rule(self, control: PathControl, **settings) -> StoppingRule:
        """The solver's :class:`~overparam.stopping.StoppingRule`: the parameters ``max_iter``
        and ``tol`` (and ``settings``), with ``control``'s stop time, discrepancy and budget."""
        return control.apply(StoppingRule(max_iter=self.max_iter, tol=self.tol, **settings))

    def _solve(self, operator, y, control: PathControl):  # pragma: no cover - abstract
        raise NotImplementedError
