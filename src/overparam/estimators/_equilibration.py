"""Column equilibration of a badly scaled design: solve for ``z = D x`` on ``A D^{-1}``.

Used by :class:`~overparam.estimators.base.RecoveryEstimator` for the estimators that set
``_equilibrate_columns`` (see ``column_spread_limit`` there and docs/scaling.md).
"""

from __future__ import annotations

import numpy as np

from ..operators import DenseOperator, DiagonalScaledOperator, Operator, ScipyOperator
from ..operators.diagonal import unscaled

__all__ = ["ESTIMATED_SPREAD_LIMIT", "WARNING_SPREAD", "ColumnScaledMatrix", "column_norms",
           "equilibrated", "equilibration_scales", "norms_are_estimated", "unscaled"]

#: Operators with at most this many entries are densified for their column norms (as for
#: ``Operator.frobenius_norm``); larger matrix-free ones are estimated from random probes.
_DENSE_ENTRIES = 4_000_000
_PROBES = 16
#: Estimated column norms (``_PROBES`` probes) are only trusted to show a spread above this
#: factor: the estimate of an operator with equal column norms spreads by up to about 6 over
#: 10^6 columns (chi distribution with 16 degrees of freedom), and equilibrating with such
#: noisy scales would distort a balanced operator.
ESTIMATED_SPREAD_LIMIT = 16.0
#: Spreads above this factor are reported (DegenerateInputWarning): features in different
#: units, not the fluctuation of a random design (a Gaussian design with 3 or more rows and up
#: to 10^4 columns spreads by less than about 200 in 99 % of the draws; docs/scaling.md).
WARNING_SPREAD = 1e3


def norms_are_estimated(operator: Operator) -> bool:
    """Whether :func:`column_norms` estimates the norms (large matrix-free operators)."""
    if isinstance(operator, DenseOperator):
        return False
    if isinstance(operator, ScipyOperator) and operator.sparse is not None:
        return False
    m, n = operator.shape
    return m * n > _DENSE_ENTRIES


def column_norms(operator: Operator) -> np.ndarray:
    """``||a_j||`` for each column of a vector-input operator.

    Exact for dense and scipy sparse matrices and for matrix-free operators of up to 4 million
    entries (densified: ``n`` forward applications); larger matrix-free operators are estimated
    from 16 seeded Gaussian probes, ``E (A^T g)_j^2 = ||a_j||^2`` (within a factor of about 1.5
    per column: enough to detect a spread of more than ``ESTIMATED_SPREAD_LIMIT``; see
    :func:`norms_are_estimated`).
    """
    if isinstance(operator, ColumnScaledMatrix):
        return operator.column_norms.copy()
    if isinstance(operator, DenseOperator):
        return _dense_column_norms(operator.matrix)
    if isinstance(operator, ScipyOperator) and operator.sparse is not None:
        return np.sqrt(np.asarray(operator.sparse.multiply(operator.sparse).sum(axis=0))).ravel()
    m = operator.shape[0]
    if not norms_are_estimated(operator):
        return np.linalg.norm(operator.to_dense(), axis=0)
    probes = np.random.default_rng(0).standard_normal((_PROBES, m))
    squares = np.mean([np.ravel(operator.adjoint(g)) ** 2 for g in probes], axis=0)
    return np.sqrt(squares)


