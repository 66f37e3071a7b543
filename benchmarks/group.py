"""Group sparsity: fit times of IR-group, group lasso (CV) and primal-dual, side by side.

Setting of the paper's Fig. 12 (Gaussian X, n=150, p=300, 10 non-zeros in 3 groups of 4,
SNR 20 dB). Every method uses its automatic tuning (held-out validation or 5-fold CV). Also
the cost of one Algorithm-2 iteration relative to one plain gradient-descent iteration (two
products with X and two with X^T against one and one). Prints medians over repeats and the
ratios measured in this run.

Run: ``.venv/bin/python benchmarks/group.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from overparam.baselines import GroupLassoRegressor, GroupPrimalDualRegressor
from overparam.datasets import make_group_sparse_problem
from overparam.estimators import GroupHadamardRegressor
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.parameterizations import GroupHadamard
from overparam.solvers import gradient_descent, weight_normalized_gd
from overparam.stopping import StoppingRule


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(repeats: int) -> None:
    methods = {
        "IR-group alg2 (validation)": lambda: GroupHadamardRegressor(
            groups=4, early_stopping="validation", random_state=0),
        "group lasso (5-fold CV, 30 alphas)": lambda: GroupLassoRegressor(groups=4,
                                                                          random_state=0),
        "primal-dual (validation)": lambda: GroupPrimalDualRegressor(groups=4, random_state=0),
    }
    warm = make_group_sparse_problem(60, 120, group_size=4, random_state=0)
    GroupLassoRegressor(groups=4, alpha=0.1).fit(warm.operator, warm.y)  # numba compilation, once
    times = {name: [] for name in methods}
    errors = {name: [] for name in methods}
    for r in range(repeats):
        pb = make_group_sparse_problem(150, 300, group_size=4, n_active_groups=3,
                                       n_nonzero=10, design="gaussian", snr=20.0,
                                       random_state=r)
        for name, make in methods.items():
            dt, est = _timed(lambda make=make, pb=pb: make().fit(pb.operator, pb.y))
            times[name].append(dt)
            errors[name].append(relative_error(est.coef_, pb.truth))
    base = np.median(times["IR-group alg2 (validation)"])
    print(f"fit time, median of {repeats} problems (Fig. 12 setting, 20 dB):")
    for name in methods:
        t = np.median(times[name])
        print(f"  {name:38s} {t:8.3f} s  ({t / base:5.2f} x IR-group)   "
              f"median error {np.median(errors[name]):.4f}")

    pb = make_group_sparse_problem(150, 300, group_size=4, n_active_groups=3, n_nonzero=10,
                                   design="gaussian", snr=20.0, random_state=0)
    param, op = GroupHadamard(pb.meta["groups"]), as_operator(pb.operator)

    def run(solver, n_iter):
        rule = StoppingRule(max_iter=n_iter, tol=0, stagnation_tol=0)
        if solver == "alg2":
            return _timed(lambda: weight_normalized_gd(param, op, pb.y, stopping=rule))[0]
        return _timed(lambda: gradient_descent(param, op, pb.y, init_scale=1e-3, step=1e-3,
                                               loss_weight=1 / 150, stopping=rule))[0]

    # per-iteration cost = (time of 4000 - time of 2000 iterations) / 2000: setup excluded
    # (gradient_descent estimates ||X|| once with ARPACK for its first step guess).
    per_iter = {}
    for solver in ("alg2", "gd"):
        diffs = [run(solver, 4000) - run(solver, 2000) for _ in range(repeats)]
        per_iter[solver] = np.median(diffs) / 2000 * 1e6
    print(f"per iteration: Algorithm 2 {per_iter['alg2']:.1f} us, plain GD (constant step) "
          f"{per_iter['gd']:.1f} us, ratio {per_iter['alg2'] / per_iter['gd']:.2f}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
