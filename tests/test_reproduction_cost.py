"""The arithmetic of benchmarks/reproduction_cost.py (sampling, scaling, schedules, merging)."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from overparam.experiments.papers.demo import SLEEP
from overparam.experiments.runner import plan
from overparam.experiments.store import ResultStore, TrialRecord, canonical_params

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduction_cost.py"
_SPEC = importlib.util.spec_from_file_location("reproduction_cost", _PATH)
cost = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cost)


def _exp(n=5, trials=2):
    return dataclasses.replace(SLEEP, name="t-cost", grid={"delay": [0.0], "cell": list(range(n))},
                               quick_grid={"delay": [0.0], "cell": [0]}, trials=trials)


def test_makespan_of_list_scheduling():
    assert cost.makespan([4.0, 1.0, 1.0, 1.0, 1.0], 2) == 4.0
    # grid order can strand the long trial at the end: longest first cannot do worse here
    times = [1.0, 1.0, 1.0, 1.0, 4.0]
    assert cost.makespan(times, 2) == 6.0
    assert cost.makespan(sorted(times, reverse=True), 2) == 4.0
    assert cost.makespan([], 2) == 0.0


def test_sampled_cells_span_the_grid_and_estimates_fill_the_plan():
    exp = _exp()
    cells = cost.sample_cells(exp, 2)
    assert [c["cell"] for c in cells] == [0, 4]
    assert len(cost.sample_cells(exp, 99)) == 5
    times = cost.trial_estimates(exp, {canonical_params(cells[0]): 1.0,
                                       canonical_params(cells[1]): 3.0})
    # trials of a measured cell get its time; the others the mean of the measured cells
    assert times == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0]


def test_scaled_cell_and_factor():
    assert cost.parse_scales(["a:max_iter=20000"]) == {"a": ("max_iter", 20000.0)}
    params, factor = cost.scaled({"max_iter": 1_000_000, "x": 1}, ("max_iter", 20000.0))
    assert params == {"max_iter": 20000, "x": 1} and isinstance(params["max_iter"], int)
    assert factor == 50.0
    assert cost.scaled({"x": 1}, None) == ({"x": 1}, 1.0)
    with pytest.raises(SystemExit):
        cost.parse_scales(["no-key"])


def test_store_times_follow_the_plan(tmp_path):
    exp = _exp(n=2, trials=1)
    tasks = plan(exp)
    with ResultStore(tmp_path / "s.sqlite") as db:
        db.add(TrialRecord(experiment=exp.name, params=tasks[0].params, trial=0, quick=False,
                           seed=tasks[0].seed, status="ok", metrics={}, error=None, time=5.0,
                           finished_at=0.0, version="t"))
    times = cost.from_store(tmp_path / "s.sqlite", [exp])
    assert times == {exp.name: [5.0, 5.0]}  # the unrecorded cell gets the mean


def test_measure_runs_the_sampled_cells_with_a_warm_up():
    exp = _exp(n=3, trials=1)
    out = cost.measure([exp], 2, 60.0, True)[exp.name]
    assert set(out["cell_cpu"]) == {canonical_params(c) for c in cost.sample_cells(exp, 2)}
    assert all(v >= 0.0 for v in out["cell_cpu"].values())
    assert out["timeouts"] == 0 and out["errors"] == 0


def test_merge_prints_the_table(tmp_path, capsys):
    entries = {"asym-sensing-width": {"times": [2.0, 4.0], "source": "x", "note": ""}}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(entries))
    cost.main(["--merge", str(path), "--only", "asym-sensing-width", "--wall-jobs", "2"])
    out = capsys.readouterr().out
    assert "asym-sensing-width" in out and "total CPU 6 s" in out
    assert "longest first 0.1 min" in out


def test_sampled_trials_are_spread_from_trial_zero():
    assert cost.sample_trials(20, 3) == {0, 10, 19}
    assert cost.sample_trials(20, 1) == {0}
    assert cost.sample_trials(2, 5) == {0, 1}
