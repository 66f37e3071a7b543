"""IR-MMV: the row-Hadamard factorization, its batched solver, theory checks and the estimator."""

import numpy as np
import pytest

from overparam.datasets import make_mmv_batch, make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.methods import get_method
from overparam.metrics import relative_error, support_recovered
from overparam.parameterizations import RowHadamard
from overparam.solvers import AdaptiveStep, BatchResult, ConstantStep, History, ir_mmv
from overparam.stopping import DivergenceError, PathControl, StoppingRule, StopReason
from overparam.testing import check_gradient, check_vjp


def _random_params(rng, N=6, L=4, batch=()):
    return (rng.standard_normal((*batch, N)), rng.standard_normal((*batch, N, L)))


# --- parameterization -------------------------------------------------------------------------

def test_row_hadamard_signal_and_vjp():
    rng = np.random.default_rng(0)
    param = RowHadamard(6, 4)
    g, V = _random_params(rng)
    np.testing.assert_allclose(param.signal((g, V)), (g**2)[:, None] * V)
    check_vjp(param, (g, V))


def test_paper_gradient_formulas_match_finite_differences():
    """∇g = -4 g ⊙ rowsum(Λ ⊙ V), ∇V = -2 g² ⊙ Λ for ||Y - A X||_F² (paper appendix A)."""
    rng = np.random.default_rng(1)
    A, Y = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    param = RowHadamard(6, 4)

    def loss(p):
        r = Y - A @ param.signal(tuple(p))
        return float(np.sum(r * r))

    def paper_grad(p):
        g, V = p
        Lam = A.T @ (Y - A @ param.signal((g, V)))
        return (-4 * g * np.sum(Lam * V, axis=1), -2 * (g**2)[:, None] * Lam)

    params = _random_params(rng)
    check_gradient(loss, paper_grad, params)
    # and the generic pullback with G = -2 Λ is the same gradient
    G = -2 * A.T @ (Y - A @ param.signal(params))
    for a, b in zip(param.vjp(params, G), paper_grad(params), strict=True):
        np.testing.assert_allclose(a, b)


def test_row_hadamard_batched_matches_single():
    rng = np.random.default_rng(2)
    param = RowHadamard(6, 4)
    g, V = _random_params(rng, batch=(3,))
    G = rng.standard_normal((3, 6, 4))
    batched = param.vjp((g, V), G)
    for b in range(3):
        single = param.vjp((g[b], V[b]), G[b])
        np.testing.assert_allclose(batched[0][b], single[0])
        np.testing.assert_allclose(batched[1][b], single[1])
        np.testing.assert_allclose(param.signal((g, V))[b], param.signal((g[b], V[b])))


def test_balanced_init():
    param = RowHadamard(5, 8)
    g, V = param.init(1e-3)
    np.testing.assert_allclose(param.row_balance((g, V)), 0.0, atol=1e-20)
    assert g[0] == 1e-3 and V[0, 0] == pytest.approx(1e-3 / 4)
    with pytest.raises(ValueError, match="init_scale"):
        param.init(-1.0)


# --- theory (Lemmas 5.1 and 5.3) --------------------------------------------------------------

def _small_problem(M=20, N=10, L=5, K=2, seed=0):
    return make_mmv_problem(M, N, L, K, row_values="gaussian", random_state=seed)


def test_row_balance_conserved_by_small_step_gd():
    """Lemma 5.1: g_i²/2 - ||V_i||² is conserved by the flow; small-step GD drifts O(step)."""
    p = _small_problem()
    rng = np.random.default_rng(3)
    g0 = 0.3 + 0.1 * rng.random(10)
    V0 = 0.1 * rng.standard_normal((10, 5))  # unbalanced on purpose: each row its own constant
    before = RowHadamard.row_balance((g0, V0))
    drift = {}
    for step in (2e-4, 1e-3):
        res = ir_mmv(p.operator, p.y, init_params=(g0, V0), step=step,
                     stopping=StoppingRule(max_iter=2000, tol=0, stagnation_tol=0))
        after = RowHadamard.row_balance(res.params)
        assert np.max(np.abs(res.params[0] - g0)) > 0.1  # the factors really moved
        drift[step] = np.max(np.abs(after - before))
    assert drift[2e-4] < 2e-3 * np.max(np.abs(g0)) ** 2
    assert drift[2e-4] < drift[1e-3] / 3  # shrinks with the step: a flow invariant


