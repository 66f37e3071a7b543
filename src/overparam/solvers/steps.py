"""Scalar step-size policies.

A scalar, time-varying step only re-times the gradient flow, so it keeps the flow's path and
implicit bias up to discretization. Per-coordinate preconditioning would change the bias, so
no policy here is per-coordinate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_positive
from ..stopping import DivergenceError

__all__ = ["AdaptiveStep", "ConstantStep", "StepPolicy", "as_step_policy"]

#: No policy proposes a step above this: growth on a flat loss (zero gradient, e.g. an
#: all-zero operator) would otherwise reach ``inf``, and halving ``inf`` never ends.
MAX_STEP = 1e300
#: Halving below this gives up (``DivergenceError``): about 2000 halvings from ``MAX_STEP``.
MIN_STEP = 1e-300


def _finite_step(step: float) -> float:
    """``step`` capped at :data:`MAX_STEP` (NaN counts as too large)."""
    return step if step <= MAX_STEP else MAX_STEP


def _finite_steps(steps: np.ndarray) -> np.ndarray:
    """:func:`_finite_step` entry by entry (``fmin`` takes ``MAX_STEP`` for a NaN, as
    ``np.where(steps <= MAX_STEP, steps, MAX_STEP)`` does, in one call)."""
    return np.fmin(steps, MAX_STEP)


class StepPolicy:
    """Proposes a step, then is told whether the trial step was acceptable.

    Each iteration the solver tries ``min(step, limit(params, grads))``, asks :meth:`accept`
    whether the trial step is kept, and after each answer takes the next step from
    :meth:`next_after_accept` or :meth:`next_after_reject`.
    """

    def start(self, initial: float | None) -> float:
        """First step to try; ``initial`` is a solver's safe guess (may be None)."""
        raise NotImplementedError

    def uses_guess(self) -> bool:
        """Whether :meth:`start` reads the solver's guess: solvers skip computing it (a
        spectral norm, costly on a large operator) when it does not."""
        return True

    def sets_limit(self) -> bool:
        """Whether the policy overrides :meth:`limit` (else solvers skip calling it)."""
        return type(self).limit is not StepPolicy.limit

    def limit(self, params, grads) -> float:
        """Upper bound on the next step at the current parameters and their gradient.

        Called once per iteration, before the trial step; the solver tries
        ``min(step, limit(params, grads))``. Lets a policy cap the step by the local geometry
        (e.g. the relative change of each factor) without computing the gradient again.

        Parameters
        ----------
        params : tuple of ndarray
            The current parameters.
        grads : tuple of ndarray
            The gradient of the loss with respect to each of ``params``.

        Returns
        -------
        float
            The largest step allowed; the default, ``inf``, does not limit it.
        """
        return math.inf

    def accept(self, step: float, loss_old: float, loss_new: float, decrease: float) -> bool:
        """Whether the trial step is kept. ``decrease`` = step * ||grad||^2."""
        raise NotImplementedError

    def next_after_accept(self, step: float) -> float:
        return step

    def next_after_reject(self, step: float) -> float:
        raise NotImplementedError

    # Array forms, for solvers that run a batch of problems along a leading axis (one step per
    # problem). They give what the scalar rules give entry by entry; a policy may vectorize
    # them (AdaptiveStep does).

    def start_batch(self, initial) -> np.ndarray:
        """:meth:`start` for each of an array of safe guesses."""
        return np.array([self.start(float(s)) for s in np.asarray(initial).tolist()])

    def accept_batch(self, step, loss_old, loss_new, decrease) -> np.ndarray:
        """:meth:`accept` entry by entry (arrays that broadcast to one shape); array of bool."""
        columns = (np.ravel(a).tolist() for a in np.broadcast_arrays(step, loss_old, loss_new,
                                                                      decrease))
        return np.array([self.accept(*args) for args in zip(*columns, strict=True)],
                        dtype=bool)

    def limit_batch(self, params, grads) -> np.ndarray | None:
        """:meth:`limit` of each problem of a batch (``params`` and ``grads`` with a leading
        batch axis); None when the policy sets no limit (the default :meth:`limit`)."""
        if not self.sets_limit():
            return None
        return np.array([self.limit(tuple(p[b] for p in params), tuple(g[b] for g in grads))
                         for b in range(len(params[0]))])

    def next_after_accept_batch(self, step) -> np.ndarray:
        """:meth:`next_after_accept` entry by entry."""
        return np.array([self.next_after_accept(e) for e in np.asarray(step).tolist()])


