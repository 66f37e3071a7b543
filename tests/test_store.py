"""The SQLite result store: keys, transactions, CSV export and resume after ``kill -9``."""

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from overparam.experiments.papers.demo import SLEEP
from overparam.experiments.store import ResultStore, TrialRecord, canonical_params


def _record(params, trial=0, status="ok", metrics=None, quick=False, experiment="e"):
    return TrialRecord(experiment=experiment, params=params, trial=trial, quick=quick, seed=7,
                       status=status, metrics=metrics if status == "ok" else None,
                       error=None if status == "ok" else "Traceback: boom", time=0.5,
                       finished_at=time.time(), version="0.1.0", host="h")


def test_canonical_params_ignores_key_order_and_numpy_types():
    import numpy as np

    assert canonical_params({"b": 1, "a": 2.5}) == canonical_params({"a": 2.5, "b": 1})
    assert canonical_params({"a": np.int64(3), "t": (1, 2)}) == '{"a":3,"t":[1,2]}'


def test_round_trip_replace_and_filters(tmp_path):
    path = tmp_path / "sub" / "s.sqlite"
    with ResultStore(path) as db:
        db.add(_record({"n": 1, "m": "x"}, metrics={"err": 0.25, "curve": [1.0, 0.5]}))
        db.add(_record({"m": "x", "n": 1}, trial=1, status="error"))
        db.add(_record({"n": 1, "m": "x"}, quick=True, metrics={"err": 1.0}))
        assert db.count() == 3
        assert db.finished_keys("e", quick=False) == {('{"m":"x","n":1}', 0)}
        assert db.rows("e", quick=False) == [{"params": {"m": "x", "n": 1}, "trial": 0,
                                              "seed": 7, "metrics": {"err": 0.25,
                                                                     "curve": [1.0, 0.5]},
                                              "time": 0.5}]
        assert [e.error for e in db.errors("e")] == ["Traceback: boom"]
        assert db.experiments() == [("e", False), ("e", True)]
        # Same key again: the record is replaced, not duplicated (a retried failure).
        db.add(_record({"n": 1, "m": "x"}, trial=1, metrics={"err": 0.5}))
        assert db.count("e", quick=False) == 2 and not db.errors()
        assert db.delete("e", quick=True) == 1 and db.count() == 2
    with ResultStore(path) as db:  # persisted
        assert db.count(status="ok") == 2


def test_add_many_is_one_transaction(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        bad = _record({"n": 2})
        bad.status = None  # violates NOT NULL inside the transaction, after the first insert
        with pytest.raises(sqlite3.IntegrityError):
            db.add_many([_record({"n": 1}), bad])
        assert db.count() == 0


def test_runs_are_recorded(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        run_id = db.start_run(["e"], quick=True, backend="loky", jobs=2, n_planned=4)
        db.finish_run(run_id, wall_time=1.5, n_run=4, n_errors=1)
        (run,) = db.runs()
    assert run["experiments"] == ["e"] and run["quick"] and run["wall_time"] == 1.5
    assert run["machine"]["cpu_count"] >= 1 and "python" in run["machine"]


def test_export_csv_flattens_params_and_metrics(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.add(_record({"n": 4, "method": "gd"}, metrics={"error": 0.125, "curve": [1, 2, 3],
                                                        "n": 9, "diverged": float("nan")}))
        path = db.export_csv(tmp_path / "out" / "e.csv", "e", quick=False)
    with open(path) as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["n"] == "4" and row["method"] == "gd" and row["metric_n"] == "9"
    assert float(row["error"]) == 0.125 and json.loads(row["curve"]) == [1, 2, 3]
    assert row["diverged"] == "nan" and row["seed"] == "7"


def _count(path):
    if not path.exists():
        return 0
    with ResultStore(path) as db:
        return db.count("demo-sleep", quick=False)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_resume_after_kill_9(tmp_path, jobs):
    """Kill a real sweep with SIGKILL mid-run; the restart must redo and lose nothing."""
    store = tmp_path / "s.sqlite"
    trials = 4  # 80 trials of 0.05 s: long enough for the kill to land mid-sweep under load
    total = len(SLEEP.cells()) * trials
    cmd = [sys.executable, "-c", "from overparam.cli import main; main()", "run", "demo-sleep",
           "--trials", str(trials), "--jobs", jobs, "--outdir", str(tmp_path), "--store",
           str(store), "--no-progress"]
    # A session of its own, so that the kill also reaches the pool's worker processes.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _count(store) < 6:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with ResultStore(store) as db:
        before = {canonical_params(r.params) + f"#{r.trial}": r.finished_at
                  for r in db.records("demo-sleep")}
    assert 6 <= len(before) < total, "the kill must land mid-sweep"

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (f"{total}/{total} trials ok (ran {total - len(before)}, {len(before)} already "
            "stored, 0 failed)") in out.stdout
    with ResultStore(store) as db:
        after = {canonical_params(r.params) + f"#{r.trial}": r.finished_at
                 for r in db.records("demo-sleep")}
        assert db.count("demo-sleep", status="ok") == total
    # The trials finished before the kill were kept as they were, not redone.
    assert all(after[key] == stamp for key, stamp in before.items())
    with open(tmp_path / "demo-sleep.csv") as fh:
        assert len(list(csv.DictReader(fh))) == total


@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "..", "", ".hidden", "a\\b",
                                  "x" * 200, "a\nb"])
def test_invalid_experiment_names_are_refused_on_write(name, tmp_path):
    from overparam.experiments.store import StoreError

    with ResultStore(tmp_path / "s.sqlite") as db:
        with pytest.raises(StoreError, match="invalid experiment name"):
            db.add(_record({"n": 1}, experiment=name))
        assert db.count() == 0


def test_crafted_and_corrupt_stores_raise_store_error(tmp_path):
    from overparam.experiments.store import StoreError

    path = tmp_path / "s.sqlite"
    with ResultStore(path) as db:
        db.add(_record({"n": 1}, metrics={"e": 1.0}))
    with sqlite3.connect(path) as conn:  # a name written behind the store's back
        conn.execute("UPDATE trials SET experiment = '../../etc/x'")
    with ResultStore(path) as db, pytest.raises(StoreError, match="invalid experiment name"):
        db.experiments()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE trials SET experiment = 'e', metrics = '{not json'")
    with ResultStore(path) as db, pytest.raises(StoreError, match="corrupt trial record"):
        db.records("e")
    (tmp_path / "junk.sqlite").write_bytes(b"junk" * 100)
    with pytest.raises(StoreError, match="not a result store"):
        ResultStore(tmp_path / "junk.sqlite")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE trials (a INTEGER)")
    with pytest.raises(StoreError, match="not a result store"):
        ResultStore(other)


def test_path_inside_refuses_paths_out_of_the_folder(tmp_path):
    from overparam.experiments.store import StoreError, path_inside

    assert path_inside(tmp_path, "a.csv") == tmp_path / "a.csv"
    for name in ("../a.csv", "/tmp/a.csv", "sub/../../a.csv"):
        with pytest.raises(StoreError, match="not a file inside"):
            path_inside(tmp_path, name)
