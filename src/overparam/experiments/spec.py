"""Declarative experiment specs and their registry.

An experiment reproduces one figure or table of a paper. It is data, not a script: a parameter
grid (and a smaller quick grid for CI), a number of trials, a seed, a function that runs one
trial of one grid cell, a plot, a summary, and the paper's claim in words. The runner
(:mod:`overparam.experiments.runner`) does the looping, seeding, parallelism, storage and CSV.

Spec modules live in :mod:`overparam.experiments.papers`; every module there is imported on
first use of the registry, so adding an experiment touches no shared file. Each experiment
declares its paper's claims as :class:`Claim` checks of the stored numbers with a tolerance;
the report turns them into a :class:`Verdict` each.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import pkgutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

__all__ = [
    "Claim",
    "Experiment",
    "NotEvaluated",
    "Outcome",
    "Verdict",
    "aggregate",
    "cell_seed",
    "declare_claims",
    "format_number",
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
        The paper's claim in words, shown beside the measured result in the report. Its
        machine-checked form, one :class:`Claim` per checkable statement, is attached with
        :func:`declare_claims` and read back from :attr:`claims`.
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
    trial_seconds : float or callable, optional
        Rough time of one full-grid trial on one core (s), or ``trial_seconds(params)`` per
        cell. Only scheduling reads it: the runner starts the longest trials first, so that
        one long trial does not start last and hold the sweep alone (its store's recorded
        times, when it has any for a cell, take precedence).
    seed_params : callable, optional
        ``seed_params(params) -> dict``: the parameters a cell's trial seeds are derived from
        (default: all of the cell's). Cells that differ only in how a problem is solved (e.g.
        which init) map to the same parameters, so their trials solve the same problems.
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
    trial_seconds: float | Callable[[dict], float] | None = None
    seed_params: Callable[[dict], dict] | None = None

    def trial_seed(self, params: Mapping, trial: int) -> int:
        """The seed of trial ``trial`` of the cell ``params`` (:func:`cell_seed` of
        :attr:`seed_params`)."""
        keyed = dict(params) if self.seed_params is None else self.seed_params(dict(params))
        return cell_seed(self.seed, keyed, trial)

    def expected_trial_seconds(self, params: dict, quick: bool = False) -> float:
        """The ``trial_seconds`` hint for one cell; 0 without a hint and in quick runs."""
        if quick or self.trial_seconds is None:
            return 0.0
        if callable(self.trial_seconds):
            return float(self.trial_seconds(dict(params)))
        return float(self.trial_seconds)

    def cells(self, quick: bool = False) -> list[dict]:
        """Grid cells (dicts of parameters) of the full or the quick run."""
        return grid_cells(self.quick_grid if quick and self.quick_grid is not None else self.grid)

    def n_trials(self, quick: bool = False) -> int:
        return self.quick_trials if quick else self.trials

    @property
    def claims(self) -> tuple[Claim, ...]:
        """The machine-checked claims declared for this experiment (:func:`declare_claims`)."""
        return _CLAIMS.get(self.name, ())


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


# ---------------------------------------------------------------------------------------------
# Claims: a paper's statement as a check of the stored numbers, with a tolerance.


class Verdict(StrEnum):
    """How far a claim holds in the stored numbers."""

    REPRODUCED = "reproduced"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"
    NOT_EVALUATED = "not evaluated"


class NotEvaluated(Exception):
    """Raised by a claim's ``measure`` when the rows cannot decide it (the message says why)."""


@dataclass(frozen=True)
class Outcome:
    """A claim's verdict with the measured value it rests on and a readable detail."""

    verdict: Verdict
    measured: float | None = None
    detail: str = ""


_OPS = ("<=", ">=", "==")


