"""The runner's cost accounting: CPU time per trial, longest trials first, the CLI's totals."""

import dataclasses
import sqlite3

import pytest
import typer
from typer.testing import CliRunner

from overparam.experiments.cli import cost_summary, register_commands
from overparam.experiments.papers.demo import SLEEP
from overparam.experiments.runner import (
    RunResult,
    longest_first,
    plan,
    run_experiment,
    run_serial,
)
from overparam.experiments.store import ResultStore, TrialRecord


def _cells(n=5, **kwargs):
    # Full grid (quick=False) of n instant cells, one trial each.
    return dataclasses.replace(SLEEP, name="t-cost", grid={"delay": [0.0], "cell": list(range(n))},
                               quick_grid=None, trials=1, quick_trials=1, **kwargs)


def _record(task, time, status="ok"):
    return TrialRecord(experiment=task.experiment, params=dict(task.params), trial=task.trial,
                       quick=task.quick, seed=task.seed, status=status, metrics={}, error=None,
                       time=time, finished_at=0.0, version="test")


def _order(calls):
    return [call[1].params["cell"] for call in calls]


def test_longest_first_uses_the_hint_and_keeps_grid_order_on_ties():
    exp = _cells(trial_seconds=lambda p: {1: 5.0, 3: 9.0}.get(p["cell"], 0.0))
    calls = [(exp.run_trial, t, None) for t in plan(exp)]
    with ResultStore(":memory:") as db:
        assert _order(longest_first(calls, {exp.name: exp}, db)) == [3, 1, 0, 2, 4]
        plain = _cells()
        assert _order(longest_first(calls, {exp.name: plain}, db)) == [0, 1, 2, 3, 4]


def test_recorded_cell_times_override_the_hint_and_count_failures():
    exp = _cells(trial_seconds=1.0)
    tasks = plan(exp)
    calls = [(exp.run_trial, t, None) for t in tasks]
    with ResultStore(":memory:") as db:
        db.add(_record(tasks[4], 30.0, status="timeout"))  # at least 30 s
        db.add(_record(tasks[2], 0.5))  # measured shorter than the hint
        assert _order(longest_first(calls, {exp.name: exp}, db)) == [4, 0, 1, 3, 2]


def test_quick_runs_ignore_the_full_grid_hint():
    exp = dataclasses.replace(_cells(trial_seconds=lambda p: float(p["cell"])),
                              quick_grid={"delay": [0.0], "cell": [0, 1, 2]})
    assert exp.expected_trial_seconds({"cell": 2}, quick=True) == 0.0
    assert exp.expected_trial_seconds({"cell": 2}, quick=False) == 2.0


def test_sweep_runs_longest_first_and_returns_rows_in_grid_order(tmp_path):
    exp = _cells(trial_seconds=lambda p: float(p["cell"]))
    result = run_experiment(exp, jobs=1, store=tmp_path / "s.sqlite", progress=False)
    assert result.ok and result.n_run == 5
    assert [r["metrics"] for r in result.rows] == [r["metrics"] for r in run_serial(exp)]
    with ResultStore(tmp_path / "s.sqlite") as db:
        finished = sorted(db.records(exp.name), key=lambda r: r.finished_at)
    assert [r.params["cell"] for r in finished] == [4, 3, 2, 1, 0]


def test_cpu_time_is_recorded_and_summed(tmp_path):
    exp = _cells(3)
    result = run_experiment(exp, jobs=1, store=tmp_path / "s.sqlite", progress=False)
    with ResultStore(tmp_path / "s.sqlite") as db:
        records = db.records(exp.name)
    assert all(r.cpu_time is not None and r.cpu_time >= 0.0 for r in records)
    assert result.cpu_time == pytest.approx(sum(r.cpu_time for r in records))


def _old_layout_store(path):
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE trials (experiment TEXT NOT NULL, params TEXT NOT NULL, trial INTEGER"
        " NOT NULL, quick INTEGER NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,"
        " metrics TEXT, error TEXT, time REAL NOT NULL, finished_at REAL NOT NULL, version"
        " TEXT NOT NULL, host TEXT, run_id INTEGER, PRIMARY KEY (experiment, params, trial,"
        " quick));"
        "INSERT INTO trials VALUES ('e', '{\"a\":1}', 0, 0, 7, 'ok', '{\"m\":1}', NULL, 2.5,"
        " 0.0, 'old', NULL, NULL);")
    conn.commit()
    conn.close()


def test_store_of_the_old_layout_gains_the_cpu_column(tmp_path):
    path = tmp_path / "old.sqlite"
    _old_layout_store(path)
    with ResultStore(path) as db:
        (old,) = db.records("e")
        assert old.cpu_time is None and old.time == 2.5
        db.add(dataclasses.replace(old, trial=1, cpu_time=1.25))
        assert [r.cpu_time for r in db.records("e")] == [None, 1.25]
        assert db.cell_times("e", quick=False) == {'{"a":1}': 2.5}


def test_read_only_store_of_the_old_layout_is_still_readable(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    ResultStore(path).close()
    with sqlite3.connect(path) as conn:  # a store written before cpu_time was recorded
        conn.execute("ALTER TABLE trials DROP COLUMN cpu_time")
        conn.execute("INSERT INTO trials VALUES ('e', '{}', 0, 0, 7, 'ok', '{}', NULL, 2.5, 0.0,"
                     " 'old', NULL, NULL)")
    connect = sqlite3.connect  # open read-only (file permissions do not stop root)
    monkeypatch.setattr(sqlite3, "connect",
                        lambda p, **kw: connect(f"file:{p}?mode=ro", uri=True, **kw))
    with ResultStore(path) as db:
        assert [r.cpu_time for r in db.records("e")] == [None]
        assert db.cell_times("e", quick=False) == {"{}": 2.5}
    monkeypatch.undo()
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(trials)")]
    assert "cpu_time" not in cols


def test_cost_summary_totals_and_costliest():
    fast = RunResult(_cells(), quick=False, n_run=2, run_time=1.0, cpu_time=0.5)
    slow = RunResult(dataclasses.replace(_cells(), name="t-slow"), quick=False, n_run=1,
                     run_time=90.0, cpu_time=60.0)
    line = cost_summary([fast, slow])
    assert "trials run now: 3, trial time 91.0 s (CPU 60.5 s = 1.0 CPU-min)" in line
    assert line.index("t-slow 90.0 s") < line.index("t-cost 1.0 s")


def test_cli_reproduce_reports_cpu_time(tmp_path):
    app = typer.Typer()
    register_commands(app)
    res = CliRunner().invoke(app, ["reproduce", "--quick", "--only", "demo-sleep",
                                   "--include-demo", "-j", "1", "-o", str(tmp_path),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "demo-sleep: 6/6 trials ok" in res.output and "(CPU " in res.output
    assert "trials run now: 6, trial time" in res.output


def test_full_reproduction_starts_with_the_longest_trials():
    from overparam.experiments.spec import list_experiments

    exps = [e for e in list_experiments() if "demo" not in e.tags]
    calls = [(e.run_trial, t, None) for e in exps for t in plan(e)]
    with ResultStore(":memory:") as db:
        ordered = longest_first(calls, {e.name: e for e in exps}, db)
    by_name = {e.name: e for e in exps}
    expected = [by_name[c[1].experiment].expected_trial_seconds(c[1].params, c[1].quick)
                for c in ordered]
    assert expected == sorted(expected, reverse=True)
    assert {"ir-mmv-digits", "imaging-dct"} <= {c[1].experiment for c in ordered[:6]}
    assert len(ordered) == len(calls)
