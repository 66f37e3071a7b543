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
                                early_stopping=None).fit(p.operator, p.y)
            for s in ("auto", "newton", "flow", "gd")}
    assert fits["auto"].result_.info["solver"] == "newton"
    assert relative_error(fits["flow"].coef_, fits["newton"].coef_) < 1e-5
    assert relative_error(fits["gd"].coef_, fits["newton"].coef_) < 5e-3
    for est in fits.values():
        assert relative_error(est.coef_, p.truth) < 2e-2
        assert est.n_iter_ > 0 and est.fit_time_ > 0


def test_paper_fixed_step_and_bad_solver(problem):
    p = problem
    est = HadamardRegressor(solver="gd", step=1e-2, init_scale=1e-3, tol=1e-5,
                            early_stopping=None).fit(p.operator, p.y)
    assert est.result_.converged
    # the flow's limit on A as given: a numeric step (data units) turns equilibration off
    flow = HadamardRegressor(init_scale=1e-3, early_stopping=None)
    flow.column_spread_limit = np.inf
    limit = flow.fit(p.operator, p.y).coef_
    assert relative_error(est.coef_, limit) < 5e-3  # O(step) from the flow's limit
    with pytest.raises(ValueError, match="solver"):
        HadamardRegressor(solver="bfgs").fit(p.operator, p.y)
    with pytest.raises(ValueError, match="path"):
        HadamardRegressor(solver="newton", early_stopping="validation").fit(p.operator, p.y)


def test_positive_regressor():
    p = make_sparse_problem(15, 40, 4, positive=True, random_state=2)
    est = HadamardRegressor(signed=False).fit(p.operator, p.y)
    assert np.all(est.coef_ >= 0)
    assert relative_error(est.coef_, p.truth) < 1e-2


def _noisy(seed):
    return make_sparse_problem(60, 150, 4, snr=10.0, random_state=seed)


def _noisy_fits(seed, solver, rules):
    """Relative errors of the limit and of the early-stopping ``rules`` on ``_noisy(seed)``."""
    p = _noisy(seed)
    sigma = float(np.linalg.norm(p.noise) / np.sqrt(p.y.size))
    common = {"depth": 3, "init_scale": 1e-4, "solver": solver, "tol": 1e-4}
    fits = {"limit": HadamardRegressor(**{**common, "solver": "newton"}, early_stopping=None),
            "validation": HadamardRegressor(**common, early_stopping="validation",
                                            random_state=seed),
            "discrepancy": HadamardRegressor(**common, early_stopping="discrepancy",
                                             noise_level=sigma)}
    return {name: relative_error(fits[name].fit(p.operator, p.y).coef_, p.truth)
            for name in ("limit", *rules)}


def test_automatic_stopping_beats_interpolation_under_noise():
    """Over 10 problems at 10 dB, early stopping beats the limit, with a wide margin.

    Measured (seeds 0-9): validation below the limit in 9 of 10, total error 0.60 of the
    limit's; discrepancy in 10 of 10, 0.44. A held-out split of 12 measurements is a noisy
    guide, so validation is asked for 7 wins and a ratio below 0.8 (not a per-problem win).
    """
    errs = [_noisy_fits(seed, "auto", ("validation", "discrepancy")) for seed in range(10)]
    limit = np.array([e["limit"] for e in errs])
    for rule, min_wins, max_ratio in (("validation", 7, 0.8), ("discrepancy", 9, 0.7)):
        err = np.array([e[rule] for e in errs])
        assert np.sum(err < limit) >= min_wins, (rule, err / limit)
        assert err.sum() < max_ratio * limit.sum(), (rule, err.sum() / limit.sum())


