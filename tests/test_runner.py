"""The experiment runner: seeding, backends (serial, loky, Dask LocalCluster), failures, resume."""

import dataclasses
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from overparam.experiments import cell_seed
from overparam.experiments.cli import register_commands
from overparam.experiments.papers.demo import POWER_LAW, SLEEP
from overparam.experiments.runner import (
    execute_trial,
    plan,
    run_experiment,
    run_experiments,
    run_serial,
)
from overparam.experiments.store import ResultStore


def _strip_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def _failing(name="t-failing"):
    # Seeds of even value fail (see demo._sleep_trial); cells 0..5 give a mix of both.
    return dataclasses.replace(SLEEP, name=name, grid={"delay": [0.0], "cell": list(range(6)),
                                                      "fail": [True]},
                               quick_grid=None, trials=1, quick_trials=1)


def _cli():
    app = typer.Typer()
    register_commands(app)
    return app


def test_run_serial_row_format_and_seeds():
    rows = run_serial(POWER_LAW, quick=True)
    cells = POWER_LAW.cells(quick=True)
    assert len(rows) == len(cells) * POWER_LAW.quick_trials
    for row in rows:
        assert set(row) == {"params", "trial", "seed", "metrics", "time"}
        assert row["seed"] == cell_seed(POWER_LAW.seed, row["params"], row["trial"])
    assert len({r["seed"] for r in rows}) == len(rows)
    assert run_serial(POWER_LAW, quick=True, trials=1)[0]["seed"] == rows[0]["seed"]


def test_seed_params_give_cells_that_differ_only_in_the_solver_the_same_problems():
    exp = dataclasses.replace(SLEEP, grid={"delay": [0.0], "cell": [0, 1, 2]},
                              seed_params=lambda p: {**p, "cell": 0})
    tasks = plan(exp, trials=2)
    by_trial = {}
    for task in tasks:
        by_trial.setdefault(task.trial, set()).add(task.seed)
        assert task.seed == cell_seed(exp.seed, {**task.params, "cell": 0}, task.trial)
    assert [len(seeds) for seeds in by_trial.values()] == [1, 1]
    assert by_trial[0] != by_trial[1]
    assert len({t.seed for t in plan(dataclasses.replace(exp, seed_params=None), trials=1)}) == 3


def test_plan_rejects_zero_trials():
    with pytest.raises(ValueError, match="trials"):
        plan(POWER_LAW, trials=0)


def test_run_experiment_matches_serial_and_writes_outputs(tmp_path):
    reference = run_serial(POWER_LAW, quick=True)
    result = run_experiment(POWER_LAW, quick=True, jobs=1, outdir=tmp_path, progress=False)
    assert result.ok and result.n_run == len(reference) and result.n_skipped == 0
    assert _strip_time(result.rows) == _strip_time(reference)
    assert result.csv == tmp_path / "demo-power-law.csv" and result.csv.exists()
    assert result.figure == tmp_path / "demo-power-law.png"
    assert result.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The toy claim: the error of a sample mean decays like n^-1/2.
    assert result.summary["slope"] == pytest.approx(-0.5, abs=0.08)


def test_process_pool_gives_the_serial_numbers(tmp_path):
    reference = run_serial(POWER_LAW, quick=True)
    # "loky", the former pool's name, still selects the process pool.
    result = run_experiment(POWER_LAW, quick=True, jobs=2, backend="loky",
                            store=tmp_path / "s.sqlite", progress=False)
    assert result.ok
    assert _strip_time(result.rows) == _strip_time(reference)
    with ResultStore(tmp_path / "s.sqlite") as db:
        assert db.runs()[-1]["backend"] == "process"


def test_any_cell_reproduces_alone():
    full = run_serial(POWER_LAW, quick=True)
    one_cell = dataclasses.replace(POWER_LAW, quick_grid={"n": [64]})
    alone = run_serial(one_cell, quick=True)
    assert _strip_time(alone) == _strip_time([r for r in full if r["params"]["n"] == 64])


def test_failing_trials_are_recorded_and_retried(tmp_path):
    exp = _failing()
    store_path = tmp_path / "s.sqlite"
    result = run_experiment(exp, jobs=2, store=store_path, progress=False)
    n_fail = sum(t.seed % 2 == 0 for t in plan(exp))
    assert 0 < n_fail < 6, "the toy grid must mix failing and passing trials"
    assert len(result.errors) == n_fail and len(result.rows) == 6 - n_fail
    assert not result.ok
    assert all("demo failure for seed" in e.error for e in result.errors)
    with ResultStore(store_path) as db:
        assert db.count(exp.name, status="error") == n_fail
        assert db.count(exp.name, status="ok") == 6 - n_fail
    # Run again: finished trials are skipped, the failed ones are retried (and fail again).
    again = run_experiment(exp, jobs=1, store=store_path, progress=False)
    assert again.n_skipped == 6 - n_fail and again.n_run == n_fail
    assert len(again.errors) == n_fail


def test_failure_in_serial_backend_does_not_stop_the_sweep():
    exp = _failing()
    result = run_experiments([exp, POWER_LAW], quick=False, jobs=1, progress=False)
    assert result[0].errors and result[1].ok
    assert len(result[1].rows) == len(POWER_LAW.cells()) * POWER_LAW.trials


