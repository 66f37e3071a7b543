"""HadamardRegressor (all solvers, automatic stopping) and the sparse baselines."""

import numpy as np
import pytest

from overparam.baselines import (
    BasisPursuit,
    LassoCVRegressor,
    LassoRegressor,
    MinNormRegressor,
    OMPRegressor,
    PositiveBasisPursuit,
)
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.methods import available_methods, get_method
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.parameterizations import DiagonalLinearNetwork
from overparam.solvers import gradient_descent
from overparam.stopping import StoppingRule


@pytest.fixture(scope="module")
def problem():
    return make_sparse_problem(40, 100, 4, random_state=3)


def test_registered_names():
    names = available_methods()
    for name, cls in [("hadamard", HadamardRegressor), ("basis-pursuit", BasisPursuit),
                      ("positive-basis-pursuit", PositiveBasisPursuit), ("omp", OMPRegressor),
                      ("lasso", LassoRegressor), ("lasso-cv", LassoCVRegressor)]:
        assert name in names
        assert get_method(name) is cls


@pytest.mark.parametrize("depth", [2, 3])
def test_solvers_agree_and_recover(problem, depth):
    p = problem
    fits = {s: HadamardRegressor(depth=depth, solver=s, init_scale=1e-4, tol=1e-7,
                                early_stopping=None).fit(p.A, p.y)
            for s in ("auto", "newton", "flow", "gd")}
    assert fits["auto"].result_.info["solver"] == "newton"
    assert relative_error(fits["flow"].coef_, fits["newton"].coef_) < 1e-5
    assert relative_error(fits["gd"].coef_, fits["newton"].coef_) < 5e-3
    for est in fits.values():
        assert relative_error(est.coef_, p.x) < 2e-2
        assert est.n_iter_ > 0 and est.fit_time_ > 0


def test_paper_fixed_step_and_bad_solver(problem):
    p = problem
    est = HadamardRegressor(solver="gd", step=1e-2, init_scale=1e-3, tol=1e-5,
                            early_stopping=None).fit(p.A, p.y)
    assert est.result_.converged
    limit = HadamardRegressor(init_scale=1e-3, early_stopping=None).fit(p.A, p.y).coef_
    assert relative_error(est.coef_, limit) < 5e-3  # O(step) from the flow's limit
    with pytest.raises(ValueError, match="solver"):
        HadamardRegressor(solver="bfgs").fit(p.A, p.y)
    with pytest.raises(ValueError, match="path"):
        HadamardRegressor(solver="newton", early_stopping="validation").fit(p.A, p.y)


def test_positive_regressor():
    p = make_sparse_problem(15, 40, 4, positive=True, random_state=2)
    est = HadamardRegressor(signed=False).fit(p.A, p.y)
    assert np.all(est.coef_ >= 0)
    assert relative_error(est.coef_, p.x) < 1e-2


def _noisy(seed):
    return make_sparse_problem(60, 150, 4, snr=10.0, random_state=seed)


@pytest.mark.parametrize("solver", ["auto", "gd"])
def test_automatic_stopping_beats_interpolation_under_noise(solver):
    """Averaged over problems, early stopping (validation / discrepancy) beats the limit."""
    errs = {"limit": [], "validation": [], "discrepancy": []}
    for seed in range(4):
        p = _noisy(seed)
        sigma = float(np.linalg.norm(p.noise) / np.sqrt(p.y.size))
        common = {"depth": 3, "init_scale": 1e-4, "solver": solver, "tol": 1e-4}
        fits = {
            # the limit of GD and of the flow
            "limit": HadamardRegressor(**{**common, "solver": "newton"}, early_stopping=None),
            "validation": HadamardRegressor(**common, early_stopping="validation",
                                            random_state=seed),
            "discrepancy": HadamardRegressor(**common, early_stopping="discrepancy",
                                             noise_level=sigma),
        }
        for name, est in fits.items():
            errs[name].append(relative_error(est.fit(p.A, p.y).coef_, p.x))
    mean = {k: float(np.mean(v)) for k, v in errs.items()}
    assert mean["discrepancy"] < 0.8 * mean["limit"]
    assert mean["validation"] < 0.8 * mean["limit"]


def test_validation_uses_the_flow_path():
    p = _noisy(0)
    est = HadamardRegressor(depth=3, init_scale=1e-4, early_stopping="validation",
                            random_state=0).fit(p.A, p.y)
    info = est.result_.info
    assert info["solver"] == "flow"
    assert info["time"] == pytest.approx(info["chosen_time"])
    assert est.stop_reason_.value == "end_of_time"


@pytest.mark.parametrize("depth", [2, 3])
def test_early_stopped_flow_follows_the_exact_path(depth):
    """The validated fit integrates loosely (flow_tolerances): its estimate at the chosen time
    stays far closer to the exact path's (default tolerances) than to the truth."""
    from overparam.solvers import hadamard_flow

    p = _noisy(0)
    est = HadamardRegressor(depth=depth, init_scale=1e-4, random_state=0).fit(p.A, p.y)
    tau = est.result_.info["chosen_time"]
    exact = hadamard_flow(as_operator(p.A), p.y, depth=depth, init_scale=1e-4,
                          stopping=StoppingRule(max_flow_time=tau, tol=0)).coef
    # measured 1.3e-3 (L=2) and 0.6e-3 (L=3) against errors of 0.077 and 0.052
    assert relative_error(est.coef_, exact) < 0.1 * relative_error(exact, p.x)


def test_basis_pursuit(problem):
    p = problem
    bp = BasisPursuit().fit(p.A, p.y)
    assert relative_error(bp.coef_, p.x) < 1e-8
    assert bp.result_.info["l1_norm"] == pytest.approx(np.abs(bp.coef_).sum())
    # basis pursuit is the min-l1 interpolant: no other interpolant has a smaller l1 norm
    other = HadamardRegressor(init_scale=0.1, early_stopping=None).fit(p.A, p.y).coef_
    assert np.abs(other).sum() > np.abs(bp.coef_).sum()


def test_positive_basis_pursuit():
    p = make_sparse_problem(12, 40, 4, positive=True, random_state=5)
    pbp = PositiveBasisPursuit().fit(p.A, p.y)
    assert np.all(pbp.coef_ >= -1e-12)
    assert relative_error(pbp.coef_, p.x) < 1e-6
    assert pbp.get_params() == {"method": "highs"}
    with pytest.raises(ValueError, match="no solution"):
        PositiveBasisPursuit().fit(np.eye(3), -np.ones(3))


def test_omp_lasso_lassocv(problem):
    p = problem
    assert relative_error(OMPRegressor(n_nonzero_coefs=4).fit(p.A, p.y).coef_, p.x) < 1e-10
    lasso = LassoRegressor(alpha=1e-4).fit(p.A, p.y)
    assert relative_error(lasso.coef_, p.x) < 2e-2
    cv = LassoCVRegressor(random_state=0).fit(p.A, p.y)
    assert relative_error(cv.coef_, p.x) < 2e-2
    assert cv.result_.info["alpha"] > 0
    with pytest.raises(ValueError):
        LassoRegressor(alpha=-1.0).fit(p.A, p.y)


def test_min_norm_does_not_recover(problem):
    p = problem
    assert relative_error(MinNormRegressor().fit(p.A, p.y).coef_, p.x) > 0.3


def test_dlnn_recovers_sparse(problem):
    p = problem
    res = gradient_descent(DiagonalLinearNetwork(100), as_operator(p.A), p.y, init_scale=1e-2,
                           stopping=StoppingRule(tol=1e-6, max_iter=200_000))
    assert relative_error(res.coef, p.x) < 2e-2
