"""The first-order nuclear-norm peer (pyproximal) against cvxpy's answer, and the spectral norm
that gradient descent no longer computes when its step policy ignores it."""

import sys

import numpy as np
import pytest

from overparam._optional import MissingExtraError
from overparam.datasets import make_low_rank_problem
from overparam.estimators import FactorizedRegressor
from overparam.metrics import relative_error
from overparam.operators import MatrixSensingOperator
from overparam.solvers.steps import AdaptiveStep, ConstantStep
from overparam.stopping import StoppingRule

pytest.importorskip("pyproximal")
pytest.importorskip("cvxpy")

from overparam.baselines.low_rank import (
    NuclearNormCV,
    nuclear_norm_minimization,
    nuclear_norm_proximal,
)


@pytest.fixture(scope="module")
def noisy():
    return make_low_rank_problem((10, 8), 2, 60, noise_std=0.02, random_state=0)


def _objective(pb, X, lam):
    r = pb.operator.forward(X) - pb.y
    return 0.5 * float(r @ r) + lam * np.linalg.svd(X, compute_uv=False).sum()


@pytest.mark.parametrize("fraction", [0.3, 0.03])
def test_proximal_solves_the_penalized_problem_as_cvxpy_does(noisy, fraction):
    lam = fraction * np.linalg.norm(noisy.operator.adjoint(noisy.y), 2)
    conic = nuclear_norm_minimization(noisy.operator, noisy.y, lam=lam, solver="CLARABEL")
    X, info = nuclear_norm_proximal(noisy.operator, noisy.y, lam, tol=1e-9)
    assert info["converged"] and info["gradient_mapping"] <= 1e-9
    # Within the interior-point solver's accuracy (2e-5 here) and never worse: the proximal
    # answer's objective is the lower one (by 4e-10 to 7e-10) and its rank is exact
    assert relative_error(X, conic) < 1e-4
    assert _objective(noisy, X, lam) <= _objective(noisy, conic, lam)


def test_proximal_edge_cases(noisy):
    lam_max = np.linalg.norm(noisy.operator.adjoint(noisy.y), 2)
    X, info = nuclear_norm_proximal(noisy.operator, noisy.y, 1.01 * lam_max)
    assert info["converged"] and np.abs(X).max() == 0.0  # above lam_max, zero exactly
    lam = 0.05 * lam_max
    X, info = nuclear_norm_proximal(noisy.operator, noisy.y, lam, tol=1e-8)
    again, warm = nuclear_norm_proximal(noisy.operator, noisy.y, lam, x0=X, tol=1e-8)
    assert warm["n_iter"] < info["n_iter"] / 5  # a warm start at the answer ends at once
    assert relative_error(again, X) < 1e-6
    _, short = nuclear_norm_proximal(noisy.operator, noisy.y, lam, tol=1e-8, max_iter=3)
    assert short["n_iter"] == 3 and not short["converged"]
    stack = MatrixSensingOperator(noisy.operator.sensing_matrices(), scale=noisy.operator.scale)
    X_stack, _ = nuclear_norm_proximal(stack, noisy.y, lam, tol=1e-8)  # any 2-D operator
    assert relative_error(X_stack, X) < 1e-6


def test_proximal_cv_chooses_as_an_accurate_conic_solver():
    pb = make_low_rank_problem((12, 12), 2, 96, noise_std=0.1 / np.sqrt(96), random_state=0)
    conic = NuclearNormCV(random_state=0, solver="CLARABEL").fit(pb.operator, pb.y)
    first = NuclearNormCV(random_state=0, solver="proximal", proximal_tol=1e-7).fit(
        pb.operator, pb.y)
    np.testing.assert_allclose(first.alphas_, conic.alphas_)
    np.testing.assert_allclose(first.cv_errors_, conic.cv_errors_, rtol=1e-3)
    assert first.alpha_ == conic.alpha_
    assert relative_error(first.coef_, conic.coef_) < 1e-3
    assert first.result_.stop_reason == "converged"
    assert first.result_.info["proximal_iterations"] > 0


def test_proximal_refit_on_its_budget_is_not_converged():
    pb = make_low_rank_problem((8, 8), 2, 64, noise_std=0.01, random_state=1)
    est = NuclearNormCV(n_alphas=3, solver="proximal", proximal_max_iter=2).fit(pb.operator,
                                                                               pb.y)
    assert est.result_.stop_reason == "max_iter"


def test_proximal_names_its_extra_when_missing(noisy, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyproximal", None)
    with pytest.raises(MissingExtraError, match=r"overparam\[proximal\]"):
        nuclear_norm_proximal(noisy.operator, noisy.y, 0.1)
    with pytest.raises(MissingExtraError, match=r"overparam\[proximal\]"):
        NuclearNormCV(solver="proximal").fit(noisy.operator, noisy.y)


class _CountingNorm(MatrixSensingOperator):
    calls = 0

    def norm_estimate(self):
        type(self).calls += 1
        return super().norm_estimate()


def test_gradient_descent_computes_the_norm_only_for_a_policy_that_reads_it(noisy):
    """The spectral norm was 21 of 35 CPU s of a fit at n = 200 whose adaptive step
    ignores it (docs/matrix_sensing.md, "Cost at scale")."""
    from overparam.parameterizations.factorized import Factorized
    from overparam.solvers import gradient_descent

    op = _CountingNorm(noisy.operator.sensing_matrices(), scale=noisy.operator.scale)
    assert not AdaptiveStep(initial=0.1).uses_guess() and AdaptiveStep().uses_guess()
    assert not ConstantStep(0.1).uses_guess()
    FactorizedRegressor(random_state=0).fit(op, noisy.y)
    assert _CountingNorm.calls == 0
    param = Factorized((10, 8), 4)
    params = param.init(1e-3, np.random.default_rng(0))
    gradient_descent(param, op, noisy.y, step=AdaptiveStep(), init_params=params,
                     stopping=StoppingRule(max_iter=5))
    assert _CountingNorm.calls == 1
