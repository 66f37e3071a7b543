"""Matrix factorizations ``X = U V^T`` (asymmetric) and ``X = U U^T`` (symmetric PSD)."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Parameterization, Params

__all__ = ["Factorized", "balance", "dilation_residual"]

_INITS = ("gaussian", "identity")


class Factorized(Parameterization):
    """``X = U V^T`` with ``U`` of shape ``(n1, h)`` and ``V`` of shape ``(n2, h)``, any width.

    Paper: Wind, "Implicit regularization makes overparameterized asymmetric matrix sensing
    robust to perturbations". The width ``h`` may exceed ``max(n1, n2)`` (overparameterized);
    the paper's guarantee needs ``h >~ max(n1, n2)`` for its random init. With
    ``symmetric=True`` the signal is ``X = U U^T`` (the symmetric PSD variant, ``n1 = n2``).

    The gradient of a loss ``L(X)`` with ``G = dL/dX`` is ``(G V, G^T U)``; for ``U U^T`` it is
    ``(G + G^T) U``.

    Parameters
    ----------
    shape : tuple of int
        ``(n1, n2)``.
    width : int
        Number of columns ``h`` of the factors.
    symmetric : bool, default=False
        ``X = U U^T`` (one factor) instead of ``U V^T``.
    init : {"gaussian", "identity"}, default="gaussian"
        ``"gaussian"``: i.i.d. ``N(0, (eps / (C sqrt(h)))^2)`` entries (Remark 2.6), so that
        ``||(U; V)|| ~ eps``. ``"identity"``: ``U = V = eps / sqrt(2) * I`` (rectangular
        identities ``eye(n1, h)``, ``eye(n2, h)``), misalignment 1 when ``n1 = n2 = h``.
    init_constant : float, default=1.0
        The constant ``C`` of the Gaussian init.
    """

    def __init__(self, shape, width: int, *, symmetric: bool = False, init: str = "gaussian",
                 init_constant: float = 1.0):
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (n1, n2) with positive sizes, got {shape}")
        check_positive(width, "width", integer=True)
        if symmetric and shape[0] != shape[1]:
            raise ValueError(f"symmetric=True needs a square shape, got {shape}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        check_positive(init_constant, "init_constant")
        self.shape = shape
        self.width = int(width)
        self.symmetric = bool(symmetric)
        self.init_kind = init
        self.init_constant = float(init_constant)
        self.signal_shape = shape

    def init(self, scale: float, rng=None) -> Params:
        """Initial factors of scale ``scale`` (the paper's epsilon); see ``init``."""
        check_positive(scale, "init_scale", strict=False)
        n1, n2 = self.shape
        h = self.width
        if self.init_kind == "identity":
            a = float(scale) / np.sqrt(2.0)
            U = a * np.eye(n1, h)
            return (U,) if self.symmetric else (U, a * np.eye(n2, h))
        rng = check_random_state(rng)
        sd = float(scale) / (self.init_constant * np.sqrt(h))
        U = sd * rng.standard_normal((n1, h))
        return (U,) if self.symmetric else (U, sd * rng.standard_normal((n2, h)))

    def signal(self, params: Params) -> np.ndarray:
        U = params[0]
        return U @ U.T if self.symmetric else U @ params[1].T

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        G = np.asarray(grad_signal)
        U = params[0]
        if self.symmetric:
            return ((G + G.T) @ U,)
        return (G @ params[1], G.T @ U)


def balance(params: Params) -> float:
    """Imbalance ``||U^T U - V^T V||`` (spectral norm); constant under gradient flow."""
    U, V = params
    return float(np.linalg.norm(U.T @ U - V.T @ V, 2))


def dilation_residual(Y: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The paper's symmetric dilation ``R = [[0, Y - U V^T], [(Y - U V^T)^T, 0]]``."""
    D = np.asarray(Y) - U @ V.T
    n1, n2 = D.shape
    return np.block([[np.zeros((n1, n1)), D], [D.T, np.zeros((n2, n2))]])
