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
from overparam.solvers.mmv_active import ActiveRowsStep, spectral_norm2
from overparam.stopping import StoppingRule


def _problem(seed=0, n=240):
    p = make_mmv_problem(n // 2, n, 10, n // 12, row_values="gaussian", snr=20,
                         random_state=seed)
    return p.operator, p.y, p.truth


def _active_run(A, Y, stop_time, **kwargs):
    """ActiveRowsStep run directly (so that its active set can be read), as ir_mmv does."""
    g, V = _start_params(None, 1, A.shape[1], Y.shape[1], init_scale=1e-2, v_scale=None,
                         init="zero")
    step = ActiveRowsStep(A[None], Y[None], (g, V), AdaptiveStep(), max_row_change=0.3,
                          **kwargs)
    result = run_batch_loop(step, np.linalg.norm(Y)[None],
                            stopping=StoppingRule(max_iter=20_000, max_flow_time=stop_time))
    return step, result


@pytest.mark.parametrize("active_gram", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_active_rows_follow_the_plain_path(seed, active_gram):
    # Same flow, same clock: at a time past the learning of the rows the two integrators
    # agree far below the statistical error (measured: 2.7e-6 and 8.4e-7 relative, in
    # either form of the active step), while the active set has shrunk to about the support
    # (20 of 240 rows).
    A, Y, X = _problem(seed)
    stop_time = 15000.0
    plain = ir_mmv(A, Y, init="zero", init_scale=1e-2, max_row_change=0.3,
                   stopping=StoppingRule(max_iter=20_000, max_flow_time=stop_time))
    step, active = _active_run(A, Y, stop_time, active_gram=active_gram)
    assert step.gram_S is active_gram
    assert active.info["time"][0] == pytest.approx(stop_time, rel=1e-12)
    assert step.S.size < A.shape[1] // 4
    assert relative_error(active.coef[0], plain.coef) < 1e-4
    assert relative_error(plain.coef, X) < 0.2  # the rows are learned by then


@pytest.mark.parametrize("seed", [0, 2])
def test_gram_form_of_the_active_step_is_the_direct_form(seed):
    # Λ of the active rows through A_S^T A_S (R formed at block ends only), or R carried and
    # Λ = A_S^T R after each step: the same iterates up to rounding (measured on seeds 0-3
    # at this time: at most 3e-14 relative; mid-escape, at t = 5000, the growth of the rows
    # amplifies it up to 1.5e-8).
    A, Y, _ = _problem(seed)
    runs = {form: _active_run(A, Y, 15000.0, active_gram=form) for form in (False, True)}
    (direct_step, direct), (gram_step, gram) = runs[False], runs[True]
    assert gram_step.gram_S and not direct_step.gram_S
    assert np.array_equal(direct_step.S, gram_step.S)
    assert np.array_equal(direct.n_iter, gram.n_iter)
    np.testing.assert_allclose(gram.coef, direct.coef, rtol=0,
                               atol=1e-10 * np.abs(direct.coef).max())
    assert gram.info["final_loss"][0] == pytest.approx(direct.info["final_loss"][0],
                                                        rel=1e-9)


def test_settled_active_set_doubles_the_block():
    A, Y, _ = _problem(0)
    step, _ = _active_run(A, Y, 15000.0)
    # the set settles on the support long before the end: blocks of 2 periods
    assert step.block == 2 * step.period
    assert step.next_choice - step.iterations <= 2 * step.period


@pytest.mark.parametrize("shape", [(3, 120, 240), (2, 300, 150), (1, 40, 20), (2, 8, 500),
                                   (2, 300, 750), (1, 100, 100)])
def test_spectral_norm_by_lanczos_matches_the_svd(shape):
    A = np.random.default_rng(sum(shape)).standard_normal(shape)
    A[0, :, 1] = 0.0  # a zero column changes nothing
    A[-1] = np.outer(A[-1, :, 0], A[-1, 0])  # rank one: Lanczos meets an invariant space
    expected = np.linalg.norm(A, ord=2, axis=(1, 2)) ** 2
    np.testing.assert_allclose(spectral_norm2(A), expected, rtol=1e-9)
    np.testing.assert_allclose(spectral_norm2(A, np.ascontiguousarray(np.swapaxes(A, 1, 2))),
                               expected, rtol=1e-9)
    for zero in (np.zeros((1, 5, 7)), np.zeros((2, 100, 200))):  # dense and Lanczos sizes
        assert np.all(spectral_norm2(zero) == 0.0)


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
    assert step.gram_S  # R itself is formed at the sync only


@pytest.mark.parametrize("seed", [3, 4])
def test_estimator_with_and_without_active_rows(seed):
    # The default turns the multirate step on from active_rows_from = 100 columns. Same
    # flow, but the held-out curves are smoother, so the chosen time can differ (measured
    # on seeds 3-5: errors 0.0445 / 0.0452 / 0.0508 against 0.0445 / 0.0452 / 0.0488).
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
