"""Multiple-measurement-vector (MMV) problems: synthetic row-sparse signals and digit images."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Problem, with_noise

__all__ = [
    "dct2_basis",
    "load_digit_columns",
    "make_mmv_batch",
    "make_mmv_problem",
    "normalized_gaussian_matrix",
]


def normalized_gaussian_matrix(n_measurements: int, n_features: int, random_state=None):
    """Gaussian ``(M, N)`` matrix with columns of unit l2 norm (the paper's sensing matrix)."""
    rng = check_random_state(random_state)
    A = rng.standard_normal((n_measurements, n_features))
    return A / np.linalg.norm(A, axis=0)


def make_mmv_problem(n_measurements: int = 50, n_features: int = 25, n_columns: int = 100,
                     n_nonzero_rows: int = 3, *, row_values="ones", snr: float | None = None,
                     noise_std: float | None = None, random_state=None) -> Problem:
    """The paper's synthetic MMV problem (section 6): ``Y = A X + W``, ``X`` row-sparse.

    ``A`` is Gaussian with unit-norm columns; ``X`` has ``K`` active rows at random positions.

    Parameters
    ----------
    n_measurements, n_features, n_columns, n_nonzero_rows : int
        ``M``, ``N``, ``L`` and the row sparsity ``K``; defaults are the paper's (M=50, N=25,
        L=100, K=3: overdetermined, since M > N).
    row_values : {"ones", "ramp", "gaussian"} or array_like, default="ones"
        Active rows ``1_L`` (section 6), ``k 1_L`` for ``k = 1..K`` (section 6.1: rows
        ``1, 2, 3 × 1_L``), i.i.d. ``N(0, 1)``, or the given ``K`` row scales.
    snr : float, optional
        Noise at this measurement SNR in dB (section 6.3 uses 40; ``inf``: none).
    noise_std : float, optional
        Or noise of this standard deviation per entry of ``Y`` (default: no noise).
    random_state : None, int or Generator

    Returns
    -------
    Problem
        ``operator`` the matrix ``A`` ``(M, N)``, ``y`` the measurements ``Y`` ``(M, L)``,
        ``truth`` the signal ``X`` ``(N, L)``, ``noise`` ``W``; ``meta["support"]`` the
        active rows (bool ``(N,)``).
    """
    for value, name in ((n_measurements, "n_measurements"), (n_features, "n_features"),
                        (n_columns, "n_columns")):
        check_positive(value, name, integer=True)
    check_positive(n_nonzero_rows, "n_nonzero_rows", strict=False, integer=True)
    if n_nonzero_rows > n_features:
        raise ValueError(f"n_nonzero_rows={n_nonzero_rows} exceeds n_features={n_features}")
    rng = check_random_state(random_state)
    A = normalized_gaussian_matrix(n_measurements, n_features, rng)
    rows = np.sort(rng.choice(n_features, size=n_nonzero_rows, replace=False))
    K, L = n_nonzero_rows, n_columns
    if isinstance(row_values, str):
        if row_values == "ones":
            values = np.ones((K, L))
        elif row_values == "ramp":
            values = np.arange(1, K + 1, dtype=float)[:, None] * np.ones((K, L))
        elif row_values == "gaussian":
            values = rng.standard_normal((K, L))
        else:
            raise ValueError(f"row_values must be 'ones', 'ramp', 'gaussian' or an array, "
                             f"got {row_values!r}")
    else:
        scales = np.asarray(row_values, dtype=float).reshape(-1)
        if scales.size != K:
            raise ValueError(f"give {K} row scales, got {scales.size}")
        values = scales[:, None] * np.ones((K, L))
    X = np.zeros((n_features, L))
    X[rows] = values
    support = np.zeros(n_features, dtype=bool)
    support[rows] = True
    Y, noise = with_noise(A @ X, rng, snr=snr, noise_std=noise_std)
    return Problem(operator=A, y=Y, truth=X, noise=noise,
                   meta={"structure": "row_sparse", "support": support})


def make_mmv_batch(n_problems: int, *args, random_state=None, **kwargs) -> Problem:
    """``n_problems`` independent :func:`make_mmv_problem` draws stacked on a leading axis.

    Every array of the returned :class:`Problem` (``meta["support"]`` included) has the
    batch axis first.
    """
    check_positive(n_problems, "n_problems", integer=True)
    rng = check_random_state(random_state)
    probs = [make_mmv_problem(*args, random_state=rng, **kwargs) for _ in range(n_problems)]
    stacked = {f: np.stack([getattr(p, f) for p in probs])
               for f in ("operator", "y", "truth", "noise")}
    support = np.stack([p.meta["support"] for p in probs])
    return Problem(**stacked, meta={"structure": "row_sparse", "support": support})


def dct2_basis(shape: tuple[int, int]) -> np.ndarray:
    """Orthonormal 2-D DCT synthesis matrix ``Ψ`` (``image.ravel() = Ψ @ coefficients``).

    Built with :func:`scipy.fft.idctn` (type II, ``norm="ortho"``) applied to the unit vectors.
    """
    from scipy.fft import idctn

    n = int(np.prod(shape))
    eye = np.eye(n).reshape(n, *shape)
    return idctn(eye, axes=(1, 2), norm="ortho").reshape(n, n).T


def load_digit_columns(n_images: int = 100, *, random_state=None):
    """Scikit-learn's handwritten digits (real, shipped with scikit-learn) as matrix columns.

    Parameters
    ----------
    n_images : int, default=100
        Number of images ``L``; the first ``n_images`` of the 1797 (or a random subset when
        ``random_state`` is given).
    random_state : None, int or Generator

    Returns
    -------
    X : ndarray of shape (64, n_images)
        Vectorized 8x8 images with pixel values in [0, 1] (each column one image).
    labels : ndarray of shape (n_images,)
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    check_positive(n_images, "n_images", integer=True)
    total = digits.data.shape[0]
    if n_images > total:
        raise ValueError(f"n_images={n_images} exceeds the {total} digits available")
    if random_state is None:
        idx = np.arange(n_images)
    else:
        idx = np.sort(check_random_state(random_state).choice(total, n_images, replace=False))
    return digits.data[idx].T / 16.0, digits.target[idx]
