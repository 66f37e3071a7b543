"""Registry-wide contract: every registered method × every ordinary input class.

Each cell either returns a finite answer that meets the accuracy stated for that method and
input class (against an exact reference: basis pursuit, l2,1 or nuclear-norm minimization,
least squares, the truth, or the method's own optimality conditions), or raises an error that
this file declares for that method with its reason. Every cell runs under a time limit (no
hang), and an answer reported as "converged" must pass the optimality check of what was
solved. A method registered without a contract here fails ``test_every_method_has_a_contract``.

The input classes are built from one small, seeded, identifiable problem per structure:

- ``under`` / ``over``: clean, under- and overdetermined (the truth is the unique solution of
  ``over``, and the exact convex reference recovers it in ``under``);
- ``noisy-10dB`` / ``noisy-30dB``: underdetermined, noisy; the error against the truth must stay
  within ``noise_factor`` times the error of least squares on the true support (the oracle),
  or within ``PEER_MARGIN`` times an error that a data-driven method attains on the same cell
  (the implicit-regularization estimators: their convex counterpart, cross-validated,
  ``NOISY_PEERS``; the cross-validated penalized methods: their own best penalty, in
  hindsight, ``HINDSIGHT``). On 30 measurements the oracle's bound alone is not attainable on
  every seed (see ``PEER_MARGIN`` and docs/noise.md); the oracle's bound is kept for the
  median over seeds 0-9 (``test_noisy_median_more_seeds``, slow);
- ``inconsistent``: overdetermined and noisy (``A x = y`` has no solution); the error against the
  truth as for the noisy cells;
- ``inconsistent-limit``: the same with ``early_stopping=None``: the limit must be the
  least-squares solution (unique here);
- ``A*1e-6`` … ``y*1e6``: ``under`` with ``A`` or ``y`` scaled; the answer must be the reference's,
  rescaled (``A*2``: a scale that the internal normalization by powers of 256 leaves as it is);
- ``bad-columns``: ``under`` with half of the columns of ``A`` multiplied by 1e6: the data must be
  fit (relative residual below 1e-3) — the structured reference itself depends on the scaling;
- ``columns*4``: the same with a moderate factor 4: the data must be fit (1e-3), and the answer
  is the reference's where the method's program is defined: the truth for the methods whose
  answer does not depend on column scales (the equilibrating IR estimators, OMP, M-OMP; the
  standardized references recover it), the exact program on the scaled data for the convex
  solvers and the minimum-norm solution (see ``COLUMN_SCALE_FREE``);
- ``float32`` / ``int`` / ``sparse`` / ``linear-operator``: ``under`` given in those forms;
- ``zero-A``: ``A = 0`` with ``y != 0``: the answer is ``0`` with a warning, or a ``ValueError``;
- ``zero-y``: ``y = 0``: the answer is ``0``;
- ``one-measurement``: ``m = 1``: a finite answer that fits the measurement, or a ``ValueError``;
- ``depth-L`` (estimators with a ``depth``): ``under``, ``over`` and ``noisy-30dB`` at depth L;
- ``wide`` / ``wide-noisy-20dB`` (vector and row-sparse structures): a clean and a noisy
  underdetermined problem with 240 columns (group: 1,200), where size-dependent defaults
  switch on (the multirate steps of IR-MMV from ``MMVRegressor.active_rows_from = 100``
  columns and of the group network from ``GroupHadamardRegressor.active_groups_from =
  1000``).
- ``subsampled-dct`` / ``subsampled-dct-noisy-20dB`` (vector and row-sparse structures): the
  ``under`` truth measured by random rows of the orthonormal DCT-II, given as
  :class:`overparam.operators.SubsampledDCT`: an operator with fast products and a
  closed-form column Gram matrix, which the sparse limit's implicit working-set
  preconditioner uses instead of reading columns (a scipy ``LinearOperator`` has neither).

A fuller sweep (more seeds, and the medians under noise) is marked ``slow``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from overparam.methods import available_methods, get_method
from overparam.stopping import StopReason

# ---------------------------------------------------------------------------------------------
# Problems and references
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One input: the design as given to ``fit``, its float64 matrix, ``y``, the truth."""

    A: object
    y: np.ndarray
    matrix: np.ndarray  # (m, n) float64 design acting on the flattened signal (C order)
    truth: np.ndarray
    support: np.ndarray  # bool mask over the flattened signal: the truth's structure
    structure: str
    groups: np.ndarray | None = None
    consistent: bool = True  # A x = y has a solution
    noisy: bool = False
    meta: dict = field(default_factory=dict)


def _rng(seed, salt):
    return np.random.default_rng([seed, salt])


def _sparse_case(m, n, s, seed, *, positive=False, integer=False, floor=False):
    """``floor``: magnitudes at least 1 (``randn + sign(randn)`` can fall near 0, e.g. -0.04
    in the wide problem of seed 0, an entry below the noise of its 20 dB class)."""
    rng = _rng(seed, 1)
    if integer:
        A = rng.choice([-1, 1], size=(m, n))
        x = np.zeros(n)
        x[rng.choice(n, s, replace=False)] = rng.choice([1, 2, 3], s) * (
            1 if positive else rng.choice([-1, 1], s))
    else:
        A = rng.standard_normal((m, n)) / np.sqrt(m)
        x = np.zeros(n)
        vals = rng.standard_normal(s) + np.sign(rng.standard_normal(s))  # away from 0
        if floor:
            vals = np.sign(vals) * (1.0 + np.abs(rng.standard_normal(s)))
        x[rng.choice(n, s, replace=False)] = np.abs(vals) if positive else vals
    return A, x


