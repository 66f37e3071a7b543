import numpy as np
import pytest
from sklearn.base import clone

from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.estimators.base import holdout_split
from overparam.metrics import relative_error
from overparam.stopping import Oracle, StopReason


def test_sklearn_conventions():
    est = HadamardRegressor(depth=3, init_scale=1e-3)
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(depth=4).depth == 4


def test_fit_sets_report_and_predict():
    p = make_sparse_problem(30, 60, 3, random_state=0)
    est = HadamardRegressor(init_scale=1e-4).fit(p.operator, p.y)
    assert est.coef_.shape == (60,)
    assert est.n_iter_ == est.result_.n_iter > 0
    assert est.fit_time_ > 0
    assert isinstance(est.stop_reason_, StopReason)
    np.testing.assert_allclose(est.predict(p.operator), p.operator @ est.coef_)


def test_holdout_split_is_a_seeded_partition():
    train, held = holdout_split(10, 0.3, random_state=1)
    assert len(held) == 3 and len(train) == 7
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(10))
    again = holdout_split(10, 0.3, random_state=1)
    np.testing.assert_array_equal(train, again[0])
    with pytest.raises(ValueError, match="at least 2"):
        holdout_split(1, 0.5)


def test_validation_stopping_beats_interpolation_under_noise():
    errs = {"none": [], "validation": []}
    for seed in range(3):
        p = make_sparse_problem(120, 300, 8, snr=10, random_state=seed)
        for rule in errs:
            est = HadamardRegressor(init_scale=1e-4, max_iter=30_000, random_state=seed,
                                    early_stopping=None if rule == "none" else rule)
            est.fit(p.operator, p.y)
            errs[rule].append(relative_error(est.coef_, p.truth))
        assert est.result_.info["chosen_time"] > 0
        assert est.stop_reason_ is StopReason.END_OF_TIME
    assert np.median(errs["validation"]) < np.median(errs["none"])


def test_discrepancy_uses_noise_level():
    p = make_sparse_problem(100, 200, 5, snr=20, random_state=0)
    sigma = np.linalg.norm(p.noise) / np.sqrt(100)
    est = HadamardRegressor(init_scale=1e-4, early_stopping="discrepancy",
                            noise_level=sigma).fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.DISCREPANCY
    assert np.linalg.norm(p.operator @ est.coef_ - p.y) <= sigma * np.sqrt(100)


def test_validation_on_noiseless_data_runs_to_convergence():
    # Well above the phase transition, so the path on 80% of the measurements recovers too.
    p = make_sparse_problem(90, 150, 4, random_state=3)
    est = HadamardRegressor(init_scale=1e-5, early_stopping="validation", random_state=0)
    est.fit(p.operator, p.y)
    assert est.result_.info["chosen_time"] is None
    assert est.stop_reason_ is not StopReason.END_OF_TIME  # its own rule, not a chosen time
    assert relative_error(est.coef_, p.truth) < 1e-2


def test_oracle_picks_the_iterate_closest_to_truth():
    from overparam.stopping import Oracle

    p = make_sparse_problem(80, 200, 6, snr=10, random_state=1)
    oracle = Oracle(p.truth, every=5, patience=None)
    est = HadamardRegressor(init_scale=1e-4, max_iter=5000, solver="gd", step="adaptive",
                            early_stopping=oracle).fit(p.operator, p.y)
    curve = est.result_.info["validation_curve"]
    best = np.sum((est.coef_ - p.truth) ** 2)
    assert oracle.curve == []  # the estimator worked on a copy: reusable across fits
    other = HadamardRegressor(init_scale=1e-4, max_iter=5000, solver="gd", step="adaptive")
    final = np.sum((other.fit(p.operator, p.y).coef_ - p.truth) ** 2)
    assert best < final
    assert best == pytest.approx(curve[:, 2].min())


def test_residual_matched_refit_stops_at_the_path_residual():
    class ResidualRefit(HadamardRegressor):
        validation_refit = "residual"
        validation_folds = 1  # the residual refit follows one held-out split

    p = make_sparse_problem(120, 300, 8, snr=10, random_state=0)
    est = ResidualRefit(init_scale=1e-4, early_stopping="validation", random_state=0)
    est.fit(p.operator, p.y)
    level = est.result_.info["refit_residual"]
    assert est.stop_reason_ is StopReason.DISCREPANCY
    assert np.linalg.norm(p.operator @ est.coef_ - p.y) <= level
    assert relative_error(est.coef_, p.truth) < 0.3


