"""Classical methods that users compare implicit regularization with."""

from .least_squares import MinNormRegressor
from .low_rank import NuclearNormCV, NuclearNormRegressor, PSDFactorizedRegressor

__all__ = ["MinNormRegressor"]
__all__ += ["NuclearNormCV", "NuclearNormRegressor", "PSDFactorizedRegressor"]
