"""Held-out stopping of IR-MMV on a staircase: a weak row is learned long after a strong one.

From a small init the rows escape one at a time, the weaker ones later; between two escapes
the held-out error is flat. Validation must not read that flat stretch as its minimum (issue
13: the contract cell ir-mmv x inconsistent, seed 5, stopped there at 7.6x the oracle error).
"""

import numpy as np
import pytest

from overparam.estimators import MMVRegressor


def _two_rows(seed, weak, M=40, N=60, L=5, snr_db=30.0):
    """A row of norm 1 and one of norm ``weak``, noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, N)) / np.sqrt(M)
    X = np.zeros((N, L))
    X[3] = rng.standard_normal(L)
    X[3] /= np.linalg.norm(X[3])
    X[7] = rng.standard_normal(L)
    X[7] *= weak / np.linalg.norm(X[7])
    Y0 = A @ X
    sigma = np.linalg.norm(Y0) / np.sqrt(Y0.size) * 10 ** (-snr_db / 20)
    return A, Y0 + sigma * rng.standard_normal(Y0.shape), X


@pytest.mark.parametrize(("weak", "seed"), [(0.3, 1), (0.15, 0), (0.15, 2)])
def test_validation_waits_for_the_weak_row(weak, seed):
    # Before the fix every fold stopped on the plateau before the weak row's escape (520
    # steps) and the estimate missed the row: error 0.288 / 0.149 / 0.148 (the weak row's
    # share), its norm 0. Now 0.008 / 0.010 / 0.008. Not every such problem is saved: at
    # weak=0.15, seeds 1 and 3 still miss the row (docs/mmv.md, "Staircases").
    A, Y, X = _two_rows(seed, weak=weak)
    est = MMVRegressor().fit(A, Y)
    err = np.linalg.norm(est.signal_ - X) / np.linalg.norm(X)
    assert err < 0.05
    assert np.linalg.norm(est.signal_[7]) == pytest.approx(weak, rel=0.1)
