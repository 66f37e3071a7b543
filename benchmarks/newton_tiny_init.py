"""The dense depth-3 Newton limit from a tiny init: the phase-transition trial and Gaussian sizes.

The trial that fell back to the dual ODE (more-is-less-phase-transition, signed, M = 14,
s = 6, per-factor init, trial 16, seed 2799233385) fitted as the experiment fits it, at
depth 3 over a sweep of inits; then ``hadamard_newton`` at depth 3 on Gaussian problems
(``make_sparse_problem(M, N, M // 10, unit_norm=True, random_state=0)``). Prints CPU s
(``time.process_time``), the solver, Newton steps (or the dual flow's), the stop reason, the
graded steps (``info["n_graded"]``, absent before) and warnings. Compare two versions in
separate processes::

    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/old/src python benchmarks/newton_tiny_init.py
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD/src python benchmarks/newton_tiny_init.py
    python benchmarks/newton_tiny_init.py --sizes 1000x3000 --inits 1e-18

Results: docs/sparse.md, "The depth-3 Newton limit from a tiny init".
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from overparam.datasets import make_sparse_problem
from overparam.experiments.papers.more_is_less import _paper_hadamard
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.solvers import NewtonConvergenceError, hadamard_newton

TRIAL_SEED = 2799233385  # PHASE_TRANSITION.trial_seed(signed, M=14, s=6, per-factor, 16)
INITS = (1e-19, 9.99e-19, 1e-6**3, 1e-18, 1.01e-18, 1e-17)


def trial_sweep(inits) -> None:
    p = make_sparse_problem(14, 20, 6, positive=False, unit_norm=True, random_state=TRIAL_SEED)
    for init in inits:
        est = _paper_hadamard(depth=3, signed=True, init_scale=init, tol=1e-10,
                              early_stopping=None)
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(p.operator, p.y)
        cpu = time.process_time() - start
        info = est.result_.info
        print(f"trial, init {init!r}: {cpu:.3f} s, {info.get('solver')}, "
              f"{est.result_.n_iter} steps, {est.result_.stop_reason.value}, "
              f"graded {info.get('n_graded', '-')}, warnings {len(caught)}")


def gaussian(sizes, init: float) -> None:
    for size in sizes:
        m, n = map(int, size.split("x"))
        p = make_sparse_problem(m, n, max(1, m // 10), unit_norm=True, random_state=0)
        op = as_operator(np.asarray(p.operator))
        start = time.process_time()
        try:
            res = hadamard_newton(op, p.y, depth=3, init_scale=init, tol=1e-10, max_iter=1000)
            err = relative_error(res.coef, p.truth)
            out = (f"{res.n_iter} steps, graded {res.info.get('n_graded', '-')}, "
                   f"error {err:.3e}")
        except NewtonConvergenceError as exc:
            out = f"failed: {exc}"
        print(f"Gaussian {m}x{n}, depth 3, init {init:g}: "
              f"{time.process_time() - start:.2f} s, {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=float, nargs="+", default=list(INITS))
    parser.add_argument("--sizes", nargs="+", default=["200x600"],
                        help="Gaussian MxN problems (1000x3000: about 9 s)")
    parser.add_argument("--gaussian-init", type=float, default=1e-18)
    args = parser.parse_args()
    trial_sweep(args.inits)
    gaussian(args.sizes, args.gaussian_init)


if __name__ == "__main__":
    main()
