"""Crash isolation, time limits and no leftover process, on every runner backend."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from overparam.experiments.papers.demo import SLEEP
from overparam.experiments.runner import run_experiment
from overparam.experiments.store import ResultStore
from overparam.experiments.workers import crash_message

LIMIT = 4.0  # s: generous on a loaded machine; the hung trial sleeps far longer


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its parent's wait does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone between the two looks
    return state != "Z"


def _wait_dead(pids, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _faulty_experiment(pid_dir: Path):
    """Cells: 0 and 3 succeed, 1 calls os._exit, 2 hangs. Each trial writes its pid first.

    The trial is a closure, so it travels by value (cloudpickle) to every kind of worker.
    """
    folder = str(pid_dir)

    def trial(params, seed):
        cell = params["cell"]
        with open(os.path.join(folder, f"{cell}.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        if cell == 1:
            os._exit(3)
        if cell == 2:
            time.sleep(600)
        return {"cell": cell}

    return dataclasses.replace(SLEEP, name="t-faulty", grid={"cell": [0, 1, 2, 3]},
                               quick_grid=None, trials=1, run_trial=trial,
                               trial_timeout=LIMIT)


@pytest.mark.parametrize("backend", ["serial", "process", "dask"])
def test_crash_and_hang_become_rows_and_leave_no_process(backend, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    exp = _faulty_experiment(pid_dir)
    store = tmp_path / "s.sqlite"
    result = run_experiment(exp, jobs=2, backend=backend, store=store, outdir=tmp_path / "out",
                            progress=False)
    # The sweep finished: every trial is stored, the good ones as rows.
    assert result.n_run == 4 and sorted(r["params"]["cell"] for r in result.rows) == [0, 3]
    by_cell = {e.params["cell"]: e for e in result.errors}
    assert set(by_cell) == {1, 2}
    assert by_cell[1].status == "error" and "exited with code 3" in by_cell[1].error
    assert by_cell[2].status == "timeout" and f"time limit of {LIMIT:g} s" in by_cell[2].error
    assert (tmp_path / "out" / "t-faulty.csv").exists()
    with ResultStore(store) as db:
        assert db.count("t-faulty") == 4
        assert {r.status for r in db.errors("t-faulty")} == {"error", "timeout"}
    # No process that ran a trial outlives the sweep (the hung one was killed).
    pids = [int(p.read_text()) for p in pid_dir.glob("*.pid")]
    assert len(pids) == 4 and os.getpid() not in pids
    assert _wait_dead(pids) == []


def test_cli_time_limit_overrides_the_spec(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    exp = dataclasses.replace(_faulty_experiment(pid_dir), grid={"cell": [2]},
                              trial_timeout=None)
    start = time.monotonic()
    result = run_experiment(exp, jobs=1, trial_timeout=1.0, progress=False)
    assert [e.status for e in result.errors] == ["timeout"]
    assert time.monotonic() - start < 300  # far below the trial's 600 s sleep
    with pytest.raises(ValueError, match="trial_timeout"):
        run_experiment(exp, trial_timeout=-1.0, progress=False)


def test_crash_messages_name_the_cause():
    assert "SIGSEGV" in crash_message(-signal.SIGSEGV)
    assert "out-of-memory" in crash_message(-signal.SIGKILL)
    assert "code 7" in crash_message(7)


DRIVER = """
import dataclasses, os, sys, time
from overparam.experiments.papers.demo import SLEEP
from overparam.experiments.runner import run_experiment

def trial(params, seed):
    with open(sys.argv[1], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(600)
    return {}

if __name__ == "__main__":
    exp = dataclasses.replace(SLEEP, name="t-hang", grid={"cell": [0]}, quick_grid=None,
                              trials=1, run_trial=trial, trial_timeout=None)
    run_experiment(exp, jobs=1, progress=False)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_worker_in_a_hung_trial_dies_with_a_killed_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    pid_file = tmp_path / "trial.pid"
    driver = subprocess.Popen([sys.executable, str(script), str(pid_file)],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 240
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and driver.poll() is None, "trial never started"
            time.sleep(0.2)
        trial_pid = int(pid_file.read_text())
        assert _alive(trial_pid)
    finally:
        driver.kill()  # SIGKILL: no cleanup code of the driver runs
        driver.wait()
    assert _wait_dead([trial_pid], seconds=30) == []
