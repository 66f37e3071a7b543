"""MMV baselines: M-OMP, M-SP, M-FOCUSS and scikit-learn's MultiTaskLasso(CV)."""

import numpy as np
import pytest
from sklearn.linear_model import MultiTaskLasso, OrthogonalMatchingPursuit

from overparam.baselines import (
    MFOCUSSRegressor,
    MSPRegressor,
    MultiTaskLassoCVRegressor,
    MultiTaskLassoRegressor,
    SOMPRegressor,
)
from overparam.datasets import make_mmv_problem
from overparam.methods import get_method
from overparam.metrics import relative_error, support_recovered

SETTINGS = [(50, 25), (25, 50)]  # the paper's (overdetermined) and an underdetermined one


@pytest.mark.parametrize(("M", "N"), SETTINGS)
@pytest.mark.parametrize("name", ["m-omp", "m-sp", "m-focuss"])
def test_noise_free_recovery(M, N, name):
    p = make_mmv_problem(M, N, 20, 4, row_values="gaussian", random_state=0)
    kw = {} if name == "m-focuss" else {"n_nonzero_rows": 4}
    est = get_method(name)(**kw).fit(p.operator, p.y)
    assert est.coef_.shape == (20, N)  # scikit-learn's (L, N); signal_ is X
    assert relative_error(est.signal_, p.truth) < 1e-6
    assert support_recovered(est.signal_, p.truth)


def test_somp_with_one_column_is_omp():
    """With L = 1, simultaneous OMP is OMP: compare with scikit-learn's."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((30, 60))
    A /= np.linalg.norm(A, axis=0)
    y = A[:, [3, 17, 40]] @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.standard_normal(30)
    ours = SOMPRegressor(n_nonzero_rows=3).fit(A, y[:, None]).coef_[0]
    ref = OrthogonalMatchingPursuit(n_nonzero_coefs=3, fit_intercept=False).fit(A, y).coef_
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_somp_selects_by_tolerance_without_k():
    p = make_mmv_problem(25, 50, 10, 3, row_values="gaussian", random_state=2)
    est = SOMPRegressor().fit(p.operator, p.y)
    assert sorted(est.result_.info["support"]) == list(np.flatnonzero(p.meta["support"]))


def test_msp_corrects_a_wrong_initial_support():
    """Subspace pursuit swaps rows: it beats OMP where OMP's greedy first pick is wrong."""
    wins = 0
    for seed in range(30):
        p = make_mmv_problem(14, 40, 2, 5, row_values="gaussian", random_state=seed)
        omp = relative_error(SOMPRegressor(n_nonzero_rows=5).fit(p.operator, p.y).signal_, p.truth)
        sp = MSPRegressor(n_nonzero_rows=5).fit(p.operator, p.y)
        wins += relative_error(sp.signal_, p.truth) < 1e-6 <= omp
        assert sp.result_.n_iter >= 1
    assert wins >= 1


def test_mfocuss_with_noise_variance_is_stable():
    p = make_mmv_problem(25, 50, 20, 3, snr=20, random_state=3)
    sigma2 = float(np.var(p.noise))
    est = MFOCUSSRegressor(lam=sigma2).fit(p.operator, p.y)
    assert est.result_.converged
    assert relative_error(est.signal_, p.truth, squared=True) < 0.05
    assert support_recovered(est.signal_, p.truth)


def test_multitask_lasso_wrappers():
    p = make_mmv_problem(25, 50, 10, 3, snr=30, random_state=4)
    ours = MultiTaskLassoRegressor(alpha=0.01).fit(p.operator, p.y)
    ref = MultiTaskLasso(alpha=0.01, fit_intercept=False, max_iter=10_000, tol=1e-6)
    # scikit-learn's orientation: coef_ is (L, N), the transpose of the signal X
    np.testing.assert_allclose(ours.coef_, ref.fit(p.operator, p.y).coef_)
    assert ours.coef_.shape == (p.y.shape[1], p.operator.shape[1])
    np.testing.assert_allclose(ours.predict(p.operator), ref.predict(p.operator))
    cv = MultiTaskLassoCVRegressor(random_state=0).fit(p.operator, p.y)
    assert cv.result_.info["alpha"] > 0
    assert cv.coef_.shape == (p.y.shape[1], p.operator.shape[1])
    assert relative_error(cv.signal_, p.truth, squared=True) < 0.05


@pytest.mark.parametrize("name", ["ir-mmv", "m-omp", "m-sp", "m-focuss", "multitask-lasso",
                                  "multitask-lasso-cv"])
def test_every_mmv_estimator_has_scikit_learns_coef_orientation(name):
    """One convention: coef_ is (L, N) as MultiTaskLasso.coef_, signal_ = coef_.T is X."""
    p = make_mmv_problem(25, 50, 6, 3, row_values="gaussian", random_state=6)
    kw = {"n_nonzero_rows": 3} if name in ("m-omp", "m-sp") else {}
    est = get_method(name)(**kw).fit(p.operator, p.y)
    assert est.coef_.shape == (6, 50)
    np.testing.assert_array_equal(est.signal_, est.coef_.T)
    np.testing.assert_allclose(est.predict(p.operator), p.operator @ est.coef_.T, atol=1e-10)
    one = get_method(name)(**kw).fit(p.operator, p.y[:, 0])
    assert one.coef_.shape == one.signal_.shape == (50,)


def test_baseline_errors():
    p = make_mmv_problem(10, 20, 3, 2, random_state=5)
    with pytest.raises(ValueError, match="n_nonzero_rows"):
        MSPRegressor().fit(p.operator, p.y)
    with pytest.raises(ValueError, match="'p' parameter of MFOCUSSRegressor must be"):
        MFOCUSSRegressor(p=3).fit(p.operator, p.y)
    with pytest.raises(ValueError, match="lam"):
        MFOCUSSRegressor(lam=-1.0).fit(p.operator, p.y)
    with pytest.raises(TypeError, match="n_nonzero_rows"):
        SOMPRegressor(n_nonzero_rows=2.5).fit(p.operator, p.y)
