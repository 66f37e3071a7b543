"""The multirate IR-MMV step (active rows every step, slow rows once per block)."""

from types import SimpleNamespace

import numpy as np
import pytest

from overparam.datasets import make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.metrics import relative_error
from overparam.solvers import AdaptiveStep, ir_mmv
from overparam.solvers.batch_loop import run_batch_loop
from overparam.solvers.mmv import _start_params
from overparam.solvers.mmv_active import ActiveRowsStep
from overparam.stopping import StoppingRule


def _problem(seed=0, n=240):
    p = make_mmv_problem(n // 2, n, 10, n // 12, row_values="gaussian", snr=20,
                         random_state=seed)
    return p.operator, p.y, p.truth


def _active_run(A, Y, stop_time):
    """ActiveRowsStep run directly (so that its active set can be read), as ir_mmv does."""
    g, V = _start_params(None, 1, A.shape[1], Y.shape[1], init_scale=1e-2, v_scale=None,
                         init="zero")
    step = ActiveRowsStep(A[None], Y[None], (g, V), AdaptiveStep(), max_row_change=0.3)
    result = run_batch_loop(step, np.linalg.norm(Y)[None],
                            stopping=StoppingRule(max_iter=20_000, max_flow_time=stop_time))
    return step, result


@pytest.mark.parametrize("seed", [0, 1])
def test_active_rows_follow_the_plain_path(seed):
    # Same flow, same clock: at a time past the learning of the rows the two integrators
    # agree far below the statistical error (measured: ~1e-5 relative), while the active
    # set has shrunk to about the support (20 of 240 rows).
    A, Y, X = _problem(seed)
    stop_time = 15000.0
    plain = ir_mmv(A, Y, init="zero", init_scale=1e-2, max_row_change=0.3,
                   stopping=StoppingRule(max_iter=20_000, max_flow_time=stop_time))
    step, active = _active_run(A, Y, stop_time)
    assert active.info["time"][0] == pytest.approx(stop_time, rel=1e-12)
    assert step.S.size < A.shape[1] // 4
    assert relative_error(active.coef[0], plain.coef) < 1e-3
    assert relative_error(plain.coef, X) < 0.2  # the rows are learned by then


def test_output_is_synced_with_its_residual():
    # The slow rows move once per block; the output must include their last partial block,
    # and the loss reported must be that of the returned estimate.
    A, Y, _ = _problem(2)
    step, result = _active_run(A, Y, 3777.7)
    X = result.coef[0]
    g, V = (p[0] for p in result.params)
    np.testing.assert_allclose(X, (g * g)[:, None] * V, rtol=0, atol=1e-15)
    loss = float(np.sum((Y - A @ X) ** 2))
    assert result.info["final_loss"][0] == pytest.approx(loss, rel=1e-9)
    assert step.I.size > 0  # some rows were slow at the end: the sync had work to do


@pytest.mark.parametrize("seed", [3, 4])
def test_estimator_with_and_without_active_rows(seed):
    # The default turns the multirate step on from active_rows_from = 200 columns. Same
    # flow, but the held-out curves are smoother, so the chosen time can differ (measured
    # on seeds 3-5: errors 0.0462 / 0.0452 / 0.0506 against 0.0445 / 0.0452 / 0.0488).
    A, Y, X = _problem(seed)
    fast = MMVRegressor().fit(A, Y)
    plain = MMVRegressor()
    plain.active_rows_from = None
    plain.fit(A, Y)
    assert fast.result_.info["validation_folds"] == 5
    assert relative_error(fast.signal_, X) <= 1.1 * relative_error(plain.signal_, X)


def test_active_rows_need_the_simultaneous_update():
    A, Y, _ = _problem(0, n=24)
    with pytest.raises(ValueError, match="simultaneous"):
        ir_mmv(A, Y, update="sequential", step_class=ActiveRowsStep)


class _LimitedStep(AdaptiveStep):
    def limit(self, params, grads):
        return 1e-3


def test_active_rows_refuse_a_policy_limit_the_estimator_keeps_it():
    """The active step would not read a policy's limit: it refuses such a policy, and the
    estimator takes the plain step (which honours it) instead."""
    A, Y, _ = _problem(0)
    g, V = _start_params(None, 1, A.shape[1], Y.shape[1], init_scale=1e-2, v_scale=None,
                         init="zero")
    with pytest.raises(ValueError, match="no limit"):
        ActiveRowsStep(A[None], Y[None], (g, V), _LimitedStep())
    wide = SimpleNamespace(input_shape=(A.shape[1], Y.shape[1]))
    assert MMVRegressor()._step_class(wide) is ActiveRowsStep
    assert MMVRegressor(step=_LimitedStep())._step_class(wide) is None
