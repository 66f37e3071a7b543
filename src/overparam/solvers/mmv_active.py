"""A multirate IR-MMV step: the slow rows of ``X`` move once per block, the others every step.

From a small init IR-MMV learns a few rows while the many others stay near their start and
move slowly; yet plain gradient descent pays two products with all ``N`` columns of ``A`` per
step, at the step size that the few learned (stiff) rows allow. :class:`ActiveRowsStep` takes
the step of :class:`~overparam.solvers.mmv.RowHadamardStep` on the *active* rows ``S`` only
(those that move fast or are stiff) and integrates the slow rows once per block with the exact
integral of their gradient over the block: with ``g_i``, ``V_i`` held at their block-start
values, ``sum_t eta_t Λ_i(t) = a_i^T sum_t eta_t R(t)``, and since only the active rows move
within a block, ``sum_t eta_t R(t) = span R_0 - A_S Z`` with ``Z = sum_t eta_t (X_S(t) -
X_S(0))`` (``S x L``, cheap to accumulate). A block end thus costs one product with ``A^T``
and one with ``A`` (the residual afresh, no drift). Slow rows are those whose relative change
over ``2 period`` steps is below ``slow`` and whose curvature times that span is below ``1/2``;
as the steps go to zero both integrators follow the same gradient flow (same clock, same
implicit bias). The active set is the union over the batch, chosen again at each block's end,
where every slow row is brought up to date; so is a problem before its output
(:meth:`ActiveRowsStep.sync`). A block lasts ``period`` iterations, and twice as long (up to
``2 period``) each time the active set comes out unchanged. Held-out checks read the slow rows
as of their block's start: bringing them up to date at every check cost as much as the steps
saved.

The active step's products: the active rows of ``A^T`` are gathered (contiguous rows of the
kept ``A^T``, no column blocks of ``A`` copied), and where ``2 |S| <= M`` the step carries
``Λ_S`` through the Gram matrix ``A_S^T A_S`` (``|S|^2`` per column of ``Y`` instead of
``2 M |S|``; the residual is then formed only at block ends). Measured in docs/mmv.md ("The
multirate step at N = 600-6000").
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import ArpackError, LinearOperator, eigsh

from .mmv import (
    _DEAD,
    _MAX_PASSES,
    RowHadamardStep,
    _CompiledPasses,
    _kernel,
    row_gradient,
    trial_step,
)

__all__ = ["ActiveRowsStep", "CompiledActiveRowsStep", "spectral_norm2"]

_sum = np.add.reduce
#: Below this many rows or columns the dense norm (an SVD) is cheaper than Lanczos.
_DENSE_NORM = 64


def spectral_norm2(A, At=None) -> np.ndarray:
    """``||A_b||_2^2`` of each matrix of the stack ``A`` (``B x M x N``): the largest
    eigenvalue of the smaller of ``A A^T`` and ``A^T A``, by ARPACK's Lanczos
    (:func:`scipy.sparse.linalg.eigsh`, applied through products, from a fixed start).

    The first step size needs only a bound of the curvature, yet a full SVD of each ``A``
    costs ``min(M, N)^2 max(M, N)``; this costs a few dozen products with a vector. Small
    matrices take the dense norm. ``At``: ``A``'s transpose as a contiguous stack, if kept.
    """
    B, M, N = A.shape
    At = np.swapaxes(A, 1, 2) if At is None else At
    k = min(M, N)
    if k <= _DENSE_NORM:
        return np.linalg.norm(A, ord=2, axis=(1, 2)) ** 2
    start = np.random.default_rng(0).standard_normal(k)
    out = np.empty(B)
    for b in range(B):
        a, at = (A[b], At[b]) if M <= N else (At[b], A[b])  # a: k x max(M, N)
        if not a.any():  # ARPACK refuses the zero operator (its start is mapped to zero)
            out[b] = 0.0
            continue
        gram = LinearOperator((k, k), matvec=lambda v, a=a, at=at: a @ (at @ v), dtype=float)
        try:
            out[b] = eigsh(gram, k=1, which="LA", v0=start, tol=1e-10,
                           return_eigenvectors=False)[0]
        except ArpackError:  # (no convergence included) the SVD never fails to give it
            out[b] = np.linalg.norm(a, ord=2) ** 2
    return np.maximum(out, 0.0)


class ActiveRowsStep(RowHadamardStep):
    """:class:`~overparam.solvers.mmv.RowHadamardStep` on the active rows, the slow rows
    integrated once per block (module docstring). Simultaneous update only, and not the full
    Gram form (``gram``): it has its own on the active rows (``active_gram``).

    Parameters
    ----------
    period : int, default=20
        Iterations of a block (between two choices of the active rows, where every slow row
        is brought up to date); doubled, up to ``2 period``, while the active set stays.
    slow : float, default=0.1
        A row is slow if its relative change over ``2 period`` steps of the current size is
        below this. (0.05 before: 0.1 keeps fewer rows active at the same path; docs/mmv.md.)
    active_gram : bool or None, default=None
        Carry ``Λ`` of the active rows through ``A_S^T A_S`` (formed at each change of the
        active set); None: where ``2 |S| <= M``. Same iterates up to rounding.
    """

    def __init__(self, A, Y, params, policy, *, period: int = 20, slow: float = 0.1,
                 active_gram: bool | None = None, gram: bool | None = None, **kwargs):
        if gram:
            raise ValueError("ActiveRowsStep takes the direct form only (gram=False)")
        super().__init__(A, Y, params, policy, gram=False, **kwargs)
        if self.sequential:
            raise ValueError("ActiveRowsStep takes the simultaneous update only")
        if self.policy_limits:  # its step would ignore the limit: say so, never silently
            raise ValueError("ActiveRowsStep takes step policies that set no limit")
        self.period, self.slow = int(period), float(slow)
        self.active_gram = active_gram
        self.col_norm2 = np.einsum("bnm,bnm->bn", self.At, self.At)  # ||a_i||^2: curvature
        self.R0 = None

    @classmethod
    def compiled_form(cls):
        return CompiledActiveRowsStep if cls is ActiveRowsStep else None

    def _norm2(self) -> np.ndarray:
        return spectral_norm2(self.A, self.At)

    def init(self) -> np.ndarray:
        loss = super().init()  # (self.Lam: Λ of the slow rows, their mean over a block)
        B, N = self.g.shape
        self.iterations, self.block = 0, self.period
        self.next_choice = self.period
        self.log_rate = np.zeros((B, N))
        self.span_checked = np.zeros(B)  # sum of eta_t since each row's last held-out check
        self._set_active(np.ones(N, dtype=bool))
        return loss

    def _set_active(self, mask) -> None:
        """Active rows ``mask`` (shared by the batch): their rows of ``A^T`` and, where it is
        less work, their Gram matrix; a new block for every problem (``R`` up to date)."""
        self.mask = mask
        self.S, self.I = np.flatnonzero(mask), np.flatnonzero(~mask)
        self.At_S = self.At if self.I.size == 0 else self.At[:, self.S]  # contiguous rows
        self.A_S = np.swapaxes(self.At_S, 1, 2)
        M = self.At.shape[2]
        self.gram_S = 2 * self.S.size <= M if self.active_gram is None else self.active_gram
        self.G_S = self.At_S @ self.A_S if self.gram_S else None
        self.Lam_S = self.At_S @ self.R
        self.R0 = self.R.copy()  # R at the block's start
        self.X0_S = self._signal_S(slice(None))
        self.Z_S = np.zeros_like(self.X0_S)  # sum_t eta_t (X_S(t) - X_S(0)) over the block
        self.span = np.zeros(self.g.shape[0])  # sum of eta_t over the block's accepted steps

    def _signal_S(self, j) -> np.ndarray:
        g = self.g[j][..., self.S]
        return (g * g)[..., None] * self.V[j][..., self.S, :]

    # -- the slow rows' blocks -----------------------------------------------------------------

    def sync(self, rows) -> None:
        """Bring the slow rows (and, in the Gram form, ``R``) of working rows ``rows`` up to
        date (before an output; a held-out check reads the slow rows as of their block's
        start)."""
        self._flush(rows)

    def _flush(self, rows) -> None:
        """End the block of working rows ``rows``: move their slow rows by the block's
        integrated gradient, ``R`` afresh and ``Λ`` on the active rows with it."""
        if self.R0 is None or (self.I.size == 0 and not self.gram_S):
            return  # (the direct form carries R: nothing to bring up to date)
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
        span = np.asarray(self.span[j])[..., None, None]
        if I.size:
            W = span * self.R0[j] - self.A_S[j] @ self.Z_S[j]  # sum_t eta_t R(t)
            lam = (self.At[j] @ W)[..., I, :]  # sum_t eta_t Λ_I(t) (all rows: no gather)
            self.Lam[j, ..., I, :] = lam / span  # its mean, for the rates
            g0, V0 = self.g[j][..., I], self.V[j][..., I, :]
            V1 = V0 + (2.0 * g0 * g0)[..., None] * lam  # exact for a fixed g
            g1 = g0 + 2.0 * g0 * _sum(lam * (V0 + V1), -1)  # V at the block's middle
            g1[np.abs(g1) < _DEAD] = 0.0
            self.g[j, ..., I] = g1
            self.V[j, ..., I, :] = V1
        R = self.Y[j] - self.A[j] @ self.signal(j)  # afresh: no drift carried over blocks
        self.R[j] = R
        self.R0[j] = R
        self.loss[j] = _sum(R * R, (-2, -1))
        self.Lam_S[j] = self.At_S[j] @ R
        self.X0_S[j] = self._signal_S(j)
        self.Z_S[j] = 0.0
        self.span[j] = 0.0

    def _choose_active(self) -> None:
        """Bring every slow row up to date and choose the active rows again: those that
        would change by more than ``slow`` over ``2 period`` steps, or whose curvature times
        that span is above 1/2, in some problem of the batch (``Λ`` of a slow row: its mean
        over its last block). An unchanged set doubles the next block (up to ``2 period``):
        fewer block ends, each a product with all of ``A`` and ``A^T``."""
        self._flush(slice(None))
        g, V = self.g, self.V
        lam = self.Lam
        lam[:, self.S] = self.Lam_S
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
        if np.array_equal(mask, self.mask):
            self.block = min(2 * self.block, 2 * self.period)
        else:
            self.block = self.period
            self._set_active(mask)
        self.next_choice = self.iterations + self.block

    def _climbing(self, j: int, grew: bool) -> bool:
        """:meth:`RowHadamardStep.staircase`, with the slow rows' growth since the check
        taken from their growth rate at the last choice of the active rows (they move
        once per block)."""
        span, self.span_checked[j] = self.span_checked[j], 0.0
        if grew or self.I.size == 0:
            return grew
        return bool(np.max(self.log_rate[j, self.I]) * span >= self.row_tol)

    # -- the step on the active rows ----------------------------------------------------------

    def step(self, time_left, diverged):
        self.iterations += 1
        if self.iterations >= self.next_choice:
            self._choose_active()
        S = self.S
        g, V = self.g[:, S], self.V[:, S]
        grad_g, P, grad_norm2, gg, two_g = row_gradient(g, V, self.Lam_S)
        e = self._capped(self.eta, g, grad_g, time_left)
        trial = trial_step(e, g, V, (grad_g, P, gg, two_g), self.loss,
                           gram=self.G_S if self.gram_S else None, A=self.A_S,
                           carried=self.Lam_S if self.gram_S else self.R)
        trial["decrease"] = e * grad_norm2
        accepted = self._accept(e, trial, diverged)
        if not accepted.any():
            return None
        return self._move_active(accepted, trial, e, g, V, gg)

    def _move_active(self, accepted, trial, e, g, V, gg):
        g_new, V_new, loss_new = trial["g"], trial["V"], trial["loss"]
        g_new[np.abs(g_new) < _DEAD] = 0.0
        dt = e * self.time_per_step
        accepted_list = accepted.tolist()
        rejected = [j for j, a in enumerate(accepted_list) if not a]
        self.n_accepted += accepted
        moved = np.where(accepted, e, 0.0)
        # the block's integral of the active rows' change, at each step's start
        self.Z_S += moved[:, None, None] * (gg[..., None] * V - self.X0_S)
        self.span += moved
        self.span_checked += moved
        for j in rejected:
            g_new[j], V_new[j] = g[j], V[j]
            loss_new[j], dt[j] = self.loss[j], 0.0
        S = self.S
        self.g[:, S], self.V[:, S] = g_new, V_new
        self.loss = loss_new
        if self.gram_S:  # Λ_S carried; R at the block's end (_flush)
            Lam_new = trial["Lam"]
        else:
            R_new = trial["R"]
            for j in rejected:
                R_new[j] = self.R[j]
            self.R = R_new
            self._refresh_residuals(accepted_list)
            Lam_new = self.At_S @ self.R
        for j in rejected:
            Lam_new[j] = self.Lam_S[j]
        self.Lam_S = Lam_new
        return accepted_list, dt, self.loss

    def keep(self, mask) -> None:
        super().keep(mask)
        for key in ("col_norm2", "span", "At_S", "Lam_S", "log_rate", "span_checked", "R0",
                    "X0_S", "Z_S", *(("G_S",) if self.gram_S else ())):
            setattr(self, key, getattr(self, key)[mask])
        self.A_S = np.swapaxes(self.At_S, 1, 2)


class CompiledActiveRowsStep(_CompiledPasses, ActiveRowsStep):
    """:class:`ActiveRowsStep` with the steps inside a block compiled (optional, numba):
    :meth:`passes` runs several passes of the batch loop in one call
    (:func:`overparam.solvers._mmv_numba.run_active_passes`: the active step in its Gram form,
    with the loop's per-pass tests, as :class:`~overparam.solvers.mmv.CompiledRowHadamardStep`
    does for the plain step). A block's end (the slow rows' update and the next choice of the
    active rows: a few per hundred steps) and a block in the direct form (many active rows)
    run the numpy :meth:`step`. Same iterates up to rounding."""

    def __init__(self, A, Y, params, policy, **kwargs):
        super().__init__(A, Y, params, policy, **kwargs)
        self._compiled_setup(policy, 6)
        self._run = _kernel("run_active_passes")
        self.g, self.V = (np.ascontiguousarray(x, dtype=float) for x in (self.g, self.V))

    def passes(self, n_iter, clock, monitor, *, n_max: int, max_flow_time, history_every: int):
        """As :meth:`CompiledRowHadamardStep.passes
        <overparam.solvers.mmv.CompiledRowHadamardStep.passes>`, up to the block's end; None
        (the loop runs the numpy :meth:`step`) for the step that ends a block and in a block
        of the direct form."""
        attempts = self.next_choice - 1 - self.iterations  # before the step that ends the block
        if attempts < 1 or not self.gram_S:
            return None
        limit, res_stop, window, g_window = self._loop_state(monitor, max_flow_time)
        self.iparams[:] = (min(int(n_max), _MAX_PASSES), *self._rule_iparams(monitor),
                           int(history_every), attempts)
        self._contiguous()
        accepted = np.zeros(self.g.shape[0], dtype=np.bool_)
        passes, attempts, status, row, step, may_stop = self._run(
            self.S, self.G_S, self.Lam_S, self.g, self.V, self.Z_S, self.X0_S, self.span,
            self.span_checked, self.loss, self.eta, self.n_accepted, self.n_rejected, n_iter,
            clock, self.ids, accepted, limit, res_stop, window, g_window, self.fparams,
            self.iparams)
        self.iterations += attempts
        if status:
            self._underflow(row, step)
        return passes, accepted.tolist(), may_stop

    def _contiguous(self) -> None:
        """The kernel's arrays in C order (in place afterwards; each layout would compile a
        version of its own)."""
        for key in ("G_S", "Lam_S", "Z_S", "X0_S", "span", "span_checked", "loss", "eta",
                    "n_accepted", "n_rejected", "S"):
            value = getattr(self, key)
            if not value.flags.c_contiguous:
                setattr(self, key, np.ascontiguousarray(value))
