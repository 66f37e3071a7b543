"""Finite-difference checks of hand-written gradients, reused by every test suite."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["check_gradient", "check_vjp"]


def check_gradient(
    fun: Callable[[Sequence[np.ndarray]], float],
    grad: Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]],
    params: Sequence[np.ndarray],
    *,
    rng=0,
    n_directions: int = 5,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-10,
) -> float:
    """Compare a gradient with central finite differences along random directions.

    For random unit directions ``d`` it compares ``<grad(p), d>`` with
    ``(f(p + eps d) - f(p - eps d)) / (2 eps)`` and raises ``AssertionError`` when they differ by
    more than ``atol + rtol * scale``, where ``scale`` is the norm of the gradient. Returns the
    largest relative discrepancy seen.
    """
    rng = np.random.default_rng(rng)
    params = [np.asarray(p, dtype=float) for p in params]
    g = [np.asarray(gi, dtype=float) for gi in grad(params)]
    if len(g) != len(params) or any(gi.shape != p.shape for gi, p in zip(g, params, strict=True)):
        raise AssertionError(
            f"gradient shapes {[gi.shape for gi in g]} differ from parameter shapes "
            f"{[p.shape for p in params]}"
        )
    gnorm = np.sqrt(sum(float(np.sum(gi * gi)) for gi in g))
    worst = 0.0
    for _ in range(n_directions):
        d = [rng.standard_normal(p.shape) for p in params]
        dn = np.sqrt(sum(float(np.sum(di * di)) for di in d))
        d = [di / dn for di in d]
        plus = fun([p + eps * di for p, di in zip(params, d, strict=True)])
        minus = fun([p - eps * di for p, di in zip(params, d, strict=True)])
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float(np.sum(gi * di)) for gi, di in zip(g, d, strict=True))
        err = abs(numeric - analytic)
        worst = max(worst, err / max(gnorm, 1e-300))
        if err > atol + rtol * max(gnorm, abs(numeric)):
            raise AssertionError(
                f"gradient check failed: directional derivative {analytic:.6e} (analytic) vs "
                f"{numeric:.6e} (finite difference), |grad| = {gnorm:.3e}"
            )
    return worst


def check_vjp(parameterization, params, *, rng=0, **kwargs) -> float:
    """Check ``parameterization.vjp`` against finite differences of ``signal``.

    Uses the scalar ``f(p) = <c, signal(p)>`` for a random ``c``, whose gradient is
    ``vjp(p, c)``. Keyword arguments go to :func:`check_gradient`.
    """
    rng = np.random.default_rng(rng)
    c = rng.standard_normal(np.shape(parameterization.signal(tuple(params))))

    def fun(p):
        return float(np.sum(c * parameterization.signal(tuple(p))))

    return check_gradient(fun, lambda p: parameterization.vjp(tuple(p), c), params, rng=rng,
                          **kwargs)