def _dense_column_norms(matrix: np.ndarray, rows: int = 64) -> np.ndarray:
    """``np.linalg.norm(matrix, axis=0)`` bit for bit, without its ``(m, n)`` temporary of
    squares (a second copy of a large design and its page faults): the squares of ``rows``
    rows at a time, the running sum carried into the block's first row, so that the rows are
    added in the same order as numpy's reduction along axis 0 of a C-ordered array; for a
    Fortran-ordered one, ``np.linalg.norm`` of blocks of whole columns, about ``rows * n``
    entries each (numpy reduces each contiguous column on its own: the same sums); other
    layouts: ``np.linalg.norm`` itself."""
    m, n = matrix.shape
    if matrix.flags.f_contiguous and not matrix.flags.c_contiguous:
        width = max(1, (rows * n) // max(m, 1))
        if width >= n:
            return np.linalg.norm(matrix, axis=0)
        return np.concatenate([np.linalg.norm(matrix[:, start:start + width], axis=0)
                               for start in range(0, n, width)])
    if m <= rows or not matrix.flags.c_contiguous:
        return np.linalg.norm(matrix, axis=0)
    buf = np.empty((rows, n))
    total = None
    for start in range(0, m, rows):
        block = matrix[start:start + rows]
        squares = buf[: block.shape[0]]
        np.multiply(block, block, out=squares)
        if total is not None:
            squares[0] += total
        total = np.add.reduce(squares, axis=0)
    return np.sqrt(total)


def equilibration_scales(norms: np.ndarray, limit: float) -> tuple[np.ndarray | None, float]:
    """``(d, spread)``: ``d = norms`` (zero columns: 1) if the nonzero column norms spread over
    more than ``limit`` (max / min), else ``None``.

    ``A D^{-1}`` then has unit columns: the canonical standardized design (a Gaussian
    ``A / sqrt(m)`` has columns of norm about 1). With ``limit = 1`` every design whose
    nonzero columns do not all have the same norm is equilibrated. Measured on the contract's
    bad-columns problems (docs/scaling.md): columns brought to their common RMS norm instead
    left the group estimator at a scale where its default stops early for some spreads.
    """
    nonzero = norms > 0
    if np.count_nonzero(nonzero) < 2 or not np.all(np.isfinite(norms)):
        return None, 1.0
    spread = float(norms[nonzero].max() / norms[nonzero].min())
    if not spread > limit:
        return None, spread
    return np.where(nonzero, norms, 1.0), spread


def equilibrated(operator: Operator, d: np.ndarray, *, lazy: bool = False,
                 norms: np.ndarray | None = None) -> Operator:
    """The operator ``A D^{-1}``: a matrix again for dense and sparse input (the solvers that
    need ``to_dense`` keep their fast path), a wrapper for matrix-free operators.

    ``lazy`` (dense input): a :class:`ColumnScaledMatrix`, which copies ``A / d`` only when
    a solver asks for the matrix itself (its products scale the vectors instead); ``norms``
    the column norms of ``A`` if known.
    """
    if isinstance(operator, DenseOperator):
        if lazy:
            return ColumnScaledMatrix(operator, d, norms)
        return DenseOperator.from_finite(operator.matrix / d)  # |a_ij| / d_j <= 1
    if isinstance(operator, ScipyOperator) and operator.sparse is not None:
        import scipy.sparse as sp

        return ScipyOperator(operator.sparse @ sp.diags_array(1.0 / d))
    return DiagonalScaledOperator(operator, d)


class ColumnScaledMatrix(DenseOperator):
    """``A D^{-1}`` for a dense ``A`` whose copy ``A / d`` is made only when needed.

    ``forward``, ``adjoint``, ``columns`` and the column norms (1, or 0 for zero columns)
    scale vectors, a block or ``d`` instead of the ``(m, n)`` matrix: a solver that only
    multiplies (the matrix-free limit) never copies ``A`` nor checks the copy for finite
    values (``A`` is finite and ``|a_ij| / ||a_j|| <= 1``). ``matrix`` (and with it
    ``to_dense``, ``rows``, ``scaled``) is the same copy ``A / d`` as
    ``DenseOperator(A / d)``, made on first use. Products agree with the copy's to rounding.

    Parameters
    ----------
    parent : DenseOperator
        ``A``.
    d : ndarray of shape (n,)
        Positive column scales (the column norms, 1 for zero columns).
    norms : ndarray of shape (n,), optional
        The column norms of ``A`` if known (else computed).
    """

    def __init__(self, parent: DenseOperator, d: np.ndarray, norms: np.ndarray | None = None):
        self._parent, self._d = parent, np.asarray(d, dtype=float)
        self._copy = None
        self.n_measurements = parent.n_measurements
        self.input_shape = parent.input_shape
        norms = column_norms(parent) if norms is None else norms
        #: ||a_j|| / d_j: 1 where d is the norm, 0 for zero columns
        self.column_norms = np.where(norms > 0, norms / self._d, 0.0)

    @property
    def matrix(self) -> np.ndarray:
        if self._copy is None:
            self._copy = self._parent.matrix / self._d
        return self._copy

    def _per_entry(self, x):
        return self._d if np.ndim(x) == 1 else self._d[:, None]

    def forward(self, x):
        if self._copy is not None:
            return self._copy @ x
        return self._parent.matrix @ (x / self._per_entry(x))

    def adjoint(self, z):
        if self._copy is not None:
            return self._copy.T @ z
        out = self._parent.matrix.T @ z
        return out / self._per_entry(out)

    def columns(self, index):
        index = np.atleast_1d(index)
        if self._copy is not None:
            return self._copy[:, index]
        # an index array gathers a fresh block: scaled in place (the matrix-free limit reads
        # thousands of columns of a large design; a second (m, k) temporary costs more than
        # the division)
        block = self._parent.matrix[:, index]
        block /= self._d[index]
        return block

    def rows(self, index):
        # the rows of the copy, computed from A's rows alone (the same numbers)
        if self._copy is not None:
            return super().rows(index)
        index = np.atleast_1d(np.arange(self.n_measurements)[index])
        block = self._parent.matrix[index]
        block /= self._d  # in place: one (rows, n) allocation
        return DenseOperator.from_finite(block)

    def frobenius_norm(self):
        return float(np.sqrt(np.sum(self.column_norms**2)))