def make_case(structure: str, kind: str, seed: int = 0, *, integer: bool = False) -> Case:
    """The clean problem of a structure: ``kind`` is ``"under"``, ``"over"`` or ``"one"``."""
    if structure in ("sparse", "positive"):
        m, n, s = {"under": (30, 80, 3), "over": (60, 20, 3), "one": (1, 20, 1),
                   "wide": (60, 240, 4)}[kind]
        A, x = _sparse_case(m, n, s, seed, positive=structure == "positive", integer=integer,
                            floor=kind == "wide")
        if integer:
            x = np.round(x)
        return Case(A, A @ x, A.astype(float), x, x != 0, structure)
    if structure == "group":
        m, p, g, k = {"under": (30, 60, 3, 2), "over": (60, 24, 3, 2), "one": (1, 12, 3, 1),
                      "wide": (120, 1200, 3, 3)}[kind]
        rng = _rng(seed, 2)
        A = rng.choice([-1, 1], size=(m, p)) if integer else rng.standard_normal((m, p))
        groups = np.arange(p) // g
        active = rng.choice(p // g, k, replace=False)
        w = np.zeros(p)
        mask = np.isin(groups, active)
        w[mask] = rng.choice([-2, -1, 1, 2], mask.sum()) if integer else \
            rng.standard_normal(mask.sum()) + np.sign(rng.standard_normal(mask.sum()))
        return Case(A, A @ w, A.astype(float), w, mask, structure, groups=groups)
    if structure == "mmv":
        M, N, L, K = {"under": (15, 30, 4, 2), "over": (30, 12, 4, 2), "one": (1, 8, 2, 1),
                      "wide": (60, 240, 4, 3)}[kind]
        rng = _rng(seed, 3)
        A = rng.choice([-1, 1], size=(M, N)) if integer else \
            rng.standard_normal((M, N)) / np.sqrt(M)
        X = np.zeros((N, L))
        rows = rng.choice(N, K, replace=False)
        # Rows of mixed sign and direction, one against the all-ones direction.
        X[rows] = rng.choice([-2, -1, 1, 2], (K, L)) if integer else rng.standard_normal((K, L))
        X[rows[0]] = -np.abs(X[rows[0]])
        support = np.zeros((N, L), dtype=bool)
        support[rows] = True
        return Case(A, A @ X, A.astype(float), X, support, structure)
    if structure in ("low_rank", "psd"):
        # A symmetric 6 x 6 matrix has 21 degrees of freedom, a general one 36.
        sizes = {"under": 16, "over": 30} if structure == "psd" else {"under": 28, "over": 50}
        n1, r, m = 6, 1, {**sizes, "one": 1}[kind]
        rng = _rng(seed, 4)
        if integer:
            stack = rng.choice([-1, 1], size=(m, n1, n1))
            u, v = rng.choice([-2, -1, 1, 2], (n1, r)), rng.choice([-2, -1, 1, 2], (n1, r))
        else:
            stack = rng.standard_normal((m, n1, n1)) / np.sqrt(m)
            u, v = rng.standard_normal((n1, r)), rng.standard_normal((n1, r))
        if structure == "psd":
            stack = (stack + np.swapaxes(stack, 1, 2)) / 2
            v = u
        X = u @ v.T
        matrix = stack.reshape(m, -1).astype(float)
        support = np.zeros_like(X, dtype=bool)  # the "support" of a low-rank truth: its spaces
        return Case(stack, matrix @ X.ravel(), matrix, X, support, structure,
                    meta={"rank": r})
    raise ValueError(structure)


def _dct_case(case: Case, seed: int) -> Case:
    """``case``'s truth measured by as many random rows of the orthonormal DCT-II."""
    from overparam.operators import SubsampledDCT

    m, n = case.matrix.shape
    operator = SubsampledDCT(n, np.sort(_rng(seed, 5).choice(n, m, replace=False)))
    matrix = operator.columns(np.arange(n))
    return replace(case, A=operator, y=operator.forward(case.truth), matrix=matrix)


def _cvx_solve(problem):
    problem.solve(solver="CLARABEL")
    assert problem.status in ("optimal", "optimal_inaccurate"), problem.status


def exact_reference(case: Case) -> np.ndarray:
    """The exact convex reference on consistent data (computed on the float64 data)."""
    import cvxpy as cp

    # Solved on data scaled to unit size (the solver's tolerances are absolute), rescaled back.
    scale_a = np.abs(case.matrix).max()
    scale_y = max(np.abs(case.y).max(), 1e-300)
    A, y = case.matrix / scale_a, np.asarray(case.y, dtype=float) / scale_y
    shape = case.truth.shape
    if case.structure in ("sparse", "positive"):
        x = cp.Variable(shape, nonneg=case.structure == "positive")
        objective = cp.norm1(x)
    elif case.structure == "group":
        x = cp.Variable(shape)
        objective = sum(cp.norm(x[case.groups == g], 2) for g in np.unique(case.groups))
    elif case.structure == "mmv":
        x = cp.Variable(shape)
        objective = cp.sum(cp.norm(x, 2, axis=1))
    else:
        x = cp.Variable(shape, PSD=case.structure == "psd")
        objective = cp.normNuc(x)
    fitted = A @ cp.vec(x, order="C") if x.ndim == 2 and case.structure != "mmv" else A @ x
    _cvx_solve(cp.Problem(cp.Minimize(objective), [fitted == y]))
    return np.asarray(x.value, dtype=float).reshape(shape) * scale_y / scale_a


def least_squares(case: Case) -> np.ndarray:
    A, y = case.matrix, np.asarray(case.y, dtype=float)
    if case.structure == "psd":  # the model reaches PSD matrices only: least squares over them
        import cvxpy as cp

        X = cp.Variable(case.truth.shape, PSD=True)
        _cvx_solve(cp.Problem(cp.Minimize(cp.sum_squares(A @ cp.vec(X, order="C") - y))))
        return np.asarray(X.value)
    if case.structure == "mmv":
        return np.linalg.lstsq(A, y, rcond=None)[0]
    return np.linalg.lstsq(A, y, rcond=None)[0].reshape(case.truth.shape)


def oracle(case: Case) -> np.ndarray:
    """Least squares knowing the structure of the truth (its support, groups, rows or spaces)."""
    A, y = case.matrix, np.asarray(case.y, dtype=float)
    if case.structure == "mmv":
        rows = case.support.any(axis=1)
        X = np.zeros_like(case.truth)
        X[rows] = np.linalg.lstsq(A[:, rows], y, rcond=None)[0]
        return X
    if case.structure in ("low_rank", "psd"):
        # Least squares on the tangent space of the rank-r matrices at the truth,
        # {U P^T + Q V^T}: the standard oracle of matrix sensing (Candes and Plan).
        U, _, Vt = np.linalg.svd(case.truth)
        r = case.meta["rank"]
        n1, n2 = case.truth.shape
        basis = [np.outer(U[:, i], e).ravel() for i in range(r) for e in np.eye(n2)]
        basis += [np.outer(e, Vt[i]).ravel() for i in range(r) for e in np.eye(n1)]
        basis = np.stack(basis)
        coef = np.linalg.lstsq(A @ basis.T, y, rcond=None)[0]
        return (coef @ basis).reshape(case.truth.shape)
    x = np.zeros(case.truth.size)
    x[case.support.ravel()] = np.linalg.lstsq(A[:, case.support.ravel()], y, rcond=None)[0]
    return x.reshape(case.truth.shape)


def add_noise(case: Case, snr_db: float, seed: int) -> Case:
    clean = np.asarray(case.y, dtype=float)
    noise = _rng(seed, 99).standard_normal(clean.shape)
    noise *= np.linalg.norm(clean) / np.linalg.norm(noise) * 10 ** (-snr_db / 20)
    # Underdetermined (full row rank): still consistent; overdetermined: no solution.
    m, n = case.matrix.shape
    return replace(case, y=clean + noise, noisy=True, consistent=m < n)


def rel(a, b) -> float:
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(np.asarray(a) - b) / (nb if nb > 0 else 1.0))


