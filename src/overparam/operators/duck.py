"""Operators from other libraries: anything with a shape and matrix-vector products.

PyLops operators, and any object with ``shape`` and ``matvec``/``rmatvec`` (or ``@`` and an
adjoint ``.H`` / transpose ``.T``), are wrapped as a :class:`scipy.sparse.linalg.LinearOperator`
by :func:`duck_linear_operator`, so that every estimator takes them directly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

__all__ = ["duck_linear_operator", "is_operator_like"]


def _shape(obj):
    shape = getattr(obj, "shape", None)
    try:
        shape = tuple(int(k) for k in shape)
    except (TypeError, ValueError):
        return None
    return shape if len(shape) == 2 else None


def _adjoint(obj):
    """``obj.H`` (the adjoint) or, failing that, ``obj.T``; None if neither exists."""
    for name in ("H", "T"):
        try:
            adj = getattr(obj, name)
        except Exception:  # a property that cannot compute it
            continue
        if adj is not None:
            return adj
    return None


def _has_products(obj) -> bool:
    return callable(getattr(obj, "matvec", None)) and callable(getattr(obj, "rmatvec", None))


def is_operator_like(obj) -> bool:
    """Whether ``obj`` is a matrix-free operator from another library (not an array).

    True for an object with a 2-D ``shape`` and either ``matvec`` and ``rmatvec`` methods or
    ``@`` (``__matmul__``) with an adjoint ``.H`` or transpose ``.T``; objects convertible to
    arrays (``__array__``: ndarrays, DataFrames, tensors) and scipy sparse matrices go the
    array route instead.
    """
    if isinstance(obj, np.ndarray | LinearOperator) or sp.issparse(obj):
        return False
    if _shape(obj) is None:
        return False
    if _has_products(obj):
        return True
    if hasattr(obj, "__array__") or not hasattr(obj, "__matmul__"):
        return False
    return _adjoint(obj) is not None


def duck_linear_operator(obj) -> LinearOperator:
    """``obj`` (see :func:`is_operator_like`) as a real scipy ``LinearOperator``.

    Raises
    ------
    TypeError
        If ``obj`` is not operator-like or is complex-valued.
    """
    if not is_operator_like(obj):
        raise TypeError(f"{type(obj).__name__} is not an operator: it needs a 2-D `shape` and "
                        "`matvec`/`rmatvec` (or `@` and `.H`/`.T`)")
    dtype = np.dtype(getattr(obj, "dtype", np.float64))
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"complex operators are not supported ({type(obj).__name__} has dtype "
                        f"{dtype})")
    if _has_products(obj):
        forward, backward = obj.matvec, obj.rmatvec
        matmat = getattr(obj, "matmat", None)
        rmatmat = getattr(obj, "rmatmat", None)
    else:
        adj = _adjoint(obj)

        def forward(v):
            return obj @ v

        def backward(z):
            return adj @ z

        matmat, rmatmat = forward, backward

    def real(fun):
        def apply(v):
            out = np.asarray(fun(v))
            if np.iscomplexobj(out):
                if np.any(out.imag):
                    raise TypeError(f"{type(obj).__name__} returned complex values")
                out = out.real
            return out.astype(np.float64, copy=False)
        return apply

    kwargs = {"matvec": real(forward), "rmatvec": real(backward)}
    if callable(matmat) and callable(rmatmat):
        kwargs.update(matmat=real(matmat), rmatmat=real(rmatmat))
    return LinearOperator(_shape(obj), dtype=np.float64, **kwargs)
