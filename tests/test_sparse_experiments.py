"""Quick versions of the "More is less" experiments show the paper's claims."""

import numpy as np
import pytest

from overparam.experiments import get_experiment
from overparam.experiments.papers.more_is_less import product_init, theory_bound
from overparam.experiments.runner import run_serial


@pytest.fixture(scope="module")
def phase_rows():
    return run_serial(get_experiment("more-is-less-phase-transition"), quick=True)


@pytest.fixture(scope="module")
def scaling_rows():
    return run_serial(get_experiment("more-is-less-init-scaling"), quick=True)


def test_phase_transition_claim(phase_rows, tmp_path):
    exp = get_experiment("more-is-less-phase-transition")
    summary = exp.summarize(phase_rows)
    for sign in ("positive", "signed"):
        bp = summary[f"{sign}: mean success bp"]
        # IR recovers about as often as (positive) basis pursuit, cell by cell (L = 3) ...
        assert summary[f"{sign}: mean |ir3 - bp| success per cell"] < 0.05
        assert summary[f"{sign}: mean success ir2"] > 0.6 * bp
        # ... while minimum-l2 interpolation succeeds only at M = N (1 of 9 rows of the grid)
        assert summary[f"{sign}: mean success min-l2"] < 0.2 < 0.6 < bp
    # the per-factor reading (u(0) = 1e-6, product 1e-6^L) is closer still to BP: at L = 3
    # its limit succeeds exactly where BP does, and L = 2 gains on the product reading
    for sign in ("positive", "signed"):
        tag = f"{sign}, per-factor alpha"
        assert summary[f"{tag}: mean |ir3 - bp| success per cell"] < 0.02
        assert (summary[f"{tag}: mean |ir2 - bp| success per cell"]
                <= summary[f"{sign}: mean |ir2 - bp| success per cell"])
    at_n = [r["metrics"]["success_min-l2"] for r in phase_rows if r["params"]["M"] == 20]
    below = [r["metrics"]["success_min-l2"] for r in phase_rows if r["params"]["M"] <= 16]
    assert np.mean(at_n) == 1.0 and np.mean(below) == 0.0
    path = tmp_path / "phase.png"
    exp.plot(phase_rows, path)
    assert path.stat().st_size > 10_000


def test_init_scaling_claim(scaling_rows, tmp_path):
    exp = get_experiment("more-is-less-init-scaling")
    summary = exp.summarize(scaling_rows)
    for depth in (3, 4):
        # polynomial decay at least as fast as the theory's rate alpha^(1 - 2/L)
        slope = summary[f"L={depth}: fitted slope (alpha in [1e-6, 1e-2])"]
        assert slope >= summary[f"L={depth}: theory slope 1 - 2/L"]
    for depth in (2, 3, 4):
        assert summary[f"L={depth}: epsilon below Thm 1.1 bound"]
        eps = next(r["metrics"]["epsilon"] for r in scaling_rows
                   if r["params"]["depth"] == depth)
        assert np.all(np.diff(eps[2:]) < 0)  # smaller alpha, smaller gap (alpha <= 1e-2)
    # deeper is closer to min-l1 at the same small init
    assert (summary["L=4: median epsilon at alpha=1e-6"]
            < summary["L=2: median epsilon at alpha=1e-6"] / 10)
    path = tmp_path / "scaling.png"
    exp.plot(scaling_rows, path)
    assert path.stat().st_size > 10_000


def test_theory_bound_values():
    # L = 2: log(2N) / log(Q / (2N alpha))
    assert theory_bound(1e-6, 3.0, 1000, 2) == pytest.approx(
        np.log(2000) / np.log(3.0 / 2e-3))
    assert theory_bound(1.0, 3.0, 1000, 3) == np.inf  # beta_1 >= Q: the theorem is void
    assert theory_bound(1e-9, 3.0, 1000, 4) < theory_bound(1e-6, 3.0, 1000, 4)


def test_paper_horizon_separates_the_readings():
    """At the paper's eta T = 1e5 the per-factor L = 3 flow has not left the origin."""
    trial = get_experiment("more-is-less-phase-transition").run_trial
    cell = {"sign": "signed", "M": 14, "s": 2}
    per_factor = trial({**cell, "init_reading": "per-factor", "horizon": "paper"}, 3)
    product = trial({**cell, "init_reading": "product", "horizon": "paper"}, 3)
    assert per_factor["error_ir3"] > 0.99 and per_factor["success_bp"] == 1.0
    assert product["success_ir3"] == 1.0
    assert product_init("per-factor", 3) == pytest.approx(1e-18)
    with pytest.raises(ValueError, match="init_reading"):
        product_init("each", 2)


@pytest.mark.parametrize("cell", [
    {"sign": "positive", "M": 8, "s": 2, "init_reading": "product", "horizon": "limit"},
    {"sign": "signed", "M": 14, "s": 5, "init_reading": "per-factor", "horizon": "limit"},
])
def test_phase_trial_matches_the_matrix_path(cell):
    """The trial wraps A once (the Operator path of ``fit``); every metric equals, bit for bit,
    that of the estimators fit on the matrix itself (scikit-learn's ``validate_data`` path)."""
    from overparam.baselines import BasisPursuit, MinNormRegressor
    from overparam.datasets import make_sparse_problem
    from overparam.experiments.papers.more_is_less import _paper_hadamard, _phase_trial
    from overparam.metrics import relative_error

    seed = 1234
    got = _phase_trial(cell, seed)
    positive = cell["sign"] == "positive"
    p = make_sparse_problem(cell["M"], 20, cell["s"], positive=positive, unit_norm=True,
                            random_state=seed)
    assert isinstance(p.operator, np.ndarray)
    coefs = {"min-l2": MinNormRegressor().fit(p.operator, p.y).coef_,
             "bp": BasisPursuit(positive=positive).fit(p.operator, p.y).coef_}
    for depth in (2, 3):
        coefs[f"ir{depth}"] = _paper_hadamard(
            depth=depth, signed=not positive, init_scale=product_init(cell["init_reading"], depth),
            tol=1e-10, early_stopping=None).fit(p.operator, p.y).coef_
    expected = {}
    for name, coef in coefs.items():
        expected[f"error_{name}"] = relative_error(coef, p.truth)
        expected[f"success_{name}"] = float(expected[f"error_{name}"] <= 0.01)
    assert got == expected
