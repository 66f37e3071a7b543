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
def _refresh(j, A, At, Y, g, V, R, Lam, loss, gram, dead, scratch_x, scratch_r):
    """``R = Y - A X`` (Gram form: ``Λ = A^T R``) and the loss of row ``j`` again."""
    N, L = V.shape[1], V.shape[2]
    for i in range(N):
        for k in range(L):
            if abs(V[j, i, k]) < dead * dead:
                V[j, i, k] = 0.0
            scratch_x[i, k] = (g[j, i] * g[j, i]) * V[j, i, k]
    _matmul(A[j], scratch_x, scratch_r)
    s = 0.0
    M = Y.shape[1]
    for a in range(M):
        for k in range(L):
            r = Y[j, a, k] - scratch_r[a, k]
            scratch_r[a, k] = r
            s += r * r
    loss[j] = s
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
    (grow, shrink, armijo, max_step, min_step, max_step_all, cap, tps, max_flow_time,
     end_time, stag_tol, row_tol, dead) = fparams
    gram, n_max, patience, use_window, max_iter, history_every, refresh = iparams
    B, N, L = V.shape
    M = Y.shape[1]
    slots = patience + 1
    grad_g = np.empty((B, N))
    P = np.empty((B, N, L))
    gg = np.empty((B, N))
    gn2 = np.empty(B)
    stale = np.ones(B, dtype=np.bool_)
    g_new = np.empty(N)
    V_new = np.empty((N, L))
    d_X = np.empty((N, L))
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
            e = eta[j]
            if cap < math.inf:  # the row-change cap (_row_change_cap); dead rows set none
                top = 0.0
                nan = False
                for i in range(N):
                    if g[j, i] != 0.0:
                        r = abs(grad_g[j, i] / g[j, i])
                        if r != r:
                            nan = True
                        elif r > top:
                            top = r
                c = math.nan if nan else cap / top
                e = math.nan if (c != c or e != e) else min(e, c)
            if max_flow_time < math.inf:  # land on the requested time
                t = max(max_flow_time - clock[j], 0.0) / tps
                e = math.nan if (t != t or e != e) else min(e, t)
            # the trial step (trial_step)
            for i in range(N):
                d = -e * grad_g[j, i]
                g_new[i] = g[j, i] + d
                f = d * (2.0 * g[j, i] + d)
                for k in range(L):
                    dv = (2.0 * e) * P[j, i, k]
                    v = V[j, i, k] + dv
                    V_new[i, k] = v
                    d_X[i, k] = f * v + gg[j, i] * dv
            if gram:
                _matmul(G[j], d_X, prod)  # A^T A dX
                carried = Lam[j]
                first = d_X
            else:
                _matmul(A[j], d_X, prod)  # A dX
                carried = R[j]
                first = prod
            s = 0.0
            s_abs = 0.0
            for a in range(prod.shape[0]):
                for k in range(L):
                    uw = first[a, k] * (2.0 * carried[a, k] - prod[a, k])
                    s += uw
                    s_abs += abs(uw)
            d_loss = -s
            trial_loss = loss[j] + d_loss
            decrease = e * gn2[j]
            finite = -math.inf < trial_loss < math.inf and trial_loss <= limit[ids[j]]
            ok = finite and d_loss <= 0.0 - armijo * decrease
            grown = e * grow
            if max_step < math.inf:
                grown = math.nan if grown != grown else min(grown, max_step)
            eta[j] = grown if grown <= max_step_all else max_step_all
            if not ok and finite:  # the second chance with the rounding slack
                ok = d_loss <= 10.0 * _EPS * s_abs - armijo * decrease
            if not ok:
                n_rej[j] += 1
                shrunk = (e if e <= max_step_all else max_step_all) * shrink
                if not shrunk >= min_step:
                    return passes, 1, j, e, True
                eta[j] = shrunk
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
        may_stop = False
        for j in range(B):
            if not accepted[j]:
                continue
            b, k = ids[j], n_iter[j]
            if use_window:
                window[k % slots, b] = loss[j]
                for i in range(N):
                    gwin[k % slots, b, i] = g[j, i]
            if math.sqrt(loss[j]) <= res_stop[b] or clock[j] >= end_time or k >= max_iter:
                may_stop = True
            elif use_window and k >= patience:
                old = window[(k - patience) % slots, b]
                if old - loss[j] <= stag_tol * abs(old) and not _learning(
                        gwin, k % slots, (k - slots + 1) % slots, b, row_tol):
                    may_stop = True
        if (may_stop or passes >= n_max
                or (history_every > 0 and accepted[0] and n_iter[0] % history_every == 0)):
            return passes, 0, -1, 0.0, may_stop
