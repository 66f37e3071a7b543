"""The limit of a structured path once it has learned its support: least squares on it.

A path from a small init learns its structure (groups) one after another and then creeps to
its limit: the last phase is gradient descent on a least-squares problem restricted to the
learned groups while the groups it excited on the way decay, at a rate set by the (small)
residual, so reaching the limit to a tight tolerance can take orders of magnitude more
iterations than learning the support. When the learned columns are linearly independent and
explain ``y``, the interpolant supported on them is unique: where the path stays on those
groups and the rest decay to zero, it can only end there; this module computes it directly.
It is checked, not assumed: a candidate is returned only when the learned columns have full
rank, its residual meets the tolerance and the path is already close to it, otherwise the
caller keeps iterating.

No library offers this for a user-defined grouping of an implicit operator, so it is written
here: the columns of the learned groups come from ``operator.columns`` (a slice of a dense
matrix, else products with unit vectors).

When ``A`` has full column rank the least-squares point is unique, and it is the limit
whatever the path (:func:`unique_least_squares`): consistent or not, that is where a run to
the limit ends, with no need to follow the creep.
"""

from __future__ import annotations

import numpy as np

__all__ = ["learned_groups", "smallest_support_least_squares", "span_explains",
           "support_least_squares", "unique_least_squares"]


def learned_groups(magnitudes: np.ndarray, init_magnitude: float,
                   ratio: float = 1e-4) -> np.ndarray:
    """Indices of the groups that the path has learned: magnitude above ``ratio`` times the
    largest, and above the geometric mean of the init magnitude and the largest one.

    Groups that the path excited but is unlearning (often a few percent of the largest) are
    included: least squares on the learned groups sets them to their limit (zero, when the
    columns are independent and the other groups explain ``y``) at once.
    """
    top = float(np.max(magnitudes)) if magnitudes.size else 0.0
    if not top > 0:
        return np.zeros(0, dtype=int)
    threshold = max(ratio * top, np.sqrt(max(init_magnitude, 0.0) * top))
    return np.flatnonzero(magnitudes > threshold)


def support_least_squares(operator, y, x, columns, *, tol: float, near: float = 1e-2,
                          rcond: float = 1e-10):
    """The interpolant supported on ``columns``, if the path ``x`` is about to reach it.

    Parameters
    ----------
    operator : Operator
        Acting on flat signals of size ``n``.
    y : ndarray of shape (m,)
    x : ndarray of shape (n,)
        The current iterate.
    columns : ndarray of int
        The learned coordinates.
    tol : float
        Accept only if ``||A x_new - y|| <= tol ||y||``.
    near : float, default=1e-2
        Accept only if ``||x_new - x|| <= near ||x_new||``: the path has nearly arrived, so
        what it still has to travel is too short for a group outside ``columns`` to grow
        (their growth rate is proportional to the residual, already small).
    rcond : float, default=1e-10
        The learned columns must have full rank: smallest over largest singular value above
        this.

    Returns
    -------
    ndarray of shape (n,) or None
        The candidate, or None when the columns are too many, rank-deficient, do not
        explain ``y``, or the path is still far from it.
    """
    return smallest_support_least_squares(operator, y, x, [columns], tol=tol, near=near,
                                          rcond=rcond)


