"""Quick versions of the spectral-network experiments reproduce the paper's claims."""

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
    return rows, exp.summarize(rows)


def test_aligned_flow_limit_is_the_nuclear_norm_minimizer(tmp_path):
    rows, summary = _run("snn-aligned", tmp_path)
    m = rows[0]["metrics"]
    b = "truth basis: "
    # The flow's limit is the least-squares diagonal (Theorem 2 with noise) and attains
    # cvxpy's nuclear-norm optimum under the same residual (Theorem 3) ...
    assert summary[b + "flow limit vs least-squares diagonal (max)"] < 1e-8
    assert summary[b + "flow limit vs cvxpy relative gap (max)"] < 1e-6
    # ... which, in X*'s singular basis, is ||X*||_* = 1 up to the noise.
    assert abs(summary[b + "flow limit nuclear norm (median)"] - 1.0) < 0.15
    # Small steps follow the flow, with an O(step) gap; the largest step diverges.
    gaps = [m[f"lr={step:g}:gap_to_flow"] for step in (1e-3, 3e-3)]
    assert gaps[0] < 1e-2 and gaps[0] < gaps[1]
    for step in (1e-3, 3e-3):
        loss = np.asarray(m[f"lr={step:g}:loss"])
        assert not m[f"lr={step:g}:diverged"] and np.all(np.diff(loss) <= 1e-12)
    assert m["lr=0.03:diverged"]


def test_gaussian_snn_beats_least_squares(tmp_path):
    rows, summary = _run("snn-gaussian", tmp_path)
    # Paper: nuclear norm about 0.95 (SNN) vs about 1.5 (least squares); PSNR about 20 vs 7.
    assert 0.85 < summary["snn: nuclear_norm (median)"] < 1.0
    assert summary["least-squares: nuclear_norm (median)"] > 1.2
    assert summary["snn: psnr (median)"] > summary["least-squares: psnr (median)"] + 8
    assert summary["depth-3: effective_rank (median)"] <= summary["snn: effective_rank (median)"]
    for r in rows:
        assert r["metrics"]["snn:train_residual"] < 1e-3


def test_gaussian_authors_setting_depth_four(tmp_path):
    """The authors' notebook: m = 75, A_i x10, a depth-4 SNN of two blocks per layer."""
    exp = get_experiment("snn-gaussian")
    params = {"setting": "authors", "methods": ("snn", "least-squares"), "max_iter": 20_000}
    m = exp.run_trial(params, 3)
    assert m["snn_depth"] == 4
    assert m["snn:train_residual"] < 1e-3 * m["least-squares:train_residual"] + 1e-3
    assert 0.85 < m["snn:nuclear_norm"] < 1.05 < 1.2 < m["least-squares:nuclear_norm"]
    assert m["snn:psnr"] > m["least-squares:psnr"] + 8
    rows = [{"params": params, "trial": 0, "seed": 3, "metrics": m, "time": 0.0}]
    summary = exp.summarize(rows)
    assert "authors' setting (m=75, A x10, depth 4): snn: psnr (median)" in summary
    exp.plot(rows, tmp_path / "authors.png")
    assert (tmp_path / "authors.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", ["snn-images"])
def test_images_snn_beats_least_squares(name, tmp_path):
    rows, _ = _run(name, tmp_path)
    gains = []
    for r in rows:
        m = r["metrics"]
        assert m["snn:psnr"] > m["least-squares:psnr"]
        gains.append(m["snn:psnr"] - m["least-squares:psnr"])
        assert len(m["snn:image"]) == 64
    assert np.mean(gains) > 2.0  # dB


@pytest.mark.slow
@pytest.mark.parametrize("name", ["snn-aligned", "snn-gaussian", "snn-images"])
def test_full_runs(name, tmp_path):
    exp = get_experiment(name)
    rows = run_serial(exp)
    exp.plot(rows, tmp_path / "full.png")
    summary = exp.summarize(rows)
    if name == "snn-gaussian":
        snn, ls = "snn: nuclear_norm (median)", "least-squares: nuclear_norm (median)"
        assert summary[snn] < summary[ls]
        assert summary["snn: psnr (median)"] > summary["least-squares: psnr (median)"] + 8
