"""Default IR-MMV against scikit-learn's MultiTaskLassoCV: CPU time and error, side by side.

The setting of issue 15 (M = N/2 Gaussian rows, L = 20 columns, K = N/12 active rows of
i.i.d. Gaussian entries, 20 dB), grown in N. Both estimators run with their defaults (IR-MMV:
5-fold cross-validation of the stopping time and a refit; MultiTaskLassoCV: 5 folds, 50
penalties, no intercept), one BLAS thread, in one process. Prints the median CPU time
(``time.process_time``) and the median relative error ``||X_hat - X||_F / ||X||_F`` over
``--seeds`` problems, the ratio of the times measured in this run, and each method's growth
exponent between consecutive sizes (``log(t2 / t1) / log(N2 / N1)``).

The first fits of the process (the compiled steps' load, where numba is installed) are
not timed. ``--plain`` also times the default with every row stepped every iteration
(``MMVRegressor.active_rows_from = None``, the step before the multirate one), side by side.

Run: ``python benchmarks/mmv_speed.py [--sizes 60 600 2000] [--seeds 3] [--plain]``
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.baselines import MultiTaskLassoCVRegressor
from overparam.datasets import make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.metrics import relative_error


def _timed(estimator, problem):
    start = time.process_time()
    estimator.fit(problem.operator, problem.y)
    return time.process_time() - start, relative_error(estimator.signal_, problem.truth)


def problem(n: int, seed: int, snr: float = 20.0):
    """The setting at size ``n``: M = N/2, L = 20, K = N/12 Gaussian rows, ``snr`` dB."""
    return make_mmv_problem(n // 2, n, 20, max(1, n // 12), row_values="gaussian", snr=snr,
                            random_state=seed)


def run(sizes, seeds: int = 3, snr: float = 20.0, plain: bool = False) -> list:
    """Time and error of both estimators at each size (printed as a table); returns the
    medians ``(N, IR-MMV s, MultiTaskLassoCV s)``. The caller sets the BLAS threads."""
    plain_head = f" {'plain s':>9} {'err':>6} |" if plain else ""
    print(f"{'N':>6} {'M':>5} {'K':>4} | {'IR-MMV s':>9} {'err':>6} |{plain_head} "
          f"{'MTLassoCV s':>11} {'err':>6} | {'time ratio':>10}")
    # numba's compiled steps (where installed) load once per process: not timed, as scikit-
    # learn's compiled code is loaded at import
    for n in (60, MMVRegressor.active_rows_from or 60):
        MMVRegressor().fit(problem(n, 0, snr).operator, problem(n, 0, snr).y)
    medians = []
    for n in sizes:
        m, k = n // 2, max(1, n // 12)
        rows = {"ir": [], "plain": [], "cv": []}
        for seed in range(seeds):
            p = problem(n, seed, snr)
            rows["ir"].append(_timed(MMVRegressor(), p))
            if plain:
                plain_fit = MMVRegressor()
                plain_fit.active_rows_from = None
                rows["plain"].append(_timed(plain_fit, p))
            rows["cv"].append(_timed(MultiTaskLassoCVRegressor(random_state=0), p))
        (t_ir, e_ir), (t_cv, e_cv) = (np.median(np.array(rows[key]), axis=0)
                                      for key in ("ir", "cv"))
        medians.append((n, t_ir, t_cv))
        plain_cell = ""
        if plain:
            t_pl, e_pl = np.median(np.array(rows["plain"]), axis=0)
            plain_cell = f" {t_pl:>9.3f} {e_pl:>6.3f} |"
        print(f"{n:>6} {m:>5} {k:>4} | {t_ir:>9.3f} {e_ir:>6.3f} |{plain_cell} "
              f"{t_cv:>11.3f} {e_cv:>6.3f} | {t_ir / t_cv:>9.2f}x", flush=True)
    for (n1, ir1, cv1), (n2, ir2, cv2) in itertools.pairwise(medians):
        span = np.log(n2 / n1)
        print(f"growth N={n1}->{n2}: IR-MMV t ~ N^{np.log(ir2 / ir1) / span:.2f}, "
              f"MultiTaskLassoCV t ~ N^{np.log(cv2 / cv1) / span:.2f}")
    return medians


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 600, 2000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--plain", action="store_true",
                        help="also time the default with every row stepped every iteration")
    args = parser.parse_args(argv)
    with threadpool_limits(limits=1, user_api="blas"):
        run(args.sizes, args.seeds, args.snr, args.plain)


if __name__ == "__main__":
    main()
