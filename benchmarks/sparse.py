"""Sparse recovery at N = 1000, M = 150, s = 15: time and error of every solver, side by side.

Methods: basis pursuit (HiGHS LP), LassoCV, OMP (given the true s), gradient descent on the
deep Hadamard factorization with the flow-keeping adaptive step (b), the exact gradient flow
through its dual ODE (c) and the flow's limit by Newton on the dual (d). Every method runs in
this one process on the same problem; times are medians over ``--repeats`` runs (GD: one run,
it takes minutes). BLAS is limited to ``--threads`` threads (default 1) so that timings on a
shared machine are not dominated by thread oversubscription.

Goals (issue 3): (d) faster than BP-LP; (c) >= 100x faster than (b) at equal accuracy (both
stop at the same relative residual).

Run: ``python benchmarks/sparse.py [--depth 2] [--alpha 1e-6] [--repeats 5] [--skip-gd]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from threadpoolctl import threadpool_limits

from overparam.baselines import BasisPursuit, LassoCVRegressor, OMPRegressor
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.metrics import relative_error


def _time(make, A, y, repeats):
    times, est = [], None
    for _ in range(repeats):
        est = make()
        start = time.perf_counter()
        est.fit(A, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), est


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--m", type=int, default=150)
    parser.add_argument("--s", type=int, default=15)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=1e-6)
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="relative residual at which GD (b) and the flow (c) stop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-gd", action="store_true", help="leave out GD (b) (minutes)")
    args = parser.parse_args(argv)

    p = make_sparse_problem(args.m, args.n, args.s, random_state=args.seed)
    ir = {"depth": args.depth, "init_scale": args.alpha, "tol": args.tol,
          "max_iter": 10**8, "early_stopping": None}
    methods = {
        "BP-LP (HiGHS)": (lambda: BasisPursuit(), args.repeats),
        "LassoCV": (lambda: LassoCVRegressor(random_state=0), args.repeats),
        "OMP (true s)": (lambda: OMPRegressor(n_nonzero_coefs=args.s), args.repeats),
        "(b) GD, flow step": (lambda: HadamardRegressor(solver="gd", **ir), 1),
        "(c) dual ODE (BDF)": (lambda: HadamardRegressor(solver="flow", **ir), args.repeats),
        "(d) dual Newton": (lambda: HadamardRegressor(solver="newton", **{**ir, "tol": 1e-10}),
                            args.repeats),
    }
    if args.skip_gd:
        methods.pop("(b) GD, flow step")
    results = {}
    with threadpool_limits(args.threads):
        for name, (make, repeats) in methods.items():
            results[name] = _time(make, p.operator, p.y, repeats)
            print(f"  ran {name}: {results[name][0]:.4g} s", flush=True)
    limit = results["(d) dual Newton"][1].coef_
    t_bp = results["BP-LP (HiGHS)"][0]
    print(f"\nN={args.n}, M={args.m}, s={args.s}, depth L={args.depth}, alpha={args.alpha:g}, "
          f"BLAS threads={args.threads}, repeats={args.repeats} (median)")
    print(f"{'method':22s} {'time (s)':>10s} {'/ BP-LP':>9s} {'rel. error':>11s} "
          f"{'vs flow limit':>14s} {'iterations':>11s}")
    for name, (t, est) in results.items():
        print(f"{name:22s} {t:10.4g} {t / t_bp:9.3g} {relative_error(est.coef_, p.truth):11.3e} "
              f"{relative_error(est.coef_, limit):14.3e} {est.n_iter_:11d}")
    t_newton = results["(d) dual Newton"][0]
    print(f"\n(d) Newton vs BP-LP: {t_bp / t_newton:.3g}x faster (goal: > 1)")
    if "(b) GD, flow step" in results:
        t_gd, t_flow = results["(b) GD, flow step"][0], results["(c) dual ODE (BDF)"][0]
        print(f"(c) dual ODE vs (b) GD: {t_gd / t_flow:.3g}x faster (goal: >= 100), errors vs "
              f"flow limit {relative_error(results['(c) dual ODE (BDF)'][1].coef_, limit):.1e} "
              f"and {relative_error(results['(b) GD, flow step'][1].coef_, limit):.1e}")
    return results


if __name__ == "__main__":
    main()
