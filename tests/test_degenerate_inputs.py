"""Degenerate inputs (issue 13, item 7): no hang, no silent garbage, no false "converged"."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from overparam.baselines import BasisPursuit, MinNormRegressor
from overparam.datasets import make_sparse_problem
from overparam.estimators import DeepMatrixRegressor, HadamardRegressor
from overparam.methods import available_methods, get_method
from overparam.operators import as_operator
from overparam.parameterizations import Identity
from overparam.solvers import gradient_descent
from overparam.solvers.steps import MAX_STEP, AdaptiveStep, ConstantStep
from overparam.stopping import (
    DegenerateInputWarning,
    DivergenceError,
    StoppingRule,
    StopReason,
)

# Constructor arguments that a registered method cannot do without.
REQUIRED = {"group-hadamard": {"groups": 1}, "group-lasso": {"groups": 1},
            "group-primal-dual": {"groups": 1}, "m-sp": {"n_nonzero_rows": 2}}
MATRIX = {"factorized", "factorized-psd", "snn", "deep-matrix", "nuclear-norm",
          "nuclear-norm-cv"}


def _data(name, rng):
    if name in MATRIX:
        return rng.standard_normal((12, 3, 3)), rng.standard_normal(12)
    y = rng.standard_normal(10)
    if get_method(name)._y_ndim == 2:
        y = np.column_stack([y, -y])
    return rng.standard_normal((10, 15)), y


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_all_zero_operator_and_all_zero_y(name):
    rng = np.random.default_rng(0)
    A, y = _data(name, rng)
    cls = get_method(name)
    # A = 0, y != 0: every x fits equally; x = 0 with a warning and an honest stop reason.
    with pytest.warns(DegenerateInputWarning, match="all zero"):
        est = cls(**REQUIRED.get(name, {})).fit(np.zeros_like(A), y)
    assert not np.any(est.coef_)
    assert est.stop_reason_ == StopReason.INCONSISTENT
    # A = 0, y = 0 and A != 0, y = 0: x = 0 is exact.
    for A_ in (np.zeros_like(A), A):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DegenerateInputWarning)
            est = cls(**REQUIRED.get(name, {})).fit(A_, np.zeros_like(y))
        assert not np.any(est.coef_)
        assert est.stop_reason_ == StopReason.CONVERGED


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_a_clear_error(bad):
    A, y = np.random.default_rng(1).standard_normal((2, 8, 12))[0], np.ones(8)
    A_bad, y_bad = A.copy(), y.copy()
    A_bad[2, 3], y_bad[1] = bad, bad
    with pytest.raises(ValueError, match="Input X contains"):
        MinNormRegressor().fit(A_bad, y)
    with pytest.raises(ValueError, match="Input y contains"):
        MinNormRegressor().fit(A, y_bad)
    with pytest.raises(ValueError, match="NaN or Inf"):  # the Operator path (3-D stack)
        DeepMatrixRegressor().fit(np.full((4, 2, 2), bad), np.ones(4))


@pytest.mark.parametrize("policy", [AdaptiveStep(), ConstantStep(1.0, on_divergence="halve")])
def test_gradient_descent_on_a_zero_operator_stops(policy):
    # Before: the adaptive step grew to inf on the flat loss and backtracking never ended.
    op = as_operator(np.zeros((5, 4)))
    res = gradient_descent(Identity((4,)), op, np.ones(5), init_scale=0.0, step=policy,
                           stopping=StoppingRule(max_iter=100))
    assert res.stop_reason == StopReason.STATIONARY and res.n_iter == 0
    assert not np.any(res.coef)


def test_gradient_descent_zero_y_stops_at_once():
    op = as_operator(np.random.default_rng(2).standard_normal((5, 4)))
    res = gradient_descent(Identity((4,)), op, np.zeros(5), init_scale=0.0)
    assert res.stop_reason == StopReason.CONVERGED and res.n_iter == 0


def test_step_policies_stay_finite_and_backtracking_ends():
    step = AdaptiveStep()
    eta = step.start(1e308)
    for _ in range(50):
        eta = step.next_after_accept(eta)
    assert eta == MAX_STEP
    with pytest.raises(DivergenceError):
        for _ in range(2100):  # at most ~2000 halvings from MAX_STEP
            eta = step.next_after_reject(eta)
    halving = ConstantStep(1.0, on_divergence="halve")
    eta = halving.start(None)
    with pytest.raises(DivergenceError):
        for _ in range(1100):
            eta = halving.next_after_reject(eta)


def test_min_norm_gd_and_deep_matrix_on_zero_operator_return():
    # The two hangs of the issue; now x = 0 with a warning (y != 0), no loop at all.
    with pytest.warns(DegenerateInputWarning):
        est = MinNormRegressor(solver="gd").fit(np.zeros((6, 9)), np.ones(6))
    assert est.n_iter_ == 0 and not np.any(est.coef_)
    with pytest.warns(DegenerateInputWarning):
        est = DeepMatrixRegressor(max_iter=50).fit(np.zeros((6, 3, 3)), np.ones(6))
    assert est.n_iter_ == 0 and not np.any(est.coef_)


@pytest.mark.parametrize("factor", [2.0**-40, 2.0**160, 1e-6, 1e6, 1e150])
def test_extreme_scales_are_equivariant(factor):
    p = make_sparse_problem(40, 80, 4, random_state=0)
    ref = HadamardRegressor(early_stopping=None).fit(p.operator, p.y).coef_
    scaled = HadamardRegressor(early_stopping=None).fit(p.operator, factor * p.y).coef_
    assert np.all(np.isfinite(scaled))
    # exact for powers of 256 (the scaling quantum), else within the effect of an init up to
    # 16 times larger or smaller relative to the data
    rtol = 1e-12 if (np.log2(factor) / 8).is_integer() else 1e-3
    np.testing.assert_allclose(scaled / factor, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    bp = BasisPursuit().fit(p.operator / factor, p.y)
    np.testing.assert_allclose(bp.coef_ / factor, p.truth, atol=1e-6)


def test_normalization_is_exact_for_powers_of_256():
    p = make_sparse_problem(30, 60, 3, random_state=1)
    ref = HadamardRegressor(early_stopping=None).fit(p.operator, p.y)
    est = HadamardRegressor(early_stopping=None).fit(2.0**32 * p.operator, 2.0**-8 * p.y)
    np.testing.assert_array_equal(est.coef_, ref.coef_ * 2.0**-40)
    a, s = ref.result_.info["data_scales"]
    assert (a, s) == (1.0, 1.0)  # unit-scale data are left untouched
    assert est.result_.info["data_scales"] == (2.0**32, 2.0**-8)


def test_spectral_network_with_huge_y_finishes():
    # Before: y * 1e150 overflowed inside the SVD of the network and numpy.linalg.svd hung.
    from overparam.estimators import SpectralNetworkRegressor

    rng = np.random.default_rng(3)
    A = rng.standard_normal((20, 3, 3)) / np.sqrt(20)
    X = np.outer(rng.standard_normal(3), rng.standard_normal(3))
    y = np.tensordot(A, X, 2)
    est = SpectralNetworkRegressor(max_iter=300, early_stopping=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        huge = est.fit(A, 1e150 * y).coef_ / 1e150
        quantum = est.fit(A, 2.0**496 * y).coef_ / 2.0**496  # 256^62, about 2e149
        small = est.fit(A, y).coef_
    np.testing.assert_array_equal(quantum, small)
    assert np.all(np.isfinite(huge))
    residual = np.linalg.norm(np.tensordot(A, huge, 2) - y) / np.linalg.norm(y)
    # 300 steps from an init 1e150 / 2^496 (about 5) times smaller relative to the data than
    # for y itself: measured 4.6e-3 (3.0e-4 for y); before, the SVD hung.
    assert residual < 2e-2


def test_badly_scaled_columns_warn_with_the_residual():
    p = make_sparse_problem(40, 80, 4, random_state=2)
    A = p.operator.copy()
    A[:, ::2] *= 1e6
    with pytest.warns(ConvergenceWarning, match="relative residual"):
        est = MinNormRegressor(solver="gd", max_iter=200).fit(A, p.y)
    assert est.stop_reason_ == StopReason.MAX_ITER
    assert est.result_.info["relative_residual"] > 1e-3


def test_false_convergence_claim_is_corrected():
    # A solver that says "converged" at a point that neither fits y nor is a least-squares
    # point: the base class reports not_optimal and warns.
    from overparam.solvers import SolverResult

    class Liar(MinNormRegressor):
        def _solve(self, operator, y, control):
            return SolverResult(coef=np.zeros(operator.input_shape), params=(), n_iter=1,
                                wall_time=0.0, stop_reason=StopReason.CONVERGED, info={})

    p = make_sparse_problem(20, 40, 3, random_state=3)
    with pytest.warns(ConvergenceWarning, match="neither fits"):
        est = Liar().fit(p.operator, p.y)
    assert est.stop_reason_ == StopReason.NOT_OPTIMAL


def test_least_squares_limit_passes_the_check():
    # Overdetermined, inconsistent: the least-squares point is the right answer, no warning.
    rng = np.random.default_rng(4)
    A, y = rng.standard_normal((50, 5)), rng.standard_normal(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = MinNormRegressor().fit(A, y)
    np.testing.assert_allclose(est.coef_, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-6)
    assert est.result_.info["relative_gradient"] < 1e-4


def test_one_measurement_with_validation_falls_back_to_the_limit():
    with pytest.warns(UserWarning, match="too few to hold out"):
        est = HadamardRegressor().fit(np.array([[1.0, 2.0, 0.5]]), np.array([2.0]))
    np.testing.assert_allclose(est.predict(np.array([[1.0, 2.0, 0.5]])), [2.0], rtol=1e-5)
