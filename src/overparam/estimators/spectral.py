"""Matrix sensing with spectral neural networks, and the deep-matrix-factorization baseline."""

from __future__ import annotations

from numbers import Integral
from typing import ClassVar

from sklearn.utils._param_validation import Interval, StrOptions

from .._registry import register_method
from ..operators.spectral import AlignedSpectralOperator
from ..parameterizations.deep_matrix import DeepMatrixFactorization
from ..parameterizations.spectral import ACTIVATIONS, Activation, get_activation
from ..solvers.low_rank import least_squares_limit, low_rank_limit
from ..solvers.spectral import aligned_spectral_gd, spectral_gd
from ._constraints import POSITIVE, POSITIVE_INT, STEP, shared_constraints
from ._exact_limit import ExactLimitMixin
from .base import RecoveryEstimator
from .generic import GradientDescentMixin
from .low_rank import EquilibrationMixin, FewMeasurementsCVMixin, matrix_shape

__all__ = ["DeepMatrixRegressor", "SpectralNetworkRegressor"]


def _seed(random_state):
    # The init is random (alpha, jitter of the diagonals): seed it even when the user did not.
    return 0 if random_state is None else random_state


@register_method("snn", "low-rank matrix: GD on a spectral neural network (Chu et al.)")
class SpectralNetworkRegressor(EquilibrationMixin, FewMeasurementsCVMixin, ExactLimitMixin,
                               RecoveryEstimator):
    """Matrix sensing by gradient descent on a spectral neural network (no penalty).

    ``X = sum_k alpha_k Gamma(U_k V_k^T)``, ``Gamma`` applying ``gamma`` to singular values
    (Chu, Ghosh, Lam, Mukherjee). From a small init the limit tends to a low-nuclear-norm
    interpolant; in the aligned case it is the nuclear-norm minimizer (Theorem 3).

    Parameters
    ----------
    n_components : int, default=2
        Number ``K`` of spectral neurons.
    activation : str or (callable, callable), default="tanh"
        See :class:`~overparam.parameterizations.SpectralNetwork`.
    width : int, optional
        Inner dimension of ``U_k, V_k`` (general solver); default ``max(n1, n2)``.
    init_scale : float, default=1e-4
        Size of the diagonal init of ``U_k, V_k`` (the paper's ``1e-4``).
    solver : {"auto", "aligned", "general"}, default="auto"
        ``"aligned"``: closed-form gradients on the diagonals, for an
        :class:`~overparam.operators.AlignedSpectralOperator`; ``"general"``: the full network
        with the singular-value-function gradient, any operator; ``"auto"`` picks ``"aligned"``
        when the operator is aligned.
    step : "adaptive" or float, default="adaptive"
    max_iter : int, default=50_000
    tol : float, default=1e-6
    early_stopping : {"validation", "discrepancy", None}, default="validation"
        The stopping rule (docs/noise.md): held-out validation needs no noise level;
        ``None`` runs to the limit (exact, noiseless data; one fit instead of about two).
    validation_fraction : float, default=0.2
    noise_level : float, optional
    random_state : None or int, default=None
        Seeds the init (0 when None) and the hold-out split.
    refine : bool, default=True
        End runs to the limit on its optimality check, as
        :class:`~overparam.estimators.FactorizedRegressor` does: gradient rounds (500 steps,
        then doubling), after each the locally unique low-rank interpolant next to the
        iterate (:func:`~overparam.solvers.low_rank.low_rank_limit`) if it exists.
        Plain gradient descent learns the rank quickly and then creeps (docs/spectral.md).
        False: plain gradient descent to ``tol`` or ``max_iter``.
    """

    # From a small init these networks leave a plateau abruptly (for depth 3 a finite-time
    # blow-up whose time scales like 1/init), so a refit "up to the chosen flow time" on all
    # measurements can stop just before its escape; match the residual level instead.
    validation_refit = "residual"
    _accepts_sparse = False  # a matrix signal needs a 3-D stack, not a sparse 2-D X
    #: The data are normalized to within a factor sqrt(2) (not 16, the base class's default)
    #: and the signal to a Frobenius norm of about 1/2: a saturating activation (tanh) maps
    #: all large singular values to about 1 and so learns noise directions as fast as the
    #: signal's (measured: docs/spectral.md, "Measurements behind the defaults").
    _scale_quantum_log2 = 1
    _signal_scale = 0.5
    validation_min_improvement = 1e-3  # clean data: the path creeps for 50,000 steps
    #: No overfitting seen on the paths: the limit is tried within 4 times their steps, else
    #: the refit stops at the chosen time. Folds of few measurements can interpolate noise
    #: fast and harmlessly while the limit on all of them is slow and far worse (issue 13,
    #: 28 measurements at 30 dB, seed 5: paths ~600 steps, limit 8,400 steps and 4.3 x the
    #: oracle's error; the budget: 1.8 x). Clean data reach the limit in the first round.
    validation_limit_budget = 4.0
    _min_held_out = 10  # see FewMeasurementsCVMixin
    _parameter_constraints: ClassVar[dict] = {
        "n_components": [POSITIVE_INT],
        # a pair of callables (gamma, gamma'): the pair is checked in _check_params
        "activation": [StrOptions(set(ACTIVATIONS)), Activation, tuple, list],
        "width": [POSITIVE_INT, None],
        "init_scale": [POSITIVE],
        "solver": [StrOptions({"auto", "aligned", "general"})],
        "step": STEP,
        **shared_constraints(),
        "refine": ["boolean"],
    }

    def __init__(self, n_components=2, activation="tanh", width=None, init_scale=1e-4,
                 solver="auto", step="adaptive", max_iter=50_000, tol=1e-6,
                 early_stopping="validation", validation_fraction=0.2, noise_level=None,
                 random_state=None, refine=True):
        self.refine = refine
        self.n_components = n_components
        self.activation = activation
        self.width = width
        self.init_scale = init_scale
        self.solver = solver
        self.step = step
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_level = noise_level
        self.random_state = random_state

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        get_activation(self.activation)  # a pair (gamma, gamma') of callables

    def _data_scales(self, log_a, y):
        a, s = super()._data_scales(log_a, y)
        return (a, s / self._signal_scale) if self._rescalable() else (a, s)

    def _gradient_round(self, operator, y, control, params, max_iter):
        from dataclasses import replace

        matrix_shape(operator)
        aligned = isinstance(operator, AlignedSpectralOperator)
        if self.solver == "aligned" and not aligned:
            raise ValueError("solver='aligned' needs an AlignedSpectralOperator "
                             f"(got {type(operator).__name__}); use solver='general'")
        rule = self._stopping_rule(control)
        common = dict(n_components=self.n_components, activation=self.activation,
                      init_scale=self.init_scale, step=self.step,
                      stopping=replace(rule, max_iter=max_iter),
                      validation=control.validation, random_state=_seed(self.random_state))
        if aligned and self.solver in ("auto", "aligned"):
            return aligned_spectral_gd(operator, y, init="small" if params is None else params,
                                       **common)
        return spectral_gd(operator, y, width=self.width, init_params=params, **common)

    def _exact(self, operator, y, coef):
        found = low_rank_limit(operator, y, coef, tol=self.tol)
        return None if found is None else (found[0], {"refined_rank": found[1]})


