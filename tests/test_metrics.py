import numpy as np
import pytest

from overparam.metrics import (
    add_noise,
    effective_rank,
    l1_gap,
    nmse_db,
    psnr,
    relative_error,
    snr_db,
    support,
    support_f1,
    support_recovered,
)


def test_relative_error_and_nmse():
    truth = np.array([3.0, 4.0])
    est = np.array([3.0, 3.0])
    assert relative_error(est, truth) == pytest.approx(1 / 5)
    assert relative_error(est, truth, squared=True) == pytest.approx(1 / 25)
    assert nmse_db(est, truth) == pytest.approx(10 * np.log10(1 / 25))
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_error(np.ones(2), np.zeros(2)) == np.inf
    with pytest.raises(ValueError, match="shape"):
        relative_error(np.ones(3), np.ones(2))


def test_support_metrics():
    truth = np.array([0, 2.0, 0, -1.0, 0])
    good = np.array([1e-6, 1.9, 0, -1.1, 0])
    bad = np.array([0.5, 1.9, 0, 0, 0])
    assert support_recovered(good, truth)
    assert not support_recovered(bad, truth)
    assert support_f1(good, truth) == 1.0
    assert support_f1(bad, truth) == pytest.approx(2 * 1 / (2 + 2))
    rows = np.array([[0, 0], [1, -1], [0, 0]])
    np.testing.assert_array_equal(support(rows), [False, True, False])


def test_psnr_known_value():
    truth = np.array([0.0, 1.0, 0.0, 1.0])
    est = truth + np.array([0.1, -0.1, 0.1, -0.1])
    assert psnr(est, truth) == pytest.approx(10 * np.log10(1 / 0.01))
    assert psnr(truth, truth) == np.inf


def test_l1_gap_and_effective_rank(rng):
    assert l1_gap(np.array([1.0, -1.5]), 2.0) == pytest.approx(0.25)
    X = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5))
    assert effective_rank(X) == 2


@pytest.mark.parametrize("snr", [0.0, 10.0, 40.0])
def test_add_noise_hits_requested_snr_exactly(snr, rng):
    clean = rng.standard_normal(50)
    noisy, noise = add_noise(clean, snr, random_state=0)
    np.testing.assert_allclose(noisy - clean, noise)
    assert snr_db(clean, noise) == pytest.approx(snr, abs=1e-10)
    again, _ = add_noise(clean, snr, random_state=0)
    np.testing.assert_array_equal(noisy, again)


def test_add_noise_infinite_snr_is_noiseless(rng):
    clean = rng.standard_normal(5)
    noisy, noise = add_noise(clean, np.inf)
    np.testing.assert_array_equal(noisy, clean)
    assert not noise.any()
