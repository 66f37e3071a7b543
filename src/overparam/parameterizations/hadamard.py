"""Deep Hadamard (diagonal linear network) factorizations of a sparse vector."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive
from .base import Parameterization, Params

__all__ = ["Hadamard"]


class Hadamard(Parameterization):
    """``x = u^L - v^L`` (signed) or ``x = u^L`` (positive), entrywise powers, depth ``L >= 2``.

    Paper: Chou, Maly, Rauhut, "More is less: inducing sparsity via overparameterization".
    All ``L`` factors of each part start identical, so they stay identical under gradient
    descent and one vector per part represents them; the gradient keeps the factor ``L``
    (d x / d u = L u^(L-1)).

    Parameters
    ----------
    n_features : int
        Length of the signal.
    depth : int, default=2
        Number of factors ``L``.
    signed : bool, default=True
        ``u^L - v^L`` when True, ``u^L`` (non-negative signals) when False.
    """

    def __init__(self, n_features: int, depth: int = 2, signed: bool = True):
        check_positive(n_features, "n_features", integer=True)
        check_positive(depth, "depth", integer=True)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        self.n_features = int(n_features)
        self.depth = int(depth)
        self.signed = bool(signed)
        self.signal_shape = (self.n_features,)

    def init(self, scale: float, rng=None) -> Params:
        """``u(0) = v(0) = scale^(1/L)``: ``scale`` is the product init alpha of each part."""
        check_positive(scale, "init_scale")
        a = np.full(self.n_features, float(scale) ** (1.0 / self.depth))
        return (a, a.copy()) if self.signed else (a,)

    def signal(self, params: Params) -> np.ndarray:
        x = params[0] ** self.depth
        return x - params[1] ** self.depth if self.signed else x

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        L = self.depth
        gu = L * params[0] ** (L - 1) * grad_signal
        if not self.signed:
            return (gu,)
        return (gu, -L * params[1] ** (L - 1) * grad_signal)
