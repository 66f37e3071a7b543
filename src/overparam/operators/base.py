"""The forward-model interface: ``forward``, ``adjoint``, shapes and a norm estimate."""

from __future__ import annotations

from abc import ABC, abstractmethod
from math import prod

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds

__all__ = ["Operator", "RowSubset", "ScaledOperator"]

#: Operators with at most this many entries are densified for their Frobenius norm.
_DENSE_NORM_ENTRIES = 4_000_000
#: Random probes of the Frobenius-norm estimate of a larger operator (Hutchinson).
_NORM_PROBES = 16
#: Entries of the unit-vector blocks of :meth:`Operator.columns` (32 MB).
_COLUMN_BLOCK = 4_194_304


class Operator(ABC):
    """A linear map from signals of shape ``input_shape`` to ``m`` measurements.

    Subclasses implement :meth:`forward` and :meth:`adjoint`. Signals may carry trailing
    columns (several signals measured by the same operator, as in MMV) where a subclass says so.

    Attributes
    ----------
    input_shape : tuple of int
        Shape of one signal.
    n_measurements : int
        Number of measurements ``m``.
    """

    input_shape: tuple[int, ...]
    n_measurements: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: measurements by number of signal entries, as for a matrix."""
        return (self.n_measurements, prod(self.input_shape))

    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Measure a signal: ``x`` of shape ``input_shape`` to ``(m,)``."""

    @abstractmethod
    def adjoint(self, z: np.ndarray) -> np.ndarray:
        """Apply the adjoint: ``z`` of shape ``(m,)`` to ``input_shape``."""

    def rows(self, index) -> Operator:
        """The operator restricted to a subset of measurements (used for hold-out validation)."""
        return RowSubset(self, index)

    #: Whether ``forward`` accepts an ``(n, k)`` block of signals (vector-input operators):
    #: :meth:`columns` then reads columns a block of unit vectors at a time.
    block_forward: bool = False
    #: Whether :meth:`columns` is a closed form costing ``O(m)`` a column (no ``forward``):
    #: the working-set preconditioner of the sparse limit then reads more columns
    #: (:mod:`overparam.solvers.sparse.krylov_newton`).
    closed_form_columns: bool = False
    #: Whether :meth:`column_gram` is a closed form costing ``O(1)`` an entry (no columns):
    #: the working-set preconditioner of the sparse limit then keeps no columns and applies
    #: them by ``forward``/``adjoint`` (:mod:`overparam.solvers.sparse.krylov_newton`).
    closed_form_gram: bool = False
    #: Whether ``forward`` and ``adjoint`` are fast transforms (``O(n log n)``): cheaper than
    #: a pass over a few hundred cached columns, so the working-set preconditioner of the
    #: sparse limit applies its columns by products (:mod:`overparam.solvers.sparse.krylov_newton`).
    fast_products: bool = False

    def column_gram(self, a, b) -> np.ndarray:
        """``A[:, a]^T A[:, b]``, the ``(len(a), len(b))`` inner products of the columns ``a``
        and ``b`` (vector input): from :meth:`columns` unless a subclass knows a closed form
        (:attr:`closed_form_gram`)."""
        a, b = np.atleast_1d(np.asarray(a, dtype=int)), np.atleast_1d(np.asarray(b, dtype=int))
        return self.columns(a).T @ self.columns(b)

    def columns(self, index) -> np.ndarray:
        """The dense ``(m, len(index))`` block of the columns ``index`` (vector input).

        Read by ``forward`` on unit vectors: one block of up to ``_COLUMN_BLOCK`` entries at a
        time where ``forward`` takes blocks (:attr:`block_forward`), else one per column.
        Subclasses that know their columns override it (matrices, transforms).
        """
        index = np.atleast_1d(np.asarray(index, dtype=int))
        m, n = self.shape
        out = np.empty((m, index.size))
        width = max(1, _COLUMN_BLOCK // max(n, 1)) if self.block_forward else 1
        for start in range(0, index.size, width):
            part = index[start:start + width]
            unit = np.zeros((n, part.size))
            unit[part, np.arange(part.size)] = 1.0
            block = self.forward(unit) if self.block_forward else self.forward(unit[:, 0])
            out[:, start:start + part.size] = np.reshape(block, (m, part.size))
        return out

    def as_linear_operator(self) -> LinearOperator:
        """This operator as a scipy ``LinearOperator`` acting on flattened signals."""
        shape_in = self.input_shape
        return LinearOperator(
            self.shape,
            matvec=lambda v: self.forward(np.reshape(v, shape_in)),
            rmatvec=lambda z: np.ravel(self.adjoint(np.ravel(z))),
            dtype=np.float64,
        )

    def to_dense(self) -> np.ndarray:
        """The ``(m, n)`` matrix of this operator (costs ``n`` forward applications)."""
        n = self.shape[1]
        cols = [self.forward(np.reshape(e, self.input_shape)) for e in np.eye(n)]
        return np.stack(cols, axis=1) if cols else np.zeros(self.shape)

    def norm_estimate(self) -> float:
        """Estimate the spectral norm ``||A||_2`` (largest singular value).

        Uses ARPACK through :func:`scipy.sparse.linalg.svds` with a fixed start vector, so the
        estimate is deterministic; small operators are computed exactly.
        """
        m, n = self.shape
        if min(m, n) <= 3 or m * n <= 40_000:
            return float(np.linalg.norm(self.to_dense(), 2))
        v0 = np.random.default_rng(0).standard_normal(min(m, n))
        s = svds(self.as_linear_operator(), k=1, return_singular_vectors=False, v0=v0)
        return float(s[0])

    def frobenius_norm(self) -> float:
        """``||A||_F`` of the ``(m, n)`` matrix of this operator.

        Exact for operators of up to 4 million entries; larger ones are estimated from 16
        seeded Gaussian probes (``E ||A g||^2 = ||A||_F^2``): the estimate is used for scales.
        """
        m, n = self.shape
        if m * n <= _DENSE_NORM_ENTRIES:
            return float(np.linalg.norm(self.to_dense()))
        probes = np.random.default_rng(0).standard_normal((_NORM_PROBES, *self.input_shape))
        return float(np.sqrt(np.mean([np.sum(self.forward(g) ** 2) for g in probes])))

    def scaled(self, factor: float) -> Operator:
        """This operator times ``factor`` (used to normalize the data of a fit)."""
        return ScaledOperator(self, factor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(m={self.n_measurements}, input_shape={self.input_shape})"


class _Derived(Operator):
    """An operator made from ``parent`` (scaled, restricted, reweighted): it measures signals
    of the parent's shape, and its columns have a closed form where the parent's have."""

    def __init__(self, parent: Operator):
        self.parent = parent
        self.input_shape = tuple(parent.input_shape)
        self.n_measurements = parent.n_measurements

    @property
    def closed_form_columns(self):
        return self.parent.closed_form_columns

    @property
    def closed_form_gram(self):
        return self.parent.closed_form_gram

    @property
    def fast_products(self):
        return self.parent.fast_products


class ScaledOperator(_Derived):
    """``factor`` times another operator."""

    def __init__(self, parent: Operator, factor: float):
        super().__init__(parent)
        self.factor = float(factor)

    def forward(self, x):
        return self.factor * self.parent.forward(x)

    def adjoint(self, z):
        return self.factor * self.parent.adjoint(z)

    def rows(self, index):
        return self.parent.rows(index).scaled(self.factor)

    def columns(self, index):
        return self.factor * self.parent.columns(index)

    def column_gram(self, a, b):
        return self.factor**2 * self.parent.column_gram(a, b)

    def to_dense(self):
        return self.factor * self.parent.to_dense()

    def norm_estimate(self):
        return abs(self.factor) * self.parent.norm_estimate()

    def frobenius_norm(self):
        return abs(self.factor) * self.parent.frobenius_norm()

    def scaled(self, factor):
        return self.parent.scaled(self.factor * factor)


class RowSubset(_Derived):
    """The measurements ``index`` of another operator."""

    def __init__(self, parent: Operator, index):
        super().__init__(parent)
        self.index = np.atleast_1d(np.arange(parent.n_measurements)[index])
        self.n_measurements = int(self.index.size)

    def forward(self, x):
        return self.parent.forward(x)[self.index]

    #: a subset of the rows changes the columns' inner products: no closed form
    closed_form_gram = False

    def columns(self, index):
        return self.parent.columns(index)[self.index]

    def column_gram(self, a, b):
        return Operator.column_gram(self, a, b)

    def adjoint(self, z):
        z = np.asarray(z)
        full = np.zeros((self.parent.n_measurements, *z.shape[1:]), dtype=np.result_type(z, float))
        full[self.index] = z
        return self.parent.adjoint(full)
