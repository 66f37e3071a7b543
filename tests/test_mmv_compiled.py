"""IR-MMV's compiled step (numba) agrees with the numpy step; the accelerator switch.

The two steps compute the same iterates with sums taken in another order (BLAS blocks,
numpy's pairwise sums against sequential loops), so each iterate differs from the other's by
a few rounding errors of the step, ``O(eps)`` relative. Along a descent path these
differences add up but are not amplified (the flow contracts towards its limit; a row that
escapes from the small init amplifies them only by its growth, which is bounded by the size
of the run), so after ``n`` steps they stay below ``n`` times a small multiple of ``eps``:
the tolerance ``_rtol(n) = 100 n eps`` (measured: 1e-15 to 4e-14 over 255 to 4,312 steps,
benchmarks/mmv_numba.py), far below what a wrong step, test or count would leave (a step
of another size, a missed refresh or one iteration more moves the estimate by 1e-6 or more).
"""

import numpy as np
import pytest

from overparam.datasets import make_mmv_batch, make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.operators import DenseOperator
from overparam.solvers import History, ir_mmv
from overparam.stopping import StoppingRule, StopReason, Validation

numba = pytest.importorskip("numba")

_EPS = float(np.finfo(float).eps)


def _rtol(n_iter) -> float:
    """Rounding-level agreement after ``n_iter`` steps (module docstring)."""
    return 100.0 * float(np.max(n_iter)) * _EPS


def _assert_agree(a, b):
    """Two :func:`ir_mmv` results (batched or not) of the two steps agree."""
    assert np.array_equal(a.n_iter, b.n_iter)
    assert a.stop_reason == b.stop_reason
    rtol = _rtol(a.n_iter)
    np.testing.assert_allclose(b.coef, a.coef, rtol=rtol, atol=rtol * np.abs(a.coef).max())
    np.testing.assert_allclose(b.info["time"], a.info["time"], rtol=rtol)
    np.testing.assert_allclose(b.info["final_loss"], a.info["final_loss"], rtol=rtol,
                               atol=rtol * np.max(a.info["final_loss"]))


def _both(*args, **kwargs):
    return [ir_mmv(*args, accelerator=acc, **kwargs) for acc in ("numpy", "numba")]


@pytest.mark.parametrize("seed", [0, 1])
def test_default_fit_agrees(seed):
    """The estimator's default fit at N = 60 (M = 30, L = 20, K = 5, 20 dB; the folds as one
    batch with held-out validation, then the refit up to a flow time)."""
    p = make_mmv_problem(30, 60, 20, 5, row_values="gaussian", snr=20.0, random_state=seed)
    fits = []
    for acc in ("numpy", "numba"):
        est = MMVRegressor()
        est.accelerator = acc
        fits.append(est.fit(p.operator, p.y))
    a, b = fits
    assert a.n_iter_ == b.n_iter_ and a.stop_reason_ == b.stop_reason_
    rtol = _rtol(a.n_iter_)
    np.testing.assert_allclose(b.signal_, a.signal_, rtol=rtol,
                               atol=rtol * np.abs(a.signal_).max())


def test_batch_with_validation_agrees():
    """Five problems of different sizes of path, each with its held-out validation."""
    prob = make_mmv_batch(5, 30, 60, 20, 5, row_values="gaussian", snr=20, random_state=3)
    held, train = np.arange(6), np.arange(6, 30)
    vals = [Validation(DenseOperator(prob.operator[b][held]), prob.y[b][held], patience=20)
            for b in range(5)]
    a, b = _both(prob.operator[:, train], prob.y[:, train], init="zero", init_scale=1e-2,
                 max_row_change=0.3, validation=vals, stopping=StoppingRule(max_iter=30_000))
    _assert_agree(a, b)
    assert np.array_equal(a.info["best_iteration"], b.info["best_iteration"])
    for ca, cb in zip(a.info["validation_curve"], b.info["validation_curve"], strict=True):
        assert np.array_equal(ca[:, 0], cb[:, 0])
        rtol = _rtol(a.n_iter)
        np.testing.assert_allclose(cb[:, 1], ca[:, 1], rtol=rtol)  # clocks
        # a held-out error is a sum of squares of residuals far below the held-out data once
        # fitted: its rounding is that of the data's scale (the first, largest error), not
        # relative to itself
        np.testing.assert_allclose(cb[:, 2], ca[:, 2], rtol=rtol, atol=rtol * ca[:, 2].max())


