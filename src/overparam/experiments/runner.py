"""Run experiments: every (cell, trial), seeded, in parallel, resumably, into a result store.

Each trial of each grid cell gets its own seed, :func:`~overparam.experiments.cell_seed` of
(experiment seed, cell parameters, trial index), so any cell reproduces alone. Trials run on one
of three backends:

``"serial"``
    One worker process, one trial at a time (``jobs=1``). :func:`run_serial` runs the trials
    in this process instead (the reference for tests).
``"process"``
    A local pool of ``jobs`` worker processes (:class:`pebble.ProcessPool`), the default for
    ``jobs > 1``. ``"loky"``, the name of the former joblib pool, is an alias.
``"dask"``
    A Dask distributed cluster: the scheduler at ``scheduler=ADDRESS`` (sweeps beyond one
    machine), or a :class:`~distributed.LocalCluster` of ``jobs`` worker processes.

A trial never takes the sweep down with it. One that raises is stored with status ``"error"``
and its traceback; one whose process dies (segmentation fault, ``os._exit``, the out-of-memory
killer) is stored as an ``"error"`` with the exit code or signal; one that runs past its time
limit (the spec's ``trial_timeout``, or ``trial_timeout=`` here) has its process killed and is
stored with status ``"timeout"``. Every trial runs in a worker process that the runner stops
when the sweep ends or is interrupted, and that the kernel kills if the driving process dies
(Linux), so no process outlives the sweep. On Dask, each worker runs its trials in a child
process of its own for the same reasons; that needs non-daemonic workers (the runner's own
LocalCluster is started so; see ``docs/experiments.md`` for an external cluster).

Trials start longest first (:func:`longest_first`: the store's recorded time of the cell, else
the spec's ``trial_seconds`` hint), so that a long trial is not started last, to run alone
while the other workers idle.

Workers only compute; the driving process writes each finished trial to the
:class:`~overparam.experiments.store.ResultStore` in its own transaction, so a sweep killed at
any point and started again skips the stored trials (see :func:`run_experiments`). Failed and
timed-out trials are retried by the next run.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._optional import require
from .spec import Experiment, get_experiment
from .store import (
    ResultStore,
    TrialRecord,
    canonical_params,
    path_inside,
    to_jsonable,
    write_csv,
)
from .workers import call_trial, dask_trial, execute_trial, failed_record, iter_pool, pickled

__all__ = [
    "DEFAULT_OUTDIR",
    "RunResult",
    "Task",
    "execute_trial",
    "longest_first",
    "plan",
    "run_experiment",
    "run_experiments",
    "run_serial",
]

logger = logging.getLogger(__name__)

#: Default folder of ``overparam run`` / ``reproduce`` outputs (CSV, figures, store, report).
DEFAULT_OUTDIR = Path("overparam-results")
#: File name of the SQLite store inside the output folder.
STORE_NAME = "results.sqlite"
BACKENDS = ("serial", "process", "dask")
#: Former names of backends, still accepted.
BACKEND_ALIASES = {"loky": "process"}


def run_serial(experiment: Experiment, *, quick: bool = False, trials: int | None = None) -> list:
    """Run every (cell, trial) in this process and return the rows.

    The reference runner for tests: no store, no pool, and an exception in a trial propagates.
    A row is ``{"params", "trial", "seed", "metrics", "time"}``.
    """
    rows = []
    for task in plan(experiment, quick=quick, trials=trials):
        start = time.perf_counter()
        metrics = call_trial(experiment.run_trial, task.params, task.seed)
        rows.append({"params": dict(task.params), "trial": task.trial, "seed": task.seed,
                     "metrics": metrics, "time": time.perf_counter() - start})
    return rows


@dataclass(frozen=True)
class Task:
    """One trial of one cell: what a worker needs besides the experiment's ``run_trial``."""

    experiment: str
    params: dict
    trial: int
    seed: int
    quick: bool

    @property
    def key(self) -> tuple[str, int]:
        return canonical_params(self.params), self.trial


