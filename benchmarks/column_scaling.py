"""Badly scaled columns: the defaults with and without column equilibration.

The contract test's problems (tests/test_contract.py, ``under``: sparse 30x80 s=3, group
30x60 in groups of 3 with 2 active, MMV 15x30 with 2 rows and L=4) with every other column of
``A`` multiplied by ``f`` (the ``bad-columns`` input class is ``f = 1e6``) and the same
measurements ``y``. For each default estimator it prints, over the seeds, the median and the
worst relative residual ``||A x - y|| / ||y||`` and error ``||x - x_true|| / ||x_true||``, with
equilibration off (``column_spread_limit = inf``: the data as given) and on (the default:
columns equilibrated when their norms spread over more than 16).

Usage::

    python benchmarks/column_scaling.py                       # 4 seeds, f in 1 4 16 1e3 1e6
    python benchmarks/column_scaling.py --seeds 2 --factors 1 1e6 --methods hadamard
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_contract as contract
from overparam.methods import get_method

METHODS = ("hadamard", "group-hadamard", "group-primal-dual", "ir-mmv")


def bad_columns(case, factor: float):
    scale = np.ones(case.matrix.shape[1])
    scale[::2] = factor
    truth = case.truth / (scale[:, None] if case.structure == "mmv" else scale)
    return replace(case, A=case.matrix * scale, matrix=case.matrix * scale, truth=truth)


def one_fit(name: str, case, equilibrate: bool) -> tuple[float, float, float]:
    est = get_method(name)(**contract.CONTRACTS[name].kwargs(case))
    if not equilibrate:
        est.column_spread_limit = np.inf
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(case.A, case.y)
    elapsed = time.perf_counter() - start
    coef = contract._coef(est, case)
    flat = coef if case.structure == "mmv" else coef.ravel()
    y = np.asarray(case.y, dtype=float)
    residual = np.linalg.norm(case.matrix @ flat - y) / np.linalg.norm(y)
    return float(residual), contract.rel(coef, case.truth), elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 4, 16, 1e3, 1e6])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    args = parser.parse_args(argv)
    print(f"{'method':18s} {'f':>6s}  {'as given: res med/max':>22s} {'err max':>8s}  "
          f"{'equilibrated: res med/max':>26s} {'err max':>8s}  {'time ratio':>10s}")
    for name in args.methods:
        structure = contract.CONTRACTS[name].structure
        for factor in args.factors:
            rows = {True: [], False: []}
            for seed in range(args.seeds):
                case = bad_columns(contract.make_case(structure, "under", seed), factor)
                for equilibrate in (False, True):
                    rows[equilibrate].append(one_fit(name, case, equilibrate))
            off, on = np.array(rows[False]), np.array(rows[True])
            print(f"{name:18s} {factor:6g}  {np.median(off[:, 0]):10.1e}/{off[:, 0].max():8.1e} "
                  f"{off[:, 1].max():10.1e}  {np.median(on[:, 0]):12.1e}/{on[:, 0].max():8.1e}"
                  f"{on[:, 1].max():13.1e}  {on[:, 2].sum() / off[:, 2].sum():10.2f}",
                  flush=True)


if __name__ == "__main__":
    with threadpool_limits(1):
        main()
