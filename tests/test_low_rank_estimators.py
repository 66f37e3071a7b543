"""Low-rank estimators: factorized GD (asymmetric, PSD) and nuclear-norm baselines."""

import numpy as np
import pytest
from sklearn.base import clone

from overparam.baselines.low_rank import (
    NuclearNormCV,
    NuclearNormRegressor,
    PSDFactorizedRegressor,
    nuclear_norm_minimization,
)
from overparam.datasets import make_low_rank_problem
from overparam.estimators import FactorizedRegressor
from overparam.methods import get_method
from overparam.metrics import relative_error
from overparam.operators import DenseOperator, MatrixSensingOperator


@pytest.fixture(scope="module")
def noiseless():
    return make_low_rank_problem((10, 8), 2, 60, condition_number=1.5, random_state=0)


def test_registered_names():
    assert get_method("factorized") is FactorizedRegressor
    assert get_method("factorized-psd") is PSDFactorizedRegressor
    assert get_method("nuclear-norm") is NuclearNormRegressor
    assert get_method("nuclear-norm-cv") is NuclearNormCV


def test_factorized_recovers_low_rank_matrix(noiseless):
    pb = noiseless
    # Plain gradient descent (no refinement, no early stopping: the data are exact).
    coarse = FactorizedRegressor(init_scale=1e-2, random_state=0, early_stopping=None,
                                 refine=False).fit(pb.operator, pb.y)
    fine = FactorizedRegressor(init_scale=1e-4, random_state=0, early_stopping=None,
                               refine=False).fit(pb.operator, pb.y)
    assert fine.coef_.shape == (10, 8)
    assert relative_error(fine.coef_, pb.truth) < 1e-3
    # The implicit bias sharpens as the init shrinks (Theorem 2.8): smaller eps, smaller error.
    assert relative_error(fine.coef_, pb.truth) < 0.5 * relative_error(coarse.coef_, pb.truth)
    # Plain least squares (min-Frobenius-norm interpolation) is nowhere near.
    lsq = np.linalg.lstsq(pb.operator.to_dense(), pb.y, rcond=None)[0].reshape(10, 8)
    assert relative_error(lsq, pb.truth) > 0.2
    # Works on a stored stack passed as an array, and on any width.
    stack = pb.operator.sensing_matrices() * pb.operator.scale
    narrow = FactorizedRegressor(width=2, init_scale=1e-4, random_state=0).fit(stack, pb.y)
    assert relative_error(narrow.coef_, pb.truth) < 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_default_limit_is_exact_and_ends_on_its_optimality_check(seed):
    """20 x 20 rank 2 from m = 4 n r Gaussian measurements: plain GD from 1e-3 creeps at 2.5e-2
    error into its iteration cap; the limit (rank-2 interpolant by Gauss-Newton) is exact."""
    from overparam.operators import GaussianSensingOperator
    from overparam.stopping import StopReason

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((20, 2)) @ rng.standard_normal((2, 20))
    op = GaussianSensingOperator(160, (20, 20), random_state=seed)
    est = FactorizedRegressor(early_stopping=None, random_state=0).fit(op, op.forward(X))
    assert est.stop_reason_ is StopReason.CONVERGED
    assert est.n_iter_ < est.max_iter
    assert relative_error(est.coef_, X) < 1e-6


def test_refine_low_rank_only_accepts_a_unique_interpolant():
    from overparam.solvers.low_rank import candidate_ranks, refine_low_rank

    pb = make_low_rank_problem((10, 8), 2, 60, random_state=2)
    near = pb.truth + 1e-4 * np.random.default_rng(0).standard_normal(pb.truth.shape)
    assert candidate_ranks(near)[0] == 2
    np.testing.assert_allclose(refine_low_rank(pb.operator, pb.y, near, 2, tol=1e-12), pb.truth,
                               atol=1e-10)
    assert refine_low_rank(pb.operator, pb.y, near, 1) is None  # rank 1 cannot interpolate
    # rank 5: 5 (10 + 8 - 5) = 65 >= 60 measurements, the interpolant is not locally unique
    assert refine_low_rank(pb.operator, pb.y, near, 5) is None


