"""Group-sparse regression by the diagonally grouped linear network (no penalty)."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import StrOptions

from .._registry import register_method
from ..operators.matrix import DenseOperator
from ..parameterizations.group import GroupHadamard
from ..solvers import gradient_descent
from ..solvers.group import initial_group_params, weight_normalized_gd
from ..solvers.group_active import ActiveGroupsStep, incremental_validation
from ..solvers.result import SolverResult
from ..solvers.steps import StepPolicy
from ..solvers.support_limit import (
    learned_groups,
    smallest_support_least_squares,
    span_explains,
    unique_least_squares,
)
from ..stopping import StopReason
from ._constraints import GROUPS, GROUPS_REQUIRED, POSITIVE, POSITIVE_INT, shared_constraints
from .base import RecoveryEstimator

__all__ = ["GroupHadamardRegressor"]


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
    step_u : float, "auto", "adaptive" or StepPolicy, default="auto"
        ``gamma``, step on the magnitudes. ``"auto"``: ``1/(20 c)`` with
        ``c = max_l ||X_l^T y|| / n``, the paper's bound ``gamma <= 1/(20 max_l ||w_l*||)``
        (for ``X^T X / n`` near the identity) estimated from the data (see
        :func:`~overparam.solvers.group.data_scaled_steps`); the paper's experiments use
        ``1e-3``. For ``"gd"`` the step of both factors, and ``"auto"`` means the safe
        ``"adaptive"`` step; ``"adaptive"`` and a StepPolicy are allowed there only.
    step_v : float or "auto", default="auto"
        ``eta``, constant direction step of Algorithm 2 after the switch (``"auto"``:
        ``4 gamma lam / c``, with ``gamma`` the ``step_u`` used, given or automatic, and
        ``lam`` the curvature of the loss along the top group's correlation, about 1 for
        ``X^T X / n`` near the identity; the paper uses ``1e-3``).
    switch_tol : float or "auto", default="auto"
        ``tau`` of Algorithm 2: switch when ``max_l |u_l(t+1)-u_l(t)|/|u_l(t)+eps| < tau``
        (``"auto"``: ``gamma c / 3``, which is ``gamma`` at ``c = 3``). The paper gives no
        value; the authors' notebooks use 0.1 for Fig. 3 (``gamma = 1e-3``) and 0.03 for
        Fig. 4 (``gamma = 0.01``), on their loss (``loss_scale="authors"``).

        Why the data-scaled defaults: the cost of a fit is its number of iterations, which
        with a fixed step grows like ``1 / (gamma ||w*||)``; the ``"auto"`` steps make the
        path the same in units of ``gamma t`` whatever the scale of ``X`` and ``y``. On
        ``benchmarks/noisy.py --settings group`` (n=150, p=300, ``c`` about 3; 10/20/30/40
        dB) the paper's fixed ``1e-3`` took median 1.2/1.4/4.9/7.3 s per default fit (5
        trials; at 30-40 dB up to the 100,000-iteration limit), 1.1 to 29 times the group
        lasso CV; with ``"auto"`` (and the validation settings below) 0.05/0.07/0.08/0.09 s,
        0.05 to 0.38 times the group lasso CV, at default/oracle error ratio
        1.03/1.01/1.00/1.00 (20 trials; 1.02/1.00/1.02/1.00 before).
    switch_at : int, optional
        Algorithm 2 switches after this many iterations instead of by ``switch_tol`` (the
        authors' SNR comparison switches at epoch 200).
    loss_scale : {"half-mean", "authors"}, default="half-mean"
        Loss and update order of the weight-normalized algorithms: the paper's
        ``(1/2n)||y - X w||^2`` with the ``u``-step at the new direction, or the authors'
        code's ``(1/n)||y - X w||^2`` (``MSELoss``) with the ``u``-step at the old one (see
        :func:`~overparam.solvers.group.weight_normalized_gd`).
    direction : {"correlation", "uniform", "random", "zero"}, default="correlation"
        Initial directions ``v_l(0)``: along ``X_l^T y`` (Lemma 3), uniform, random or zero.
    on_divergence : {"halve", "raise"}, default="halve"
        What the weight-normalized solvers do if the loss explodes (the fixed ``step_u`` is
        too large for the data): halve the steps and redo the iteration, or raise.
    max_iter : int, default=100_000
    tol : float, default=1e-6
        Stop when ``||y - X w|| <= tol ||y||``. A run to the limit (weight-normalized
        algorithms) ends once the groups it has learned explain ``y``: the interpolant
        supported on them is computed by least squares (unique when their columns are
        independent), accepted only when its residual meets ``tol`` and the path is within
        1 % of it, or, when it leaves out learned groups (excited on the way, decaying like
        ``1/t``), when it has fewer columns than measurements, those groups decay and the
        path approaches it within 5 % (see :class:`_SupportLimit` and
        :mod:`overparam.solvers.support_limit`); ``result_.info["limit"]`` then says so.
        When ``X`` has full column rank (``n >= p``) the least-squares point is unique
        and is the limit of the flow whatever the path, also when ``X w = y`` has no
        solution (noisy overdetermined data: the weight-normalized path creeps there past
        any iteration budget, and a group whose direction froze after Algorithm 2's switch
        never arrives); a run to the limit then returns it at once, after its optimality
        check (:func:`~overparam.solvers.support_limit.unique_least_squares`), with
        ``n_iter_ = 0``. Not so for the limit that ``early_stopping="validation"`` tries on
        a budget: there the path must get there itself, else the refit stops at the chosen
        time, which on noisy data is nearer the truth than least squares.
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

    Notes
    -----
    The fit solves on the columns of ``A`` scaled to unit norm whenever their norms differ
    (``column_spread_limit``; a warning above a spread of 1e3): it is that of the
    standardized problem (unit columns; the bias weighted by the column norms,
    groups kept, ``sum_l ||D_l w_l||``);
    see :meth:`RecoveryEstimator._equilibration` and docs/scaling.md.
    """

    _parameter_constraints: ClassVar[dict] = {
        "groups": GROUPS,
        "algorithm": [StrOptions({"alg2", "alg1", "gd"})],
        "init_scale": [POSITIVE],
        "step_u": [StrOptions({"auto", "adaptive"}), POSITIVE, StepPolicy],
        "step_v": [StrOptions({"auto"}), POSITIVE],
        "switch_tol": [StrOptions({"auto"}), POSITIVE],
        "switch_at": [POSITIVE_INT, None],
        "loss_scale": [StrOptions({"half-mean", "authors"})],
        "direction": [StrOptions({"correlation", "uniform", "random", "zero"})],
        "on_divergence": [StrOptions({"halve", "raise"})],
        **shared_constraints(),
    }
    _required_params: ClassVar[dict[str, str]] = {"groups": GROUPS_REQUIRED}

    def __init__(self, groups=None, algorithm="alg2", init_scale=1e-6, step_u="auto",
                 step_v="auto", switch_tol="auto", switch_at=None, loss_scale="half-mean",
                 direction="correlation", on_divergence="halve",
                 max_iter=100_000, tol=1e-6, early_stopping="validation", validation_fraction=0.2,
                 noise_level=None, random_state=None):
        self._set_init_params(locals())

    def fit(self, A, y):
        """Fit on design ``A`` (n, p) and responses ``y`` (n,); see :class:`RecoveryEstimator`."""
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
    # held-out error never rose, the limit gets a budget of four paths before the refit falls
    # back to the chosen time: on clean data the limit (ended by least squares on the learned
    # groups) can need a few times the path's iterations while groups excited on the way
    # decay; noisy data does not reach the limit within it.
    validation_every = 1
    validation_rtol = 1e-3
    validation_patience = 200
    validation_horizon = 3.0
    validation_min_improvement = 1e-4
    validation_limit_budget = 4.0
    #: badly scaled columns are equilibrated (RecoveryEstimator._equilibration)
    _equilibrate_columns = True
    #: Step only the active groups every iteration and the slow ones (weights still near the
    #: init) once per block (:class:`~overparam.solvers.group_active.ActiveGroupsStep`) from
    #: this many features on, for a dense design and Algorithms 1-2 on the paper's loss scale;
    #: None: never. A class-level setting like ``validation_*``: set it on an instance.
    #: Measured in docs/group.md, "Cost at scale".
    active_groups_from: int | None = 1000
    #: iterations between two choices of the active groups (``period`` of the step)
    active_groups_period: int = 40

    def _check_params(self, operator, y):
        super()._check_params(operator, y)
        GroupHadamard(self.groups, operator.shape[1])  # the groups partition the features
        if self.algorithm != "gd" and (isinstance(self.step_u, StepPolicy)
                                       or self.step_u == "adaptive"):
            raise ValueError(f"step_u={self.step_u!r} is only available for algorithm='gd'")

    def _limit_ruled_out(self, problems, paths) -> bool:
        """Skip the limit tried on a budget when no fold's learned groups explain its
        training measurements (weight-normalized algorithms).

        The limit is accepted only as least squares on learned groups that meets ``tol``
        (:class:`_SupportLimit`). On noisy data with fewer measurements than features the
        groups the paths learned leave the noise in the residual, and the limit must first
        excite and fit groups of noise: it creeps past any budget of a few paths (measured:
        the whole budget, then the refit to the chosen time anyway, about two thirds of a
        fit's cost at p = 3,000). The held-out error is flat there for long, so it cannot
        tell this from noiseless data; the span of the learned groups can. A fold whose
        learned groups are more than its measurements (or none) cannot tell either: the
        limit is then tried.
        """
        if self.algorithm == "gd":
            return False
        verdicts = [_learned_groups_explain(GroupHadamard(self.groups, operator.shape[1]),
                                            operator, y, path.params[0], self.init_scale,
                                            self.tol)
                    for (operator, y, _), path in zip(problems, paths, strict=True)]
        return all(verdict is False for verdict in verdicts)

    def _step_class(self, operator):
        """The weight-normalized iteration: the multirate
        :class:`~overparam.solvers.group_active.ActiveGroupsStep` from ``active_groups_from``
        features on (a dense design, ``loss_scale="half-mean"``), else the plain one."""
        if (self.active_groups_from is not None and operator.shape[1] >= self.active_groups_from
                and self.loss_scale == "half-mean" and isinstance(operator, DenseOperator)):
            return ActiveGroupsStep
        return None

    def _solve(self, operator, y, control):
        param = GroupHadamard(self.groups, operator.shape[1])
        self._param = param
        # Loss plateaus are normal while groups are learned one after another, so stagnation of
        # the loss is not a stopping signal here.
        rule = self._stopping_rule(control, stagnation_tol=0.0)
        if self.algorithm == "gd":
            balanced = GroupHadamard(param.labels, direction_scale="balanced")
            start = initial_group_params(balanced, operator, y, self.init_scale,
                                         self.direction, self.random_state)
            step = "adaptive" if self.step_u == "auto" else self.step_u
            return gradient_descent(param, operator, y, init_params=start, step=step,
                                    loss_weight=1.0 / y.shape[0], stopping=rule,
                                    validation=control.validation,
                                    random_state=self.random_state)
        # A run to the limit ends at the unique least-squares point at once; a limit tried on
        # a budget (the validation rule, no overfitting seen) must be reached by the path.
        if not control.stops_early and control.max_iter is None:
            unique = _unique_limit(param, operator, y)
            if unique is not None:
                return unique
        limit = None if control.stops_early else _SupportLimit(param, operator, y,
                                                                self.init_scale, self.tol)
        step_class = self._step_class(operator)
        validation = (control.validation if step_class is None
                      else incremental_validation(control.validation))
        result = weight_normalized_gd(param, operator, y, algorithm=self.algorithm,
                                      init_scale=self.init_scale, direction=self.direction,
                                      step_u=self.step_u, step_v=self.step_v,
                                      switch_tol=self.switch_tol, switch_at=self.switch_at,
                                      loss_scale=self.loss_scale,
                                      on_divergence=self.on_divergence, stopping=rule,
                                      validation=validation,
                                      callback=limit, random_state=self.random_state,
                                      step_class=step_class,
                                      step_options=None if step_class is None
                                      else {"period": self.active_groups_period})
        return result if limit is None else limit.finish(result)


