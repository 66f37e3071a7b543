"""IR-MMV: one batched solve of B problems against B single solves, side by side.

Setting of the paper's section 6.3 (M=50, N=25, L=100, K=3, 40 dB) and the underdetermined
M=25, N=50. Every solve runs a fixed number of iterations (no early stop) so that both sides do
the same work; the script prints medians over repeats and the ratios measured in this run. Also
the BLAS-thread effect (one thread against the library default, at the digits experiment's
size) and the fit times of the baselines on one problem.

Run: ``.venv/bin/python benchmarks/mmv.py [--repeats 5] [--batch 20] [--iters 2000]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from overparam.baselines.mmv import MultiTaskLassoCVRegressor, m_focuss, m_sp, somp
from overparam.datasets import make_mmv_batch
from overparam.solvers import ir_mmv
from overparam.stopping import StoppingRule


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(repeats: int, batch: int, iters: int) -> None:
    rule = StoppingRule(max_iter=iters, tol=0, stagnation_tol=0)
    for M, N in ((50, 25), (25, 50)):
        prob = make_mmv_batch(batch, M, N, 100, 3, snr=40, random_state=0)
        batched = _median_time(lambda p=prob: ir_mmv(p.operator, p.y, stopping=rule), repeats)
        looped = _median_time(lambda p=prob: [ir_mmv(p.operator[b], p.y[b], stopping=rule)
                                              for b in range(batch)], repeats)
        print(f"M={M}, N={N}, L=100, B={batch}, {iters} iterations each (median of {repeats})")
        print(f"  batched: {batched:.3f} s   loop of single solves: {looped:.3f} s   "
              f"ratio loop/batched: {looped / batched:.2f}")
        _baselines(prob.operator[0], prob.y[0], float(np.var(prob.noise[0])), repeats)
    # BLAS threads on the digits experiment's size (M=84, N=64, L=100)
    prob = make_mmv_batch(1, 84, 64, 100, 10, snr=40, random_state=0)
    default = _median_time(lambda: ir_mmv(prob.operator[0], prob.y[0], stopping=rule,
                                          blas_threads=None), repeats)
    one = _median_time(lambda: ir_mmv(prob.operator[0], prob.y[0], stopping=rule), repeats)
    print(f"M=84, N=64, L=100, {iters} iterations: BLAS default threads {default:.3f} s, "
          f"one thread {one:.3f} s, ratio default/one: {default / one:.2f}")


def _baselines(A, Y, sigma2, repeats):
    for name, fn in (("M-OMP", lambda: somp(A, Y, 3)), ("M-SP", lambda: m_sp(A, Y, 3)),
                     ("M-FOCUSS", lambda: m_focuss(A, Y, lam=sigma2)),
                     ("MultiTaskLassoCV",
                      lambda: MultiTaskLassoCVRegressor(random_state=0).fit(A, Y))):
        print(f"  {name}: {_median_time(fn, repeats):.4f} s per problem")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--iters", type=int, default=2000)
    args = parser.parse_args()
    main(args.repeats, args.batch, args.iters)