# ---------------------------------------------------------------------------------------------
# Contracts per method
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """What a method promises.

    structure : which problems it recovers.
    exact_tol : on clean identifiable data, relative distance to the exact convex reference
        (None: no such promise; the method is checked for a finite answer and its own
        optimality conditions only).
    noise_factor : under noise, error against the truth at most this times the oracle's.
    kwargs : constructor arguments a method needs from the problem (groups, sparsity).
    kkt : the method's own optimality check (penalized estimators), replacing the residual checks.
    interpolates : reports "converged" only at a least-squares point (``||A^T r||`` small);
        without ``noise_factor``, it interpolates consistent noisy data.
    greedy : "converged" means least squares on the selected support.
    raises : input classes where a clear ``ValueError`` is the documented answer, with the reason.
    """

    structure: str
    exact_tol: float | None
    noise_factor: float | None
    kwargs: Callable[[Case], dict] = lambda case: {}
    kkt: Callable | None = None
    interpolates: bool = True
    greedy: bool = False
    raises: dict[str, str] = field(default_factory=dict)


def _lasso_kkt(est, case):
    """sklearn's Lasso: ``|A^T (y - A x)| / m <= alpha``, with equality and sign on the support."""
    A, x = case.matrix, np.asarray(est.coef_, dtype=float)
    corr = A.T @ (np.asarray(case.y, float) - A @ x) / A.shape[0]
    slack = 1e-3 * est.alpha + 1e-8
    assert np.all(np.abs(corr) <= est.alpha + slack), np.abs(corr).max() / est.alpha
    on = x != 0
    assert np.allclose(corr[on], est.alpha * np.sign(x[on]), atol=slack)


def _multitask_kkt(est, case):
    """sklearn's MultiTaskLasso: row norms of ``A^T (Y - A X) / M`` at most alpha."""
    A, X = case.matrix, _mmv_coef(est, case)
    corr = A.T @ (np.asarray(case.y, float) - A @ X) / A.shape[0]
    norms = np.linalg.norm(corr, axis=1)
    assert np.all(norms <= est.alpha * (1 + 1e-3) + 1e-8), norms.max() / est.alpha