@dataclass(frozen=True)
class Claim:
    """One checkable statement of a paper, decided from an experiment's stored rows.

    ``measure(rows, summary)`` returns one number (or ``(number, detail)``) that the claim is
    about, e.g. a fitted slope or a per-cell gap; it raises :class:`NotEvaluated` when the rows
    cannot decide (too few trials in the quick run, say). The number is compared with
    ``target``: the claim is *reproduced* when ``measured op target`` holds within
    ``tolerance``, *partly* when it holds within ``partly`` (a looser band), *not reproduced*
    otherwise.

    Parameters
    ----------
    name : str
        Short id, unique within the experiment.
    statement : str
        The claim in words, with its tolerance (shown in the report).
    measure : callable
        ``measure(rows, summary) -> float | (float, str)``.
    op : {"<=", ">=", "=="}
        ``"<="``: measured ≤ target + tolerance; ``">="``: measured ≥ target − tolerance;
        ``"=="``: |measured − target| ≤ tolerance.
    target : float
    tolerance : float, default=0
    partly : float, optional
        Looser tolerance for a *partly* verdict (default: none, so no *partly*).
    unit : str, default=""
        Unit of the measured value ("dB", "s"), shown beside it.
    min_rows : int, default=1
        Fewer stored rows than this give *not evaluated*.
    cause : str, default=""
        Known cause of a deviation from the paper (a setting, a reading of the paper), shown
        when the verdict is not *reproduced*.
    """

    name: str
    statement: str
    measure: Callable[[Sequence[Row], Mapping], float | tuple[float, str]]
    op: str = "<="
    target: float = 0.0
    tolerance: float = 0.0
    partly: float | None = None
    unit: str = ""
    min_rows: int = 1
    cause: str = ""

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {_OPS}, got {self.op!r}")
        if self.tolerance < 0 or (self.partly is not None and self.partly < self.tolerance):
            raise ValueError("need 0 <= tolerance <= partly")

    def excess(self, measured: float) -> float:
        """How far ``measured`` is on the wrong side of ``target`` (≤ 0: it holds exactly)."""
        if self.op == "<=":
            return measured - self.target
        if self.op == ">=":
            return self.target - measured
        return abs(measured - self.target)

    def evaluate(self, rows: Sequence[Row], summary: Mapping | None = None) -> Outcome:
        """The verdict on ``rows`` (and their ``summarize`` output), never raising."""
        if len(rows) < self.min_rows:
            return Outcome(Verdict.NOT_EVALUATED,
                           detail=f"trials stored: {len(rows)}, needed: {self.min_rows}")
        try:
            value = self.measure(rows, summary or {})
        except NotEvaluated as exc:
            return Outcome(Verdict.NOT_EVALUATED, detail=str(exc))
        except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
            return Outcome(Verdict.NOT_EVALUATED,
                           detail=f"check failed: {type(exc).__name__}: {exc}")
        detail = ""
        if isinstance(value, tuple):
            value, detail = value
        if value is None or not math.isfinite(float(value)):
            return Outcome(Verdict.NOT_EVALUATED, None if value is None else float(value),
                           detail or "no finite value measured")
        value = float(value)
        # Bounds are inclusive; the slack absorbs rounding (0.8 - 0.5 > 0.3 in floats).
        excess = self.excess(value) - 1e-9 * max(1.0, abs(self.target))
        if excess <= self.tolerance:
            verdict = Verdict.REPRODUCED
        elif self.partly is not None and excess <= self.partly:
            verdict = Verdict.PARTLY
        else:
            verdict = Verdict.NOT_REPRODUCED
        return Outcome(verdict, value, detail)

    @property
    def criterion(self) -> str:
        """The test as bounds, e.g. ``"≤ 0.05 (partly ≤ 0.15)"`` or ``"-0.5 ± 0.1"``."""
        unit = f" {self.unit}" if self.unit else ""

        def bound(slack):
            if self.op == "==":
                return f"{format_number(self.target)} ± {format_number(slack)}{unit}"
            sign = 1 if self.op == "<=" else -1
            return (f"{'≤' if sign > 0 else '≥'} "
                    f"{format_number(self.target + sign * slack)}{unit}")

        text = bound(self.tolerance)
        if self.partly is not None:
            text += (f" (partly ± {format_number(self.partly)})" if self.op == "==" else
                     f" (partly {bound(self.partly)})")
        return text


_CLAIMS: dict[str, tuple[Claim, ...]] = {}


