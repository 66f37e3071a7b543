"""Matrix sensing: ``m`` sensing matrices ``A_i`` and measurements ``<A_i, X>``."""

from __future__ import annotations

import copy

import numpy as np

from .._validation import check_array
from .base import Operator

__all__ = ["MatrixSensingOperator"]


class MatrixSensingOperator(Operator):
    """Measure an ``(n1, n2)`` matrix by ``y_i = scale * <A_i, X>`` (Frobenius inner product).

    Parameters
    ----------
    sensing_matrices : array_like of shape (m, n1, n2)
        The stack of ``A_i``.
    scale : float, default=1.0
        A factor applied to every measurement (``1/sqrt(m)`` gives the normalized Gaussian
        ensemble of the matrix-sensing literature).
    """

    def __init__(self, sensing_matrices, scale: float = 1.0):
        self.sensing_matrices = check_array(sensing_matrices, "sensing_matrices", ndim=3,
                                            allow_empty=True)
        m, n1, n2 = self.sensing_matrices.shape
        if n1 == 0 or n2 == 0:
            raise ValueError(f"sensing matrices are empty (shape {self.sensing_matrices.shape})")
        self.scale = float(scale)
        self.n_measurements = m
        self.input_shape = (n1, n2)

    def forward(self, X):
        X = np.asarray(X)
        if X.shape != self.input_shape:
            raise ValueError(f"expected a matrix of shape {self.input_shape}, got {X.shape}")
        # the products np.tensordot forms, without its per-call overhead (iterative solvers
        # call these on small problems at every step)
        return self.scale * (self.sensing_matrices.reshape(self.n_measurements, -1)
                             @ X.reshape(-1))

    def adjoint(self, z):
        z = np.asarray(z)
        if z.ndim != 1:
            return self.scale * np.tensordot(z, self.sensing_matrices, axes=(0, 0))
        flat = self.sensing_matrices.reshape(self.n_measurements, -1)
        return self.scale * (z @ flat).reshape(self.input_shape)

    def rows(self, index):
        idx = np.atleast_1d(np.arange(self.n_measurements)[index])
        return MatrixSensingOperator(self.sensing_matrices[idx], scale=self.scale)

    def to_dense(self):
        return self.scale * self.sensing_matrices.reshape(self.n_measurements, -1)

    def frobenius_norm(self):
        return float(abs(self.scale) * np.linalg.norm(self.sensing_matrices))

    def scaled(self, factor):
        out = copy.copy(self)  # shares the stored arrays
        out.scale = self.scale * float(factor)
        return out