def test_gradient_descent_stops_where_the_flow_does():
    """GD with the flow-keeping step, stopped by the discrepancy principle, lands where the
    exact flow does (far closer than to the truth), and beats the limit there."""
    for seed in (0, 1):
        p = _noisy(seed)
        sigma = float(np.linalg.norm(p.noise) / np.sqrt(p.y.size))
        common = {"depth": 3, "init_scale": 1e-4, "tol": 1e-4, "early_stopping": "discrepancy",
                  "noise_level": sigma}
        gd = HadamardRegressor(solver="gd", **common).fit(p.operator, p.y).coef_
        flow = HadamardRegressor(solver="flow", **common).fit(p.operator, p.y).coef_
        limit = HadamardRegressor(depth=3, init_scale=1e-4, early_stopping=None)
        limit.fit(p.operator, p.y)
        assert relative_error(gd, flow) < 0.1 * relative_error(flow, p.truth)
        assert relative_error(gd, p.truth) < relative_error(limit.coef_, p.truth)


def test_validation_uses_the_flow_path():
    p = _noisy(0)
    est = HadamardRegressor(depth=3, init_scale=1e-4, early_stopping="validation",
                            random_state=0).fit(p.operator, p.y)
    info = est.result_.info
    assert info["solver"] == "flow"
    assert info["time"] == pytest.approx(info["chosen_time"])
    assert est.stop_reason_.value == "end_of_time"


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_early_stopped_flow_follows_the_exact_path(depth):
    """The held-out paths integrate loosely (flow_tolerances) and only choose the time; the
    refit to that time follows the exact path (here one integrated 1000 times tighter than the
    solver's defaults) far closer than the estimate is to the truth. Issue 13: at depth 5 a
    loose refit, with a coordinate mid-escape at the chosen time, was 3.0e-2 from it (error
    0.14)."""
    from overparam.solvers import hadamard_flow

    p = _noisy(0)
    est = HadamardRegressor(depth=depth, init_scale=1e-4, random_state=0)
    est.column_spread_limit = np.inf  # the path on A as given, as the exact one below
    est.fit(p.operator, p.y)
    tau = est.result_.info["chosen_time"]
    exact = hadamard_flow(as_operator(p.operator), p.y, depth=depth, init_scale=1e-4,
                          stopping=StoppingRule(max_flow_time=tau, tol=0), rtol=1e-9,
                          atol=1e-13).coef
    # measured 3e-6 or less (L = 2-5) against errors of 0.05-0.14
    assert relative_error(est.coef_, exact) < 1e-3 * relative_error(exact, p.truth)


def test_basis_pursuit(problem):
    p = problem
    bp = BasisPursuit().fit(p.operator, p.y)
    assert relative_error(bp.coef_, p.truth) < 1e-8
    assert bp.result_.info["l1_norm"] == pytest.approx(np.abs(bp.coef_).sum())
    # basis pursuit is the min-l1 interpolant: no other interpolant has a smaller l1 norm
    other = HadamardRegressor(init_scale=0.1, early_stopping=None).fit(p.operator, p.y).coef_
    assert np.abs(other).sum() > np.abs(bp.coef_).sum()


def test_positive_basis_pursuit():
    p = make_sparse_problem(12, 40, 4, positive=True, random_state=5)
    pbp = PositiveBasisPursuit().fit(p.operator, p.y)
    assert np.all(pbp.coef_ >= -1e-12)
    assert relative_error(pbp.coef_, p.truth) < 1e-6
    assert pbp.get_params() == {"method": "highs"}
    with pytest.raises(ValueError, match="no solution"):
        PositiveBasisPursuit().fit(np.eye(3), -np.ones(3))


def test_omp_selection_does_not_depend_on_column_scales():
    p = make_sparse_problem(30, 80, 3, random_state=0)
    scale = np.ones(80)
    scale[::2] = 1e6  # half the columns: large columns must not win for their size
    scaled = OMPRegressor(n_nonzero_coefs=3).fit(p.operator * scale, p.y)
    plain = OMPRegressor(n_nonzero_coefs=3).fit(p.operator, p.y)
    assert relative_error(plain.coef_, p.truth) < 1e-10
    np.testing.assert_array_equal(scaled.coef_ != 0, p.truth != 0)
    assert relative_error(scaled.coef_ * scale, p.truth) < 1e-8