def test_mean_curve_holds_a_finished_curve_at_its_last_value():
    from overparam.estimators.base import _mean_curve

    a = np.array([[0, 1.0, 4.0], [0, 2.0, 2.0], [0, 4.0, 1.0]])
    b = np.array([[0, 2.0, 3.0], [0, 3.0, 1.0]])  # stopped at t=3
    mean = _mean_curve([a, b])
    np.testing.assert_array_equal(mean[:, 1], [2.0, 3.0, 4.0])  # from the latest first check
    np.testing.assert_allclose(mean[:, 2], [(2 + 3) / 2, (1.5 + 1) / 2, (1 + 1) / 2])
    assert np.isnan(mean[:, 0]).all()


def test_geometric_mean_curve_is_not_decided_by_one_fold():
    from overparam.estimators.base import _mean_curve

    # fold b has one large held-out error at t=1: the arithmetic mean (4.75, 3, 2.5) moves
    # the minimum to the late t=3; the mean of the logs (2.12, 2.83, 2.45) keeps t=1, where
    # fold a is 4-6 times better than later and fold b 4.5 times worse
    a = np.array([[0, 1.0, 0.5], [0, 2.0, 2.0], [0, 3.0, 3.0]])
    b = np.array([[0, 1.0, 9.0], [0, 2.0, 4.0], [0, 3.0, 2.0]])
    arithmetic, geometric = _mean_curve([a, b]), _mean_curve([a, b], geometric=True)
    np.testing.assert_allclose(arithmetic[:, 2], [4.75, 3.0, 2.5])
    np.testing.assert_allclose(geometric[:, 2], np.sqrt([4.5, 8.0, 6.0]))
    assert np.argmin(arithmetic[:, 2]) == 2 and np.argmin(geometric[:, 2]) == 0


def test_kfold_validation_picks_the_minimum_of_the_mean_held_out_curve():
    class ThreeFold(HadamardRegressor):
        validation_folds = 3

    p = make_sparse_problem(90, 200, 5, snr=10, random_state=2)
    est = ThreeFold(init_scale=1e-4, random_state=0).fit(p.operator, p.y)
    info = est.result_.info
    assert info["validation_folds"] == 3 and len(info["path_iterations"]) == 3
    curve = info["validation_curve"]
    assert info["chosen_time"] == curve[np.argmin(curve[:, 2]), 1]
    assert est.stop_reason_ is StopReason.END_OF_TIME
    assert info["time"] == pytest.approx(info["chosen_time"])
    interpolating = HadamardRegressor(init_scale=1e-4, early_stopping=None).fit(p.operator, p.y)
    assert relative_error(est.coef_, p.truth) < relative_error(interpolating.coef_, p.truth)


def test_limit_budget_falls_back_to_the_chosen_time():
    p = make_sparse_problem(90, 150, 4, random_state=3)  # noiseless: no overfitting seen
    unbounded = HadamardRegressor(init_scale=1e-5, random_state=0).fit(p.operator, p.y)
    assert unbounded.result_.info["chosen_time"] is None
    assert unbounded.stop_reason_ is StopReason.CONVERGED

    class TinyBudget(HadamardRegressor):
        validation_limit_budget = 1e-3  # a budget of one iteration: the limit cannot converge

    est = TinyBudget(init_scale=1e-5, solver="flow", random_state=0).fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.END_OF_TIME
    assert est.result_.info["time"] == pytest.approx(est.result_.info["chosen_time"])