def plan(experiment: Experiment, *, quick: bool = False, trials: int | None = None) -> list[Task]:
    """Every (cell, trial) of a run, in grid order, each with its seed."""
    n_trials = experiment.n_trials(quick) if trials is None else int(trials)
    if n_trials < 1:
        raise ValueError(f"trials must be at least 1, got {n_trials}")
    return [Task(experiment.name, dict(params), trial,
                 experiment.trial_seed(params, trial), bool(quick))
            for params in experiment.cells(quick) for trial in range(n_trials)]


@dataclass
class RunResult:
    """What one experiment's run produced.

    Attributes
    ----------
    experiment : Experiment
    quick : bool
    rows : list of dict
        Successful trials of the planned cells (stored earlier or now), in grid order.
    errors : list of TrialRecord
        Trials of the plan that failed (status ``"error"``, with the traceback or the cause
        of the crash) or ran out of time (status ``"timeout"``).
    n_planned, n_run, n_skipped : int
        Trials in the plan, run now, and found already finished in the store.
    run_time : float
        Summed trial time of the trials run now (s, wall time in the workers).
    cpu_time : float
        Summed CPU time of the trials run now (s).
    csv, figure : Path or None
        Files written (when an output folder was given).
    summary : dict
        ``experiment.summarize(rows)`` (empty without a summarize; ``{"error": ...}`` if it
        raised).
    plot_error : str or None
        Traceback of the plot function if it raised.
    """

    experiment: Experiment
    quick: bool
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    n_planned: int = 0
    n_run: int = 0
    n_skipped: int = 0
    run_time: float = 0.0
    cpu_time: float = 0.0
    csv: Path | None = None
    figure: Path | None = None
    summary: dict = field(default_factory=dict)
    plot_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.plot_error is None and "error" not in self.summary


def _resolve_backend(backend: str | None, jobs: int, scheduler: str | None) -> str:
    if backend is None:
        backend = "dask" if scheduler else ("serial" if jobs == 1 else "process")
    backend = BACKEND_ALIASES.get(backend, backend)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if scheduler and backend != "dask":
        raise ValueError("a scheduler address needs the dask backend")
    return backend


def _pool_size(jobs: int) -> int:
    import os

    return (os.cpu_count() or 1) if jobs == -1 else jobs


