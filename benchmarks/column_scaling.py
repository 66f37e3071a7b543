"""Badly scaled columns: the defaults with and without column equilibration.

The contract test's problems (tests/test_contract.py, ``under``: sparse 30x80 s=3, group
30x60 in groups of 3 with 2 active, MMV 15x30 with 2 rows and L=4) with the columns of ``A``
rescaled and the same measurements ``y`` (the truth is rescaled inversely):

- a number ``c``: every other column times ``c`` (the ``columns*4`` contract class is
  ``c = 4``, ``bad-columns`` is ``c = 1e6``);
- ``lu<c>``: every column times ``c ** u``, ``u`` uniform on [0, 1] (seeded): a random
  log-uniform scaling of spread up to ``c``.

For each default estimator it prints, over the seeds, the median and the worst relative
residual ``||A x - y|| / ||y||`` and the worst error ``||x - x_true|| / ||x_true||``, with the
data as given (``column_spread_limit = inf``) and with the default (which equilibrates), and
the ratio of their CPU times. ``ref`` columns: the worst error to the truth of the exact
convex reference on the scaled data as given (``min ||x||_1`` / ``sum_g ||x_g||`` / row norms
of ``A S``) and of the standardized reference (the same program on unit-norm columns,
mapped back: what the equilibrated flow approximates), with ``--references`` (cvxpy).

Usage::

    python benchmarks/column_scaling.py                        # 4 seeds, the default scalings
    python benchmarks/column_scaling.py --seeds 2 --scalings 1 4 lu16 --methods hadamard
    python benchmarks/column_scaling.py --references           # also the convex references
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
SCALINGS = ("1", "1.5", "2", "3", "4", "5", "8", "12", "16", "1e3", "1e6", "lu4", "lu16")


def column_scales(n: int, scaling: str, seed: int) -> np.ndarray:
    """The column factors of one scaling (see the module docstring)."""
    if scaling.startswith("lu"):
        return float(scaling[2:]) ** np.random.default_rng([seed, 7]).uniform(size=n)
    scale = np.ones(n)
    scale[::2] = float(scaling)
    return scale


def scaled(case, scale: np.ndarray):
    """``case`` with ``A S`` and the truth ``S^-1 x`` (the same measurements)."""
    truth = case.truth / (scale[:, None] if case.structure == "mmv" else scale)
    return replace(case, A=case.matrix * scale, matrix=case.matrix * scale, truth=truth)


def one_fit(name: str, case, limit: float | None) -> tuple[float, float, float]:
    """``(relative residual, relative error, CPU seconds)`` of the default (``limit`` None)
    or of the default with ``column_spread_limit = limit``."""
    est = get_method(name)(**contract.CONTRACTS[name].kwargs(case))
    if limit is not None:
        est.column_spread_limit = limit
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(case.A, case.y)
    elapsed = time.process_time() - start
    coef = contract._coef(est, case)
    flat = coef if case.structure == "mmv" else coef.ravel()
    y = np.asarray(case.y, dtype=float)
    residual = np.linalg.norm(case.matrix @ flat - y) / np.linalg.norm(y)
    return float(residual), contract.rel(coef, case.truth), elapsed


def reference_errors(case) -> tuple[float, float]:
    """Errors to the truth of the exact reference as given and of the standardized one."""
    raw = contract.rel(contract.exact_reference(case), case.truth)
    norms = np.linalg.norm(case.matrix, axis=0)
    unit = replace(case, A=case.matrix / norms, matrix=case.matrix / norms)
    z = contract.exact_reference(unit)
    x = z / (norms[:, None] if case.structure == "mmv" else norms)
    return raw, contract.rel(x, case.truth)


def _row(off: np.ndarray, on: np.ndarray) -> str:
    def cells(a):
        return f"{np.median(a[:, 0]):8.1e}/{a[:, 0].max():8.1e} {a[:, 1].max():8.1e}"

    return f"{cells(off)}   {cells(on)}   {on[:, 2].sum() / off[:, 2].sum():5.2f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--scalings", nargs="+", default=list(SCALINGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--references", action="store_true")
    parser.add_argument("--limit", type=float, default=None,
                        help="column_spread_limit of the equilibrated fit (default: the "
                             "estimators' own)")
    args = parser.parse_args(argv)
    print(f"{'method':18s} {'scaling':>7s} {'spread':>6s}  {'as given: res med/max':>21s} "
          f"{'err max':>8s}   {'default: res med/max':>21s} {'err max':>8s}   cpu   "
          + ("ref err: given  std" if args.references else ""))
    for name in args.methods:
        structure = contract.CONTRACTS[name].structure
        for scaling in args.scalings:
            rows, refs, spreads = {True: [], False: []}, [], []
            for seed in range(args.seeds):
                case = contract.make_case(structure, "under", seed)
                case = scaled(case, column_scales(case.matrix.shape[1], scaling, seed))
                norms = np.linalg.norm(case.matrix, axis=0)
                spreads.append(norms.max() / norms.min())
                rows[False].append(one_fit(name, case, np.inf))
                rows[True].append(one_fit(name, case, args.limit))
                if args.references:
                    refs.append(reference_errors(case))
            line = f"{name:18s} {scaling:>7s} {np.median(spreads):6.3g}  " \
                   + _row(np.array(rows[False]), np.array(rows[True]))
            if refs:
                refs = np.array(refs)
                line += f"   {refs[:, 0].max():8.1e} {refs[:, 1].max():8.1e}"
            print(line, flush=True)


if __name__ == "__main__":
    with threadpool_limits(1):
        main()