@register_method("deep-matrix", "low-rank matrix: GD on a deep product W1 W2 W3 from scale * I")
class DeepMatrixRegressor(EquilibrationMixin, ExactLimitMixin, GradientDescentMixin,
                          RecoveryEstimator):
    """Matrix sensing by gradient descent on ``X = W_1 … W_L`` from ``W_l(0) = init_scale I``.

    The depth-3 baseline of the spectral-network paper (Arora, Cohen, Hu, Luo, "Implicit
    regularization in deep matrix factorization"): a bias towards low (effective) rank.

    Parameters
    ----------
    depth : int, default=3
    width : int, optional
        Inner dimension; default ``max(n1, n2)``.
    init_scale : float, default=1e-4
        Size of each factor at init (``X(0) = init_scale^depth I``).
    init : {"identity", "gaussian"}, default="identity"
    step : "adaptive" or float, default="adaptive"
    max_iter : int, default=50_000
    tol : float, default=1e-6
    early_stopping, validation_fraction, noise_level, random_state
        Automatic stopping, see :class:`RecoveryEstimator`; ``random_state`` also seeds a
        Gaussian init (0 when None).
    refine : bool, default=True
        End runs to the limit on its optimality check, as
        :class:`~overparam.estimators.FactorizedRegressor` does: gradient rounds (500 steps,
        then doubling); after each, the locally unique low-rank interpolant next to the
        iterate, or on inconsistent data with an injective operator the least-squares point
        (:func:`~overparam.solvers.low_rank.least_squares_limit`). Plain gradient
        descent learns the rank quickly and then creeps; at depth >= 3 the small singular
        values of a least-squares point are learned very slowly. False: plain gradient descent
        to ``tol`` or ``max_iter``.
    """

    # From a small init these networks leave a plateau abruptly (for depth 3 a finite-time
    # blow-up whose time scales like 1/init), so a refit "up to the chosen flow time" on all
    # measurements can stop just before its escape; match the residual level instead.
    validation_refit = "residual"
    _accepts_sparse = False  # a matrix signal needs a 3-D stack, not a sparse 2-D X
    _parameter_constraints: ClassVar[dict] = {
        "depth": [Interval(Integral, 2, None, closed="left")],
        "width": [POSITIVE_INT, None],
        "init_scale": [POSITIVE],
        "init": [StrOptions({"identity", "gaussian"})],
        "step": STEP,
        **shared_constraints(),
        "refine": ["boolean"],
    }

    def __init__(self, depth=3, width=None, init_scale=1e-4, init="identity", step="adaptive",
                 max_iter=50_000, tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None, refine=True):
        self.refine = refine
        self.depth = depth
        self.width = width
        self.init_scale = init_scale
        self.init = init
        self.step = step
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_level = noise_level
        self.random_state = random_state

    def _parameterization(self, operator) -> DeepMatrixFactorization:
        n1, n2 = matrix_shape(operator)
        return DeepMatrixFactorization(n1, n2, depth=self.depth, width=self.width,
                                       init=self.init)

    def _exact(self, operator, y, coef):
        found = low_rank_limit(operator, y, coef, tol=self.tol)
        return None if found is None else (found[0], {"refined_rank": found[1]})

    def _least_squares(self, operator, y):
        """The limit on inconsistent data where least squares has one solution
        (:func:`~overparam.solvers.low_rank.least_squares_limit`)."""
        return least_squares_limit(operator, y)
