"""The one container every problem generator returns, and the generators' shared vocabulary.

Keyword names, the same in every generator (see ``docs/datasets.md``):

- ``n_measurements`` -- the number of measurements ``m`` (rows of ``A``, length of ``y``);
- ``n_features`` -- the length ``n`` of an unknown vector (rows of a row-sparse ``X``);
  ``n_columns`` its number of columns ``L``;
- ``n_rows``, ``n_cols`` (or ``shape``) -- the size of an unknown low-rank matrix;
- ``snr`` -- noise at this signal-to-noise ratio, in dB; ``noise_std`` -- noise of this
  standard deviation per measurement (the two are exclusive);
- ``random_state`` -- None, an int or a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_positive
from ..metrics import add_noise

__all__ = ["Problem"]

# Names the problem classes had before they became one ``Problem``, per structure: an
# attribute name, or ("meta", key). Read through ``Problem.__getattr__`` with a warning.
_LEGACY_NAMES: dict[str, dict[str, str | tuple[str, str]]] = {
    "sparse": {"A": "operator", "x": "truth"},
    "group_sparse": {"X": "operator", "w": "truth", "groups": ("meta", "groups"),
                     "active_groups": ("meta", "active_groups"),
                     "feature_names": ("meta", "feature_names")},
    "row_sparse": {"A": "operator", "Y": "y", "X": "truth", "support": ("meta", "support")},
    "low_rank": {"Y": "truth"},
}


@dataclass
class Problem:
    """Measurements ``y = A(truth) + noise`` of a structured signal.

    Attributes
    ----------
    operator : ndarray or Operator
        The forward model ``A`` as the estimators take it: a dense matrix ``(m, n)`` (a stack
        ``(B, m, n)`` for a batch of problems) or an :class:`~overparam.operators.Operator`.
    y : ndarray
        The measurements, ``(m,)`` or ``(m, L)`` (with a leading batch axis for a batch).
    truth : ndarray or None
        The signal to recover (a vector, a matrix, or a row-sparse matrix); None for real
        data, whose truth is unknown.
    noise : ndarray or None
        The noise added to ``A(truth)``; zeros for noiseless problems, None for real data.
    meta : dict
        ``"structure"`` (``"sparse"``, ``"group_sparse"``, ``"row_sparse"`` or ``"low_rank"``)
        and what the structure needs besides the signal: ``"groups"`` and
        ``"active_groups"`` (group sparsity), ``"support"`` (row sparsity), ``"rank"``
        (low rank); ``"feature_names"`` for real data sets.
    """

    operator: Any
    y: np.ndarray
    truth: np.ndarray
    noise: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def noise_std(self) -> float | None:
        """Empirical standard deviation of the noise per measurement (None when unknown)."""
        if self.noise is None:
            return None
        return float(np.sqrt(np.mean(np.square(self.noise))))

    def __getattr__(self, name):
        # Only reached when normal lookup fails; "meta" itself may be missing mid-unpickling.
        if name.startswith("_") or name == "meta":
            raise AttributeError(name)
        structure = self.meta.get("structure")
        target = _LEGACY_NAMES.get(structure, {}).get(name)
        if target is None or (isinstance(target, tuple) and target[1] not in self.meta):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        new = f"meta[{target[1]!r}]" if isinstance(target, tuple) else target
        warnings.warn(f"Problem.{name} is deprecated for {structure} problems: use "
                      f"Problem.{new}", DeprecationWarning, stacklevel=2)
        return self.meta[target[1]] if isinstance(target, tuple) else getattr(self, target)


def renamed_keywords(**renames: str):
    """Decorator: accept each old keyword ``old=new`` in ``renames`` with a FutureWarning.

    The old name is passed on under the new one; giving both is a TypeError.
    """
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{func.__name__}() got both {old!r} (deprecated) and {new!r}")
                warnings.warn(f"{func.__name__}({old}=...) is deprecated: use {new}=...",
                              FutureWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)
        return wrapper
    return decorate


def with_noise(clean, rng, *, snr=None, noise_std=None, default_std: float = 0.0):
    """``(clean + noise, noise)``: Gaussian noise at ``snr`` dB or of ``noise_std`` per entry.

    ``snr`` scales the noise to that SNR exactly (:func:`overparam.metrics.add_noise`);
    ``noise_std`` (``default_std`` when both are None) draws i.i.d. ``N(0, noise_std^2)``
    entries, and draws nothing when it is 0.
    """
    if snr is not None:
        if noise_std is not None:
            raise ValueError(f"give snr or noise_std, not both (got {snr} and {noise_std})")
        return add_noise(clean, snr, rng)
    std = default_std if noise_std is None else noise_std
    check_positive(std, "noise_std", strict=False)
    if std == 0:
        return clean + 0.0, np.zeros_like(clean, dtype=float)
    noise = std * rng.standard_normal(np.shape(clean))
    return clean + noise, noise
