"""Forward models: ``forward``, ``adjoint``, shapes and an operator-norm estimate."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .aligned import AlignedSpectralOperator
from .base import Operator, RowSubset
from .gaussian import GaussianSensingOperator
from .matrix import DenseOperator, ScipyOperator
from .matrix_sensing import MatrixSensingOperator

__all__ = [
    "DenseOperator",
    "GaussianSensingOperator",
    "MatrixSensingOperator",
    "Operator",
    "RowSubset",
    "ScipyOperator",
    "as_operator",
]
__all__ += ["AlignedSpectralOperator"]


def as_operator(A) -> Operator:
    """Wrap ``A`` as an :class:`Operator`.

    Parameters
    ----------
    A : Operator, ndarray of shape (m, n), scipy sparse matrix or LinearOperator
        A 3-D array is read as a stack of sensing matrices (matrix sensing).
    """
    if isinstance(A, Operator):
        return A
    if isinstance(A, LinearOperator) or sp.issparse(A):
        return ScipyOperator(A)
    arr = np.asarray(A) if not isinstance(A, str | bytes) else A
    if isinstance(arr, np.ndarray) and arr.ndim == 3:
        return MatrixSensingOperator(arr)
    if isinstance(arr, np.ndarray) and arr.ndim != 2:
        raise ValueError(
            f"A must be a 2-D matrix (m, n), a 3-D stack of sensing matrices, a LinearOperator "
            f"or an Operator; got an array of shape {arr.shape}"
        )
    return DenseOperator(arr)
