"""Sparse recovery by gradient descent / gradient flow on a deep Hadamard factorization."""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._registry import register_method
from .._validation import check_positive
from ..operators import DenseOperator
from ..solvers.sparse.flow import (
    NewtonConvergenceError,
    hadamard_flow,
    hadamard_gd,
)
from ..solvers.sparse.krylov_newton import hadamard_limit
from ..solvers.sparse.krylov_path import hadamard_path_cg, prefers_matrix_free_path
from ..solvers.steps import StepPolicy
from ..stopping import DivergenceError
from ._constraints import POSITIVE, shared_constraints
from ._equilibration import ColumnScaledMatrix
from .base import RecoveryEstimator

__all__ = ["HadamardRegressor"]


@register_method("hadamard", "sparse vector: GD on x = u^L - v^L (deep Hadamard, tuning-free)")
class HadamardRegressor(RecoveryEstimator):
    """Sparse recovery with no penalty: gradient flow on ``x = u^L - v^L`` from a small init.

    From a small init ``alpha`` the limit approaches the minimum-l1 interpolant (Chou, Maly,
    Rauhut, "More is less"); deeper factorizations get there from larger ``alpha``.

    Parameters
    ----------
    depth : int, default=2
        Number of factors ``L``.
    signed : bool, default=True
        False restricts to non-negative signals (``x = u^L``).
    init_scale : float or "auto", default="auto"
        Product init alpha of each part (``u(0)^L = v(0)^L = alpha``). ``"auto"``: the limit's
        distance to the minimum-l1 interpolant shrinks with ``alpha`` (to a power of it on
        identifiable problems) and the exact solvers (``"flow"``, ``"newton"``) make a tiny
        init cost only a longer (logarithmic) plateau, so ``alpha = rho_L * scale`` with
        ``scale = max_j |a_j^T y| / ||a_j||^2`` (the size of the signal, so that rescaling
        ``A`` or ``y`` rescales the answer) and ``rho_L`` from :meth:`relative_init`: as small
        as double precision allows at depth ``L`` (for ``L > 2`` the factors near the limit sit
        at a relative distance ``rho_L^{1 - 2/L}`` from the blow-up boundary ``u^{2-L} = 0``,
        kept at ``1e-5``). Paths stopped early start from the same init. The value used is
        ``init_scale_``.
    solver : {"auto", "gd", "flow", "newton"}, default="auto"
        How the flow is followed:

        - ``"gd"``: gradient descent on the factors (``step`` below): the paper's method.
        - ``"flow"``: the exact gradient flow through its M-dimensional dual ODE (stiff BDF,
          :func:`~overparam.solvers.sparse.flow.hadamard_flow`); follows the whole path, so
          it supports every automatic-stopping rule; orders of magnitude faster than GD.
        - ``"newton"``: only the flow's limit (time to infinity), by Newton's method on the dual
          (:func:`~overparam.solvers.sparse.krylov_newton.hadamard_limit`: the dense Hessian for
          small matrices, matrix-free Newton-CG for large ones and for operators at depth 2);
          fastest, no path.
        - ``"auto"``: ``"newton"`` when the limit is wanted (``early_stopping=None``) and
          ``"flow"`` when a point on the path is (validation / discrepancy stopping); also
          falls back to the flow if Newton fails. For an operator that is not a matrix (depth
          2) the path is followed matrix-free instead, by implicit Euler steps solved by
          Newton-CG (:func:`~overparam.solvers.sparse.krylov_path.hadamard_path_cg`, local error
          ``path_rtol``). ``result_.info["solver"]`` says which ran.

        ``"flow"`` (and ``"newton"`` at depth ``L > 2``) need a matrix (``A.to_dense()``)
        of moderate size.
    step : "flow", "adaptive", float or StepPolicy, default="flow"
        Step of ``solver="gd"``: ``"flow"`` is the safe adaptive scalar step that keeps the
        flow's path (:class:`~overparam.solvers.sparse.flow.FlowStep`); ``"adaptive"`` plain
        backtracking (larger steps, limit a few percent off the flow's); a number the paper's
        fixed step (``1e-2`` there).
    max_iter : int, default=100_000
        Budget: GD iterations, right-hand-side evaluations of the flow, or Newton steps.
    tol : float, default=1e-6
        Relative residual ``||A x - y|| / ||y||`` at which to stop.
    early_stopping : {"validation", "discrepancy", None}, default="validation"
        The stopping rule (docs/noise.md): held-out validation needs no noise level;
        ``None`` runs to the limit (exact, noiseless data; one fit instead of about two).
        Automatic stopping under noise (see :class:`RecoveryEstimator`). Data that the
        limit of the first fold's training rows predicts exactly (held-out relative
        residual at most ``validation_exact_rtol``, 1e-4) get the limit without the paths
        (``result_.info["refit"] == "limit"``; docs/sparse.md).
    validation_fraction : float, default=0.2
        Share of measurements held out when ``early_stopping="validation"``.
    noise_level : float, optional
        Noise standard deviation per measurement, for ``early_stopping="discrepancy"``.
    random_state : None or int, default=None
        Seeds the hold-out split (the init itself is deterministic).

    Attributes
    ----------
    init_scale_ : float
        The init alpha used (``init_scale``, or its ``"auto"`` value on the data of ``fit``).

    Notes
    -----
    The fit solves on the columns of ``A`` scaled to unit norm whenever their norms differ
    (``column_spread_limit``; a warning above a spread of 1e3): it is that of the
    standardized problem (unit columns; the bias weighted by the column norms,
    ``min sum_j ||a_j|| |x_j|`` in the limit);
    see :meth:`RecoveryEstimator._equilibration` and docs/scaling.md.
    """

    #: ``"auto"`` init at depth 2, relative to the signal's scale. For ``L > 2`` the relative
    #: init puts the limit's factors at relative distance ``_BOUNDARY_MARGIN`` from the
    #: blow-up boundary: ``rho_L = _BOUNDARY_MARGIN ** (L / (L - 2))``.
    _RELATIVE_INIT_L2 = 1e-20
    _BOUNDARY_MARGIN = 1e-5

    #: Integrator tolerances ``(rtol, atol)`` of the dual flow (``solver="flow"``/``"auto"``)
    #: on the held-out paths (validation, an Oracle), which only choose the stopping time; the
    #: refit to that time, a discrepancy stop and the limit keep :func:`hadamard_flow`'s tight
    #: defaults: the estimate is their point of the path, and where a coordinate is mid-escape
    #: at the chosen time a loose refit lands far from it (depth 5, tests/
    #: test_sparse_estimators.py: 3e-2 from the exact path, against 3e-6 now). A stopping
    #: time needs the path to about the statistical error, not to 1e-6: on benchmarks/noisy.py
    #: (sparse, N=1000, M=300, s=20) the estimate at the chosen time stays within 1e-3
    #: (relative, 3e-4 at 40 dB) of a 1e-8-tolerance path, against errors of 7e-3 (40 dB) to
    #: 0.2 (10 dB). Over 20 trials default/oracle error was 1.096 here vs 1.088 at rtol 1e-6
    #: (10 dB) and 1.012 for both (40 dB), while the validated fit took 4-5 times fewer
    #: integrator steps (CPU time 0.29 -> 0.09 s at 10 dB, 0.44 -> 0.12 s at 40 dB).
    flow_tolerances = (1e-2, 1e-5)
    #: Local error per step (relative, on ``x``) of the matrix-free path
    #: (:func:`~overparam.solvers.sparse.krylov_path.hadamard_path_cg`, for operators that are not
    #: matrices): on the held-out paths, and on the refit / discrepancy stop.
    path_rtol = (1e-2, 1e-3)
    #: badly scaled columns are equilibrated (RecoveryEstimator._equilibration), a dense
    #: design without copying it unless a solver needs the matrix (the matrix-free limit
    #: only multiplies)
    _equilibrate_columns = True
    _lazy_equilibration = True

    #: The stopping time under validation is chosen by 5-fold cross-validation (see
    #: :class:`RecoveryEstimator`). From the tiny "auto" init the coordinates escape abruptly
    #: (the escape takes ~1/log(1/alpha) of its time), so the error is sharply minimal in
    #: time and one 20% hold-out, whose minimum wanders by a factor of 0.4-1.5 around the
    #: best time, costs 20% of error. On benchmarks/noisy.py (sparse, N=1000, M=300, s=20,
    #: 10 trials) default/oracle error went from 1.22/1.21/1.07/1.02 (one split) to
    #: 1.06/1.10/1.02/1.01 (10/20/30/40 dB), for 3-4 times the CPU time of a validated fit.
    validation_folds = 5
    #: The folds' held-out errors are averaged in log scale (see :class:`RecoveryEstimator`):
    #: with few measurements each fold holds out a handful, whose mean squared residual is
    #: heavy-tailed, and one large fold value moved the arithmetic mean's minimum to a late,
    #: overfitted time. On tests/test_contract.py's 30 x 80, s = 3, 10 dB problem (seeds
    #: 0-9) default/oracle-least-squares error went from median 3.05 to 2.34 (the best point
    #: of the path: 1.77); benchmarks/noisy.py's sparse setting did not change (20 dB: 1.099).
    validation_mean = "geometric"
    #: Clean data: the first fold's Newton limit predicts its held-out rows to 1e-4
    #: (relative) -> the limit, without the fold paths (see :class:`RecoveryEstimator`).
    validation_exact_rtol = 1e-4

    _parameter_constraints: ClassVar[dict] = {
        "depth": [Interval(Integral, 2, None, closed="left")],
        "signed": ["boolean"],
        "init_scale": [StrOptions({"auto"}), POSITIVE],
        "solver": [StrOptions({"auto", "gd", "flow", "newton"})],
        "step": [StrOptions({"flow", "adaptive"}), POSITIVE, StepPolicy],
        **shared_constraints(),
    }

    def __init__(self, depth=2, signed=True, init_scale="auto", solver="auto", step="flow",
                 max_iter=100_000, tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self._set_init_params(locals())

    @classmethod
    def relative_init(cls, depth: int) -> float:
        """The ``"auto"`` init relative to the signal's scale, ``rho_L``, at depth ``L``."""
        check_positive(depth, "depth", integer=True)
        if depth <= 2:
            return cls._RELATIVE_INIT_L2
        return cls._BOUNDARY_MARGIN ** (depth / (depth - 2.0))

    def _fit_operator(self, operator, y):
        # A numeric init is used as given; "auto" is set from the data in _fit_rule (None
        # when the fit is trivial: y = 0 or A = 0).
        auto = isinstance(self.init_scale, str)
        self.init_scale_ = self._init = None if auto else float(self.init_scale)
        return super()._fit_operator(operator, y)

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        if self.solver == "newton" and self.early_stopping is not None:
            raise ValueError("solver='newton' computes only the limit of the flow; automatic "
                             "stopping needs the path: use solver='flow' (or 'auto')")

    def _fit_rule(self, operator, y, rule, a, s):
        # The "auto" init from the data the solvers see (normalized by the base class by
        # ``a`` and ``s``), so that the fit is equivariant; reported in the data's units.
        if isinstance(self.init_scale, str):
            self._init = self.relative_init(self.depth) * _signal_scale(operator, y)
            self.init_scale_ = self._init * s / a
        return super()._fit_rule(operator, y, rule, a, s)

    def _newton_limit(self, operator, y):
        return hadamard_limit(operator, y, depth=self.depth, signed=self.signed,
                              init_scale=self._init, tol=self.tol,
                              max_iter=min(self.max_iter, 1000),
                              column_norms_sq=_known_norms_sq(operator))

    def _quick_limit(self, operator, y):
        if self.solver != "auto":
            return None
        try:
            return self._newton_limit(operator, y)
        except (NewtonConvergenceError, DivergenceError):  # the paths decide instead
            return None

    def _solve(self, operator, y, control):
        needs_path = control.stops_early
        solver = self.solver
        kwargs = {"depth": self.depth, "signed": self.signed, "init_scale": self._init}
        if solver in ("auto", "newton") and not needs_path:
            try:
                return self._newton_limit(operator, y)
            except NewtonConvergenceError as err:
                if solver == "newton":
                    raise
                warnings.warn(f"{err}; following the dual flow instead", RuntimeWarning,
                              stacklevel=3)
        rule = self._stopping_rule(control)
        if solver == "auto" and prefers_matrix_free_path(operator, self.depth):
            # held-out paths only choose the time: a looser path (as the flow's tolerances)
            rtol = self.path_rtol[0 if control.validation is not None else 1]
            return hadamard_path_cg(operator, y, stopping=rule, validation=control.validation,
                                    path_rtol=rtol, **kwargs)
        if solver == "gd":
            return hadamard_gd(operator, y, step=self.step, stopping=rule,
                               validation=control.validation, **kwargs)
        if control.validation is not None:
            # the held-out paths only choose the time; the refit to it (and a discrepancy
            # stop) return their point of the path, followed at the solver's tolerances
            kwargs["rtol"], kwargs["atol"] = self.flow_tolerances
        return hadamard_flow(operator, y, stopping=rule, validation=control.validation, **kwargs)


def _signal_scale(operator, y) -> float:
    """``max_j |a_j^T y| / ||a_j||^2``: the size of the signal's largest entries (exactly
    ``|x_j|`` for orthogonal columns); ``||A^T y||_inf n / ||A||_F^2`` for a matrix-free
    operator.
    1 when it is zero or not finite (``y = 0``: every init gives ``x = 0``)."""
    if isinstance(operator, DenseOperator):
        col_sq = _known_norms_sq(operator)
        if col_sq is None:
            col_sq = np.einsum("ij,ij->j", operator.matrix, operator.matrix)
        corr = np.abs(operator.adjoint(y))
        ratios = np.divide(corr, col_sq, out=np.zeros_like(corr), where=col_sq > 0)
        scale = float(np.max(ratios, initial=0.0))
    else:
        # the mean squared column norm ||A||_F^2 / n for ||a_j||^2: the same scale as a
        # matrix's for equal columns (the fit equilibrates unequal ones)
        mean_sq = operator.frobenius_norm() ** 2 / operator.shape[1]
        scale = float(np.max(np.abs(operator.adjoint(y)))) / max(mean_sq, 1e-300)
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _known_norms_sq(operator) -> np.ndarray | None:
    """The squared column norms of an implicitly equilibrated matrix (known: 1, or 0 for zero
    columns), else None."""
    if isinstance(operator, ColumnScaledMatrix):
        return operator.column_norms**2
    return None