def test_zero_row_stays_zero_and_g_keeps_its_sign():
    p = _small_problem(seed=4)
    rng = np.random.default_rng(4)
    g0 = 0.05 * np.sign(rng.standard_normal(10))
    g0[3] = 0.0
    V0 = np.full((10, 5), 0.05 / np.sqrt(10))
    V0[3] = 0.0
    res = ir_mmv(p.operator, p.y, init_params=(g0, V0), stopping=StoppingRule(max_iter=3000))
    g, V = res.params
    assert g[3] == 0.0 and np.all(V[3] == 0.0) and np.all(res.coef[3] == 0.0)
    others = np.arange(10) != 3
    assert np.all(np.sign(g[others]) == np.sign(g0[others]))
    assert np.any(g[others] < 0)  # the negative rows stayed negative (and took part)
    assert relative_error(res.coef, p.truth) < 0.5 or p.meta["support"][3]


def test_lemma_5_3_growth_rate_on_a_balanced_row():
    """d||X_i||/dt = 6·2^(2/3) <λ_i, x̂_i> ||X_i||^(4/3) under perfect row balance."""
    rng = np.random.default_rng(5)
    A, Y = rng.standard_normal((8, 6)), rng.standard_normal((8, 3))
    param = RowHadamard(6, 3)
    V = rng.standard_normal((6, 3))
    g = np.sqrt(2) * np.linalg.norm(V, axis=1)  # g_i²/2 = ||V_i||²

    def flow_direction(g, V):
        Lam = A.T @ (Y - A @ param.signal((g, V)))
        return 4 * g * np.sum(Lam * V, axis=1), 2 * (g**2)[:, None] * Lam  # = -∇ loss

    def rate_by_finite_difference(g, V, i, h=1e-7):
        dg, dV = flow_direction(g, V)
        plus = np.linalg.norm(param.signal((g + h * dg, V + h * dV))[i])
        minus = np.linalg.norm(param.signal((g - h * dg, V - h * dV))[i])
        return (plus - minus) / (2 * h)

    def lemma_rate(g, V, i):
        X = param.signal((g, V))
        Lam = A.T @ (Y - A @ X)
        xi = np.linalg.norm(X[i])
        return 6 * 2 ** (2 / 3) * (Lam[i] @ X[i] / xi) * xi ** (4 / 3)

    for i in range(6):
        assert rate_by_finite_difference(g, V, i) == pytest.approx(lemma_rate(g, V, i),
                                                                   rel=1e-5)
    g_unbalanced = 2 * g  # the identity needs balance: it must fail off it
    assert rate_by_finite_difference(g_unbalanced, V, 0) != pytest.approx(
        lemma_rate(g_unbalanced, V, 0), rel=1e-2)


# --- solver -----------------------------------------------------------------------------------

def test_one_solver_step_is_the_checked_gradient_step_and_algorithm_1():
    """Simultaneous: (g, V) - eta ∇ with ∇ from the finite-difference-checked vjp.
    Sequential: Algorithm 1 as printed (V updated with g(t+1)). Clock: eta * 2M per step."""
    rng = np.random.default_rng(9)
    A, Y = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    g0, V0 = 0.5 + rng.random(5), rng.standard_normal((5, 3))
    param, eta = RowHadamard(5, 3), 1e-3
    rule = StoppingRule(max_iter=1, tol=0, stagnation_tol=0)
    Lam = A.T @ (Y - A @ param.signal((g0, V0)))
    grad_g, grad_V = param.vjp((g0, V0), -2 * Lam)
    sim = ir_mmv(A, Y, init_params=(g0, V0), step=eta, update="simultaneous", stopping=rule)
    np.testing.assert_allclose(sim.params[0], g0 - eta * grad_g, rtol=1e-12)
    np.testing.assert_allclose(sim.params[1], V0 - eta * grad_V, rtol=1e-12)
    assert sim.info["time"] == pytest.approx(eta * 2 * 7)
    seq = ir_mmv(A, Y, init_params=(g0, V0), step=eta, update="sequential", stopping=rule)
    g1 = g0 + 4 * eta * g0 * np.sum(Lam * V0, axis=1)
    V1 = V0 + 2 * eta * (g1**2)[:, None] * Lam
    np.testing.assert_allclose(seq.params[0], g1, rtol=1e-12)
    np.testing.assert_allclose(seq.params[1], V1, rtol=1e-12)
    np.testing.assert_allclose(seq.coef, param.signal((g1, V1)), rtol=1e-12)


@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
def test_ir_mmv_recovers_paper_setting(update):
    """The paper's M=50, N=25, L=100, K=3 (overdetermined) with rows 1_L, noise-free."""
    p = make_mmv_problem(50, 25, 100, 3, random_state=0)
    res = ir_mmv(p.operator, p.y, update=update)
    assert res.stop_reason is StopReason.CONVERGED
    assert relative_error(res.coef, p.truth, squared=True) < 1e-8
    assert res.info["clock"] == "flow_time" and res.info["time"] > 0


