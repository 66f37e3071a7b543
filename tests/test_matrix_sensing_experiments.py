"""Quick versions of the asymmetric matrix-sensing experiments show what the theorems claim."""

import math

import numpy as np
import pytest

from overparam.experiments import get_experiment
from overparam.experiments.runner import run_serial

NAMES = [
    "asym-sensing-eps-slope",
    "asym-sensing-iterations",
    "asym-sensing-noise-floor",
    "asym-sensing-width",
    "asym-sensing-imbalance",
    "asym-sensing-sgd",
    "asym-sensing-phase-transition",
    "asym-sensing-rip-scaling",
]

_CACHE: dict = {}


def quick(name):
    if name not in _CACHE:
        exp = get_experiment(name)
        _CACHE[name] = (exp, run_serial(exp, quick=True))
    return _CACHE[name]


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_plots_and_summarizes(name, tmp_path):
    exp, rows = quick(name)
    assert exp.paper == "asymmetric-matrix-sensing-wind"
    assert rows and all(isinstance(r["metrics"], dict) for r in rows)
    exp.plot(rows, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    summary = exp.summarize(rows)
    assert summary
    for value in summary.values():
        assert not (isinstance(value, float) and math.isnan(value))


def test_error_falls_like_eps_to_at_least_four_thirds_when_rip_is_good():
    _exp, rows = quick("asym-sensing-eps-slope")
    slopes = {r["params"]["m"]: r["metrics"]["slope_at_K"] for r in rows}
    # A = I (rho = 0) and many measurements: the theorem's slope 4/3 or better.
    assert slopes[0] >= 4 / 3 and slopes[1600] >= 4 / 3, slopes
    # Fewer measurements (larger RIP constant) give a flatter slope, not a steeper one.
    assert slopes[150] < slopes[1600] < slopes[0] + 0.1, slopes
    # The error is small and decreasing in eps everywhere.
    for r in rows:
        err = np.asarray(r["metrics"]["error_at_K"])
        assert np.all(np.diff(err) < 0), err


def test_iterations_grow_like_log_one_over_eps():
    _, rows = quick("asym-sensing-iterations")
    for r in rows:
        iters = r["metrics"]["iterations"]
        assert None not in iters and np.all(np.diff(iters) > 0), iters
        assert 0.7 < r["metrics"]["slope_ratio"] < 1.4, r["metrics"]


def test_noise_floor_is_linear_in_noise_and_bounded_by_kappa_xi():
    _exp, rows = quick("asym-sensing-noise-floor")
    for r in rows:
        assert 0.8 < r["metrics"]["slope"] < 1.3, r["metrics"]
        assert r["metrics"]["max_ratio"] < 3.0, r["metrics"]
        assert np.all(np.diff(r["metrics"]["error_at_K"]) > 0)


def test_width_does_not_degrade_the_error():
    _, rows = quick("asym-sensing-width")
    for r in rows:
        err = dict(zip(r["metrics"]["width"], r["metrics"]["error_at_K"], strict=True))
        n = 16
        assert err[4 * n] <= 1.5 * err[n], err
        assert max(err.values()) < 5e-3, err  # eps = 1e-3: error of the order of eps or less


def test_imbalance_drift_grows_linearly_with_the_step_and_stays_small():
    _, rows = quick("asym-sensing-imbalance")
    for r in rows:
        change = r["metrics"]["change"]
        assert np.all(np.diff(change) > 0), change
        # O(eta^2) per step over a fixed time: O(eta) in total.
        assert 0.7 < r["metrics"]["slope"] < 1.5, r["metrics"]["slope"]
        assert max(change) < 0.05
        assert max(r["metrics"]["error"]) < 1e-2


def test_fresh_batches_beat_a_fixed_set_under_noise():
    _, rows = quick("asym-sensing-sgd")
    for r in rows:
        assert r["metrics"]["final_fresh"] < 0.5 * r["metrics"]["final_fixed"], r["metrics"]


def test_phase_transition_factorized_and_nuclear_norm():
    _exp, rows = quick("asym-sensing-phase-transition")
    by_m: dict = {}
    for r in rows:
        by_m.setdefault(r["params"]["m"], []).append(r["metrics"])
    # Below the degrees of freedom (36) nothing can succeed; well above, both do.
    assert all(mt["success_factorized"] == 0 and mt["success_nuclear"] == 0 for mt in by_m[35])
    assert all(mt["success_factorized"] == 1 and mt["success_nuclear"] == 1 for mt in by_m[80])


def test_gaussian_operator_concentrates_like_m_to_the_minus_half():
    exp, rows = quick("asym-sensing-rip-scaling")
    assert exp.summarize(rows)["slope"] == pytest.approx(-0.5, abs=0.1)


@pytest.mark.slow
def test_full_eps_slope_rises_with_m_past_four_thirds():
    exp = get_experiment("asym-sensing-eps-slope")
    rows = run_serial(exp)
    slopes: dict = {}
    for r in rows:
        slopes.setdefault(r["params"]["m"], []).append(r["metrics"]["slope_at_K"])
    med = {m: float(np.median(v)) for m, v in slopes.items()}
    assert med[150] < med[390] < med[1600] < med[6400] < med[0] + 0.1, med
    assert med[1600] >= 4 / 3 and med[6400] >= 4 / 3 and med[0] >= 4 / 3, med


@pytest.mark.slow
def test_full_phase_transition_both_methods_succeed_well_above_the_dof():
    exp = get_experiment("asym-sensing-phase-transition")
    rows = run_serial(exp)
    by_m: dict = {}
    for r in rows:
        by_m.setdefault(r["params"]["m"], []).append(r["metrics"])
    for key in ("success_factorized", "success_nuclear"):
        assert np.mean([mt[key] for mt in by_m[30]]) == 0
        assert np.mean([mt[key] for mt in by_m[100]]) == 1
