"""The aligned (quasi-commuting) matrix-sensing operator of the spectral-network paper."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from .._validation import check_array
from .base import Operator
from .matrix import DenseOperator

__all__ = ["AlignedSpectralOperator"]


# Bases orthogonal to this accuracy are used as given; up to _ACCEPT (float32 rounding, e.g.
# the authors' torch-generated Phi, Psi: ||Q^T Q - I|| about 1e-6) they are replaced by the
# nearest orthogonal matrix with a warning; beyond, they are not orthogonal bases at all.
_EXACT = 1e-8
_ACCEPT = 1e-4


def _check_orthogonal(Q, name: str) -> np.ndarray:
    Q = check_array(Q, name, ndim=2).astype(float)
    if Q.shape[0] != Q.shape[1]:
        raise ValueError(f"{name} must be a square orthogonal matrix, got shape {Q.shape}")
    n = Q.shape[0]
    err = np.linalg.norm(Q.T @ Q - np.eye(n))
    if err <= _EXACT * n:
        return Q
    if err > _ACCEPT * n:
        raise ValueError(f"{name} is not orthogonal (||Q^T Q - I|| = {err:.2e})")
    polar, _ = scipy.linalg.polar(Q)  # the nearest orthogonal matrix (Frobenius norm)
    warnings.warn(f"{name} is orthogonal only to ||Q^T Q - I|| = {err:.1e} (e.g. float32); "
                  "using the nearest orthogonal matrix (polar factor), which moves it by "
                  f"{np.linalg.norm(polar - Q):.1e}", UserWarning, stacklevel=3)
    return polar


class AlignedSpectralOperator(Operator):
    """Sensing matrices sharing their singular vectors: ``A_i = Phi diag(sigma_i) Psi^T``.

    Assumption 1 of Chu, Ghosh, Lam, Mukherjee, "Implicit regularization via spectral neural
    networks and non-linear matrix sensing": every ``A_i`` (``n1 x n2``) has the same left
    singular vectors ``Phi`` and right singular vectors ``Psi``, and a (rectangular) diagonal
    ``Abar_i`` whose diagonal is ``sigma_i`` (length ``r = min(n1, n2)``). A measurement is

        ``y_i = scale * <A_i, X> = scale * <sigma_i, diag(Phi^T X Psi)>``,

    so the operator only sees the diagonal of ``X`` in the ``(Phi, Psi)`` basis. Nothing is
    stored as an ``(m, n1, n2)`` stack: forward and adjoint cost ``O(n1 n2 r + m r)``.

    Parameters
    ----------
    left : ndarray of shape (n1, n1)
        Orthogonal ``Phi``.
    right : ndarray of shape (n2, n2)
        Orthogonal ``Psi``.
    diagonals : ndarray of shape (m, r)
        Row ``i`` is ``diag(Abar_i)`` (the paper's ``sigma^(i)``; ``B = diagonals.T``).
    scale : float, default=1.0
        Factor applied to every measurement.
    """

    def __init__(self, left, right, diagonals, scale: float = 1.0):
        self.left = _check_orthogonal(left, "left")
        self.right = _check_orthogonal(right, "right")
        n1, n2 = self.left.shape[0], self.right.shape[0]
        r = min(n1, n2)
        self.diagonals = check_array(diagonals, "diagonals", ndim=2)
        if self.diagonals.shape[1] != r:
            raise ValueError(f"diagonals must have min(n1, n2) = {r} columns, got shape "
                             f"{self.diagonals.shape}")
        self.scale = float(scale)
        self.n_measurements = self.diagonals.shape[0]
        self.input_shape = (n1, n2)
        self.rank = r

    # -- the diagonal (spectral) coordinates ---------------------------------------------
    def to_diagonal(self, X) -> np.ndarray:
        """``diag(Phi^T X Psi)``: the coordinates of ``X`` that the measurements see."""
        X = np.asarray(X, dtype=float)
        if X.shape != self.input_shape:
            raise ValueError(f"expected a matrix of shape {self.input_shape}, got {X.shape}")
        r = self.rank
        return np.einsum("ij,ik,kj->j", self.left[:, :r], X, self.right[:, :r])

    def from_diagonal(self, s) -> np.ndarray:
        """``Phi Diag(s) Psi^T``: singular vectors ``Phi, Psi``, diagonal ``s``."""
        s = np.asarray(s, dtype=float)
        r = self.rank
        return (self.left[:, :r] * s) @ self.right[:, :r].T

    def diagonal_operator(self) -> DenseOperator:
        """The ``(m, r)`` operator ``scale * B^T`` acting on diagonals: ``y = scale * B^T s``."""
        return DenseOperator(self.scale * self.diagonals)

    def sensing_matrices(self) -> np.ndarray:
        """The explicit stack ``(m, n1, n2)`` of ``A_i`` (for checks and other solvers)."""
        r = self.rank
        return np.einsum("ik,mk,jk->mij", self.left[:, :r], self.diagonals, self.right[:, :r])

    # -- Operator interface ----------------------------------------------------------------
    def forward(self, X):
        return self.scale * (self.diagonals @ self.to_diagonal(X))

    def adjoint(self, z):
        z = np.asarray(z, dtype=float)
        return self.from_diagonal(self.scale * (self.diagonals.T @ z))

    def rows(self, index):
        idx = np.atleast_1d(np.arange(self.n_measurements)[index])
        return AlignedSpectralOperator(self.left, self.right, self.diagonals[idx],
                                       scale=self.scale)

    def to_dense(self):
        return self.scale * self.sensing_matrices().reshape(self.n_measurements, -1)

    def frobenius_norm(self) -> float:
        # ||A_i||_F = ||sigma_i|| since Phi and Psi are orthogonal.
        return float(abs(self.scale) * np.linalg.norm(self.diagonals))

    def scaled(self, factor):
        import copy  # here, not at the top: keeps this file's imports as on main

        out = copy.copy(self)  # shares the stored arrays
        out.scale = self.scale * float(factor)
        return out

    def norm_estimate(self) -> float:
        # Phi, Psi are orthogonal, so ||A|| equals the norm of the diagonal operator.
        return float(abs(self.scale) * np.linalg.norm(self.diagonals, 2))
