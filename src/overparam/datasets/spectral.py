"""Matrix-sensing problems of the spectral-network paper, and shipped real images.

Settings of Chu, Ghosh, Lam, Mukherjee, "Implicit regularization via spectral neural networks
and non-linear matrix sensing", Sec. 5: ``X* = Xt Xt^T`` with ``Xt`` (10 x 6) uniform on
[0, 1], normalized to nuclear norm 1; ``m = 50`` measurements, either aligned
(``A_i = Phi Abar_i Psi^T``, diagonals uniform on [0, 1] sorted decreasing) or Gaussian
(i.i.d. standard normal entries); noise ``1e-2 eps``. The paper's images come from MNIST,
which cannot be downloaded here: sklearn's shipped digits (8 x 8) and sample photographs stand
in for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ortho_group

from .._validation import check_array, check_positive, check_random_state
from ..operators.aligned import AlignedSpectralOperator
from ..operators.base import Operator
from ..operators.matrix_sensing import MatrixSensingOperator

__all__ = [
    "MatrixSensingProblem",
    "load_digit",
    "load_grayscale_sample_image",
    "make_aligned_problem",
    "make_gaussian_sensing_problem",
    "make_low_rank_truth",
]


@dataclass
class MatrixSensingProblem:
    """Measurements ``y = A(X) + noise`` of a matrix ``X``."""

    operator: Operator
    y: np.ndarray
    truth: np.ndarray
    noise: np.ndarray


def make_low_rank_truth(n_rows: int = 10, n_cols: int | None = None, rank: int = 6, *,
                        random_state=None) -> np.ndarray:
    """The paper's ground truth ``Xt Xt^T`` (``Xt`` uniform on [0, 1]), nuclear norm 1.

    For ``n_cols != n_rows`` the truth is ``Xt1 Xt2^T`` with two independent uniform factors.
    """
    n_cols = n_rows if n_cols is None else n_cols
    for value, name in ((n_rows, "n_rows"), (n_cols, "n_cols"), (rank, "rank")):
        check_positive(value, name, integer=True)
    rng = check_random_state(random_state)
    left = rng.uniform(0.0, 1.0, (n_rows, rank))
    right = left if n_cols == n_rows else rng.uniform(0.0, 1.0, (n_cols, rank))
    X = left @ right.T
    return X / np.linalg.norm(X, "nuc")


def _noise(m, level, rng):
    check_positive(level, "noise", strict=False)
    return level * rng.standard_normal(m)


def make_aligned_problem(n_rows: int = 10, n_cols: int | None = None, rank: int = 6,
                         n_measurements: int = 50, *, noise: float = 1e-2, truth=None,
                         basis: str = "random", random_state=None) -> MatrixSensingProblem:
    """The aligned setting of the paper's Sec. 5.1 (Fig. 2).

    Each ``Abar_i`` has a diagonal uniform on [0, 1] sorted decreasing, and
    ``y_i = <A_i, X*> + noise * eps_i``. The paper does not say how ``Phi, Psi`` are drawn:
    ``basis="random"`` takes Haar-random orthogonal matrices (the measurements then only see
    ``sigma* = diag(Phi^T X* Psi)``, and the nuclear-norm minimizer is
    ``Phi Diag(sigma*) Psi^T``, not ``X*``); ``basis="truth"`` takes the singular vectors of
    ``X*``, so that ``sigma*`` are its singular values and ``||sigma*||_1 = ||X*||_* = 1`` (the
    paper's Fig. 2 shows the nuclear norm converging to 1, which needs this reading).

    Parameters
    ----------
    n_rows, n_cols, rank : int
        Shape and rank of the default truth (see :func:`make_low_rank_truth`).
    n_measurements : int, default=50
    noise : float, default=1e-2
        Standard deviation of the additive Gaussian noise.
    truth : ndarray, optional
        A given matrix instead of the random low-rank one.
    basis : {"random", "truth"}, default="random"
        Haar-random ``Phi, Psi``, or the singular vectors of the truth.
    random_state : None, int or Generator
    """
    rng = check_random_state(random_state)
    check_positive(n_measurements, "n_measurements", integer=True)
    if basis not in ("random", "truth"):
        raise ValueError(f"basis must be 'random' or 'truth', got {basis!r}")
    if truth is None:
        truth = make_low_rank_truth(n_rows, n_cols, rank, random_state=rng)
    truth = check_array(truth, "truth", ndim=2)
    n1, n2 = truth.shape
    if basis == "truth":
        left, _, right_t = np.linalg.svd(truth)
        right = right_t.T
    else:
        left = ortho_group.rvs(n1, random_state=rng) if n1 > 1 else np.ones((1, 1))
        right = ortho_group.rvs(n2, random_state=rng) if n2 > 1 else np.ones((1, 1))
    diagonals = -np.sort(-rng.uniform(0.0, 1.0, (n_measurements, min(n1, n2))), axis=1)
    operator = AlignedSpectralOperator(left, right, diagonals)
    eps = _noise(n_measurements, noise, rng)
    return MatrixSensingProblem(operator, operator.forward(truth) + eps, truth, eps)


def make_gaussian_sensing_problem(n_rows: int = 10, n_cols: int | None = None, rank: int = 6,
                                  n_measurements: int = 50, *, noise: float = 1e-2,
                                  truth=None, scale: float = 1.0,
                                  random_state=None) -> MatrixSensingProblem:
    """The Gaussian setting of the paper's Sec. 5.2-5.3 (Fig. 3-5).

    Each ``A_i`` has i.i.d. standard normal entries (``scale=1``, as the paper; use
    ``1/sqrt(m)`` for the normalized ensemble), and ``y_i = scale <A_i, X*> + noise eps_i``.

    Parameters
    ----------
    n_rows, n_cols, rank : int
        Shape and rank of the default truth (see :func:`make_low_rank_truth`).
    n_measurements : int, default=50
    noise : float, default=1e-2
    truth : ndarray, optional
        A given matrix (e.g. an image) instead of the random low-rank one.
    scale : float, default=1.0
    random_state : None, int or Generator
    """
    rng = check_random_state(random_state)
    check_positive(n_measurements, "n_measurements", integer=True)
    if truth is None:
        truth = make_low_rank_truth(n_rows, n_cols, rank, random_state=rng)
    truth = check_array(truth, "truth", ndim=2)
    stack = rng.standard_normal((n_measurements, *truth.shape))
    operator = MatrixSensingOperator(stack, scale=scale)
    eps = _noise(n_measurements, noise, rng)
    return MatrixSensingProblem(operator, operator.forward(truth) + eps, truth, eps)


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