def _iter_dask(calls: Sequence[tuple[Callable, Task, float | None]], jobs: int,
               scheduler: str | None) -> Iterator[TrialRecord]:
    dask = require("dask", extra="dask")
    distributed = require("distributed", extra="dask")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    as_completed = distributed.as_completed

    cluster = None
    # Non-daemonic workers may start the child process each trial runs in (workers.py).
    with dask.config.set({"distributed.worker.daemon": False}):
        if scheduler:
            client = Client(scheduler)
        else:
            n_workers = jobs if jobs > 0 else None
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            futures = {client.submit(dask_trial, pickled(fn), task, timeout, pure=False): task
                       for fn, task, timeout in calls}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the Dask worker itself died (KilledWorker) or left
                    yield failed_record(futures[future], "error",
                                        f"the Dask worker running this trial was lost: "
                                        f"{type(exc).__name__}: {exc}"[:8000])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def run_experiments(
    experiments: Sequence[Experiment | str],
    *,
    quick: bool = False,
    trials: int | None = None,
    jobs: int = 1,
    backend: str | None = None,
    scheduler: str | None = None,
    store: ResultStore | str | Path | None = None,
    outdir: str | Path | None = None,
    fresh: bool = False,
    progress: bool = True,
    trial_timeout: float | None = None,
) -> list[RunResult]:
    """Run several experiments as one sweep (one pool, one progress bar) and store the trials.

    Parameters
    ----------
    experiments : sequence of Experiment or str
        Specs or registered names.
    quick : bool, default=False
        Run the quick grid and trial count (the CI version).
    trials : int, optional
        Trials per cell, overriding the spec's.
    jobs : int, default=1
        Parallel workers (``-1``: all cores for loky; a LocalCluster's default for dask).
    backend : {"serial", "process", "dask"}, optional
        Default: ``"dask"`` with a scheduler, ``"serial"`` for ``jobs=1``, else ``"process"``
        (``"loky"`` is accepted for ``"process"``).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``). Without it the dask backend
        starts a LocalCluster of ``jobs`` processes.
    store : ResultStore, path or None
        Where trials are stored. Trials already finished there (same experiment, cell, trial
        index and quick flag) are skipped. ``None``: a throw-away in-memory store.
    outdir : path, optional
        Folder for ``<name>.csv`` and ``<name>.png`` of each experiment (created).
    fresh : bool, default=False
        Forget the stored trials of these experiments (same quick flag) first.
    progress : bool, default=True
        Show a progress bar with the ETA (on stderr).
    trial_timeout : float, optional
        Time limit of each trial in seconds, overriding the specs' ``trial_timeout``; ``0``:
        no limit. A trial past its limit has its worker process killed and is stored with
        status ``"timeout"``.

    Returns
    -------
    list of RunResult
        One per experiment, in the given order.
    """
    exps = [get_experiment(e) if isinstance(e, str) else e for e in experiments]
    names = [e.name for e in exps]
    if len(set(names)) != len(names):
        raise ValueError(f"experiments listed twice: {names}")
    if jobs == 0 or jobs < -1:
        raise ValueError(f"jobs must be a positive number or -1, got {jobs}")
    backend = _resolve_backend(backend, jobs, scheduler)
    if trial_timeout is not None and not trial_timeout >= 0:
        raise ValueError(f"trial_timeout must be a number of seconds >= 0, got {trial_timeout}")
    own_store = not isinstance(store, ResultStore)
    db = ResultStore(":memory:" if store is None else store) if own_store else store
    try:
        return _run(exps, db, quick=quick, trials=trials, jobs=jobs, backend=backend,
                    scheduler=scheduler, outdir=outdir, fresh=fresh, progress=progress,
                    trial_timeout=trial_timeout)
    finally:
        if own_store:
            db.close()


def _run(exps, db: ResultStore, *, quick, trials, jobs, backend, scheduler, outdir, fresh,
         progress, trial_timeout) -> list[RunResult]:
    from tqdm.auto import tqdm

    plans = {e.name: plan(e, quick=quick, trials=trials) for e in exps}
    results = {e.name: RunResult(e, quick, n_planned=len(plans[e.name])) for e in exps}
    calls = []
    for exp in exps:
        if fresh:
            db.delete(exp.name, quick=quick)
        done = db.finished_keys(exp.name, quick=quick)
        todo = [t for t in plans[exp.name] if t.key not in done]
        results[exp.name].n_skipped = len(plans[exp.name]) - len(todo)
        limit = exp.trial_timeout if trial_timeout is None else trial_timeout
        calls.extend((exp.run_trial, t, limit) for t in todo)
    calls = longest_first(calls, {e.name: e for e in exps}, db)

    run_id = db.start_run(list(results), quick=quick, backend=backend, jobs=jobs,
                          n_planned=len(calls))
    start = time.perf_counter()
    n_errors = 0
    desc = exps[0].name if len(exps) == 1 else f"{len(exps)} experiments"
    # In a log file (CI) a bar redrawn ten times a second would flood it: redraw rarely there.
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    bar = tqdm(total=len(calls), desc=desc, unit="trial", disable=not progress or not calls,
               dynamic_ncols=True, mininterval=0.1 if interactive else 15.0)
    if backend == "dask" and calls:
        stream = _iter_dask(calls, jobs, scheduler)
    else:  # serial: a pool of one worker, so that a crashing trial cannot end the sweep
        stream = iter_pool(calls, 1 if backend == "serial" else _pool_size(jobs))
    try:
        for record in stream:
            record.run_id = run_id
            db.add(record)  # one transaction per trial: nothing finished is lost on a kill
            result = results[record.experiment]
            result.n_run += 1
            result.run_time += record.time
            result.cpu_time += record.cpu_time or 0.0
            if record.status != "ok":
                n_errors += 1
                logger.warning("trial failed: %s %s trial %d\n%s", record.experiment,
                               record.params, record.trial, record.error)
                bar.set_postfix(errors=n_errors)
            bar.update()
    finally:
        bar.close()
        if hasattr(stream, "close"):
            stream.close()
        db.finish_run(run_id, wall_time=time.perf_counter() - start,
                      n_run=sum(r.n_run for r in results.values()), n_errors=n_errors)

    for exp in exps:
        _collect(results[exp.name], plans[exp.name], db, outdir)
    return [results[e.name] for e in exps]