def _mmv_coef(est, case):
    # coef_ is scikit-learn's multi-output (n_targets, n_features) = (L, N); the signal,
    # (N, L), is signal_.
    coef = np.asarray(est.coef_, dtype=float)
    assert coef.shape == case.truth.shape[::-1], f"coef_ of shape {coef.shape}"
    return np.asarray(est.signal_, dtype=float)


_SPARSITY = {"omp": "n_nonzero_coefs", "m-omp": "n_nonzero_rows", "m-sp": "n_nonzero_rows"}


def _given_sparsity(name):
    def kwargs(case):
        mask = case.support.any(axis=1) if case.structure == "mmv" else case.support
        return {_SPARSITY[name]: max(int(mask.sum()), 1)}
    return kwargs


def _groups(case):
    return {"groups": case.groups}


_NEEDS_CONSISTENT = "an equality-constrained program: A x = y must have a solution"
_NO_2D_DESIGN = "a 2-D design carries no matrix shape: pass a stack (m, n1, n2) or an operator"
_LOW_RANK_RAISES = {"sparse": _NO_2D_DESIGN, "linear-operator": _NO_2D_DESIGN}

CONTRACTS: dict[str, Contract] = {
    # Implicit regularization: exact on clean data, within the oracle's error under noise.
    "hadamard": Contract("sparse", 1e-4, 3.0),
    "group-hadamard": Contract("group", 1e-4, 3.0, kwargs=_groups),
    "ir-mmv": Contract("mmv", 1e-4, 3.0),
    "factorized": Contract("low_rank", 1e-4, 3.0, raises=_LOW_RANK_RAISES),
    "factorized-psd": Contract("psd", 1e-4, 3.0, raises=_LOW_RANK_RAISES),
    "snn": Contract("low_rank", 1e-4, 3.0, raises=_LOW_RANK_RAISES),
    "deep-matrix": Contract("low_rank", 1e-4, 3.0, raises=_LOW_RANK_RAISES),
    "min-norm": Contract("sparse", None, None),  # checked against least squares below
    # Exact convex programs.
    "basis-pursuit": Contract("sparse", 1e-6, None, raises={
        "inconsistent": _NEEDS_CONSISTENT, "inconsistent-limit": _NEEDS_CONSISTENT,
        "zero-A": _NEEDS_CONSISTENT}),
    "positive-basis-pursuit": Contract("positive", 1e-6, None, raises={
        "inconsistent": _NEEDS_CONSISTENT, "inconsistent-limit": _NEEDS_CONSISTENT,
        "zero-A": _NEEDS_CONSISTENT}),
    "nuclear-norm": Contract("low_rank", 1e-4, None, raises={
        **_LOW_RANK_RAISES, "inconsistent": _NEEDS_CONSISTENT,
        "inconsistent-limit": _NEEDS_CONSISTENT, "zero-A": _NEEDS_CONSISTENT}),
    # Greedy methods given the true sparsity: exact on clean data.
    "omp": Contract("sparse", 1e-6, 3.0, kwargs=_given_sparsity("omp"), greedy=True),
    "m-omp": Contract("mmv", 1e-6, 3.0, kwargs=_given_sparsity("m-omp"), greedy=True),
    "m-sp": Contract("mmv", 1e-6, 3.0, kwargs=_given_sparsity("m-sp"), greedy=True),
    # Penalized or reweighted methods: a finite answer and their own optimality conditions,
    # or (cross-validated) within a factor of the oracle.
    "lasso": Contract("sparse", None, None, kkt=_lasso_kkt, interpolates=False),
    "multitask-lasso": Contract("mmv", None, None, kkt=_multitask_kkt, interpolates=False),
    "lasso-cv": Contract("sparse", None, 3.0, interpolates=False),
    "multitask-lasso-cv": Contract("mmv", None, 3.0, interpolates=False),
    "group-lasso": Contract("group", None, 3.0, kwargs=_groups, interpolates=False),
    "nuclear-norm-cv": Contract("low_rank", None, 3.0, interpolates=False,
                                raises=_LOW_RANK_RAISES),
    "group-primal-dual": Contract("group", None, 3.0, kwargs=_groups),
    "m-focuss": Contract("mmv", None, None, interpolates=False),
}


# ---------------------------------------------------------------------------------------------
# The contract under noise (docs/noise.md, "The contract under noise")
# ---------------------------------------------------------------------------------------------

#: A noisy cell passes when its error against the truth is at most ``noise_factor`` times the
#: oracle's (least squares on the true support) or, failing that, at most ``PEER_MARGIN``
#: times an error that a data-driven method attains on the same cell: for an implicit-
#: regularization estimator (and the primal-dual iterative regularization, also stopped by
#: held-out validation), that of its exact convex reference in penalized form with the
#: penalty chosen by cross-validation (``NOISY_PEERS``); for those cross-validated methods,
#: that of their own best penalty on their grid, chosen in hindsight (``HINDSIGHT``). The
#: oracle's bound alone is not attainable on every cell of these small problems (30
#: measurements): at 30 dB the IR path's best point (stopping time in hindsight) is 4.9x the
#: oracle on one sparse seed and the Lasso's best penalty 6.7x; the Lasso's bias keeps
#: LassoCV above 3x on 4 of 5 sparse 30 dB seeds. Per cell the margin only rules out answers
#: that are much worse than what the data allow (e.g. a stop at the first check); the
#: statistical promise, within ``noise_factor`` of the oracle, is checked on the median over
#: seeds (``test_noisy_median_more_seeds``), where running on to the limit (no stopping) fails.
PEER_MARGIN = 2.0
NOISY_PEERS = {"hadamard": "lasso-cv", "group-hadamard": "group-lasso",
               "group-primal-dual": "group-lasso", "ir-mmv": "multitask-lasso-cv",
               "factorized": "nuclear-norm-cv", "factorized-psd": "nuclear-norm-cv",
               "snn": "nuclear-norm-cv", "deep-matrix": "nuclear-norm-cv"}
