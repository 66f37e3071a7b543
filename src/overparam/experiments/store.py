"""SQLite store of experiment results: one row per trial, written in transactions.

A trial is keyed by ``(experiment, canonical JSON of the cell parameters, trial index, quick)``.
Each finished trial is committed on its own, so a sweep killed at any moment (even by
``kill -9``) loses at most the trials that were still running; run again, the runner asks
:meth:`ResultStore.finished_keys` and skips what is stored. SQLite's write-ahead log keeps the
file consistent across such a crash.

Failed trials are stored too (``status = "error"`` with the traceback or the cause of the
crash, ``"timeout"`` for a trial killed at its time limit) so that they are reported, never
lost; a later run retries them and overwrites the record.

Experiment names become file names (``NAME.csv``, ``figures/NAME.png``), so the store accepts
only names made of letters, digits, ``.``, ``_`` and ``-`` (see :func:`check_name`), on write
and on read; a store holding anything else, or that is not an SQLite file of this layout,
raises :class:`StoreError`.

Only the process that drives a sweep writes here; workers (local processes or Dask) return
their results to it.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ResultStore", "StoreError", "TrialRecord", "canonical_params", "check_name",
           "path_inside", "to_jsonable"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class StoreError(ValueError):
    """A result store that cannot be read: not SQLite, another layout, or crafted content."""


def check_name(name) -> str:
    """``name`` if it is a valid experiment name, else :class:`StoreError`.

    Valid: 1 to 128 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit,
    so that ``NAME.csv`` is a plain file name (no folder, no ``..``, no absolute path).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise StoreError(f"invalid experiment name {str(name)[:80]!r}: use letters, digits, "
                         "'.', '_' and '-' only")
    return name


def path_inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, refusing any ``name`` that would lead outside ``folder``.

    Used for every file name built from stored text (experiment names from a store).
    """
    folder = Path(folder)
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or not path.resolve().is_relative_to(root):
        raise StoreError(f"refusing to write {name!r}: it is not a file inside {folder}")
    return path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    experiment   TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    trial        INTEGER NOT NULL,
    quick        INTEGER NOT NULL,
    seed         INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    metrics      TEXT,
    error        TEXT,
    time         REAL    NOT NULL,
    finished_at  REAL    NOT NULL,
    version      TEXT    NOT NULL,
    host         TEXT,
    run_id       INTEGER,
    cpu_time     REAL,
    PRIMARY KEY (experiment, params, trial, quick)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    experiments  TEXT    NOT NULL,
    quick        INTEGER NOT NULL,
    backend      TEXT    NOT NULL,
    jobs         INTEGER,
    started_at   REAL    NOT NULL,
    finished_at  REAL,
    wall_time    REAL,
    n_planned    INTEGER,
    n_run        INTEGER,
    n_errors     INTEGER,
    version      TEXT    NOT NULL,
    machine      TEXT    NOT NULL
);
"""


def _optional_float(row, column: str) -> float | None:
    """``row[column]`` as a float; None when NULL or absent (read-only store, old layout)."""
    value = row[column] if column in row.keys() else None
    return None if value is None else float(value)


def to_jsonable(value):
    """``value`` with NumPy scalars and arrays turned into plain Python numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def canonical_params(params: Mapping) -> str:
    """The canonical JSON of a cell's parameters (sorted keys, no spaces): the store's key."""
    return json.dumps(to_jsonable(dict(params)), sort_keys=True, separators=(",", ":"),
                      default=str)


def _dumps(value) -> str:
    # NaN/inf are legitimate metric values (e.g. a diverged baseline); Python's json keeps them.
    return json.dumps(to_jsonable(value), allow_nan=True, default=str)


def package_version() -> str:
    from .. import __version__

    return __version__


def machine_info() -> dict:
    """Where the code runs: OS, CPU, core count, Python and key library versions."""
    import os

    import scipy

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "overparam": package_version(),
        "host": platform.node(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


@dataclass
class TrialRecord:
    """The outcome of one trial of one cell, as stored."""

    experiment: str
    params: dict
    trial: int
    quick: bool
    seed: int
    status: str  # "ok", "error" or "timeout"
    metrics: dict | None
    error: str | None
    time: float
    finished_at: float
    version: str
    host: str | None = None
    run_id: int | None = None
    cpu_time: float | None = None  # CPU seconds of the trial's process (None: not measured)

    @property
    def key(self) -> tuple[str, str, int, bool]:
        return (self.experiment, canonical_params(self.params), self.trial, bool(self.quick))

    def as_row(self) -> dict:
        """The runner's row format: ``{"params", "trial", "seed", "metrics", "time"}``."""
        return {"params": dict(self.params), "trial": self.trial, "seed": self.seed,
                "metrics": dict(self.metrics or {}), "time": self.time}


