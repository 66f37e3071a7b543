"""The store comparison behind issue 14's "same summary numbers as before" check."""

import math
import shutil
import sqlite3

import pytest

from overparam.experiments.compare import compare_stores, main, relative_difference
from overparam.experiments.papers.demo import POWER_LAW
from overparam.experiments.runner import run_experiments


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stores")
    old = folder / "old" / "results.sqlite"
    run_experiments([POWER_LAW], quick=True, store=old, progress=False)
    return old


def _copy(old, folder, name):
    new = folder / name / "results.sqlite"
    new.parent.mkdir()
    src = sqlite3.connect(old)
    dst = sqlite3.connect(new)
    src.backup(dst)
    src.close()
    return dst


def test_relative_difference():
    assert relative_difference(1.0, 1.0) == 0.0
    assert relative_difference(2.0, 1.0) == pytest.approx(0.5)
    assert relative_difference(float("nan"), float("nan")) == 0.0
    assert relative_difference(math.inf, math.inf) == 0.0
    assert relative_difference(math.inf, 1.0) == math.inf
    assert relative_difference("3/5", "3/5") == 0.0
    assert relative_difference("3/5", "4/5") == pytest.approx(0.25)
    assert relative_difference(None, 1.0) == math.inf
    # Pre-formatted numbers in a summary's text are compared as numbers.
    assert relative_difference("0.1 ± 0.01", "0.2 ± 0.01") == pytest.approx(0.5)
    assert relative_difference("[1, 2]", "[1, 2.0001]") == pytest.approx(5e-5, rel=1e-3)
    assert relative_difference("3/5 runs", "3/5 trials") == math.inf


def test_identical_stores_have_no_difference(stores, tmp_path):
    old = stores
    _copy(old, tmp_path, "same").close()
    (result,) = compare_stores(old.parent, tmp_path / "same", quick=True)
    assert result.name == "demo-power-law" and result.changed(1e-12) == []
    assert result.trials_compared == 8 and result.metrics_compared == 8
    assert result.trial_diffs == [] and result.only_old == result.only_new == 0
    labels = {d.label for d in result.headlines}
    assert {"summary: slope", "claim slope: measured", "claim slope: verdict"} <= labels


def test_a_changed_trial_shows_in_the_trials_and_the_headlines(stores, tmp_path, capsys):
    old = stores
    db = _copy(old, tmp_path, "changed")
    (key,), = db.execute("SELECT rowid FROM trials WHERE params LIKE '%256%'"
                                 " AND trial = 0").fetchall()
    db.execute("UPDATE trials SET metrics = replace(metrics, '\"error\": 0.', '\"error\": 9.')"
               " WHERE rowid = ?", (key,))
    db.execute("DELETE FROM trials WHERE params LIKE '%\"n\":4}%' AND trial = 1")
    db.commit()
    db.close()
    (result,) = compare_stores(old, tmp_path / "changed", quick=True, rtol=1e-6)
    assert result.only_old == 1 and result.only_new == 0 and result.trials_compared == 7
    assert result.failed_old == result.failed_new == 0
    (diff,) = result.trial_diffs
    assert "256" in diff.label and diff.label.endswith(": error") and diff.rel > 0.5
    changed = {d.label for d in result.changed(1e-6)}
    assert "summary: error at largest n" in changed
    # The command line prints the differing headline numbers and fails only with --check.
    assert main([str(old), str(tmp_path / "changed")]) == 0
    assert main([str(old), str(tmp_path / "changed"), "--check"]) == 1
    out = capsys.readouterr().out
    assert "| demo-power-law | summary: error at largest n |" in out
    assert "differ by more than 1e-06" in out and "| demo-power-law | 7 | 7 | 1 |" in out
    # An absolute tolerance above the change hides it in the trials.
    (loose,) = compare_stores(old, tmp_path / "changed", rtol=1e-6, atol=100.0)
    assert loose.trial_diffs == []


def test_headlines_are_computed_on_the_trials_finished_in_both(stores, tmp_path):
    db = _copy(stores, tmp_path, "partial")
    db.execute("DELETE FROM trials WHERE params LIKE '%256%'")
    db.commit()
    db.close()
    (result,) = compare_stores(stores, tmp_path / "partial")
    assert result.only_old == 2 and result.trials_compared == 6
    assert result.changed(1e-12) == []  # the old store's n = 256 rows are left out too


def test_missing_store_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        compare_stores(tmp_path / "none", tmp_path / "none")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_wall_clock_times_are_not_compared():
    from overparam.experiments.compare import Difference, ExperimentComparison, _is_timing

    assert _is_timing("summary: M=15: ir_time") and _is_timing("time_M-SP")
    assert not _is_timing("summary: learn_time_x1") and not _is_timing("error")
    result = ExperimentComparison("x", headlines=[Difference("summary: ir_time", 1.0, 2.0, 0.5),
                                                  Difference("summary: error", 1.0, 2.0, 0.5)])
    assert [d.label for d in result.changed(1e-6)] == ["summary: error"]
