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
    # scikit-learn's wording (validate_data)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[10, 9\]"):
        est.fit(A, y[:9])


@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(where, bad, data):
    A, y = data[0].copy(), data[1].copy()
    (A if where == "X" else y)[3] = bad
    # scikit-learn's wording for matrices; the Operator path names the array (below)
    with pytest.raises(ValueError, match=f"Input {where} contains (NaN|infinity)"):
        HadamardRegressor(max_iter=10).fit(A, y)


def test_non_finite_on_the_operator_path():
    stack = np.ones((4, 2, 2))
    stack[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="sensing_matrices contains 1 NaN or Inf"):
        HadamardRegressor().fit(stack, np.ones(4))
    with pytest.raises(ValueError, match="y contains 1 NaN or Inf"):
        HadamardRegressor().fit(np.ones((4, 2, 2)), np.array([1.0, np.inf, 0.0, 1.0]))


def test_empty_and_zero_measurements(data):
    A, y = data
    with pytest.raises(ValueError, match="0 sample"):
        HadamardRegressor().fit(A[:0], y[:0])
    with pytest.raises(ValueError, match="0 feature"):
        HadamardRegressor().fit(np.zeros((10, 0)), y)


@pytest.mark.parametrize("bad_A, error, match", [
    (np.array([["a", "b"], ["c", "d"]]), ValueError, "could not convert"),
    (np.ones((2, 2), dtype=complex), ValueError, "Complex data not supported"),
    (np.ones(4), ValueError, "Expected 2D array, got 1D array"),
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
    with pytest.raises(ValueError, match="y should be a 1d array"):
        HadamardRegressor().fit(A, np.ones((10, 2)))


def test_column_y_and_feature_counts(data):
    from sklearn.exceptions import DataConversionWarning

    A, y = data
    with pytest.warns(DataConversionWarning):
        est = MinNormRegressor().fit(A, y[:, None])
    np.testing.assert_allclose(est.coef_, MinNormRegressor().fit(A, y).coef_)
    assert est.n_features_in_ == 20 and not hasattr(est, "feature_names_in_")
    with pytest.raises(ValueError, match="X has 19 features, but MinNormRegressor is "
                                         "expecting 20 features"):
        est.predict(A[:, :19])
    stack = np.random.default_rng(0).standard_normal((10, 4, 5))
    assert MinNormRegressor().fit(stack, y).n_features_in_ == 20  # the Operator path
    assert est.predict(stack).shape == (10,)  # a flattened stack predicts the same way


def test_bad_hyperparameters(data):
    A, y = data
    with pytest.raises(ValueError, match="early_stopping"):
        HadamardRegressor(early_stopping="sometimes").fit(A, y)
    with pytest.raises(ValueError, match="noise_level"):
        HadamardRegressor(early_stopping="discrepancy").fit(A, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        HadamardRegressor(early_stopping="validation", validation_fraction=1.5).fit(A, y)
