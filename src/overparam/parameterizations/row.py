"""Row-Hadamard factorization of a row-sparse matrix (multiple measurement vectors)."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive
from .base import Parameterization, Params

__all__ = ["RowHadamard"]


class RowHadamard(Parameterization):
    """``X = (g^2 1_L^T) ⊙ V``, i.e. ``X_ij = g_i^2 V_ij``: one shared scale per row.

    Paper: Jayalal, Kalyani, "Tuning-free structured sparse recovery of multiple measurement
    vectors using implicit regularization" (IR-MMV). The squared row scale ``g_i^2`` is shared by
    the ``L`` columns, so gradient descent from a small balanced init switches whole rows on one
    at a time (row sparsity), while ``V`` carries the entries of each row.

    For a loss ``f(X)`` with ``G = df/dX`` the pullback is ``dg = 2 g ⊙ rowsum(G ⊙ V)``,
    ``dV = (g^2 1_L^T) ⊙ G``; with the paper's ``f = ||Y - A X||_F^2`` (``G = -2 Λ``,
    ``Λ = A^T (Y - A X)``) these are its ``∇g = -4 g ⊙ rowsum(Λ ⊙ V)`` and ``∇V = -2 g^2 ⊙ Λ``.

    Every method also accepts parameters with leading batch axes (``g`` of shape ``(..., N)``,
    ``V`` of shape ``(..., N, L)``), as used by :func:`overparam.solvers.ir_mmv`.

    Parameters
    ----------
    n_features : int
        Number of rows ``N``.
    n_columns : int
        Number of measurement vectors ``L``.
    """

    def __init__(self, n_features: int, n_columns: int):
        check_positive(n_features, "n_features", integer=True)
        check_positive(n_columns, "n_columns", integer=True)
        self.n_features = int(n_features)
        self.n_columns = int(n_columns)
        self.signal_shape = (self.n_features, self.n_columns)

    def balanced_v_scale(self, scale: float) -> float:
        """``alpha_V = alpha_g / sqrt(2 L)``: the ``V`` init with ``g_i^2 / 2 = ||V_i||^2``."""
        return float(scale) / np.sqrt(2.0 * self.n_columns)

    def init(self, scale: float, rng=None, *, v_scale: float | None = None) -> Params:
        """``g(0) = scale 1_N`` and ``V(0) = v_scale 1_{N x L}`` (Algorithm 1 of the paper).

        ``v_scale`` defaults to :meth:`balanced_v_scale` (perfect row balance).
        """
        check_positive(scale, "init_scale")
        v = self.balanced_v_scale(scale) if v_scale is None else check_positive(v_scale, "v_scale")
        return (np.full(self.n_features, float(scale)),
                np.full(self.signal_shape, float(v)))

    def signal(self, params: Params) -> np.ndarray:
        g, V = params
        return (g * g)[..., None] * V

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        g, V = params
        G = np.asarray(grad_signal)
        # np.add.reduce: np.sum without its Python wrapper (ir_mmv calls this every step)
        return (2.0 * g * np.add.reduce(G * V, axis=-1), (g * g)[..., None] * G)

    @staticmethod
    def row_balance(params: Params) -> np.ndarray:
        """``g_i^2 / 2 - ||V_i||^2`` per row: conserved by the gradient flow (Lemma 5.1)."""
        g, V = params
        return 0.5 * g * g - np.sum(V * V, axis=-1)
