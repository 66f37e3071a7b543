"""Input checks shared by every estimator, solver and the CLI.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the offending argument,
so that a user sees what is wrong with *their* data rather than a NumPy traceback.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_array",
    "check_positive",
    "check_random_state",
    "sklearn_random_state",
]


def check_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None, allow_empty=False):
    """Return ``x`` as a finite float64 array, or raise a clear error.

    Parameters
    ----------
    x : array_like
        The input.
    name : str
        Name used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    allow_empty : bool, default=False
        Whether an array with zero elements is acceptable.
    """
    if isinstance(x, str | bytes):
        raise TypeError(f"{name} must be a numeric array, got a string")
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind in "USVMm":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{name} is complex; overparam works with real data (stack real and imaginary "
            "parts to recover a complex signal)"
        )
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must be a numeric array, got booleans")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s)")
    return arr


def check_positive(value, name: str, *, strict: bool = True, integer: bool = False):
    """Raise unless ``value`` is a positive (or non-negative) real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if integer and int(value) != value:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not np.isfinite(value) or value < 0 or (strict and value == 0):
        relation = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {relation} and finite, got {value!r}")
    return value


def check_random_state(seed) -> np.random.Generator:
    """Turn ``None``, an int, a ``SeedSequence``, a ``Generator`` or a legacy
    ``numpy.random.RandomState`` into a ``numpy.random.Generator``.

    A ``RandomState`` (scikit-learn's convention) is consumed: one draw from it seeds the
    Generator, so that successive fits with the same instance differ, as in scikit-learn.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(int(seed.randint(np.iinfo(np.int32).max)))
    if seed is None or isinstance(seed, numbers.Integral | np.random.SeedSequence):
        return np.random.default_rng(seed)
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.Generator: random_state "
                     "must be None, an int, a numpy Generator or a numpy RandomState")


def sklearn_random_state(seed):
    """``seed`` for a scikit-learn object (an int or a ``RandomState``): a ``Generator``
    (which scikit-learn does not take) gives one draw of it, and ``None`` gives 0, so that
    fits are deterministic by default (scikit-learn's ``None`` is the global random state)."""
    if seed is None:
        return 0
    if isinstance(seed, np.random.Generator | np.random.SeedSequence):
        return int(check_random_state(seed).integers(np.iinfo(np.int32).max))
    check_random_state(seed if not isinstance(seed, np.random.RandomState) else None)
    return seed
