"""Recovery metrics and SNR-controlled noise."""

from __future__ import annotations

import numpy as np

from ._validation import check_array, check_random_state

__all__ = [
    "add_noise",
    "effective_rank",
    "l1_gap",
    "nmse_db",
    "psnr",
    "relative_error",
    "snr_db",
    "support",
    "support_f1",
    "support_recovered",
]


def _pair(estimate, truth):
    est = check_array(estimate, "estimate", allow_empty=True)
    tru = check_array(truth, "truth", allow_empty=True)
    if est.shape != tru.shape:
        raise ValueError(f"estimate has shape {est.shape} but truth has shape {tru.shape}")
    return est, tru


def relative_error(estimate, truth, *, squared: bool = False) -> float:
    """``||estimate - truth|| / ||truth||`` (Frobenius for matrices); squared if asked.

    Returns ``inf`` for a zero truth and a nonzero estimate, and 0 when both are zero.
    """
    est, tru = _pair(estimate, truth)
    num = float(np.sum((est - tru) ** 2))
    den = float(np.sum(tru**2))
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    ratio = num / den
    return ratio if squared else float(np.sqrt(ratio))


def nmse_db(estimate, truth) -> float:
    """Normalized mean squared error in dB: ``10 log10(||e - t||^2 / ||t||^2)``."""
    r = relative_error(estimate, truth, squared=True)
    return float(10 * np.log10(r)) if r > 0 else float("-inf")


def support(x, *, threshold: float | None = None, n_nonzero: int | None = None) -> np.ndarray:
    """Boolean support of ``x``: rows for 2-D (row-sparse) signals.

    Either entries (row norms) above ``threshold`` (default ``1e-3 * max``), or the
    ``n_nonzero`` largest.
    """
    x = check_array(x, "x", allow_empty=True)
    mag = np.abs(x) if x.ndim == 1 else np.linalg.norm(x.reshape(x.shape[0], -1), axis=1)
    if n_nonzero is not None:
        out = np.zeros(mag.shape, dtype=bool)
        if n_nonzero > 0:
            out[np.argsort(mag)[::-1][:n_nonzero]] = True
        return out
    top = mag.max(initial=0.0)
    thr = 1e-3 * top if threshold is None else threshold
    return mag > thr if top > 0 else np.zeros(mag.shape, dtype=bool)


def support_recovered(estimate, truth, **kwargs) -> bool:
    """Exact support recovery: the estimate's support (see :func:`support`) equals the truth's."""
    est, tru = _pair(estimate, truth)
    true_supp = support(tru, threshold=0.0)
    kwargs.setdefault("n_nonzero", int(true_supp.sum()))
    return bool(np.array_equal(support(est, **kwargs), true_supp))


def support_f1(estimate, truth, *, threshold: float | None = None) -> float:
    """F1 score of the estimated support against the true support."""
    est, tru = _pair(estimate, truth)
    s_hat, s = support(est, threshold=threshold), support(tru, threshold=0.0)
    tp = int(np.sum(s_hat & s))
    denom = int(s_hat.sum() + s.sum())
    return 1.0 if denom == 0 else 2 * tp / denom


def psnr(estimate, truth, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to ``max(truth) - min(truth)``."""
    est, tru = _pair(estimate, truth)
    mse = float(np.mean((est - tru) ** 2))
    rng = float(tru.max() - tru.min()) if data_range is None else float(data_range)
    if mse == 0:
        return float("inf")
    if rng <= 0:
        raise ValueError("data_range must be positive (the truth is constant)")
    return float(10 * np.log10(rng**2 / mse))


def l1_gap(x, l1_min: float) -> float:
    """The paper's epsilon = (||x||_1 - min l1) / min l1."""
    return float((np.sum(np.abs(x)) - l1_min) / l1_min)


def effective_rank(X, *, tol: float = 1e-3) -> int:
    """Number of singular values above ``tol`` times the largest."""
    s = np.linalg.svd(check_array(X, "X", ndim=2), compute_uv=False)
    return int(np.sum(s > tol * s[0])) if s.size and s[0] > 0 else 0


def snr_db(clean, noise) -> float:
    """``10 log10(||clean||^2 / ||noise||^2)``."""
    c, n = np.asarray(clean, float), np.asarray(noise, float)
    return float(10 * np.log10(np.sum(c**2) / np.sum(n**2)))


def add_noise(clean, snr: float, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Add white Gaussian noise at ``snr`` dB, exactly: ``10 log10(||Ax||^2/||noise||^2) = snr``.

    Parameters
    ----------
    clean : array_like
        Noise-free measurements ``A x``.
    snr : float
        Signal-to-noise ratio in dB; ``inf`` adds nothing.
    random_state : None, int or Generator

    Returns
    -------
    noisy, noise : ndarray
    """
    c = check_array(clean, "clean")
    if np.isinf(snr) and snr > 0:
        return c.copy(), np.zeros_like(c)
    rng = check_random_state(random_state)
    noise = rng.standard_normal(c.shape)
    target = np.sqrt(np.sum(c**2) / 10 ** (snr / 10))
    noise *= target / np.linalg.norm(noise)
    return c + noise, noise
