"""The numba kernel of :class:`~overparam.solvers.mmv.CompiledRowHadamardStep` (optional).

:func:`run_passes` performs the arithmetic of :meth:`RowHadamardStep.step
<overparam.solvers.mmv.RowHadamardStep.step>` (simultaneous update, the adaptive step,
direct or Gram form) for every working row of a batch, and repeats it for several passes of
the batch loop, with the loop's per-pass tests compiled in: the stopping rule's tests
(:class:`~overparam.stopping.BatchMonitor`: residual, end of the flow time, stagnation with
the step's row-growth test, ``max_iter``), the divergence limit, the refresh of the residual
every ``_REFRESH`` accepted steps and the dead-row rule. It returns at the first pass after
which the loop has anything to do in Python: a stopping test that may fire, a held-out check
or history record that may fall due, ``n_max`` passes, or a step that underflows; the loop
then runs that pass's checks as usual (:meth:`~overparam.solvers.batch_loop._Batch.advance`).
The stopping windows it writes are those the Python tests read, so the two interleave.
:func:`held_out_check` is a held-out check's arithmetic (its error and the staircase test)
in one call: a check in numpy was a dozen calls on small arrays, about a fifth of a default
fit at N = 60.

This module imports numba at import time: :class:`~overparam.solvers.mmv.CompiledRowHadamardStep`
imports it on first use only.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_EPS = float(np.finfo(float).eps)
#: On-disk cache; numpy's floating-point errors (x / 0 is inf, no exception); of fast-math
#: only reassociation (vectorized sums) and contraction (fused multiply-add): rounding moves,
#: but NaN and inf keep their IEEE meaning, which the divergence and dead-row tests read.
#: (Measured on the digits' shape: 68 -> 55 µs per iteration.)
_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc", "contract"}}


@numba.njit(**_JIT)
def _gradient(g, V, Lam, grad_g, P, gg):
    """``∇g``, ``P = g² Λ`` (``∇V = -2 P``) and ``||∇||²`` of one problem (row_gradient)."""
    N, L = V.shape
    norm2 = 0.0
    p2 = 0.0
    for i in range(N):
        s = 0.0
        for k in range(L):
            s += Lam[i, k] * V[i, k]
        gi = g[i]
        gg[i] = gi * gi
        d = (2.0 * gi) * s
        d *= -2.0
        grad_g[i] = d
        norm2 += d * d
        for k in range(L):
            p = gg[i] * Lam[i, k]
            P[i, k] = p
            p2 += p * p
    return norm2 + 4.0 * p2


@numba.njit(**_JIT)
def _matmul(A, X, out):
    """``out = A @ X`` (BLAS: twice as fast as a compiled loop here)."""
    np.dot(A, X, out)


@numba.njit(**_JIT)
def _residual(A, Y, g, V, scratch_x, out):
    """``out = Y - A X`` at ``X = g^2 V`` (one problem; ``X`` in ``scratch_x``) and its sum of
    squares."""
    N, L = V.shape
    for i in range(N):
        for k in range(L):
            scratch_x[i, k] = (g[i] * g[i]) * V[i, k]
    _matmul(A, scratch_x, out)
    s = 0.0
    for a in range(Y.shape[0]):
        for k in range(L):
            r = Y[a, k] - out[a, k]
            out[a, k] = r
            s += r * r
    return s


@numba.njit(**_JIT)
def _refresh(j, A, At, Y, g, V, R, Lam, loss, gram, dead, scratch_x, scratch_r):
    """``R = Y - A X`` (Gram form: ``Λ = A^T R``) and the loss of row ``j`` again."""
    N, L = V.shape[1], V.shape[2]
    for i in range(N):
        for k in range(L):
            if abs(V[j, i, k]) < dead * dead:
                V[j, i, k] = 0.0
    loss[j] = _residual(A[j], Y[j], g[j], V[j], scratch_x, scratch_r)
    if gram:
        _matmul(At[j], scratch_r, Lam[j])
    else:
        R[j, :, :] = scratch_r


@numba.njit(**_JIT)
def _learning(gwin, slot, old_slot, b, row_tol):
    """The row-growth test of ``still_learning`` (largest ``log |g_i|`` growth over the
    window, NaN skipped) for problem ``b``."""
    growth = -math.inf
    for i in range(gwin.shape[2]):
        d = np.log(abs(gwin[slot, b, i])) - np.log(abs(gwin[old_slot, b, i]))
        if d > growth:
            growth = d
    return growth >= row_tol


@numba.njit(**_JIT)
def _step_arrays(B, N, L):
    """The step's work arrays for ``B`` problems of ``N`` rows: ``(∇g, P, g², ||∇||², stale,
    g_new, V_new, dX)`` (``stale``: the gradient is to be computed)."""
    return (np.empty((B, N)), np.empty((B, N, L)), np.empty((B, N)), np.empty(B),
            np.ones(B, dtype=np.bool_), np.empty(N), np.empty((N, L)), np.empty((N, L)))


@numba.njit(**_JIT)
def _step_size(e, g, grad_g, cap, max_flow_time, clock, tps):
    """The step ``e`` within the row-change cap (_row_change_cap; dead rows set none) and
    landing on the requested flow time (``inf``: none)."""
    if cap < math.inf:
        top = 0.0
        nan = False
        for i in range(g.shape[0]):
            if g[i] != 0.0:
                r = abs(grad_g[i] / g[i])
                if r != r:
                    nan = True
                elif r > top:
                    top = r
        c = math.nan if nan else cap / top
        e = math.nan if (c != c or e != e) else min(e, c)
    if max_flow_time < math.inf:
        t = max(max_flow_time - clock, 0.0) / tps
        e = math.nan if (t != t or e != e) else min(e, t)
    return e


@numba.njit(**_JIT)
def _trial(e, g, V, grad_g, P, gg, g_new, V_new, d_X):
    """The trial iterate ``(g, V) - e ∇`` of one problem and its change of ``X`` (trial_step)."""
    N, L = V.shape
    for i in range(N):
        d = -e * grad_g[i]
        g_new[i] = g[i] + d
        f = d * (2.0 * g[i] + d)
        for k in range(L):
            dv = (2.0 * e) * P[i, k]
            v = V[i, k] + dv
            V_new[i, k] = v
            d_X[i, k] = f * v + gg[i] * dv


@numba.njit(**_JIT)
def _loss_change(first, carried, prod):
    """``(d_loss, sum |u w|)``: the change of the loss ``-sum(u w)``, ``w = 2 carried - prod``
    (trial_step), and its rounding scale."""
    s = 0.0
    s_abs = 0.0
    for a in range(prod.shape[0]):
        for k in range(prod.shape[1]):
            uw = first[a, k] * (2.0 * carried[a, k] - prod[a, k])
            s += uw
            s_abs += abs(uw)
    return -s, s_abs


@numba.njit(**_JIT)
def _judge(j, e, d_loss, s_abs, trial_loss, decrease, limit, eta, n_rej, fparams):
    """The adaptive step's test of working row ``j``'s trial (RowHadamardStep._accept) and its
    next step: 1 accepted, 0 rejected, -1 the step underflowed (the caller raises)."""
    grow, shrink, armijo, max_step, min_step, max_step_all = fparams[:6]
    finite = -math.inf < trial_loss < math.inf and trial_loss <= limit
    ok = finite and d_loss <= 0.0 - armijo * decrease
    grown = e * grow
    if max_step < math.inf:
        grown = math.nan if grown != grown else min(grown, max_step)
    eta[j] = grown if grown <= max_step_all else max_step_all
    if not ok and finite:  # the second chance with the rounding slack
        ok = d_loss <= 10.0 * _EPS * s_abs - armijo * decrease
    if ok:
        return 1
    n_rej[j] += 1
    shrunk = (e if e <= max_step_all else max_step_all) * shrink
    if not shrunk >= min_step:
        return -1
    eta[j] = shrunk
    return 0


@numba.njit(**_JIT)
def _pass_end(passes, accepted, ids, n_iter, loss, clock, g, res_stop, window, gwin, fparams,
              iparams_loop):
    """``(may_stop, hand_over)`` after a pass that moved some row: whether a stopping test
    may fire (:func:`_may_stop`), and whether the pass goes back to the loop (that, ``n_max``
    passes, or a history record due); ``iparams_loop``: ``(n_max, patience, use_window,
    max_iter, history_every)``."""
    n_max, patience, use_window, max_iter, history_every = iparams_loop
    may_stop = _may_stop(accepted, ids, n_iter, loss, clock, g, res_stop, window, gwin,
                         fparams, patience, use_window, max_iter)
    history_due = history_every > 0 and accepted[0] and n_iter[0] % history_every == 0
    return may_stop, may_stop or passes >= n_max or history_due


@numba.njit(**_JIT)
def _may_stop(accepted, ids, n_iter, loss, clock, g, res_stop, window, gwin, fparams, patience,
              use_window, max_iter):
    """The stopping rule's tests of the rows that moved in a pass (their windows written):
    whether one may fire (the loop then runs them in Python)."""
    end_time, stag_tol, row_tol = fparams[9], fparams[10], fparams[11]
    slots = patience + 1
    may_stop = False
    for j in range(accepted.shape[0]):
        if not accepted[j]:
            continue
        b, k = ids[j], n_iter[j]
        if use_window:
            window[k % slots, b] = loss[j]
            for i in range(g.shape[1]):
                gwin[k % slots, b, i] = g[j, i]
        if math.sqrt(loss[j]) <= res_stop[b] or clock[j] >= end_time or k >= max_iter:
            may_stop = True
        elif use_window and k >= patience:
            old = window[(k - patience) % slots, b]
            if old - loss[j] <= stag_tol * abs(old) and not _learning(
                    gwin, k % slots, (k - slots + 1) % slots, b, row_tol):
                may_stop = True
    return may_stop


@numba.njit(**_JIT)
def held_out_check(Mv, Yv, g, V, log_g_checked, row_tol):
    """A held-out check of one problem in one call: ``(error, grew)``.

    ``error`` is :meth:`Validation.error <overparam.stopping.Validation.error>` at ``X = g^2
    V`` (``||Mv X - Yv||_F^2 / size(Yv)``; sums in another order, so equal to rounding);
    ``grew`` whether some ``log |g_i|`` rose by at least ``row_tol`` since the last check
    (:meth:`RowHadamardStep.staircase <overparam.solvers.mmv.RowHadamardStep.staircase>`;
    ``log_g_checked`` updated in place; a NaN difference, ``log 0 - log 0``, is skipped).
    """
    N, L = V.shape
    total = _residual(Mv, Yv, g, V, np.empty((N, L)), np.empty((Mv.shape[0], L)))
    growth = -np.inf
    for i in range(N):
        log_g = np.log(abs(g[i]))
        rise = log_g - log_g_checked[i]
        if rise > growth:  # (False for NaN: skipped, as np.fmax does)
            growth = rise
        log_g_checked[i] = log_g
    return total / max(Yv.size, 1), growth >= row_tol


@numba.njit(**_JIT)
def run_passes(A, At, G, Y, g, V, R, Lam, loss, eta, n_acc, n_rej, n_iter, clock, ids,
               accepted, limit, res_stop, window, gwin, fparams, iparams):
    """Passes of the batch loop over the working rows (module docstring), in place.

    ``fparams``: ``(grow, shrink, armijo, max_step, min_step, MAX_STEP, cap, time_per_step,
    max_flow_time, end_time, stagnation_tol, row_tol, dead)`` (``cap``, ``max_flow_time``,
    ``end_time``: ``inf`` where none); ``iparams``: ``(gram, n_max, patience, use_window,
    max_iter, history_every, refresh)`` (``history_every`` 0: none).

    Returns ``(passes, status, row, step, may_stop)``: the passes in which some row moved
    (the last one's ``accepted`` is left in ``accepted``), ``status`` 1 where the step of
    working row ``row`` underflowed at ``step`` (the caller raises the policy's error), else
    0, and whether a stopping test may fire after the last pass (else the loop need not run
    them: their windows are written).
    """
    cap, tps, max_flow_time, dead = fparams[6], fparams[7], fparams[8], fparams[12]
    gram, n_max, patience, use_window, max_iter, history_every, refresh = iparams
    iparams_loop = (n_max, patience, use_window, max_iter, history_every)
    B, N, L = V.shape
    M = Y.shape[1]
    grad_g, P, gg, gn2, stale, g_new, V_new, d_X = _step_arrays(B, N, L)
    prod = np.empty((N, L)) if gram else np.empty((M, L))
    scratch_x = np.empty((N, L))
    scratch_r = np.empty((M, L))
    passes = 0
    while True:
        moved = False
        for j in range(B):
            if stale[j]:
                gn2[j] = _gradient(g[j], V[j], Lam[j], grad_g[j], P[j], gg[j])
                stale[j] = False
            e = _step_size(eta[j], g[j], grad_g[j], cap, max_flow_time, clock[j], tps)
            _trial(e, g[j], V[j], grad_g[j], P[j], gg[j], g_new, V_new, d_X)
            if gram:
                _matmul(G[j], d_X, prod)  # A^T A dX
                carried = Lam[j]
                first = d_X
            else:
                _matmul(A[j], d_X, prod)  # A dX
                carried = R[j]
                first = prod
            d_loss, s_abs = _loss_change(first, carried, prod)
            trial_loss = loss[j] + d_loss
            verdict = _judge(j, e, d_loss, s_abs, trial_loss, e * gn2[j], limit[ids[j]], eta,
                             n_rej, fparams)
            if verdict < 0:
                return passes, 1, j, e, True
            if verdict == 0:
                accepted[j] = False
                continue
            # the move (_move)
            accepted[j] = True
            moved = True
            for i in range(N):
                gi = g_new[i]
                g[j, i] = 0.0 if abs(gi) < dead else gi
                for k in range(L):
                    V[j, i, k] = V_new[i, k]
            for a in range(prod.shape[0]):
                for k in range(L):
                    carried[a, k] -= prod[a, k]
            loss[j] = trial_loss
            clock[j] += e * tps
            n_acc[j] += 1
            n_iter[j] += 1
            if n_acc[j] % refresh == 0:
                _refresh(j, A, At, Y, g, V, R, Lam, loss, gram, dead, scratch_x, scratch_r)
            if not gram:
                _matmul(At[j], R[j], Lam[j])
            stale[j] = True
        if not moved:
            continue
        passes += 1
        # the stopping rule's tests of the rows that moved: hand the pass over if one may fire
        may_stop, hand_over = _pass_end(passes, accepted, ids, n_iter, loss, clock, g,
                                        res_stop, window, gwin, fparams, iparams_loop)
        if hand_over:
            return passes, 0, -1, 0.0, may_stop


@numba.njit(**_JIT)
def run_active_passes(S, G_S, Lam_S, g, V, Z_S, X0_S, span, span_checked, loss, eta, n_acc,
                      n_rej, n_iter, clock, ids, accepted, limit, res_stop, window, gwin,
                      fparams, iparams):
    """Passes of the batch loop with the multirate step's active step in its Gram form
    (:class:`~overparam.solvers.mmv_active.CompiledActiveRowsStep`), in place: the step of
    :func:`run_passes` on the active rows ``S`` (``Λ_S`` carried through ``G_S = A_S^T A_S``),
    accumulating the block's integrals ``Z_S`` and ``span`` (``ActiveRowsStep._move_active``);
    the slow rows do not move. At most ``attempts`` trial steps (``iparams``: ``(n_max,
    patience, use_window, max_iter, history_every, attempts)``; ``fparams`` as for
    :func:`run_passes`): the block's end is the caller's.

    Returns ``(passes, attempts, status, row, step, may_stop)``: as :func:`run_passes`, and the
    trial steps taken (passes in which no row moved included).
    """
    cap, tps, max_flow_time, dead = fparams[6], fparams[7], fparams[8], fparams[12]
    attempts_max = iparams[5]
    iparams_loop = (iparams[0], iparams[1], iparams[2], iparams[3], iparams[4])
    B, n, L = Lam_S.shape
    g_S = np.empty((B, n))
    V_S = np.empty((B, n, L))
    for j in range(B):  # the active rows, gathered once
        for ii in range(n):
            g_S[j, ii] = g[j, S[ii]]
            for k in range(L):
                V_S[j, ii, k] = V[j, S[ii], k]
    grad_g, P, gg, gn2, stale, g_new, V_new, d_X = _step_arrays(B, n, L)
    prod = np.empty((n, L))
    passes = 0
    attempts = 0
    while attempts < attempts_max:
        attempts += 1
        moved = False
        for j in range(B):
            if stale[j]:
                gn2[j] = _gradient(g_S[j], V_S[j], Lam_S[j], grad_g[j], P[j], gg[j])
                stale[j] = False
            e = _step_size(eta[j], g_S[j], grad_g[j], cap, max_flow_time, clock[j], tps)
            _trial(e, g_S[j], V_S[j], grad_g[j], P[j], gg[j], g_new, V_new, d_X)
            _matmul(G_S[j], d_X, prod)  # A_S^T A_S dX_S
            d_loss, s_abs = _loss_change(d_X, Lam_S[j], prod)
            trial_loss = loss[j] + d_loss
            verdict = _judge(j, e, d_loss, s_abs, trial_loss, e * gn2[j], limit[ids[j]], eta,
                             n_rej, fparams)
            if verdict < 0:
                return passes, attempts, 1, j, e, True
            if verdict == 0:
                accepted[j] = False
                continue
            accepted[j] = True
            moved = True
            span[j] += e
            span_checked[j] += e
            for ii in range(n):
                for k in range(L):  # the block's integral of X_S(t) - X_S(0), at the start
                    Z_S[j, ii, k] += e * (gg[j, ii] * V_S[j, ii, k] - X0_S[j, ii, k])
                gi = g_new[ii]
                gi = 0.0 if abs(gi) < dead else gi
                g_S[j, ii] = gi
                g[j, S[ii]] = gi
                for k in range(L):
                    V_S[j, ii, k] = V_new[ii, k]
                    V[j, S[ii], k] = V_new[ii, k]
                    Lam_S[j, ii, k] -= prod[ii, k]
            loss[j] = trial_loss
            clock[j] += e * tps
            n_acc[j] += 1
            n_iter[j] += 1
            stale[j] = True
        if not moved:
            continue
        passes += 1
        may_stop, hand_over = _pass_end(passes, accepted, ids, n_iter, loss, clock, g,
                                        res_stop, window, gwin, fparams, iparams_loop)
        if hand_over:
            return passes, attempts, 0, -1, 0.0, may_stop
    return passes, attempts, 0, -1, 0.0, False
