"""The group-lasso path of the CV baseline against skglm's GroupLasso estimator."""

import numpy as np
import pytest

pytest.importorskip("skglm")

from overparam.baselines.group import (
    _index_lists,
    group_lasso_alpha_max,
    group_lasso_path,
    group_weights,
)
from overparam.datasets import make_group_sparse_problem
from overparam.parameterizations.group import as_group_labels


def _estimator_path(X, y, groups, alphas, tol):
    """The path as GroupLassoRegressor computed it before: one GroupLasso.fit per alpha."""
    from skglm import GroupLasso

    labels = as_group_labels(groups, X.shape[1])
    c = group_weights(labels, "sqrt")
    top = group_lasso_alpha_max(X, y, labels, c)
    model = GroupLasso(groups=_index_lists(labels), alpha=float(alphas[0]), weights=c,
                       fit_intercept=False, warm_start=True, tol=tol * top, max_iter=100)
    out = np.zeros((len(alphas), X.shape[1]))
    for k in np.argsort(-np.asarray(alphas)):
        model.alpha = float(alphas[k])
        model.fit(X, y)
        out[k] = model.coef_
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_path_is_skglm_estimators_path(seed):
    pb = make_group_sparse_problem(60, 120, group_size=4, n_active_groups=3, snr=10.0,
                                   design="gaussian", random_state=seed)
    X, y = np.asarray(pb.operator), pb.y
    labels = as_group_labels(4, X.shape[1])
    top = group_lasso_alpha_max(X, y, labels, group_weights(labels, "sqrt"))
    alphas = np.geomspace(top, 1e-3 * top, 12)[::-1]  # any order: solved decreasing
    for tol in (1e-6, 1e-4):
        ours = group_lasso_path(X, y, 4, alphas, tol=tol)
        ref = _estimator_path(X, y, 4, alphas, tol)
        assert np.count_nonzero(ref[0]) > 0 and np.count_nonzero(ref[-1]) == 0
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