@pytest.mark.parametrize("dead_row", [False, True])
def test_held_out_check_is_the_numpy_check(dead_row):
    """The compiled held-out check: Validation.error at X = g^2 V to rounding, and the
    staircase test of RowHadamardStep (a rise of log |g_i| of at least row_tol since the last
    check; a dead row's NaN skipped) with the checked logs updated."""
    from overparam.solvers._mmv_numba import held_out_check

    rng = np.random.default_rng(1)
    g, V = rng.standard_normal(30), rng.standard_normal((30, 4))
    Mv, Yv = rng.standard_normal((6, 30)), rng.standard_normal((6, 4))
    if dead_row:
        g[7] = 0.0
    want = Validation(DenseOperator(Mv), Yv).error((g * g)[:, None] * V)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_g = np.log(np.abs(g))
        for rise, grew in [(0.9e-3, False), (1.1e-3, True), (-1.0, False)]:
            checked = log_g - rng.uniform(0.0, 0.5e-3, 30)
            checked[11] = log_g[11] - rise
            err, out = held_out_check(Mv, Yv, g, V, checked, 1e-3)
            assert out is grew
            np.testing.assert_allclose(err, want, rtol=1e-13)
            assert np.array_equal(checked, log_g)  # -inf where dead


def test_default_fit_runs_its_checks_compiled(monkeypatch):
    """The default fit's held-out checks take the compiled check (the plain step at N = 60,
    the multirate one at N = 120): a fifth of the fit's time at N = 60 in numpy."""
    from overparam.solvers import mmv

    calls = []
    check = mmv._CompiledPasses.held_out_check
    monkeypatch.setattr(mmv._CompiledPasses, "held_out_check",
                        lambda self, *args: calls.append(type(self).__name__)
                        or check(self, *args))
    for n in (60, 120):
        p = make_mmv_problem(n // 2, n, 20, n // 12, row_values="gaussian", snr=20.0,
                             random_state=0)
        MMVRegressor().fit(p.operator, p.y)
    assert set(calls) == {"CompiledRowHadamardStep", "CompiledActiveRowsStep"}


def _assert_histories_agree(p, every, **kwargs):
    """One problem run with each step into a history: the same rows at the same iterations."""
    hist = [History(every=every) for _ in range(2)]
    a, b = (ir_mmv(p.operator, p.y, history=h, accelerator=acc, **kwargs)
            for h, acc in zip(hist, ("numpy", "numba"), strict=True))
    _assert_agree(a, b)
    assert hist[0].iteration == hist[1].iteration and len(hist[0].iteration) > 10
    np.testing.assert_allclose(hist[1].values["flow_time"], hist[0].values["flow_time"],
                               rtol=_rtol(a.n_iter))


@pytest.mark.parametrize("init", ["ones", "zero"])
def test_gram_form_with_history_agrees(init):
    """An overdetermined problem (the Gram form) recorded into a history, as the digits
    experiment's runs are: the same rows at the same iterations."""
    p = make_mmv_problem(50, 25, 40, 3, row_values="ramp", random_state=5)
    _assert_histories_agree(p, 97, init=init, stopping=StoppingRule(max_iter=3000))


@pytest.mark.parametrize("shape, rule, reason", [
    ((20, 40), StoppingRule(max_iter=1234, tol=0, stagnation_tol=0), StopReason.MAX_ITER),
    ((20, 40), StoppingRule(max_flow_time=50.0), StopReason.END_OF_TIME),
    ((20, 40), StoppingRule(tol=0.3), StopReason.CONVERGED),
    # noisy overdetermined problems: the loss levels off at the least-squares residual
    # (a stagnation far above rounding; on an interpolating path the relative test would
    # compare rounding noise)
    ((30, 20), StoppingRule(tol=0, stagnation_tol=1e-4, patience=20), StopReason.STAGNATED),
])
def test_stopping_tests_agree(shape, rule, reason):
    """Each stopping test compiled into the passes stops where the loop's own does."""
    snr = 5 if reason is StopReason.STAGNATED else 20
    prob = make_mmv_batch(3, *shape, 10, 3, row_values="gaussian", snr=snr, random_state=7)
    for gram in (False, True):
        a, b = _both(prob.operator, prob.y, init="zero", init_scale=1e-2, max_row_change=0.3,
                     stopping=rule, gram=gram)
        _assert_agree(a, b)
        assert reason in a.stop_reason


