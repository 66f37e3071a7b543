"""Row-sparse recovery of multiple measurement vectors (MMV) by implicit regularization."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._registry import register_method
from ..solvers.mmv import ir_mmv, refine_row_sparse
from ..solvers.mmv_active import ActiveRowsStep
from ..solvers.steps import as_step_policy
from ._constraints import NON_NEGATIVE, POSITIVE, POSITIVE_INT, STEP, shared_constraints
from ._exact_limit import ExactLimitMixin
from .base import RecoveryEstimator, check_validation_fraction

__all__ = ["MMVRegressor"]

# init_scale="auto" (see MMVRegressor): one scale for paths and limit; the refinement on the
# learned rows makes the limit exact from it.
_AUTO_INIT = 1e-2


@register_method("ir-mmv", "row-sparse MMV: GD on X = g^2 ⊙ V from a small init "
                 "(IR-MMV, tuning-free)")
class MMVRegressor(ExactLimitMixin, RecoveryEstimator):
    """Recover a row-sparse ``X`` (``N x L``) from ``Y = A X + W`` with no penalty and no ``K``.

    Gradient descent on ``||Y - A X||_F^2`` over ``X = (g^2 1_L^T) ⊙ V`` from the small init
    ``g(0) = alpha_g``, ``V(0) = 0`` learns the rows one at a time, largest first (Jayalal &
    Kalyani, IR-MMV; their balanced ``V(0) = alpha_g / sqrt(2L)`` is ``init="ones"``). See
    :func:`overparam.solvers.ir_mmv`. Run to its limit, the fit ends on an optimality check:
    after each round of steps (500, then doubling) the least-squares fit on the learned rows
    (:func:`~overparam.solvers.refine_row_sparse`) is the limit if it interpolates with fewer
    rows than measurements; the flow itself only creeps towards it.

    Parameters
    ----------
    init_scale : "auto" or float, default="auto"
        ``alpha_g``; ``"auto"`` is ``1e-2``. From a small init the rows escape after a flow
        time ~ ``1/alpha_g`` and noise is fitted on that time scale too: following a path
        from the paper's ``1e-4`` past its best point took up to 100k iterations, from
        ``1e-2`` about 1-3k, at the same oracle error (docs/mmv.md). The limit's last digits
        come from the least-squares fit on the learned rows, so ``1e-2`` is exact there too.
    v_scale : float, optional
        ``alpha_V``; default ``alpha_g / sqrt(2 L)`` (perfect row balance).
    init : {"zero", "ones"}, default="zero"
        ``V(0) = 0`` (rows of any sign and direction are reached), or the paper's balanced
        ``V(0) = v_scale 1``, from which a row pointing away from ``1_L`` (e.g. ``-1_L``) is
        not learned (see :func:`~overparam.solvers.ir_mmv` and docs/mmv.md).
    update : {"simultaneous", "sequential"}, default="simultaneous"
        Plain gradient descent, or Algorithm 1 as printed (``V`` updated with ``g(t+1)``).
    step : "adaptive", float or StepPolicy, default="adaptive"
        Safe adaptive scalar step (no tuning), or the paper's fixed step (its ``1e-2``
        diverges on its own M=50, N=25 setting and raises ``DivergenceError``).
    max_iter : int, default=100_000
    tol : float, default=1e-6
        Stop when ``||Y - A X||_F <= tol ||Y||_F``.
    stagnation_tol : float, default=1e-9
        Stop when the loss fell by less than this fraction over ``patience`` steps and no row
        is growing (see ``row_tol`` of :func:`~overparam.solvers.ir_mmv`). Zero disables.
    patience : int, default=1000
    early_stopping : {"validation", "discrepancy", None}, default="validation"
        The stopping rule (docs/noise.md); ``None`` runs to the limit (exact, noiseless data;
        one fit). ``"validation"`` needs no noise level: here it is K-fold cross-validation
        of the stopping time over the rows of ``Y`` (whole measurements; 5 folds by default,
        see ``validation_fraction``). The fold paths run as one batch; the refit on all rows
        stops at the flow time of the smallest mean held-out error (why folds and not one
        split: docs/mmv.md, "Measurements behind the defaults"). A refit whose learned rows
        interpolate (noiseless data) is replaced by that interpolant.
        ``"discrepancy"`` stops at ``||Y - A X||_F <= noise_level sqrt(M L)``.
        The solver's clock is the flow time of ``1/(2M) ||A X - Y||_F^2``.
    validation_fraction : float, default=0.2
        Share of the rows each fold holds out: ``round(1 / validation_fraction)`` folds.
    noise_level : float, optional
        Noise standard deviation per entry of ``Y``, for ``early_stopping="discrepancy"``.
    random_state : None or int, default=None
        Seeds the hold-out split (the init is deterministic).
    refine : bool, default=True
        End runs to the limit on the least-squares fit on the learned rows (above); False:
        plain IR-MMV to its own stopping rule.

    Notes
    -----
    The operator is used as a dense matrix (``to_dense``): the solver batches problems as
    stacked matrices. ``fit`` accepts ``Y`` of shape ``(M, L)``. ``coef_`` follows
    scikit-learn's multi-output linear models (``MultiTaskLasso.coef_``): shape ``(L, N)``,
    one row per column of ``Y``, so ``predict(A) = A @ coef_.T``; the recovered ``X``, of
    shape ``(N, L)``, is ``signal_`` (``coef_.T``). Every MMV estimator of overparam does the
    same; with a 1-D ``y`` both are of shape ``(N,)``.
    To solve many problems at once, call :func:`~overparam.solvers.ir_mmv` with stacked arrays.

    The fit solves on the columns of ``A`` scaled to unit norm whenever their norms differ
    (``column_spread_limit``; a warning above a spread of 1e3): it is that of the
    standardized problem (unit columns; the bias weighted by the column norms,
    ``sum_j ||a_j|| ||X_j||``: the ``L`` signals share the columns);
    see :meth:`RecoveryEstimator._equilibration` and docs/scaling.md.
    """

    _y_ndim = 2
    # scikit-learn's multi-output orientation: coef_ is X^T, (L, N); signal_ is X, (N, L)
    _coef_transposed = True
    # Held-out validation (see RecoveryEstimator): K folds; a path whose held-out error only
    # creeps down is followed 1.5 times past its last real gain (0.1% of the fall so far);
    # the limit is tried on a budget (see the early_stopping parameter). Why 1.5: docs/mmv.md,
    # "Measurements behind the defaults".
    validation_min_improvement = 1e-3
    validation_horizon = 1.5
    validation_limit_budget = 2.0
    #: badly scaled columns are equilibrated (RecoveryEstimator._equilibration)
    _equilibrate_columns = True
    #: With the default adaptive step, cap each step so that no row scale changes by more
    #: than this fraction of itself (``max_row_change`` of :func:`~overparam.solvers.ir_mmv`;
    #: None: no cap). A class-level setting like ``validation_*``: set it on an instance.
    #: The Armijo step only asks for descent: during the slow start from the small init it
    #: grows until a few steps jump over the rows' escape, off the flow's path, and the folds
    #: and the refit then disagree at equal flow times. The cap keeps the iterates on the
    #: path; why 0.3: docs/mmv.md, "Following the path".
    max_row_change: float | None = 0.3
    #: Step only the fast and stiff rows every iteration and the slow ones once per block
    #: (:class:`~overparam.solvers.mmv_active.ActiveRowsStep`) from this many columns on;
    #: None: never. Measured in docs/mmv.md, "Cost" and "The compiled multirate step".
    active_rows_from: int | None = 100
    #: The solver's ``accelerator`` (:func:`~overparam.solvers.ir_mmv`): ``"auto"`` runs the
    #: numba-compiled step (plain or multirate) where numba imports and the setting allows
    #: it (the default update and step), ``"numpy"`` never, ``"numba"`` always (an error
    #: where it cannot). Same fits up to rounding; measured in docs/mmv.md, "A compiled
    #: step". A class-level setting: set it on an instance.
    accelerator: str = "auto"
    _parameter_constraints: ClassVar[dict] = {
        "init_scale": [StrOptions({"auto"}), POSITIVE],
        "v_scale": [POSITIVE, None],
        "init": [StrOptions({"zero", "ones"})],
        "update": [StrOptions({"simultaneous", "sequential"})],
        "step": STEP,
        **shared_constraints(),
        "stagnation_tol": [NON_NEGATIVE],
        "patience": [POSITIVE_INT],
        "refine": ["boolean"],
    }

    def __init__(self, init_scale="auto", v_scale=None, init="zero",
                 update="simultaneous", step="adaptive",
                 max_iter=100_000, tol=1e-6, stagnation_tol=1e-9, patience=1000,
                 early_stopping="validation", validation_fraction=0.2, noise_level=None,
                 random_state=None, refine=True):
        self._set_init_params(locals())

    @property
    def validation_folds(self) -> int:
        """K-fold cross-validation of the stopping time, each fold ``validation_fraction``."""
        return max(2, round(1 / check_validation_fraction(self.validation_fraction)))

    def _init_scale(self, control) -> float:
        return _AUTO_INIT if isinstance(self.init_scale, str) else self.init_scale

    def _row_cap(self):
        """The cap on the change of a row scale per step: for the default adaptive step only
        (a step given as a number or a policy is used as given)."""
        return self.max_row_change if isinstance(self.step, str) else None

    def _step_class(self, operator):
        """The solver's step: the multirate :class:`~overparam.solvers.mmv_active.ActiveRowsStep`
        from ``active_rows_from`` columns on (simultaneous update, a step policy without a
        limit), else the plain one."""
        n = operator.input_shape[0]
        if (self.active_rows_from is not None and n >= self.active_rows_from
                and self.update == "simultaneous" and not as_step_policy(self.step).sets_limit()):
            return ActiveRowsStep
        return None

    def _rule(self, control):
        return self._stopping_rule(control, stagnation_tol=self.stagnation_tol,
                                   patience=self.patience)

    def _solve(self, operator, y, control):
        if control.stops_early or not self.refine:
            return self._solve_paths([(operator, y, control)])[0]
        return self._solve_to_limit(operator, y, control, self._rule(control).max_iter)

    def _gradient_round(self, operator, y, control, params, max_iter):
        from dataclasses import replace

        return ir_mmv(operator.to_dense(), y, init_scale=self._init_scale(control),
                      v_scale=self.v_scale, init=self.init, init_params=params,
                      update=self.update, step=self.step, max_row_change=self._row_cap(),
                      step_class=self._step_class(operator), accelerator=self.accelerator,
                      stopping=replace(self._rule(control), max_iter=max_iter))

    def _exact(self, operator, y, coef):
        """The least-squares fit on the learned rows if it interpolates
        (:func:`~overparam.solvers.refine_row_sparse`)."""
        limit = refine_row_sparse(operator.to_dense(), y, coef, tol=self.tol)
        if limit is None:
            return None
        return limit, {"refined_rows": int(np.count_nonzero(np.any(limit != 0, -1)))}

    def _limit_ruled_out(self, problems, paths) -> bool:
        """The limit on noisy data creeps for far longer than the budget: it is tried only
        where a fold's learned rows interpolate its training rows (noiseless data; the
        held-out error of noisy data is also flat here for long, so it cannot tell)."""
        if not self.refine:
            return False
        return all(refine_row_sparse(operator.to_dense(), y, path.coef, tol=self.tol) is None
                   for (operator, y, _), path in zip(problems, paths, strict=True))

    def _solve_paths(self, problems):
        """Problems as batches of :func:`ir_mmv`, one batch per number of measurement rows
        (the folds' paths; a single problem is a batch of one)."""
        results = [None] * len(problems)
        by_size = {}
        for k, (operator, _, _) in enumerate(problems):
            by_size.setdefault(operator.n_measurements, []).append(k)
        for ks in by_size.values():
            control = problems[ks[0]][2]
            batch = ir_mmv(np.stack([problems[k][0].to_dense() for k in ks]),
                           np.stack([problems[k][1] for k in ks]),
                           init_scale=self._init_scale(control), v_scale=self.v_scale,
                           init=self.init,
                           update=self.update, step=self.step, stopping=self._rule(control),
                           max_row_change=self._row_cap(), step_class=self._step_class(
                               problems[ks[0]][0]), accelerator=self.accelerator,
                           validation=[problems[k][2].validation for k in ks])
            for j, k in enumerate(ks):
                results[k] = batch[j]
                results[k].wall_time = batch.wall_time / len(ks)  # the batch's share
        return results
