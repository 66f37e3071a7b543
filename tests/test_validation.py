"""Bad input gives a clear error naming the problem."""

import numpy as np
import pytest

from overparam.baselines import MinNormRegressor
from overparam.estimators import HadamardRegressor


@pytest.fixture
def data(rng):
    return rng.standard_normal((10, 20)), rng.standard_normal(10)


@pytest.mark.parametrize("est", [HadamardRegressor(max_iter=10), MinNormRegressor()])
def test_shape_mismatch(est, data):
    A, y = data
    with pytest.raises(ValueError, match="10 measurement rows but y has 9"):
        est.fit(A, y[:9])


@pytest.mark.parametrize("where", ["A", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(where, bad, data):
    A, y = data[0].copy(), data[1].copy()
    (A if where == "A" else y)[3] = bad
    with pytest.raises(ValueError, match=f"{where} contains .* NaN or Inf"):
        HadamardRegressor(max_iter=10).fit(A, y)


def test_empty_and_zero_measurements(data):
    A, y = data
    with pytest.raises(ValueError, match="number of measurements is zero"):
        HadamardRegressor().fit(A[:0], y[:0])
    with pytest.raises(ValueError, match="no columns"):
        HadamardRegressor().fit(np.zeros((10, 0)), y)


@pytest.mark.parametrize("bad_A, error, match", [
    (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
    (np.ones((2, 2), dtype=complex), TypeError, "complex"),
    (np.ones((2, 2), dtype=bool), TypeError, "booleans"),
    (np.ones((2, 2), dtype=object), TypeError, "numeric"),
    (np.ones(4), ValueError, "2-D"),
])
def test_wrong_dtypes_and_dims(bad_A, error, match):
    with pytest.raises(error, match=match):
        HadamardRegressor().fit(bad_A, np.ones(2))


def test_integer_input_is_accepted(rng):
    A = rng.integers(-3, 4, size=(8, 12))
    x = np.zeros(12)
    x[2] = 2
    est = HadamardRegressor(init_scale=1e-4, max_iter=50_000).fit(A, A @ x)
    assert np.linalg.norm(est.coef_ - x) < 1e-2


def test_y_must_be_a_vector(data):
    A, _ = data
    with pytest.raises(ValueError, match="y must be 1-dimensional"):
        HadamardRegressor().fit(A, np.ones((10, 2)))


def test_bad_hyperparameters(data):
    A, y = data
    with pytest.raises(ValueError, match="early_stopping"):
        HadamardRegressor(early_stopping="sometimes").fit(A, y)
    with pytest.raises(ValueError, match="noise_level"):
        HadamardRegressor(early_stopping="discrepancy").fit(A, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        HadamardRegressor(early_stopping="validation", validation_fraction=1.5).fit(A, y)