def test_ir_mmv_underdetermined_finds_the_row_sparse_solution():
    p = make_mmv_problem(20, 40, 10, 3, row_values="gaussian", random_state=1)
    res = ir_mmv(p.operator, p.y, init_scale=1e-3, stopping=StoppingRule(max_iter=30_000))
    assert relative_error(res.coef, p.truth) < 1e-2
    assert support_recovered(res.coef, p.truth)
    # the minimum-Frobenius-norm interpolant is far off: the bias is the factorization's
    min_norm = np.linalg.pinv(p.operator) @ p.y
    assert relative_error(min_norm, p.truth) > 0.3


def test_paper_fixed_step_diverges_and_adaptive_does_not():
    """Algorithm 1 with eta = 1e-2 diverges on the paper's own setting (here alpha_g = 1e-2)."""
    p = make_mmv_problem(50, 25, 100, 3, random_state=2)
    with pytest.raises(DivergenceError, match="fixed step"):
        ir_mmv(p.operator, p.y, init_scale=1e-2, step=1e-2, update="sequential",
               stopping=StoppingRule(max_iter=5000))
    res = ir_mmv(p.operator, p.y, init_scale=1e-2, update="sequential",
                 stopping=StoppingRule(max_iter=20_000))
    assert res.stop_reason is StopReason.CONVERGED
    assert relative_error(res.coef, p.truth) < 1e-5
    small = ir_mmv(p.operator, p.y, init_scale=1e-2, step=ConstantStep(1e-3), update="sequential",
                   stopping=StoppingRule(max_iter=20_000))
    assert relative_error(small.coef, p.truth) < 1e-5  # a small enough fixed step works too


def test_paper_fixed_step_diverges_at_paper_init():
    p = make_mmv_problem(50, 25, 100, 3, random_state=2)
    with pytest.raises(DivergenceError):
        ir_mmv(p.operator, p.y, step=1e-2, update="sequential",
               stopping=StoppingRule(max_iter=200_000, stagnation_tol=0))


def test_batch_matches_single_problems_and_reports_per_problem():
    prob = make_mmv_batch(3, 30, 20, 6, 2, row_values="gaussian", random_state=1)
    Y = prob.y.copy()
    Y[1] += 0.05 * np.random.default_rng(0).standard_normal(Y[1].shape)  # cannot fit exactly
    rule = StoppingRule(max_iter=5000)
    batch = ir_mmv(prob.operator, Y, init_scale=1e-3, stopping=rule)
    assert isinstance(batch, BatchResult) and len(batch) == 3
    assert batch.stop_reason == [StopReason.CONVERGED, StopReason.MAX_ITER,
                                 StopReason.CONVERGED]
    assert len(set(batch.n_iter)) == 3
    for b in range(3):
        single = ir_mmv(prob.operator[b], Y[b], init_scale=1e-3, stopping=rule)
        np.testing.assert_allclose(batch.coef[b], single.coef, rtol=1e-7, atol=1e-10)
        assert single.n_iter == batch.n_iter[b]
        assert single.stop_reason is batch.stop_reason[b] is batch[b].stop_reason
        assert batch[b].info["time"] == pytest.approx(single.info["time"])


def test_batch_with_one_validation_per_problem():
    from overparam.operators import DenseOperator
    from overparam.stopping import Validation

    prob = make_mmv_batch(2, 30, 60, 10, 3, row_values="gaussian", snr=10, random_state=4)
    held, train = np.arange(6), np.arange(6, 30)
    vals = [Validation(DenseOperator(prob.operator[b][held]), prob.y[b][held], patience=20)
            for b in range(2)]
    res = ir_mmv(prob.operator[:, train], prob.y[:, train], init_scale=1e-2, validation=vals,
                 stopping=StoppingRule(max_iter=30_000))
    assert res.stop_reason == [StopReason.EARLY_STOPPED] * 2
    for b in range(2):
        # the solver records into a copy: the caller's criterion is untouched
        assert vals[b].curve == [] and vals[b].best_state is None
        curve = res.info["validation_curve"][b]
        best = int(np.argmin(curve[:, 2]))
        assert res.info["best_iteration"][b] == curve[best, 0] > 0
        assert res.info["best_time"][b] == curve[best, 1]
        assert res.info["validation_error"][b] == curve[best, 2]
        np.testing.assert_allclose(res.coef[b], RowHadamard(60, 10).signal(res[b].params))
    with pytest.raises(ValueError, match="one validation per problem"):
        ir_mmv(prob.operator, prob.y, validation=vals[:1])
    with pytest.raises(ValueError, match="single problem"):
        ir_mmv(prob.operator, prob.y, history=History())


class _AskedStep(AdaptiveStep):
    """AdaptiveStep asked through the StepPolicy protocol (the solver vectorizes only its own
    AdaptiveStep)."""


@pytest.mark.parametrize("update, accelerator", [("simultaneous", "numpy"),
                                                  ("sequential", "numpy"),
                                                  ("simultaneous", "numba")])