def test_omp_lasso_lassocv(problem):
    p = problem
    omp = OMPRegressor(n_nonzero_coefs=4).fit(p.operator, p.y)
    assert relative_error(omp.coef_, p.truth) < 1e-10
    lasso = LassoRegressor(alpha=1e-4).fit(p.operator, p.y)
    assert relative_error(lasso.coef_, p.truth) < 2e-2
    cv = LassoCVRegressor(random_state=0).fit(p.operator, p.y)
    assert relative_error(cv.coef_, p.truth) < 2e-2
    assert cv.result_.info["alpha"] > 0
    with pytest.raises(ValueError):
        LassoRegressor(alpha=-1.0).fit(p.operator, p.y)


def test_min_norm_does_not_recover(problem):
    p = problem
    assert relative_error(MinNormRegressor().fit(p.operator, p.y).coef_, p.truth) > 0.3


def test_dlnn_recovers_sparse(problem):
    p = problem
    res = gradient_descent(DiagonalLinearNetwork(100), as_operator(p.operator), p.y,
                           init_scale=1e-2,
                           stopping=StoppingRule(tol=1e-6, max_iter=200_000))
    assert relative_error(res.coef, p.truth) < 2e-2


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_default_limit_is_basis_pursuit_on_clean_data(depth):
    """Issue 13: the default (init 'auto') is within 1e-4 of basis pursuit on 10 clean,
    identifiable problems, at every depth (measured: at most 2e-6)."""
    for seed in range(10):
        p = make_sparse_problem(60, 200, 6, random_state=seed)
        bp = BasisPursuit().fit(p.operator, p.y).coef_
        est = HadamardRegressor(depth=depth, early_stopping=None).fit(p.operator, p.y)
        assert est.stop_reason_.value == "converged"
        assert relative_error(est.coef_, bp) < 1e-4, (seed, relative_error(est.coef_, bp))


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_default_stopping_rules_do_not_crash_on_clean_data(depth):
    """Issue 13: held-out validation and the discrepancy principle follow the dual flow (loose
    tolerances) across the blow-up boundary region of L > 2 without a DivergenceError.
    Validation sees no overfitting on clean data and ends at the (exact) limit on these
    seeds (not on all: see the known gap in docs/sparse.md); the discrepancy principle stops
    on the path at the level."""
    for seed in (1, 3):
        p = make_sparse_problem(60, 200, 6, random_state=seed)
        bp = BasisPursuit().fit(p.operator, p.y).coef_
        est = HadamardRegressor(depth=depth, random_state=0).fit(p.operator, p.y)
        assert relative_error(est.coef_, bp) < 1e-4, seed
        est = HadamardRegressor(depth=depth, early_stopping="discrepancy",
                                noise_level=1e-8).fit(p.operator, p.y)
        # the level or the tolerance (relative residual 1e-6), whichever comes first
        assert est.stop_reason_.value in ("discrepancy", "converged")
        assert np.linalg.norm(p.operator @ est.coef_ - p.y) <= 1e-6 * np.linalg.norm(p.y)
        assert relative_error(est.coef_, p.truth) < 0.1


def test_tall_noiseless_problem_at_every_depth():
    """1000 x 150 (overdetermined, consistent): the solution is unique; no crash at any depth."""
    p = make_sparse_problem(1000, 150, 10, random_state=0)
    for depth in (2, 3, 4, 5):
        for rule in (None, "validation"):
            est = HadamardRegressor(depth=depth, early_stopping=rule).fit(p.operator, p.y)
            assert relative_error(est.coef_, p.truth) < 1e-4, (depth, rule)


def test_grid_search_over_depth():
    from sklearn.model_selection import GridSearchCV

    p = make_sparse_problem(60, 200, 6, random_state=0)
    search = GridSearchCV(HadamardRegressor(), {"depth": [2, 3]}, cv=3).fit(p.operator, p.y)
    assert search.best_score_ > 0.99


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("solver", ["auto", "flow"])
def test_inconsistent_data_gives_least_squares(depth, solver):
    """Issue 13: on overdetermined noisy data (no solution of A x = y) the limit is the
    least-squares solution (unique here), reported as converged only because the normal
    equations hold."""
    from sklearn.datasets import make_regression

    for seed in range(3):
        A, y = make_regression(200, 10, noise=4, random_state=seed)
        ls = np.linalg.lstsq(A, y, rcond=None)[0]
        est = HadamardRegressor(depth=depth, solver=solver, early_stopping=None).fit(A, y)
        assert relative_error(est.coef_, ls) < 1e-5
        assert est.stop_reason_.value == "converged"
        r = A @ est.coef_ - y  # the normal equations, to the default tol 1e-6
        assert np.linalg.norm(A.T @ r) <= 1e-6 * np.linalg.norm(A, 2) * np.linalg.norm(y)


