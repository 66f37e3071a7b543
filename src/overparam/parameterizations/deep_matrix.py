"""Deep matrix factorization ``X = W_1 W_2 ... W_L`` (a depth-L linear network)."""

from __future__ import annotations

import itertools

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Parameterization, Params

__all__ = ["DeepMatrixFactorization"]


def _rect_eye(n1: int, n2: int, scale: float) -> np.ndarray:
    return scale * np.eye(n1, n2)


class DeepMatrixFactorization(Parameterization):
    """``X = W_1 W_2 … W_L`` with ``W_1`` (n1, d), inner ``W_l`` (d, d), ``W_L`` (d, n2).

    The baseline of the spectral-network paper (depth 3, ``W_l(0) = 1e-4 I``), studied by
    Arora, Cohen, Hu, Luo, "Implicit regularization in deep matrix factorization". Unlike
    :class:`~overparam.parameterizations.Hadamard`, ``scale`` is the size of *each* factor
    (the papers' convention here), so ``X(0) = scale^L I``.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the signal.
    depth : int, default=3
        Number of factors ``L >= 2``.
    width : int, optional
        Inner dimension ``d``; default ``max(n1, n2)``.
    init : {"identity", "gaussian"}, default="identity"
        ``W_l(0) = scale * I`` (rectangular identity; the paper), or i.i.d. Gaussian entries
        with standard deviation ``scale``.
    """

    def __init__(self, n_rows: int, n_cols: int, depth: int = 3, width: int | None = None,
                 init: str = "identity"):
        check_positive(n_rows, "n_rows", integer=True)
        check_positive(n_cols, "n_cols", integer=True)
        check_positive(depth, "depth", integer=True)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if init not in ("identity", "gaussian"):
            raise ValueError(f"init must be 'identity' or 'gaussian', got {init!r}")
        self.n_rows, self.n_cols, self.depth = int(n_rows), int(n_cols), int(depth)
        self.width = max(self.n_rows, self.n_cols) if width is None else int(width)
        check_positive(self.width, "width", integer=True)
        self.init_kind = init
        self.signal_shape = (self.n_rows, self.n_cols)

    def _shapes(self):
        d = self.width
        dims = [self.n_rows] + [d] * (self.depth - 1) + [self.n_cols]
        return list(itertools.pairwise(dims))

    def init(self, scale: float, rng=None) -> Params:
        check_positive(scale, "init_scale")
        if self.init_kind == "identity":
            return tuple(_rect_eye(a, b, float(scale)) for a, b in self._shapes())
        rng = check_random_state(rng)
        return tuple(float(scale) * rng.standard_normal((a, b)) for a, b in self._shapes())

    def signal(self, params: Params) -> np.ndarray:
        out = params[0]
        for W in params[1:]:
            out = out @ W
        return out

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        # dL/dW_l = (W_1..W_{l-1})^T G (W_{l+1}..W_L)^T, with prefix and suffix products.
        L = len(params)
        prefix = [None] * L  # prefix[l] = W_1 ... W_{l-1} (None for l = 0)
        for i in range(1, L):
            prefix[i] = params[0] if i == 1 else prefix[i - 1] @ params[i - 1]
        G = np.asarray(grad_signal, dtype=float)
        grads = [None] * L
        right = G  # G (W_{l+1} ... W_L)^T, built from the right
        for i in range(L - 1, -1, -1):
            grads[i] = right if i == 0 else prefix[i].T @ right
            right = right @ params[i].T
        return tuple(grads)
