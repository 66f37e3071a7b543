"""Overparameterized factorizations: ``init``, ``signal`` and a hand-written ``vjp``."""

from .base import Parameterization, Params
from .deep_matrix import DeepMatrixFactorization
from .factorized import Factorized
from .group import GroupHadamard, as_group_labels
from .hadamard import DiagonalLinearNetwork, Hadamard
from .identity import Identity
from .row import RowHadamard
from .spectral import AlignedSpectralNetwork, DeepSpectralNetwork, SpectralNetwork

__all__ = [
    "DiagonalLinearNetwork",
    "Factorized",
    "Hadamard",
    "Identity",
    "Parameterization",
    "Params",
    "RowHadamard",
]
__all__ += ["GroupHadamard", "as_group_labels"]
__all__ += ["AlignedSpectralNetwork", "DeepMatrixFactorization", "DeepSpectralNetwork",
            "SpectralNetwork"]
