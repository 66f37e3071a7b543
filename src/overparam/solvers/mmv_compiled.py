"""IR-MMV's step compiled with numba: an optional accelerator of :func:`~overparam.solvers.ir_mmv`.

For small problems each iteration of :class:`~overparam.solvers.mmv.RowHadamardStep` is some
seventy numpy calls on arrays of a few thousand entries, plus the batch loop's Python
(stopping tests, held-out countdown): the cost is the calls', not the arithmetic's.
:class:`CompiledRowHadamardStep` does the same arithmetic in one compiled call
(:func:`overparam.solvers._mmv_numba.run_passes`) and runs several passes of the loop in it,
with the loop's per-pass tests compiled in; it hands each pass on which the loop has
something to do in Python (a stopping test that may fire, a due held-out check or history
record) back to the loop, which runs it as usual. Same iterates up to rounding (the sums
are taken in another order); measured in docs/mmv.md ("A compiled step").

numba is optional (``pip install 'overparam[numba]'``): :func:`select_step` picks this step
for ``accelerator="auto"`` where numba imports and the setting is one it covers
(simultaneous update, the adaptive step, the plain step: not the multirate one).
"""

from __future__ import annotations

import numpy as np

from .._optional import require
from ..stopping import DivergenceError
from .mmv import _DEAD, _REFRESH, RowHadamardStep
from .steps import MAX_STEP, MIN_STEP, AdaptiveStep

__all__ = ["ACCELERATORS", "CompiledRowHadamardStep", "numba_available", "select_step"]

#: ``"auto"``: the compiled step where numba imports and covers the setting, else numpy;
#: ``"numpy"``: always numpy; ``"numba"``: the compiled step (an error where it cannot be).
ACCELERATORS = ("auto", "numpy", "numba")
#: Most passes of the loop in one compiled call: bounds the time between two wall-clock
#: tests (``StoppingRule.max_time``) and between two updates of a progress bar.
_MAX_PASSES = 1000


def numba_available() -> bool:
    """Whether numba imports."""
    try:
        require("numba", extra="numba")
    except ImportError:
        return False
    return True


def _kernel():
    require("numba", extra="numba")
    from . import _mmv_numba

    return _mmv_numba.run_passes


def select_step(accelerator: str, step_class, policy, update: str):
    """The step class of :func:`~overparam.solvers.ir_mmv` for ``accelerator``
    (:data:`ACCELERATORS`): ``step_class`` (None: the plain step), or the compiled step
    where asked for and the setting allows it."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {ACCELERATORS}, got {accelerator!r}")
    covered = (step_class in (None, RowHadamardStep) and update == "simultaneous"
               and type(policy) is AdaptiveStep)
    if accelerator == "numpy" or (accelerator == "auto" and not (covered
                                                                 and numba_available())):
        return step_class
    if not covered:
        raise ValueError("accelerator='numba' covers the plain step (no step_class) with "
                         "update='simultaneous' and step='adaptive' only")
    _kernel()  # the one-line MissingExtraError where numba is missing
    return CompiledRowHadamardStep


class CompiledRowHadamardStep(RowHadamardStep):
    """:class:`~overparam.solvers.mmv.RowHadamardStep` (simultaneous update, adaptive step)
    with its passes compiled: :meth:`passes` runs several passes of the batch loop in one
    call (module docstring). :meth:`step` stays the numpy one."""

    def __init__(self, A, Y, params, policy, **kwargs):
        super().__init__(A, Y, params, policy, **kwargs)
        if self.sequential or type(policy) is not AdaptiveStep:
            raise ValueError("CompiledRowHadamardStep takes the simultaneous update and the "
                             "adaptive step only")
        self._run = _kernel()
        # C order throughout (one compiled version: each layout would compile anew)
        self.A, self.Y, self.g, self.V = (np.ascontiguousarray(x, dtype=float)
                                          for x in (self.A, self.Y, self.g, self.V))
        # the Gram form's residual refresh needs A^T too; dummies where a form has no array
        self.At_all = np.ascontiguousarray(np.swapaxes(A, 1, 2))
        p = policy
        self.fparams = np.array([p.grow, p.shrink, p.armijo, p.max_step,
                                 max(p.min_step, MIN_STEP), MAX_STEP,
                                 np.inf if self.max_row_change is None else self.max_row_change,
                                 self.time_per_step, 0.0, 0.0, 0.0, self.row_tol, _DEAD])
        self.iparams = np.zeros(7, dtype=np.int64)
        self.monitor_state = None  # the loop's monitor's arrays, at the first call

    def passes(self, n_iter, clock, monitor, *, n_max: int, max_flow_time, history_every: int):
        """Up to ``n_max`` passes of the loop in which some row moves (working rows, in
        place; ``n_iter`` and ``clock`` are the loop's), stopping after the first one whose
        checks the loop must run. Returns the number of passes and the last one's
        ``accepted`` (a list of bool)."""
        if self.monitor_state is None:  # (fixed for the run: the window is written in place)
            limit, res_stop, window = monitor.compiled_state()
            rule = monitor.rule
            use_window = window is not None and self.g_window is not None
            self.monitor_state = (limit, res_stop, window if use_window else np.empty((1, 1)),
                                  self.g_window if use_window else np.empty((1, 1, 1)))
            f = self.fparams
            f[8] = np.inf if max_flow_time is None else max_flow_time
            f[9] = np.inf if rule.end_time is None else rule.end_time
            f[10] = rule.stagnation_tol
            self.iparams[:] = (int(self.gram), 0, rule.patience, int(use_window),
                               rule.max_iter, int(history_every), _REFRESH)
        limit, res_stop, window, g_window = self.monitor_state
        self.iparams[1] = min(int(n_max), _MAX_PASSES)
        B = self.A.shape[0]
        empty = np.empty((B, 0, 0))
        accepted = np.zeros(B, dtype=np.bool_)
        passes, status, row, step = self._run(
            self.A, self.At_all, self.G if self.gram else empty, self.Y, self.g, self.V,
            empty if self.gram else self.R, self.Lam, self.loss, self.eta, self.n_accepted,
            self.n_rejected, n_iter, clock, self.ids, accepted, limit, res_stop, window,
            g_window, self.fparams, self.iparams)
        self.grad, self.refresh_wait = None, 0  # the numpy step recomputes both
        if status:
            try:  # the policy's own error, as the numpy step raises it
                self.policy.next_after_reject(float(step))
            except DivergenceError as err:
                raise DivergenceError(f"problem {self.ids[row]} of the batch: {err}") from err
            raise AssertionError("the compiled step underflowed where the policy did not")
        return passes, accepted.tolist()

    def keep(self, mask) -> None:
        super().keep(mask)
        self.At_all = self.At_all[mask]
