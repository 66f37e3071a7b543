"""Sparse vectors: synthetic compressed-sensing problems."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Problem, with_noise

__all__ = ["make_sparse_problem"]


def make_sparse_problem(n_measurements: int, n_features: int, n_nonzero: int, *,
                        positive: bool = False, snr: float | None = None,
                        noise_std: float | None = None, normalize: bool = True,
                        unit_norm: bool = False, random_state=None) -> Problem:
    """Gaussian measurements ``y = A x + noise`` of a random sparse vector ``x``.

    Parameters
    ----------
    n_measurements, n_features, n_nonzero : int
        ``M``, ``N`` and the sparsity ``s``.
    positive : bool, default=False
        Non-negative nonzeros (``|N(0,1)|``) instead of ``N(0,1)``.
    snr : float, optional
        Noise at this measurement SNR in dB (``inf``: none).
    noise_std : float, optional
        Or noise of this standard deviation per measurement (default: no noise).
    normalize : bool, default=True
        Entries of ``A`` are ``N(0, 1/M)`` (columns of unit norm on average); else ``N(0, 1)``.
    unit_norm : bool, default=False
        Scale ``x`` to unit Euclidean norm (the "More is less" paper's ``x* = b_S / ||b_S||``).
    random_state : None, int or Generator

    Returns
    -------
    Problem
        ``operator`` the matrix ``A`` ``(M, N)``, ``truth`` the vector ``x``,
        ``meta = {"structure": "sparse", "support": x != 0}`` (as the row-sparse problems'
        ``meta["support"]``).
    """
    for value, name in ((n_measurements, "n_measurements"), (n_features, "n_features")):
        check_positive(value, name, integer=True)
    check_positive(n_nonzero, "n_nonzero", strict=False, integer=True)
    if n_nonzero > n_features:
        raise ValueError(f"n_nonzero={n_nonzero} exceeds n_features={n_features}")
    rng = check_random_state(random_state)
    A = rng.standard_normal((n_measurements, n_features))
    if normalize:
        A /= np.sqrt(n_measurements)
    x = np.zeros(n_features)
    idx = rng.choice(n_features, size=n_nonzero, replace=False)
    vals = rng.standard_normal(n_nonzero)
    x[idx] = np.abs(vals) if positive else vals
    if unit_norm and n_nonzero > 0:
        x /= np.linalg.norm(x)
    y, noise = with_noise(A @ x, rng, snr=snr, noise_std=noise_std)
    return Problem(operator=A, y=y, truth=x, noise=noise,
                   meta={"structure": "sparse", "support": x != 0})
