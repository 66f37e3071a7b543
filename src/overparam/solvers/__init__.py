"""Solvers: gradient descent with step policies, and the result they return."""

from .gradient_descent import gradient_descent
from .result import History, SolverResult
from .steps import AdaptiveStep, ConstantStep, StepPolicy, as_step_policy

__all__ = [
    "AdaptiveStep",
    "ConstantStep",
    "History",
    "SolverResult",
    "StepPolicy",
    "as_step_policy",
    "gradient_descent",
]
