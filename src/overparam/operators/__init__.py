"""Forward models: ``forward``, ``adjoint``, shapes and an operator-norm estimate."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .._validation import check_array
from .base import Operator, RowSubset
from .diagonal import DiagonalScaledOperator
from .duck import duck_linear_operator, is_operator_like
from .gaussian import GaussianSensingOperator
from .low_rank import MatrixSensingOperator
from .matrix import DenseOperator, ScipyOperator
from .spectral import AlignedSpectralOperator
from .transforms import RandomizedDCTSensing, SubsampledDCT

__all__ = [
    "DenseOperator",
    "DiagonalScaledOperator",
    "GaussianSensingOperator",
    "MatrixSensingOperator",
    "Operator",
    "RandomizedDCTSensing",
    "RowSubset",
    "ScipyOperator",
    "SubsampledDCT",
    "as_operator",
    "check_measurements",
    "duck_linear_operator",
    "is_operator_like",
]
__all__ += ["AlignedSpectralOperator"]


def as_operator(A) -> Operator:
    """Wrap ``A`` as an :class:`Operator`.

    Parameters
    ----------
    A : Operator, ndarray of shape (m, n), scipy sparse matrix, LinearOperator or operator-like
        A 3-D array is read as a stack of sensing matrices (matrix sensing). Operator-like:
        any object with a 2-D ``shape`` and ``matvec``/``rmatvec`` methods, or with ``@`` and
        an adjoint ``.H`` (or transpose ``.T``), that is not an array (e.g. a PyLops operator),
        see :func:`is_operator_like`.

    Raises
    ------
    TypeError
        For an object that is none of these (e.g. a scalar or an arbitrary object).
    """
    if isinstance(A, Operator):
        return A
    if isinstance(A, LinearOperator) or sp.issparse(A):
        return ScipyOperator(A)
    if is_operator_like(A):
        return ScipyOperator(duck_linear_operator(A))
    arr = np.asarray(A) if not isinstance(A, str | bytes) else A
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.ndim == 0:
        raise TypeError(
            f"A must be a matrix, a LinearOperator, an Operator or an object with `shape` and "
            f"`matvec`/`rmatvec` (or `@` and `.H`/`.T`, e.g. a PyLops operator); got "
            f"{type(A).__name__}")
    if isinstance(arr, np.ndarray) and arr.ndim == 3:
        return MatrixSensingOperator(arr)
    if isinstance(arr, np.ndarray) and arr.ndim != 2:
        raise ValueError(
            f"A must be a 2-D matrix (m, n), a 3-D stack of sensing matrices, a LinearOperator "
            f"or an Operator; got an array of shape {arr.shape}"
        )
    return DenseOperator(arr)


def check_measurements(A, y, *, y_ndim: int | tuple[int, ...] = 1):
    """Validate a measurement operator and measurements; return ``(operator, y)``.

    Parameters
    ----------
    A : array_like, scipy.sparse.linalg.LinearOperator or Operator
        The forward model.
    y : array_like
        Measurements, shape ``(m,)`` (or ``(m, L)`` when ``y_ndim`` allows 2).
    y_ndim : int or tuple of int, default=1
        Allowed dimensions of ``y``.

    Returns
    -------
    operator : Operator
    y : ndarray of float64
    """
    op = as_operator(A)
    y = check_array(y, "y", ndim=y_ndim, allow_empty=True)
    if y.shape[0] == 0 or op.n_measurements == 0:
        raise ValueError("the number of measurements is zero: need at least one row in A and y")
    if y.size == 0:
        raise ValueError(f"y is empty (shape {y.shape})")
    if y.shape[0] != op.n_measurements:
        raise ValueError(
            f"A has {op.n_measurements} measurement rows but y has {y.shape[0]} entries "
            f"(A: {op.shape}, y: {y.shape})"
        )
    return op, y
