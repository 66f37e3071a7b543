"""scikit-learn style estimators, one per structure: ``fit(A, y)`` sets ``coef_``."""

from .base import RecoveryEstimator
from .group import GroupHadamardRegressor
from .low_rank import FactorizedRegressor
from .sparse import HadamardRegressor

__all__ = ["HadamardRegressor", "RecoveryEstimator"]
__all__ += ["FactorizedRegressor"]
__all__ += ["GroupHadamardRegressor"]
