"""A multirate IR-MMV step: the slow rows of ``X`` move once per block, the others every step.

From a small init IR-MMV learns a few rows while the many others stay near their start and
move slowly; yet plain gradient descent pays two products with all ``N`` columns of ``A`` per
step, at the step size that the few learned (stiff) rows allow. :class:`ActiveRowsStep` takes
the step of :class:`~overparam.solvers.mmv.RowHadamardStep` on the *active* rows only (those
that move fast or are stiff) and integrates the slow rows once per block with the exact
integral of their gradient over the block: with ``g_i``, ``V_i`` held at their block-start
values, ``sum_t eta_t Λ_i(t) = a_i^T sum_t eta_t R(t)``, so the block costs one product with
the slow columns of ``A`` (and one to move ``R``). Slow rows are those whose relative change
over a block is below ``slow`` and whose curvature times the block's span is below ``1/2``;
as the steps go to zero both integrators follow the same gradient flow (same clock, same
implicit bias). The active set is the union over the batch, chosen again every ``period``
iterations; a row read from outside (held-out checks, the output) is brought up to date
first.
"""

from __future__ import annotations

import numpy as np

from .mmv import _DEAD, RowHadamardStep, _row_change_cap

__all__ = ["ActiveRowsStep"]

_sum = np.add.reduce


