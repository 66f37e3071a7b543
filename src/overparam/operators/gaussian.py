"""Gaussian matrix sensing, ``[A(X)]_i = <A_i, X> / sqrt(m)``, without storing a large stack."""

from __future__ import annotations

import copy

import numpy as np

from .._validation import check_positive
from .base import Operator
from .low_rank import MatrixSensingOperator

__all__ = ["GaussianSensingOperator"]

_DEFAULT_MAX_STORED_BYTES = 64 * 2**20


class GaussianSensingOperator(Operator):
    """Measure an ``(n1, n2)`` matrix by ``m`` i.i.d. standard Gaussian sensing matrices.

    ``[A(X)]_i = scale * <A_i, X>`` with ``A_i`` of i.i.d. ``N(0, 1)`` entries and, by default,
    ``scale = 1 / sqrt(m)`` (so that ``E[A* A] = I``, the normalization of Wind's Theorem 2.9).

    The ``(m, n1, n2)`` stack is stored only when it is small (``max_stored_bytes``); otherwise
    the sensing matrices are regenerated on every application, block by block, each block from
    its own seed (:meth:`numpy.random.SeedSequence.spawn`). Memory then stays at one block of
    ``block_size * n1 * n2`` floats whatever ``m`` is, and every application returns exactly the
    same numbers as the stored stack would (the same seeds draw the same blocks). Writing this by
    hand is needed: neither scipy nor pylops offers a seeded, regenerate-on-demand Gaussian
    ensemble for matrix sensing.

    Parameters
    ----------
    n_measurements : int
        Number of measurements ``m``.
    shape : tuple of int
        ``(n1, n2)``, the shape of the measured matrix.
    random_state : None, int or numpy.random.SeedSequence
        Seed of the ensemble (a Generator is not accepted: the blocks must be re-drawable).
        None draws fresh entropy once, so the operator is still a fixed operator.
    scale : float or None, default=None
        Factor applied to every measurement; None gives ``1 / sqrt(m)``.
    block_size : int or None, default=None
        Sensing matrices generated per block; None picks blocks of about 8 MiB.
    store : {"auto", True, False}, default="auto"
        Keep the stack in memory: ``"auto"`` when it needs at most ``max_stored_bytes``.
    max_stored_bytes : int, default=64 MiB

    Examples
    --------
    >>> op = GaussianSensingOperator(200_000, (100, 100), random_state=0)  # 16 GB if stored
    >>> op.stored
    False
    >>> op.forward(np.eye(100)).shape
    (200000,)
    """

    def __init__(self, n_measurements: int, shape, random_state=None, *, scale=None,
                 block_size=None, store="auto", max_stored_bytes=_DEFAULT_MAX_STORED_BYTES):
        check_positive(n_measurements, "n_measurements", integer=True)
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (n1, n2) with positive sizes, got {shape}")
        if isinstance(random_state, np.random.Generator):
            raise TypeError("random_state must be None, an int or a SeedSequence (the blocks are "
                            "regenerated from it), not a Generator")
        if store not in ("auto", True, False):
            raise ValueError(f"store must be 'auto', True or False, got {store!r}")
        self.n_measurements = int(n_measurements)
        self.input_shape = shape
        self.seed = (random_state if isinstance(random_state, np.random.SeedSequence)
                     else np.random.SeedSequence(random_state))
        self.scale = 1.0 / np.sqrt(self.n_measurements) if scale is None else float(scale)
        n = shape[0] * shape[1]
        if block_size is None:
            block_size = max(1, (8 * 2**20) // (8 * n))
        check_positive(block_size, "block_size", integer=True)
        self.block_size = int(min(block_size, self.n_measurements))
        self._n_blocks = -(-self.n_measurements // self.block_size)
        self._block_seeds = self.seed.spawn(self._n_blocks)
        nbytes = 8 * self.n_measurements * n
        self.stored = bool(store) if store != "auto" else nbytes <= max_stored_bytes
        self._stack = None
        if self.stored:
            self._stack = np.empty((self.n_measurements, n))
            for b in range(self._n_blocks):
                start = b * self.block_size
                self._stack[start:start + self.block_size] = self._block(b)

    # -- the ensemble -------------------------------------------------------------------------
    def _block(self, b: int) -> np.ndarray:
        """Sensing matrices of block ``b`` as a ``(rows, n1 * n2)`` array (unscaled)."""
        start = b * self.block_size
        rows = min(self.block_size, self.n_measurements - start)
        rng = np.random.default_rng(self._block_seeds[b])
        return rng.standard_normal((rows, self.input_shape[0] * self.input_shape[1]))

    def _blocks(self):
        """Yield ``(start, stop, block)`` over all measurements."""
        if self._stack is not None:
            yield 0, self.n_measurements, self._stack
            return
        for b in range(self._n_blocks):
            block = self._block(b)
            start = b * self.block_size
            yield start, start + block.shape[0], block

    # -- Operator interface -------------------------------------------------------------------
    def _flatten(self, X) -> tuple[np.ndarray, tuple]:
        """``X`` as ``(n,)`` (one matrix) or ``(n, L)``, and its trailing shape.

        One matrix stays 1-D so that products are matrix-vector (gemv): on a loaded machine
        a threaded gemm with one column is many times slower.
        """
        X = np.asarray(X, dtype=float)
        if X.shape[:2] != self.input_shape or X.ndim not in (2, 3):
            raise ValueError(f"expected a matrix of shape {self.input_shape} (or a stack "
                             f"{(*self.input_shape, 'L')}), got {X.shape}")
        n = self.shape[1]
        return (X.reshape(n) if X.ndim == 2 else X.reshape(n, -1)), X.shape[2:]

    def forward(self, X):
        """``scale * <A_i, X>`` for every ``i``; ``X`` of shape ``(n1, n2)`` or ``(n1, n2, L)``."""
        flat, trailing = self._flatten(X)
        out = np.empty((self.n_measurements, *flat.shape[1:]))
        for start, stop, block in self._blocks():
            out[start:stop] = block @ flat
        out *= self.scale
        return out.reshape((self.n_measurements, *trailing))

    def adjoint(self, z):
        """``scale * sum_i z_i A_i``; ``z`` of shape ``(m,)`` or ``(m, L)``."""
        z = np.asarray(z, dtype=float)
        if z.shape[0] != self.n_measurements or z.ndim not in (1, 2):
            raise ValueError(f"expected {self.n_measurements} measurements, got shape {z.shape}")
        acc = np.zeros((self.shape[1], *z.shape[1:]))
        for start, stop, block in self._blocks():
            acc += block.T @ z[start:stop]
        acc *= self.scale
        return acc.reshape(self.input_shape + z.shape[1:])

    def to_dense(self):
        """The ``(m, n1 * n2)`` matrix (allocates it: only for operators that fit in memory)."""
        if self._stack is not None:
            return self.scale * self._stack
        return self.scale * np.concatenate([block for _, _, block in self._blocks()])

    def sensing_matrices(self) -> np.ndarray:
        """The ``(m, n1, n2)`` stack ``A_i`` (unscaled; allocates it)."""
        dense = self._stack if self._stack is not None else np.concatenate(
            [block for _, _, block in self._blocks()])
        return dense.reshape(self.n_measurements, *self.input_shape)

    def frobenius_norm(self):
        """Exact when stored, else its expectation ``scale * sqrt(m n)`` (a scale, not a
        statistic)."""
        if self._stack is not None:
            return float(abs(self.scale) * np.linalg.norm(self._stack))
        return float(abs(self.scale) * np.sqrt(self.shape[0] * self.shape[1]))

    def scaled(self, factor):
        out = copy.copy(self)  # shares the stored arrays
        out.scale = self.scale * float(factor)
        return out

    def materialize(self) -> MatrixSensingOperator:
        """The same operator as a stored :class:`MatrixSensingOperator`."""
        return MatrixSensingOperator(self.sensing_matrices(), scale=self.scale)

    def rows(self, index):
        """The measurements ``index`` (same ``A_i`` and scale), generating only needed blocks."""
        idx = np.atleast_1d(np.arange(self.n_measurements)[index])
        if self._stack is not None:
            return MatrixSensingOperator(
                self._stack[idx].reshape(idx.size, *self.input_shape), scale=self.scale)
        return _GaussianRows(self, idx)

    def norm_estimate(self):
        """Spectral norm: exact when stored or small, else ``scale * (sqrt(m) + sqrt(n))``.

        The second value is the large-deviation estimate of the largest singular value of an
        ``m x n`` standard Gaussian matrix (Davidson-Szarek); computing the exact norm would cost
        many regenerations of the stack.
        """
        m, n = self.shape
        if self._stack is not None or m * n <= 40_000:
            return super().norm_estimate() if self._stack is None else float(
                self.scale * np.linalg.norm(self._stack, 2))
        return float(self.scale * (np.sqrt(m) + np.sqrt(n)))

    def __repr__(self):
        return (f"GaussianSensingOperator(m={self.n_measurements}, shape={self.input_shape}, "
                f"scale={self.scale:.3g}, stored={self.stored})")


class _GaussianRows(Operator):
    """A subset of the measurements of an unstored :class:`GaussianSensingOperator`."""

    def __init__(self, parent: GaussianSensingOperator, index: np.ndarray):
        self.parent = parent
        self.index = np.asarray(index)
        self.input_shape = parent.input_shape
        self.n_measurements = int(self.index.size)
        # For each needed block: its number and where its rows go.
        blocks = self.index // parent.block_size
        self._plan = [(int(b), np.flatnonzero(blocks == b)) for b in np.unique(blocks)]

    def forward(self, X):
        flat, trailing = self.parent._flatten(X)
        out = np.empty((self.n_measurements, *flat.shape[1:]))
        for b, where in self._plan:
            local = self.index[where] - b * self.parent.block_size
            out[where] = self.parent._block(b)[local] @ flat
        out *= self.parent.scale
        return out.reshape((self.n_measurements, *trailing))

    def adjoint(self, z):
        z = np.asarray(z, dtype=float)
        if z.shape[0] != self.n_measurements or z.ndim not in (1, 2):
            raise ValueError(f"expected {self.n_measurements} measurements, got shape {z.shape}")
        acc = np.zeros((self.shape[1], *z.shape[1:]))
        for b, where in self._plan:
            local = self.index[where] - b * self.parent.block_size
            acc += self.parent._block(b)[local].T @ z[where]
        acc *= self.parent.scale
        return acc.reshape(self.input_shape + z.shape[1:])

    def rows(self, index):
        return _GaussianRows(self.parent, self.index[np.atleast_1d(
            np.arange(self.n_measurements)[index])])