NOISY_CLASSES = ["noisy-10dB", "noisy-30dB", "inconsistent"]


def _lasso_grid_errors(case):
    """The Lasso on LassoCVRegressor's grid (scikit-learn's path on all the data)."""
    from sklearn.linear_model import lasso_path

    est = get_method("lasso-cv")()
    _, coefs, _ = lasso_path(case.matrix, np.asarray(case.y, float), eps=est.eps,
                             alphas=int(est.n_alphas), max_iter=est.max_iter, tol=est.tol)
    return [rel(c, case.truth.ravel()) for c in coefs.T]


def _multitask_grid_errors(case):
    """MultiTaskLasso on MultiTaskLassoCVRegressor's grid (on all the data)."""
    from sklearn.linear_model import lasso_path

    est = get_method("multitask-lasso-cv")()
    _, coefs, _ = lasso_path(case.matrix, np.asarray(case.y, float), alphas=int(est.n_alphas),
                             max_iter=est.max_iter, tol=est.tol)
    return [rel(coefs[..., k].T, case.truth) for k in range(coefs.shape[-1])]


def _group_grid_errors(case):
    """The group lasso on GroupLassoRegressor's grid (on all the data)."""
    from overparam.baselines.group import group_lasso_path

    est = get_method("group-lasso")(groups=case.groups)
    y = np.asarray(case.y, float)
    coefs = group_lasso_path(case.matrix, y, case.groups, est.alpha_grid(case.matrix, y),
                             weights=est.weights, tol=est.tol)
    return [rel(c, case.truth) for c in coefs]


def _nuclear_grid_errors(case):
    """The penalized nuclear norm at each penalty NuclearNormCV tried (refit on all data)."""
    from overparam.baselines.low_rank import nuclear_norm_minimization

    est = get_method("nuclear-norm-cv")().fit(case.A, case.y)
    m = np.size(case.y)
    return [rel(nuclear_norm_minimization(case.A, np.asarray(case.y, float), lam=a * m),
                case.truth) for a in est.alphas_]


HINDSIGHT = {"lasso-cv": _lasso_grid_errors, "multitask-lasso-cv": _multitask_grid_errors,
             "group-lasso": _group_grid_errors, "nuclear-norm-cv": _nuclear_grid_errors}


def _peer_error(peer, case):
    est = get_method(peer)(**CONTRACTS[peer].kwargs(case)).fit(case.A, case.y)
    return rel(_coef(est, case), case.truth)


def noisy_verdict(name, case, coef):
    """``(error, bound, what)`` of a noisy cell (see ``PEER_MARGIN``); the attainable
    reference is computed only where the oracle's bound is missed."""
    contract = CONTRACTS[name]
    err, oracle_err = rel(coef, case.truth), rel(oracle(case), case.truth)
    bound = contract.noise_factor * oracle_err
    what = f"{contract.noise_factor} x oracle {oracle_err:.3g}"
    if err <= bound:
        return err, bound, what
    if name in NOISY_PEERS:
        ref, label = _peer_error(NOISY_PEERS[name], case), NOISY_PEERS[name]
    elif name in HINDSIGHT:
        ref, label = min(HINDSIGHT[name](case)), "best penalty of its grid"
    else:
        return err, bound, what
    if PEER_MARGIN * ref > bound:
        bound = PEER_MARGIN * ref
        what = f"{PEER_MARGIN} x {label} {ref:.3g}; oracle {oracle_err:.3g}"
    return err, bound, what


BASE_CLASSES = ["under", "over", "noisy-10dB", "noisy-30dB", "inconsistent", "inconsistent-limit",
                "A*1e-6", "A*2", "A*1e6", "y*1e-6", "y*1e6", "bad-columns", "columns*4",
                "float32", "int",
                "sparse", "linear-operator", "zero-A", "zero-y", "one-measurement"]
#: Larger problems, for the structures whose defaults depend on the number of columns.
WIDE_CLASSES = ["wide", "wide-noisy-20dB"]
WIDE_STRUCTURES = {"sparse", "positive", "group", "mmv"}
#: An operator of the library's own, for the same structures (its columns in closed form).
OPERATOR_CLASSES = ["subsampled-dct", "subsampled-dct-noisy-20dB"]
DEPTHS = (2, 3, 4, 5)
DEPTH_CLASSES = ["under", "over", "noisy-30dB"]


