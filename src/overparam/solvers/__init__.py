"""Solvers: gradient descent with step policies, and the result they return."""

from .gradient_descent import gradient_descent
from .group import initial_group_params, weight_normalized_gd
from .loop import Iterate, SolverStep, run_loop
from .low_rank import (
    FixedMeasurements,
    GaussianStream,
    factorized_sgd,
    perturbed_gradient_descent,
)
from .mmv import BatchResult, ir_mmv
from .result import History, SolverResult
from .sparse.flow import (
    HadamardDual,
    HadamardDualMap,
    HadamardFlowPath,
    NewtonConvergenceError,
    hadamard_flow,
    hadamard_newton,
)
from .sparse.krylov_newton import hadamard_limit, hadamard_newton_cg
from .spectral import aligned_spectral_flow, aligned_spectral_gd, spectral_gd
from .steps import AdaptiveStep, ConstantStep, StepPolicy, as_step_policy

__all__ = [
    "AdaptiveStep",
    "BatchResult",
    "ConstantStep",
    "History",
    "SolverResult",
    "StepPolicy",
    "as_step_policy",
    "gradient_descent",
    "ir_mmv",
]
__all__ += ["initial_group_params", "weight_normalized_gd"]
__all__ += ["aligned_spectral_flow", "aligned_spectral_gd", "spectral_gd"]
__all__ += ["FixedMeasurements", "GaussianStream", "factorized_sgd",
            "perturbed_gradient_descent"]
__all__ += ["HadamardDual", "HadamardDualMap", "HadamardFlowPath", "NewtonConvergenceError",
            "hadamard_flow", "hadamard_newton"]
__all__ += ["hadamard_limit", "hadamard_newton_cg"]
__all__ += ["Iterate", "SolverStep", "run_loop"]
