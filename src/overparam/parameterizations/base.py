"""The parameterization interface: an overparameterized factorization of the signal."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["Parameterization", "Params"]

#: The parameters of a factorization: a tuple of arrays, e.g. ``(u, v)``.
Params = tuple[np.ndarray, ...]


class Parameterization(ABC):
    """Signal ``x = signal(params)`` as a differentiable function of the parameters.

    Gradient-based solvers need only three things from a parameterization: an initial point,
    the signal, and the vector-Jacobian product that pulls a gradient with respect to the signal
    back to the parameters. Every ``vjp`` is written by hand and checked against finite
    differences with :func:`overparam.testing.check_vjp`.
    """

    #: Shape of the signal this parameterization produces.
    signal_shape: tuple[int, ...]

    @abstractmethod
    def init(self, scale: float, rng: np.random.Generator | None = None) -> Params:
        """Initial parameters; ``scale`` sets the magnitude (the papers' alpha / epsilon)."""

    @abstractmethod
    def signal(self, params: Params) -> np.ndarray:
        """The signal represented by ``params``."""

    @abstractmethod
    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        """Pull back ``grad_signal`` (d loss / d signal) to d loss / d params."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
