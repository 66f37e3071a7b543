"""``A D^{-1}``: an operator on rescaled signals (equilibration of badly scaled inputs)."""

from __future__ import annotations

import numpy as np

from .base import Operator, _Derived

__all__ = ["DiagonalScaledOperator", "unscaled"]


def unscaled(z, weights) -> np.ndarray:
    """``x = z / w``: ``z`` divided by ``weights`` along its leading axes (a ``z`` with extra
    trailing axes, e.g. the ``L`` columns of an MMV signal, is divided column by column)."""
    z, weights = np.asarray(z), np.asarray(weights)
    return z / weights.reshape(weights.shape + (1,) * (z.ndim - weights.ndim))


class DiagonalScaledOperator(_Derived):
    """``z -> A(z / w)``: the operator ``A D^{-1}``, ``D = diag(w)``, on signals ``z = w x``.

    Solving on it for ``z`` and returning ``x = z / w`` equilibrates a badly scaled ``A``:
    positive ``weights`` of the column norms of a design (sparse and group estimators), or the
    product ``r c^T`` of row and column scales of a matrix-sensing operator, which keeps the
    rank of the signal (low-rank estimators; PSD with it when ``r = c``).

    Parameters
    ----------
    parent : Operator
        ``A``.
    weights : ndarray of shape ``parent.input_shape``
        Positive ``w``. A signal with extra trailing axes (e.g. the ``L`` columns of an MMV
        signal ``(n, L)`` for weights of shape ``(n,)``) is scaled along its leading axes.
    """

    def __init__(self, parent: Operator, weights):
        super().__init__(parent)
        self.weights = np.asarray(weights, dtype=float)
        if self.weights.shape != self.input_shape:
            raise ValueError(f"weights of shape {self.weights.shape} for signals of shape "
                             f"{self.input_shape}")

    def unscaled(self, z) -> np.ndarray:
        """``x = z / w`` (also for ``z`` with extra trailing axes)."""
        return unscaled(z, self.weights)

    def forward(self, x):
        return self.parent.forward(self.unscaled(x))

    def adjoint(self, z):
        return self.unscaled(self.parent.adjoint(z))

    def columns(self, index):
        """The parent's columns ``index`` (its own :meth:`~overparam.operators.Operator.columns`)
        times the inverses of their weights: for a matrix parent the same numbers, to the
        bit, as :meth:`forward` on unit vectors (which scales ``e_j`` by ``1 / w_j`` first)."""
        index = np.atleast_1d(index)
        return self.parent.columns(index) * (1.0 / self.weights.ravel()[index])

    def column_gram(self, a, b):
        a, b = np.atleast_1d(a), np.atleast_1d(b)
        inverse = 1.0 / self.weights.ravel()
        return self.parent.column_gram(a, b) * inverse[a][:, None] * inverse[b][None, :]

    def rows(self, index):
        return DiagonalScaledOperator(self.parent.rows(index), self.weights)

    def to_dense(self):
        return self.parent.to_dense() / self.weights.ravel()

    def scaled(self, factor):
        return DiagonalScaledOperator(self.parent.scaled(factor), self.weights)
