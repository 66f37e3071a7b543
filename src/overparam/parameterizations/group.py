"""Diagonally grouped linear network (DGLNN): ``w = (D u)^2 ⊙ v``, one magnitude per group."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Parameterization, Params

__all__ = ["GroupHadamard", "as_group_labels"]

_DIRECTIONS = ("correlation", "uniform", "random", "zero")


def as_group_labels(groups, n_features: int | None = None) -> np.ndarray:
    """Normalize a group specification to one integer label per feature, labels ``0..L-1``.

    Parameters
    ----------
    groups : int, sequence of index arrays, or array of labels
        - an int ``g``: contiguous groups of size ``g`` (needs ``n_features``, divisible by ``g``);
        - a sequence of index arrays (a partition of ``0..p-1``, sizes may differ);
        - an array of length ``p`` with a (hashable, sortable) label per feature.
    n_features : int, optional
        The number of features ``p``, checked against the specification when given.

    Returns
    -------
    ndarray of int, shape (p,)
        Group label of each feature; labels are ``0..L-1`` in order of first appearance.
    """
    if isinstance(groups, bool):
        raise TypeError("groups must be an int, a list of index arrays or a label per feature")
    if isinstance(groups, int | np.integer):
        check_positive(int(groups), "groups", integer=True)
        if n_features is None:
            raise ValueError("groups given as a group size needs n_features")
        if n_features % int(groups):
            raise ValueError(f"n_features={n_features} is not a multiple of the group size "
                             f"{int(groups)}")
        return np.arange(n_features) // int(groups)
    if isinstance(groups, np.ndarray) and groups.ndim == 1 and groups.dtype != object:
        is_labels = True
    else:
        items = list(groups)
        if not items:
            raise ValueError("groups is empty")
        is_labels = all(np.ndim(g) == 0 for g in items)
    if is_labels:
        raw = np.asarray(groups)
        if raw.ndim != 1 or raw.size == 0:
            raise ValueError(f"group labels must be a non-empty 1-d array, got shape {raw.shape}")
        if n_features is not None and raw.size != n_features:
            raise ValueError(f"got {raw.size} group labels for {n_features} features")
        _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # relabel by first appearance
        return order[inverse].astype(np.intp)
    index_sets = [np.atleast_1d(np.asarray(g)) for g in items]
    for k, idx in enumerate(index_sets):
        if idx.size == 0:
            raise ValueError(f"group {k} is empty")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"group {k} must hold integer feature indices, got dtype {idx.dtype}")
    flat = np.concatenate(index_sets)
    p = int(flat.max()) + 1 if n_features is None else int(n_features)
    if flat.min() < 0 or flat.max() >= p:
        raise ValueError(f"group indices must lie in [0, {p - 1}]")
    counts = np.bincount(flat, minlength=p)
    if np.any(counts > 1):
        raise ValueError(f"groups overlap: feature {int(np.argmax(counts > 1))} is in several "
                         "groups (groups must be a partition)")
    if np.any(counts == 0):
        raise ValueError(f"groups do not cover every feature: feature "
                         f"{int(np.argmin(counts))} is in no group")
    labels = np.empty(p, dtype=np.intp)
    for k, idx in enumerate(index_sets):
        labels[idx] = k
    return labels


def group_sums(labels: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of ``values`` within each group of the labels ``0 .. n_groups - 1``: shape
    ``(n_groups,)`` (also for a subset of the groups, relabelled, as a solver's active set)."""
    return np.bincount(labels, weights=values, minlength=n_groups)


def normalize_groups(labels: np.ndarray, n_groups: int, v: np.ndarray,
                     fallback: np.ndarray | None = None) -> np.ndarray:
    """Each group of ``v`` (labels ``0 .. n_groups - 1``) scaled to unit norm; groups of norm
    zero keep ``fallback`` (or stay zero)."""
    norms = np.sqrt(group_sums(labels, np.asarray(v, dtype=float) ** 2, n_groups))
    safe = np.where(norms > 0, norms, 1.0)
    out = v / safe[labels]
    if fallback is not None and np.any(norms == 0):
        zero = (norms == 0)[labels]
        out[zero] = fallback[zero]
    return out


