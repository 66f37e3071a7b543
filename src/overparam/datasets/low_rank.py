"""Low-rank matrices: matrix-sensing problems and shipped real images.

Two settings. Wind's Gaussian matrix sensing (:func:`make_low_rank_problem`):
``[A(X)]_i = <A_i, X> / sqrt(m)`` of a rank-``r`` matrix with Haar singular vectors. The
spectral-network paper (Chu, Ghosh, Lam, Mukherjee, "Implicit regularization via spectral
neural networks and non-linear matrix sensing", Sec. 5; :func:`make_aligned_problem`,
:func:`make_gaussian_sensing_problem`): ``X* = Xt Xt^T`` with ``Xt`` (10 x 6) uniform on
[0, 1], normalized to nuclear norm 1; ``m = 50`` measurements, either aligned
(``A_i = Phi Abar_i Psi^T``, diagonals uniform on [0, 1] sorted decreasing) or Gaussian
(i.i.d. standard normal entries); noise ``1e-2 eps``. The paper's images come from MNIST,
which cannot be downloaded here: sklearn's shipped digits (8 x 8) and sample photographs stand
in for them.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import ortho_group

from .._validation import check_array, check_positive, check_random_state
from ..operators import AlignedSpectralOperator, GaussianSensingOperator, MatrixSensingOperator
from .base import Problem, renamed_keywords, with_noise

__all__ = [
    "load_digit",
    "load_grayscale_sample_image",
    "make_aligned_problem",
    "make_gaussian_sensing_problem",
    "make_low_rank_matrix",
    "make_low_rank_problem",
]


def make_low_rank_matrix(shape, rank: int, *, factors: str = "haar",
                         condition_number: float = 1.0, symmetric_psd: bool = False,
                         random_state=None) -> np.ndarray:
    """A random ``(n1, n2)`` matrix of rank ``r``.

    ``factors="haar"`` (Wind's setting): Haar-random singular vectors (QR of Gaussian
    matrices), singular values log-spaced from 1 down to ``1 / kappa`` (spectral norm 1).
    ``factors="uniform"`` (the spectral-network paper's): ``L R^T`` with factors uniform on
    [0, 1] of ``r`` columns (``R = L`` when ``symmetric_psd``), scaled to nuclear norm 1.

    Parameters
    ----------
    shape : tuple of int
        ``(n1, n2)``.
    rank : int
    factors : {"haar", "uniform"}, default="haar"
    condition_number : float, default=1.0
        ``kappa = sigma_1 / sigma_r`` (``factors="haar"`` only).
    symmetric_psd : bool, default=False
        A symmetric positive semi-definite matrix (square shape only).
    random_state : None, int or Generator
    """
    n1, n2 = (int(s) for s in shape)
    check_positive(rank, "rank", integer=True)
    if rank > min(n1, n2):
        raise ValueError(f"rank={rank} exceeds min(n1, n2) = {min(n1, n2)}")
    check_positive(condition_number, "condition_number")
    if condition_number < 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number}")
    if factors not in ("haar", "uniform"):
        raise ValueError(f"factors must be 'haar' or 'uniform', got {factors!r}")
    if factors == "uniform" and condition_number != 1:
        raise ValueError("condition_number applies to factors='haar' only")
    if symmetric_psd and n1 != n2:
        raise ValueError(f"symmetric_psd needs a square shape, got {(n1, n2)}")
    rng = check_random_state(random_state)
    if factors == "uniform":
        left = rng.uniform(0.0, 1.0, (n1, rank))
        right = left if symmetric_psd else rng.uniform(0.0, 1.0, (n2, rank))
        X = left @ right.T
        return X / np.linalg.norm(X, "nuc")
    s = np.logspace(0, -np.log10(condition_number), rank)
    Q1 = np.linalg.qr(rng.standard_normal((n1, rank)))[0]
    if symmetric_psd:
        return (Q1 * s) @ Q1.T
    Q2 = np.linalg.qr(rng.standard_normal((n2, rank)))[0]
    return (Q1 * s) @ Q2.T


def make_low_rank_truth(n_rows: int = 10, n_cols: int | None = None, rank: int = 6, *,
                        random_state=None) -> np.ndarray:
    """Deprecated: ``make_low_rank_matrix(shape, rank, factors="uniform", ...)``."""
    warnings.warn("make_low_rank_truth is deprecated: use make_low_rank_matrix(shape, rank, "
                  "factors='uniform', symmetric_psd=...)", DeprecationWarning, stacklevel=2)
    return _paper_truth(n_rows, n_cols, rank, random_state)


def _paper_truth(n_rows, n_cols, rank, rng):
    """The spectral-network paper's truth ``Xt Xt^T`` (``Xt1 Xt2^T`` when not square)."""
    n_cols = n_rows if n_cols is None else n_cols
    for value, name in ((n_rows, "n_rows"), (n_cols, "n_cols")):
        check_positive(value, name, integer=True)
    return make_low_rank_matrix((n_rows, n_cols), rank, factors="uniform",
                                symmetric_psd=n_rows == n_cols, random_state=rng)


@renamed_keywords(noise_level="noise_std")
def make_low_rank_problem(shape, rank: int, n_measurements: int, *,
                          condition_number: float = 1.0, noise_std: float | None = None,
                          snr: float | None = None, symmetric_psd: bool = False, random_state=None,
                          **operator_kwargs) -> Problem:
    """Gaussian matrix sensing of a random rank-``r`` matrix, as in Wind's Theorems 2.8/2.9.

    ``y = A(Y) + e`` with ``[A(X)]_i = <A_i, X> / sqrt(m)`` (i.i.d. ``N(0, 1)`` ``A_i``) and
    i.i.d. ``e_i ~ N(0, noise_std^2)``. ``Y`` has ``||Y|| = 1`` (see
    :func:`make_low_rank_matrix`).

    Parameters
    ----------
    shape : tuple of int
    rank : int
    n_measurements : int
    condition_number : float, default=1.0
    noise_std : float, optional
        Noise standard deviation per measurement (default: no noise).
    snr : float, optional
        Or noise at this measurement SNR in dB.
    symmetric_psd : bool, default=False
    random_state : None or int
    **operator_kwargs
        Passed to :class:`~overparam.operators.GaussianSensingOperator` (``store``,
        ``block_size``).

    Returns
    -------
    Problem
        ``operator`` a :class:`~overparam.operators.GaussianSensingOperator`, ``truth`` the
        matrix ``Y``; ``meta = {"structure": "low_rank", "rank": rank}``.
    """
    if isinstance(random_state, np.random.Generator):
        raise TypeError("random_state must be None or an int (it also seeds the operator)")
    seq = np.random.SeedSequence(random_state)
    mat_seed, op_seed, noise_seed = seq.spawn(3)
    Y = make_low_rank_matrix(shape, rank, condition_number=condition_number,
                             symmetric_psd=symmetric_psd,
                             random_state=np.random.default_rng(mat_seed))
    op = GaussianSensingOperator(n_measurements, Y.shape, random_state=op_seed,
                                 **operator_kwargs)
    y, noise = with_noise(op.forward(Y), np.random.default_rng(noise_seed), snr=snr,
                          noise_std=noise_std)
    return Problem(operator=op, y=y, truth=Y, noise=noise,
                   meta={"structure": "low_rank", "rank": int(rank)})


def _given_or_paper_truth(truth, n_rows, n_cols, rank, rng) -> np.ndarray:
    if truth is None:
        truth = _paper_truth(n_rows, n_cols, rank, rng)
    return check_array(truth, "truth", ndim=2)


# The spectral-network paper's noise: 1e-2 times standard Gaussian.
_PAPER_NOISE_STD = 1e-2


def _sensed(operator, truth, rng, snr, noise_std) -> Problem:
    """``y = A(truth) + noise`` as a :class:`Problem`."""
    y, noise = with_noise(operator.forward(truth), rng, snr=snr, noise_std=noise_std,
                          default_std=_PAPER_NOISE_STD)
    meta = {"structure": "low_rank", "rank": int(np.linalg.matrix_rank(truth))}
    return Problem(operator, y, truth, noise, meta)


@renamed_keywords(noise="noise_std")
def make_aligned_problem(n_rows: int = 10, n_cols: int | None = None, rank: int = 6,
                         n_measurements: int = 50, *, noise_std: float | None = None,
                         snr: float | None = None, truth=None, basis: str = "random",
                         random_state=None) -> Problem:
    """The aligned setting of the paper's Sec. 5.1 (Fig. 2).

    Each ``Abar_i`` has a diagonal uniform on [0, 1] sorted decreasing, and
    ``y_i = <A_i, X*> + noise_std * eps_i``. The paper does not say how ``Phi, Psi`` are drawn:
    ``basis="random"`` takes Haar-random orthogonal matrices (the measurements then only see
    ``sigma* = diag(Phi^T X* Psi)``, and the nuclear-norm minimizer is
    ``Phi Diag(sigma*) Psi^T``, not ``X*``); ``basis="truth"`` takes the singular vectors of
    ``X*``, so that ``sigma*`` are its singular values and ``||sigma*||_1 = ||X*||_* = 1`` (the
    paper's Fig. 2 shows the nuclear norm converging to 1, which needs this reading).

    Parameters
    ----------
    n_rows, n_cols, rank : int
        Shape and rank of the default truth (``factors="uniform"`` in :func:`make_low_rank_matrix`).
    n_measurements : int, default=50
    noise_std : float, optional
        Standard deviation of the additive Gaussian noise (default: the paper's 1e-2).
    snr : float, optional
        Or noise at this measurement SNR in dB (then ``noise_std`` must not be given).
    truth : ndarray, optional
        A given matrix instead of the random low-rank one.
    basis : {"random", "truth"}, default="random"
        Haar-random ``Phi, Psi``, or the singular vectors of the truth.
    random_state : None, int or Generator

    Returns
    -------
    Problem
        ``operator`` the sensing operator, ``truth`` the matrix ``X*``;
        ``meta = {"structure": "low_rank", "rank": <numerical rank of X*>}``.
    """
    rng = check_random_state(random_state)
    check_positive(n_measurements, "n_measurements", integer=True)
    if basis not in ("random", "truth"):
        raise ValueError(f"basis must be 'random' or 'truth', got {basis!r}")
    truth = _given_or_paper_truth(truth, n_rows, n_cols, rank, rng)
    n1, n2 = truth.shape
    if basis == "truth":
        left, _, right_t = np.linalg.svd(truth)
        right = right_t.T
    else:
        left = ortho_group.rvs(n1, random_state=rng) if n1 > 1 else np.ones((1, 1))
        right = ortho_group.rvs(n2, random_state=rng) if n2 > 1 else np.ones((1, 1))
    diagonals = -np.sort(-rng.uniform(0.0, 1.0, (n_measurements, min(n1, n2))), axis=1)
    operator = AlignedSpectralOperator(left, right, diagonals)
    return _sensed(operator, truth, rng, snr, noise_std)


@renamed_keywords(noise="noise_std")
def make_gaussian_sensing_problem(n_rows: int = 10, n_cols: int | None = None, rank: int = 6,
                                  n_measurements: int = 50, *,
                                  noise_std: float | None = None, snr: float | None = None,
                                  truth=None, scale: float = 1.0,
                                  random_state=None) -> Problem:
    """The Gaussian setting of the paper's Sec. 5.2-5.3 (Fig. 3-5).

    Each ``A_i`` has i.i.d. standard normal entries (``scale=1``, as the paper; use
    ``1/sqrt(m)`` for the normalized ensemble), and
    ``y_i = scale <A_i, X*> + noise_std eps_i``.

    Parameters
    ----------
    n_rows, n_cols, rank : int
        As in :func:`make_aligned_problem`.
    n_measurements : int, default=50
    noise_std, snr : float, optional
        As in :func:`make_aligned_problem`.
    truth : ndarray, optional
        A given matrix (e.g. an image) instead of the random low-rank one.
    scale : float, default=1.0
    random_state : None, int or Generator

    Returns
    -------
    Problem
        As :func:`make_aligned_problem`.
    """
    rng = check_random_state(random_state)
    check_positive(n_measurements, "n_measurements", integer=True)
    truth = _given_or_paper_truth(truth, n_rows, n_cols, rank, rng)
    stack = rng.standard_normal((n_measurements, *truth.shape))
    operator = MatrixSensingOperator(stack, scale=scale)
    return _sensed(operator, truth, rng, snr, noise_std)


def load_digit(index: int = 0) -> np.ndarray:
    """One of sklearn's 1797 handwritten digits (8 x 8, real, shipped), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    if not 0 <= int(index) < len(images):
        raise ValueError(f"index must be in [0, {len(images)}), got {index}")
    return images[int(index)] / 16.0


def load_grayscale_sample_image(name: str = "china.jpg", shape=(32, 32)) -> np.ndarray:
    """A sklearn sample photograph, grayscale, center-cropped and block-averaged to ``shape``.

    Parameters
    ----------
    name : {"china.jpg", "flower.jpg"}
        As :func:`sklearn.datasets.load_sample_image`.
    shape : (int, int), default=(32, 32)
        Output size; the image is cropped to the largest centred region whose sides are the
        same integer multiple of ``shape`` and averaged over blocks (no interpolation).

    Returns
    -------
    ndarray of shape ``shape``, values in [0, 1]
    """
    from sklearn.datasets import load_sample_image

    h, w = (int(v) for v in shape)
    check_positive(h, "shape[0]", integer=True)
    check_positive(w, "shape[1]", integer=True)
    rgb = load_sample_image(name).astype(float) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma
    factor = min(gray.shape[0] // h, gray.shape[1] // w)
    if factor < 1:
        raise ValueError(f"shape {shape} is larger than the image {gray.shape}")
    top = (gray.shape[0] - h * factor) // 2
    left = (gray.shape[1] - w * factor) // 2
    crop = gray[top:top + h * factor, left:left + w * factor]
    return crop.reshape(h, factor, w, factor).mean(axis=(1, 3))
