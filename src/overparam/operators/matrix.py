"""Operators given by a matrix: a dense array or a scipy ``LinearOperator``."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .._validation import check_array
from .base import Operator

__all__ = ["DenseOperator", "ScipyOperator"]


class DenseOperator(Operator):
    """A dense ``(m, n)`` measurement matrix.

    ``forward`` accepts ``(n,)`` or ``(n, L)`` (L signals sharing the operator, as in MMV).

    Parameters
    ----------
    A : array_like of shape (m, n)
    """

    def __init__(self, A):
        self._set_matrix(check_array(A, "A", ndim=2, allow_empty=True))

    @classmethod
    def from_finite(cls, matrix: np.ndarray) -> DenseOperator:
        """The operator of a 2-D float64 array already known to be finite (validated input,
        a row subset or a contraction of it), without a second pass over its entries."""
        op = cls.__new__(cls)
        op._set_matrix(matrix)
        return op

    def _set_matrix(self, matrix: np.ndarray) -> None:
        if matrix.shape[1] == 0:
            raise ValueError(f"A has no columns (shape {matrix.shape})")
        self.matrix = matrix
        self.n_measurements = matrix.shape[0]
        self.input_shape = (matrix.shape[1],)

    def forward(self, x):
        return self.matrix @ x

    def adjoint(self, z):
        return self.matrix.T @ z

    def rows(self, index):
        return DenseOperator.from_finite(
            self.matrix[np.atleast_1d(np.arange(self.n_measurements)[index])])

    def columns(self, index):
        return self.matrix[:, np.atleast_1d(index)]

    def to_dense(self):
        return self.matrix

    def norm_estimate(self):
        m, n = self.matrix.shape
        if min(m, n) <= 2000:
            return float(np.linalg.norm(self.matrix, 2))
        return super().norm_estimate()

    def frobenius_norm(self):
        return float(np.linalg.norm(self.matrix))

    def scaled(self, factor):
        factor = float(factor)
        if abs(factor) <= 1:  # a contraction of finite entries stays finite
            return DenseOperator.from_finite(self.matrix * factor)
        return DenseOperator(self.matrix * factor)


class ScipyOperator(Operator):
    """Any :class:`scipy.sparse.linalg.LinearOperator` (or sparse matrix) acting on vectors.

    ``forward`` accepts ``(n,)`` or ``(n, L)``; the latter uses ``matmat``.
    """

    block_forward = True

    def __init__(self, linop: LinearOperator):
        import scipy.sparse as sp
        from scipy.sparse.linalg import aslinearoperator

        #: the sparse matrix when one was given (exact norms, ``to_dense`` and row subsets)
        self.sparse = sp.csr_array(linop, dtype=np.float64) if sp.issparse(linop) else None
        self.linop = aslinearoperator(self.sparse if self.sparse is not None else linop)
        if np.iscomplexobj(np.empty(0, dtype=self.linop.dtype)):
            raise TypeError("complex LinearOperators are not supported")
        m, n = self.linop.shape
        if n == 0:
            raise ValueError(f"the LinearOperator has no columns (shape {self.linop.shape})")
        self.n_measurements = m
        self.input_shape = (n,)

    def forward(self, x):
        x = np.asarray(x)
        return self.linop.matvec(x) if x.ndim == 1 else self.linop.matmat(x)

    def adjoint(self, z):
        z = np.asarray(z)
        return self.linop.rmatvec(z) if z.ndim == 1 else self.linop.rmatmat(z)

    def as_linear_operator(self):
        return self.linop

    def columns(self, index):
        if self.sparse is None:
            return super().columns(index)
        return self.sparse[:, np.atleast_1d(index)].toarray()

    def rows(self, index):
        if self.sparse is None:
            return super().rows(index)
        return ScipyOperator(self.sparse[np.atleast_1d(np.arange(self.n_measurements)[index])])

    def to_dense(self):
        return self.sparse.toarray() if self.sparse is not None else super().to_dense()

    def frobenius_norm(self):
        if self.sparse is None:
            return super().frobenius_norm()
        return float(np.sqrt(np.sum(self.sparse.data ** 2)))

    def scaled(self, factor):
        if self.sparse is None:
            return super().scaled(factor)
        return ScipyOperator(self.sparse * float(factor))
