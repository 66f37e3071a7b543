"""Gradient descent for spectral neural networks: the aligned (closed-form) and general solvers."""

from __future__ import annotations

import time

import numpy as np
from scipy.integrate import solve_ivp

from .._validation import check_positive, check_random_state
from ..operators.spectral import AlignedSpectralOperator
from ..parameterizations.spectral import (
    AlignedSpectralNetwork,
    SpectralNetwork,
    warn_if_discontinuous,
)
from ..stopping import DivergenceError, StoppingRule, StopReason
from .gradient_descent import gradient_descent
from .loop import private_validation
from .result import History, SolverResult

__all__ = ["aligned_spectral_flow", "aligned_spectral_gd", "spectral_gd"]


def _lifted_validation(validation, lift):
    """A copy of ``validation`` that reads the aligned solver's diagonal ``s`` as the matrix
    ``lift(s) = Phi Diag(s) Psi^T`` that its held-out operator measures."""
    lifted = private_validation(validation)
    error = validation.error
    lifted.error = lambda s: error(lift(s))
    return lifted


def _aligned_setup(operator, n_components, activation, init, init_scale, random_state):
    if not isinstance(operator, AlignedSpectralOperator):
        raise TypeError("the aligned solver needs an AlignedSpectralOperator; use spectral_gd "
                        f"for general sensing matrices (got {type(operator).__name__})")
    param = AlignedSpectralNetwork(operator.rank, n_components, activation)
    rng = check_random_state(random_state)
    if isinstance(init, str):
        if init == "small":
            return param, param.init(init_scale, rng)
        if init == "paper":
            return param, param.paper_init(rng)
        raise ValueError(f"init must be 'small', 'paper' or (alpha, u, v), got {init!r}")
    init_params = tuple(np.array(p, dtype=float) for p in init)
    if (len(init_params) != 3 or init_params[0].shape != (n_components,)
            or init_params[1].shape != (n_components, operator.rank)
            or init_params[2].shape != (n_components, operator.rank)):
        raise ValueError(f"init must be (alpha, u, v) with shapes ({n_components},), "
                         f"({n_components}, {operator.rank}) and the same")
    return param, init_params


