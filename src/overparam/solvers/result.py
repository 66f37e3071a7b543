"""What every solver returns: the estimate, its parameters, cost, why it stopped, a history."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..stopping import StopReason

__all__ = ["History", "SolverResult"]


@dataclass
class History:
    """Quantities recorded every ``every`` iterations.

    Parameters
    ----------
    every : int
        Record period in iterations (the first and last iterations are always recorded).
    truth : ndarray, optional
        Ground truth; when given, the relative error ``||x - truth|| / ||truth||`` is recorded.
    quantities : mapping of str to callable, optional
        Extra quantities ``name -> f(params, x)`` to record, e.g. the balance of a factorization.
    """

    every: int = 1
    truth: np.ndarray | None = None
    quantities: Mapping[str, Callable] = field(default_factory=dict)
    iteration: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    error: list[float] = field(default_factory=list)
    values: dict[str, list] = field(default_factory=dict)

    def due(self, iteration: int) -> bool:
        """Whether ``iteration`` falls on the record period."""
        return iteration % self.every == 0

    def record(self, iteration: int, elapsed: float, loss: float, params, x) -> None:
        """Append one row (skipped if this iteration is already the last row)."""
        if self.iteration and self.iteration[-1] == iteration:
            return
        self.iteration.append(int(iteration))
        self.time.append(float(elapsed))
        self.loss.append(float(loss))
        if self.truth is not None:
            denom = np.linalg.norm(self.truth)
            err = np.linalg.norm(np.asarray(x) - self.truth)
            self.error.append(float(err / denom) if denom > 0 else float(err))
        for name, fn in self.quantities.items():
            self.values.setdefault(name, []).append(np.asarray(fn(params, x)).copy())

    def as_dict(self) -> dict[str, np.ndarray]:
        """All recorded series as arrays, keyed by name."""
        out = {"iteration": np.asarray(self.iteration), "time": np.asarray(self.time),
               "loss": np.asarray(self.loss)}
        if self.error:
            out["error"] = np.asarray(self.error)
        out.update({k: np.asarray(v) for k, v in self.values.items()})
        return out


@dataclass
class SolverResult:
    """The outcome of one solver run.

    Attributes
    ----------
    coef : ndarray
        The estimated signal.
    params : tuple of ndarray
        Final parameters of the factorization (empty for solvers without one).
    n_iter : int
        Iterations performed (for ODE solvers: right-hand-side evaluations).
    wall_time : float
        Seconds spent in the solver.
    stop_reason : StopReason
        Why it stopped.
    history : History or None
        Recorded quantities, if asked for.
    info : dict
        Solver-specific extras (final step size, chosen stopping time, ...).
    """

    coef: np.ndarray
    params: tuple
    n_iter: int
    wall_time: float
    stop_reason: StopReason
    history: History | None = None
    info: dict = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """True when the solver reached its tolerance."""
        return self.stop_reason in (StopReason.CONVERGED, StopReason.DISCREPANCY)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.n_iter} iterations in {self.wall_time:.3g} s, "
                f"stopped: {self.stop_reason.value}")
