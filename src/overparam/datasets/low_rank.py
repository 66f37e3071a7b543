"""Synthetic low-rank matrix-sensing problems (Gaussian measurements of a rank-r matrix)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_positive, check_random_state
from ..operators import GaussianSensingOperator

__all__ = ["LowRankProblem", "make_low_rank_matrix", "make_low_rank_problem"]


@dataclass
class LowRankProblem:
    """Measurements ``y = A(Y) + noise`` of a rank-``r`` matrix ``Y``."""

    operator: GaussianSensingOperator
    y: np.ndarray
    Y: np.ndarray
    noise: np.ndarray

    @property
    def rank(self) -> int:
        return int(np.linalg.matrix_rank(self.Y))


def make_low_rank_matrix(shape, rank: int, *, condition_number: float = 1.0,
                         symmetric_psd: bool = False, random_state=None) -> np.ndarray:
    """A random ``(n1, n2)`` matrix of rank ``r``, spectral norm 1, condition number ``kappa``.

    Singular vectors are Haar-random (QR of Gaussian matrices); singular values are
    log-spaced from 1 down to ``1 / kappa``.

    Parameters
    ----------
    shape : tuple of int
        ``(n1, n2)``.
    rank : int
    condition_number : float, default=1.0
        ``kappa = sigma_1 / sigma_r``.
    symmetric_psd : bool, default=False
        ``Y = Q diag(s) Q^T`` (square shape only).
    random_state : None, int or Generator
    """
    n1, n2 = (int(s) for s in shape)
    check_positive(rank, "rank", integer=True)
    if rank > min(n1, n2):
        raise ValueError(f"rank={rank} exceeds min(n1, n2) = {min(n1, n2)}")
    check_positive(condition_number, "condition_number")
    if condition_number < 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number}")
    if symmetric_psd and n1 != n2:
        raise ValueError(f"symmetric_psd needs a square shape, got {(n1, n2)}")
    rng = check_random_state(random_state)
    s = np.logspace(0, -np.log10(condition_number), rank)
    Q1 = np.linalg.qr(rng.standard_normal((n1, rank)))[0]
    if symmetric_psd:
        return (Q1 * s) @ Q1.T
    Q2 = np.linalg.qr(rng.standard_normal((n2, rank)))[0]
    return (Q1 * s) @ Q2.T


def make_low_rank_problem(shape, rank: int, n_measurements: int, *,
                          condition_number: float = 1.0, noise_level: float = 0.0,
                          symmetric_psd: bool = False, random_state=None,
                          **operator_kwargs) -> LowRankProblem:
    """Gaussian matrix sensing of a random rank-``r`` matrix, as in Wind's Theorems 2.8/2.9.

    ``y = A(Y) + e`` with ``[A(X)]_i = <A_i, X> / sqrt(m)`` (i.i.d. ``N(0, 1)`` ``A_i``) and
    i.i.d. ``e_i ~ N(0, noise_level^2)``. ``Y`` has ``||Y|| = 1`` (see
    :func:`make_low_rank_matrix`).

    Parameters
    ----------
    shape : tuple of int
    rank : int
    n_measurements : int
    condition_number : float, default=1.0
    noise_level : float, default=0.0
        Noise standard deviation per measurement.
    symmetric_psd : bool, default=False
    random_state : None or int
    **operator_kwargs
        Passed to :class:`~overparam.operators.GaussianSensingOperator` (``store``,
        ``block_size``).
    """
    check_positive(noise_level, "noise_level", strict=False)
    if isinstance(random_state, np.random.Generator):
        raise TypeError("random_state must be None or an int (it also seeds the operator)")
    seq = np.random.SeedSequence(random_state)
    mat_seed, op_seed, noise_seed = seq.spawn(3)
    Y = make_low_rank_matrix(shape, rank, condition_number=condition_number,
                             symmetric_psd=symmetric_psd,
                             random_state=np.random.default_rng(mat_seed))
    op = GaussianSensingOperator(n_measurements, Y.shape, random_state=op_seed,
                                 **operator_kwargs)
    clean = op.forward(Y)
    noise = noise_level * np.random.default_rng(noise_seed).standard_normal(clean.shape)
    return LowRankProblem(operator=op, y=clean + noise, Y=Y, noise=noise)
