"""Matrix sensing: cost of the streamed Gaussian operator, and factorized GD vs nuclear norm.

1. ``GaussianSensingOperator`` regenerating its sensing matrices on every use (``store=False``)
   against the same operator with its stack stored: median time of one forward + adjoint,
   their ratio, and the peak memory of each (``tracemalloc``).
2. ``FactorizedRegressor`` (defaults: adaptive step, eps = 1e-3, width max(n1, n2)) against
   nuclear-norm minimization (cvxpy) on noiseless Gaussian sensing of a rank-2 matrix: median
   wall time, median relative error, and the time ratio, per size.

All numbers of a table come from one run on one machine. BLAS is limited to one thread
(small matrices; threaded BLAS on a shared machine is slower).

Run: ``.venv/bin/python benchmarks/matrix_sensing.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.baselines.low_rank import nuclear_norm_minimization
from overparam.datasets import make_low_rank_problem
from overparam.estimators import FactorizedRegressor
from overparam.metrics import relative_error
from overparam.operators import GaussianSensingOperator


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _measure_operator(m, shape, store, X, repeats):
    """(median seconds of forward + adjoint, peak bytes of building and applying once)."""
    tracemalloc.start()
    try:
        op = GaussianSensingOperator(m, shape, random_state=1, store=store)
        op.adjoint(op.forward(X))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return _median_time(lambda: op.adjoint(op.forward(X)), repeats), peak


def operator_table(repeats):
    print("1. Gaussian operator, one forward + one adjoint (median of", repeats, "runs)")
    print(f"{'m':>8} {'shape':>9} {'stack MB':>9} {'stored s':>9} {'streamed s':>11} "
          f"{'ratio':>6} {'stored peak MB':>15} {'streamed peak MB':>17}")
    for m, shape in ((5_000, (20, 20)), (20_000, (20, 20)), (20_000, (40, 40))):
        X = np.random.default_rng(0).standard_normal(shape)
        t_st, p_st = _measure_operator(m, shape, True, X, repeats)
        t_sm, p_sm = _measure_operator(m, shape, False, X, repeats)
        mb = 8 * m * shape[0] * shape[1] / 2**20
        print(f"{m:>8} {shape!s:>9} {mb:>9.0f} {t_st:>9.4f} {t_sm:>11.4f} "
              f"{t_sm / t_st:>6.1f} {p_st / 2**20:>15.1f} {p_sm / 2**20:>17.1f}")


def estimator_table(repeats):
    print("\n2. Noiseless recovery, rank 2, Gaussian measurements (medians over", repeats,
          "problems)")
    print(f"{'shape':>9} {'m':>5} {'GD s':>7} {'GD err':>9} {'NN s':>7} {'NN err':>9} "
          f"{'NN/GD time':>11}")
    for shape, m in (((10, 10), 80), ((20, 20), 240), ((30, 30), 450)):
        rows = []
        for seed in range(repeats):
            pb = make_low_rank_problem(shape, 2, m, random_state=seed)
            start = time.perf_counter()
            est = FactorizedRegressor(random_state=seed, early_stopping=None).fit(pb.operator,
                                                                                  pb.y)
            t_gd = time.perf_counter() - start
            start = time.perf_counter()
            X = nuclear_norm_minimization(pb.operator, pb.y)
            t_nn = time.perf_counter() - start
            rows.append((t_gd, relative_error(est.coef_, pb.truth), t_nn,
                         relative_error(X, pb.truth), t_nn / t_gd))
        med = np.median(np.asarray(rows), axis=0)
        print(f"{shape!s:>9} {m:>5} {med[0]:>7.3f} {med[1]:>9.2e} {med[2]:>7.3f} "
              f"{med[3]:>9.2e} {med[4]:>11.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):
        operator_table(args.repeats)
        estimator_table(args.repeats)


if __name__ == "__main__":
    main()