class GroupHadamard(Parameterization):
    """``w_i = u_{g(i)}^2 v_i``: a magnitude ``u_l`` per group and a direction ``v_l``.

    Paper: Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023),
    the diagonally grouped linear neural network. Gradient descent from a small magnitude
    ``u(0) = alpha`` learns groups one at a time ("incremental learning"), largest first.

    Parameters
    ----------
    groups : int, sequence of index arrays, or array of labels
        The partition of the features into groups (see :func:`as_group_labels`); groups may
        have different sizes. Size-one groups give a sparse (not group-sparse) model.
    n_features : int, optional
        Number of features ``p`` (inferred from ``groups`` unless it is a group size).
    direction : {"uniform", "random", "zero"}, default="uniform"
        Initial direction ``v_l(0)`` used by :meth:`init`: ``1/sqrt(p_l)`` in every entry, a
        random unit vector per group, or zero. (A direction correlated with the data,
        ``X_l^T y``, needs the data: see :meth:`init_from_data`.)
    direction_scale : float or None, default=None
        Norm of each ``v_l(0)``. None gives unit-norm directions (the weight-normalized
        algorithms) ; ``"balanced"`` gives ``||v_l(0)||^2 = u_l(0)^2 / 2``, the balanced
        initialization of the paper's Lemma 3, conserved by gradient flow.

    Notes
    -----
    Parameters are ``(u, v)`` with ``u`` of shape ``(L,)`` and ``v`` of shape ``(p,)``.
    """

    def __init__(self, groups, n_features: int | None = None, direction: str = "uniform",
                 direction_scale=None):
        self.labels = as_group_labels(groups, n_features)
        if direction not in _DIRECTIONS or direction == "correlation":
            raise ValueError(f"direction must be 'uniform', 'random' or 'zero', got {direction!r}"
                             " (use init_from_data for the correlation direction)")
        if direction_scale not in (None, "balanced"):
            check_positive(direction_scale, "direction_scale")
        self.direction = direction
        self.direction_scale = direction_scale
        self.n_features = int(self.labels.size)
        self.n_groups = int(self.labels.max()) + 1
        self.group_sizes = np.bincount(self.labels, minlength=self.n_groups)
        self.signal_shape = (self.n_features,)

    # --- group helpers -------------------------------------------------------------------
    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (shape ``(p,)``) within each group: shape ``(L,)``."""
        return group_sums(self.labels, values, self.n_groups)

    def group_norms(self, w: np.ndarray) -> np.ndarray:
        """Euclidean norm of each group of ``w``."""
        return np.sqrt(self.group_sum(np.asarray(w, dtype=float) ** 2))

    def normalize(self, v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        """Scale each group of ``v`` to unit norm (groups of norm zero keep ``fallback``)."""
        return normalize_groups(self.labels, self.n_groups, v, fallback)

    def balance(self, params: Params) -> np.ndarray:
        """``u_l^2 / 2 - ||v_l||^2`` per group, conserved by gradient flow (Lemma 2)."""
        u, v = params
        return 0.5 * u**2 - self.group_sum(v**2)

    def magnitudes(self, params: Params) -> np.ndarray:
        """Group norms ``||w_l|| = u_l^2 ||v_l||`` of the signal."""
        u, v = params
        return u**2 * self.group_norms(v)

    # --- Parameterization ----------------------------------------------------------------
    def _scaled(self, direction_unit: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self.direction_scale is None:
            return direction_unit
        if self.direction_scale == "balanced":
            return direction_unit * (u[self.labels] / np.sqrt(2.0))
        return direction_unit * float(self.direction_scale)

    def init(self, scale: float, rng=None) -> Params:
        """``u(0) = scale`` for every group, ``v(0)`` as set by ``direction``."""
        check_positive(scale, "init_scale")
        u = np.full(self.n_groups, float(scale))
        if self.direction == "zero":
            return u, np.zeros(self.n_features)
        if self.direction == "random":
            raw = check_random_state(rng).standard_normal(self.n_features)
        else:
            raw = np.ones(self.n_features)
        return u, self._scaled(self.normalize(raw), u)

    def init_from_data(self, scale: float, correlation: np.ndarray) -> Params:
        """``u(0) = scale``, ``v_l(0)`` along ``correlation_l`` (e.g. ``X_l^T y / n``, Lemma 3).

        Groups where ``correlation`` vanishes fall back to the uniform direction.
        """
        check_positive(scale, "init_scale")
        u = np.full(self.n_groups, float(scale))
        uniform = self.normalize(np.ones(self.n_features))
        return u, self._scaled(self.normalize(np.asarray(correlation, float), uniform), u)

    def signal(self, params: Params) -> np.ndarray:
        u, v = params
        return u[self.labels] ** 2 * v

    def vjp(self, params: Params, grad_signal: np.ndarray) -> Params:
        u, v = params
        ug = u[self.labels]
        gu = 2.0 * u * self.group_sum(grad_signal * v)
        return gu, ug**2 * grad_signal

    def __repr__(self) -> str:
        return (f"GroupHadamard(n_features={self.n_features}, n_groups={self.n_groups}, "
                f"direction={self.direction!r})")
