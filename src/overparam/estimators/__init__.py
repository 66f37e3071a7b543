"""scikit-learn style estimators, one per structure: ``fit(A, y)`` sets ``coef_``."""

from .base import RecoveryEstimator
from .generic import ParameterizedRegressor
from .group import GroupHadamardRegressor
from .low_rank import FactorizedRegressor
from .sparse import HadamardRegressor
from .spectral import DeepMatrixRegressor, SpectralNetworkRegressor

__all__ = ["HadamardRegressor", "ParameterizedRegressor", "RecoveryEstimator"]
__all__ += ["FactorizedRegressor"]
__all__ += ["DeepMatrixRegressor", "SpectralNetworkRegressor"]
__all__ += ["GroupHadamardRegressor"]
from .mmv import MMVRegressor  # noqa: E402

__all__ += ["MMVRegressor"]
