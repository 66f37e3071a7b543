"""Declarative experiments reproducing the papers' figures, their runner and report."""

from .spec import (
    Experiment,
    aggregate,
    cell_seed,
    get_experiment,
    grid_cells,
    list_experiments,
    register,
)

__all__ = [
    "Experiment",
    "aggregate",
    "cell_seed",
    "get_experiment",
    "grid_cells",
    "list_experiments",
    "register",
]