def _unique_limit(param, operator, y):
    """The run to the limit when ``A`` has full column rank: its unique least-squares point
    (:func:`~overparam.solvers.support_limit.unique_least_squares`), with the parameters
    that give it; None otherwise."""
    start = time.perf_counter()
    w = unique_least_squares(operator, y)
    if w is None:
        return None
    u = np.sqrt(param.group_norms(w))
    v = param.normalize(w, param.normalize(np.ones(param.n_features)))
    return SolverResult(coef=w, params=(u, v), n_iter=0, wall_time=time.perf_counter() - start,
                        stop_reason=StopReason.CONVERGED,
                        info={"clock": "iterations", "time": 0.0, "switch_iteration": None,
                              "limit": "unique least-squares point (A of full column rank)"})


def _learned_prefixes(param, magnitudes, init_magnitude):
    """The learned groups (:func:`~overparam.solvers.support_limit.learned_groups`), largest
    first, and the nested column sets of the first 1, 2, ... of them."""
    groups = learned_groups(magnitudes, init_magnitude)
    groups = groups[np.argsort(-magnitudes[groups], kind="stable")]
    columns = [np.flatnonzero(param.labels == g) for g in groups]
    return groups, [np.concatenate(columns[:k]) for k in range(1, len(columns) + 1)]


