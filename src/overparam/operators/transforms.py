"""Matrix-free transforms: rows of the orthonormal DCT (compressive sensing at large N)."""

from __future__ import annotations

import numpy as np
import scipy.fft

from .base import Operator

__all__ = ["SubsampledDCT"]


class SubsampledDCT(Operator):
    """The rows ``rows`` of the orthonormal DCT-II of size ``n`` (``A A^T = I``).

    ``forward`` and ``adjoint`` cost one :func:`scipy.fft.dct` / :func:`scipy.fft.idct`
    (``O(n log n)``); ``(n,)`` or ``(n, L)`` signals.

    Parameters
    ----------
    n : int
        Signal length.
    rows : array_like of int
        The measured DCT coefficients (distinct, in ``[0, n)``).

    Attributes
    ----------
    measured : ndarray of int
        ``rows``.
    """

    def __init__(self, n: int, rows):
        rows = np.asarray(rows, dtype=int).ravel()
        if rows.size == 0 or np.unique(rows).size != rows.size or rows.min() < 0 \
                or rows.max() >= n:
            raise ValueError("rows must be distinct indices in [0, n)")
        self.measured = rows
        self.input_shape = (int(n),)
        self.n_measurements = int(rows.size)

    def forward(self, x):
        return scipy.fft.dct(np.asarray(x, dtype=float), norm="ortho", axis=0)[self.measured]

    def adjoint(self, z):
        z = np.asarray(z, dtype=float)
        full = np.zeros((self.input_shape[0], *z.shape[1:]))
        full[self.measured] = z
        return scipy.fft.idct(full, norm="ortho", axis=0)

    def rows(self, index):
        keep = np.atleast_1d(np.arange(self.n_measurements)[index])
        return SubsampledDCT(self.input_shape[0], self.measured[keep])

    def norm_estimate(self) -> float:
        return 1.0  # orthonormal rows

    def frobenius_norm(self) -> float:
        return float(np.sqrt(self.n_measurements))
