"""Hyperparameters are declared once (scikit-learn's ``_parameter_constraints``) and checked
once per ``fit``, before the data are looked at and before any solver runs (issue 14)."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    generate_invalid_param_val,
    make_constraint,
    validate_parameter_constraints,
)
from sklearn.utils.estimator_checks import check_param_validation

from overparam.estimators.base import RecoveryEstimator
from overparam.methods import available_methods, get_method
from overparam.solvers.steps import AdaptiveStep

METHODS = sorted(available_methods())
#: values for the parameters that a fit needs (their default None means "not given")
REQUIRED = {"groups": 1, "n_nonzero_rows": 1}


def _init_params(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _estimator(name, **params):
    cls = get_method(name)
    needed = {k: v for k, v in REQUIRED.items() if k in cls._required_params}
    return cls(**{**needed, **params})


@pytest.fixture
def no_data_work(monkeypatch):
    """Fail the test if a fit gets past its hyperparameter checks to the data or a solver."""

    def reached(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__}.fit looked at the data or ran a solver "
                             "before rejecting its hyperparameters")

    monkeypatch.setattr(RecoveryEstimator, "_validate_fit_data", reached)
    for name in METHODS:
        monkeypatch.setattr(get_method(name), "_solve", reached)


@pytest.fixture
def no_solver(monkeypatch):
    """Fail the test if a fit reaches a solver (the data may be validated)."""

    def reached(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} ran a solver with bad hyperparameters")

    for name in METHODS:
        monkeypatch.setattr(get_method(name), "_solve", reached)
        monkeypatch.setattr(get_method(name), "_solve_paths", reached)


def test_every_registered_method_is_checked():
    assert len(METHODS) == 22


@pytest.mark.parametrize("name", METHODS)
def test_every_parameter_has_a_constraint(name):
    cls = get_method(name)
    assert set(cls._parameter_constraints) == _init_params(cls), name
    assert set(cls._required_params) <= _init_params(cls)


@pytest.mark.parametrize("name", METHODS)
def test_defaults_pass(name):
    cls = get_method(name)
    # a required parameter's default None (not given) is allowed by its constraint
    validate_parameter_constraints(cls._parameter_constraints, cls().get_params(), name)
    _estimator(name)._validate_params()


@pytest.mark.parametrize("name", METHODS)
def test_bad_values_raise_before_any_data_work(name, no_data_work):
    """scikit-learn's own check: a value of no allowed type, and a value outside each
    Interval / StrOptions, raise ``InvalidParameterError`` naming the parameter, at fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = _estimator(name)
        check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("name", METHODS)
def test_every_numeric_or_string_parameter_gets_an_out_of_range_value(name):
    """The check above tries a value out of range for each Interval / StrOptions; make sure
    those exist and are rejected (it skips constraints without an invalid value)."""
    cls = get_method(name)
    for param, constraints in cls._parameter_constraints.items():
        parsed = [make_constraint(c) for c in constraints]
        ranged = [c for c in parsed if isinstance(c, Interval | StrOptions)]
        for constraint in ranged:
            bad = generate_invalid_param_val(constraint)
            assert not any(c.is_satisfied_by(bad) for c in parsed), (name, param, bad)


BAD_VALUES = [
    ("group-hadamard", {"groups": {"groups": np.arange(6)}}, "'groups' parameter"),
    ("group-hadamard", {"groups": "abc"}, "'groups' parameter"),
    ("group-hadamard", {"algorithm": "alg3"}, "'algorithm' parameter"),
    ("group-hadamard", {"step_v": -1.0}, "'step_v' parameter"),
    ("group-lasso", {"weights": {"a": 1}}, "'weights' parameter"),
    ("hadamard", {"depth": 1}, "'depth' parameter"),
    ("hadamard", {"depth": 2.5}, "'depth' parameter"),
    ("hadamard", {"step": "fast"}, "'step' parameter"),
    ("hadamard", {"init_scale": "tiny"}, "'init_scale' parameter"),
    ("hadamard", {"init_scale": 0.0}, "'init_scale' parameter"),
    ("hadamard", {"max_iter": 0}, "'max_iter' parameter"),
    ("hadamard", {"tol": np.nan}, "'tol' parameter"),
    ("hadamard", {"noise_level": np.inf}, "'noise_level' parameter"),
    ("hadamard", {"random_state": "seed"}, "'random_state' parameter"),
    ("hadamard", {"early_stopping": "sometimes"}, "'early_stopping' parameter"),
    ("ir-mmv", {"validation_fraction": 1.5}, "'validation_fraction' parameter"),
    ("deep-matrix", {"depth": 1}, "'depth' parameter"),
    ("snn", {"activation": "relu"}, "'activation' parameter"),
    ("m-focuss", {"p": 3}, "'p' parameter"),
    ("lasso", {"alpha": -1.0}, "'alpha' parameter"),
    ("basis-pursuit", {"method": "simplex"}, "'method' parameter"),
]


