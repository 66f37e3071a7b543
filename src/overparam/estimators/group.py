"""Group-sparse regression by the diagonally grouped linear network (no penalty)."""

from __future__ import annotations

from ..methods import register_method
from ..parameterizations.group import GroupHadamard
from ..solvers import gradient_descent
from ..solvers.group import initial_group_params, weight_normalized_gd
from ..stopping import StoppingRule
from .base import RecoveryEstimator

__all__ = ["GroupHadamardRegressor"]

_ALGORITHMS = ("alg2", "alg1", "gd")


@register_method("group-hadamard",
                 "group-sparse vector: weight-normalized GD on w = (Du)^2 * v (DGLNN, Alg 1/2)")
class GroupHadamardRegressor(RecoveryEstimator):
    """Group-sparse regression with no penalty: the diagonally grouped linear network.

    ``w_i = u_{g(i)}^2 v_i`` is trained from a small magnitude ``u(0) = alpha`` on the loss
    ``(1/2n) ||y - X w||^2``; groups are learned one at a time, largest first, and stopping
    early (or the small init) keeps the other groups near zero (Li, Nguyen, Hegde, Wong,
    "Implicit regularization for group sparsity", ICLR 2023). With size-one groups it is a
    sparse-regression method (``w_i ~ u_i^2 sign(v_i)``).

    Parameters
    ----------
    groups : int, sequence of index arrays, or array of labels
        Partition of the features: a group size (contiguous groups), a list of index arrays,
        or a label per feature. Groups may have different sizes.
    algorithm : {"alg2", "alg1", "gd"}, default="alg2"
        ``"alg1"``: weight normalization with direction step ``1/u^4`` (paper's Algorithm 1);
        ``"alg2"``: the same, switching to the constant direction step ``step_v`` once the
        magnitudes settle (Algorithm 2, more stable late in the run); ``"gd"``: plain
        gradient descent on ``(u, v)`` without normalization (the safe adaptive scalar step
        unless ``step_u`` is a number), from the balanced initialization
        ``||v_l(0)||^2 = u_l(0)^2 / 2`` of the paper's Lemma 3.
    init_scale : float, default=1e-6
        ``alpha = u_l(0)``. Plain GD needs a larger one (e.g. ``1e-3``) to start in reasonable
        time, since its escape time grows like ``1/alpha``.
    step_u : float, "auto" or "adaptive", default="auto"
        ``gamma``, step on the magnitudes. ``"auto"``: ``1/(20 c)`` with
        ``c = max_l ||X_l^T y|| / n``, the paper's bound ``gamma <= 1/(20 max_l ||w_l*||)``
        (for ``X^T X / n`` near the identity) estimated from the data (see
        :func:`~overparam.solvers.group.data_scaled_steps`); the paper's experiments use
        ``1e-3``. For ``"gd"`` the step of both factors, and ``"auto"`` means the safe
        ``"adaptive"`` step, which is allowed there only.
    step_v : float or "auto", default="auto"
        ``eta``, constant direction step of Algorithm 2 after the switch (``"auto"``:
        ``4 gamma lam / c``, with ``gamma`` the ``step_u`` used, given or automatic, and
        ``lam`` the curvature of the loss along the top group's correlation, about 1 for
        ``X^T X / n`` near the identity; the paper uses ``1e-3``).
    switch_tol : float or "auto", default="auto"
        ``tau`` of Algorithm 2: switch when ``max_l |u_l(t+1)-u_l(t)|/|u_l(t)+eps| < tau``
        (``"auto"``: ``gamma c / 3``, which is ``gamma`` at ``c = 3``; the paper's experiments
        use ``1e-3`` with ``gamma = 1e-3`` and do not give ``tau`` otherwise).

        Why the data-scaled defaults: the cost of a fit is its number of iterations, which
        with a fixed step grows like ``1 / (gamma ||w*||)``; the ``"auto"`` steps make the
        path the same in units of ``gamma t`` whatever the scale of ``X`` and ``y``. On
        ``benchmarks/noisy.py --settings group`` (n=150, p=300, ``c`` about 3; 10/20/30/40
        dB) the paper's fixed ``1e-3`` took median 1.2/1.4/4.9/7.3 s per default fit (5
        trials; at 30-40 dB up to the 100,000-iteration limit), 1.1 to 29 times the group
        lasso CV; with ``"auto"`` (and the validation settings below) 0.05/0.07/0.08/0.09 s,
        0.05 to 0.38 times the group lasso CV, at default/oracle error ratio
        1.03/1.01/1.00/1.00 (20 trials; 1.02/1.00/1.02/1.00 before).
    direction : {"correlation", "uniform", "random", "zero"}, default="correlation"
        Initial directions ``v_l(0)``: along ``X_l^T y`` (Lemma 3), uniform, random or zero.
    on_divergence : {"halve", "raise"}, default="halve"
        What the weight-normalized solvers do if the loss explodes (the fixed ``step_u`` is
        too large for the data): halve the steps and redo the iteration, or raise.
    max_iter : int, default=100_000
    tol : float, default=1e-6
        Stop when ``||y - X w|| <= tol ||y||``.
    early_stopping : {"validation", "discrepancy", None}, default="validation"
        The stopping rule (docs/noise.md): held-out validation needs no noise level;
        ``None`` runs to the limit (exact, noiseless data; one fit instead of about two).
        Automatic stopping (see :class:`RecoveryEstimator`). The weight-normalized algorithms
        have no gradient-flow time: their clock is the iteration count
        (``result_.info["clock"] == "iterations"``), so validation picks an iteration.
    validation_fraction : float, default=0.2
    noise_level : float, optional
        Noise standard deviation, for ``early_stopping="discrepancy"``.
    random_state : None or int, default=None
        Seeds the hold-out split and ``direction="random"``.

    Attributes
    ----------
    coef_, result_, n_iter_, stop_reason_, fit_time_ :
        As in :class:`RecoveryEstimator`.
    chosen_iteration_ : int or None
        With ``early_stopping="validation"`` (weight-normalized algorithms): the iteration
        chosen on the held-out measurements; for ``"gd"`` the chosen flow time is in
        ``result_.info["chosen_time"]``.
    group_norms_ : ndarray
        ``||w_l||`` of the estimate per group.
    """

    def __init__(self, groups=None, algorithm="alg2", init_scale=1e-6, step_u="auto",
                 step_v="auto", switch_tol="auto", direction="correlation", on_divergence="halve",
                 max_iter=100_000, tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self.groups = groups
        self.algorithm = algorithm
        self.init_scale = init_scale
        self.step_u = step_u
        self.step_v = step_v
        self.switch_tol = switch_tol
        self.direction = direction
        self.on_divergence = on_divergence
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_level = noise_level
        self.random_state = random_state

    def fit(self, A, y):
        """Fit on design ``A`` (n, p) and responses ``y`` (n,); see :class:`RecoveryEstimator`."""
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        if self.groups is None:
            raise ValueError("groups is required: a group size, a list of index arrays or a "
                             "label per feature")
        super().fit(A, y)
        info = self.result_.info
        self.chosen_iteration_ = (round(info["chosen_time"])
                                  if info.get("chosen_time") is not None
                                  and info["clock"] == "iterations" else None)
        self.group_norms_ = GroupHadamard(self.groups, self.coef_.shape[0]).group_norms(self.coef_)
        return self

    # Groups are learned in sharp steps with bumps between them: read the held-out curve
    # with a tolerance and follow it longer than the default (see RecoveryEstimator). With the
    # data-scaled steps a group is learned in tens of iterations: check every iteration.
    # A gain per check below 1e-4 of the fall so far is creep (learned groups settling, or at
    # high SNR noise fitted by chance on the held-out rows), not a group being learned: it
    # does not extend the path (without this, 40 dB paths crept on to max_iter). If the
    # held-out error never rose, the limit gets a budget of one path before the refit falls
    # back to the chosen time (noisy data never reaches the limit within it).
    validation_every = 1
    validation_rtol = 1e-3
    validation_patience = 200
    validation_horizon = 3.0
    validation_min_improvement = 1e-4
    validation_limit_budget = 1.0

    def _solve(self, operator, y, control):
        param = GroupHadamard(self.groups, operator.shape[1])
        self._param = param
        # Loss plateaus are normal while groups are learned one after another, so stagnation of
        # the loss is not a stopping signal here.
        rule = control.apply(StoppingRule(max_iter=self.max_iter, tol=self.tol,
                                          stagnation_tol=0.0))
        if self.algorithm == "gd":
            balanced = GroupHadamard(param.labels, direction_scale="balanced")
            start = initial_group_params(balanced, operator, y, self.init_scale,
                                         self.direction, self.random_state)
            step = "adaptive" if self.step_u == "auto" else self.step_u
            return gradient_descent(param, operator, y, init_params=start, step=step,
                                    loss_weight=1.0 / y.shape[0], stopping=rule,
                                    validation=control.validation,
                                    random_state=self.random_state)
        if self.step_u == "adaptive":
            raise ValueError("step_u='adaptive' is only available for algorithm='gd'")
        return weight_normalized_gd(param, operator, y, algorithm=self.algorithm,
                                    init_scale=self.init_scale, direction=self.direction,
                                    step_u=self.step_u, step_v=self.step_v,
                                    switch_tol=self.switch_tol,
                                    on_divergence=self.on_divergence, stopping=rule,
                                    validation=control.validation,
                                    random_state=self.random_state)
