"""A multirate step for Algorithms 1-2 of the group network: slow groups move once per block.

From the small init the weight-normalized iteration learns a few groups while the many
others stay near ``u(0)``: their weights ``u_l^2 v_l`` are negligible, yet every iteration of
:class:`~overparam.solvers.group.WeightNormalizedStep` reads all of ``X`` twice each way
(``X x`` and ``X^T r``) to move them. :class:`ActiveGroupsStep` takes the same iteration on
the *active* groups only (products with their columns) and moves the *slow* groups once per
block of ``period`` iterations with their drive integrated over the block.

A slow group's own weight is held at its block-start value over the block (it is too small
to change the residual: the test below), so the residuals ``r_t`` of the block do not depend
on its moves, and its iteration decouples:

- its magnitude step is ``u <- u (1 + 2 gamma_t a_t)`` with the drive
  ``a_t = <v_l(t+1), X_l^T r_t / n>`` (``r_t`` the residual at the new directions, the
  half step); for a direction ``v_l`` fixed over the block, ``sum_t gamma_t a_t =
  <v_l, X_l^T W / n>`` with ``W = sum_t gamma_t r_t``: one product for all slow groups per
  block, and ``u`` moves by ``(1 + 2 mean_t(gamma_t a_t))^B`` (exact when the drive is
  constant over the block, as it is while the learned groups settle);
- which direction: before Algorithm 2's switch the plain step points a slow group's
  direction along its current correlation (``normalize(u^2 v + kappa g)`` with ``u^2``
  negligible), so its drive is ``||g_l(t)||``; held at the block's mean correlation, the
  drive integrates to ``||X_l^T W|| / n`` (a lower bound of ``sum_t gamma_t ||g_l(t)||``,
  equal when the correlation keeps its direction over the block); the direction at the
  block's end is the plain step's, along the correlation there. After the switch the
  direction moves by ``eta u^2 g`` per step: integrated the same way, the drive read at the
  block's middle direction.

A group is slow when its weight, grown at its current rate over twice a period, changes the
residual by at most ``slow`` times ``||r||`` (``||X_l||_F u_l^2`` times its growth). The
active set is chosen again every ``period`` iterations from a full ``X^T r`` (with the
block's ``X^T W`` in the same pass over ``X``) and one product ``X x`` of the slow groups'
weights; so twice per block, Algorithm 2's switch and the step that lands on a stopping time
bring every slow group up to date. Algorithm 2's switch test reads a slow group's change per
iteration from its drive at the last choice. Same clock (iterations) as the plain step; as
``slow -> 0`` every group is active and the iterates are the plain step's. Measured in
docs/group.md ("Cost at scale").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ..operators.matrix import DenseOperator
from ..parameterizations.group import group_sums, normalize_groups
from ..solvers.loop import Iterate
from ..stopping import Validation
from .group import WeightNormalizedStep

__all__ = ["ActiveGroupsStep", "IncrementalValidation", "incremental_validation"]


class ActiveGroupsStep(WeightNormalizedStep):
    """:class:`~overparam.solvers.group.WeightNormalizedStep` on the active groups, the slow
    groups moved once per block (module docstring). A dense design and the paper's loss
    scale (``loss_scale="half-mean"``) only.

    Parameters
    ----------
    period : int, default=40
        Iterations between two choices of the active groups (every slow group is brought up
        to date there).
    slow : float, default=1e-4
        A group is slow if its weight, grown at its current rate over ``2 period``
        iterations, changes the residual by at most this fraction of ``||r||``.
    """

    def __init__(self, param, operator, y, params, *, period: int = 40, slow: float = 1e-4,
                 **kwargs):
        super().__init__(param, operator, y, params, **kwargs)
        if self.loss_scale != "half-mean":
            raise ValueError("ActiveGroupsStep takes loss_scale='half-mean' only")
        if int(period) < 1 or not float(slow) >= 0:
            raise ValueError(f"period must be >= 1 and slow >= 0, got {period!r}, {slow!r}")
        self.A = np.asarray(operator.to_dense(), dtype=float)
        self.period, self.slow = int(period), float(slow)
        self.name = f"group {self.algorithm} (active groups)"
        labels = param.labels
        self.frobenius = np.sqrt(group_sums(labels, np.einsum("ij,ij->j", self.A, self.A),
                                            param.n_groups))  # ||X_l||_F
        self.n_refreshes = 0
        self.active_sizes = []  # active groups at each choice

    # -- state ----------------------------------------------------------------------------

    def init(self) -> Iterate:
        u, v = (np.array(p, dtype=float) for p in self.params0)
        self.u, self.v = u, v
        self.x = u[self.param.labels] ** 2 * v
        self.rate = np.zeros(self.param.n_groups)  # per-iteration drive of each group
        self._set_active(np.ones(self.param.n_groups, dtype=bool))
        return self._iterate()

    def _iterate(self) -> Iterate:
        rr = float(self.r @ self.r)
        return Iterate((self.u, self.v), self.x, 0.5 * rr * self.inv_n, math.sqrt(rr), dt=1.0)

    def _set_active(self, mask) -> None:
        """Active groups ``mask``: their columns, the slow groups' frozen part of ``X x``,
        the residual and the active correlation; a new block."""
        labels, G = self.param.labels, self.param.n_groups
        self.mask = mask
        self.S = np.flatnonzero(mask)
        cols = mask[labels]
        self.all_active = bool(cols.all())
        self.cols_S = np.flatnonzero(cols)
        self.cols_I = np.flatnonzero(~cols)
        index = np.full(G, -1)
        index[self.S] = np.arange(self.S.size)
        self.labels_S = index[labels[self.cols_S]]
        self.k = self.S.size
        if self.all_active:
            self.A_S, self.y_S = self.A, self.y
        else:
            self.A_S = np.ascontiguousarray(self.A[:, self.cols_S])
            x_I = self.x.copy()
            x_I[self.cols_S] = 0.0
            self.y_S = self.y - self.A @ x_I  # the slow groups' part, frozen over the block
        self.r = self.y_S - self.A_S @ self.x[self.cols_S]
        self.g_S = self.A_S.T @ self.r * self.inv_n
        self.W = np.zeros_like(self.r)  # sum_t gamma_t r_t (half steps) over the block
        self.block = 0
        self.n_refreshes += 1

    # -- the slow groups' blocks ------------------------------------------------------------

    def _flush(self):
        """End the block: move the slow groups by their integrated drive. Returns the full
        correlation ``X^T r / n`` at the block's end (before the move)."""
        A, inv_n = self.A, self.inv_n
        if self.all_active or self.block == 0:
            return self.g_S.copy() if self.all_active else A.T @ self.r * inv_n
        integral, g = np.vstack([self.W, self.r]) @ A * inv_n  # one pass over X
        I, cols, G = np.flatnonzero(~self.mask), self.cols_I, self.param.n_groups
        labels = self.param.labels[cols]
        u, v = self.u.copy(), self.v.copy()
        u2 = u[labels] ** 2
        v0, Wg = v[cols], integral[cols]  # sum_t gamma_t g_l(t)
        if self.normalized_phase:  # drive ||g_l||, the direction held at the block's mean
            drive = np.sqrt(group_sums(labels, Wg * Wg, G))[I]
            v_end = normalize_groups(labels, G, u2 * v0 + self.kappa * g[cols], v0)
        else:  # v += eta u^2 g per step, eta = gamma (eta / gamma)
            v_end = normalize_groups(labels, G, v0 + (self.eta / self.gamma) * u2 * Wg, v0)
            drive = group_sums(labels, 0.5 * (v0 + v_end) * Wg, G)[I]
        base = np.maximum(1.0 + 2.0 * drive / self.block, 0.0)
        u[I] = u[I] * base**self.block
        v[cols] = v_end
        self.u, self.v = u, v
        x = self.x.copy()
        x[cols] = u[labels] ** 2 * v_end
        self.x = x
        return g

    def _refresh(self, choose: bool = True) -> None:
        """Bring every slow group up to date; choose the active groups again (``choose``)."""
        g = self._flush()
        param = self.param
        if self.normalized_phase:
            self.rate = np.sqrt(param.group_sum(g * g))
        else:
            self.rate = param.group_sum(self.v * g)
        mask = self.mask
        if choose:
            growth = np.exp(np.minimum(
                4.0 * self.period * np.log1p(2.0 * self.gamma * np.abs(self.rate)), 700.0))
            effect = self.frobenius * self.u**2 * growth  # u^2 grows like the square
            mask = effect > self.slow * math.sqrt(float(self.r @ self.r))
            self.active_sizes.append(int(np.count_nonzero(mask)))
        self._set_active(mask)

    # -- the step on the active groups --------------------------------------------------------

    def _trial(self, current=None):
        """Algorithm 1-2's iteration on the active groups (from the step's own state, not
        ``current``): ``(u_S, u_S new, v_S new, x_S new, r new, r at the half step)``."""
        labels, k, A_S = self.labels_S, self.k, self.A_S
        u = self.u[self.S]
        v = self.v[self.cols_S]
        u2 = u[labels] ** 2
        g = self.g_S
        z = u2 * v + self.kappa * g if self.normalized_phase else v + self.eta * u2 * g
        v_new = normalize_groups(labels, k, z, v)
        r_half = self.y_S - A_S @ (u2 * v_new)
        drive = group_sums(labels, v_new * (A_S.T @ r_half) * self.inv_n, k)
        u_new = u + self.gamma * 2.0 * u * drive
        x_S = u_new[labels] ** 2 * v_new
        r = self.y_S - A_S @ x_S
        return u, u_new, v_new, x_S, r, r_half

    def step(self, current, *, time_left, diverged):
        """One iteration on the active groups (redone with halved steps on divergence if
        asked); the slow groups accumulate their drive; the switch test of Algorithm 2."""
        if self.iteration % self.period == 0:
            self._refresh()
        while True:
            u, u_new, v_new, x_S, r, r_half = self._trial()
            loss = 0.5 * float(r @ r) * self.inv_n
            if not diverged(loss):
                break
            self._halve_after_divergence(loss)
        if not self.all_active:
            self.W += self.gamma * r_half
            self.block += 1
        full_u, full_v, x = self.u.copy(), self.v.copy(), self.x.copy()
        full_u[self.S], full_v[self.cols_S], x[self.cols_S] = u_new, v_new, x_S
        self.u, self.v, self.x, self.r = full_u, full_v, x, r
        self.g_S = self.A_S.T @ r * self.inv_n
        self.iteration += 1
        if self.watch_switch:
            change = np.abs(u_new - u) / np.abs(u + self.switch_eps)
            slow = ~self.mask
            if slow.any():  # a slow group's change per iteration from its drive
                change = np.concatenate([change, 2.0 * self.gamma * np.abs(self.rate[slow])])
            change = float(change.max()) if change.size else 0.0
            if (change < self.switch_tol if self.switch_at is None
                    else self.iteration >= self.switch_at):
                self._refresh(choose=False)  # the block so far was before the switch
                self.normalized_phase = self.watch_switch = False
                self.switch_iteration = self.iteration
        if time_left <= 1.0 and not self.all_active:  # lands on a stopping time: up to date
            self._refresh(choose=False)
        return self._iterate()

    def info(self) -> dict:
        info = super().info()
        info.update(step="active groups", period=self.period, slow=self.slow,
                    n_refreshes=self.n_refreshes,
                    active_groups=(self.active_sizes[-1] if self.active_sizes
                                   else self.param.n_groups),
                    max_active_groups=max(self.active_sizes, default=self.param.n_groups))
        return info


