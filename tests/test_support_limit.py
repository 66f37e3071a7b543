"""The least-squares end of a structured path (solvers/support_limit.py)."""

import numpy as np

from overparam.estimators.group import GroupHadamardRegressor
from overparam.operators import as_operator
from overparam.solvers.support_limit import learned_groups, support_least_squares
from overparam.stopping import StopReason


def _problem(m=20, n=40, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    x = np.zeros(n)
    x[[3, 7, 11]] = [1.0, -2.0, 0.5]
    return as_operator(A), A @ x, x


def test_learned_groups_threshold_between_init_and_top():
    magnitudes = np.array([2.0, 1e-2, 1e-5, 1e-12, 0.0])
    assert list(learned_groups(magnitudes, init_magnitude=1e-12)) == [0, 1]
    assert list(learned_groups(np.zeros(3), 1e-12)) == []


def test_accepts_only_a_near_unique_interpolant():
    op, y, x = _problem()
    near = x + 1e-4 * np.random.default_rng(1).standard_normal(x.size)
    got = support_least_squares(op, y, near, [3, 7, 11, 20], tol=1e-10)
    np.testing.assert_allclose(got, x, atol=1e-12)  # the extra column is set to zero
    # Too far from the path: not accepted.
    assert support_least_squares(op, y, 0.5 * x, [3, 7, 11], tol=1e-10) is None
    # The columns do not explain y.
    assert support_least_squares(op, y, x, [3, 7], tol=1e-6) is None
    # More columns than measurements: the interpolant is not unique.
    assert support_least_squares(op, y, x, np.arange(25), tol=1e-6) is None


def test_rejects_rank_deficient_columns():
    op, _, x = _problem()
    A = op.to_dense().copy()
    A[:, 20] = A[:, 3]
    op = as_operator(A)
    assert support_least_squares(op, A @ x, x, [3, 7, 11, 20], tol=1e-6) is None


def test_group_limit_is_the_group_sparse_interpolant():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 90))
    w = np.zeros(90)
    w[:3], w[30:33] = [1.0, -1.5, 0.5], [2.0, 1.0, -1.0]
    est = GroupHadamardRegressor(groups=3, early_stopping=None).fit(X, X @ w)
    assert est.stop_reason_ is StopReason.CONVERGED
    assert est.result_.info["limit"] == "least squares on the learned groups"
    assert np.linalg.norm(est.coef_ - w) <= 1e-8 * np.linalg.norm(w)
