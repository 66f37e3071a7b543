"""Quick versions of the group-sparsity paper's experiments reproduce its claims."""

import numpy as np
import pytest

from overparam.experiments import get_experiment
from overparam.experiments.runner import run_serial


def _run(name, tmp_path):
    exp = get_experiment(name)
    rows = run_serial(exp, quick=True)
    path = tmp_path / f"{name}.png"
    exp.plot(rows, path)
    assert path.stat().st_size > 10_000
    summary = exp.summarize(rows)
    assert summary
    return rows, summary


def _metric(rows, key, **where):
    return [r["metrics"][key] for r in rows
            if all(r["params"][k] == v for k, v in where.items())]


def test_convergence_of_algorithms_1_and_2(tmp_path):
    rows, summary = _run("group-convergence", tmp_path)
    assert {r["params"]["loss_scale"] for r in rows} == {"half-mean", "authors"}
    for row in rows:
        m = row["metrics"]
        assert m["min_error"] < 0.02  # noise level: sigma=0.5 against entries of 10
        if (row["params"]["algorithm"], row["params"]["loss_scale"]) == ("alg1", "authors"):
            continue
        final = np.array([mag[-1] for mag in m["magnitudes"]])
        np.testing.assert_allclose(final, m["true_magnitude"], rtol=0.02)
    # switch at tau = 0.1 (the authors' notebook) right after the first steps
    assert 0 < _metric(rows, "switch_iteration", algorithm="alg2", loss_scale="authors")[0] <= 5
    # Fig. 6: on the authors' loss (twice ours) Algorithm 1 turns unstable late in the run:
    # the error rises far above its minimum and the directions keep moving; on the paper's
    # (1/2n) scale, and with Algorithm 2, they settle
    a1 = {r["params"]["loss_scale"]: r["metrics"] for r in rows
          if r["params"]["algorithm"] == "alg1"}
    assert a1["authors"]["final_error"] > 10 * a1["authors"]["min_error"]
    assert a1["half-mean"]["final_error"] < 1.1 * a1["half-mean"]["min_error"]
    assert (summary["authors' loss: alg1 late max |v(t+1)-v(t)| (median)"]
            > 1e3 * summary["alg1 late max |v(t+1)-v(t)| (median)"])
    assert (summary["authors' loss: alg2 late max |v(t+1)-v(t)| (median)"]
            < 1e-3 * summary["authors' loss: alg1 late max |v(t+1)-v(t)| (median)"])


def test_alg2_entries_learned_largest_first(tmp_path):
    rows, _ = _run("group-alg2-entries", tmp_path)
    assert {r["params"]["design"] for r in rows} == {"rademacher", "gaussian"}
    for row in rows:
        m = row["metrics"]
        assert m["largest_first"], m["half_time_by_magnitude"]
        assert m["final_cosine_min"] > 0.999
        assert m["min_error"] < 0.02
        np.testing.assert_allclose([c[-1] for c in m["entries"]], m["true_entries"], atol=0.3)


def test_group_structure_beats_plain_sparsity(tmp_path):
    rows, _ = _run("group-vs-dlnn", tmp_path)
    for row in rows:
        m = row["metrics"]
        assert m["group_min_error"] < 0.1
        assert m["dlnn_min_error"] > 3 * m["group_min_error"]


def test_size_one_groups_recover_sparse_signal(tmp_path):
    rows, _ = _run("group-degenerate", tmp_path)
    assert np.median(_metric(rows, "min_error")) < 0.15
    for row in rows:
        m = row["metrics"]
        assert m["log_error"][0] == pytest.approx(0.0, abs=1e-6)  # starts at w = 0
        assert min(m["log_error"]) < np.log(0.2)


def test_plain_gd_needs_zero_direction_init(tmp_path):
    rows, _ = _run("group-gd-no-normalization", tmp_path)
    zero = rows[[r["params"]["v_init"] for r in rows].index("zero")]["metrics"]
    rand = rows[[r["params"]["v_init"] for r in rows].index("random")]["metrics"]
    assert zero["min_error"] < 0.1
    assert zero["mean_cosine"][-1] > 0.99  # directions aligned, starting from 0
    # from a small random v(0), entries off the support grow much larger
    assert rand["max_off_support"] > 3 * zero["max_off_support"]


def test_ir_group_beats_explicit_regularization_at_20db(tmp_path):
    rows, summary = _run("group-snr", tmp_path)
    m = rows[0]["metrics"]
    assert m["ir_group"] < m["group_lasso"] and m["ir_group"] < m["primal_dual"]
    assert m["ir_chosen_iteration"] > 0
    assert "share of trials where IR-group is best" in summary
    # the authors' setting (switch at epoch 200, lr 1e-3, 600 epochs) on their notebook's
    # signal, 12 entries of 10: as accurate as the data-scaled default
    exp = get_experiment("group-snr")
    a = exp.run_trial({"snr_db": 20, "n_alphas": 10, "signal": "authors"}, 1)
    assert a["ir_group_authors"] < 0.1
    # One trial decides no ranking (it was 0.0320 vs 0.0311, a knife edge): the authors'
    # setting is within 25% of the better explicit regularizer on it.
    assert a["ir_group_authors"] < 1.25 * min(a["group_lasso"], a["primal_dual"])


def test_diabetes_table(tmp_path):
    rows, summary = _run("group-diabetes", tmp_path)
    diabetes = [r for r in rows if r["params"]["dataset"] == "diabetes"]
    assert len(diabetes) == 2 and "±" in summary["test MSE ir_group"]
    mean = {k: np.mean([r["metrics"][k] for r in diabetes])
            for k in ("ir_group", "group_lasso", "primal_dual", "least_squares", "ridge")}
    # Not the paper's ranking: on diabetes shrinkage wins (ridge = group lasso), and IR-group
    # is about 8% behind group lasso over 10 splits, even stopped by an oracle
    # (docs/fidelity.md, item 4); it stays far ahead of least squares.
    assert mean["ir_group"] < 1.25 * mean["group_lasso"]
    assert mean["ir_group"] < 0.8 * mean["least_squares"]
    assert mean["ridge"] < mean["least_squares"]  # dense shrinkage: see docs/fidelity.md
    assert all(r["metrics"]["ir_iteration"] > 0 for r in rows)
    # the second real data set: breast cancer, 10 natural groups of 3 columns
    assert summary["breast-cancer: splits"] == 2
    cancer = [r["metrics"] for r in rows if r["params"]["dataset"] == "breast-cancer"]
    for m in cancer:
        assert 0 < m["ir_group"] < 1 and 0 < m["group_lasso"] < 1  # below the variance of y
