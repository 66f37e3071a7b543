"""Classical methods that users compare implicit regularization with."""

from .group import GroupLassoRegressor, GroupPrimalDualRegressor
from .least_squares import MinNormRegressor
from .low_rank import NuclearNormCV, NuclearNormRegressor, PSDFactorizedRegressor
from .sparse import (
    BasisPursuit,
    LassoCVRegressor,
    LassoRegressor,
    OMPRegressor,
    PositiveBasisPursuit,
)

__all__ = ["MinNormRegressor"]
__all__ += ["NuclearNormCV", "NuclearNormRegressor", "PSDFactorizedRegressor"]
__all__ += ["BasisPursuit", "LassoCVRegressor", "LassoRegressor", "OMPRegressor",
            "PositiveBasisPursuit"]
__all__ += ["GroupLassoRegressor", "GroupPrimalDualRegressor"]
from .mmv import (  # noqa: E402
    MFOCUSSRegressor,
    MSPRegressor,
    MultiTaskLassoCVRegressor,
    MultiTaskLassoRegressor,
    SOMPRegressor,
)

__all__ += ["MFOCUSSRegressor", "MSPRegressor", "MultiTaskLassoCVRegressor",
            "MultiTaskLassoRegressor", "SOMPRegressor"]
