"""Group sparsity: the grouped network, Algorithms 1/2, plain GD, baselines, theory checks."""

import numpy as np
import pytest

from overparam.baselines import GroupLassoRegressor, GroupPrimalDualRegressor
from overparam.datasets import load_diabetes_splines, make_group_sparse_problem
from overparam.estimators import GroupHadamardRegressor
from overparam.methods import get_method
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.parameterizations import GroupHadamard, as_group_labels
from overparam.solvers import History, gradient_descent, weight_normalized_gd
from overparam.stopping import DivergenceError, StoppingRule, StopReason
from overparam.testing import check_vjp


def _problem(seed=0, noise=0.0, **kw):
    args = dict(group_size=3, n_active_groups=2, values=[3, 2, 1, -2, 1, 2], design="gaussian",
                noise_std=noise, random_state=seed)
    args.update(kw)
    return make_group_sparse_problem(60, 120, **args)


# --- groups and the parameterization ------------------------------------------------------
def test_group_specifications_agree():
    by_size = as_group_labels(2, 6)
    by_lists = as_group_labels([[0, 1], [2, 3], [4, 5]])
    by_labels = as_group_labels(np.array(["a", "a", "b", "b", "c", "c"]))
    np.testing.assert_array_equal(by_size, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(by_lists, by_size)
    np.testing.assert_array_equal(by_labels, by_size)
    # unequal sizes, unsorted indices, labels relabelled by first appearance
    np.testing.assert_array_equal(as_group_labels([[3], [0, 2, 1]]), [1, 1, 1, 0])
    np.testing.assert_array_equal(as_group_labels([7, 7, 2, 9]), [0, 0, 1, 2])


@pytest.mark.parametrize("groups, match", [
    ([[0, 1], [1, 2]], "overlap"),
    ([[0, 1], [3]], "cover"),
    ([[0, 1], []], "empty"),
    (4, "multiple"),
])
def test_bad_groups_raise(groups, match):
    with pytest.raises(ValueError, match=match):
        as_group_labels(groups, 6 if isinstance(groups, int) else None)


def test_label_count_must_match_features():
    with pytest.raises(ValueError, match="labels"):
        as_group_labels([0, 0, 1], 4)


def test_vjp_matches_finite_differences_unequal_groups():
    param = GroupHadamard([[0, 4], [1], [2, 3, 5, 6]])
    rng = np.random.default_rng(1)
    params = (rng.standard_normal(3), rng.standard_normal(7))
    check_vjp(param, params)
    np.testing.assert_allclose(param.signal(params),
                               params[0][param.labels] ** 2 * params[1])


def test_balanced_init_and_helpers():
    param = GroupHadamard([0, 0, 1, 1, 1], direction_scale="balanced")
    u, v = param.init(0.1)
    np.testing.assert_allclose(param.balance((u, v)), 0.0, atol=1e-15)
    np.testing.assert_allclose(param.group_norms(v), 0.1 / np.sqrt(2))
    np.testing.assert_allclose(param.magnitudes((u, v)), param.group_norms(param.signal((u, v))))


# --- Algorithm 1/2 -----------------------------------------------------------------------
def test_one_iteration_matches_the_paper_updates():
    """normalize(u^2 v + X^T r/n) is the step v - grad_v / u^4; then u - gamma grad_u(v_new)."""
    pb = _problem(noise=0.1)
    param = GroupHadamard(pb.meta["groups"])
    op = as_operator(pb.operator)
    n = pb.operator.shape[0]
    rng = np.random.default_rng(0)
    u0 = 0.5 + rng.random(param.n_groups)
    v0 = param.normalize(rng.standard_normal(param.n_features))
    gamma = 1e-3
    res = weight_normalized_gd(param, op, pb.y, algorithm="alg1", init_params=(u0, v0),
                               step_u=gamma, stopping=StoppingRule(max_iter=1, tol=0))

    def grads(u, v):
        r = pb.operator @ param.signal((u, v)) - pb.y
        return param.vjp((u, v), pb.operator.T @ r / n)  # gradient of (1/2n)||Xw - y||^2

    _, gv = grads(u0, v0)
    z = v0 - gv / u0[param.labels] ** 4
    v1 = z / param.group_norms(z)[param.labels]
    u1 = u0 - gamma * grads(u0, v1)[0]
    np.testing.assert_allclose(res.params[1], v1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.params[0], u1, rtol=1e-12)


def _authors_epochs(X, y, labels, u, v, lr, n_epochs, switch_at=None):
    """The authors' ``groupTrainer`` epochs transcribed to numpy (``src/group_model.py``).

    ``MSELoss`` = (1/n)||Xw - y||^2, one backward pass per epoch: the v-step with learning
    rate 1/u^4 then normalization, then the u-step with the gradient taken at the old v.
    After ``switch_at`` epochs (their ``_small_lr_one_epoch``): SGD on u and v with ``lr``
    from one backward pass, then normalization.
    """
    n = X.shape[0]
    u, v = u.copy(), v.copy()
    for epoch in range(n_epochs):
        w = u[labels] ** 2 * v
        grad_w = 2.0 / n * X.T @ (X @ w - y)
        grad_v = u[labels] ** 2 * grad_w
        grad_u = np.bincount(labels, 2 * u[labels] * v * grad_w)
        small = switch_at is not None and epoch >= switch_at
        v = v - (lr if small else 1.0 / u[labels] ** 4) * grad_v
        v = v / np.sqrt(np.bincount(labels, v**2))[labels]
        u = u - lr * grad_u
    return u, v


@pytest.mark.parametrize("algorithm, switch_at", [("alg1", None), ("alg2", 6)])
def test_authors_loss_scale_reproduces_their_updates(algorithm, switch_at):
    pb = _problem(noise=0.1)
    param = GroupHadamard(pb.meta["groups"])
    rng = np.random.default_rng(1)
    u0 = 0.5 + rng.random(param.n_groups)
    v0 = param.normalize(rng.standard_normal(param.n_features))
    lr, n_epochs = 1e-3, 12
    u_ref, v_ref = _authors_epochs(pb.operator, pb.y, param.labels, u0, v0, lr, n_epochs, switch_at)
    kwargs = {"init_params": (u0, v0), "step_u": lr, "step_v": lr, "switch_at": switch_at,
              "stopping": StoppingRule(max_iter=n_epochs, tol=0, stagnation_tol=0)}
    res = weight_normalized_gd(param, as_operator(pb.operator), pb.y, algorithm=algorithm,
                               loss_scale="authors", **kwargs)
    np.testing.assert_allclose(res.params[0], u_ref, rtol=1e-12)
    np.testing.assert_allclose(res.params[1], v_ref, rtol=1e-12, atol=1e-12)
    assert res.info["switch_iteration"] == switch_at and res.info["loss_scale"] == "authors"
    # the paper's scale and update order is a different iteration
    ours = weight_normalized_gd(param, as_operator(pb.operator), pb.y, algorithm=algorithm,
                                **kwargs)
    assert np.max(np.abs(ours.params[0] - u_ref)) > 1e-6
    with pytest.raises(ValueError, match="loss_scale"):
        weight_normalized_gd(param, as_operator(pb.operator), pb.y, loss_scale="mse", **kwargs)


def test_alg2_switches_and_recovers_noiseless():
    pb = _problem()
    for algorithm in ("alg1", "alg2"):
        res = weight_normalized_gd(GroupHadamard(pb.meta["groups"]), as_operator(pb.operator), pb.y,
                                   algorithm=algorithm, step_u=5e-3, step_v=5e-3,
                                   stopping=StoppingRule(max_iter=20_000, tol=1e-7))
        assert res.info["clock"] == "iterations" and res.info["time"] == res.n_iter
        assert relative_error(res.coef, pb.truth) < 1e-4, algorithm
        if algorithm == "alg2":
            assert res.info["switch_iteration"] is not None
            assert 0 < res.info["switch_iteration"] < res.n_iter
        else:
            assert res.info["switch_iteration"] is None


def test_size_one_groups_recover_a_sparse_vector():
    pb = make_group_sparse_problem(50, 120, group_size=1, n_active_groups=5,
                                   values=[1, -1, 1, -1, 1], design="rademacher",
                                   random_state=3)
    est = GroupHadamardRegressor(groups=1, step_u=1e-2, step_v=1e-2, max_iter=20_000,
                                 tol=1e-7).fit(pb.operator, pb.y)
    assert relative_error(est.coef_, pb.truth) < 1e-3
    assert get_method("group-hadamard") is GroupHadamardRegressor


def test_auto_steps_are_scale_free():
    """Rescaling X or y leaves the iteration count of the data-scaled steps nearly unchanged.

    (Only the escape from the unscaled init ``u(0) = alpha`` shifts by ``log(scale)``.)
    A fixed step would need about 10x more iterations for ``y / 10`` and 10x fewer (if it
    does not diverge) for ``100 y``.
    """
    pb = _problem()
    cases = {"plain": (pb.operator, pb.y, 1.0), "y*100": (pb.operator, 1e2 * pb.y, 1e2),
             "y/10": (pb.operator, 0.1 * pb.y, 0.1), "X*10": (10 * pb.operator, pb.y, 0.1)}
    n_iter = {}
    for name, (X, y, scale) in cases.items():
        est = GroupHadamardRegressor(groups=3, early_stopping=None, tol=1e-4,
                                     max_iter=20_000)
        # On A as given: equilibrated to unit columns, z = D x keeps the column factor that
        # the powers of 256 leave (here 7.7 vs 0.3) against the absolute init, and the escape
        # shifts more (X*10: 180 iterations vs 220; docs/scaling.md).
        est.column_spread_limit = np.inf
        est.fit(X, y)
        assert est.stop_reason_ is StopReason.CONVERGED, name
        assert relative_error(est.coef_ / scale, pb.truth) < 1e-3, name
        n_iter[name] = est.n_iter_
        if name == "plain":
            c = np.max(GroupHadamard(pb.meta["groups"]).group_norms(pb.operator.T @ pb.y / 60))
            assert est.result_.info["step_u"] == pytest.approx(1 / (20 * c))
    assert n_iter["plain"] < 2000
    for count in n_iter.values():
        assert abs(count - n_iter["plain"]) < 0.15 * n_iter["plain"], n_iter


def test_default_validation_at_high_snr_stops_near_the_oracle():
    """At 40 dB the held-out error hardly rises: the path must not run on to the limit."""
    from overparam.stopping import Oracle

    pb = make_group_sparse_problem(150, 300, group_size=5, n_active_groups=4,
                                   design="gaussian", snr=40.0, random_state=11)
    est = GroupHadamardRegressor(groups=5, random_state=0).fit(pb.operator, pb.y)
    oracle = GroupHadamardRegressor(groups=5, early_stopping=Oracle(pb.truth))
    oracle.fit(pb.operator, pb.y)
    assert est.stop_reason_ is StopReason.END_OF_TIME
    assert est.result_.info["path_iterations"] < 0.05 * est.max_iter
    assert relative_error(est.coef_, pb.truth) <= 1.1 * relative_error(oracle.coef_, pb.truth)


def test_divergence_is_raised_or_recovered():
    pb = _problem()
    kw = dict(init_scale=1.0, step_u=50.0, stopping=StoppingRule(max_iter=200, tol=0))
    with pytest.raises(DivergenceError):
        weight_normalized_gd(GroupHadamard(pb.meta["groups"]), as_operator(pb.operator), pb.y, **kw)
    res = weight_normalized_gd(GroupHadamard(pb.meta["groups"]), as_operator(pb.operator), pb.y,
                               on_divergence="halve", **kw)
    assert res.info["n_step_halvings"] > 0 and np.all(np.isfinite(res.coef))


def test_stop_time_is_an_exact_iteration_and_discrepancy_stops():
    pb = _problem(noise=0.3)
    est = GroupHadamardRegressor(groups=3, step_u=5e-3, max_iter=300).fit(pb.operator, pb.y)
    assert est.result_.info["clock"] == "iterations"
    from overparam.stopping import PathControl

    res = est._solve(as_operator(pb.operator), pb.y, PathControl(stop_time=123))
    assert res.n_iter == 123 and res.stop_reason is StopReason.END_OF_TIME
    d = GroupHadamardRegressor(groups=3, step_u=5e-3, early_stopping="discrepancy",
                               noise_level=0.3).fit(pb.operator, pb.y)
    assert d.stop_reason_ is StopReason.DISCREPANCY
    assert np.linalg.norm(pb.operator @ d.coef_ - pb.y) <= 0.3 * np.sqrt(60) + 1e-9


@pytest.mark.parametrize("algorithm", ["alg2", "gd"])
def test_validation_stopping_beats_interpolation_under_noise(algorithm):
    pb = make_group_sparse_problem(100, 200, group_size=4, n_active_groups=2, values=1.0,
                                   design="gaussian", noise_std=1.0, random_state=5)
    kw = dict(groups=4, algorithm=algorithm, init_scale=1e-2, max_iter=10_000, random_state=0)
    if algorithm == "gd":
        kw.update(step_u="adaptive")
    else:
        kw.update(step_u=2e-2, step_v=2e-2)
    full = GroupHadamardRegressor(early_stopping=None, **kw).fit(pb.operator, pb.y)
    early = GroupHadamardRegressor(early_stopping="validation", **kw).fit(pb.operator, pb.y)
    err_full = relative_error(full.coef_, pb.truth)
    err_early = relative_error(early.coef_, pb.truth)
    assert err_early < 0.7 * err_full, (err_early, err_full)
    assert early.stop_reason_ is StopReason.END_OF_TIME
    if algorithm == "alg2":
        assert early.chosen_iteration_ == early.n_iter_
    else:
        assert early.result_.info["clock"] == "flow_time"


# --- theory checks (paper's Lemma 2, incremental learning, early stopping) ----------------
def test_balance_is_conserved_by_small_step_gd():
    """d/dt (u_l^2/2 - ||v_l||^2) = 0 for gradient flow: GD's drift shrinks with the step."""
    pb = _problem(noise=0.2)
    param = GroupHadamard(pb.meta["groups"])
    rng = np.random.default_rng(0)
    start = (0.3 + rng.random(param.n_groups), 0.3 * rng.standard_normal(param.n_features))
    drift = []
    for step in (2e-3, 5e-4):
        horizon = 2.0  # same flow time for both steps
        res = gradient_descent(param, as_operator(pb.operator), pb.y, init_params=start, step=step,
                               loss_weight=1 / 60,
                               stopping=StoppingRule(max_iter=int(horizon / step), tol=0,
                                                     stagnation_tol=0))
        assert res.n_iter == int(horizon / step)
        drift.append(np.max(np.abs(param.balance(res.params) - param.balance(start))))
    scale = np.max(np.abs(param.balance(start)))
    assert drift[1] < 1e-2 * scale
    assert 3.0 < drift[0] / drift[1] < 5.0  # first order in the step: 4x smaller


def test_larger_groups_are_learned_first():
    pb = make_group_sparse_problem(150, 300, group_size=3, n_active_groups=3,
                                   values=[8, 8, 8, 4, 4, 4, 1.5, 1.5, 1.5], active="first",
                                   design="rademacher", noise_std=0.1, random_state=2)
    param = GroupHadamard(pb.meta["groups"])
    history = History(every=5, quantities={"mag": lambda p, x: param.group_norms(x)[:3]})
    weight_normalized_gd(param, as_operator(pb.operator), pb.y, step_u=2e-3,
                         stopping=StoppingRule(max_iter=8000, tol=1e-5), history=history)
    mags = np.asarray(history.values["mag"])
    target = param.group_norms(pb.truth)[:3]
    half_time = [history.iteration[int(np.argmax(mags[:, k] >= target[k] / 2))]
                 for k in range(3)]
    assert all(mags[:, k].max() >= target[k] / 2 for k in range(3))
    assert half_time[0] < half_time[1] < half_time[2], half_time


def test_error_curve_is_u_shaped_under_noise():
    pb = make_group_sparse_problem(60, 120, group_size=3, n_active_groups=2, values=2.0,
                                   design="gaussian", noise_std=1.0, random_state=4)
    history = History(every=20, truth=pb.truth)
    weight_normalized_gd(GroupHadamard(pb.meta["groups"]), as_operator(pb.operator), pb.y,
                         init_scale=1e-3,
                         step_u=2e-2, step_v=2e-2,
                         stopping=StoppingRule(max_iter=15_000, tol=0, stagnation_tol=0),
                         history=history)
    err = np.asarray(history.error)
    best = int(np.argmin(err))
    assert err[0] > 2 * err[best] and err[-1] > 2 * err[best], (err[0], err[best], err[-1])
    assert 0 < best < err.size - 1


# --- the limit on inconsistent data ------------------------------------------------------
def test_run_to_the_limit_on_inconsistent_data_is_the_least_squares_point():
    """Overdetermined noisy data (X w = y has no solution): the limit of the flow is the unique
    least-squares point; the weight-normalized path only creeps there (a group whose direction
    froze after the switch never arrives), so within max_iter it was percents away."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 24))
    w = np.zeros(24)
    w[3:9] = rng.standard_normal(6) + 1
    y = X @ w + 0.3 * rng.standard_normal(60)
    ls = np.linalg.lstsq(X, y, rcond=None)[0]
    est = GroupHadamardRegressor(groups=3, early_stopping=None, max_iter=5000).fit(X, y)
    assert relative_error(est.coef_, ls) < 1e-10
    assert est.stop_reason_ is StopReason.CONVERGED and est.n_iter_ == 0
    assert est.result_.info["relative_gradient"] < 1e-8  # the optimality check after the fit
    # the parameters are those of z = D x on the unit columns (docs/scaling.md)
    a, s = est.result_.info["data_scales"]
    z = est._param.signal(est.result_.params)
    np.testing.assert_allclose(z / est.result_.info["column_scales"] * (s / a), est.coef_,
                               rtol=1e-12)


def test_unique_least_squares_only_where_it_is_unique():
    from overparam.solvers.support_limit import unique_least_squares

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((10, 4)), rng.standard_normal(10)
    np.testing.assert_allclose(unique_least_squares(as_operator(X), y),
                               np.linalg.lstsq(X, y, rcond=None)[0])
    assert unique_least_squares(as_operator(X.T), y[:4]) is None  # underdetermined
    X[:, 3] = X[:, 0] + X[:, 1]
    assert unique_least_squares(as_operator(X), y) is None  # rank-deficient


# --- estimator input checks --------------------------------------------------------------
def test_estimator_errors():
    pb = _problem()
    with pytest.raises(ValueError, match=r"'groups' parameter .* is required"):
        GroupHadamardRegressor().fit(pb.operator, pb.y)
    with pytest.raises(ValueError, match="algorithm"):
        GroupHadamardRegressor(groups=3, algorithm="alg3").fit(pb.operator, pb.y)
    with pytest.raises(ValueError, match="labels"):
        GroupHadamardRegressor(groups=[0, 1, 1]).fit(pb.operator, pb.y)
    with pytest.raises(ValueError, match="adaptive"):
        GroupHadamardRegressor(groups=3, step_u="adaptive").fit(pb.operator, pb.y)


# --- baselines ---------------------------------------------------------------------------
def test_group_lasso_matches_cvxpy_at_fixed_alpha():
    cp = pytest.importorskip("cvxpy")
    pb = _problem(noise=0.3, seed=1)
    labels = np.arange(120) // 3
    alpha = 0.05
    est = GroupLassoRegressor(groups=3, alpha=alpha).fit(pb.operator, pb.y)
    w = cp.Variable(120)
    penalty = sum(np.sqrt(3) * cp.norm(w[labels == k], 2) for k in range(40))
    cp.Problem(cp.Minimize(cp.sum_squares(pb.operator @ w - pb.y) / 120 + alpha * penalty)).solve()
    np.testing.assert_allclose(est.coef_, w.value, atol=2e-3 * np.abs(w.value).max())


def test_group_lasso_cv_recovers_support_groups():
    pb = _problem(noise=0.3, seed=2)
    est = GroupLassoRegressor(groups=3, cv=3, n_alphas=15, random_state=0).fit(pb.operator, pb.y)
    assert est.alpha_ in est.result_.info["alphas"]
    assert relative_error(est.coef_, pb.truth) < 0.3


def test_group_lasso_is_scale_equivariant():
    """(s X, t y) gives t/s times the fit of (X, y): the CV grid is relative to alpha_max and
    skglm's tolerance is scaled to it (absolute, it stopped at w = 0 for s or t = 1e-6)."""
    pb = _problem(noise=0.3, seed=2)
    kw = dict(groups=3, cv=3, n_alphas=8, random_state=0)
    ref = GroupLassoRegressor(**kw).fit(pb.operator, pb.y)
    assert relative_error(ref.coef_, pb.truth) < 0.3
    for s, t in [(1e-6, 1.0), (1.0, 1e-6), (1e6, 1.0), (1.0, 1e6)]:
        est = GroupLassoRegressor(**kw).fit(s * pb.operator, t * pb.y)
        assert est.alpha_ == pytest.approx(ref.alpha_ * s * t, rel=1e-9)
        assert relative_error(est.coef_ * s / t, ref.coef_) < 1e-4
        fixed = GroupLassoRegressor(groups=3, alpha=ref.alpha_ * s * t)
        fixed.fit(s * pb.operator, t * pb.y)
        assert relative_error(fixed.coef_ * s / t, ref.coef_) < 1e-4


def test_primal_dual_tends_to_min_group_norm_interpolant():
    cp = pytest.importorskip("cvxpy")
    pb = _problem(seed=3)
    labels = np.arange(120) // 3
    est = GroupPrimalDualRegressor(groups=3, early_stopping=None, max_iter=20_000,
                                   tol=1e-8).fit(pb.operator, pb.y)
    w = cp.Variable(120)
    cp.Problem(cp.Minimize(sum(cp.norm(w[labels == k], 2) for k in range(40))),
               [pb.operator @ w == pb.y]).solve()
    assert relative_error(est.coef_, w.value) < 1e-3


def test_primal_dual_validation_stops_early_without_losing_accuracy():
    pb = make_group_sparse_problem(100, 200, group_size=4, n_active_groups=2, values=1.0,
                                   design="gaussian", noise_std=1.0, random_state=5)
    full = GroupPrimalDualRegressor(groups=4, early_stopping=None, max_iter=5000)
    full.fit(pb.operator, pb.y)
    early = GroupPrimalDualRegressor(groups=4, random_state=0).fit(pb.operator, pb.y)
    assert full.stop_reason_ is StopReason.CONVERGED  # reached the interpolant
    assert early.result_.info["clock"] == "iterations"
    assert early.n_iter_ == early.result_.info["chosen_time"] < full.n_iter_
    assert relative_error(early.coef_, pb.truth) < 1.05 * relative_error(full.coef_, pb.truth)


# --- data --------------------------------------------------------------------------------
def test_generator_fills_groups_in_order():
    pb = make_group_sparse_problem(150, 300, group_size=4, n_active_groups=3, n_nonzero=10,
                                   values=1.0, active="first", random_state=0)
    np.testing.assert_array_equal(np.flatnonzero(pb.truth), np.arange(10))
    assert set(np.unique(pb.operator)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="fill"):
        make_group_sparse_problem(20, 40, group_size=4, n_active_groups=3, n_nonzero=7)
    snr = make_group_sparse_problem(50, 40, group_size=4, snr=10.0, random_state=0)
    clean = snr.operator @ snr.truth
    assert 10 * np.log10(clean @ clean / (snr.noise @ snr.noise)) == pytest.approx(10.0)


def test_diabetes_splines_have_unequal_groups():
    data = load_diabetes_splines()
    sizes = np.bincount(data.meta["groups"])
    assert data.operator.shape == (442, sizes.sum()) and sizes.size == 10
    assert sorted(set(sizes.tolist())) == [1, 5]
    assert np.all(np.isfinite(data.operator))


@pytest.mark.parametrize("factor", [1.5, 2.0, 2.5])
def test_default_is_exact_on_a_rescaled_design(factor):
    """Algorithm 1's unit direction step oscillates for ever once max_l ||X_l||^2 / n > 2 (a
    design scaled by 1.5 or more, which the powers-of-256 normalization leaves alone): the
    held-out time was then picked on an oscillating path (residual 0.21 at every factor
    here). The "auto" steps shrink the direction step to 1 / lam_max."""
    pb = make_group_sparse_problem(60, 120, group_size=4, n_active_groups=2, design="gaussian",
                                   random_state=0)
    est = GroupHadamardRegressor(groups=4).fit(factor * pb.operator, pb.y)
    assert est.stop_reason_ is StopReason.CONVERGED
    assert relative_error(est.coef_ * factor, pb.truth) < 1e-6


def test_direction_step_reads_group_norms_of_a_matrix_at_any_size(monkeypatch):
    """kappa = 1 / max_l ||X_l||^2 / n: exact for a matrix however large; a matrix-free
    operator too large to form gets the smaller (stable) 1 / (||X||^2 / n)."""
    from scipy.sparse.linalg import aslinearoperator

    import overparam.solvers.group as group_solver

    rng = np.random.default_rng(0)
    X = 2.0 * rng.standard_normal((40, 90))
    param = GroupHadamard(3, 90)
    exact = 1.0 / max(np.linalg.norm(X[:, param.labels == k], 2) ** 2 / 40
                      for k in range(param.n_groups))
    bound = 1.0 / (np.linalg.norm(X, 2) ** 2 / 40)
    monkeypatch.setattr(group_solver, "_EXACT_NORM_ENTRIES", 0)  # every operator is "large"
    kappa = group_solver.stable_direction_step(param, as_operator(X), 40)
    # the solver takes the groups' Gram eigenvalues, the reference their SVDs: equal to
    # rounding (bit for bit with some numpy/LAPACK builds, 1 ulp apart with others)
    assert np.isclose(kappa, exact, rtol=1e-12, atol=0) and exact > 2 * bound
    matrix_free = group_solver.stable_direction_step(param, as_operator(aslinearoperator(X)), 40)
    assert np.isclose(matrix_free, bound, rtol=1e-8)