def test_callback_runs_the_numpy_passes():
    """With a callback the loop runs pass by pass (the compiled step's numpy ``step``)."""
    p = make_mmv_problem(20, 40, 10, 3, row_values="gaussian", random_state=8)
    seen = []
    a = ir_mmv(p.operator, p.y, accelerator="numpy", stopping=StoppingRule(max_iter=300))
    b = ir_mmv(p.operator, p.y, accelerator="numba", stopping=StoppingRule(max_iter=300),
               callback=lambda k, params, x: seen.append(k))
    _assert_agree(a, b)
    assert seen == list(range(1, 301))


def test_accelerator_switch(monkeypatch):
    from overparam import _optional
    from overparam.solvers import mmv as mmv_compiled
    from overparam.solvers.mmv import RowHadamardStep
    from overparam.solvers.mmv_active import ActiveRowsStep, CompiledActiveRowsStep
    from overparam.solvers.steps import AdaptiveStep, ConstantStep

    adaptive = AdaptiveStep()
    select = mmv_compiled.select_step
    assert select("auto", None, adaptive, "simultaneous") is mmv_compiled.CompiledRowHadamardStep
    assert select("numpy", None, adaptive, "simultaneous") is None
    assert select("auto", ActiveRowsStep, adaptive, "simultaneous") is CompiledActiveRowsStep
    assert select("numpy", ActiveRowsStep, adaptive, "simultaneous") is ActiveRowsStep
    # settings it does not cover: numpy for "auto", an error for "numba"
    for args in ((ActiveRowsStep, adaptive, "sequential"), (None, adaptive, "sequential"),
                 (None, ConstantStep(1e-3), "simultaneous"),
                 (ActiveRowsStep, ConstantStep(1e-3), "simultaneous")):
        assert select("auto", *args) is args[0]
        with pytest.raises(ValueError, match="accelerator='numba' covers"):
            select("numba", *args)
    with pytest.raises(ValueError, match="accelerator must be one of"):
        select("jit", None, adaptive, "simultaneous")
    # without numba: numpy for "auto", a one-line error for "numba"
    real = _optional.importlib.import_module

    def no_numba(name, *args):
        if name == "numba":
            raise ImportError("No module named 'numba'")
        return real(name, *args)

    monkeypatch.setattr(_optional.importlib, "import_module", no_numba)
    assert select("auto", RowHadamardStep, adaptive, "simultaneous") is RowHadamardStep
    with pytest.raises(_optional.MissingExtraError, match=r"numba is not installed.*\[numba\]"):
        select("numba", None, adaptive, "simultaneous")
    p = make_mmv_problem(20, 40, 10, 3, random_state=9)
    assert ir_mmv(p.operator, p.y, stopping=StoppingRule(max_iter=50)).n_iter == 50


# --- the multirate step (ActiveRowsStep) compiled ---------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_multirate_default_fit_agrees(seed):
    """The estimator's default fit at N = 240 (the multirate step; the folds as one batch
    with held-out validation, blocks in the Gram and in the direct form, then the refit).

    Seeded: where a fold's held-out error is flat, rounding can flip its stopping decision
    (measured on seeds 0-5: seed 1's first fold stops after 1560 steps instead of 1740,
    the chosen time moves by 3e-4 and the two fits end 6e-10 apart; the other five agree
    to 1e-13)."""
    p = make_mmv_problem(120, 240, 20, 20, row_values="gaussian", snr=20.0, random_state=seed)
    fits = []
    for acc in ("numpy", "numba"):
        est = MMVRegressor()
        est.accelerator = acc
        fits.append(est.fit(p.operator, p.y))
    a, b = fits
    assert a.n_iter_ == b.n_iter_ and a.stop_reason_ == b.stop_reason_
    assert a.result_.info["path_iterations"] == b.result_.info["path_iterations"]
    rtol = _rtol(a.n_iter_)
    np.testing.assert_allclose(b.signal_, a.signal_, rtol=rtol,
                               atol=rtol * np.abs(a.signal_).max())


def _active_both(A, Y, **kwargs):
    from overparam.solvers.mmv_active import ActiveRowsStep

    return _both(A, Y, step_class=ActiveRowsStep, init="zero", init_scale=1e-2,
                 max_row_change=0.3, **kwargs)