def build(structure: str, input_class: str, seed: int) -> Case:
    """The problem of one input class (see the module docstring)."""
    kind = "over" if input_class.startswith(("over", "inconsistent")) else "under"
    if input_class == "one-measurement":
        kind = "one"
    if input_class.startswith("wide"):
        case = make_case(structure, "wide", seed)
        return add_noise(case, 20.0, seed) if input_class == "wide-noisy-20dB" else case
    if input_class.startswith("subsampled-dct"):
        case = _dct_case(make_case(structure, "under", seed), seed)
        return add_noise(case, 20.0, seed) if input_class.endswith("noisy-20dB") else case
    case = make_case(structure, kind, seed, integer=input_class == "int")
    if input_class.startswith("noisy-"):
        return add_noise(case, float(input_class[6:-2]), seed)
    if input_class.startswith("inconsistent"):
        return add_noise(case, 20.0, seed)
    if input_class.startswith(("A*", "y*")):
        c = float(input_class[2:])
        if input_class[0] == "A":
            case = replace(case, A=case.A * c, matrix=case.matrix * c, truth=case.truth / c)
        else:
            case = replace(case, y=case.y * c, truth=case.truth * c)
        case.meta["scale"] = c
        return case
    if input_class in ("bad-columns", "columns*4"):
        scale = np.ones(case.matrix.shape[1])
        scale[::2] = 1e6 if input_class == "bad-columns" else float(input_class[8:])
        matrix = case.matrix * scale
        A = matrix.reshape(np.shape(case.A))
        truth = case.truth / scale[:, None] if case.structure == "mmv" else \
            (case.truth.ravel() / scale).reshape(case.truth.shape)
        return replace(case, A=A, matrix=matrix, truth=truth)
    if input_class == "float32":
        A32, y32 = np.asarray(case.A, np.float32), np.asarray(case.y, np.float32)
        return replace(case, A=A32, y=y32, matrix=A32.reshape(case.matrix.shape).astype(float))
    if input_class == "sparse":
        return replace(case, A=sp.csr_matrix(case.A)) if np.ndim(case.A) == 2 else \
            replace(case, A=sp.csr_matrix(case.matrix))
    if input_class == "linear-operator":
        return replace(case, A=aslinearoperator(case.matrix))
    if input_class == "zero-A":
        return replace(case, A=np.zeros_like(case.A), matrix=np.zeros_like(case.matrix),
                       consistent=False)
    if input_class == "zero-y":
        return replace(case, y=np.zeros_like(case.y), truth=np.zeros_like(case.truth),
                       support=np.zeros_like(case.support))
    return case


# ---------------------------------------------------------------------------------------------
# The check of one cell
# ---------------------------------------------------------------------------------------------


