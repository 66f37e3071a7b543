"""The group-lasso path of the CV baseline against skglm's GroupLasso estimator, alpha by alpha
(the reference path, one ``GroupLasso.fit`` per alpha, is benchmarks/group_lasso_path.py's)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from overparam.baselines.group import group_lasso_alpha_max, group_lasso_path, group_weights
from overparam.datasets import make_group_sparse_problem
from overparam.parameterizations.group import as_group_labels

pytest.importorskip("skglm")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "group_lasso_path.py"
_SPEC = importlib.util.spec_from_file_location("group_lasso_path_benchmark", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


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
        ref = bench.estimator_path(X, y, 4, alphas, tol=tol)
        assert np.count_nonzero(ref[0]) > 0 and np.count_nonzero(ref[-1]) == 0
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_path_at_and_above_alpha_max_is_zero():
    pb = make_group_sparse_problem(40, 80, group_size=4, n_active_groups=2, snr=20.0,
                                   design="gaussian", random_state=2)
    X, y = np.asarray(pb.operator), pb.y
    labels = as_group_labels(4, X.shape[1])
    top = group_lasso_alpha_max(X, y, labels, group_weights(labels, "sqrt"))
    coefs = group_lasso_path(X, y, 4, [2 * top, top, 0.5 * top])
    assert not coefs[:2].any() and coefs[2].any()
    assert not group_lasso_path(X, np.zeros_like(y), 4, [top]).any()  # X^T y = 0