class ResultStore:
    """Results of experiment sweeps in one SQLite file.

    Parameters
    ----------
    path : str or Path
        The database file (created with its folder if missing), or ``":memory:"``.

    Examples
    --------
    >>> store = ResultStore(":memory:")
    >>> store.finished_keys("demo", quick=True)
    set()
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The driver writes from one thread; check_same_thread=False lets a progress callback
        # thread read without copying the connection.
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        try:
            if self.path != ":memory:":
                # WAL: a crash mid-write leaves the last committed state; readers do not block.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.executescript(_SCHEMA)
            self._check_layout()
            self._add_new_columns()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: not a result store ({exc})") from None
        except StoreError:
            self._conn.close()
            raise

    def _check_layout(self) -> None:
        # CREATE TABLE IF NOT EXISTS keeps a foreign table of the same name: check its columns.
        for table, schema in (("trials", "experiment"), ("runs", "run_id")):
            cols = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if schema not in cols:
                raise StoreError(f"{self.path}: not a result store (table {table!r} has "
                                 f"columns {sorted(cols)})")

    def _add_new_columns(self) -> None:
        # Stores written before the trials' CPU time was recorded lack its column.
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(trials)")}
        if "cpu_time" not in cols:
            try:
                with self._conn:
                    self._conn.execute("ALTER TABLE trials ADD COLUMN cpu_time REAL")
            except sqlite3.OperationalError:  # a read-only file: read it without the column
                pass

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({self.path!r})"

    # -- writing ---------------------------------------------------------------------------
    def add(self, record: TrialRecord) -> None:
        """Store one trial in its own transaction (replacing an earlier record of its key)."""
        self.add_many([record])

    def add_many(self, records: Iterable[TrialRecord]) -> None:
        """Store several trials in one transaction (all or none)."""
        values = [
            (check_name(r.experiment), canonical_params(r.params), int(r.trial), int(bool(r.quick)),
             int(r.seed), r.status, None if r.metrics is None else _dumps(r.metrics), r.error,
             float(r.time), float(r.finished_at), r.version, r.host, r.run_id,
             None if r.cpu_time is None else float(r.cpu_time))
            for r in records
        ]
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO trials (experiment, params, trial, quick, seed, status,"
                " metrics, error, time, finished_at, version, host, run_id, cpu_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

    def start_run(self, experiments: Iterable[str], *, quick: bool, backend: str,
                  jobs: int | None, n_planned: int) -> int:
        """Record the start of a sweep and return its id."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (experiments, quick, backend, jobs, started_at, n_planned,"
                " version, machine) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (json.dumps(list(experiments)), int(quick), backend, jobs, time.time(),
                 n_planned, package_version(), json.dumps(machine_info())))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, wall_time: float, n_run: int, n_errors: int) -> None:
        """Record the end of a sweep."""
        with self._conn:
            self._conn.execute(
                "UPDATE runs SET finished_at = ?, wall_time = ?, n_run = ?, n_errors = ?"
                " WHERE run_id = ?", (time.time(), wall_time, n_run, n_errors, run_id))

    def delete(self, experiment: str, *, quick: bool | None = None) -> int:
        """Forget the stored trials of an experiment (all, or only the quick or full ones)."""
        sql, args = "DELETE FROM trials WHERE experiment = ?", [experiment]
        if quick is not None:
            sql += " AND quick = ?"
            args.append(int(quick))
        with self._conn:
            return self._conn.execute(sql, args).rowcount

    # -- reading ---------------------------------------------------------------------------
    def finished_keys(self, experiment: str, *, quick: bool) -> set[tuple[str, int]]:
        """``(canonical params, trial)`` of the successfully finished trials."""
        rows = self._query(
            "SELECT params, trial FROM trials WHERE experiment = ? AND quick = ?"
            " AND status = 'ok'", (experiment, int(quick)))
        return {(p, int(t)) for p, t in rows}

    def cell_times(self, experiment: str, *, quick: bool) -> dict[str, float]:
        """Longest recorded trial time (s) of each cell, by canonical parameters.

        Every status counts: a timed-out or crashed trial was at least that long. The runner
        starts the cells that took longest before first.
        """
        rows = self._query("SELECT params, MAX(time) FROM trials WHERE experiment = ? AND"
                           " quick = ? GROUP BY params", (experiment, int(quick)))
        return {p: float(t) for p, t in rows}

    def records(self, experiment: str | None = None, *, quick: bool | None = None,
                status: str | None = None) -> list[TrialRecord]:
        """Stored trials, filtered by experiment, quick flag and status, in a stable order."""
        sql, args = self._select("SELECT * FROM trials", experiment, quick, status)
        sql += " ORDER BY experiment, quick, params, trial"
        return [self._record(r) for r in self._query(sql, args)]

    def _query(self, sql: str, args=()) -> list:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: unreadable result store ({exc})") from None

    def _record(self, r) -> TrialRecord:
        try:
            params = json.loads(r["params"])
            metrics = None if r["metrics"] is None else json.loads(r["metrics"])
            if not isinstance(params, dict) or not isinstance(metrics, dict | None):
                raise ValueError("parameters or metrics are not a JSON object")
            return TrialRecord(
                experiment=check_name(r["experiment"]), params=params, trial=int(r["trial"]),
                quick=bool(r["quick"]), seed=int(r["seed"]), status=str(r["status"]),
                metrics=metrics, error=r["error"], time=float(r["time"]),
                finished_at=float(r["finished_at"]), version=str(r["version"]), host=r["host"],
                run_id=r["run_id"], cpu_time=_optional_float(r, "cpu_time"))
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{self.path}: corrupt trial record of {str(r['experiment'])[:80]!r}"
                             f" ({str(exc).splitlines()[0][:200]})") from None

    @staticmethod
    def _select(sql: str, experiment: str | None, quick: bool | None,
                status: str | None) -> tuple[str, list]:
        args, where = [], []
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if quick is not None:
            where.append("quick = ?")
            args.append(int(quick))
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql, args

    def rows(self, experiment: str, *, quick: bool) -> list[dict]:
        """The successful trials of an experiment in the runner's row format."""
        return [r.as_row() for r in self.records(experiment, quick=quick, status="ok")]

    def errors(self, experiment: str | None = None, *,
               quick: bool | None = None) -> list[TrialRecord]:
        """The trials that failed or ran out of time (with their tracebacks or causes)."""
        return [r for r in self.records(experiment, quick=quick) if r.status != "ok"]

    def experiments(self) -> list[tuple[str, bool]]:
        """``(experiment, quick)`` pairs that have stored trials."""
        rows = self._query(
            "SELECT DISTINCT experiment, quick FROM trials ORDER BY experiment, quick")
        return [(check_name(e), bool(q)) for e, q in rows]

    def runs(self) -> list[dict]:
        """The recorded sweeps, oldest first (machine info decoded)."""
        out = []
        for r in self._query("SELECT * FROM runs ORDER BY run_id"):
            d = dict(r)
            try:
                d["experiments"] = json.loads(d["experiments"])
                d["machine"] = json.loads(d["machine"])
            except (ValueError, TypeError) as exc:
                raise StoreError(f"{self.path}: corrupt run record {d.get('run_id')} ({exc})"
                                 ) from None
            d["quick"] = bool(d["quick"])
            out.append(d)
        return out

    def count(self, experiment: str | None = None, *, quick: bool | None = None,
              status: str | None = None) -> int:
        """Number of stored trials matching the filters."""
        sql, args = self._select("SELECT COUNT(*) FROM trials", experiment, quick, status)
        return int(self._query(sql, args)[0][0])

    # -- export ----------------------------------------------------------------------------
    def export_csv(self, path: str | Path, experiment: str, *, quick: bool,
                   rows: list[dict] | None = None) -> Path:
        """Write an experiment's successful trials as CSV and return the path.

        Columns: ``trial, seed, time``, then one per parameter, then one per metric. Scalar
        metrics are written as numbers; list metrics (curves) as JSON.
        """
        rows = self.rows(experiment, quick=quick) if rows is None else rows
        return write_csv(path, rows)


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write rows (the runner's format) as a flat CSV; see :meth:`ResultStore.export_csv`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param_names: list[str] = []
    metric_names: list[str] = []
    for row in rows:
        for k in row["params"]:
            if k not in param_names:
                param_names.append(k)
        for k in row["metrics"]:
            if k not in metric_names:
                metric_names.append(k)
    # A parameter and a metric may share a name: prefix the metric then.
    metric_cols = [f"metric_{m}" if m in param_names or m in ("trial", "seed", "time") else m
                   for m in metric_names]

    def cell(value):
        value = to_jsonable(value)
        if value is None:
            return ""
        if isinstance(value, list | dict):
            return json.dumps(value)
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["trial", "seed", "time", *param_names, *metric_cols])
        for row in rows:
            writer.writerow([row["trial"], row["seed"], f"{row['time']:.6g}",
                             *(cell(row["params"].get(k)) for k in param_names),
                             *(cell(row["metrics"].get(m)) for m in metric_names)])
    return path