@dataclass
class IncrementalValidation(Validation):
    """:class:`~overparam.stopping.Validation` on a matrix whose held-out prediction
    ``A_val x`` is updated by the entries of ``x`` that changed since the last check.

    Between two choices of the active groups :class:`ActiveGroupsStep` changes only the
    active groups' entries, so a check costs a product with their columns instead of a
    full product with ``A_val`` (which would cost more than the step itself). The
    prediction is formed afresh whenever more than a quarter of the entries changed (at the
    blocks' ends), so rounding does not accumulate over more than a block.
    """

    _x: object = None
    _prediction: object = None

    def error(self, x) -> float:
        A = self.operator.matrix
        x = np.asarray(x, dtype=float)
        changed = None if self._x is None else np.flatnonzero(x != self._x)
        if changed is None or changed.size > x.size // 4:
            prediction = A @ x
        else:
            prediction = self._prediction + A[:, changed] @ (x[changed] - self._x[changed])
        self._x, self._prediction = x.copy(), prediction
        return self.prediction_error(prediction)


def incremental_validation(validation: Validation | None) -> Validation | None:
    """``validation`` as an :class:`IncrementalValidation` (same settings and record) when
    its held-out operator is a matrix; else unchanged."""
    if validation is None or isinstance(validation, IncrementalValidation) \
            or not isinstance(validation.operator, DenseOperator):
        return validation
    return IncrementalValidation(**{f.name: getattr(validation, f.name)
                                    for f in fields(Validation) if f.init})
