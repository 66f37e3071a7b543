"""Deep Hadamard (diagonal linear network) factorizations of a sparse vector."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive
from .base import Parameterization, Params

__all__ = ["DiagonalLinearNetwork", "Hadamard"]


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

    Notes
    -----
    ``init(scale)`` takes the *product* init ``alpha``: ``u(0) = v(0) = alpha^(1/L)``, so that
    ``u(0)^L = alpha`` whatever the depth (the paper's ``x~(0) = alpha 1``).
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


class DiagonalLinearNetwork(Parameterization):
    """The two-factor diagonal linear network ``w = u ⊙ u - v ⊙ v`` (DLNN).

    The classical implicit-sparsity baseline (Vaskevicius, Kanade, Rebeschini 2019; the
    "DLNN" of Li, Nguyen, Hegde, Wong's group-sparsity paper). It is :class:`Hadamard` with
    depth 2, except for the meaning of the init: here ``scale`` is the init of each *factor*,
    ``u(0) = v(0) = scale * 1`` (so each part starts at ``scale**2``), as in those papers.

    Parameters
    ----------
    n_features : int
        Length of the signal.
    """

    def __init__(self, n_features: int):
        check_positive(n_features, "n_features", integer=True)
        self.n_features = int(n_features)
        self.signal_shape = (self.n_features,)

    def init(self, scale: float, rng=None) -> Params:
        """``u(0) = v(0) = scale`` (per-factor init ``alpha``; ``w(0) = 0``)."""
        check_positive(scale, "init_scale")
        a = np.full(self.n_features, float(scale))
        return (a, a.copy())

    def signal(self, params: Params) -> np.ndarray:
        u, v = params
        return u * u - v * v

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        u, v = params
        return (2 * u * grad_signal, -2 * v * grad_signal)
