"""Quick versions of the IR-MMV paper's experiments: each checks what the quick run can show."""

import numpy as np
import pytest

from overparam.experiments import get_experiment
from overparam.experiments.runner import run_serial


def _run(name, tmp_path):
    exp = get_experiment(name)
    rows = run_serial(exp, quick=True)
    png = tmp_path / f"{name}.png"
    exp.plot(rows, png)
    assert png.stat().st_size > 10_000
    summary = exp.summarize(rows)
    assert summary
    return rows, summary


def test_balance_and_incremental_learning(tmp_path):
    rows, _ = _run("ir-mmv-balance", tmp_path)
    assert len(rows) == 2
    for r in rows:
        m = r["metrics"]
        assert m["balance_drift"] < 1e-6  # Lemma 5.1: g²/2 - ||V_i||² conserved
        assert m["smallest_row_last"]  # the 1×1_L row after the 2× and 3× rows
        assert m["learn_time_x1"] > 1.1 * max(m["learn_time_x2"], m["learn_time_x3"])
        assert m["rel_error"] < 1e-4
        assert len(m["t"]) <= 100 and len(m["half_g2_1"]) == len(m["t"])


def test_init_scale_effect(tmp_path):
    rows, _ = _run("ir-mmv-init-scale", tmp_path)
    for setting in {r["params"]["setting"] for r in rows}:
        by_alpha = {r["params"]["init_scale"]: r["metrics"] for r in rows
                    if r["params"]["setting"] == setting}
        big, small = by_alpha[1e-2], by_alpha[1e-3]
        # smaller init: rows grow later (escape time ~ 1/alpha) and a lower final loss
        assert small["first_row_time"] > 5 * big["first_row_time"]
        assert small["final_loss"] < big["final_loss"]


@pytest.mark.parametrize("name", ["ir-mmv-error-vs-m", "ir-mmv-error-vs-k"])
def test_error_comparison(name, tmp_path):
    rows, summary = _run(name, tmp_path)
    for r in rows:
        m, p = r["metrics"], r["params"]
        assert len(m["IR-MMV_errors"]) == p["batch"]
        M = p.get("M", 25)
        if p["K"] <= 3 and M >= 25:  # where the quick budget suffices
            assert m["IR-MMV_mean"] < 2 * m["M-SP_mean"]  # M-SP is given the true K
            assert m["IR-MMV_mean"] < m["M-FOCUSS_mean"]
            assert m["IR-MMV_mean"] < 1e-4  # 40 dB: error at the noise level
    assert all("IR-MMV" in cell for cell in summary.values())


def test_digits(tmp_path):
    from overparam.experiments.papers.ir_mmv import _merged

    rows, summary = _run("ir-mmv-digits", tmp_path)
    assert len(rows) == 4  # two settings, each init in a cell of its own
    for r in _merged(rows):
        m = r["metrics"]
        assert len(m["images_IR-MMV"]) == 5 * 64 and len(m["original"]) == 5 * 64
        curve = np.asarray(m["ir_psnr_curve"])
        assert curve[-1] > curve[0] + 2  # IR-MMV's reconstruction improves along the path
        assert m["psnr_M-FOCUSS"] > 100  # exact recovery where the baselines are exact
        # seeded quick run (10,000 iterations): from V(0) = 0 IR-MMV is ahead of M-SP (given
        # K) in both settings (measured 35 vs 25 dB, 53 vs 23 dB); from the paper's balanced
        # V(0) = alpha_V 1 it stays near 10 dB
        assert m["psnr_IR-MMV"] > m["psnr_M-SP"] + 5
        assert m["psnr_IR-MMV (paper init)"] < m["psnr_IR-MMV"] - 10
        assert len(m["ir_psnr_curve_paper_init"]) == len(m["ir_psnr_curve"])
    assert len(summary) == 2


def test_digits_default_series_uses_the_estimators_defaults():
    from overparam.estimators import MMVRegressor
    from overparam.experiments.papers.ir_mmv import DIGIT_INITS

    default = MMVRegressor()
    label, scale = DIGIT_INITS[default.init]
    assert label == "IR-MMV" and scale == default._init_scale(None)
    assert DIGIT_INITS["ones"][1] == 1e-4  # the paper's alpha_g


def test_digits_inits_run_in_cells_of_their_own_on_the_cells_former_problem():
    """Each init's cell solves the problem of the former cell running both inits (its seed),
    so splitting the trial changed no number."""
    from overparam.experiments.papers.ir_mmv import DIGIT_INITS, _problem_seed
    from overparam.experiments.spec import cell_seed

    exp = get_experiment("ir-mmv-digits")
    for quick in (False, True):
        cells = exp.cells(quick=quick)
        assert sorted(tuple(c["inits"]) for c in cells) == sorted([(i,) for i in DIGIT_INITS] * 2)
        for params in cells:
            both = {**params, "inits": tuple(DIGIT_INITS)}
            for trial in (0, 3):
                assert (_problem_seed(params, cell_seed(exp.seed, params, trial))
                        == cell_seed(exp.seed, both, trial))
    assert _problem_seed(cells[0], 12345) == 12345  # not a cell's seed: used as given