def test_multirate_batch_with_validation_agrees():
    """Five problems with their held-out validations (the kernel hands each due check back):
    the same best iterations and curves."""
    from overparam.solvers.mmv_active import ActiveRowsStep

    prob = make_mmv_batch(5, 80, 160, 10, 12, row_values="gaussian", snr=20, random_state=4)
    held, train = np.arange(16), np.arange(16, 80)
    vals = [Validation(DenseOperator(prob.operator[b][held]), prob.y[b][held], patience=20)
            for b in range(5)]
    a, b = (ir_mmv(prob.operator[:, train], prob.y[:, train], step_class=ActiveRowsStep,
                   init="zero", init_scale=1e-2, max_row_change=0.3, validation=vals,
                   accelerator=acc, stopping=StoppingRule(max_iter=30_000))
            for acc in ("numpy", "numba"))
    _assert_agree(a, b)
    assert np.array_equal(a.info["best_iteration"], b.info["best_iteration"])
    for ca, cb in zip(a.info["validation_curve"], b.info["validation_curve"], strict=True):
        assert np.array_equal(ca[:, 0], cb[:, 0])
        np.testing.assert_allclose(cb[:, 2], ca[:, 2], rtol=_rtol(a.n_iter),
                                   atol=_rtol(a.n_iter) * ca[:, 2].max())


def test_multirate_history_agrees():
    """A single problem recorded into a history: the same rows at the same iterations."""
    from overparam.solvers.mmv_active import ActiveRowsStep

    p = make_mmv_problem(100, 200, 10, 8, row_values="gaussian", snr=20, random_state=6)
    _assert_histories_agree(p, 53, step_class=ActiveRowsStep, init="zero", init_scale=1e-2,
                            max_row_change=0.3, stopping=StoppingRule(max_iter=4000))


@pytest.mark.parametrize("shape, rule, reason", [
    ((60, 200), StoppingRule(max_iter=1234, tol=0, stagnation_tol=0), StopReason.MAX_ITER),
    ((60, 200), StoppingRule(max_flow_time=3000.0), StopReason.END_OF_TIME),
    ((60, 200), StoppingRule(tol=0.3), StopReason.CONVERGED),
    # noisy overdetermined problems level off at the least-squares residual, far above
    # rounding (see test_stopping_tests_agree)
    ((240, 200), StoppingRule(tol=0, stagnation_tol=1e-4, patience=20), StopReason.STAGNATED),
])
def test_multirate_stopping_tests_agree(shape, rule, reason):
    """Each stopping test compiled into the multirate passes stops where the loop's own
    does (the stagnation test with the slow rows' growth between blocks)."""
    snr = 5 if reason is StopReason.STAGNATED else 10
    prob = make_mmv_batch(3, *shape, 10, 8, row_values="gaussian", snr=snr, random_state=7)
    a, b = _active_both(prob.operator, prob.y, stopping=rule)
    _assert_agree(a, b)
    assert reason in a.stop_reason


def test_multirate_kernel_underflow_raises_the_policy_error():
    """A step that underflows inside the kernel raises the step policy's own error, naming
    the problem of the batch."""
    from overparam.solvers import AdaptiveStep
    from overparam.solvers.mmv import _start_params
    from overparam.solvers.mmv_active import CompiledActiveRowsStep
    from overparam.stopping import BatchMonitor, DivergenceError

    prob = make_mmv_batch(2, 60, 200, 10, 8, row_values="gaussian", snr=20, random_state=1)
    g, V = _start_params(None, 2, 200, 10, init_scale=1e-2, v_scale=None, init="zero")
    step = CompiledActiveRowsStep(prob.operator, prob.y, (g, V), AdaptiveStep(min_step=1e11))
    loss = step.init()
    mask = np.zeros(200, dtype=bool)
    mask[:10] = True
    step._set_active(mask)  # a block in the Gram form: the kernel's
    assert step.gram_S
    step.eta[:] = [1e-6, 1e12]  # problem 1's trials blow up: its step halves below 1e11
    monitor = BatchMonitor(StoppingRule(), np.linalg.norm(prob.y, axis=(1, 2)), loss)
    with pytest.raises(DivergenceError, match="problem 1 of the batch"):
        step.passes(np.zeros(2, dtype=int), np.zeros(2), monitor, n_max=10,
                    max_flow_time=None, history_every=0)