def smallest_support_least_squares(operator, y, x, column_sets, *, tol: float,
                                   near: float = 1e-2, rcond: float = 1e-10):
    """:func:`support_least_squares` on the first of nested ``column_sets`` that explains ``y``.

    The learned groups can be more than the measurements: those the path excited on the way
    decay only as fast as the (small) residual lets them, and until they do, least squares on
    all of them is not unique. Tried from the smallest set, the first one whose interpolant
    meets ``tol`` is the candidate; the same checks then apply (full rank, the path within
    ``near`` of it, which bounds what the left-out groups still hold).

    Parameters
    ----------
    column_sets : sequence of ndarray of int
        Nested coordinate sets, smallest first; those with more than ``m`` columns are skipped.
    operator, y, x, tol, near, rcond :
        As in :func:`support_least_squares`.

    Returns
    -------
    candidate : ndarray of shape (n,) or None
    """
    y = np.asarray(y, dtype=float)
    m, n = operator.shape
    sets = [np.asarray(c, dtype=int) for c in column_sets]
    sets = [c for c in sets if 0 < c.size <= m]
    if not sets:
        return None
    design = operator.columns(sets[-1])  # nested: the largest holds the others
    bound = tol * np.linalg.norm(y)
    # The residual of least squares can only grow as columns are dropped: when the largest
    # set does not explain y, no subset does (one solve instead of one per set; noisy data).
    if not span_explains(design, y, bound):
        return None
    for subset in sets:
        size = subset.size
        solution, _, rank, singular = np.linalg.lstsq(design[:, :size], y, rcond=None)
        if rank < size or singular[-1] <= rcond * singular[0]:
            return None
        residual = np.linalg.norm(design[:, :size] @ solution - y)
        if not np.isfinite(residual) or residual > bound:
            continue
        candidate = np.zeros(n)
        candidate[subset] = solution
        if np.linalg.norm(candidate - x) > near * np.linalg.norm(candidate):
            return None
        return candidate
    return None


def span_explains(design: np.ndarray, y: np.ndarray, bound: float) -> bool:
    """Whether the residual of ``y`` off the span of the columns of ``design`` is at most
    ``bound``.

    Read off a reduced (Householder) ``Q``, whose span contains the columns also when they
    are dependent: its residual is at most that of least squares on the columns, so a
    residual above the bound rejects safely.
    """
    q = np.linalg.qr(design)[0]
    return bool(np.linalg.norm(y - q @ (q.T @ y)) <= bound)


#: :func:`unique_least_squares` forms ``A`` densely only up to this many entries (128 MiB).
MAX_DENSE_ENTRIES = 2**24


def unique_least_squares(operator, y, *, gradient_rtol: float = 1e-8):
    """The least-squares point of ``A x = y`` if it is unique (``A`` of full column rank).

    A structured factorization ``x = u^2 v`` run from a small init to its limit ends at a
    stationary point of the loss; every stationary point with all magnitudes nonzero is a
    least-squares point (the gradient in ``v_l`` is ``u_l^2`` times ``g_l = A_l^T r``
    projected off ``v_l``, and the one in ``u_l`` is ``2 u_l <v_l, g_l>``: both vanish only at
    ``g_l = 0``). When that point is unique it is the limit of the flow, whatever the path
    and whether ``A x = y`` has a solution or not (overdetermined noisy data): it is computed
    here directly instead of crept towards. Checked, not assumed: ``A`` must have full
    numerical column rank (as ``numpy.linalg.lstsq`` counts it) and the answer must pass
    ``||A^T r|| <= gradient_rtol ||A||_F ||r||``.

    Parameters
    ----------
    operator : Operator
        ``(m, n)``, formed densely (``n`` products) when ``n <= m`` and ``m n`` is at most
        :data:`MAX_DENSE_ENTRIES`.
    y : ndarray of shape (m,)
    gradient_rtol : float, default=1e-8
        The optimality check (about ``sqrt(eps)``; rounding gives ``eps cond(A)``).

    Returns
    -------
    ndarray of shape (n,) or None
        None when ``n > m``, ``A`` is too large to form, rank-deficient, or the check fails.
    """
    m, n = operator.shape
    if n > m or m * n > MAX_DENSE_ENTRIES:
        return None
    y = np.asarray(y, dtype=float)
    design = operator.to_dense().reshape(m, n)
    x, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < n or not np.all(np.isfinite(x)):
        return None
    r = design @ x - y
    r_norm = float(np.linalg.norm(r))
    if r_norm > 0 and (np.linalg.norm(design.T @ r)
                       > gradient_rtol * np.linalg.norm(design) * r_norm):
        return None
    return x