def longest_first(calls: list, experiments: dict, db: ResultStore) -> list:
    """The calls ordered by expected trial time, longest first (stable: grid order on ties).

    A sweep on ``jobs`` workers ends no sooner than its longest trial; started last, a long
    trial runs alone while the other workers idle. The expected time of a trial is the longest
    time recorded in the store for its cell (any trial index or status), else the spec's
    ``trial_seconds`` hint, else 0. Results do not depend on the order: every trial has its
    own seed and is stored under its own key.
    """
    recorded = {}

    def expected(call) -> float:
        task = call[1]
        if (task.experiment, task.quick) not in recorded:
            recorded[task.experiment, task.quick] = db.cell_times(task.experiment,
                                                                  quick=task.quick)
        cell = canonical_params(task.params)
        times = recorded[task.experiment, task.quick]
        if cell in times:
            return times[cell]
        return experiments[task.experiment].expected_trial_seconds(task.params, task.quick)

    return sorted(calls, key=lambda call: -expected(call))


def _collect(result: RunResult, tasks: list[Task], db: ResultStore,
             outdir: str | Path | None) -> None:
    """Gather the plan's stored rows, then write the CSV and figure and compute the summary."""
    exp = result.experiment
    stored = {(canonical_params(r.params), r.trial): r
              for r in db.records(exp.name, quick=result.quick)}
    for task in tasks:
        record = stored.get(task.key)
        if record is None:
            continue
        if record.status == "ok":
            row = record.as_row()
            row["params"] = dict(task.params)  # the spec's own values (tuples stay tuples)
            result.rows.append(row)
        else:
            result.errors.append(record)
    figure = None if outdir is None else path_inside(outdir, f"{exp.name}.png")
    result.summary, result.plot_error = summarize_and_plot(exp, result.rows, figure)
    if outdir is not None:
        result.csv = write_csv(path_inside(outdir, f"{exp.name}.csv"), result.rows)
        if result.plot_error is None and exp.plot is not None and result.rows:
            result.figure = figure


def summarize_and_plot(exp: Experiment, rows: list,
                       figure: Path | None) -> tuple[dict, str | None]:
    """``exp.summarize(rows)`` and ``exp.plot(rows, figure)``, each guarded.

    Returns ``(summary, plot_error)``; a raising summarize gives ``{"error": traceback}``.
    Nothing is drawn without rows or without a path.
    """
    summary: dict = {}
    plot_error = None
    if exp.summarize is not None and rows:
        try:
            summary = to_jsonable(dict(exp.summarize(rows)))
        except Exception:
            summary = {"error": traceback.format_exc()[-4000:]}
            logger.warning("summarize of %s failed:\n%s", exp.name, summary["error"])
    if figure is not None and exp.plot is not None and rows:
        figure.parent.mkdir(parents=True, exist_ok=True)
        try:
            exp.plot(rows, figure)
            if not figure.exists():
                raise RuntimeError(f"plot of {exp.name} wrote no file at {figure}")
        except Exception:
            plot_error = traceback.format_exc()[-4000:]
            logger.warning("plot of %s failed:\n%s", exp.name, plot_error)
        finally:
            _close_pyplot_figures()
    return summary, plot_error


def _close_pyplot_figures() -> None:
    # Specs that draw with pyplot leave figures open; a long reproduction would pile them up.
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def run_experiment(experiment: Experiment | str, **kwargs) -> RunResult:
    """Run one experiment; the keywords are those of :func:`run_experiments`."""
    return run_experiments([experiment], **kwargs)[0]
