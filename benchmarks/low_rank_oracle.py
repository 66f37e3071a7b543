"""Low rank under noise as n grows: the default's stop vs the best stop, and the convex error.

Same problems as ``scale_structures.py``'s low-rank section (``n x n`` of rank 2, ``m = 8 n``
Gaussian measurements, 20 dB): the default ``FactorizedRegressor()``'s relative error next to
the error at the oracle stopping time (the best point of its path, from the truth) and, with
``--nuclear``, nuclear-norm minimization bounded by the true noise norm (cvxpy) and the
factorization of the true rank (``width = 2``) run to its limit. Answers whether a poor error
at large ``n`` is the default stopping short or the measurements being too few for the bias.

Run: ``python benchmarks/low_rank_oracle.py [--sizes 40 80] [--seeds 0 1 2] [--nuclear]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.datasets.low_rank import make_low_rank_problem
from overparam.estimators import FactorizedRegressor
from overparam.stopping import Oracle


def _error(estimate, truth) -> float:
    return float(np.linalg.norm(np.reshape(estimate, truth.shape) - truth)
                 / np.linalg.norm(truth))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 80])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nuclear", action="store_true")
    args = parser.parse_args(argv)
    for n in args.sizes:
        m = 8 * n
        for seed in args.seeds:
            p = make_low_rank_problem((n, n), 2, m, noise_std=0.1 / np.sqrt(m),
                                      random_state=seed)
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                default = FactorizedRegressor(random_state=seed).fit(p.operator, p.y)
                best = FactorizedRegressor(random_state=seed, early_stopping=Oracle(p.truth))
                best.fit(p.operator, p.y)
                line = (f"n={n:4d} seed={seed}: default {_error(default.coef_, p.truth):.3g} "
                        f"({default.stop_reason_}), oracle stop {_error(best.coef_, p.truth):.3g}")
                if args.nuclear:
                    from overparam.baselines import NuclearNormRegressor

                    bound = float(np.linalg.norm(p.operator.forward(p.truth) - p.y))
                    nuclear = NuclearNormRegressor(noise_bound=bound).fit(p.operator, p.y)
                    rank2 = FactorizedRegressor(random_state=seed, early_stopping=None,
                                                width=2).fit(p.operator, p.y)
                    line += (f", nuclear norm {_error(nuclear.coef_, p.truth):.3g}, "
                             f"width 2 {_error(rank2.coef_, p.truth):.3g}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
