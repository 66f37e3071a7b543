"""The trivial parameterization ``x = w``: plain (non-overparameterized) least squares."""

from __future__ import annotations

import numpy as np

from .base import Parameterization, Params

__all__ = ["Identity"]


class Identity(Parameterization):
    """``x = w`` for a signal of any shape; ``init`` is zero (so GD finds the min-norm fit)."""

    def __init__(self, signal_shape):
        self.signal_shape = tuple(np.atleast_1d(signal_shape).astype(int))

    def init(self, scale: float = 0.0, rng=None) -> Params:
        return (np.full(self.signal_shape, float(scale)),)

    def signal(self, params: Params) -> np.ndarray:
        return params[0]

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        return (np.asarray(grad_signal),)
