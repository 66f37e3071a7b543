"""Matrix-free transforms: rows of the orthonormal DCT (compressive sensing at large N), and
random rows of a sign-randomized DCT of an image given by its 2-D DCT (compressive imaging)."""

from __future__ import annotations

import numpy as np
import scipy.fft

from .base import _COLUMN_BLOCK, Operator

__all__ = ["RandomizedDCTSensing", "SubsampledDCT"]


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

    block_forward = True
    closed_form_columns = True
    fast_products = True  # also RandomizedDCTSensing's: a 2-D and a 1-D DCT

    def rows(self, index):
        keep = np.atleast_1d(np.arange(self.n_measurements)[index])
        return SubsampledDCT(self.input_shape[0], self.measured[keep])

    def columns(self, index):
        """Columns from the closed form of the DCT-II, ``O(m)`` each (no transform):
        ``C[k, j] = sqrt((2 - [k = 0]) / n) cos(pi k (2 j + 1) / (2 n))``."""
        n = self.input_shape[0]
        j = np.atleast_1d(np.asarray(index, dtype=int))
        k = self.measured[:, None]
        # the angle reduced mod 4n exactly in integers (k (2j+1) reaches 1e10 at n = 1e5)
        phase = (k * (2 * j[None, :] + 1)) % (4 * n)
        scale = np.where(k == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
        return scale * np.cos(np.pi * phase / (2.0 * n))

    closed_form_gram = True

    def column_gram(self, a, b):
        """``A[:, a]^T A[:, b]`` in closed form, ``O(1)`` an entry: with ``cos x cos y =
        (cos(x - y) + cos(x + y)) / 2`` the entry ``(i, j)`` is ``(F(|i - j|) + F(i + j + 1))
        / 2``, ``F(d) = sum_k s_k^2 cos(pi k d / n)`` over the measured ``k`` (``s_k`` the
        DCT-II's scales), all ``2 n`` values of ``F`` from one FFT (computed once)."""
        a = np.atleast_1d(np.asarray(a, dtype=int))[:, None]
        b = np.atleast_1d(np.asarray(b, dtype=int))[None, :]
        table = self._gram_table()
        return 0.5 * (table[np.abs(a - b)] + table[a + b + 1])

    def _gram_table(self) -> np.ndarray:
        table = getattr(self, "_gram_cache", None)
        if table is None:
            n = self.input_shape[0]
            weight = np.zeros(2 * n)
            weight[self.measured] = 2.0 / n
            weight[0] = 1.0 / n if weight[0] else 0.0
            table = self._gram_cache = np.fft.fft(weight).real
        return table

    def norm_estimate(self) -> float:
        return 1.0  # orthonormal rows

    def frobenius_norm(self) -> float:
        return float(np.sqrt(self.n_measurements))


class RandomizedDCTSensing(SubsampledDCT):
    """Random rows of ``DCT diag(sigma)`` applied to an image given by its 2-D DCT.

    ``A c = (DCT(sigma * vec(idct2(c))))[rows]`` with orthonormal transforms and random signs
    ``sigma``: a structurally random matrix, incoherent with the image's DCT basis (which a
    plain subsampled 2-D DCT of the image would not be: it would measure coefficients
    directly). Rows are orthonormal, ``A A^T = I``. ``forward``/``adjoint`` take ``(N,)`` or
    ``(N, L)``; each costs one 2-D and one 1-D DCT (the latter
    :class:`~overparam.operators.SubsampledDCT`'s).

    Parameters
    ----------
    side : int
        The image is ``side x side``; ``N = side**2``.
    rows : array_like of int
        Measured rows, distinct, in ``[0, N)``.
    signs : array_like of float
        ``N`` signs ``±1`` (pixel order of ``ravel``).
    """

    def __init__(self, side: int, rows, signs):
        n = int(side) ** 2
        super().__init__(n, rows)
        signs = np.asarray(signs, dtype=float).ravel()
        if signs.shape != (n,) or not np.all(np.abs(signs) == 1):
            raise ValueError("signs must be side**2 values of ±1")
        self.side = int(side)
        self.signs = signs

    #: columns by 1-D DCTs of length N (``O(N log N)`` each), not a closed form
    closed_form_columns = False
    closed_form_gram = False

    def column_gram(self, a, b):
        return Operator.column_gram(self, a, b)

    @classmethod
    def random(cls, side: int, n_measurements: int, rng) -> RandomizedDCTSensing:
        """``n_measurements`` rows drawn uniformly without replacement, random signs."""
        n = int(side) ** 2
        rows = np.sort(rng.choice(n, int(n_measurements), replace=False))
        return cls(side, rows, rng.choice([-1.0, 1.0], n))

    def _signed(self, v):
        return v * self.signs.reshape(-1, *([1] * (v.ndim - 1)))

    def forward(self, x):
        x = np.asarray(x, dtype=float)
        image = scipy.fft.idctn(x.reshape(self.side, self.side, *x.shape[1:]), norm="ortho",
                                axes=(0, 1))
        return super().forward(self._signed(image.reshape(x.shape)))

    def adjoint(self, z):
        signed = self._signed(super().adjoint(z))
        return scipy.fft.dctn(signed.reshape(self.side, self.side, *signed.shape[1:]),
                              norm="ortho", axes=(0, 1)).reshape(signed.shape)

    def columns(self, index):
        """Column ``j = (a, b)`` (row-major pixel of the 2-D DCT) is ``DCT(sigma * vec(c_a
        c_b^T))`` at the measured rows, ``c_a`` row ``a`` of the 1-D DCT matrix: the image
        part is an outer product, and the 1-D DCTs run along contiguous rows of a ``(k, N)``
        block (about twice as fast as ``forward`` per column, which transforms strided axes)."""
        index = np.atleast_1d(np.asarray(index, dtype=int))
        basis = scipy.fft.dct(np.eye(self.side), norm="ortho", axis=0)  # row a: c_a
        out = np.empty((self.n_measurements, index.size))
        width = max(1, _COLUMN_BLOCK // self.shape[1])
        for start in range(0, index.size, width):
            a, b = np.divmod(index[start:start + width], self.side)
            images = (basis[a][:, :, None] * basis[b][:, None, :]).reshape(a.size, -1)
            coef = scipy.fft.dct(images * self.signs, norm="ortho", axis=-1)
            out[:, start:start + a.size] = coef[:, self.measured].T
        return out

    def rows(self, index):
        keep = np.atleast_1d(np.arange(self.n_measurements)[index])
        return RandomizedDCTSensing(self.side, self.measured[keep], self.signs)
