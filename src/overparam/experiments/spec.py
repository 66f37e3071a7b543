"""Declarative experiment specs and their registry.

An experiment reproduces one figure or table of a paper. It is data, not a script: a parameter
grid (and a smaller quick grid for CI), a number of trials, a seed, a function that runs one
trial of one grid cell, a plot, a summary, and the paper's claim in words. The runner
(:mod:`overparam.experiments.runner`) does the looping, seeding, parallelism, storage and CSV.

Spec modules live in :mod:`overparam.experiments.papers`; every module there is imported on
first use of the registry, so adding an experiment touches no shared file.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import pkgutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Experiment",
    "aggregate",
    "cell_seed",
    "get_experiment",
    "grid_cells",
    "list_experiments",
    "register",
]

#: A stored trial: ``{"params": {...}, "trial": int, "seed": int, "metrics": {...}, "time": s}``.
Row = dict


@dataclass(frozen=True)
class Experiment:
    """One reproducible figure or table.

    Parameters
    ----------
    name : str
        Unique id used on the command line, e.g. ``"sparse-phase-transition"``.
    paper : str
        Short paper id (the file stem in ``shared/papers``), e.g. ``"more-is-less"``.
    figure : str
        What it reproduces, e.g. ``"Fig. 1-3"``.
    claim : str
        The paper's claim in words, shown beside the measured result in the report.
    grid : mapping of str to sequence
        Full parameter grid; the cells are the Cartesian product.
    run_trial : callable
        ``run_trial(params: dict, seed: int) -> dict`` of metrics. Values are numbers or
        (short) lists of numbers such as a curve; everything must be JSON-serializable.
    trials : int
        Trials per cell in the full run.
    quick_grid : mapping, optional
        Grid for the quick (CI) run; defaults to ``grid``.
    quick_trials : int, default=2
        Trials per cell in the quick run.
    plot : callable, optional
        ``plot(rows, path)`` writes a PNG figure of the stored rows to ``path``.
    summarize : callable, optional
        ``summarize(rows) -> dict`` of headline numbers (e.g. a fitted slope) for the report.
    seed : int, default=0
        Base seed; each (cell, trial) gets its own seed from it (see :func:`cell_seed`).
    description : str, default=""
        What the experiment does, for ``overparam experiments list``.
    trial_timeout : float or None, default=3600
        Time limit of one trial in seconds (``None``: none). The runner kills a trial past it
        and stores it with status ``"timeout"``; ``overparam run --trial-timeout`` overrides.
    """

    name: str
    paper: str
    figure: str
    claim: str
    grid: Mapping[str, Sequence]
    run_trial: Callable[[dict, int], dict]
    trials: int
    quick_grid: Mapping[str, Sequence] | None = None
    quick_trials: int = 2
    plot: Callable[[list, Path], None] | None = None
    summarize: Callable[[list], dict] | None = None
    seed: int = 0
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    trial_timeout: float | None = 3600.0

    def cells(self, quick: bool = False) -> list[dict]:
        """Grid cells (dicts of parameters) of the full or the quick run."""
        return grid_cells(self.quick_grid if quick and self.quick_grid is not None else self.grid)

    def n_trials(self, quick: bool = False) -> int:
        return self.quick_trials if quick else self.trials


_REGISTRY: dict[str, Experiment] = {}
_LOADED = False
#: Spec modules that failed to import, with the error (shown by the CLI).
LOAD_ERRORS: dict[str, str] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry (names must be unique)."""
    if experiment.name in _REGISTRY and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    from . import papers

    for mod in pkgutil.iter_modules(papers.__path__):
        try:
            importlib.import_module(f"{papers.__name__}.{mod.name}")
        except Exception as exc:  # one broken spec module must not hide all the others
            LOAD_ERRORS[mod.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"experiments in papers/{mod.name}.py not loaded: {exc}",
                          RuntimeWarning, stacklevel=2)
    _LOADED = True


def list_experiments() -> list[Experiment]:
    """All registered experiments, sorted by paper then name."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda e: (e.paper, e.name))


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; see `overparam experiments list` "
            f"(known: {', '.join(sorted(_REGISTRY))})"
        ) from None


def grid_cells(grid: Mapping[str, Sequence]) -> list[dict]:
    """Cartesian product of a grid as a list of parameter dicts (keys in grid order)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(list(grid[k]) for k in keys))]


def cell_seed(base_seed: int, params: Mapping, trial: int) -> int:
    """A seed that depends only on (base seed, cell parameters, trial index).

    Any cell can therefore be re-run alone and reproduce the same numbers, whatever grid it
    was part of and in whatever order the cells ran.
    """
    key = json.dumps({"seed": base_seed, "params": dict(params), "trial": trial},
                     sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


_STATS = ("mean", "sd", "median", "q25", "q75", "count")


def _order(value):
    # Sort keys of mixed types (None, numbers, strings) without comparing across types.
    if value is None:
        return (0, 0)
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return (1, float(value))
    return (2, str(value))


def aggregate(rows: Sequence[Row], by: Sequence[str], metric: str) -> list[dict]:
    """Per-group statistics of a scalar metric: mean, sd, median, quartiles, count.

    Parameters
    ----------
    rows : sequence of Row
    by : sequence of str
        Parameter names to group by (none may be called like a statistic).
    metric : str
        Metric name.

    Returns
    -------
    list of dict
        One dict per group, sorted by the group keys, with the ``by`` values and
        ``mean, sd, median, q25, q75, count``.
    """
    clash = set(by) & set(_STATS)
    if clash:
        raise ValueError(f"cannot group by {sorted(clash)}: the names of statistics")
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        key = tuple(row["params"].get(k) for k in by)
        value = row["metrics"].get(metric)
        if value is not None:
            groups.setdefault(key, []).append(float(value))
    out = []
    for key in sorted(groups, key=lambda k: tuple(_order(v) for v in k)):
        v = np.asarray(groups[key])
        out.append({**dict(zip(by, key, strict=True)), "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                    "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                    "q75": float(np.quantile(v, 0.75)), "count": int(v.size)})
    return out
