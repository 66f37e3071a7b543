"""The matrix-free path (implicit Euler + Newton-CG) and the default fit on operators."""

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

import overparam.estimators._equilibration as equilibration
from overparam.estimators import HadamardRegressor
from overparam.operators import DenseOperator, Operator, SubsampledDCT
from overparam.solvers.sparse.flow import hadamard_flow
from overparam.solvers.sparse.krylov_newton import hadamard_limit
from overparam.solvers.sparse.krylov_path import hadamard_path_cg, prefers_matrix_free_path
from overparam.stopping import DivergenceError, StoppingRule, StopReason, Validation


class NoDenseOperator(Operator):
    """A matrix-free operator that refuses to be densified (``to_dense``, ``__array__``)."""

    def __init__(self, B):
        self._B = np.asarray(B, dtype=float)
        self.n_measurements, self.input_shape = self._B.shape[0], (self._B.shape[1],)

    def forward(self, x):
        return self._B @ x

    def adjoint(self, z):
        return self._B.T @ z

    def rows(self, index):
        return NoDenseOperator(self._B[np.atleast_1d(np.arange(self.n_measurements)[index])])

    def to_dense(self):
        raise AssertionError("densified")

    def __array__(self, *args, **kwargs):
        raise AssertionError("densified")

    def norm_estimate(self):
        return float(np.linalg.norm(self._B, 2))

    def frobenius_norm(self):
        return float(np.linalg.norm(self._B))


def _problem(seed, snr_db=None, m=60, n=200, k=6):
    """Rademacher design (equal column norms: no equilibration on either side)."""
    rng = np.random.default_rng(seed)
    B = rng.choice([-1.0, 1.0], (m, n)) / np.sqrt(m)
    x = np.zeros(n)
    x[rng.choice(n, k, replace=False)] = rng.standard_normal(k)
    y = B @ x
    if snr_db is not None:
        e = rng.standard_normal(m)
        y = y + e * np.linalg.norm(y) / np.linalg.norm(e) / 10 ** (snr_db / 20)
    return B, x, y


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("stop_time", [1e3, 3e3, 3e4])
def test_path_follows_the_dual_flow(stop_time):
    B, _, y = _problem(0, snr_db=20.0)
    rule = StoppingRule(max_flow_time=stop_time, tol=0)
    exact = hadamard_flow(DenseOperator(B), y, init_scale=1e-12, stopping=rule, rtol=1e-8,
                          atol=1e-12)
    path = hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-12, stopping=rule,
                            path_rtol=1e-3)
    assert path.stop_reason == StopReason.END_OF_TIME
    assert path.info["time"] == pytest.approx(stop_time, rel=1e-12)
    # first order in the step: measured 1.2e-3 to 4.8e-3 at path_rtol 1e-3
    assert _rel(path.coef, exact.coef) < 1e-2


def test_path_ends_at_the_newton_limit():
    B, _, y = _problem(1)
    limit = hadamard_limit(DenseOperator(B), y, init_scale=1e-20, tol=1e-10)
    path = hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-20,
                            stopping=StoppingRule(tol=1e-10))
    assert path.stop_reason == StopReason.CONVERGED
    assert _rel(path.coef, limit.coef) < 1e-7


def test_path_stops_at_the_discrepancy():
    B, _, y = _problem(2, snr_db=20.0)
    level = 0.1 * np.linalg.norm(y)
    path = hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-12,
                            stopping=StoppingRule(discrepancy=level))
    assert path.stop_reason == StopReason.DISCREPANCY
    assert np.linalg.norm(B @ path.coef - y) == pytest.approx(level, rel=1e-4)


def test_dispatch_only_for_operators_that_are_not_matrices():
    B = np.ones((3, 5))
    assert prefers_matrix_free_path(aslinearoperator(B), 2)
    assert not prefers_matrix_free_path(B, 2)
    assert not prefers_matrix_free_path(aslinearoperator(B), 3)
    assert not prefers_matrix_free_path(aslinearoperator(B.T), 2)  # overdetermined


