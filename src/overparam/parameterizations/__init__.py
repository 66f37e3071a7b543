"""Overparameterized factorizations: ``init``, ``signal`` and a hand-written ``vjp``."""

from .base import Parameterization, Params
from .factorized import Factorized
from .group import GroupHadamard, as_group_labels
from .hadamard import DiagonalLinearNetwork, Hadamard
from .identity import Identity
from .row import RowHadamard

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
