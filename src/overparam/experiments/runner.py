"""Run an experiment's cells and trials. (Serial reference runner; see the runner issue.)"""

from __future__ import annotations

import time

from .spec import Experiment, cell_seed

__all__ = ["run_serial"]


def run_serial(experiment: Experiment, *, quick: bool = False, trials: int | None = None) -> list:
    """Run every (cell, trial) in this process and return the rows."""
    n_trials = experiment.n_trials(quick) if trials is None else trials
    rows = []
    for params in experiment.cells(quick):
        for trial in range(n_trials):
            seed = cell_seed(experiment.seed, params, trial)
            start = time.perf_counter()
            metrics = experiment.run_trial(dict(params), seed)
            rows.append({"params": dict(params), "trial": trial, "seed": seed,
                         "metrics": metrics, "time": time.perf_counter() - start})
    return rows