@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_default_fit_on_an_operator_matches_the_matrix_without_densifying(monkeypatch,
                                                                          snr_db):
    # column norms estimated from probes, as for any operator of more than 4e6 entries
    monkeypatch.setattr(equilibration, "_DENSE_ENTRIES", 0)
    B, truth, y = _problem(0, snr_db)
    dense = HadamardRegressor().fit(B, y)
    free = HadamardRegressor().fit(NoDenseOperator(B), y)
    assert free.init_scale_ == pytest.approx(dense.init_scale_, rel=1e-12)
    if snr_db is None:  # both at the limit (Newton, Newton-CG); measured 2.5e-7
        assert free.result_.info["solver"] == "newton-cg"
        assert _rel(free.coef_, dense.coef_) < 1e-5
    else:  # 5-fold validated time, implicit path vs BDF path (measured 5.5e-3, 4.8 %)
        assert free.result_.info["solver"] == "newton-cg-path"
        assert _rel(free.coef_, dense.coef_) < 2e-2
        assert free.result_.info["chosen_time"] == pytest.approx(
            dense.result_.info["chosen_time"], rel=0.15)
        assert _rel(free.coef_, truth) < 1.1 * _rel(dense.coef_, truth)


def test_path_checks_divergence_after_every_step():
    """The path reads the rule's divergence limit after each accepted step, as run_loop's
    Monitor does (it used to test only for a non-finite end point). A real blow-up cannot be
    made on a linear operator: accepted implicit steps do not raise the loss, and a garbage
    trial point fails the local error test. A limit below the start (``divergence_factor``
    0.5) is past at the first step instead."""
    B, _, y = _problem(0, snr_db=20.0)
    with pytest.raises(DivergenceError, match=r"at iteration \d+ \(initial"):
        hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-12,
                         stopping=StoppingRule(divergence_factor=0.5))
    ok = hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-12,
                          stopping=StoppingRule(divergence_factor=1.0))  # never above
    assert ok.converged


def test_path_validation_skips_the_initial_plateau_as_the_flow():
    """Both paths take their checks from flow.checks_due: the first grid time, then none
    while the training loss is within 0.1 % of its start."""
    B, _, y = _problem(3, snr_db=20.0, m=80)
    val = Validation(DenseOperator(B[64:]), y[64:], patience=None)
    path = hadamard_path_cg(aslinearoperator(B[:64]), y[:64], init_scale=1e-12,
                            validation=val)
    flow = hadamard_flow(DenseOperator(B[:64]), y[:64], init_scale=1e-12, validation=val,
                         rtol=1e-2, atol=1e-5)
    for result in (path, flow):
        clocks = result.info["validation_curve"][:, 1]
        skipped = round(np.log(clocks[1] / clocks[0]) / np.log(1.05)) - 1
        assert skipped > 20
        loss = np.sum((B[:64] @ _at_time(B[:64], y[:64], clocks[1] / 1.05) - y[:64]) ** 2)
        assert loss > (1 - 1e-3) * np.sum(y[:64] ** 2)  # the last skipped time: on the plateau


def _at_time(B, y, clock):
    return hadamard_path_cg(aslinearoperator(B), y, init_scale=1e-12, path_rtol=1e-3,
                            stopping=StoppingRule(max_flow_time=clock, tol=0)).coef


def test_path_on_a_subsampled_dct_reads_no_columns_and_follows_the_flow(monkeypatch):
    """A subsampled DCT's column Gram matrix has a closed form: the path's working-set
    preconditioner applies its columns by products and reads none (the implicit form of the
    limit's preconditioner), and follows the same flow as the BDF path on its matrix."""
    rng = np.random.default_rng(3)
    n, m = 240, 80
    op = SubsampledDCT(n, np.sort(rng.choice(n, m, replace=False)))
    B = op.to_dense()
    x = np.zeros(n)
    x[rng.choice(n, 6, replace=False)] = rng.standard_normal(6) + 1.0
    y = B @ x + 0.01 * np.linalg.norm(B @ x) / np.sqrt(m) * rng.standard_normal(m)

    def no_columns(index):
        raise AssertionError("a column read")

    monkeypatch.setattr(op, "columns", no_columns)
    rule = StoppingRule(max_flow_time=3e3, tol=0)
    exact = hadamard_flow(DenseOperator(B), y, init_scale=1e-12, stopping=rule, rtol=1e-8,
                          atol=1e-12)
    path = hadamard_path_cg(op, y, init_scale=1e-12, stopping=rule, path_rtol=1e-3)
    assert path.stop_reason == StopReason.END_OF_TIME
    assert _rel(path.coef, exact.coef) < 1e-2  # first order in the step, as above
