"""Sparse recovery at scale: the Hadamard limit next to its convex peers, N = 10^3 to 10^5.

Noiseless Gaussian problems ``A / sqrt(M)``, ``M = N / 5``, ``s = M / 10`` (dense sizes), and
a matrix-free subsampled orthonormal DCT (``overparam.operators.SubsampledDCT``,
``A A^T = I``) at the operator size.
Methods, side by side in this one process on the same problem:

- the Hadamard limit at depth 2 and 3 (``HadamardRegressor(early_stopping=None)``: dense
  Newton for small matrices and depth 3, matrix-free Newton-CG from
  ``overparam.solvers.krylov_newton.MATRIX_FREE_ENTRIES`` on, at depth 2);
- skglm's Lasso with a tiny penalty (``alpha = 1e-4 alpha_max``);
- OMP given the true sparsity (scikit-learn);
- basis pursuit as an LP (HiGHS; up to ``--bp-max`` unknowns).

CPU time (``time.process_time``, one BLAS thread via threadpoolctl; median of ``--repeats``)
and relative error to the truth; then the growth exponent of each method's time over the
dense sizes (least-squares slope of log time against log N).

Run: ``python benchmarks/scale.py [--sizes 1000 3000 10000] [--operator-size 100000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.baselines import BasisPursuit, OMPRegressor
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.operators import SubsampledDCT


class SkglmLasso:
    """skglm's Lasso with ``alpha = ratio * alpha_max`` (no intercept), fit on a matrix."""

    def __init__(self, ratio=1e-4):
        self.ratio = ratio

    def fit(self, A, y):
        from skglm import Lasso

        alpha = self.ratio * np.max(np.abs(A.T @ y)) / A.shape[0]
        self.coef_ = Lasso(alpha=alpha, fit_intercept=False, tol=1e-10,
                           max_iter=1000).fit(A, y).coef_
        return self


def _methods(n, bp_max, operator):
    out = {
        "Hadamard L=2": lambda s: HadamardRegressor(depth=2, early_stopping=None),
        "Hadamard L=3": lambda s: HadamardRegressor(depth=3, early_stopping=None),
        "skglm Lasso": lambda s: SkglmLasso(),
        "OMP (true s)": lambda s: OMPRegressor(n_nonzero_coefs=s),
        "BP-LP (HiGHS)": lambda s: BasisPursuit(),
    }
    if operator:  # matrix-free: the IR limit at depth 2 only (the others need the matrix)
        return {"Hadamard L=2": out["Hadamard L=2"]}
    if n > bp_max:
        del out["BP-LP (HiGHS)"]
    return out


def _dct_problem(n, seed):
    """A subsampled orthonormal DCT (M = n/5 rows, matrix-free) and an s-sparse x."""
    rng = np.random.default_rng(seed)
    m, s = n // 5, n // 50
    op = SubsampledDCT(n, np.sort(rng.choice(n, m, replace=False)))
    x = np.zeros(n)
    x[rng.choice(n, s, replace=False)] = rng.standard_normal(s)
    return op, op.forward(x), x, s


def _run(make, A, y, x, s, repeats):
    times, err, note = [], np.nan, ""
    for _ in range(repeats):
        est = make(s)
        start = time.process_time()
        try:
            est.fit(A, y)
        except Exception as exc:  # a failed method is reported, not fatal
            return np.nan, np.nan, f"{type(exc).__name__}: {str(exc)[:60]}"
        times.append(time.process_time() - start)
        err = float(np.linalg.norm(est.coef_ - x) / np.linalg.norm(x))
        info = getattr(getattr(est, "result_", None), "info", {})
        note = info.get("solver", "")
    return statistics.median(times), err, note


def _exponent(sizes, times):
    ok = [(n, t) for n, t in zip(sizes, times, strict=True) if np.isfinite(t) and t > 0]
    if len(ok) < 2:
        return np.nan
    logs = np.log(np.asarray(ok, dtype=float))
    return float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--operator-size", type=int, default=100_000,
                        help="N of the matrix-free DCT problem (0: skip)")
    parser.add_argument("--bp-max", type=int, default=3000, help="largest N for BP-LP")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows = {}
    SkglmLasso().fit(np.eye(3), np.ones(3))  # numba compiles skglm's solver once: not timed
    print(f"{'N':>7} {'method':15} {'CPU s':>9} {'rel. error':>11}  solver")
    with threadpool_limits(limits=1, user_api="blas"):
        for n in args.sizes:
            m, s = n // 5, n // 50
            p = make_sparse_problem(m, n, s, random_state=args.seed)
            for name, make in _methods(n, args.bp_max, operator=False).items():
                t, err, note = _run(make, p.A, p.y, p.x, s, args.repeats)
                rows.setdefault(name, {})[n] = t
                print(f"{n:>7} {name:15} {t:9.3f} {err:11.2e}  {note}", flush=True)
        if args.operator_size:
            n = args.operator_size
            op, y, x, s = _dct_problem(n, args.seed)
            for name, make in _methods(n, args.bp_max, operator=True).items():
                t, err, note = _run(make, op, y, x, s, 1)
                print(f"{n:>7} {name:15} {t:9.3f} {err:11.2e}  {note} (DCT operator)",
                      flush=True)
    print("\ngrowth exponent of CPU time in N (dense sizes):")
    for name, by_n in rows.items():
        sizes = sorted(by_n)
        print(f"  {name:15} N^{_exponent(sizes, [by_n[k] for k in sizes]):.2f}")


if __name__ == "__main__":
    main()
