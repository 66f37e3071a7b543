"""docs/DEVELOPING.md's "add a structure" example, executed from the page: one Parameterization
class, fitted by ``ParameterizedRegressor`` with no other edit, through ``fit``, validation
stopping and the registry-wide contract of tests/test_contract.py."""

import re
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import test_contract
from overparam._registry import METHODS
from overparam.estimators import ParameterizedRegressor
from overparam.estimators.generic import build_parameterization
from overparam.metrics import relative_error
from overparam.parameterizations import Hadamard
from overparam.stopping import Oracle, StopReason
from overparam.testing import check_vjp

DEVELOPING = Path(__file__).resolve().parents[1] / "docs" / "DEVELOPING.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def docs():
    """The namespace of the page's code blocks, run in order (they assert their own claims)."""
    blocks = BLOCK.findall(DEVELOPING.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"DEVELOPING.md[block {i}]", "exec"), namespace)
    return namespace


def test_the_pattern_of_a_custom_solve_is_what_the_generic_estimator_does(docs):
    A, y, _ = _sparse_nonnegative()
    kwargs = dict(init_scale=1e-6, max_iter=300, early_stopping="validation")
    mine = docs["FixedInitGD"](Hadamard, **kwargs).fit(A, y)
    generic = ParameterizedRegressor(Hadamard, **kwargs).fit(A, y)
    np.testing.assert_array_equal(mine.coef_, generic.coef_)
    assert mine.n_iter_ == generic.n_iter_


def _sparse_nonnegative(m=30, n=80, seed=0):
    case = test_contract.make_case("positive", "under", seed)
    assert case.matrix.shape == (m, n)
    return case.A, case.y, case.truth


def test_the_new_structure_is_one_class_with_a_checked_vjp(docs):
    cls = docs["NonnegativeHadamard"]
    rng = np.random.default_rng(3)
    for n in (1, 5, 40):
        param = cls(n)
        check_vjp(param, (rng.standard_normal(n),))
        # the same model as the library's Hadamard(n, signed=False): signal and gradient
        u = rng.standard_normal(n)
        g = rng.standard_normal(n)
        ref = Hadamard(n, depth=2, signed=False)
        np.testing.assert_allclose(param.signal((u,)), ref.signal((u,)), rtol=1e-15)
        np.testing.assert_allclose(param.vjp((u,), g)[0], ref.vjp((u,), g)[0], rtol=1e-15)
    # the check can fail: a wrong factor in the vjp is caught
    wrong = cls(5)
    wrong.vjp = lambda params, grad: (params[0] * grad,)
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_vjp(wrong, (rng.standard_normal(5),))


def test_fit_to_the_limit_recovers_the_nonnegative_sparse_truth(docs):
    A, y, truth = _sparse_nonnegative()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no warning
        est = ParameterizedRegressor(docs["NonnegativeHadamard"], init_scale=1e-8, tol=1e-4,
                                     early_stopping=None).fit(A, y)
    assert isinstance(est.parameterization_, docs["NonnegativeHadamard"])
    assert est.parameterization_.signal_shape == (80,)
    assert np.linalg.norm(A @ est.coef_ - y) <= 1e-3 * np.linalg.norm(y)
    assert np.all(est.coef_ >= 0)
    assert relative_error(est.coef_, truth) < 1e-2
    assert est.result_.info["clock"] == "flow_time"
    # an instance of the right size is used as given; one of the wrong size is refused
    same = ParameterizedRegressor(docs["NonnegativeHadamard"](80), init_scale=1e-8, tol=1e-4,
                                  early_stopping=None).fit(A, y)
    np.testing.assert_array_equal(same.coef_, est.coef_)
    with pytest.raises(ValueError, match="shape"):
        ParameterizedRegressor(docs["NonnegativeHadamard"](79)).fit(A, y)


