"""Gradient descent with weight normalization on the grouped network (Algorithms 1 and 2).

Paper: Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023).
No library implements these updates, so they are written here by hand.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_positive
from ..operators.matrix import DenseOperator
from ..parameterizations.group import GroupHadamard
from ..stopping import DivergenceError, StoppingRule, Validation
from .loop import Iterate, run_loop
from .result import History, SolverResult

__all__ = ["WeightNormalizedStep", "data_scaled_steps", "initial_group_params",
           "weight_normalized_gd"]

_ALGORITHMS = ("alg1", "alg2")
_LOSS_SCALES = ("half-mean", "authors")
#: :func:`stable_direction_step` forms an operator that is not a matrix densely up to this
#: many entries (128 MiB)
_EXACT_NORM_ENTRIES = 2**24


def data_scaled_steps(param: GroupHadamard, operator, y,
                      step_u: float | None = None) -> tuple[float, float, float]:
    """``(step_u, step_v, switch_tol)`` scaled to the data: the ``"auto"`` values.

    With ``c = max_l ||X_l^T y|| / n`` (which estimates ``max_l ||w_l*||`` when ``X^T X / n``
    is near the identity), reached at group ``k``, and ``lam = ||X_k d||^2 / n`` the curvature
    of the loss along that group's correlation direction ``d = X_k^T y / ||X_k^T y||``:

    - ``step_u = 1 / (20 c)``: the paper's bound ``gamma <= 1/(20 max_l ||w_l*||)``. The
      largest group's magnitude then grows by the same factor per iteration whatever the
      scale of ``X`` and ``y``, so iteration counts (this solver's clock) are comparable
      between data sets, e.g. a held-out path and the refit on all measurements;
    - ``step_v = 4 step_u lam / c``: after the switch of Algorithm 2 the direction of that
      group (``u_k^4 ~ (c / lam)^2``) relaxes at the rate ``4 step_u c`` at which its
      magnitude grew;
    - ``switch_tol = step_u c / 3``: switch once every group's correlation ``<v_l, g_l>``
      has fallen below ``c / 6`` (``tau = gamma`` at ``c = 3``; the paper gives no ``tau``,
      the authors' notebooks use 0.1 and 0.03 at ``gamma`` 1e-3 and 0.01).

    All three are unchanged by rescaling ``X`` or ``y`` (in the units of the iterates).

    Parameters
    ----------
    param : GroupHadamard
    operator : Operator
        The design ``X``.
    y : ndarray of shape (n,)
    step_u : float, optional
        A given ``step_u``: ``step_v`` and ``switch_tol`` are then scaled to it instead.
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    correlation = operator.adjoint(y) / n
    norms = param.group_norms(correlation)
    k = int(np.argmax(norms))
    c = float(norms[k])
    if not c > 0:  # X^T y = 0: w = 0 is stationary and no step moves it; the paper's values
        value = 1e-3 if step_u is None else float(step_u)
        return value, value, value
    direction = np.where(param.labels == k, correlation / c, 0.0)
    lam = float(np.sum(operator.forward(direction) ** 2)) / n
    step_u = 1.0 / (20.0 * c) if step_u is None else float(step_u)
    return step_u, 4.0 * step_u * lam / c, step_u * c / 3.0


def stable_direction_step(param: GroupHadamard, operator, n: int) -> float:
    """``kappa = min(1, 1 / lam_max)`` for the normalized phase's direction update.

    Algorithm 1 updates the direction by ``v <- normalize(u^2 v + kappa X^T r / n)``, the
    paper's step ``1 / u^4`` when ``kappa = 1``: a unit gradient step on each group's
    ``w_l``, stable only while ``lam_max = max_l ||X_l||_2^2 / n`` stays below 2 (as for the
    paper's designs, ``X^T X / n`` near the identity). On a design scaled by 1.5 or more the
    iterates oscillate for ever (period 2) and a held-out stopping time picked on such a
    path returns a wrong answer, so the ``"auto"`` steps shrink ``kappa`` to ``1 / lam_max``.
    ``lam_max`` is exact (per-group spectral norms, one pass over the columns) for a matrix
    and for any design with at most 2**24 entries, else bounded above by ``||X||_2^2 / n``
    (smaller, still stable steps). The bound is not used for matrices: it is far from
    ``lam_max`` (about ``(1 + sqrt(p / n))^2`` against ``(1 + sqrt(k / n))^2`` for a Gaussian
    design with groups of ``k``), so the direction steps, and the path, would change with the
    size at 2**24 entries, and ARPACK's estimate costs hundreds of products.
    """
    m, p = operator.shape
    if m * p <= _EXACT_NORM_ENTRIES or isinstance(operator, DenseOperator):
        lam = _largest_group_norm2(operator.to_dense(), param)
    else:
        lam = float(operator.norm_estimate()) ** 2
    lam /= n
    return 1.0 if not lam > 1.0 else 1.0 / lam


def _largest_group_norm2(A, param: GroupHadamard) -> float:
    """``max_l ||X_l||_2^2``: for groups of equal size from their Gram matrices, a chunk of
    groups at a time (one batched eigenvalue call per chunk of about 16 MiB of columns), else
    one SVD per group."""
    labels, sizes = param.labels, param.group_sizes
    if sizes.min() != sizes.max():
        return max(float(np.linalg.norm(A[:, labels == k], 2)) ** 2
                   for k in range(param.n_groups))
    n, k = A.shape[0], int(sizes[0])
    order = np.argsort(labels, kind="stable")
    chunk = max(1, 2**21 // (n * k))  # groups per chunk
    best = 0.0
    for start in range(0, param.n_groups, chunk):
        block = A[:, order[start * k:(start + chunk) * k]].reshape(n, -1, k).transpose(1, 0, 2)
        grams = np.matmul(block.transpose(0, 2, 1), block)
        best = max(best, float(np.linalg.eigvalsh(grams)[:, -1].max()))
    return best


def initial_group_params(param: GroupHadamard, operator, y, init_scale: float,
                         direction: str = "correlation", random_state=None):
    """``u(0) = init_scale`` and a unit-norm direction ``v_l(0)`` per group.

    ``direction="correlation"`` points ``v_l(0)`` along ``X_l^T y`` (the paper's Lemma 3:
    one gradient step from zero); ``"uniform"``, ``"random"`` and ``"zero"`` are as in
    :class:`~overparam.parameterizations.GroupHadamard`. The norm of ``v_l(0)`` follows
    ``param.direction_scale``.
    """
    if direction == "correlation":
        return param.init_from_data(init_scale, operator.adjoint(np.asarray(y, float)))
    probe = GroupHadamard(param.labels, direction=direction,
                          direction_scale=param.direction_scale)
    return probe.init(init_scale, random_state)


def weight_normalized_gd(
    param: GroupHadamard,
    operator,
    y,
    *,
    algorithm: str = "alg2",
    init_scale: float = 1e-6,
    init_params=None,
    direction: str = "correlation",
    step_u: float | str = 1e-3,
    step_v: float | str = 1e-3,
    switch_tol: float | str = 1e-3,
    switch_eps: float = 1e-12,
    switch_at: int | None = None,
    loss_scale: str = "half-mean",
    on_divergence: str = "raise",
    stopping: StoppingRule | None = None,
    random_state=None,
    history: History | None = None,
    validation: Validation | None = None,
    callback=None,
    progress: bool = False,
    step_class=None,
    step_options: dict | None = None,
) -> SolverResult:
    """Algorithm 1 or 2 of the group-sparsity paper on the loss ``(1/2n)||X w - y||^2``.

    (``loss_scale="authors"``: on the authors' ``(1/n)||X w - y||^2`` with their update order,
    see below.)

    One iteration, with ``g = X^T (y - X w) / n`` the negative gradient in ``w``:

    1. direction step and normalization, per group ``l``:
       ``v_l <- normalize(v_l - eta_l * grad_v) = normalize(v_l + eta_l u_l^2 g_l)``.
       With the paper's ``eta_l = 1/u_l^4`` this is computed as ``normalize(u_l^2 v_l + g_l)``
       (same direction, multiplied by ``u_l^2 > 0``), which cannot overflow when ``u_l`` is
       tiny;
    2. magnitude step at the new direction: ``u_l <- u_l + step_u * 2 u_l <v_l, g_l(v_new)>``.

    Algorithm 1 keeps ``eta_l = 1/u_l^4``. Algorithm 2 switches, once, to the constant
    ``eta_l = step_v`` at the first iteration where the largest relative change of the
    magnitudes ``max_l |u_l(t+1) - u_l(t)| / |u_l(t) + switch_eps|`` falls below ``switch_tol``
    (the paper's practical criterion; the paper gives no value for ``tau``; the authors'
    notebooks use 0.1 for Fig. 3 and 0.03 for Fig. 4), or at the fixed iteration ``switch_at``
    (their SNR comparison, Fig. 12, switches at epoch 200).

    Parameters
    ----------
    param : GroupHadamard
        The groups.
    operator : Operator
        Design ``X`` (``n`` rows).
    y : ndarray of shape (n,)
    algorithm : {"alg1", "alg2"}, default="alg2"
    init_scale : float, default=1e-6
        ``u(0) = alpha``.
    init_params : tuple (u, v), optional
        Explicit start (each ``v_l`` is normalized first).
    direction : {"correlation", "uniform", "random", "zero"}, default="correlation"
        Initial direction (see :func:`initial_group_params`); with ``eta = 1/u^4`` the first
        step replaces it by ``X_l^T y`` anyway, as the paper notes any unit vector works.
    step_u : float or "auto", default=1e-3
        ``gamma``, the step on the magnitudes (paper: ``gamma <= 1/(20 max_l ||w_l*||)``);
        ``"auto"`` scales it to the data (see :func:`data_scaled_steps`).
    step_v : float or "auto", default=1e-3
        ``eta``, the constant direction step of Algorithm 2 after the switch (``"auto"``:
        scaled to the data and to ``step_u``).
    switch_tol : float or "auto", default=1e-3
        ``tau`` of the switching criterion of Algorithm 2 (``"auto"``: as ``step_v``).
    switch_eps : float, default=1e-12
        ``epsilon`` of the switching criterion.
    switch_at : int, optional
        Algorithm 2 switches after this many iterations instead of by ``switch_tol``.
    loss_scale : {"half-mean", "authors"}, default="half-mean"
        ``"half-mean"``: the paper's loss ``(1/2n)||X w - y||^2`` (its gradients, eq. in
        appendix B) and Algorithm 1 as printed: the ``u``-step at the new direction
        ``v(t+1)``. ``"authors"``: the authors' code (github.com/jiangyuan-li/
        Implicit-Group-Sparsity, ``src/group_model.py``): ``torch.nn.MSELoss``, i.e.
        ``(1/n)||X w - y||^2`` (every gradient doubled), and one ``loss.backward()`` per
        epoch, so the ``u``-step uses the gradient at the old ``v(t)``; the direction step
        after Algorithm 2's switch is ``v - step_v grad_v`` then normalized, as there.
    on_divergence : {"raise", "halve"}, default="raise"
        On a non-finite or exploding loss raise :class:`DivergenceError`, or halve ``step_u``
        (and ``step_v``) and redo the iteration.
    stopping : StoppingRule, optional
        ``max_flow_time`` is read as an iteration count (this solver's clock).
    random_state : None, int or Generator
        Seeds ``direction="random"``.
    history : History, optional
        Records ``iteration, loss, error`` and ``history.quantities(params, x)``.
    validation : Validation, optional
        Held-out early stopping; the best iterate is returned. Not changed: the curve and
        the best iteration are in ``info`` (see :func:`~overparam.solvers.loop.run_loop`).
    callback : callable, optional
        ``callback(iteration, params, x)``; True stops.
    progress : bool, default=False
    step_class : type, optional
        The iteration: :class:`WeightNormalizedStep` (None) or a subclass with the same
        constructor, such as the multirate
        :class:`~overparam.solvers.group_active.ActiveGroupsStep`.
    step_options : dict, optional
        Extra keyword arguments of ``step_class`` (e.g. its ``period``).

    Returns
    -------
    SolverResult
        ``info`` holds ``clock="iterations"``, ``time`` (iterations done), the
        ``switch_iteration`` of Algorithm 2 (None if it never switched or for Algorithm 1),
        the ``switch_tol`` used, final steps and the number of step halvings.
    """
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    if loss_scale not in _LOSS_SCALES:
        raise ValueError(f"loss_scale must be one of {_LOSS_SCALES}, got {loss_scale!r}")
    if switch_at is not None:
        check_positive(switch_at, "switch_at", integer=True)
    if on_divergence not in ("raise", "halve"):
        raise ValueError(f"on_divergence must be 'raise' or 'halve', got {on_divergence!r}")
    steps = {"step_u": step_u, "step_v": step_v, "switch_tol": switch_tol}
    for name, value in steps.items():
        if not (isinstance(value, str) and value == "auto"):
            check_positive(value, name)
    check_positive(switch_eps, "switch_eps", strict=False)
    if operator.shape[1] != param.n_features:
        raise ValueError(f"the design has {operator.shape[1]} columns but the groups cover "
                         f"{param.n_features} features")
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    kappa = 1.0  # the paper's direction step, unless step_u is "auto" (see below)
    if isinstance(step_u, str):
        kappa = stable_direction_step(param, operator, n)
    if any(isinstance(v, str) for v in steps.values()):  # "auto": scaled to the data
        auto = data_scaled_steps(param, operator, y,
                                 None if isinstance(step_u, str) else step_u)
        step_u, step_v, switch_tol = (a if isinstance(v, str) else v
                                      for v, a in zip(steps.values(), auto, strict=True))
    if init_params is not None:
        u, v = (np.array(p, dtype=float) for p in init_params)
        if u.shape != (param.n_groups,) or v.shape != (param.n_features,):
            raise ValueError(f"init_params must have shapes ({param.n_groups},) and "
                             f"({param.n_features},), got {u.shape} and {v.shape}")
    else:
        check_positive(init_scale, "init_scale")
        u, v = initial_group_params(param, operator, y, init_scale, direction, random_state)
    v = param.normalize(v, param.normalize(np.ones(param.n_features)))
    solver_step = (step_class or WeightNormalizedStep)(
        param, operator, y, (u, v), **(step_options or {}), algorithm=algorithm,
        step_u=float(step_u), step_v=float(step_v), direction_step=kappa,
        switch_tol=float(switch_tol), switch_eps=switch_eps, switch_at=switch_at,
        loss_scale=loss_scale, on_divergence=on_divergence)
    return run_loop(solver_step, float(np.linalg.norm(y)), stopping=stopping, history=history,
                    validation=validation, callback=callback, progress=progress)


class WeightNormalizedStep:
    """One iteration of Algorithm 1 or 2: the :class:`~overparam.solvers.loop.SolverStep` of
    :func:`weight_normalized_gd` (see there for the update and the parameters).

    The clock counts iterations. An iteration costs two products with ``X`` and two with
    ``X^T`` (one of each with ``loss_scale="authors"``) plus per-group sums; the residual and
    the correlation of the accepted iterate are reused by the next one.
    """

    clock = "iterations"

    def __init__(self, param, operator, y, params, *, algorithm, step_u, step_v,
                 direction_step, switch_tol, switch_eps, switch_at, loss_scale,
                 on_divergence):
        self.param, self.operator, self.y, self.params0 = param, operator, y, params
        self.name = f"group {algorithm}"
        self.algorithm, self.loss_scale, self.on_divergence = algorithm, loss_scale, on_divergence
        self.gamma, self.eta, self.kappa = step_u, step_v, direction_step
        self.switch_tol, self.switch_eps, self.switch_at = switch_tol, switch_eps, switch_at
        self.inv_n = 1.0 / y.shape[0]
        # the authors' MSELoss doubles every gradient; their u-step reads the old direction
        self.scale = 2.0 if loss_scale == "authors" else 1.0
        self.u_step_at_old_v = loss_scale == "authors"
        self.normalized_phase = True
        self.watch_switch = algorithm == "alg2"
        self.switch_iteration = None
        self.n_halvings = 0
        self.iteration = 0

    def _residual_and_corr(self, x):
        r = self.y - self.operator.forward(x)
        return r, self.operator.adjoint(r) * self.inv_n

    def _evaluate(self, u, v) -> Iterate:
        u2 = u[self.param.labels] ** 2
        x = u2 * v
        r, g = self._residual_and_corr(x)
        rr = float(r @ r)
        return Iterate((u, v), x, 0.5 * rr * self.inv_n, math.sqrt(rr), dt=1.0, cache=(u2, g))

    def init(self) -> Iterate:
        """The normalized start ``(u, v)``."""
        return self._evaluate(*self.params0)

    def _trial(self, current) -> Iterate:
        """Direction step and normalization, then the magnitude step at the new direction."""
        (u, v), (u2, g) = current.params, current.cache
        param, scale = self.param, self.scale
        z = (u2 * v + self.kappa * scale * g if self.normalized_phase
             else v + self.eta * scale * u2 * g)
        v_new = param.normalize(z, v)
        if self.u_step_at_old_v:
            drive = param.group_sum(v * g)
        else:
            _, g_half = self._residual_and_corr(u2 * v_new)
            drive = param.group_sum(v_new * g_half)
        return self._evaluate(u + self.gamma * 2.0 * scale * u * drive, v_new)

    def _halve_after_divergence(self, loss: float) -> None:
        """Halve both steps after a divergent trial (``on_divergence="halve"``), or raise."""
        if self.on_divergence == "raise":
            raise DivergenceError(
                f"weight-normalized gradient descent diverged at iteration "
                f"{self.iteration + 1} (loss {loss:.3e}) with step_u={self.gamma:.3g}: "
                "use a smaller step_u or on_divergence='halve'")
        self.gamma, self.eta = self.gamma / 2, self.eta / 2
        self.n_halvings += 1
        if self.gamma < 1e-300:
            raise DivergenceError("step_u underflowed while halving after divergence")

    def step(self, current, *, time_left, diverged):
        """One iteration, redone with halved steps on divergence if asked; then the switch
        test of Algorithm 2."""
        while True:
            trial = self._trial(current)
            # A non-finite entry of u or v makes the loss non-finite: one test covers both.
            if not diverged(trial.loss):
                break
            self._halve_after_divergence(trial.loss)
        if self.watch_switch:
            u, u_new = current.params[0], trial.params[0]
            # the authors' first comparison is with u = 1 (their prev_u), never a switch
            base = np.ones_like(u) if self.u_step_at_old_v and self.iteration == 0 else u
            change = np.max(np.abs(u_new - base) / np.abs(base + self.switch_eps))
        self.iteration += 1
        if self.watch_switch and (change < self.switch_tol if self.switch_at is None
                                  else self.iteration >= self.switch_at):
            self.normalized_phase = self.watch_switch = False
            self.switch_iteration = self.iteration
        return trial

    def info(self) -> dict:
        return {"algorithm": self.algorithm, "switch_iteration": self.switch_iteration,
                "switch_tol": self.switch_tol, "loss_scale": self.loss_scale,
                "step_u": self.gamma, "step_v": self.eta, "direction_step": self.kappa,
                "n_step_halvings": self.n_halvings}