def test_batch_is_bit_for_bit_the_single_problems_and_the_step_protocol(update, accelerator):
    """The batched loop (problems stopping at different times for different reasons, rejected
    steps, the vectorized AdaptiveStep) computes exactly what the policy's own rules and one
    problem at a time compute: the same iterates, steps, clocks and stop reasons. The
    compiled step's passes (handed back to the loop whenever one problem needs it) too,
    against its single problems (the policy's own rules run the numpy step)."""
    if accelerator == "numba":
        pytest.importorskip("numba")
    from overparam.operators import DenseOperator
    from overparam.stopping import Validation

    prob = make_mmv_batch(4, 30, 16, 8, 3, row_values="gaussian", snr=15, random_state=5)
    held, train = np.arange(6), np.arange(6, 30)
    A, Y = prob.operator[:, train], prob.y[:, train]

    def validations():
        return [Validation(DenseOperator(prob.operator[b][held]), prob.y[b][held], patience=20)
                if b % 2 == 0 else None for b in range(4)]

    kw = dict(init_scale=1e-2, init="ones", update=update, row_tol=np.inf,
              accelerator=accelerator,
              stopping=StoppingRule(max_iter=2000, patience=150, stagnation_tol=1e-6))
    batch = ir_mmv(A, Y, validation=validations(), **kw)
    assert min(batch.info["n_rejected_steps"]) > 0 and len(set(batch.n_iter)) > 1
    assert StopReason.STAGNATED in batch.stop_reason and StopReason.MAX_ITER in batch.stop_reason
    singles = [ir_mmv(A[b], Y[b], validation=v, **kw) for b, v in enumerate(validations())]
    asked = ([] if accelerator == "numba"
             else [ir_mmv(A, Y, validation=validations(), step=_AskedStep(), **kw)])
    for b in range(4):
        for other in [singles[b]] + [run[b] for run in asked]:
            np.testing.assert_array_equal(other.coef, batch.coef[b])
            assert other.n_iter == batch.n_iter[b]
            assert other.stop_reason is batch.stop_reason[b]
            for key in ("time", "step", "n_rejected_steps", "final_loss"):
                assert other.info[key] == batch.info[key][b]


