"""scikit-learn's estimator checks over every registered method (issue 13, item 8).

Each method runs with small budgets set through its constructor (the checks' data are
small); ``EXPECTED_FAILURES`` lists the only checks a method may fail, each with its reason.
"""

import warnings

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from overparam.methods import available_methods, get_method

# Constructor arguments: what a method cannot do without (groups, a row budget) and smaller
# budgets that keep the whole file fast.
SETTINGS = {
    "group-hadamard": {"groups": 1, "max_iter": 2000},
    "group-lasso": {"groups": 1, "cv": 3, "n_alphas": 5},
    "group-primal-dual": {"groups": 1, "max_iter": 2000},
    "m-sp": {"n_nonzero_rows": 1},
    "lasso-cv": {"cv": 3, "n_alphas": 10},
    "multitask-lasso-cv": {"cv": 3, "n_alphas": 10},
    "hadamard": {"max_iter": 2000},
    "ir-mmv": {"max_iter": 500, "patience": 100},
}

# Checks that fit on a 2-D X. A matrix-sensing method recovers a matrix from a 3-D stack
# (m, n1, n2) of sensing matrices (or an operator): a 2-D X has no matrix shape, and fit
# says so with a ValueError.
_FIT_2D = [
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_dtype_object",
    "check_estimators_dtypes", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature",
    "check_fit2d_predict1d", "check_fit_check_is_fitted",
    "check_fit_idempotent", "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
    "check_regressor_data_not_an_array", "check_regressors_int", "check_regressors_train",
    "check_supervised_y_2d",
]
# Checks that some matrix methods pass anyway (a 1-sample fit or n_iter_ are not looked at
# the same way), so they are only listed for the methods that fail them.
_FIT_2D_GD = ["check_fit2d_1sample", "check_non_transformer_estimators_n_iter",
              "check_regressors_no_decision_function"]
_MATRIX = "matrix sensing: fit needs a 3-D stack (m, n1, n2) of sensing matrices"
# Basis pursuit solves A x = y exactly: the checks' data are overdetermined and noisy, so
# the linear program is infeasible and fit raises a ValueError that says so.
_BP = "basis pursuit needs a consistent system A x = y (the LP is infeasible)"
_BP_FITS = [*_FIT_2D, "check_estimator_sparse_array", "check_estimator_sparse_matrix",
            "check_estimator_sparse_tag"]

EXPECTED_FAILURES = {
    **{name: dict.fromkeys(_FIT_2D + _FIT_2D_GD, _MATRIX) for name in (
        "factorized", "factorized-psd", "snn", "deep-matrix")},
    "nuclear-norm": dict.fromkeys(_FIT_2D + _FIT_2D_GD[::2], _MATRIX),
    "nuclear-norm-cv": dict.fromkeys(_FIT_2D + _FIT_2D_GD[2:], _MATRIX),
    **{name: dict.fromkeys(_BP_FITS, _BP) for name in (
        "basis-pursuit", "positive-basis-pursuit")},
}
# skglm compiles its solvers with numba on first use (about a minute): a slow test.
_SLOW = {"group-lasso"}


def _estimators(slow):
    out = []
    for name in available_methods():
        if (name in _SLOW) != slow:
            continue
        est = get_method(name)(**SETTINGS.get(name, {}))
        est._registered_name = name  # for expected_failed_checks (not a parameter)
        out.append(est)
    return out


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(getattr(estimator, "_registered_name", None), {})


@parametrize_with_checks(_estimators(slow=False), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        # Small budgets on noisy data: warnings about them are expected here.
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.slow
@parametrize_with_checks(_estimators(slow=True), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator_slow(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_expected_failures_name_registered_methods():
    assert set(EXPECTED_FAILURES) <= set(available_methods())
    assert set(SETTINGS) <= set(available_methods())
    for name, checks in EXPECTED_FAILURES.items():
        assert all(reason for reason in checks.values()), name


def test_random_state_accepts_randomstate_and_generator():
    import numpy as np

    from overparam.estimators import HadamardRegressor

    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((30, 50)), rng.standard_normal(30)
    for seed in (None, 3, np.random.RandomState(3), np.random.default_rng(3)):
        est = HadamardRegressor(random_state=seed, max_iter=500).fit(A, y)
        assert np.all(np.isfinite(est.coef_))
    with pytest.raises(ValueError, match="'random_state' parameter of HadamardRegressor"):
        HadamardRegressor(random_state="seed").fit(A, y)
    from overparam.baselines import LassoCVRegressor, MultiTaskLassoCVRegressor

    for seed in (np.random.RandomState(0), np.random.default_rng(0)):  # scikit-learn's KFold
        LassoCVRegressor(cv=3, n_alphas=5, random_state=seed).fit(A, y)
        MultiTaskLassoCVRegressor(cv=3, n_alphas=5, random_state=seed).fit(A, y[:, None] * [1, 2])