@pytest.mark.parametrize(("name", "params", "match"), BAD_VALUES)
def test_bad_value_named_at_fit(name, params, match, no_data_work):
    with pytest.raises(InvalidParameterError, match=match):
        _estimator(name, **params).fit(np.ones((6, 6)), np.ones(6))


def test_group_labels_in_a_dict_fail_early_and_clearly(no_data_work):
    """Issue 14's example: it used to fail deep in the solver, about an array of shape ()."""
    from overparam.estimators import GroupHadamardRegressor

    est = GroupHadamardRegressor(groups={"groups": np.repeat(np.arange(3), 2)})
    with pytest.raises(InvalidParameterError, match=r"The 'groups' parameter of "
                       r"GroupHadamardRegressor must be .* Got \{'groups'"):
        est.fit(np.ones((5, 6)), np.ones(5))


@pytest.mark.parametrize("name", ["group-hadamard", "group-lasso", "group-primal-dual"])
def test_missing_groups_is_named(name, no_data_work):
    with pytest.raises(InvalidParameterError, match=r"'groups' parameter .* is required"):
        get_method(name)().fit(np.ones((5, 6)), np.ones(5))


# Checks that need several parameters or the data: still at the start of fit, before a solver.
DATA_CHECKS = [
    ("group-hadamard", {"groups": [0, 0, 1]}, "3 group labels for 6 features"),
    ("group-hadamard", {"groups": 4}, "not a multiple of the group size"),
    ("group-lasso", {"groups": 3, "weights": [1.0, 2.0, 3.0]}, "one per group"),
    ("group-primal-dual", {"groups": [[0, 1], [2, 3]]}, "feature 4 is in no group"),
    ("group-hadamard", {"groups": 2, "step_u": "adaptive"}, "only available for algorithm='gd'"),
    ("group-hadamard", {"groups": 2, "step_u": AdaptiveStep()}, "algorithm='gd'"),
    ("hadamard", {"solver": "newton", "early_stopping": "validation"}, "only the limit"),
    ("min-norm", {"early_stopping": "validation"}, "needs solver='gd'"),
    ("hadamard", {"early_stopping": "discrepancy"}, "needs noise_level"),
    ("nuclear-norm-cv", {"alphas": [1.0, -1.0]}, "alphas must be >= 0"),
]


@pytest.mark.parametrize(("name", "params", "match"), DATA_CHECKS)
def test_combinations_and_data_checked_before_the_solver(name, params, match, no_solver):
    X = np.random.default_rng(0).standard_normal((5, 6))
    with pytest.raises(ValueError, match=match):
        get_method(name)(**params).fit(X, np.ones(5))


def test_spectral_activation_pair_checked_before_the_solver(no_solver):
    from overparam.estimators import SpectralNetworkRegressor

    stack = np.random.default_rng(0).standard_normal((8, 3, 3))
    with pytest.raises(TypeError, match="pair of callables"):
        SpectralNetworkRegressor(activation=("tanh", "tanh")).fit(stack, np.ones(8))


def test_checked_once_per_fit_though_the_solver_runs_several_times(monkeypatch):
    from overparam.baselines import MinNormRegressor

    calls = {"validate": 0, "check": 0, "solve": 0}
    for method, key in (("_validate_params", "validate"), ("_check_params", "check"),
                        ("_solve", "solve")):
        original = getattr(MinNormRegressor, method)

        def spy(self, *args, _original=original, _key=key, **kwargs):
            calls[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MinNormRegressor, method, spy)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 20))
    y = A @ rng.standard_normal(20) + 0.1 * rng.standard_normal(30)
    MinNormRegressor(solver="gd", early_stopping="validation", max_iter=300).fit(A, y)
    assert calls["validate"] == calls["check"] == 1
    assert calls["solve"] >= 2  # the held-out path and the refit
