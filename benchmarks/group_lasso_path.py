"""The group-lasso CV path: skglm's solver called directly against ``GroupLasso.fit`` per alpha.

``GroupLassoRegressor`` cross-validates its penalty on a warm-started path of ``n_alphas``
values per fold. This times, side by side in one process on the same folds and grid (the
group-snr experiment's problem: Gaussian X, n = 150, p = 300, groups of 4, 5 folds, 30
alphas), the path of :func:`overparam.baselines.group.group_lasso_path` (datafit, penalty and
solver made once per path) against the same path through ``skglm.GroupLasso.fit`` at each
alpha (how the baseline solved it before), and checks that the two paths agree.

Run: ``OMP_NUM_THREADS=1 python benchmarks/group_lasso_path.py [--snr 5 20] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from overparam.baselines.group import (
    GroupLassoRegressor,
    _index_lists,
    group_lasso_alpha_max,
    group_lasso_path,
    group_weights,
)
from overparam.datasets import make_group_sparse_problem
from overparam.parameterizations.group import as_group_labels


def estimator_path(X, y, groups, alphas, tol=1e-6):
    """One ``skglm.GroupLasso.fit`` per alpha, warm-started (the path before the change)."""
    from skglm import GroupLasso

    labels = as_group_labels(groups, X.shape[1])
    c = group_weights(labels, "sqrt")
    top = group_lasso_alpha_max(X, y, labels, c)
    model = GroupLasso(groups=_index_lists(labels), alpha=float(alphas[0]), weights=c,
                       fit_intercept=False, warm_start=True, tol=tol * top, max_iter=100)
    out = np.zeros((len(alphas), X.shape[1]))
    for k in np.argsort(-np.asarray(alphas)):
        model.alpha = float(alphas[k])
        model.fit(X, y)
        out[k] = model.coef_
    return out


def cv_paths(path, X, y, alphas):
    folds = KFold(5, shuffle=True, random_state=0).split(X)
    return [path(X[tr], y[tr], 4, alphas) for tr, _ in folds]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| SNR dB | GroupLasso.fit per alpha (CPU s) | direct path (CPU s) | ratio | "
          "max |difference| |")
    print("|---|---|---|---|---|")
    with threadpool_limits(1, "blas"):
        for snr in args.snr:
            pb = make_group_sparse_problem(150, 300, group_size=4, n_active_groups=3,
                                           n_nonzero=10, design="gaussian", snr=snr,
                                           random_state=0)
            X, y = np.asarray(pb.operator), pb.y
            alphas = GroupLassoRegressor(groups=4).alpha_grid(X, y)
            cv_paths(group_lasso_path, X, y, alphas[:2])  # numba compiles outside the timing
            cv_paths(estimator_path, X, y, alphas[:2])
            times = {"old": [], "new": []}
            for _ in range(args.repeats):  # alternate, so that load hits both alike
                for name, path in (("old", estimator_path), ("new", group_lasso_path)):
                    start = time.process_time()
                    out = cv_paths(path, X, y, alphas)
                    times[name].append(time.process_time() - start)
                    if name == "old":
                        ref = out
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, out, strict=True))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"| {snr:g} | {old:.3f} | {new:.3f} | {old / new:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
