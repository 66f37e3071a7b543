"""The dense Newton limit's distance to basis pursuit against the init ``alpha`` and the depth.

The table of docs/sparse.md ("The default init"): 30 clean problems (60x200 s=6, 40x100 s=4,
150x1000 s=15, seeds 0-9, ``make_sparse_problem``), the limit by
``solvers.sparse.flow.hadamard_newton`` at ``tol=1e-8``; each cell is the largest relative
distance to basis pursuit (HiGHS), with the count of problems where Newton raised.

Run: ``python benchmarks/limit_vs_init.py`` (about 16 CPU s).
"""

from __future__ import annotations

import time
import warnings

from threadpoolctl import threadpool_limits

from overparam.baselines import BasisPursuit
from overparam.datasets import make_sparse_problem
from overparam.metrics import relative_error
from overparam.operators import as_operator
from overparam.solvers.sparse.flow import NewtonConvergenceError, hadamard_newton

SHAPES = ((60, 200, 6), (40, 100, 4), (150, 1000, 15))
ALPHAS = (1e-6, 1e-9, 1e-12, 1e-16, 1e-20)
DEPTHS = (2, 3, 4, 5)


def _cell(problems, alpha, depth) -> str:
    worst, failed = 0.0, 0
    for A, y, bp in problems:
        try:
            coef = hadamard_newton(A, y, depth=depth, init_scale=alpha, tol=1e-8).coef
        except NewtonConvergenceError:
            failed += 1
            continue
        worst = max(worst, relative_error(coef, bp))
    note = f" ({failed} of {len(problems)} not reached)" if failed else ""
    return f"{worst:.1e}{note}"


def main() -> None:
    warnings.simplefilter("ignore")  # a failed Newton is counted, not printed
    start = time.process_time()
    with threadpool_limits(1):
        problems = []
        for m, n, s in SHAPES:
            for seed in range(10):
                p = make_sparse_problem(m, n, s, random_state=seed)
                bp = BasisPursuit().fit(p.operator, p.y).coef_
                problems.append((as_operator(p.operator), p.y, bp))
        print("| α | " + " | ".join(f"L={d}" for d in DEPTHS) + " |")
        print("|---|" + "---|" * len(DEPTHS))
        for alpha in ALPHAS:
            cells = [_cell(problems, alpha, d) for d in DEPTHS]
            print(f"| {alpha:g} | " + " | ".join(cells) + " |", flush=True)
    print(f"CPU s: {time.process_time() - start:.1f}")


if __name__ == "__main__":
    main()