def test_identity_init_and_determinism(noiseless):
    pb = make_low_rank_problem((8, 8), 2, 100, random_state=1)
    est = FactorizedRegressor(init="identity", init_scale=1e-4).fit(pb.operator, pb.y)
    assert relative_error(est.coef_, pb.truth) < 1e-3
    a = FactorizedRegressor(random_state=3, max_iter=50).fit(noiseless.operator, noiseless.y)
    b = clone(a).fit(noiseless.operator, noiseless.y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_bad_inputs(noiseless):
    with pytest.raises(ValueError, match="matrix-sensing"):
        FactorizedRegressor().fit(DenseOperator(np.ones((5, 4))), np.ones(5))
    with pytest.raises(ValueError, match="init"):
        FactorizedRegressor(init="spectral").fit(noiseless.operator, noiseless.y)
    with pytest.raises(ValueError, match="noise_level"):
        FactorizedRegressor(early_stopping="discrepancy").fit(noiseless.operator, noiseless.y)
    with pytest.raises(ValueError, match="not both"):
        nuclear_norm_minimization(noiseless.operator, noiseless.y, noise_bound=1.0, lam=1.0)


def test_validation_stopping_beats_interpolation_under_noise():
    gains = []
    for seed in range(3):
        pb = make_low_rank_problem((10, 10), 2, 80, condition_number=1.5, noise_std=0.03,
                                   random_state=seed)
        full = FactorizedRegressor(random_state=0, early_stopping=None).fit(pb.operator, pb.y)
        val = FactorizedRegressor(random_state=0, early_stopping="validation").fit(
            pb.operator, pb.y)
        disc = FactorizedRegressor(random_state=0, early_stopping="discrepancy",
                                   noise_level=0.03).fit(pb.operator, pb.y)
        assert val.stop_reason_.value == "end_of_time"
        assert "chosen_time" in val.result_.info
        err_full = relative_error(full.coef_, pb.truth)
        gains.append(relative_error(val.coef_, pb.truth) / err_full)
        assert relative_error(disc.coef_, pb.truth) < err_full
    # Held-out stopping removes most of the noise that interpolation fits.
    assert max(gains) < 0.75, gains


def test_psd_variant_recovers_psd_matrix():
    pb = make_low_rank_problem((8, 8), 2, 100, symmetric_psd=True, random_state=2)
    est = PSDFactorizedRegressor(init_scale=1e-4, random_state=0).fit(pb.operator, pb.y)
    assert relative_error(est.coef_, pb.truth) < 1e-3
    np.testing.assert_allclose(est.coef_, est.coef_.T)
    assert np.linalg.eigvalsh(est.coef_).min() > -1e-12


def test_nuclear_norm_forms(noiseless):
    pb = noiseless
    exact = nuclear_norm_minimization(pb.operator, pb.y)
    assert relative_error(exact, pb.truth) < 1e-4
    # Any Operator with a 2-D input shape works, e.g. a stored stack.
    stack = MatrixSensingOperator(pb.operator.sensing_matrices(), scale=pb.operator.scale)
    est = NuclearNormRegressor().fit(stack, pb.y)
    np.testing.assert_allclose(est.coef_, exact, atol=1e-5)
    # The constrained form keeps the residual inside the bound.
    noisy = make_low_rank_problem((10, 8), 2, 60, noise_std=0.02, random_state=0)
    bound = 0.02 * np.sqrt(60)
    Xb = nuclear_norm_minimization(noisy.operator, noisy.y, noise_bound=bound)
    assert np.linalg.norm(noisy.operator.forward(Xb) - noisy.y) <= bound * (1 + 1e-4)
    # A huge penalty gives zero; a small one nearly interpolates.
    lam_max = np.linalg.norm(noisy.operator.adjoint(noisy.y), 2)
    assert np.abs(nuclear_norm_minimization(noisy.operator, noisy.y, lam=1.01 * lam_max)).max() \
        < 1e-5
    assert relative_error(NuclearNormRegressor(lam=0.01).fit(noisy.operator, noisy.y).coef_,
                          noisy.truth) < 0.2


def test_nuclear_norm_cv_picks_an_interior_penalty():
    pb = make_low_rank_problem((8, 8), 2, 80, noise_std=0.03, random_state=4)
    est = NuclearNormCV(n_alphas=6, cv=3, random_state=0).fit(pb.operator, pb.y)
    assert est.alphas_[0] > est.alpha_ > est.alphas_[-1]
    assert est.cv_errors_.shape == (6,)
    tiny = NuclearNormRegressor(lam=est.alphas_[-1] * 80).fit(pb.operator, pb.y)
    assert relative_error(est.coef_, pb.truth) < relative_error(tiny.coef_, pb.truth)


def test_nuclear_norm_cv_is_accurate_at_high_snr():
    # Regression: the mean-loss objective is tiny at high SNR and stopped SCS early (0.32).
    pb = make_low_rank_problem((10, 10), 2, 80, noise_std=0.002, random_state=0)
    est = NuclearNormCV(random_state=0).fit(pb.operator, pb.y)
    assert relative_error(est.coef_, pb.truth) < 0.05


def test_gauss_newton_stops_where_no_interpolant_is_near(monkeypatch):
    """On noisy data the rank-k residual settles above the target: the search ends in a few
    steps (it ran all 50 before, 80 % of a fit at n = 100), and still finds the interpolant
    of clean data."""
    from overparam.solvers.low_rank import refine_low_rank

    calls = []
    lstsq = np.linalg.lstsq
    monkeypatch.setattr(np.linalg, "lstsq", lambda *a, **k: calls.append(1) or lstsq(*a, **k))
    noisy = make_low_rank_problem((12, 12), 2, 96, noise_std=0.01, random_state=0)
    start = noisy.truth + 0.01 * np.random.default_rng(0).standard_normal((12, 12))
    assert refine_low_rank(noisy.operator, noisy.y, start, 2) is None
    assert 3 <= len(calls) <= 15
    clean = make_low_rank_problem((12, 12), 2, 96, random_state=0)
    found = refine_low_rank(clean.operator, clean.y, start, 2)
    assert found is not None and relative_error(found, clean.truth) < 1e-6
