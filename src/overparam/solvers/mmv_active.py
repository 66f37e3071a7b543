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
iterations, where every slow row is brought up to date; so is a problem before its output
(:meth:`ActiveRowsStep.sync`). Held-out checks read the slow rows as of their block's start
(at most ``period`` iterations old): bringing them up to date at every check cost as much as
the steps saved. Measured in docs/mmv.md ("Cost").
"""

from __future__ import annotations

import numpy as np

from .mmv import _DEAD, RowHadamardStep, row_gradient, trial_step

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
                 gram: bool | None = None, **kwargs):
        if gram:
            raise ValueError("ActiveRowsStep takes the direct form only (gram=False)")
        super().__init__(A, Y, params, policy, gram=False, **kwargs)
        if self.sequential:
            raise ValueError("ActiveRowsStep takes the simultaneous update only")
        if self.policy_limits:  # its step would ignore the limit: say so, never silently
            raise ValueError("ActiveRowsStep takes step policies that set no limit")
        self.period, self.slow = int(period), float(slow)
        self.col_norm2 = np.einsum("bmn,bmn->bn", A, A)  # ||a_i||^2: the rows' curvature
        self.W = None

    def init(self) -> np.ndarray:
        loss = super().init()
        B, N = self.g.shape
        self.W = np.zeros_like(self.R)  # sum of eta_t R(t) over the block's accepted steps
        self.span = np.zeros(B)  # sum of eta_t over the block
        self.iterations = 0
        self.log_rate = np.zeros((B, N))
        self.span_checked = np.zeros(B)  # sum of eta_t since each row's last held-out check
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
        self.lam_I = None if full else self.At_I @ self.R  # Λ of the slow rows (rates)

    # -- the slow rows' blocks -----------------------------------------------------------------

    def sync(self, rows) -> None:
        """Bring the slow rows of working rows ``rows`` up to date (before an output; a
        held-out check reads them as of their block's start)."""
        self._flush(rows)

    def _flush(self, rows) -> None:
        """End the block of working rows ``rows``: move their slow rows by the block's
        integrated gradient, and ``R`` (and ``Λ`` on the active rows) with them."""
        if self.W is None or self.A_I is None:
            return
        idx = np.atleast_1d(np.arange(self.g.shape[0])[rows])
        idx = idx[self.span[idx] > 0].tolist()
        if len(idx) == self.g.shape[0]:
            self._flush_rows(slice(None))
        else:  # one by one: views of the stacked matrices, no copies
            for j in idx:
                self._flush_rows(j)

    def _flush_rows(self, j) -> None:
        """:meth:`_flush` of working row(s) ``j`` (an int or a slice)."""
        I = self.I
        g0, V0 = self.g[j][..., I], self.V[j][..., I, :]
        lam = self.At_I[j] @ self.W[j]  # sum_t eta_t Λ_I(t)
        self.lam_I[j] = lam / np.asarray(self.span[j])[..., None, None]  # its mean, for rates
        V1 = V0 + (2.0 * g0 * g0)[..., None] * lam  # exact for a fixed g
        g1 = g0 + 2.0 * g0 * _sum(lam * (V0 + V1), -1)  # V at the block's middle
        g1[np.abs(g1) < _DEAD] = 0.0
        d_X = (g1 * g1)[..., None] * V1 - (g0 * g0)[..., None] * V0
        R = self.R[j] - self.A_I[j] @ d_X
        self.R[j] = R
        self.loss[j] = _sum(R * R, (-2, -1))
        self.g[j, ..., I] = g1
        self.V[j, ..., I, :] = V1
        self.Lam_S[j] = self.At_S[j] @ R
        self.W[j] = 0.0
        self.span[j] = 0.0

    def _choose_active(self) -> None:
        """Bring every slow row up to date and choose the active rows again: those that
        would change by more than ``slow`` over ``2 period`` steps, or whose curvature times
        that span is above 1/2, in some problem of the batch (``Λ`` of a slow row: its mean
        over its last block)."""
        self._flush(slice(None))
        g, V = self.g, self.V
        lam = np.empty_like(V)
        lam[:, self.S], lam[:, self.I] = self.Lam_S, self.lam_I
        g2, v2 = g * g, _sum(V * V, -1)
        lam_v = np.abs(_sum(lam * V, -1))
        lam2 = _sum(lam * lam, -1)
        span = (2.0 * self.period * self.eta)[:, None]
        # relative change of g_i over the span (V grows by 2 g^2 Λ per unit step); V itself
        # is integrated exactly for a fixed g
        change = (4.0 * lam_v + 4.0 * g2 * lam2 * span) * span
        curvature = (2.0 * self.col_norm2 * (g2 * g2 + 4.0 * g2 * v2)
                     + 4.0 * lam_v + 4.0 * np.abs(g) * np.sqrt(lam2))
        active = (change > self.slow) | (curvature * span > 0.5)
        # growth rate of log g_i per unit step, for the staircase test between blocks
        self.log_rate = 4.0 * _sum(lam * V, -1)
        active &= g != 0  # dead rows stay dead
        mask = active.any(axis=0)
        if not np.array_equal(mask, self.mask):
            self._set_active(mask)

    def staircase(self, j: int) -> bool:
        """:meth:`RowHadamardStep.staircase`, with the slow rows' growth since the check
        taken from their growth rate at the last choice of the active rows (they move
        once per block)."""
        climbing = super().staircase(j)
        span, self.span_checked[j] = self.span_checked[j], 0.0
        if climbing or self.I.size == 0:
            return climbing
        return bool(np.max(self.log_rate[j, self.I]) * span >= self.row_tol)

    # -- the step on the active rows ----------------------------------------------------------

    def step(self, time_left, diverged):
        self.iterations += 1
        if self.iterations % self.period == 0:
            self._choose_active()
        S = self.S
        g, V = self.g[:, S], self.V[:, S]
        grad_g, P, grad_norm2, gg, two_g = row_gradient(g, V, self.Lam_S)
        e = self._capped(self.eta, g, grad_g, time_left)
        trial = trial_step(e, g, V, (grad_g, P, gg, two_g), self.loss, gram=None, A=self.A_S,
                           carried=self.R)
        trial["decrease"] = e * grad_norm2
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
        self.span_checked += np.where(accepted, e, 0.0)
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
        for key in ("col_norm2", "W", "span", "A_S", "At_S", "Lam_S", "log_rate",
                    "span_checked"):
            setattr(self, key, getattr(self, key)[mask])
        if self.A_I is not None:
            self.A_I, self.At_I, self.lam_I = self.A_I[mask], self.At_I[mask], self.lam_I[mask]