def test_least_squares_point_of_inconsistent_data_does_not_stall_the_adaptive_step():
    """At a stationary point with a nonzero residual the computed change of the loss is
    rounding noise: the step must not shrink below 1e-300 (it raised DivergenceError on this
    fold of scikit-learn's check data) but end on the stopping rule at a least-squares
    point; the step protocol (asked policy) does the same."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(random_state=0, n_samples=21)
    rows = np.setdiff1d(np.arange(21), [2, 10, 13, 20])
    A, Y = X[rows], y[rows, None].astype(float)
    kw = dict(init_scale=1e-2, init="zero",
              stopping=StoppingRule(max_iter=500, patience=100, stagnation_tol=1e-9))
    for step in ("adaptive", _AskedStep()):
        res = ir_mmv(A, Y, step=step, **kw)
        assert res.stop_reason is StopReason.STAGNATED
        R = Y - A @ res.coef
        assert np.linalg.norm(A.T @ R) <= 1e-10 * np.linalg.norm(A) * np.linalg.norm(R)
    # the estimator's K-fold paths hit the same point (scikit-learn's estimator checks)
    est = MMVRegressor(max_iter=500, patience=100).fit(X, y)
    assert np.all(np.isfinite(est.coef_))


def test_stop_time_is_exact_and_history_records_flow_time():
    p = _small_problem(seed=6)
    hist = History(every=10)
    res = ir_mmv(p.operator, p.y, init="ones", stopping=StoppingRule(max_flow_time=50.0),
                 history=hist)
    assert res.stop_reason is StopReason.END_OF_TIME
    assert res.info["time"] == pytest.approx(50.0, rel=1e-9)
    ft = hist.values["flow_time"]
    assert ft[0] == 0 and ft[-1] == pytest.approx(50.0) and np.all(np.diff(ft) > 0)
    assert len(ft) == len(hist.iteration)


def test_plateau_is_not_mistaken_for_stagnation():
    """Rows 1, 2, 3 x 1_L are learned one after another with long flat-loss plateaus between."""
    p = make_mmv_problem(50, 25, 100, 3, row_values="ramp", random_state=0)
    res = ir_mmv(p.operator, p.y, init_scale=1e-3, init="ones",
                 stopping=StoppingRule(max_iter=100_000))
    assert res.stop_reason is StopReason.CONVERGED
    loss_only = ir_mmv(p.operator, p.y, init_scale=1e-3, init="ones", row_tol=np.inf,
                       stopping=StoppingRule(max_iter=100_000))
    assert loss_only.stop_reason is StopReason.STAGNATED  # the loss-only test stops too early
    assert relative_error(loss_only.coef, p.truth) > 0.1 > relative_error(res.coef, p.truth)


def test_ir_mmv_input_errors():
    A, Y = np.ones((4, 3)), np.ones((4, 2))
    with pytest.raises(ValueError, match="update"):
        ir_mmv(A, Y, update="jacobi")
    with pytest.raises(ValueError, match="batched"):
        ir_mmv(A[None], Y)
    with pytest.raises(ValueError, match="shape"):
        ir_mmv(A, np.ones((5, 2)))
    with pytest.raises(ValueError, match="init_params"):
        ir_mmv(A, Y, init_params=(np.ones(4), np.ones((3, 2))))
    with pytest.raises(ValueError, match="NaN"):
        ir_mmv(A, np.full((4, 2), np.nan))


# --- estimator --------------------------------------------------------------------------------

def test_estimator_fit_shapes_registry_and_errors():
    p = make_mmv_problem(50, 25, 20, 3, random_state=7)
    est = get_method("ir-mmv")().fit(p.operator, p.y)
    assert isinstance(est, MMVRegressor)
    # scikit-learn's multi-output orientation: coef_ is (L, N), signal_ the X of (N, L)
    assert est.coef_.shape == (20, 25) and est.signal_.shape == (25, 20)
    np.testing.assert_array_equal(est.signal_, est.coef_.T)
    assert relative_error(est.signal_, p.truth) < 1e-4
    np.testing.assert_allclose(est.predict(p.operator), p.operator @ est.coef_.T)
    # one column as a 1-D y gives a 1-D coef_ (scikit-learn's multi-output convention)
    one = MMVRegressor(early_stopping=None).fit(p.operator, p.y[:, 0])
    assert one.coef_.shape == (25,) and one.predict(p.operator).shape == (50,)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MMVRegressor().fit(p.operator, p.y[:-1])


def test_validation_stopping_beats_running_to_interpolation():
    p = make_mmv_problem(30, 60, 10, 3, row_values="gaussian", snr=10, random_state=3)
    kw = dict(init_scale=1e-2, max_iter=30_000, random_state=0)
    full = MMVRegressor(early_stopping=None, **kw).fit(p.operator, p.y)
    early = MMVRegressor(early_stopping="validation", **kw).fit(p.operator, p.y)
    info = early.result_.info
    # 5-fold cross-validation of the time (validation_fraction 0.2), refit up to that time
    assert info["validation_folds"] == 5 and len(info["path_iterations"]) == 5
    assert early.stop_reason_ is StopReason.END_OF_TIME
    assert info["time"] == pytest.approx(info["chosen_time"])
    curve = info["validation_curve"]
    assert info["chosen_time"] == curve[np.argmin(curve[:, 2]), 1]
    assert relative_error(early.signal_, p.truth) < 0.5 * relative_error(full.signal_, p.truth)


def test_noiseless_default_reaches_the_limit_and_noisy_paths_stop_early():
    for seed in (1, 4):  # seed 4: its limit took 35k iterations from the paper's init
        clean = make_mmv_problem(30, 60, 10, 3, row_values="gaussian", random_state=seed)
        est = MMVRegressor(random_state=0).fit(clean.operator, clean.y)
        assert est.result_.info["chosen_time"] is None
        assert est.stop_reason_ is StopReason.CONVERGED
        assert relative_error(est.signal_, clean.truth) < 1e-6
    assert MMVRegressor()._init_scale(PathControl()) == 1e-2
    noisy = make_mmv_problem(30, 60, 10, 3, row_values="gaussian", snr=10, random_state=4)
    est = MMVRegressor(random_state=0).fit(noisy.operator, noisy.y)
    assert est.result_.info["chosen_time"] is not None
    assert relative_error(est.signal_, noisy.truth) < 0.5
    with pytest.raises(ValueError, match="init_scale"):
        MMVRegressor(init_scale="small").fit(noisy.operator, noisy.y)
    with pytest.raises(ValueError, match="validation_fraction"):
        MMVRegressor(validation_fraction=1.5).fit(noisy.operator, noisy.y)


@pytest.mark.parametrize("seed", range(3))
def test_rows_of_mixed_sign_are_recovered_exactly(seed):
    """Rows (+1, -2, +3, -1.5, 0.7) x 1_L: collinear rows of both signs. The paper's balanced
    init cannot flip a row's sign; V(0) = 0 can. The run ends on the least-squares fit on the
    learned rows, not on the iteration budget."""
    p = make_mmv_problem(30, 60, 20, 5, row_values=[1, -2, 3, -1.5, 0.7], random_state=seed)
    est = MMVRegressor(early_stopping=None).fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.CONVERGED
    assert relative_error(est.signal_, p.truth) < 1e-6


def test_row_anti_aligned_with_ones_needs_the_default_init():
    """X = (+1, -2, +3) 1_L^T: from the paper's V(0) = alpha_V 1 the -2 row is not learned
    (measured: 64-79% error at 100k iterations on 4 of 4 seeds); the default is exact."""
    p = make_mmv_problem(30, 60, 20, 3, row_values=[1, -2, 3], random_state=0)
    paper = ir_mmv(p.operator, p.y, init="ones", stopping=StoppingRule(max_iter=5000))
    assert relative_error(paper.coef, p.truth) > 0.3
    est = MMVRegressor(early_stopping=None).fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.CONVERGED
    assert relative_error(est.signal_, p.truth) < 1e-6
    with pytest.raises(ValueError, match="init"):
        ir_mmv(p.operator, p.y, init="correlation")


def test_refine_row_sparse_only_accepts_an_interpolant():
    from overparam.solvers.mmv import candidate_supports, refine_row_sparse

    p = make_mmv_problem(20, 40, 5, 3, row_values="gaussian", random_state=0)
    rows = np.flatnonzero(p.meta["support"])
    near = p.truth + 1e-4 * np.random.default_rng(0).standard_normal(p.truth.shape)
    assert next(s.tolist() for s in candidate_supports(near)) == rows.tolist()
    np.testing.assert_allclose(refine_row_sparse(p.operator, p.y, near), p.truth, atol=1e-10)
    missing = p.truth.copy()
    missing[rows[0]] = 0.0  # a row not learned yet: no interpolant on the others
    assert refine_row_sparse(p.operator, p.y, missing + 1e-4 * (near - p.truth)) is None


def test_discrepancy_stopping():
    p = make_mmv_problem(30, 60, 10, 3, row_values="gaussian", snr=10, random_state=3)
    sigma = float(np.std(p.noise))
    est = MMVRegressor(init_scale=1e-2, early_stopping="discrepancy", noise_level=sigma)
    est.fit(p.operator, p.y)
    assert est.stop_reason_ is StopReason.DISCREPANCY
    assert np.linalg.norm(p.y - p.operator @ est.signal_) <= sigma * np.sqrt(p.y.size)
    full = MMVRegressor(init_scale=1e-2, max_iter=30_000, early_stopping=None).fit(p.operator, p.y)
    assert relative_error(est.signal_, p.truth) < relative_error(full.signal_, p.truth)


def test_estimator_honours_stop_time():
    p = _small_problem(seed=8)
    res = MMVRegressor()._solve(*_operator_and_y(p), PathControl(stop_time=30.0))
    assert res.stop_reason is StopReason.END_OF_TIME
    assert res.info["time"] == pytest.approx(30.0)


def _operator_and_y(p):
    from overparam.operators import as_operator

    return as_operator(p.operator), p.y


def test_max_row_change_caps_every_step_of_the_row_scales():
    p = _small_problem(seed=3)

    def largest_change(**kw):
        hist = History(every=1, quantities={"g": lambda params, x: params[0]})
        res = ir_mmv(p.operator, p.y, init_scale=1e-2, init="zero", history=hist,
                     stopping=StoppingRule(max_iter=300), **kw)
        g = np.array(hist.values["g"])
        assert len(g) == res.n_iter + 1
        return float(np.max(np.abs(np.diff(g, axis=0)) / np.abs(g[:-1])))

    assert 0.49 <= largest_change(max_row_change=0.5) <= 0.5 * (1 + 1e-12)  # binds, holds
    assert largest_change() > 1.0  # without it some steps more than double a row
    with pytest.raises(ValueError, match="max_row_change"):
        ir_mmv(p.operator, p.y, max_row_change=0.0)


def test_default_row_cap_makes_the_refit_follow_the_folds_path():
    """Without a cap on the row scales' change, the adaptive step covers the rows' escape in
    a few giant steps (here the refit reached the chosen time in 5), the refit on all rows
    stops at the folds' chosen time in another state: error 0.83 where the oracle stopping
    time gives 0.048. The default cap (0.3) keeps the iterates on the flow's path: within
    1.5x of the oracle (measured 1.00x)."""
    from overparam.stopping import Oracle

    p = make_mmv_problem(30, 60, 20, 5, row_values="gaussian", snr=20, random_state=2)
    default = MMVRegressor().fit(p.operator, p.y)
    oracle = MMVRegressor(early_stopping=Oracle(p.truth)).fit(p.operator, p.y)
    best = relative_error(oracle.signal_, p.truth)
    assert best < 0.1
    assert relative_error(default.signal_, p.truth) < 1.5 * best
    uncapped = MMVRegressor()
    uncapped.max_row_change = None
    uncapped.fit(p.operator, p.y)
    assert relative_error(uncapped.signal_, p.truth) > 5 * best  # the failure it fixes


def test_a_coarse_row_cap_leaves_the_flow_and_the_default_one_does_not():
    """Noiseless rows of mixed direction (benchmarks/defaults.py's clean MMV problem, seed 1):
    with 100% change of a row scale per step the iterates grow three wrong rows and stall
    (relative error > 0.9 at flow time 3000); caps of 0.7, 0.5, 0.3, 0.1 all follow the flow
    to the truth (docs/mmv.md, "Following the path")."""
    p = make_mmv_problem(20, 40, 10, 4, row_values="gaussian", random_state=1)
    X = p.truth.copy()
    first = np.flatnonzero(p.meta["support"])[0]
    X[first] = -np.abs(X[first])
    A = np.asarray(p.operator)
    Y, d = A @ X, np.linalg.norm(A, axis=0)  # solved on the columns scaled to unit norm

    def error(cap):
        res = ir_mmv(A / d, Y, init_scale=1e-2, init="zero", max_row_change=cap,
                     stopping=StoppingRule(max_iter=5000, max_flow_time=3000.0))
        return relative_error(res.coef / d[:, None], X)

    assert error(1.0) > 0.5
    assert error(MMVRegressor.max_row_change) < 1e-2


@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
@pytest.mark.parametrize(("M", "N"), [(50, 25), (20, 40)])
def test_gram_form_follows_the_direct_steps_to_rounding(update, M, N):
    """Λ carried through A^T A (one N x N product per step) gives the direct form's iterates,
    clocks, step counts and validation stops up to rounding, over- and underdetermined."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, M, N)) / np.sqrt(M)
    X = np.zeros((3, N, 6))
    X[:, :3] = rng.standard_normal((3, 3, 6))
    Y = A @ X + 0.01 * rng.standard_normal((3, M, 6))
    kw = dict(init="zero", init_scale=1e-2, max_row_change=0.3, update=update,
              stopping=StoppingRule(max_iter=1500))
    direct, gram = (ir_mmv(A, Y, gram=flag, **kw) for flag in (False, True))
    np.testing.assert_array_equal(gram.n_iter, direct.n_iter)
    np.testing.assert_allclose(gram.coef, direct.coef, rtol=0, atol=1e-12 * np.abs(X).max())
    # the clock sums 1500 step sizes, each capped by the (rounded) gradient
    np.testing.assert_allclose(gram.info["time"], direct.info["time"], rtol=1e-10)
    np.testing.assert_allclose(gram.info["final_loss"], direct.info["final_loss"], rtol=1e-9)


def test_gram_form_is_the_default_where_it_is_less_work():
    """N < 2M: one N x N product is fewer operations than the two M x N ones."""
    from overparam.solvers.mmv import RowHadamardStep

    rng = np.random.default_rng(0)
    for (M, N), expected in [((50, 25), True), ((30, 60), False), ((31, 60), True)]:
        A, Y = rng.standard_normal((1, M, N)), rng.standard_normal((1, M, 2))
        params = (np.ones((1, N)), np.zeros((1, N, 2)))
        assert RowHadamardStep(A, Y, params, AdaptiveStep()).gram is expected


class _FormedGradientStep:
    """The IR-MMV step as first written (before the lean kernel): ``∇V = -2 g² ⊙ Λ`` formed
    and the gradient recomputed for every trial, the row-growth tests through np.nanmax. A
    mixin over :class:`RowHadamardStep` for the bit-for-bit test below."""

    def step(self, time_left, diverged):
        grad_g, grad_V = self.parameterization.vjp((self.g, self.V), self.Lam)
        grad_g, grad_V = -2.0 * grad_g, -2.0 * grad_V
        e = self.eta
        if self.policy_limits:
            e = np.minimum(e, self.policy.limit_batch((self.g, self.V), (grad_g, grad_V)))
        if self.max_row_change is not None:
            from overparam.solvers.mmv import _row_change_cap
            e = np.minimum(e, _row_change_cap(self.g, grad_g, self.max_row_change))
        if time_left is not None and (2.0 * max(e.tolist()) * self.time_per_step
                                      >= min(time_left.tolist())):
            e = np.minimum(e, np.maximum(time_left, 0.0) / self.time_per_step)
        g, V, Lam = self.g, self.V, self.Lam
        d_g = -e[:, None] * grad_g
        g_new = g + d_g
        if self.sequential:
            d_V = 2.0 * e[:, None, None] * self.parameterization.signal((g_new, Lam))
        else:
            d_V = -e[:, None, None] * grad_V
        V_new = V + d_V
        d_X = (d_g * (2.0 * g + d_g))[..., None] * V_new + (g * g)[..., None] * d_V
        if self.gram:
            G_dX = self.G @ d_X
            trial = {"u": d_X, "w": 2.0 * Lam - G_dX, "Lam": Lam - G_dX}
        else:
            A_dX = self.A @ d_X
            trial = {"u": A_dX, "w": 2.0 * self.R - A_dX, "R": self.R - A_dX}
        uw = trial["u"] * trial["w"]  # the products whose magnitudes set the rounding slack
        d_loss = -np.sum(uw, axis=(1, 2))
        trial.update(g=g_new, V=V_new, loss=self.loss + d_loss, d_loss=d_loss, uw=uw,
                     decrease=e * (np.sum(grad_g * grad_g, axis=-1)
                                   + np.sum(grad_V * grad_V, axis=(1, 2))))
        accepted = self._accept(e, trial, diverged)
        return self._move(accepted, trial, e) if accepted.any() else None

    def still_learning(self, rows, ids, n_iter):
        window = self.g_window
        if window is None:
            return None
        slots = window.shape[0]
        window[n_iter % slots, ids] = self.g[rows]

        def learning(j):
            k, i = int(n_iter[j]), int(ids[j])
            growth = np.nanmax(np.log(np.abs(window[k % slots, i]))
                               - np.log(np.abs(window[(k - slots + 1) % slots, i])),
                               initial=-np.inf)
            return bool(growth >= self.row_tol)

        return learning


@pytest.mark.parametrize("update", ["simultaneous", "sequential"])
@pytest.mark.parametrize("gram", [False, True])
def test_lean_step_is_bit_for_bit_the_formed_gradient_step(monkeypatch, update, gram):
    """The kernel that keeps the gradient over rejected trials, never forms ∇V (its products
    by powers of 2 are exact) and takes maxima by np.fmax gives the very iterates, steps,
    clocks, stop reasons and history of the step that formed ∇V: a batch with rejected
    trials, problems stopping at different times (stagnation with the row-growth test,
    max_iter), a row-change cap and a time limit."""
    import overparam.solvers.mmv as mmv

    prob = make_mmv_batch(4, 24, 20, 6, 3, row_values="gaussian", snr=40, random_state=11)
    runs = []
    for reference in (False, True):
        if reference:
            monkeypatch.setattr(mmv, "RowHadamardStep",
                                type("Formed", (_FormedGradientStep, mmv.RowHadamardStep), {}))
        kw = dict(init_scale=1e-3, init="ones", update=update, gram=gram,
                  stopping=StoppingRule(max_iter=3000, patience=200, stagnation_tol=1e-7))
        batch = ir_mmv(prob.operator, prob.y, **kw)
        capped = ir_mmv(prob.operator, prob.y, max_row_change=0.2, init="zero",
                        init_scale=1e-2, gram=gram, update=update,
                        stopping=StoppingRule(max_iter=800, max_flow_time=40.0))
        hist = History(every=13)
        single = ir_mmv(prob.operator[0], prob.y[0], history=hist, **kw)
        runs.append((batch, capped, single, hist.as_dict()))
    (batch, capped, single, hist), (ref_batch, ref_capped, ref_single, ref_hist) = runs
    assert min(batch.info["n_rejected_steps"]) > 0
    if update == "simultaneous":  # two problems stop early (the sequential ones run on)
        assert StopReason.STAGNATED in batch.stop_reason and len(set(batch.n_iter)) == 3
    for new, ref in ((batch, ref_batch), (capped, ref_capped)):
        np.testing.assert_array_equal(new.coef, ref.coef)
        np.testing.assert_array_equal(new.n_iter, ref.n_iter)
        assert new.stop_reason == ref.stop_reason
        for key in ("time", "step", "n_rejected_steps", "final_loss"):
            np.testing.assert_array_equal(new.info[key], ref.info[key])
    np.testing.assert_array_equal(single.coef, ref_single.coef)
    for key in ("loss", "flow_time"):
        np.testing.assert_array_equal(hist[key], ref_hist[key])


def test_row_change_cap_is_the_guarded_formula_bit_for_bit():
    """_row_change_cap (the dead-row guard only where a rate is NaN) is the formula with the
    guard always applied: |∇g_i| / |g_i| over the live rows, dead rows (g_i = 0) setting no
    cap, a problem with only dead rows uncapped, a NaN gradient on a live row kept NaN."""
    from overparam.solvers.mmv import _row_change_cap

    rng = np.random.default_rng(5)
    g = rng.standard_normal((5, 7))
    s = rng.standard_normal((5, 7))
    g[1, 2] = g[3, :] = 0.0
    s[4, 1] = np.nan
    grad_g = -2.0 * (2.0 * g * s)  # as the step forms it: ±0 on a dead row
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.abs(grad_g) / np.abs(g)
        rate[g == 0] = 0.0
        expected = 0.3 / rate.max(axis=-1)
        got = _row_change_cap(g, grad_g, 0.3)
    np.testing.assert_array_equal(got, expected)
    assert np.isinf(got[3]) and np.isnan(got[4]) and np.all(np.isfinite(got[[0, 1, 2]]))
