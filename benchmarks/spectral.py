"""Spectral neural networks: the aligned solvers against the general one, side by side.

On the paper's aligned setting (n = 10, m = 50, K = 2, tanh, the paper's init, Fig. 2) this
measures, in one process on the same problem:

1. per-iteration time of gradient descent on the diagonals (``aligned_spectral_gd``, Theorem 1)
   against the general network (``spectral_gd``, SVD-based gradient) from the same spectral
   init, with the same constant step (their iterates agree to rounding: checked here too);
2. the time to reach the flow's limit (relative distance 1e-6 to the least-squares diagonal):
   the stiff ODE solver (``aligned_spectral_flow``, LSODA) against gradient descent with the
   safe adaptive step (``aligned_spectral_gd``), capped at ``--max-gd-iter`` iterations.

Times are medians over ``--repeats`` runs; BLAS is limited to ``--threads`` threads.

Run: ``python benchmarks/spectral.py [--n 10] [--iterations 2000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.stats import ortho_group
from threadpoolctl import threadpool_limits

from overparam.datasets import make_aligned_problem
from overparam.parameterizations import AlignedSpectralNetwork, SpectralNetwork
from overparam.solvers import (
    ConstantStep,
    aligned_spectral_flow,
    aligned_spectral_gd,
    spectral_gd,
)
from overparam.stopping import StoppingRule


def _median_time(run, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--m", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--step", type=float, default=1e-3)
    parser.add_argument("--max-gd-iter", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    with threadpool_limits(limits=args.threads, user_api="blas"):
        p = make_aligned_problem(args.n, args.n, rank=max(1, 6 * args.n // 10),
                                 n_measurements=args.m, basis="truth", random_state=args.seed)
        op, y = p.operator, p.y
        init = AlignedSpectralNetwork(op.rank, 2).paper_init(np.random.default_rng(1))
        net = SpectralNetwork(args.n, args.n, 2)
        full_init = net.spectral_init(op.left, op.right, init[1], init[2], init[0],
                                      rotation=ortho_group.rvs(net.width, random_state=2))
        rule = StoppingRule(max_iter=args.iterations, tol=0.0, stagnation_tol=0.0)
        t_diag, diag = _median_time(lambda: aligned_spectral_gd(
            op, y, init=init, step=ConstantStep(args.step), stopping=rule), args.repeats)
        t_full, full = _median_time(lambda: spectral_gd(
            op, y, init_params=full_init, step=ConstantStep(args.step), stopping=rule),
            max(1, args.repeats // 2))
        agree = np.linalg.norm(diag.coef - full.coef) / np.linalg.norm(diag.coef)
        print(f"1. {args.iterations} GD iterations, n = {args.n}, m = {args.m}, K = 2 "
              f"(iterates agree to {agree:.1e})")
        print(f"   aligned (diagonals) {t_diag:8.3f} s   general (SVD) {t_full:8.3f} s   "
              f"ratio general/aligned {t_full / t_diag:6.1f}x")

        s_ls = np.linalg.lstsq(op.diagonal_operator().matrix, y, rcond=None)[0]

        def gap(result):
            return np.linalg.norm(result.info["diagonal"] - s_ls) / np.linalg.norm(s_ls)

        t_flow, flow = _median_time(lambda: aligned_spectral_flow(
            op, y, init=init, t_max=1e5 * args.m, n_points=2), args.repeats)
        target = 1e-6

        def gd_to_target():
            return aligned_spectral_gd(op, y, init=init, stopping=StoppingRule(
                max_iter=args.max_gd_iter, tol=0.0, stagnation_tol=0.0),
                callback=lambda it, params, s: it % 100 == 0 and np.linalg.norm(
                    s - s_ls) <= target * np.linalg.norm(s_ls))

        t_gd, gd = _median_time(gd_to_target, 1)
        print(f"2. flow limit (distance to the least-squares diagonal <= {target:g})")
        print(f"   ODE (LSODA) {t_flow:8.3f} s, {flow.n_iter} evaluations, gap {gap(flow):.1e}")
        print(f"   adaptive GD {t_gd:8.3f} s, {gd.n_iter} iterations ({gd.stop_reason}), "
              f"gap {gap(gd):.1e}")
        print(f"   ratio GD/ODE {t_gd / t_flow:6.1f}x"
              + ("" if gap(gd) <= target else "  (GD did not reach the target: a lower bound)"))


if __name__ == "__main__":
    main()
