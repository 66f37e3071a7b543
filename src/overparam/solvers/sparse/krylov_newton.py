"""Matrix-free limit of the Hadamard flow: Newton-CG on its dual with a working-set preconditioner.

:func:`~overparam.solvers.sparse.flow.hadamard_newton` minimizes the dual function
``Phi(w) = sum psi*(A^T w) - <y, w>`` (gradient ``A x(A^T w) - y``, Hessian
``H = A D A^T``, ``D = diag(x'(s))``) by forming and factoring the ``m x m`` Hessian at every
step: ``m^2 n`` operations, and a dense matrix. Here each Newton system ``H p = g`` is solved
by preconditioned conjugate gradients (written out: see :func:`_newton_step`) with products
``A @ v`` and ``A^T @ w`` only (inexact Newton: the relative tolerance of CG falls with the
residual, Eisenstat-Walker, so the outer iteration stays superlinear while early steps are
cheap). The gradient and the optimality test are exact, so the limit is the same as the dense
solver's, to its tolerance.

The preconditioner uses that, from a small init, ``D`` is concentrated on few coordinates
(``x'_j`` grows like ``|x_j|``: the support and the coordinates close to joining it), as
working-set solvers of the Lasso do (skglm, celer): with the working set ``W`` of the columns
whose term ``D_j ||a_j||^2`` exceeds the mean diagonal of ``H``, and ``delta`` the mean
diagonal of the rest, ``P = A_W D_W A_W^T + delta I`` is inverted by the Woodbury identity
through a ``|W| x |W|`` Cholesky factor. ``W`` only grows (a column whose weight falls keeps
its exact term in ``P``), so the Gram matrix ``A_W^T A_W`` is extended, never recomputed: its
total cost is that of the final working set. For an operator that is not a matrix the columns
of ``W`` are read by ``operator.columns`` (a closed form, or ``forward`` on blocks of unit
vectors: then the columns evicted from ``W`` are kept, up to ``_EVICTED_BYTES``, for the set
reads the same columns again as the weights move), and ``W`` is capped lower: 1,024 columns,
or up to ``m / 8`` columns within a block of ``_WORKING_BYTES`` where the columns have a
closed form (``Operator.closed_form_columns``).
Where the Gram matrix of the columns has a closed form too (``Operator.closed_form_gram``: a
subsampled DCT) and the operator is not a matrix, ``W`` keeps no columns at all: ``A_W^T v`` and
``A_W t`` are products (far cheaper than a pass over ``m |W|`` cached numbers for a fast
transform; other fast transforms, ``Operator.fast_products``, apply their cached columns by
products too), and the Cholesky factor, now the main cost, is kept for the next Newton steps while
the weights it was made from stay within a factor 2 (a stale ``P`` is still a fixed positive
definite preconditioner: only CG's iteration count depends on it).

Fewer products (measured in docs/sparse.md): CG returns ``A^T p`` with ``p``; while CG stops
after one iteration (the preconditioner is nearly ``H``) the next step is ``P^{-1} g`` itself,
its scale left to the line search; and on the plateau from a tiny init, where ``A x`` is
negligible, the gradient is ``-y`` without a product (convergence is tested on exact
gradients only). ``W`` starts at ``m / 4`` columns and rises to its cap when CG struggles.
Past the plateau the first trial of the line search caps only the coordinates whose signal
becomes more than negligible (see :func:`_first_trial`), so the final steps take their full
length, and the gradient is updated through the working set's cached columns while the change
of ``x`` outside the set stays negligible (see :class:`_Residual`): one product a step
instead of two.

No library solves this dual problem; the Newton loop, its conjugate gradients (to return
``A^T p``) and the preconditioner are written here, the factorizations are LAPACK's.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.sparse.linalg import LinearOperator

from ..._validation import check_array, check_positive
from ...operators import DenseOperator, ScipyOperator, as_operator
from ...stopping import DivergenceError, StopReason
from .._blas import blas_limit
from ..result import SolverResult
from .flow import (
    HadamardDualMap,
    NewtonConvergenceError,
    _dual_line_search,
    _max_step,
)

__all__ = ["MATRIX_FREE_ENTRIES", "WorkingSetPreconditioner", "hadamard_limit",
           "hadamard_newton_cg", "is_matrix"]

#: Working set caps: matrix columns are free to read, an operator's cost a forward each;
#: columns in closed form (``Operator.closed_form_columns``, ``O(m)`` each) up to m / 8 and a
#: block of _WORKING_BYTES: 2,097 columns at m = 20,000, where the support (2,000) exceeds
#: 1,024. Larger sets cost more in Gram updates of swapped columns and Cholesky factors than
#: they save in CG (at m = 20,000: 2,048 / 2,560 / 3,355 columns took 26 / 42 / 86 CPU s; at
#: m = 6,000, support 600: 1,500 columns 6.7 s, 1,024 3.8 s; docs/sparse.md).
_MAX_WORKING_MATRIX = 0.5  # fraction of m
_MAX_WORKING_OPERATOR = 1024
_WORKING_BYTES = 320 * 2**20
#: Columns evicted from the working set of an operator whose columns cost products (no closed
#: form) are kept for their next read in at most this many bytes (see _EvictedColumns).
_EVICTED_BYTES = 256 * 2**20
_MAX_WORKING_CLOSED_FORM = 0.125  # fraction of m
#: The limit starts at this fraction of m (the Cholesky factor of every Newton step costs
#: |W|^3 / 3) and rises to the cap once a CG solve needs more than _ENLARGE_CG iterations
#: (the tail of a tight tolerance; docs/scaling.md).
_START_FRACTION = 0.25
_ENLARGE_CG = 8
#: Forcing terms of inexact Newton: CG stops at rtol = clip(sqrt(relative residual)).
_CG_RTOL_MAX, _CG_RTOL_MIN = 0.5, 1e-6
_HEAVY = 1.0
_HEAVY_ROUNDS = 3
_SPREAD = 30.0
_SWAP = 4.0
#: The implicit preconditioner keeps its factor while the weights of its set and the rest's
#: mean stay within this ratio of the factored ones, but for this many columns (see
#: WorkingSetPreconditioner._still_good).
_STALE = 2.0
_STALE_OUTLIERS = 8
_MAX_DS = 4.0
#: A Newton step by P^{-1} g alone follows one that cut the gradient norm at least this much.
_QUICK_DECREASE = 0.5
#: ||A x|| below this fraction of ||y|| is left out of the gradient (see _gradient).
_NEGLIGIBLE = 1e-3
#: The gradient is updated through the working set while the change outside it is below
#: this fraction of the gradient's norm (see _Residual).
_UPDATE_REST = 3e-3
#: Once the relative residual is below this (past the plateau), the first trial caps only
#: the parts that grow beyond the negligible size _NEGLIGIBLE ||y|| / ||A||_F (see
#: _first_trial).
_UNCAP_BELOW = 0.5


def is_matrix(operator) -> bool:
    """Whether an operator is a matrix (dense, or scipy sparse): its columns are slices, and
    the dense solvers and the BDF flow need no densifying."""
    return isinstance(operator, DenseOperator) or (isinstance(operator, ScipyOperator)
                                                   and operator.sparse is not None)


class _Products:
    """``A v`` and ``A^T w`` of an operator, counted (``count``), and the conjugate-gradient
    iterations done with them (``n_cg``)."""

    def __init__(self, op):
        self.op, self.count, self.n_cg = op, 0, 0

    def forward(self, v):
        self.count += 1
        return np.asarray(self.op.forward(v), dtype=float)

    def adjoint(self, z):
        self.count += 1
        return np.asarray(self.op.adjoint(z), dtype=float).ravel()


class _Columns:
    """Columns of an operator and their squared norms, read as cheaply as its type allows.

    ``norms_sq``: the squared column norms when the caller knows them (one pass over a large
    matrix less); a dense matrix's columns are read by ``operator.columns`` (a slice, or the
    scaled slice of an implicitly equilibrated one, without copying the matrix).
    """

    def __init__(self, operator, norms_sq=None):
        self.operator = operator
        m, n = operator.shape
        self._dense = isinstance(operator, DenseOperator)
        self._sparse = None
        if not self._dense and is_matrix(operator):
            self._sparse = sp.csc_array(operator.sparse)
        if norms_sq is not None:
            self.norms_sq = np.asarray(norms_sq, dtype=float).ravel()
        elif self._sparse is not None:
            mat = self._sparse
            self.norms_sq = np.asarray(mat.multiply(mat).sum(axis=0), dtype=float).ravel()
        elif self._dense:
            mat = operator.matrix
            self.norms_sq = np.einsum("ij,ij->j", mat, mat)
        else:
            # an unstructured operator: columns of equal norm on average (||A||_F^2 / n)
            self.norms_sq = np.full(n, operator.frobenius_norm() ** 2 / n)
        if self._dense or self._sparse is not None:
            self.max_size = int(_MAX_WORKING_MATRIX * m)
        else:
            self.max_size = min(_operator_cap(operator), int(_MAX_WORKING_MATRIX * m))
        #: whether a column costs a product (``forward`` on unit vectors): worth keeping
        self.costly = not (self._dense or self._sparse is not None
                           or getattr(operator, "closed_form_columns", False))

    def take(self, index) -> np.ndarray:
        """The dense ``(m, len(index))`` block of columns ``index``."""
        if self._sparse is not None:
            return self._sparse[:, index].toarray()
        # a matrix's slice, or the operator's own column access: a closed form, or forward on
        # unit-vector blocks
        return np.asarray(self.operator.columns(index), dtype=float)


class _EvictedColumns:
    """Columns evicted from a working set, kept for their next read (the set's churn reads the
    same columns again and again), the earliest evicted dropped first when full.

    Parameters
    ----------
    m : int
        Rows of a column.
    size : int
        Most columns kept.
    """

    def __init__(self, m: int, size: int):
        self._buf = np.empty((m, size), order="F")
        self._slot = {}  # column -> slot, in eviction order (a dict keeps insertion order)
        self._free = list(range(size))

    def __len__(self) -> int:
        return len(self._slot)

    def put(self, index, block) -> None:
        """Keep the columns ``block[:, i]`` of the indices ``index``."""
        for i, j in enumerate(np.asarray(index).tolist()):
            if j in self._slot:
                continue
            if not self._free:  # drop the earliest evicted
                self._free.append(self._slot.pop(next(iter(self._slot))))
            slot = self._free.pop()
            self._buf[:, slot] = block[:, i]
            self._slot[j] = slot

    def take(self, index, out) -> np.ndarray:
        """Copy the kept columns among ``index`` into their places in ``out`` (and forget them:
        they are in the set again); return the mask of those found."""
        found = np.zeros(len(index), dtype=bool)
        for i, j in enumerate(np.asarray(index).tolist()):
            slot = self._slot.pop(j, None)
            if slot is not None:
                out[:, i] = self._buf[:, slot]
                self._free.append(slot)
                found[i] = True
        return found


def _operator_cap(operator) -> int:
    """Most working-set columns of a matrix-free operator (see ``_WORKING_BYTES``)."""
    if getattr(operator, "closed_form_columns", False):
        m = operator.shape[0]
        return max(_MAX_WORKING_OPERATOR,
                   min(_WORKING_BYTES // (8 * m), int(_MAX_WORKING_CLOSED_FORM * m)))
    return _MAX_WORKING_OPERATOR


def _largest_first(weight, count):
    """The indices of the ``count`` largest weights, largest first (a partition, then a sort
    of those only)."""
    n = weight.size
    count = min(max(int(count), 0), n)
    if count == 0:
        return np.zeros(0, dtype=int)
    top = np.argpartition(weight, n - count)[n - count:] if count < n else np.arange(n)
    return top[np.argsort(weight[top])[::-1]]


class WorkingSetPreconditioner:
    """``P = A_W D_W A_W^T + delta I`` for ``H = A D A^T``, inverted by Woodbury.

    Parameters
    ----------
    columns : _Columns
        Access to the operator's columns and their squared norms.
    limit : int, optional
        Most columns in ``W`` for now (default and at most ``columns.max_size``; see
        :meth:`enlarge`).
    products : _Products, optional
        The operator's counted products. Given, and for an operator whose column Gram matrix
        has a closed form (``Operator.closed_form_gram``), ``W`` keeps no columns
        (``implicit``): ``A_W^T v = (A^T v)_W`` and ``A_W t = A t`` (``t`` on ``W``) by
        products, the Gram matrix by ``operator.column_gram``. For a fast transform without
        it (``Operator.fast_products``) the columns are cached for the Gram matrix only and
        applied by products too (``by_products``).

    Notes
    -----
    :meth:`update` (at each Newton step) adds to ``W`` the columns with
    ``D_j ||a_j||^2 > tr(H) / m`` (a rank-one term above the mean diagonal), largest first, up
    to ``limit``; ``delta = sum_{j not in W} D_j ||a_j||^2 / m`` replaces the rest by its mean
    eigenvalue (exact when that part is a multiple of the identity, as for Gaussian or
    subsampled orthogonal matrices with equal weights, i.e. early on the path).

    The implicit form is for operators whose products cost far less than the ``2 m |W|``
    of a pass over the cached columns, and whose Gram entries cost ``O(1)`` instead of the
    ``2 m`` of an inner product of columns (a subsampled DCT at ``n = 10^5``: a product
    about 2 ms, a pass over 2,000 columns 30 ms; docs/sparse.md).
    """

    def __init__(self, columns: _Columns, limit: int | None = None, products=None):
        self._cols = columns
        m = columns.operator.shape[0]
        self.m = m
        self.index = np.zeros(0, dtype=int)
        self.n_read = 0  # columns read (or Gram rows computed) in all
        self.n_factors = 0  # Cholesky factorizations
        self._factor = None  # of the last update (None: none yet, or it failed)
        self._products = products
        self.implicit = products is not None and bool(
            getattr(columns.operator, "closed_form_gram", False))
        self.by_products = self.implicit or (products is not None and bool(
            getattr(columns.operator, "fast_products", False)))
        cap = max(columns.max_size, 0)
        self.limit = cap if limit is None else min(max(int(limit), 0), cap)
        # preallocated: columns are added and evicted in place, never the whole set copied
        self._block_buf = None if self.implicit else np.empty((m, cap), order="F")
        self._gram_buf = np.empty((cap, cap), order="F")
        # an operator's columns cost products: keep the evicted ones (bounded in bytes)
        size = min(columns.operator.shape[1], _EVICTED_BYTES // (8 * max(m, 1)))
        self._evicted = _EvictedColumns(m, size) if (
            columns.costly and not self.implicit and size > 0) else None

    def enlarge(self) -> None:
        """Raise the limit to the cap (``columns.max_size``)."""
        self.limit = max(self._cols.max_size, 0)

    @property
    def size(self) -> int:
        return int(self.index.size)

    @property
    def _block(self):
        return self._block_buf[:, : self.size]

    @property
    def columns(self) -> np.ndarray | None:
        """The ``(m, size)`` columns of the working set (``index``); None if ``implicit``."""
        return None if self.implicit else self._block

    @property
    def _gram(self):
        return self._gram_buf[: self.size, : self.size]

    def _keep(self, keep):
        """Drop the cached columns outside the positions ``keep``: kept columns past the
        new size move into the holes (only the evicted slots are rewritten, not the set)."""
        size, k = self.size, keep.size
        drop = np.setdiff1d(np.arange(size), keep)
        holes, movers = drop[drop < k], keep[keep >= k]
        if self._evicted is not None:
            self._evicted.put(self.index[drop], self._block_buf[:, drop])
        if not self.implicit:
            self._block_buf[:, holes] = self._block_buf[:, movers]
        gram = self._gram_buf
        gram[holes, :size] = gram[movers, :size]
        gram[:size, holes] = gram[:size, movers]
        index = self.index.copy()
        index[holes] = index[movers]
        self.index = index[:k]

    def _grow(self, new):
        if new.size == 0:
            return
        k, j = self.size, self.size + new.size
        self.n_read += new.size
        if self.implicit:
            op = self._cols.operator
            cross = op.column_gram(self.index, new)
            self._gram_buf[k:j, k:j] = op.column_gram(new, new)
        else:
            block = self._block_buf[:, k:j]
            # the columns evicted earlier from the cache, the rest read (products)
            found = (self._evicted.take(new, block) if self._evicted is not None
                     else np.zeros(new.size, dtype=bool))
            if not np.all(found):
                block[:, ~found] = self._cols.take(new[~found])
            self.n_read -= int(np.count_nonzero(found))
            cross = self._block.T @ block
            self._gram_buf[k:j, k:j] = block.T @ block
        self._gram_buf[:k, k:j] = cross
        self._gram_buf[k:j, :k] = cross.T
        self.index = np.concatenate([self.index, new])

    def _wanted(self, weight, total):
        """The heavy columns, largest first: weight above ``_HEAVY`` times the mean diagonal
        of what the set leaves out (a few rounds of that fixed point), at most the cap."""
        wanted = np.zeros(0, dtype=int)
        order = _largest_first(weight, self.limit)
        # while the weights are flat (early on the path) delta I is a good preconditioner:
        # only columns well above the typical weight are worth reading
        floor = _SPREAD * float(np.median(weight))
        for _ in range(_HEAVY_ROUNDS):
            rest = (total - float(np.sum(weight[wanted]))) / self.m
            count = int(np.sum(weight[order] > max(_HEAVY * rest, floor)))
            if count <= wanted.size:
                break
            wanted = order[:count]
        return wanted

    def update(self, d: np.ndarray, shift: float = 0.0) -> None:
        """Re-weight for the Hessian ``A D A^T + shift I`` at ``D = diag(d)`` (``shift``: the
        ``I / h`` of an implicit step on the path, see :mod:`.krylov_path`)."""
        weight = d * self._cols.norms_sq
        total = float(np.sum(weight))
        wanted = self._wanted(weight, total)
        member = np.zeros(weight.size, dtype=bool)  # masks: np.isin sorts at every step
        member[self.index] = True
        new = wanted[~member[wanted]]  # heaviest first
        free = self.limit - self.size
        evict = None
        if new.size > free:
            # full: swap a cached column that is not wanted (lightest first) for a new one
            # only if the new one is _SWAP times heavier (no churn between near-equal weights)
            is_wanted = np.zeros(weight.size, dtype=bool)
            is_wanted[wanted] = True
            spare = np.flatnonzero(~is_wanted[self.index])
            spare = spare[np.argsort(weight[self.index[spare]])]
            k = min(new.size - free, spare.size)
            better = weight[new[free:free + k]] > _SWAP * weight[self.index[spare[:k]]]
            n_swap = int(np.argmin(better)) if not np.all(better) else k
            evict = spare[:n_swap] if n_swap else None
            new = new[:free + n_swap]
        if self.implicit and self._still_good(d, weight, total, new, shift):
            return
        if evict is not None:
            self._keep(np.setdiff1d(np.arange(self.size), evict))
        self._grow(np.sort(new))
        dw = d[self.index]
        self.delta = self._rest(weight, total) + float(shift)
        self._factor, self._shift, self._dw = None, float(shift), dw
        if self.size:
            # (delta D_W^-1 + A_W^T A_W) is the Woodbury inner matrix; with S = D_W^(1/2) it is
            # S^-1 (delta I + S G S) S^-1: factor the balanced middle (condition of the data)
            root = np.sqrt(dw)
            inner = self._gram * root[:, None]
            inner *= root[None, :]
            inner[np.diag_indices_from(inner)] += self.delta
            self._root = root
            self.n_factors += 1
            try:
                self._factor = cho_factor(inner, overwrite_a=True, check_finite=False)
            except LinAlgError:
                self._factor = None

    def _rest(self, weight, total) -> float:
        """The mean diagonal of what the set leaves out, summed directly (total minus the set
        cancels)."""
        outside = np.ones(weight.size, dtype=bool)
        outside[self.index] = False
        return max(float(np.sum(weight[outside])) / self.m, np.finfo(float).eps * total / self.m,
                   1e-300)

    def _still_good(self, d, weight, total, new, shift) -> bool:
        """Whether the last factor may stand for this step's ``P`` (implicit form, where it
        costs more than a dozen CG iterations): the same shift, the rest's mean within
        ``_STALE`` times the factored ``delta``, and at most ``_STALE_OUTLIERS`` columns whose
        eigenvalue scale in ``P`` (``delta + D_j ||a_j||^2``) moved by more than ``_STALE``
        times, counting the columns the set would take in (each such outlier costs CG about
        one iteration). A stale ``P`` is still a fixed symmetric positive definite
        preconditioner: CG and the line search stay exact, only a few iterations longer."""
        if self._factor is None or shift != self._shift:
            return False
        rest = self._rest(weight, total) + shift
        if not 1.0 / _STALE <= rest / self.delta <= _STALE:
            return False
        norms = self._cols.norms_sq[self.index]
        ratio = (rest + d[self.index] * norms) / (self.delta + self._dw * norms)
        moved = np.count_nonzero((ratio > _STALE) | (ratio < 1.0 / _STALE)) + new.size
        return moved <= _STALE_OUTLIERS

    def solve(self, v: np.ndarray) -> np.ndarray:
        """``P^{-1} v``."""
        if self._factor is None:
            return v / self.delta
        if self.by_products:
            t = self._root * self._products.adjoint(v)[self.index]
        else:
            t = self._root * (self._block.T @ v)
        t = cho_solve(self._factor, t, check_finite=False)
        if self.by_products:
            spread = np.zeros(self._cols.operator.shape[1])
            spread[self.index] = self._root * t
            return (v - self._products.forward(spread)) / self.delta
        return (v - self._block @ (self._root * t)) / self.delta

    def as_linear_operator(self) -> LinearOperator:
        return LinearOperator((self.m, self.m), matvec=self.solve, dtype=float)


def hadamard_newton_cg(
    operator,
    y,
    *,
    depth: int = 2,
    signed: bool = True,
    init_scale: float = 1e-6,
    tol: float = 1e-10,
    max_iter: int = 500,
    max_cg_iter: int = 500,
    working_set: bool = True,
    blas_threads: int | None = 1,
    column_norms_sq: np.ndarray | None = None,
) -> SolverResult:
    """The limit of the Hadamard gradient flow by matrix-free Newton-CG on its dual.

    The same limit as :func:`~overparam.solvers.sparse.flow.hadamard_newton` (see the module
    docstring), for an underdetermined system with a solution (``A x = y`` consistent): only
    ``operator.forward`` and ``operator.adjoint`` are used, plus the columns of a small working
    set for the preconditioner.

    Parameters
    ----------
    operator : Operator, ndarray, sparse matrix or LinearOperator
        The measurement operator (anything :func:`~overparam.operators.as_operator` accepts).
    y : ndarray of shape (m,)
    depth, signed, init_scale
        As :func:`~overparam.solvers.sparse.flow.hadamard_newton`.
    tol : float, default=1e-10
        Stop when ``||A x - y|| <= tol ||y||``; "converged" is reported only then.
    max_iter : int, default=500
        Newton steps.
    max_cg_iter : int, default=500
        Conjugate-gradient iterations per Newton step.
    working_set : bool, default=True
        Precondition CG with the working set (False: ``delta I`` only, plain CG).
    blas_threads : int or None, default=1
        BLAS threads while solving (None: leave as configured).
    column_norms_sq : ndarray of shape (n,), optional
        The squared column norms of the operator if known (they weight the working set;
        computed from a matrix, estimated as ``||A||_F^2 / n`` for an operator).

    Returns
    -------
    SolverResult
        ``n_iter`` Newton steps; ``info["n_cg"]`` (CG iterations in all), ``info["n_products"]``
        (operator applications), ``info["n_updated"]`` (gradients updated without a
        product), ``info["working_set"]`` (final size), ``info["n_factors"]`` (Cholesky
        factors of the preconditioner), ``info["dual"]``.

    Raises
    ------
    NewtonConvergenceError
        If the line search stalls or ``max_iter`` is reached before ``||A x - y|| <= tol ||y||``
        (e.g. an inconsistent system, whose limit is a least-squares point: use the dense
        solver or the flow).
    """
    with blas_limit(blas_threads):
        return _newton_cg(as_operator(operator), y, depth, signed, init_scale, tol, max_iter,
                          max_cg_iter, working_set, column_norms_sq)


def _newton_cg(op, y, depth, signed, init_scale, tol, max_iter, max_cg_iter, working_set,
               column_norms_sq=None):
    y = check_array(y, "y", ndim=1)
    m, n = op.shape
    if y.shape[0] != m:
        raise ValueError(f"A has {m} rows but y has {y.shape[0]} entries")
    if len(op.input_shape) != 1:
        raise ValueError("the Hadamard solvers need an operator on vectors (1-D signals)")
    check_positive(tol, "tol")
    check_positive(max_iter, "max_iter", integer=True)
    check_positive(max_cg_iter, "max_cg_iter", integer=True)
    dmap = HadamardDualMap(depth, signed, init_scale)
    start = time.perf_counter()
    A = _Products(op)
    n_quick = 0
    columns = _Columns(op, column_norms_sq)
    precond = WorkingSetPreconditioner(columns, int(_START_FRACTION * m), products=A) \
        if working_set else None
    y_norm = float(np.linalg.norm(y))
    w, s = np.zeros(m), np.zeros(n)
    n_backtracks, it, reason = 0, 0, None
    a_norm = float(np.sqrt(np.sum(columns.norms_sq)))  # ||A||_F >= ||A||_2 (see _gradient)
    residual = _Residual(A, y, y_norm, a_norm, columns.norms_sq)
    g, exact = residual.exact(dmap.signal(s))
    # from the plateau (gradient -y) the first step is capped by its first trial, so its scale
    # does not matter: P^{-1} g is CG's first iterate up to that scale, less a product
    quick = precond is not None and not exact
    for it in range(1, max_iter + 1):
        g_norm = float(np.linalg.norm(g))
        if not exact and g_norm <= tol * y_norm:
            g, exact = residual.exact(dmap.signal(s))  # only an exact gradient converges
            g_norm = float(np.linalg.norm(g))
        if exact and g_norm <= tol * y_norm:
            reason, it = StopReason.CONVERGED, it - 1
            break
        d = dmap.derivative(s)
        rel = g_norm / y_norm
        # Eisenstat-Walker sqrt(rel), but no tighter than what reaching tol needs
        rtol = min(_CG_RTOL_MAX, max(_CG_RTOL_MIN, np.sqrt(rel), 0.5 * tol / rel))
        n_cg = A.n_cg
        step, ds = _newton_step(A, d, g, precond, rtol, max_cg_iter, quick=quick)
        n_cg = A.n_cg - n_cg
        if quick and precond is not None:
            n_quick += 1
        decrement = float(g @ step)
        negligible = _NEGLIGIBLE * y_norm / a_norm if rel < _UNCAP_BELOW else None
        t, new_s, halvings = (None, s, 0) if not (np.isfinite(decrement) and decrement > 0) \
            else _dual_line_search(dmap, s, ds, float(y @ step), decrement,
                                   _first_trial(dmap, s, ds, negligible))
        n_backtracks += halvings
        if t is None and not exact and residual.updated:
            # a direction from an updated gradient failed: redo the step from the exact one
            g, exact = residual.exact(dmap.signal(s))
            quick = False
            continue
        if not (np.isfinite(decrement) and decrement > 0):
            raise NewtonConvergenceError(f"no descent direction at Newton step {it}")
        if t is None:
            raise NewtonConvergenceError(
                f"Newton-CG line search stalled at step {it} (relative residual "
                f"{g_norm / max(y_norm, 1e-300):.3e}); the system may be inconsistent or "
                "the init too small for double precision at this depth")
        # a step from an updated gradient that needed CG or a shorter step: the next exact
        trusted = not (residual.updated and n_cg > 1)
        w, s = w - t * step, new_s
        g, exact = residual.update(dmap.signal(s), precond) if trusted \
            else residual.exact(dmap.signal(s))
        # While CG stops after one iteration, its step is P^{-1} g up to a scale (which the
        # line search finds): skip the Hessian product (a third of a step's products) as long
        # as such steps take their full trial and either were capped by it (the plateau of
        # the path: the scale does not matter) or halved the gradient; else back to CG.
        quick = precond is not None and n_cg <= 1 and halvings == 0 and (
            t < 1.0 or float(np.linalg.norm(g)) <= _QUICK_DECREASE * g_norm)
        if precond is not None and n_cg > _ENLARGE_CG:
            precond.enlarge()
    if reason is None:
        raise NewtonConvergenceError(
            f"Newton-CG did not converge in {max_iter} steps (relative residual "
            f"{np.linalg.norm(g) / max(y_norm, 1e-300):.3e})")
    x = dmap.signal(s)
    if not np.all(np.isfinite(x)):
        raise DivergenceError("non-finite flow limit from Newton-CG")
    info = {"n_backtracks": n_backtracks, "dual": w, "final_loss": 0.5 * float(g @ g),
            "time": np.inf, "clock": "flow_time", "solver": "newton-cg", "n_cg": A.n_cg,
            "n_products": A.count, "n_quick": n_quick, "n_updated": residual.n_updated,
            "working_set": precond.size if precond is not None else 0,
            "columns_read": precond.n_read if precond is not None else 0,
            "n_factors": precond.n_factors if precond is not None else 0}
    return SolverResult(coef=x, params=dmap.factors(s), n_iter=it,
                        wall_time=time.perf_counter() - start, stop_reason=reason, info=info)


class _Residual:
    """The gradient ``A x - y`` of the dual: exact (:meth:`exact`, a product) or updated from
    the last exact one through the working set's cached columns (:meth:`update`).

    Past the plateau most of the change of ``x`` between Newton steps is on the working set
    ``W`` (the heavy coordinates): ``A x - y = g_ref + A_W (x - x_ref)_W + A_R (x - x_ref)_R``
    with the first two terms exact and cheap (``A_W`` is in memory). The rest ``R`` is left
    out while its typical size ``(sum_R ||a_j||^2 dx_j^2)^(1/2)`` is below ``_UPDATE_REST``
    times the gradient's norm; else (and on the plateau: ``-y``, see :func:`_gradient`) the
    product is made, and after a step from an updated gradient that needed CG iterations (a
    1 % error stalled N = 10,000, seed 8, at 454 products; docs/sparse.md). Only directions
    use an updated gradient: the line search is on ``Phi`` itself, a failed one is redone
    from the exact gradient, and convergence is declared on an exact gradient alone.
    """

    def __init__(self, products, y, y_norm, a_norm, norms_sq):
        self._products, self._y, self._y_norm, self._a_norm = products, y, y_norm, a_norm
        self._norms_sq = norms_sq
        self._x_ref = self._g_ref = None
        self.updated = False  # whether the last gradient was an update
        self.n_updated = 0

    def exact(self, x):
        g, exact = _gradient(self._products.forward, x, self._y, self._y_norm, self._a_norm)
        self._x_ref, self._g_ref = (x, g) if exact else (None, None)
        self.updated = False
        return g, exact

    def update(self, x, precond):
        if self._g_ref is None or precond is None or precond.size == 0 or precond.by_products:
            return self.exact(x)
        dx = x - self._x_ref
        index = precond.index
        moved = dx[index]
        rest_sq = float(self._norms_sq @ dx**2 - self._norms_sq[index] @ moved**2)
        g = self._g_ref + precond.columns @ moved
        if not np.sqrt(max(rest_sq, 0.0)) <= _UPDATE_REST * float(np.linalg.norm(g)):
            return self.exact(x)
        self.updated = True
        self.n_updated += 1
        return g, False


def _gradient(forward, x, y, y_norm, a_norm):
    """``(A x - y, True)``, or ``(-y, False)`` without a product while ``||A x|| <=
    ||A||_F ||x||`` is below ``_NEGLIGIBLE ||y||`` (the plateau of the path from a tiny init:
    a search direction from ``-y`` is as good). Only directions use the approximation
    (``||A||_F`` may be an estimate for a large operator): convergence is tested on exact
    gradients alone, and the line search on ``Phi`` itself.
    """
    if a_norm * float(np.linalg.norm(x)) <= _NEGLIGIBLE * y_norm:
        return -y, False
    return forward(x) - y, True


def _first_trial(dmap, s, ds, negligible=None) -> float:
    """First trial step: the dense solver's (a growing part changes by at most ``e^4``), but
    at depth 2 by at most ``e^(4 _MAX_DS)``: from a small init the plateau of the path is
    crossed in fewer steps (the line search on ``Phi`` still guards every step).

    ``negligible`` (depth 2, past the plateau): a coordinate may also move freely while its
    signal stays below this size. Only parts that become large can overflow or overshoot;
    the preconditioned direction moves the tiny off-support coordinates by far more than
    ``_MAX_DS``, and capping them shortened every step of the final, quadratic phase.
    """
    if dmap.depth != 2:
        return _max_step(dmap, s, ds)
    if negligible is None:
        peak = float(np.max(np.abs(ds)) if dmap.signed else max(np.max(-ds), 0.0))
        return 1.0 if peak == 0 else min(1.0, _MAX_DS / peak)
    # |x| = 2 alpha sinh(4 |s|) (u^2 = alpha e^(4s)) stays below `negligible` up to `level`
    level = np.log(max(negligible, 1e-300) / dmap.init_scale) / 4
    with np.errstate(divide="ignore", invalid="ignore"):
        if dmap.signed:  # |s - t ds| <= bound
            bound = np.maximum(np.abs(s) + _MAX_DS, level)
            lengths = (bound + np.sign(ds) * s) / np.abs(ds)
        else:  # only a rising s (ds < 0) grows the part
            bound = np.maximum(s + _MAX_DS, level)
            lengths = np.where(ds < 0, (bound - s) / -ds, np.inf)
    return float(min(1.0, np.min(lengths, initial=1.0, where=ds != 0)))


def _newton_step(products, d, g, precond, rtol, max_cg_iter, *, quick=False, shift=0.0):
    """An approximate solution ``p`` of ``(A D A^T + shift I) p = g`` and ``A^T p``, by
    preconditioned CG.

    Written out rather than scipy's ``cg`` because each iteration already computes
    ``A^T`` of its search direction: summing those gives ``A^T p`` without another product
    (the line search and the next iterate need it). Stops at ``||r|| <= rtol ||g||``, after
    ``max_cg_iter`` iterations, or at a breakdown (curvature not positive and finite: the
    iterate so far, zero at the first iteration, which the caller refuses as no descent).
    ``products``: a :class:`_Products` (counts the products and the CG iterations).
    ``quick``: return ``P^{-1} g`` itself, without a Hessian product (see :func:`_newton_cg`).
    ``shift``: the ``I / h`` of an implicit step on the path (:mod:`.krylov_path`).
    """
    if precond is not None:
        precond.update(d, shift=shift)
        solve = precond.solve
    else:
        solve = None
    p, atp = np.zeros(g.size), np.zeros(d.size)
    r = g.copy()
    z = solve(r) if solve is not None else r.copy()
    if quick and solve is not None:
        return z, products.adjoint(z)
    direction, rz = z, float(r @ z)
    target = rtol * float(np.linalg.norm(g))
    with np.errstate(all="ignore"):
        for _ in range(max_cg_iter):
            at_dir = products.adjoint(direction)
            h_dir = products.forward(d * at_dir)
            if shift:
                h_dir = h_dir + shift * direction
            products.n_cg += 1
            curvature = float(direction @ h_dir)
            if not (np.isfinite(curvature) and curvature > 0 and np.isfinite(rz)):
                break
            a = rz / curvature
            p += a * direction
            atp += a * at_dir
            r -= a * h_dir
            if float(np.linalg.norm(r)) <= target:
                break
            z = solve(r) if solve is not None else r.copy()
            rz, rz_old = float(r @ z), rz
            direction = z + (rz / rz_old) * direction
    return p, atp


#: Newton-CG replaces the dense Hessian from this many matrix entries ``m n`` on (the dense
#: Hessian's ``m^2 n`` overtakes the Krylov products; see benchmarks/scale.py).
MATRIX_FREE_ENTRIES = 50_000
#: Largest operator (``m n`` entries) densified by the fallback when Newton-CG fails.
_DENSE_FALLBACK_ENTRIES = 25_000_000


def hadamard_limit(operator, y, *, depth: int = 2, signed: bool = True,
                   init_scale: float = 1e-6, tol: float = 1e-10, max_iter: int = 500,
                   blas_threads: int | None = 1,
                   column_norms_sq: np.ndarray | None = None) -> SolverResult:
    """The flow's limit by the cheaper of the dense and the matrix-free Newton solvers.

    Newton-CG (:func:`hadamard_newton_cg`) for depth 2, an underdetermined system (``m < n``)
    and either an operator that is not a matrix or a matrix of at least
    :data:`MATRIX_FREE_ENTRIES` entries; otherwise, or if Newton-CG fails (inconsistent
    system, stalled line search) and the operator has at most 25 million entries, the dense
    :func:`~overparam.solvers.sparse.flow.hadamard_newton`. Both stop at the same exact
    optimality test, so they give the same limit to ``tol``. Depth ``L > 2`` stays dense:
    its Hessian's rest part is too ill-conditioned for the working-set preconditioner (CG
    stalls). ``column_norms_sq``: see :func:`hadamard_newton_cg`.

    Raises
    ------
    NewtonConvergenceError
        As the solver that ran.
    """
    from .flow import hadamard_newton

    op = as_operator(operator)
    m, n = op.shape
    matrix = is_matrix(op)
    kwargs = {"depth": depth, "signed": signed, "init_scale": init_scale, "tol": tol,
              "max_iter": max_iter, "blas_threads": blas_threads}
    if depth == 2 and m < n and (not matrix or m * n >= MATRIX_FREE_ENTRIES):
        try:
            return hadamard_newton_cg(op, y, column_norms_sq=column_norms_sq, **kwargs)
        except NewtonConvergenceError:
            if m * n > _DENSE_FALLBACK_ENTRIES:
                raise
    return hadamard_newton(op, y, **kwargs)
