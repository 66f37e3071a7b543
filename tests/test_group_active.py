"""The multirate group step (active groups every iteration, slow groups once per block)."""

import numpy as np
import pytest

from overparam.datasets import make_group_sparse_problem
from overparam.estimators import GroupHadamardRegressor
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.parameterizations import GroupHadamard
from overparam.solvers import weight_normalized_gd
from overparam.solvers.group import _largest_group_norm2
from overparam.solvers.group_active import ActiveGroupsStep, IncrementalValidation
from overparam.stopping import StoppingRule, StopReason, Validation


def _problem(seed=0, p=300, snr=20.0):
    pb = make_group_sparse_problem(p // 2, p, group_size=5, n_active_groups=3,
                                   design="gaussian", snr=snr, random_state=seed)
    return np.asarray(pb.operator), pb.y, pb.truth


def _path(A, y, stop_time, step_class=None):
    return weight_normalized_gd(GroupHadamard(5, A.shape[1]), as_operator(A), y,
                                step_u="auto", step_v="auto", switch_tol="auto",
                                stopping=StoppingRule(max_iter=10_000, tol=1e-12,
                                                      max_flow_time=stop_time),
                                step_class=step_class)


@pytest.mark.parametrize("seed", [0, 1])
def test_active_groups_follow_the_plain_path(seed):
    # Same iteration, same clock: past the learning of the groups and Algorithm 2's switch
    # the two agree far below the statistical error (measured at the default period 40:
    # 1.3e-7 and 2.7e-7 relative here, 7e-11 at p = 3,000), with the same switch iteration,
    # while only the learned groups (3 of 60) are stepped every iteration.
    A, y, truth = _problem(seed)
    plain = _path(A, y, 600.0)
    active = _path(A, y, 600.0, ActiveGroupsStep)
    assert active.n_iter == plain.n_iter == 600
    assert active.info["switch_iteration"] == plain.info["switch_iteration"] is not None
    assert active.info["step"] == "active groups" and "step" not in plain.info
    assert active.info["active_groups"] <= 6  # of 60 groups, 3 of them true
    assert relative_error(active.coef, plain.coef) < 1e-5
    assert relative_error(plain.coef, truth) < 0.1  # the groups are learned by then


def test_output_is_up_to_date_with_its_residual():
    # The slow groups move once per block; the step that lands on the stopping time brings
    # them up to date, and the loss reported is that of the returned estimate.
    A, y, _ = _problem(2)
    result = _path(A, y, 377.0, ActiveGroupsStep)
    u, v = result.params
    labels = GroupHadamard(5, A.shape[1]).labels
    np.testing.assert_allclose(result.coef, u[labels] ** 2 * v, rtol=0, atol=1e-15)
    loss = 0.5 * float(np.sum((y - A @ result.coef) ** 2)) / y.size
    assert result.info["final_loss"] == pytest.approx(loss, rel=1e-9)
    plain = _path(A, y, 377.0)
    # the slow groups too: their weights as the plain step's to the block integral's error
    # (measured: log u within 0.13 on 57 slow groups)
    slow = u < 1e-2
    assert slow.sum() > 40
    np.testing.assert_allclose(np.log(u[slow]), np.log(plain.params[0][slow]), atol=0.5)


def test_estimate_at_the_limit_on_clean_data():
    A, y, truth = _problem(0, snr=np.inf)
    est = GroupHadamardRegressor(groups=5, early_stopping=None)
    est.active_groups_from = 1
    est.fit(A, y)
    assert est.result_.info["step"] == "active groups"
    assert est.stop_reason_ is StopReason.CONVERGED
    assert relative_error(est.coef_, truth) < 1e-6
    validated = GroupHadamardRegressor(groups=5)  # the default stopping rule
    validated.active_groups_from = 1
    assert relative_error(validated.fit(A, y).coef_, truth) < 1e-4


def test_estimator_with_and_without_active_groups():
    # p = 1,000: the default takes the multirate step; the same held-out choice and estimate
    # as the plain step (measured: chosen iteration 771 both, estimates 5e-9 apart).
    A, y, truth = _problem(0, p=1000)
    fast = GroupHadamardRegressor(groups=5).fit(A, y)
    plain = GroupHadamardRegressor(groups=5)
    plain.active_groups_from = None
    plain.fit(A, y)
    assert fast.result_.info["step"] == "active groups"
    assert "step" not in plain.result_.info
    assert fast.chosen_iteration_ == plain.chosen_iteration_
    assert relative_error(fast.coef_, plain.coef_) < 1e-6
    assert relative_error(fast.coef_, truth) < 0.05


def test_deterministic():
    A, y, _ = _problem(3)
    runs = []
    for _ in range(2):
        est = GroupHadamardRegressor(groups=5, random_state=0)
        est.active_groups_from = 1
        runs.append(est.fit(A, y))
    np.testing.assert_array_equal(runs[0].coef_, runs[1].coef_)
    assert runs[0].chosen_iteration_ == runs[1].chosen_iteration_


def test_threshold_switch():
    A, y, _ = _problem(0)  # p = 300
    est = GroupHadamardRegressor(groups=5, early_stopping=None, max_iter=50)
    assert GroupHadamardRegressor.active_groups_from == 1000
    assert "step" not in est.fit(A, y).result_.info  # below the threshold: the plain step
    est.active_groups_from = 300
    assert est.fit(A, y).result_.info["step"] == "active groups"
    est.active_groups_from = None
    assert "step" not in est.fit(A, y).result_.info
    authors = GroupHadamardRegressor(groups=5, early_stopping=None, max_iter=50,
                                     loss_scale="authors")
    authors.active_groups_from = 1
    assert "step" not in authors.fit(A, y).result_.info  # the authors' order: plain
    with pytest.raises(ValueError, match="half-mean"):
        weight_normalized_gd(GroupHadamard(5, 300), as_operator(A), y, loss_scale="authors",
                             step_class=ActiveGroupsStep)


def test_incremental_validation_error_is_the_plain_one():
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((30, 100)), rng.standard_normal(30)
    plain = Validation(as_operator(A), y)
    fast = IncrementalValidation(as_operator(A), y)
    x = np.zeros(100)
    for step in range(12):
        x = x.copy()
        x[rng.choice(100, 5 if step % 4 else 60, replace=False)] += rng.standard_normal(
            5 if step % 4 else 60)
        assert fast.error(x) == pytest.approx(plain.error(x), rel=1e-12)


def test_batched_group_norms_are_the_spectral_norms():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 120))
    for param in (GroupHadamard(4, 120), GroupHadamard(rng.permutation(np.repeat(
            np.arange(30), 4)))):
        exact = max(np.linalg.norm(X[:, param.labels == k], 2) ** 2
                    for k in range(param.n_groups))
        assert _largest_group_norm2(X, param) == pytest.approx(exact, rel=1e-12)