def _params(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _coef(est, case) -> np.ndarray:
    if case.structure == "mmv":
        return _mmv_coef(est, case)
    return np.asarray(est.coef_, dtype=float).reshape(case.truth.shape)


def _fit(name, case, extra):
    cls = get_method(name)
    contract = CONTRACTS[name]
    kwargs = {**contract.kwargs(case), **extra}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = cls(**kwargs).fit(case.A, case.y)
    return est, [str(w.message) for w in caught]


def _expected_error(name, input_class):
    return CONTRACTS[name].raises.get(input_class)


def check_cell(name: str, input_class: str, seed: int = 0, depth: int | None = None):
    contract = CONTRACTS[name]
    cls = get_method(name)
    case = build(contract.structure, input_class, seed)
    extra = {} if depth is None else {"depth": depth}
    if input_class == "inconsistent-limit" and "early_stopping" in _params(cls):
        extra["early_stopping"] = None
    reason = _expected_error(name, input_class)
    if reason is not None:
        # Declared: a clear ValueError (an answer is accepted too, if it is right).
        try:
            est, caught = _fit(name, case, extra)
        except (ValueError, TypeError) as exc:  # TypeError: scikit-learn's, e.g. sparse input
            assert str(exc) and "\n" not in str(exc).strip(), str(exc)
            return
    else:
        try:
            est, caught = _fit(name, case, extra)
        except ValueError:
            if input_class in ("zero-A", "one-measurement"):
                return  # documented for every method: a clear ValueError
            raise
    coef = _coef(est, case)
    assert np.all(np.isfinite(coef)), "non-finite answer"
    _check_answer(name, contract, input_class, case, est, coef, caught)


def _check_answer(name, contract, input_class, case, est, coef, caught):
    A, y = case.matrix, np.asarray(case.y, dtype=float)
    flat = coef.reshape(-1, case.truth.shape[1]) if case.structure == "mmv" else coef.ravel()
    residual = A @ flat - (y if case.structure == "mmv" else y.ravel())
    ynorm = np.linalg.norm(y)
    if est.stop_reason_ == StopReason.CONVERGED and ynorm > 0 and input_class != "zero-A":
        _check_converged(contract, est, case, flat, residual)
    if input_class == "zero-A":
        assert np.abs(coef).max() <= 1e-12, "A = 0: the answer must be 0"
        assert caught, "A = 0 with y != 0: warn that the system has no solution"
        return
    if input_class == "zero-y":
        assert np.abs(coef).max() <= 1e-6, f"y = 0: the answer must be 0, got {np.abs(coef).max()}"
        return
    if contract.kkt is not None:
        # A fixed penalty: its own optimality conditions, or a warning that they are not met.
        if est.stop_reason_ == StopReason.CONVERGED:
            contract.kkt(est, replace(case, y=y))
        else:
            assert caught, f"stopped ({est.stop_reason_}) short of optimality without a warning"
        return
    if input_class == "columns*4":
        _check_moderate_columns(name, contract, case, coef, residual, ynorm)
        return
    if input_class in ("bad-columns", "one-measurement"):
        if contract.interpolates:
            assert np.linalg.norm(residual) <= 1e-3 * ynorm, \
                f"relative residual {np.linalg.norm(residual) / ynorm:.2e}"
        return
    if input_class == "inconsistent-limit" and "early_stopping" in _params(type(est)) \
            and contract.interpolates:
        ls = least_squares(case)
        assert rel(coef, ls) <= 1e-4, f"limit {rel(coef, ls):.2e} from least squares"
        return
    if case.noisy:
        if contract.noise_factor is not None:
            err, bound, what = noisy_verdict(name, case, coef)
            assert err <= bound, f"error {err:.3g} > {bound:.3g} ({what})"
        elif contract.interpolates and case.consistent:  # an exact program: it interpolates
            assert np.linalg.norm(residual) <= 1e-4 * ynorm, \
                f"relative residual {np.linalg.norm(residual) / ynorm:.2e}"
        return
    if name == "min-norm":
        ls = least_squares(case)  # lstsq gives the minimum-norm solution
        assert rel(coef, ls) <= 1e-4, f"{rel(coef, ls):.2e} from the minimum-norm solution"
        return
    if contract.exact_tol is not None:
        _check_exact(contract, input_class, case, coef)
    elif contract.noise_factor is not None:
        assert rel(coef, case.truth) <= 1e-2, f"clean data: error {rel(coef, case.truth):.2e}"


#: ``columns*4``: methods whose answer does not depend on the scale of each column of ``A``
#: (relative error to the truth allowed). The equilibrating IR estimators solve the
#: standardized problem (docs/scaling.md), which recovers the truth on these problems where
#: the programs on ``A`` as given (l1, l2,1) need not; OMP and M-OMP select by normalized
#: correlation. M-SP prunes by the size of the coefficients, which depends on the scales.
COLUMN_SCALE_FREE = {"hadamard": 1e-4, "group-hadamard": 1e-4, "group-primal-dual": 1e-4,
                     "ir-mmv": 1e-4, "omp": 1e-6, "m-omp": 1e-6}
#: ``columns*4``: exact programs on the data as given, checked against the same program.
COLUMN_SCALED_PROGRAMS = {"basis-pursuit", "positive-basis-pursuit", "nuclear-norm", "min-norm"}


def _check_moderate_columns(name, contract, case, coef, residual, ynorm):
    """A moderate column scaling: fit the data, and give the answer of the method's program."""
    if contract.interpolates:
        assert np.linalg.norm(residual) <= 1e-3 * ynorm, \
            f"relative residual {np.linalg.norm(residual) / ynorm:.2e}"
    if name in COLUMN_SCALE_FREE:
        err, tol, what = rel(coef, case.truth), COLUMN_SCALE_FREE[name], "the truth"
    elif name in COLUMN_SCALED_PROGRAMS:
        ref = least_squares(case) if name == "min-norm" else exact_reference(case)
        err, tol, what = rel(coef, ref), contract.exact_tol or 1e-4, "the program's solution"
    else:
        return
    assert err <= tol, f"{err:.2e} from {what} (tol {tol:.0e})"


def _check_converged(contract, est, case, flat, residual):
    """'Converged' must pass the optimality check of what was solved."""
    A = case.matrix
    if contract.greedy:  # least squares on the selected support
        support = np.any(flat != 0, axis=1) if flat.ndim == 2 else flat != 0
        grad = np.linalg.norm(A[:, support].T @ residual)
    elif contract.interpolates:  # a least-squares point: A^T r = 0
        grad = np.linalg.norm(A.T @ residual)
    else:
        return
    scale = np.linalg.norm(A, 2) * np.linalg.norm(case.y)
    assert grad <= 1e-3 * scale, \
        f"reported converged with ||A^T r|| = {grad / scale:.2e} x ||A|| ||y||"


def _check_exact(contract, input_class, case, coef):
    if input_class == "over":
        ref = case.truth  # the unique solution
    else:
        ref = exact_reference(case)
        if input_class in ("under", "wide"):  # identifiable: the reference is the truth
            assert rel(ref, case.truth) <= 1e-5, "reference does not recover the truth"
    err = rel(coef, ref)
    assert err <= contract.exact_tol, f"{err:.2e} from the exact reference (tol " \
        f"{contract.exact_tol:.0e})"


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_every_method_has_a_contract():
    assert set(available_methods()) == set(CONTRACTS)


#: Cells that fail today, each with its cause: strict xfails, so a fix shows as XPASS and
#: must be removed from here. Issue 13 stays open until this table is empty.
KNOWN_FAILURES = {
}


def _cells():
    def cell(name, input_class, depth):
        label = input_class if depth is None else f"{input_class}-depth{depth}"
        reason = KNOWN_FAILURES.get(name, {}).get(label)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        return pytest.param(name, input_class, depth, id=f"{name}-{label}", marks=marks)

    for name in sorted(CONTRACTS):
        for input_class in BASE_CLASSES:
            yield cell(name, input_class, None)
        if CONTRACTS[name].structure in WIDE_STRUCTURES:
            for input_class in WIDE_CLASSES + OPERATOR_CLASSES:
                yield cell(name, input_class, None)
        if "depth" in _params(get_method(name)):
            for depth in DEPTHS:
                for input_class in DEPTH_CLASSES:
                    yield cell(name, input_class, depth)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "input_class", "depth"), list(_cells()))