@dataclass
class ConstantStep(StepPolicy):
    """A fixed step, as the papers use.

    Parameters
    ----------
    step : float
        The step size.
    on_divergence : {"raise", "halve"}, default="raise"
        A non-finite or exploding loss raises :class:`DivergenceError` (paper-faithful), or halves
        the step and retries the iteration (the smaller step is then kept).
    """

    step: float
    on_divergence: str = "raise"

    def __post_init__(self):
        check_positive(self.step, "step")
        if self.on_divergence not in ("raise", "halve"):
            raise ValueError(
                f"on_divergence must be 'raise' or 'halve', got {self.on_divergence!r}")

    def start(self, initial):
        return _finite_step(float(self.step))

    def uses_guess(self):
        return False

    def accept(self, step, loss_old, loss_new, decrease):
        # Divergence is judged by the solver's monitor; a constant step accepts any finite loss.
        return loss_new == loss_new and loss_new != float("inf")

    def next_after_reject(self, step):
        if self.on_divergence == "raise":
            raise DivergenceError(
                f"gradient descent diverged with the fixed step {step:.3g}; use a smaller step "
                "or the safe adaptive step (step='adaptive')"
            )
        if step / 2 < MIN_STEP:
            raise DivergenceError(f"the step was halved below {MIN_STEP:g} without a finite loss")
        return step / 2


@dataclass
class AdaptiveStep(StepPolicy):
    """Safe adaptive scalar step: backtracking (Armijo) with cautious growth.

    A trial step is kept only if the loss decreases by at least ``armijo * step * ||grad||^2``;
    otherwise it is shrunk and retried, so the loss never increases and iterates never blow up.
    After each accepted step the step grows by ``grow``, capped at ``max_step``.

    Parameters
    ----------
    initial : float or None, default=None
        First trial step; None uses the solver's guess (about 1/Lipschitz at the init).
    grow, shrink : float, default=1.1, 0.5
    armijo : float, default=1e-4
    max_step : float, default=inf
        Cap on the step; a cap keeps the iterates closer to the gradient-flow path.
    min_step : float, default=1e-300
        Below this the solver gives up with :class:`DivergenceError`.

    Every step is also capped at :data:`MAX_STEP` (``1e300``), so that a loss that is flat
    (zero gradient) cannot grow the step to ``inf``: each backtracking therefore ends after
    at most about 2000 halvings.
    """

    initial: float | None = None
    grow: float = 1.1
    shrink: float = 0.5
    armijo: float = 1e-4
    max_step: float = float("inf")
    min_step: float = 1e-300

    def uses_guess(self):
        return self.initial is None

    def start(self, initial):
        step = self.initial if self.initial is not None else (initial or 1.0)
        return _finite_step(min(float(step), self.max_step))

    def accept(self, step, loss_old, loss_new, decrease):
        return loss_new <= loss_old - self.armijo * decrease

    def next_after_accept(self, step):
        return _finite_step(min(step * self.grow, self.max_step))

    def accept_batch(self, step, loss_old, loss_new, decrease):
        return loss_new <= loss_old - self.armijo * decrease

    def next_after_accept_batch(self, step):
        grown = np.multiply(step, self.grow)
        if self.max_step != math.inf:  # (min(x, inf) is x, and fmin takes a NaN to MAX_STEP)
            grown = np.minimum(grown, self.max_step)
        return _finite_steps(grown)

    def next_after_reject(self, step):
        new = _finite_step(step) * self.shrink
        if not new >= max(self.min_step, MIN_STEP):
            raise DivergenceError(f"adaptive step fell below {self.min_step:g} without decrease")
        return new


def as_step_policy(step) -> StepPolicy:
    """``"adaptive"``, a number (constant step) or a :class:`StepPolicy`."""
    if isinstance(step, StepPolicy):
        return step
    if isinstance(step, str):
        if step == "adaptive":
            return AdaptiveStep()
        raise ValueError(
            f"step must be 'adaptive', a positive number or a StepPolicy, got {step!r}")
    return ConstantStep(step)
