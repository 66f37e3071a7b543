"""The implicit-bias functional of the deep Hadamard flow (Chou, Maly, Rauhut, Thm 2.2 / 3.1).

The gradient flow of ``1/2 ||A x~ - y||^2`` over ``x~ = u^L`` from ``u(0)^L = x0`` converges to

    argmin_{z >= 0, A z = y} g_{x0}(z),

    g_x(z) = <z, log z - 1 - log x>                     (L = 2)
    g_x(z) = <z, x^{2/L - 1}> - (L/2) ||z||_{2/L}^{2/L}   (L > 2)

and, for ``x~ = u^L - v^L``, the pair of parts ``(u^L, v^L)`` converges to the minimizer of
``g_{u(0)^L}(z_+) + g_{v(0)^L}(z_-)`` over ``z_+, z_- >= 0`` with ``A (z_+ - z_-) = y``.
For small ``x0 = alpha`` both are close to (weighted) l1 minimization.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from ._optional import require
from ._validation import check_array, check_positive

__all__ = ["implicit_bias", "minimize_implicit_bias", "signed_implicit_bias"]


def _check_depth(depth) -> int:
    check_positive(depth, "depth", integer=True)
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    return int(depth)


def implicit_bias(z, init, depth: int = 2) -> float:
    """The paper's ``g_x(z)`` (eq. 14) for ``z >= 0`` and the init ``x = init > 0``.

    Parameters
    ----------
    z : array_like of shape (n,)
        Non-negative point.
    init : float or array_like of shape (n,)
        The init ``x~(0) = u(0)^L`` (the product init ``alpha`` for :class:`Hadamard`).
    depth : int, default=2
        ``L``.

    Returns
    -------
    float
    """
    L = _check_depth(depth)
    z = check_array(z, "z", ndim=1)
    x = np.broadcast_to(check_array(np.atleast_1d(init), "init"), z.shape)
    if np.any(z < 0):
        raise ValueError("g_x(z) is defined for z >= 0 (split a signed vector into parts)")
    if np.any(x <= 0):
        raise ValueError("the init must be positive")
    if L == 2:
        return float(np.sum(xlogy(z, z) - z - z * np.log(x)))
    return float(np.sum(z * x ** (2.0 / L - 1)) - L / 2 * np.sum(z ** (2.0 / L)))


def signed_implicit_bias(z_plus, z_minus, init_plus, init_minus=None, depth: int = 2) -> float:
    """``g_{u(0)^L}(z_+) + g_{v(0)^L}(z_-)`` (Thm 3.1) for the parts of a signed vector.

    Parameters
    ----------
    z_plus, z_minus : array_like of shape (n,)
        Non-negative parts (``z = z_plus - z_minus``; they may overlap).
    init_plus : float or array_like
        ``u(0)^L``.
    init_minus : float or array_like, optional
        ``v(0)^L`` (default: ``init_plus``).
    depth : int, default=2
    """
    init_minus = init_plus if init_minus is None else init_minus
    return (implicit_bias(z_plus, init_plus, depth)
            + implicit_bias(z_minus, init_minus, depth))


def minimize_implicit_bias(A, y, init_scale: float, depth: int = 2, signed: bool = True,
                           solver: str | None = None, **solver_kwargs):
    """Minimize the functional over ``{A z = y}`` with a convex solver (cvxpy).

    The flow's limit should equal this minimizer; this is the independent check of that claim.

    Parameters
    ----------
    A : ndarray of shape (m, n)
    y : ndarray of shape (m,)
    init_scale : float
        Product init ``alpha`` (``u(0)^L = v(0)^L = alpha``).
    depth : int, default=2
    signed : bool, default=True
        Minimize over the pairs ``(z_+, z_-)`` (Thm 3.1) or over ``z >= 0`` (Thm 2.2).
    solver : str, optional
        cvxpy solver name (default: cvxpy's choice, e.g. Clarabel for the exponential and power
        cones).
    **solver_kwargs
        Passed to ``Problem.solve``.

    Returns
    -------
    x : ndarray of shape (n,)
        The minimizer ``z_+ - z_-`` (or ``z``).
    parts : tuple of ndarray
        ``(z_+, z_-)`` (or ``(z,)``).
    """
    cp = require("cvxpy", extra="baselines")

    L = _check_depth(depth)
    check_positive(init_scale, "init_scale")
    A = check_array(A, "A", ndim=2)
    y = check_array(y, "y", ndim=1)
    n = A.shape[1]
    alpha = float(init_scale)

    def g(z):
        if L == 2:
            return -cp.sum(cp.entr(z)) - (1 + np.log(alpha)) * cp.sum(z)
        return alpha ** (2.0 / L - 1) * cp.sum(z) - L / 2 * cp.sum(cp.power(z, 2.0 / L))

    zp = cp.Variable(n, nonneg=True)
    if signed:
        zm = cp.Variable(n, nonneg=True)
        problem = cp.Problem(cp.Minimize(g(zp) + g(zm)), [A @ (zp - zm) == y])
    else:
        problem = cp.Problem(cp.Minimize(g(zp)), [A @ zp == y])
    problem.solve(solver=solver, **solver_kwargs)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise ValueError(f"cvxpy could not minimize the implicit-bias functional: {problem.status}")
    parts = (np.maximum(zp.value, 0), np.maximum(zm.value, 0)) if signed else (
        np.maximum(zp.value, 0),)
    x = parts[0] - parts[1] if signed else parts[0]
    return x, parts
