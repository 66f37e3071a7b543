"""scikit-learn style estimators, one per structure: ``fit(A, y)`` sets ``coef_``."""

from .base import RecoveryEstimator
from .sparse import HadamardRegressor

__all__ = ["HadamardRegressor", "RecoveryEstimator"]