def declare_claims(experiment: Experiment | str, *claims: Claim) -> tuple[Claim, ...]:
    """Attach machine-checked claims to an experiment (by object or name); returns them.

    Declaring again replaces the experiment's claims (a module imported twice stays right).
    """
    name = experiment if isinstance(experiment, str) else experiment.name
    names = [c.name for c in claims]
    if len(set(names)) != len(names):
        raise ValueError(f"claims of {name!r} have repeated names: {names}")
    _CLAIMS[name] = tuple(claims)
    return _CLAIMS[name]


# --- Measures shared by the papers' claims ----------------------------------------------------


def values(rows: Sequence[Row], metric: str, where: Mapping | None = None) -> np.ndarray:
    """The scalar ``metric`` of the rows whose parameters match ``where`` (floats)."""
    where = dict(where or {})
    out = [float(r["metrics"][metric]) for r in rows
           if metric in r["metrics"] and r["metrics"][metric] is not None
           and all(r["params"].get(k) == v for k, v in where.items())]
    return np.asarray(out, dtype=float)


def median_of(rows: Sequence[Row], metric: str, where: Mapping | None = None) -> float:
    """Median of a metric over the matching rows; :class:`NotEvaluated` when none match."""
    v = values(rows, metric, where)
    if v.size == 0:
        raise NotEvaluated(f"no stored value of {metric!r}" + (f" where {dict(where)}"
                                                                if where else ""))
    return float(np.median(v))


def share(rows: Sequence[Row], predicate: Callable[[Mapping], bool],
          where: Mapping | None = None) -> tuple[float, str]:
    """Fraction of matching rows whose metrics satisfy ``predicate``, with ``"k of n trials"``."""
    where = dict(where or {})
    kept = [r for r in rows if all(r["params"].get(k) == v for k, v in where.items())]
    if not kept:
        raise NotEvaluated("no matching trials")
    hits = sum(bool(predicate(r["metrics"])) for r in kept)
    return hits / len(kept), f"{hits} of {len(kept)} trials"


def summary_value(key: str) -> Callable[[Sequence[Row], Mapping], float]:
    """A ``measure`` that reads the number ``summary[key]`` (not evaluated when absent)."""
    def measure(rows, summary):
        if key not in summary:
            raise NotEvaluated(f"the summary has no {key!r}")
        return float(summary[key])

    return measure


def mean_cell_gap(rows: Sequence[Row], metric: str, reference: str, by: Sequence[str],
                  where: Mapping | None = None) -> tuple[float, str]:
    """Mean over the cells (grouped by ``by``) of ``|mean metric − mean reference|``."""
    where = dict(where or {})
    kept = [r for r in rows if all(r["params"].get(k) == v for k, v in where.items())]
    ref = {tuple(c[k] for k in by): c["mean"] for c in aggregate(kept, by, reference)}
    gaps = [abs(c["mean"] - ref[key]) for c in aggregate(kept, by, metric)
            if (key := tuple(c[k] for k in by)) in ref]
    if not gaps:
        raise NotEvaluated(f"no cell has both {metric!r} and {reference!r}")
    return float(np.mean(gaps)), f"over {len(gaps)} cells, largest {format_number(max(gaps))}"


# --- Numbers for people -----------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_number(value, unit: str = "", digits: int = 3) -> str:
    """A number as a person reads it: ``digits`` significant figures, no float noise.

    Integers print in full; floats between 1e-3 and 1e5 in positional notation
    (``0.0123``, ``1230``), others as ``1.23 × 10⁻⁵``; NaN as ``NaN``, infinities as ``∞``;
    ``None`` as ``—``; booleans as ``yes``/``no``. ``unit`` is appended after a space.
    """
    suffix = f" {unit}" if unit else ""
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value)}{suffix}"
    if not isinstance(value, float | np.floating):
        return f"{value}{suffix}"
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return ("∞" if x > 0 else "−∞") + suffix
    if x == 0:
        return f"0{suffix}"
    if 1e-3 <= abs(x) < 1e5:
        text = np.format_float_positional(x, precision=digits, unique=False, fractional=False,
                                          trim="-")
    else:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    return text + suffix