def test_rank_deficient_inconsistent_data():
    """Underdetermined with repeated rows and contradicting measurements: the limit solves
    the normal equations, as the flow on the projected measurements does."""
    p = make_sparse_problem(40, 100, 3, random_state=4)
    A = np.vstack([p.operator, p.operator[:5]])
    y = np.concatenate([p.y, p.y[:5] + 0.3])
    est = HadamardRegressor(early_stopping=None).fit(A, y)
    assert est.stop_reason_.value == "converged"
    r = A @ est.coef_ - y
    assert np.linalg.norm(A.T @ r) <= 1e-6 * np.linalg.norm(A, 2) * np.linalg.norm(y)
    # the flow with y and with its projection onto range(A) is the same path
    projected = A @ np.linalg.lstsq(A, y, rcond=None)[0]
    same = HadamardRegressor(early_stopping=None).fit(A, projected)
    assert relative_error(est.coef_, same.coef_) < 1e-6


def test_init_scale_auto_is_scale_equivariant():
    p = make_sparse_problem(40, 100, 4, random_state=3)
    base = HadamardRegressor(depth=3, early_stopping=None).fit(p.operator, p.y)
    scaled = HadamardRegressor(depth=3, early_stopping=None).fit(1e3 * p.operator, 1e-3 * p.y)
    assert scaled.init_scale_ == pytest.approx(1e-6 * base.init_scale_, rel=1e-9)
    assert relative_error(scaled.coef_, 1e-6 * base.coef_) < 1e-6
    fixed = HadamardRegressor(init_scale=1e-3, early_stopping=None).fit(p.operator, p.y)
    assert fixed.init_scale_ == 1e-3
    with pytest.raises(ValueError, match="init_scale"):
        HadamardRegressor(init_scale="tiny").fit(p.operator, p.y)


def _clean_and_noisy(seed=0):
    rng = np.random.default_rng([seed, 7])
    A = rng.standard_normal((40, 120)) / np.sqrt(40)
    x = np.zeros(120)
    x[rng.choice(120, 4, replace=False)] = rng.choice([-1, 1], 4) * (1 + rng.random(4))
    noise = rng.standard_normal(40)
    noise *= 0.1 * np.linalg.norm(A @ x) / np.linalg.norm(noise)  # 20 dB
    return A, x, A @ x, A @ x + noise


def test_validated_default_returns_the_limit_when_a_fold_limit_predicts_held_out_rows():
    A, x, clean, _ = _clean_and_noisy()
    default = HadamardRegressor().fit(A, clean)
    info = default.result_.info
    assert info["refit"] == "limit" and info["path_iterations"] == []
    assert info["held_out_limit_residual"] <= HadamardRegressor.validation_exact_rtol
    limit = HadamardRegressor(early_stopping=None).fit(A, clean)
    assert np.abs(default.coef_ - limit.coef_).max() <= 1e-12
    assert relative_error(default.coef_, x) < 1e-6


def test_held_out_shortcut_leaves_noisy_fits_and_explicit_solvers_to_the_paths():
    A, _, clean, noisy = _clean_and_noisy()
    default = HadamardRegressor().fit(A, noisy)
    paths_only = HadamardRegressor()
    paths_only.validation_exact_rtol = None
    paths_only.fit(A, noisy)
    assert default.result_.info["refit"] == "time"
    assert len(default.result_.info["path_iterations"]) == 5
    np.testing.assert_array_equal(default.coef_, paths_only.coef_)  # the try changes nothing
    flow = HadamardRegressor(solver="flow").fit(A, clean)  # no fast limit asked for
    assert flow.result_.info["refit"] != "limit"
