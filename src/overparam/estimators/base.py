"""scikit-learn style base class: ``fit(A, y)`` sets ``coef_`` and the solver's report."""

from __future__ import annotations

from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_measurements
from ..operators import as_operator

__all__ = ["RecoveryEstimator"]


class RecoveryEstimator(RegressorMixin, BaseEstimator):
    """Recover a signal ``x`` from measurements ``y = A x (+ noise)``.

    Subclasses implement ``_solve(operator, y) -> SolverResult``. After ``fit``:

    Attributes
    ----------
    coef_ : ndarray
        The recovered signal.
    result_ : SolverResult
        Full solver report (parameters, history, info).
    n_iter_ : int
    stop_reason_ : StopReason
    fit_time_ : float
        Seconds spent in the solver.
    """

    #: allowed dimensions of ``y`` (2 for multiple measurement vectors)
    _y_ndim: int | tuple[int, ...] = 1

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
        result = self._solve(operator, y)
        self.result_ = result
        self.coef_ = result.coef
        self.n_iter_ = result.n_iter
        self.stop_reason_ = result.stop_reason
        self.fit_time_ = result.wall_time
        return self

    def predict(self, A):
        """Measurements ``A coef_`` predicted by the recovered signal."""
        check_is_fitted(self, "coef_")
        return as_operator(A).forward(self.coef_)

    def _solve(self, operator, y):  # pragma: no cover - abstract
        raise NotImplementedError