def test_sparse_input_and_tags_match_what_fit_takes():
    import scipy.sparse as sp
    from sklearn.utils import get_tags

    from overparam.baselines import MinNormRegressor, SOMPRegressor
    from overparam.estimators import FactorizedRegressor

    p = make_sparse_problem(20, 40, 3, random_state=0)
    dense = MinNormRegressor().fit(p.operator, p.y)
    sparse = MinNormRegressor().fit(sp.csr_matrix(p.operator), p.y)
    # LSQR stops at a 1e-8 relative residual: the summation order of the sparse product
    # moves the coefficients by up to cond(A) times that (measured 2e-7 relative)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(sparse.predict(sp.csc_matrix(p.operator)),
                               sparse.predict(p.operator))
    assert get_tags(MinNormRegressor()).input_tags.sparse
    assert not get_tags(FactorizedRegressor()).input_tags.sparse  # needs a 3-D stack
    tags = get_tags(SOMPRegressor())
    assert tags.target_tags.multi_output and tags.target_tags.single_output


def test_multi_output_estimators_take_one_column():
    from overparam.baselines import SOMPRegressor

    p = make_sparse_problem(20, 40, 3, random_state=1)
    one = SOMPRegressor(n_nonzero_rows=3).fit(p.operator, p.y)
    two = SOMPRegressor(n_nonzero_rows=3).fit(p.operator, p.y[:, None])
    # scikit-learn's multi-output orientation: a 2-D y of one column gives coef_ (1, N)
    assert one.coef_.shape == (40,) and two.coef_.shape == (1, 40)
    np.testing.assert_allclose(one.coef_, two.coef_[0])
    assert one.predict(p.operator).shape == (20,)


def test_custom_criterion_is_rescaled_with_the_data():
    # An Oracle in the data's units follows the normalized path: same chosen iterate.
    p = make_sparse_problem(40, 80, 4, random_state=2)
    picks = []
    for factor in (1.0, 2.0**40):
        est = HadamardRegressor(solver="gd", init_scale=1e-3, max_iter=3000,
                                early_stopping=Oracle(factor * p.truth, every=20)).fit(
            p.operator, factor * p.y)
        picks.append((est.result_.info["chosen_time"], est.coef_ / factor,
                      est.result_.info["validation_curve"][:, 2] / factor**2))
    assert picks[0][0] == picks[1][0]
    np.testing.assert_allclose(picks[1][1], picks[0][1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(picks[1][2], picks[0][2], rtol=1e-10)


@pytest.mark.parametrize(("rise", "overfitting"), [(0.0, False), (1e-3, False), (0.05, True)])
def test_only_a_significant_rise_of_the_held_out_error_reads_as_overfitting(rise, overfitting):
    from overparam.estimators.base import _overfitting_seen

    # fell from 1 to 1e-2, then rose by `rise` of the best: 0.1% is of the order of the
    # curve's own error (integrator, interpolation, held-out sampling), 5% is overfitting
    curve = np.array([[0, 1.0, 1.0], [0, 2.0, 1e-2], [0, 3.0, 1e-2 * (1 + rise)]])
    assert _overfitting_seen(curve) is overfitting
    assert not _overfitting_seen(curve[:2])  # best at the end
    # a curve that falls to round-off: a rise of round-off size is no sign either
    assert not _overfitting_seen(np.array([[0, 1.0, 1.0], [0, 2.0, 1e-30], [0, 3.0, 1e-28]]))


def test_validated_depth3_fit_on_clean_overdetermined_data_is_exact():
    # The paths converge between two validation checks; their end (held-out error ~0) must be
    # on the curve, not only the plateau before it (read as overfitting, refit mid-path).
    for seed in (0, 1):
        rng = np.random.default_rng([seed, 1])
        A = rng.standard_normal((60, 20)) / np.sqrt(60)
        x = np.zeros(20)
        values = rng.standard_normal(3) + np.sign(rng.standard_normal(3))
        x[rng.choice(20, 3, replace=False)] = values
        est = HadamardRegressor(depth=3)
        est.validation_exact_rtol = None  # the paths themselves (no held-out shortcut)
        est.fit(A, A @ x)
        curve = est.result_.info["validation_curve"]
        assert est.result_.info["chosen_time"] is None
        assert curve[-1, 2] == curve[:, 2].min()
        assert relative_error(est.coef_, x) < 1e-6
        # the default sees the first fold's limit predict its held-out rows: the same limit
        default = HadamardRegressor(depth=3).fit(A, A @ x)
        assert default.result_.info["refit"] == "limit"
        assert relative_error(default.coef_, est.coef_) < 1e-6
