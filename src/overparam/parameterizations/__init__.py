"""Overparameterized factorizations: ``init``, ``signal`` and a hand-written ``vjp``."""

from .base import Parameterization, Params
from .hadamard import Hadamard

__all__ = ["Hadamard", "Parameterization", "Params"]
