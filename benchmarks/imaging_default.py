"""The imaging example's default IR estimator next to its Lasso peer, timed side by side.

``HadamardRegressor()`` (the library default: 5-fold validated stopping time, matrix-free on
the operator) and/or its limit (``early_stopping=None``), and the validated PyLops-FISTA Lasso
of the ``imaging-dct`` experiment, on that experiment's problem (``_problem(side, None,
seed)``: the china.jpg crop, M = N/4 random rows of a randomized DCT, exact measurements).
Prints PSNR and CPU time (``time.process_time``, one BLAS thread) of each.

Run: ``python benchmarks/imaging_default.py --side 256 --seed 15 --methods lasso default``
(docs/imaging.md quotes it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.estimators import HadamardRegressor
from overparam.experiments.papers.imaging import (
    LASSO_RATIOS,
    _problem,
    _to_image,
    _validated_lasso,
)
from overparam.metrics import psnr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--methods", nargs="+", default=["lasso", "limit", "default"],
                        choices=["lasso", "limit", "default"])
    args = parser.parse_args(argv)
    side = args.side
    op, y, image, _, _ = _problem(side, None, args.seed)

    def score(coef):
        return psnr(_to_image(coef, side), image, data_range=1.0)

    with threadpool_limits(limits=1, user_api="blas"):
        for name in args.methods:
            if name == "lasso":
                lasso = _validated_lasso(op, y, score, np.random.default_rng(args.seed + 1))
                print(f"{side}x{side} Lasso (validated): PSNR "
                      f"{score(lasso['fits'][lasso['chosen']]):.2f} dB, r = "
                      f"{LASSO_RATIOS[lasso['chosen']]:.1e}, CPU {lasso['seconds']:.1f} s; "
                      f"oracle r: {score(lasso['fits'][lasso['oracle']]):.2f} dB", flush=True)
                continue
            est = HadamardRegressor() if name == "default" else \
                HadamardRegressor(early_stopping=None)
            start = time.process_time()
            est.fit(op, y)
            seconds = time.process_time() - start
            print(f"{side}x{side} IR {name}: PSNR {score(est.coef_):.2f} dB, CPU {seconds:.1f} s,"
                  f" solver {est.result_.info.get('solver')}, n_iter {est.n_iter_}, stop "
                  f"{est.stop_reason_}", flush=True)


if __name__ == "__main__":
    main()