def test_execute_trial_checks_metrics():
    task = plan(POWER_LAW, quick=True)[0]
    rec = execute_trial(lambda p, s: {"a": np.float64(1.5), "b": np.arange(3)}, task)
    assert rec.status == "ok" and rec.metrics == {"a": 1.5, "b": [0, 1, 2]}
    assert json.dumps(rec.metrics)
    rec = execute_trial(lambda p, s: {"a": object()}, task)
    assert rec.status == "error" and "not JSON serializable" in rec.error
    rec = execute_trial(lambda p, s: [1, 2], task)
    assert rec.status == "error" and "dict of metrics" in rec.error


def test_resume_skips_stored_trials_and_fresh_reruns(tmp_path):
    store_path = tmp_path / "s.sqlite"
    first = run_experiment(POWER_LAW, quick=True, store=store_path, progress=False)
    with ResultStore(store_path) as db:
        # Forget two trials, as if the sweep had been killed before them.
        db._conn.execute("DELETE FROM trials WHERE trial = 1 AND params IN ('{\"n\":4}',"
                         " '{\"n\":64}')")
        db._conn.commit()
    second = run_experiment(POWER_LAW, quick=True, store=store_path, progress=False)
    assert (second.n_run, second.n_skipped) == (2, first.n_planned - 2)
    assert _strip_time(second.rows) == _strip_time(first.rows)
    third = run_experiment(POWER_LAW, quick=True, store=store_path, fresh=True, progress=False)
    assert third.n_run == first.n_planned
    # Quick and full runs are keyed apart.
    full = run_experiment(POWER_LAW, quick=False, trials=1, store=store_path, progress=False)
    assert full.n_skipped == 0


def test_more_trials_extend_a_stored_run(tmp_path):
    store_path = tmp_path / "s.sqlite"
    run_experiment(POWER_LAW, quick=True, trials=1, store=store_path, progress=False)
    more = run_experiment(POWER_LAW, quick=True, trials=3, store=store_path, progress=False)
    n_cells = len(POWER_LAW.cells(quick=True))
    assert (more.n_skipped, more.n_run, len(more.rows)) == (n_cells, 2 * n_cells, 3 * n_cells)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        run_experiment(POWER_LAW, backend="threads")
    with pytest.raises(ValueError, match="scheduler"):
        run_experiment(POWER_LAW, backend="loky", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="jobs"):
        run_experiment(POWER_LAW, jobs=0)
    with pytest.raises(ValueError, match="unknown experiment"):
        run_experiment("no-such-experiment")
    with pytest.raises(ValueError, match="twice"):
        run_experiments([POWER_LAW, POWER_LAW])


def test_dask_local_cluster_backend():
    reference = run_serial(POWER_LAW, quick=True)
    exp = _failing()
    results = run_experiments([POWER_LAW, exp], quick=True, backend="dask", jobs=2,
                              progress=False)
    assert _strip_time(results[0].rows) == _strip_time(reference)
    assert results[1].errors and all("demo failure" in e.error for e in results[1].errors)


def test_cli_run_on_a_dask_scheduler(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        res = CliRunner().invoke(_cli(), [
            "run", "demo-power-law", "--quick", "--outdir", str(tmp_path), "--no-progress",
            "--scheduler", cluster.scheduler_address])
    assert res.exit_code == 0, res.output
    assert "8/8 trials ok" in res.output
    with ResultStore(tmp_path / "results.sqlite") as db:
        assert _strip_time(db.rows("demo-power-law", quick=True)) == _strip_time(
            sorted(run_serial(POWER_LAW, quick=True),
                   key=lambda r: (json.dumps(r["params"]), r["trial"])))
        assert db.runs()[-1]["backend"] == "dask"


def test_cli_run_and_exit_codes(tmp_path):
    cli = _cli()
    res = CliRunner().invoke(cli, ["run", "demo-sleep", "--quick", "-j", "1", "-o",
                                   str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "6/6 trials ok (ran 6, 0 already stored, 0 failed)" in res.output
    assert (tmp_path / "demo-sleep.csv").exists()
    res = CliRunner().invoke(cli, ["run", "demo-sleep", "--quick", "-j", "1", "-o",
                                   str(tmp_path), "--no-progress"])
    assert "(ran 0, 6 already stored, 0 failed)" in res.output
    res = CliRunner().invoke(cli, ["run", "nope", "-o", str(tmp_path)])
    assert res.exit_code != 0 and "unknown experiment" in res.output


def test_trials_run_with_one_blas_thread():
    from threadpoolctl import threadpool_info, threadpool_limits

    from overparam.experiments.runner import call_trial

    def trial(params, seed):
        return {"threads": max(i["num_threads"] for i in threadpool_info()
                               if i["user_api"] == "blas")}

    with threadpool_limits(limits=2, user_api="blas"):  # conftest sets 1: raise it here
        outside = trial({}, 0)["threads"]
        inside = call_trial(trial, {}, 0)["threads"]
        again = call_trial(trial, {}, 1)["threads"]  # the kept controller
        after = trial({}, 0)["threads"]
    assert inside == again == 1
    assert after == outside  # the limit ends with the trial
    if outside == 1:  # a single-threaded BLAS build cannot show the difference
        pytest.skip("BLAS is single-threaded here")