def _learned_groups_explain(param, operator, y, u, init_scale, tol):
    """Whether least squares on the groups learned at magnitudes ``u`` (at most as many
    columns as measurements) meets ``||A x - y|| <= tol ||y||``; None when no such set."""
    _, prefixes = _learned_prefixes(param, np.asarray(u) ** 2, float(init_scale) ** 2)
    sets = [c for c in prefixes if c.size <= operator.shape[0]]
    if not sets:
        return None
    return span_explains(operator.columns(sets[-1]), y, tol * np.linalg.norm(y))


class _SupportLimit:
    """Callback that ends a run to the limit once the learned groups explain ``y``.

    Every ``every`` iterations it tries least squares on the groups that left the init,
    largest first (:func:`~overparam.solvers.support_limit.smallest_support_least_squares`:
    the fewest that explain ``y``); the path then stops and :meth:`finish` returns that
    (unique, checked) interpolant instead of creeping to it.

    Groups excited on the way decay only as fast as the residual they leave lets them (their
    mass like ``1/t``), so they can outnumber the measurements, and keep the path a few
    percent away, for many times the iterations it took to learn the support. A candidate
    that leaves learned groups out is therefore judged on other evidence than closeness
    (``near_left_out`` instead of ``near``): it has fewer columns than measurements, so that
    ``y`` lying in their span is itself the sign of the support (for data in general
    position), and the groups it leaves out are decaying (their total magnitude fell since
    the previous check) while the path approaches it (the distance fell too).
    """

    every = 10
    near = 1e-2
    near_left_out = 5e-2

    def __init__(self, param, operator, y, init_scale, tol):
        self.param, self.operator, self.y = param, operator, y
        self.init_magnitude = float(init_scale) ** 2  # ||w_l|| = u_l^2 at the init
        self.tol = tol
        self.candidate = None
        self.iteration = None
        self.previous = None  # (magnitudes, distance to the candidate) at the previous check

    def __call__(self, iteration, params, x) -> bool:
        if iteration % self.every:
            return False
        magnitudes = params[0] ** 2
        groups, prefixes = _learned_prefixes(self.param, magnitudes, self.init_magnitude)
        candidate = smallest_support_least_squares(self.operator, self.y, x, prefixes,
                                                   tol=self.tol, near=self.near_left_out)
        previous, distance = self.previous, np.inf
        if candidate is not None:
            distance = float(np.linalg.norm(candidate - x) / np.linalg.norm(candidate))
            if not self._accept(candidate, groups, magnitudes, distance, previous):
                candidate = None
        self.previous = (magnitudes, distance)
        self.candidate, self.iteration = candidate, iteration
        return candidate is not None

    def _accept(self, candidate, groups, magnitudes, distance, previous):
        """The checks that depend on whether the candidate leaves learned groups out."""
        kept = self.param.group_norms(candidate) > 0
        left_out = groups[~kept[groups]]
        if left_out.size == 0:
            return distance <= self.near
        n_columns = np.count_nonzero(kept[self.param.labels])
        if previous is None or n_columns >= self.y.shape[0]:
            return False
        before, distance_before = previous
        return bool(magnitudes[left_out].sum() < before[left_out].sum()
                    and distance < distance_before)

    def finish(self, result):
        if result.stop_reason != StopReason.CALLBACK or self.candidate is None:
            return result
        w = self.candidate
        u = np.sqrt(self.param.group_norms(w))
        v = self.param.normalize(w, result.params[1])
        result.coef, result.params = w, (u, v)
        result.stop_reason = StopReason.CONVERGED
        result.info.update(limit="least squares on the learned groups",
                           limit_iteration=self.iteration)
        return result
