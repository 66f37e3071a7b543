"""Checks of hand-written derivatives and adjoints, reused by every test suite."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["check_adjoint", "check_gradient", "check_vjp"]


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


def check_adjoint(operator, *, trailing: tuple[int, ...] = (), rng=0, n_trials: int = 3,
                  rtol: float = 1e-10) -> float:
    """Dot test of an operator's adjoint: ``<A x, z> = <x, A* z>`` for random ``x, z``.

    PyLops' ``dottest`` is the model; the gap is measured against the Cauchy-Schwarz bound
    ``(||A x|| ||z|| + ||x|| ||A* z||) / 2`` rather than ``|<A x, z>|``, so that an inner product
    near zero by chance does not fail a correct adjoint. The shapes of ``A x`` and ``A* z`` are
    checked too.

    Parameters
    ----------
    operator : Operator or anything :func:`~overparam.operators.as_operator` takes
    trailing : tuple of int, default=()
        Extra trailing axes of ``x`` and ``z`` (e.g. ``(L,)``: ``L`` columns at once).
    rng : None, int or Generator, default=0
    n_trials : int, default=3
        Random pairs ``(x, z)`` tried.
    rtol : float, default=1e-10
        Largest gap allowed, relative to the bound.

    Returns
    -------
    float
        The largest relative gap seen.

    Raises
    ------
    AssertionError
        When a gap exceeds ``rtol`` or a shape is wrong.
    """
    from .operators import as_operator

    op = as_operator(operator)
    rng = np.random.default_rng(rng)
    x_shape = (*op.input_shape, *trailing)
    z_shape = (op.n_measurements, *trailing)
    worst = 0.0
    for _ in range(n_trials):
        x, z = rng.standard_normal(x_shape), rng.standard_normal(z_shape)
        ax, atz = np.asarray(op.forward(x)), np.asarray(op.adjoint(z))
        if ax.shape != z_shape or atz.shape != x_shape:
            raise AssertionError(f"forward gives shape {ax.shape} (expected {z_shape}), adjoint "
                                 f"gives {atz.shape} (expected {x_shape})")
        lhs, rhs = float(np.vdot(ax, z)), float(np.vdot(x, atz))
        bound = 0.5 * (np.linalg.norm(ax) * np.linalg.norm(z)
                       + np.linalg.norm(x) * np.linalg.norm(atz))
        gap = abs(lhs - rhs) / max(bound, np.finfo(float).tiny)
        worst = max(worst, gap)
        if gap > rtol:
            raise AssertionError(f"dot test failed: <A x, z> = {lhs:.12e}, <x, A* z> = "
                                 f"{rhs:.12e}, relative gap {gap:.2e} > {rtol:.1e}")
    return worst
