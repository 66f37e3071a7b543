"""The one container every problem generator returns."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Problem"]

# Names the problem classes had before they became one ``Problem``, per structure: an
# attribute name, or ("meta", key). Read through ``Problem.__getattr__`` with a warning.
_LEGACY_NAMES: dict[str, dict[str, str | tuple[str, str]]] = {
    "sparse": {"A": "operator", "x": "truth"},
    "group_sparse": {"X": "operator", "w": "truth", "groups": ("meta", "groups"),
                     "active_groups": ("meta", "active_groups")},
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
    truth : ndarray
        The signal to recover (a vector, a matrix, or a row-sparse matrix).
    noise : ndarray
        The noise added to ``A(truth)``; zeros for noiseless problems.
    meta : dict
        ``"structure"`` (``"sparse"``, ``"group_sparse"``, ``"row_sparse"`` or ``"low_rank"``)
        and what the structure needs besides the signal: ``"groups"`` and
        ``"active_groups"`` (group sparsity), ``"support"`` (row sparsity), ``"rank"``
        (low rank).
    """

    operator: Any
    y: np.ndarray
    truth: np.ndarray
    noise: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def noise_std(self) -> float:
        """Empirical standard deviation of the noise per measurement."""
        return float(np.sqrt(np.mean(np.square(self.noise))))

    def __getattr__(self, name):
        # Only reached when normal lookup fails; "meta" itself may be missing mid-unpickling.
        if name.startswith("_") or name == "meta":
            raise AttributeError(name)
        structure = self.meta.get("structure")
        target = _LEGACY_NAMES.get(structure, {}).get(name)
        if target is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        new = f"meta[{target[1]!r}]" if isinstance(target, tuple) else target
        warnings.warn(f"Problem.{name} is deprecated for {structure} problems: use "
                      f"Problem.{new}", DeprecationWarning, stacklevel=2)
        return self.meta[target[1]] if isinstance(target, tuple) else getattr(self, target)