def aligned_spectral_gd(
    operator: AlignedSpectralOperator,
    y,
    *,
    n_components: int = 2,
    activation="tanh",
    init="small",
    init_scale: float = 1e-4,
    step="adaptive",
    loss_weight: float = 1.0,
    stopping: StoppingRule | None = None,
    history: History | None = None,
    validation=None,
    random_state=0,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Gradient descent on an SNN in the aligned case, on the diagonals (Theorem 1 of the paper).

    With sensing matrices ``A_i = Phi Abar_i Psi^T`` and the spectral init of Assumption 2,
    the factors stay ``U_k = Phi Diag(u_k) G``, ``V_k = Psi Diag(v_k) G``, so gradient descent
    on the full network equals gradient descent on ``(alpha, u, v)`` with the measurements
    ``y = B^T s``, ``s = sum_k alpha_k gamma(u_k o v_k)``. This costs ``O(m r K)`` per
    iteration instead of ``K`` SVDs. Steps, divergence checks, stopping rules and validation
    are those of :func:`~overparam.solvers.gradient_descent`.

    Parameters
    ----------
    operator : AlignedSpectralOperator
    y : ndarray of shape (m,)
    n_components : int, default=2
        Number ``K`` of spectral neurons.
    activation : str, Activation or (callable, callable), default="tanh"
        Applied to the signed diagonal entries ``u_k o v_k``.
    init : {"small", "paper"} or tuple, default="small"
        ``"small"``: diagonals ``init_scale * (1 + 0.01 eps)``, ``alpha`` uniform on [0, 1];
        ``"paper"``: the paper's Sec. 5.1 init (diagonals and ``alpha`` uniform on [0, 1],
        diagonals sorted decreasing); or explicit ``(alpha, u, v)`` with ``u, v`` of shape
        ``(K, r)``.
    init_scale : float, default=1e-4
    step, loss_weight, stopping, callback, progress
        As :func:`~overparam.solvers.gradient_descent`.
    history : History, optional
        Its ``quantities`` are called as ``f(params, s)`` with ``s`` the diagonal (the
        singular values of ``X`` up to sign); ``truth`` is compared with ``s`` as well, so
        pass ``operator.to_diagonal(X_true)`` or leave it out.
    validation : Validation, optional
        Held-out measurements (an operator acting on matrices); see
        :class:`~overparam.stopping.Validation`.
    random_state : None, int or Generator, default=0
        Seeds the init.

    Returns
    -------
    SolverResult
        ``coef`` is the matrix ``Phi Diag(s) Psi^T``; ``params`` are ``(alpha, u, v)``;
        ``info["diagonal"]`` is ``s``.
    """
    param, init_params = _aligned_setup(operator, n_components, activation, init, init_scale,
                                        random_state)
    lifted = None if validation is None else _lifted_validation(validation,
                                                                 operator.from_diagonal)
    result = gradient_descent(param, operator.diagonal_operator(), y, init_params=init_params,
                              step=step, loss_weight=loss_weight, stopping=stopping,
                              history=history, validation=lifted, callback=callback,
                              progress=progress)
    diagonal = result.coef
    result.coef = operator.from_diagonal(diagonal)
    result.info["diagonal"] = diagonal
    result.info["solver"] = "aligned"
    return result


def aligned_spectral_flow(
    operator: AlignedSpectralOperator,
    y,
    *,
    n_components: int = 2,
    activation="tanh",
    init="small",
    init_scale: float = 1e-4,
    t_max: float = 1e6,
    n_points: int = 100,
    loss_weight: float = 1.0,
    method: str = "LSODA",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    random_state=0,
) -> SolverResult:
    """The gradient flow of an aligned SNN, integrated by a stiff ODE solver (scipy).

    Integrates ``d theta / dt = -grad L(theta)``, ``L = loss_weight/2 ||B^T s(theta) - y||^2``,
    on the diagonals ``theta = (alpha, u, v)`` (the gradient of Theorem 1) with
    :func:`scipy.integrate.solve_ivp`. The flow is stiff (fast directions next to slow ones,
    e.g. where ``tanh`` saturates), so small-step gradient descent needs millions of steps to
    reach its limit; an implicit / automatic-switching integrator (``"LSODA"``, ``"BDF"``,
    ``"Radau"``) takes large steps in the slow phase. This is the paper's object of study
    (Theorems 2-3), and the reference path that small-step gradient descent follows.

    Parameters
    ----------
    operator : AlignedSpectralOperator
    y : ndarray of shape (m,)
    n_components, activation, init, init_scale, random_state
        As :func:`aligned_spectral_gd`.
    t_max : float, default=1e6
        Final time, on the solver clock of :mod:`overparam.stopping` (the time of the flow of
        the mean loss ``1/(2m) ||A x - y||^2``; the flow of ``L`` itself runs for
        ``t_max / (loss_weight m)``).
    n_points : int, default=100
        Times (geometrically spaced, plus 0) at which the path is returned.
    loss_weight : float, default=1.0
    method : str, default="LSODA"
        A :func:`scipy.integrate.solve_ivp` method.
    rtol, atol : float
        Integration tolerances.

    Returns
    -------
    SolverResult
        ``coef = Phi Diag(s(t_max)) Psi^T``; ``params`` at ``t_max``; ``n_iter`` counts the
        right-hand-side evaluations; ``info`` holds ``times`` (clock), ``path`` (the diagonals
        ``s`` at those times, shape ``(n_points + 1, r)``), ``path_loss`` and ``diagonal``.
    """
    check_positive(t_max, "t_max")
    check_positive(loss_weight, "loss_weight")
    check_positive(n_points, "n_points", integer=True)
    param, init_params = _aligned_setup(operator, n_components, activation, init, init_scale,
                                        random_state)
    Bt = operator.diagonal_operator().matrix
    y = np.asarray(y, dtype=float)
    if y.shape != (operator.n_measurements,):
        raise ValueError(f"y must have shape ({operator.n_measurements},), got {y.shape}")
    K, r = n_components, operator.rank
    sizes = np.cumsum([K, K * r])

    def unpack(theta):
        a, u, v = np.split(theta, sizes)
        return (a, u.reshape(K, r), v.reshape(K, r))

    def rhs(_, theta):
        params = unpack(theta)
        grad_s = loss_weight * (Bt.T @ (Bt @ param.signal(params) - y))
        return -np.concatenate([g.ravel() for g in param.vjp(params, grad_s)])

    per_clock = 1.0 / (loss_weight * y.shape[0])  # flow time of L per unit of the clock
    t_end = t_max * per_clock
    times = np.concatenate([[0.0], np.geomspace(min(1e-3, t_end), t_end, n_points)])
    times = np.unique(np.minimum(times, t_end))
    theta0 = np.concatenate([p.ravel() for p in init_params])
    start = time.perf_counter()
    sol = solve_ivp(rhs, (0.0, t_end), theta0, method=method, t_eval=times, rtol=rtol,
                    atol=atol)
    wall = time.perf_counter() - start
    if not sol.success or not np.all(np.isfinite(sol.y)):
        raise DivergenceError(f"the ODE solver failed: {sol.message}")
    path = np.array([param.signal(unpack(th)) for th in sol.y.T])
    residuals = path @ Bt.T - y
    losses = 0.5 * loss_weight * np.sum(residuals**2, axis=1)
    params = unpack(sol.y[:, -1])
    info = {"times": sol.t / per_clock, "path": path, "path_loss": losses,
            "diagonal": path[-1], "final_loss": float(losses[-1]), "time": t_max,
            "clock": "flow_time", "solver": "aligned-flow", "method": method}
    return SolverResult(coef=operator.from_diagonal(path[-1]), params=params, n_iter=sol.nfev,
                        wall_time=wall, stop_reason=StopReason.END_OF_TIME, info=info)


def spectral_gd(
    operator,
    y,
    *,
    n_components: int = 2,
    activation="tanh",
    width: int | None = None,
    init_scale: float = 1e-4,
    init_params=None,
    alpha_init="uniform",
    step="adaptive",
    loss_weight: float = 1.0,
    stopping: StoppingRule | None = None,
    history: History | None = None,
    validation=None,
    random_state=0,
    callback=None,
    progress: bool = False,
) -> SolverResult:
    """Gradient descent on a general SNN ``X = sum_k alpha_k Gamma(U_k V_k^T)``, any operator.

    The gradient differentiates the singular-value function (see
    :func:`~overparam.parameterizations.spectral.singular_value_function_vjp`), so it holds
    for arbitrary sensing matrices. The default init is the paper's Sec. 5.2 one: diagonal
    factors ``init_scale * (1 + 0.01 eps)``.

    Parameters
    ----------
    operator : Operator
        Measures ``(n1, n2)`` matrices.
    y : ndarray of shape (m,)
    n_components, activation, width, alpha_init
        See :class:`~overparam.parameterizations.SpectralNetwork`.
    init_scale : float, default=1e-4
    init_params : tuple, optional
        Explicit ``(alpha, U, V)`` (e.g. from ``SpectralNetwork.spectral_init``).
    step, loss_weight, stopping, history, validation, callback, progress
        As :func:`~overparam.solvers.gradient_descent`.
    random_state : None, int or Generator, default=0
        Seeds the init.

    Returns
    -------
    SolverResult
    """
    shape = tuple(operator.input_shape)
    if len(shape) != 2:
        raise ValueError(f"the SNN recovers matrices; the operator measures shape {shape}")
    param = SpectralNetwork(shape[0], shape[1], n_components=n_components, width=width,
                            activation=activation, alpha_init=alpha_init)
    warn_if_discontinuous(param.activation)
    result = gradient_descent(param, operator, y, init_scale=init_scale, init_params=init_params,
                              step=step, loss_weight=loss_weight, stopping=stopping,
                              history=history, validation=validation,
                              random_state=random_state, callback=callback, progress=progress)
    result.info["solver"] = "general"
    return result