def test_contract(name, input_class, depth):
    check_cell(name, input_class, seed=0, depth=depth)


#: Cells of the seed sweep (seeds 1-5) that fail today, each with its measured cause: strict
#: xfails, so a fix shows as XPASS and must be removed from here. All are classical baselines
#: (issue 13 stays open while an IR default is listed).
SWEEP_FAILURES = {
    ("multitask-lasso-cv", "over"): "seed 2: 5-fold CV picks alpha = 1.1e-2 alpha_max on clean "
    "data, error 1.2e-2 (the Lasso's shrinkage; eps=1e-4 fixes it but worsens 30 dB seed 2)",
    ("multitask-lasso-cv", "noisy-10dB"): "seed 2: 2.5x the error of its own best grid penalty",
    ("omp", "noisy-10dB"): "seed 5: 3.2x the oracle, a greedy miss with the true sparsity given",
    ("omp", "inconsistent"): "seed 5: 7.2x the oracle, a greedy miss (every Lasso variant is at "
    "6.7x or more there, the IR default at 1.1x)",
}


def _sweep_cells():
    for name in sorted(CONTRACTS):
        for input_class in ["under", "over", "noisy-10dB", "noisy-30dB", "inconsistent",
                            "y*1e6", "A*1e-6"]:
            reason = SWEEP_FAILURES.get((name, input_class))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(name, input_class, id=f"{name}-{input_class}", marks=marks)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("name", "input_class"), list(_sweep_cells()))
def test_contract_more_seeds(name, input_class):
    for seed in range(1, 6):
        check_cell(name, input_class, seed=seed)


def noisy_ratio(name, input_class, seed, **params):
    """Error over the oracle's on one noisy cell (the method's defaults, or ``params``)."""
    case = build(CONTRACTS[name].structure, input_class, seed)
    est, _ = _fit(name, case, params)
    return rel(_coef(est, case), case.truth) / rel(oracle(case), case.truth)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", sorted(set(NOISY_PEERS) - {"group-primal-dual"}))
@pytest.mark.parametrize("input_class", NOISY_CLASSES)
def test_noisy_median_more_seeds(name, input_class):
    """The statistical promise of the IR defaults under noise: over seeds 0-9, the median
    error is within ``noise_factor`` of the oracle's (per cell, see ``PEER_MARGIN``). The
    baseline group-primal-dual (one held-out split) is not held to it: its medians are 3.20
    (10 dB) and 3.09 (30 dB), as for its peer group-lasso (30 dB, seeds 1-5: 3.12)."""
    ratios = [noisy_ratio(name, input_class, seed) for seed in range(10)]
    assert np.median(ratios) <= CONTRACTS[name].noise_factor, np.round(ratios, 2)


class _StopsAtFirstCheck(get_method("hadamard")):
    """A broken stopping rule: the validated fit, then the refit stopped at the time of the
    first held-out check instead of the chosen one."""

    def _fit_validated(self, operator, y):
        from overparam.stopping import PathControl

        first = float(super()._fit_validated(operator, y).info["validation_curve"][0, 1])
        return self._solve(operator, y, PathControl(stop_time=first))


def test_noisy_contract_rejects_a_stop_at_the_first_check():
    """The per-cell bound under noise fails an estimator whose stopping rule is broken."""
    case = build("sparse", "noisy-10dB", 0)
    coef = _StopsAtFirstCheck().fit(case.A, case.y).coef_
    err, bound, what = noisy_verdict("hadamard", case, coef)
    assert err > bound, (err, bound, what)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_noisy_median_rejects_no_stopping():
    """Running on to the limit (no stopping: the minimum-l1 interpolant of the noise) fails
    the median bound at 10 dB, and a stop at the first check fails every cell."""
    limit = [noisy_ratio("hadamard", "noisy-10dB", seed, early_stopping=None)
             for seed in range(10)]
    assert np.median(limit) > CONTRACTS["hadamard"].noise_factor, np.round(limit, 2)
    for seed in range(10):
        case = build("sparse", "noisy-10dB", seed)
        err, bound, what = noisy_verdict("hadamard", case,
                                         _StopsAtFirstCheck().fit(case.A, case.y).coef_)
        assert err > bound, (seed, err, bound, what)


def test_lasso_warns_when_its_budget_runs_out():
    """scikit-learn's Lasso is silent when its duality-gap test passes at the last iteration
    of the budget; the optimality conditions do not hold there (slow sweep, ``y*1e6``, seed 5),
    so the estimator reports ``max_iter`` with a ConvergenceWarning."""
    from sklearn.exceptions import ConvergenceWarning

    case = build("sparse", "y*1e6", 5)
    with pytest.warns(ConvergenceWarning, match="whole budget"):
        est = get_method("lasso")(max_iter=2000).fit(case.A, case.y)
    assert est.stop_reason_ == StopReason.MAX_ITER