class ActiveRowsStep(RowHadamardStep):
    """:class:`~overparam.solvers.mmv.RowHadamardStep` on the active rows, the slow rows
    integrated once per block (module docstring). Direct form and simultaneous update only.

    Parameters
    ----------
    period : int, default=20
        Iterations between two choices of the active rows (every slow row is brought up to
        date there).
    slow : float, default=0.05
        A row is slow if its relative change over ``2 period`` steps of the current size is
        below this.
    """

    def __init__(self, A, Y, params, policy, *, period: int = 20, slow: float = 0.05,
                 **kwargs):
        super().__init__(A, Y, params, policy, gram=False, **kwargs)
        if self.sequential:
            raise ValueError("ActiveRowsStep takes the simultaneous update only")
        self.period, self.slow = int(period), float(slow)
        self.col_norm2 = np.einsum("bmn,bmn->bn", A, A)  # ||a_i||^2: the rows' curvature
        self.W = None

    def init(self) -> np.ndarray:
        loss = super().init()
        B, N = self.g.shape
        self.W = np.zeros_like(self.R)  # sum of eta_t R(t) over the block's accepted steps
        self.span = np.zeros(B)  # sum of eta_t over the block
        self.iterations = 0
        self._set_active(np.ones(N, dtype=bool))
        return loss

    def _set_active(self, mask) -> None:
        """Active rows ``mask`` (shared by the batch); the products' column blocks."""
        self.mask = mask
        self.S, self.I = np.flatnonzero(mask), np.flatnonzero(~mask)
        full = self.I.size == 0
        self.A_S = self.A if full else np.ascontiguousarray(self.A[:, :, self.S])
        self.At_S = self.At if full else np.ascontiguousarray(self.At[:, self.S])
        self.A_I = None if full else np.ascontiguousarray(self.A[:, :, self.I])
        self.At_I = None if full else np.ascontiguousarray(self.At[:, self.I])
        self.Lam_S = self.At_S @ self.R

    # -- reads from outside bring the slow rows up to date ------------------------------------

    def params(self, rows) -> tuple:
        self._flush(rows)
        return self.g[rows], self.V[rows]

    def signal(self, rows) -> np.ndarray:
        self._flush(rows)
        return self.parameterization.signal((self.g[rows], self.V[rows]))

    def _flush(self, rows) -> None:
        """End the block of working rows ``rows``: move their slow rows by the block's
        integrated gradient, and ``R`` (and ``Λ`` on the active rows) with them."""
        if self.W is None or self.A_I is None:
            return
        idx = np.atleast_1d(np.arange(self.g.shape[0])[rows])
        idx = idx[self.span[idx] > 0]
        if idx.size == 0:
            return
        I = self.I
        g0, V0 = self.g[idx][:, I], self.V[idx][:, I]
        lam = self.At_I[idx] @ self.W[idx]  # sum_t eta_t Λ_I(t)
        g1 = g0 + 4.0 * g0 * _sum(lam * V0, -1)
        V1 = V0 + (2.0 * g0 * g0)[..., None] * lam
        g1[np.abs(g1) < _DEAD] = 0.0
        d_X = (g1 * g1)[..., None] * V1 - (g0 * g0)[..., None] * V0
        R = self.R[idx] - self.A_I[idx] @ d_X
        self.R[idx] = R
        self.loss[idx] = _sum(R * R, (1, 2))
        self.g[np.ix_(idx, I)] = g1
        self.V[np.ix_(idx, I)] = V1
        self.Lam_S[idx] = self.At_S[idx] @ R
        self.W[idx] = 0.0
        self.span[idx] = 0.0

    def _choose_active(self) -> None:
        """Bring every slow row up to date and choose the active rows again: those that
        would change by more than ``slow`` over ``2 period`` steps, or whose curvature times
        that span is above 1/2, in some problem of the batch."""
        self._flush(slice(None))
        lam = self.At @ self.R  # Λ of every row, for the rates (once per period)
        g, V = self.g, self.V
        g2, v_norm = g * g, np.sqrt(_sum(V * V, -1))
        lam_v = np.abs(_sum(lam * V, -1))
        lam_norm = np.sqrt(_sum(lam * lam, -1))
        with np.errstate(divide="ignore", invalid="ignore"):
            rate_v = np.where(v_norm > 0, 2.0 * g2 * lam_norm / v_norm, np.inf)
        rate = np.maximum(4.0 * lam_v, rate_v)
        curvature = (2.0 * self.col_norm2 * (g2 * g2 + 4.0 * g2 * v_norm**2)
                     + 4.0 * lam_v + 4.0 * np.abs(g) * lam_norm)
        span = (2.0 * self.period * self.eta)[:, None]
        active = (rate * span > self.slow) | (curvature * span > 0.5)
        active &= g != 0  # dead rows stay dead
        mask = active.any(axis=0)
        if not np.array_equal(mask, self.mask):
            self._set_active(mask)

    # -- the step on the active rows ----------------------------------------------------------

    def step(self, time_left, diverged):
        self.iterations += 1
        if self.iterations % self.period == 0:
            self._choose_active()
        S = self.S
        g, V = self.g[:, S], self.V[:, S]
        grad_g, grad_V = self.parameterization.vjp((g, V), self.Lam_S)
        grad_g, grad_V = -2.0 * grad_g, -2.0 * grad_V
        e = self.eta
        if self.max_row_change is not None:
            e = np.minimum(e, _row_change_cap(g, grad_g, self.max_row_change))
        if time_left is not None and (2.0 * max(e.tolist()) * self.time_per_step
                                      >= min(time_left.tolist())):
            e = np.minimum(e, np.maximum(time_left, 0.0) / self.time_per_step)
        d_g = -e[:, None] * grad_g
        d_V = -e[:, None, None] * grad_V
        g_new, V_new = g + d_g, V + d_V
        d_X = (d_g * (2.0 * g + d_g))[..., None] * V_new + (g * g)[..., None] * d_V
        A_dX = self.A_S @ d_X
        trial = {"g": g_new, "V": V_new, "u": A_dX, "w": 2.0 * self.R - A_dX,
                 "R": self.R - A_dX}
        d_loss = -_sum(trial["u"] * trial["w"], (1, 2))
        trial.update(loss=self.loss + d_loss, d_loss=d_loss,
                     decrease=e * (_sum(grad_g * grad_g, -1) + _sum(grad_V * grad_V, (1, 2))))
        accepted = self._accept(e, trial, diverged)
        if not accepted.any():
            return None
        return self._move_active(accepted, trial, e, g, V)

    def _move_active(self, accepted, trial, e, g, V):
        g_new, V_new, R_new, loss_new = trial["g"], trial["V"], trial["R"], trial["loss"]
        g_new[np.abs(g_new) < _DEAD] = 0.0
        dt = e * self.time_per_step
        accepted_list = accepted.tolist()
        rejected = [j for j, a in enumerate(accepted_list) if not a]
        self.n_accepted += accepted
        if self.A_I is not None:  # the slow rows' integral: eta_t R(t) at the step's start
            moved = np.where(accepted, e, 0.0)
            self.W += moved[:, None, None] * self.R
            self.span += moved
        for j in rejected:
            g_new[j], V_new[j], R_new[j] = g[j], V[j], self.R[j]
            loss_new[j], dt[j] = self.loss[j], 0.0
        S = self.S
        self.g[:, S], self.V[:, S] = g_new, V_new
        self.loss, self.R = loss_new, R_new
        self._refresh_residuals(accepted_list)
        Lam_new = self.At_S @ self.R
        for j in rejected:
            Lam_new[j] = self.Lam_S[j]
        self.Lam_S = Lam_new
        return accepted_list, dt, self.loss

    def keep(self, mask) -> None:
        super().keep(mask)
        for key in ("col_norm2", "W", "span", "A_S", "At_S", "Lam_S"):
            setattr(self, key, getattr(self, key)[mask])
        if self.A_I is not None:
            self.A_I, self.At_I = self.A_I[mask], self.At_I[mask]