def test_validation_stopping_beats_the_limit_under_noise(docs):
    case = test_contract.add_noise(test_contract.make_case("positive", "under", 0), 10.0, 0)
    cls = docs["NonnegativeSparseRegressor"]
    early = cls().fit(case.A, case.y)
    info = early.result_.info
    assert info["validation_folds"] == 5 and info["chosen_time"] is not None
    assert info["validation_curve"].shape[0] > 3
    with pytest.warns(ConvergenceWarning, match="max_iter"):  # noise not fitted yet: says so
        full = cls(early_stopping=None, max_iter=2000).fit(case.A, case.y)
    best = cls(early_stopping=Oracle(case.truth)).fit(case.A, case.y)
    err = relative_error(early.coef_, case.truth)
    # seeded (seed 0): 0.20 stopped, 0.19 the best point of the path, 0.46 after 2000 steps
    assert err < 0.7 * relative_error(full.coef_, case.truth)
    assert err < 1.25 * relative_error(best.coef_, case.truth)
    # the discrepancy principle, given the noise level
    sigma = float(np.linalg.norm(case.y - case.matrix @ case.truth) / np.sqrt(case.y.size))
    disc = cls(early_stopping="discrepancy", noise_level=sigma).fit(case.A, case.y)
    assert disc.stop_reason_ == StopReason.DISCREPANCY
    assert relative_error(disc.coef_, case.truth) < 0.7 * relative_error(full.coef_, case.truth)


# Input classes of the contract where the non-negative model promises nothing, with why.
NOT_THIS_MODEL = {
    "inconsistent-limit": "the limit of x = u * u is the non-negative least-squares point, "
                          "not the least-squares solution the contract asks for",
    "bad-columns": "the generic estimator does not equilibrate columns (it does not know that "
                   "the structure is a pattern of entries); columns 1e6 apart are not fitted",
}
FAST_CLASSES = ["noisy-10dB", "noisy-30dB", "inconsistent", "zero-A", "zero-y",
                "one-measurement"]
SLOW_CLASSES = [c for c in test_contract.BASE_CLASSES
                if c not in FAST_CLASSES and c not in NOT_THIS_MODEL]


@pytest.fixture
def registered(docs, monkeypatch):
    """The docs' estimator as a registered method with the contract of a non-negative sparse
    method, for this test only (nothing of the library is edited)."""
    name = "docs-nonnegative-sparse"
    monkeypatch.setitem(METHODS, name, (docs["NonnegativeSparseRegressor"], "docs example"))
    # Plain gradient descent slows down near its limit (entries near 0 move at a rate
    # proportional to their size): the exact reference is met to 1e-3 (the exact Hadamard
    # solvers of the named estimator meet 1e-4).
    monkeypatch.setitem(test_contract.CONTRACTS, name,
                        test_contract.Contract("positive", 1e-3, 3.0))
    return name


@pytest.mark.parametrize("input_class", FAST_CLASSES + [
    pytest.param(c, marks=pytest.mark.slow) for c in SLOW_CLASSES])
def test_contract_cells(registered, input_class):
    test_contract.check_cell(registered, input_class, seed=0)


@pytest.mark.slow
def test_contract_cells_clean_underdetermined(registered):
    # "under" (the exact reference, a 5-fold validated fit on clean data: ~20 s), one seed
    test_contract.check_cell(registered, "under", seed=0)


def test_build_parameterization_errors():
    with pytest.raises(TypeError, match="not a Parameterization"):
        build_parameterization(lambda n: np.zeros(n), (4,))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        build_parameterization(Hadamard(3), (4,))
    assert build_parameterization(partial(Hadamard, depth=3), (4,)).depth == 3
    with pytest.raises(InvalidParameterError, match="parameterization"):
        ParameterizedRegressor("hadamard").fit(np.eye(3), np.ones(3))


def test_clone_and_params(docs):
    est = ParameterizedRegressor(partial(Hadamard, depth=3), init_scale=1e-4, max_iter=50)
    copy = clone(est)
    assert copy.get_params()["parameterization"].keywords == {"depth": 3}
    assert copy.get_params()["init_scale"] == 1e-4
    sub = docs["NonnegativeSparseRegressor"](max_iter=7)
    assert clone(sub).get_params()["max_iter"] == 7
    assert clone(sub).parameterization is docs["NonnegativeHadamard"]


@parametrize_with_checks([ParameterizedRegressor(Hadamard, max_iter=300)])
def test_scikit_learn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 300 steps on the checks' data
        check(estimator)
