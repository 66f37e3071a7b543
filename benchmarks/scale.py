"""Recovery at scale: each IR default and limit next to its convex peers, side by side.

Sparse section: noiseless Gaussian problems ``A / sqrt(M)``, ``M = N / 5``, ``s = M / 10``
(dense sizes), and a matrix-free subsampled orthonormal DCT
(``overparam.operators.SubsampledDCT``, ``A A^T = I``) at the operator size. Methods, in this
one process on the same problem:

- the IR default (``HadamardRegressor()``: 5-fold validated stopping time, then the limit
  when no overfitting shows) and the IR limit (``early_stopping=None``: dense Newton for small
  matrices, matrix-free Newton-CG from ``solvers.sparse.krylov_newton.MATRIX_FREE_ENTRIES``
  on and for operators);
- skglm's Lasso with a tiny penalty (``alpha = 1e-4 alpha_max``) and, the IR default's
  cross-validated peer, scikit-learn's ``LassoCV`` (5 folds, 100 penalties; up to
  ``--cv-max``);
- OMP given the true sparsity (scikit-learn);
- basis pursuit as an LP (HiGHS; up to ``--bp-max`` unknowns);
- on the operator only (skglm needs the matrix: 20,000 x 100,000 doubles are 16 GB), a
  matrix-free Lasso: PyLops' FISTA along the warm-started penalty path ``1e-1 .. 1e-4
  lambda_max`` (13 penalties, at most 300 iterations each; the imaging experiment's
  ``fista_lasso_path``).
Methods that need the matrix print "—" on the operator, the operator-only ones on matrices.

CPU time (``time.process_time``, one BLAS thread via threadpoolctl; median of ``--repeats``)
and relative error to the truth; then the growth exponent of each method's time over the
dense sizes (least-squares slope of log time against log N).

Run: ``python benchmarks/scale.py [--sizes 1000 3000 10000] [--operator-size 100000]``.
Sections (``--sections``) are functions of the parsed arguments in ``SECTIONS``: ``sparse``
(above), ``structures`` (group and low rank next to their CV peers, from
``scale_structures.py``) and ``mmv`` (the default IR-MMV next to MultiTaskLassoCV, from
``mmv_speed.py``, with the least-squares growth exponents over ``--mmv-sizes``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import mmv_speed  # sibling scripts: benchmarks/ is on sys.path
import scale_structures
from overparam.baselines import BasisPursuit, LassoCVRegressor, OMPRegressor
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.operators import SubsampledDCT, as_operator
from scale_structures import growth_exponent


class SkglmLasso:
    """skglm's Lasso with ``alpha = ratio * alpha_max`` (no intercept), fit on a matrix."""

    def __init__(self, ratio=1e-4):
        self.ratio = ratio

    def fit(self, A, y):
        from skglm import Lasso

        alpha = self.ratio * np.max(np.abs(A.T @ y)) / A.shape[0]
        self.coef_ = Lasso(alpha=alpha, fit_intercept=False, tol=1e-10,
                           max_iter=1000).fit(A, y).coef_
        return self


class FistaLasso:
    """A matrix-free Lasso: PyLops' FISTA along the warm-started path down to ``1e-4
    lambda_max`` (:func:`overparam.experiments.papers.imaging.fista_lasso_path`)."""

    def fit(self, A, y):
        from overparam.experiments.papers.imaging import LASSO_RATIOS, fista_lasso_path

        self.coef_ = fista_lasso_path(as_operator(A), y, LASSO_RATIOS)[0][-1]
        return self


#: The sparse section's methods: name -> (estimator factory given s, where it runs:
#: "both", "matrix" (needs the matrix) or "operator" (the matrix-free peer)).
SPARSE_METHODS = {
    "IR default": (lambda s: HadamardRegressor(), "both"),
    "IR limit": (lambda s: HadamardRegressor(early_stopping=None), "both"),
    "skglm Lasso": (lambda s: SkglmLasso(), "matrix"),
    "LassoCV": (lambda s: LassoCVRegressor(), "matrix"),
    "OMP (true s)": (lambda s: OMPRegressor(n_nonzero_coefs=s), "matrix"),
    "BP-LP (HiGHS)": (lambda s: BasisPursuit(), "matrix"),
    "FISTA Lasso": (lambda s: FistaLasso(), "operator"),
}


def _skipped(name, n, operator, args) -> bool:
    """Methods that need the matrix are skipped on the operator (and the operator-only peer
    on matrices); BP above --bp-max, the IR default above --default-max."""
    if SPARSE_METHODS[name][1] == ("operator" if not operator else "matrix"):
        return True
    return (name == "BP-LP (HiGHS)" and n > args.bp_max) or (
        name == "IR default" and n > args.default_max) or (name == "LassoCV" and n > args.cv_max)


def _dct_problem(n, seed):
    """A subsampled orthonormal DCT (M = n/5 rows, matrix-free) and an s-sparse x."""
    rng = np.random.default_rng(seed)
    m, s = n // 5, n // 50
    op = SubsampledDCT(n, np.sort(rng.choice(n, m, replace=False)))
    x = np.zeros(n)
    x[rng.choice(n, s, replace=False)] = rng.standard_normal(s)
    return op, op.forward(x), x, s


def _run(make, A, y, x, s, repeats):
    times, err, note = [], np.nan, ""
    for _ in range(repeats):
        est = make(s)
        start = time.process_time()
        try:
            est.fit(A, y)
        except Exception as exc:  # a failed method is reported, not fatal
            return np.nan, np.nan, f"{type(exc).__name__}: {str(exc)[:60]}"
        times.append(time.process_time() - start)
        err = float(np.linalg.norm(est.coef_ - x) / np.linalg.norm(x))
        info = getattr(getattr(est, "result_", None), "info", {})
        note = info.get("solver", "")
    return statistics.median(times), err, note


def _cell(t, err) -> str:
    return f"{'—':>8} {'—':>8}" if not np.isfinite(t) else f"{t:8.3g} {err:8.1e}"


def sparse_section(args) -> None:
    """Time and error of each sparse method side by side per size, then growth exponents."""
    names = list(SPARSE_METHODS)
    print("sparse: CPU s and relative error (noiseless, M = N/5, s = M/10; one BLAS thread)")
    print(f"{'N':>8} " + " ".join(f"{name:>17}" for name in names) + "  IR solvers")
    times = {name: {} for name in names}
    problems = [(n, False) for n in args.sizes]
    if args.operator_size:
        problems.append((args.operator_size, True))
    for n, operator in problems:
        if operator:
            A, y, x, s = _dct_problem(n, args.seed)
        else:
            s = n // 50
            p = make_sparse_problem(n // 5, n, s, random_state=args.seed)
            A, y, x = np.asarray(p.operator), p.y, p.truth
        cells, notes = [], []
        for name, (make, _) in SPARSE_METHODS.items():
            t, err, note = (np.nan, np.nan, "") if _skipped(name, n, operator, args) else \
                _run(make, A, y, x, s, 1 if operator else args.repeats)
            times[name][n, operator] = t
            cells.append(_cell(t, err))
            if name.startswith("IR") and note:
                notes.append(note)
        label = f"{n}{'*' if operator else ''}"
        print(f"{label:>8} " + " ".join(cells) + "  " + ", ".join(notes), flush=True)
    if args.operator_size:
        print("* matrix-free subsampled DCT operator (the matrix methods: —)")
    _print_ratios(times, problems)
    dense = {name: {n: t for (n, op), t in by_n.items() if not op and np.isfinite(t)}
             for name, by_n in times.items()}
    print("growth exponent of CPU time in N (dense sizes): " + ", ".join(
        f"{name} N^{growth_exponent(sorted(by_n), [by_n[k] for k in sorted(by_n)]):.2f}"
        for name, by_n in dense.items() if len(by_n) > 1))


def _print_ratios(times, problems) -> None:
    """The IR limit's CPU time over its peer's, measured side by side: skglm's on matrices,
    the matrix-free FISTA Lasso's on the operator."""
    cells = []
    for n, operator in problems:
        peer = "FISTA Lasso" if operator else "skglm Lasso"
        ratio = times["IR limit"][n, operator] / times[peer][n, operator]
        if np.isfinite(ratio):
            cells.append(f"N={n}{'*' if operator else ''} {ratio:.2f} (vs {peer})")
    print("IR limit / peer CPU time: " + ", ".join(cells))
    cv = [f"N={n} {times['IR default'][n, False] / times['LassoCV'][n, False]:.2f}"
          for n, operator in problems if not operator
          and np.isfinite(times["IR default"][n, False] / times["LassoCV"][n, False])]
    if cv:
        print("IR default / LassoCV CPU time: " + ", ".join(cv))


def structures_section(args) -> None:
    """Group and low rank, each IR default next to its CV peer (``scale_structures.py``)."""
    scale_structures.run(args.group_sizes, args.low_rank_sizes, seed=args.seed,
                         peer_max=args.peer_max)


def mmv_section(args) -> None:
    """Row-sparse MMV: the default IR-MMV next to MultiTaskLassoCV (``mmv_speed.py``)."""
    if not args.mmv_sizes:
        return
    medians = mmv_speed.run(args.mmv_sizes, seeds=args.mmv_seeds)
    if len(medians) > 1:
        sizes = [n for n, _, _ in medians]
        print(f"growth exponent of CPU time in N (MMV sizes): "
              f"IR-MMV N^{growth_exponent(sizes, [t for _, t, _ in medians]):.2f}, "
              f"MultiTaskLassoCV N^{growth_exponent(sizes, [t for _, _, t in medians]):.2f}")


#: The sections of this benchmark, in order.
SECTIONS = {"sparse": sparse_section, "structures": structures_section, "mmv": mmv_section}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 3000, 10000])
    parser.add_argument("--operator-size", type=int, default=100_000,
                        help="N of the matrix-free DCT problem (0: skip)")
    parser.add_argument("--bp-max", type=int, default=3000, help="largest N for BP-LP")
    parser.add_argument("--default-max", type=int, default=100_000,
                        help="largest N for the IR default (5-fold validated)")
    parser.add_argument("--cv-max", type=int, default=10_000,
                        help="largest N for scikit-learn's LassoCV (the IR default's CV peer)")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many fits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-sizes", type=int, nargs="*", default=[300, 1000, 3000],
                        help="structures section: p of the group problems (n = p/2)")
    parser.add_argument("--low-rank-sizes", type=int, nargs="*", default=[10, 20, 40],
                        help="structures section: n of the n x n low-rank matrices (m = 8 n)")
    parser.add_argument("--peer-max", type=int, default=40,
                        help="structures section: largest n for the nuclear-norm CV peer")
    parser.add_argument("--mmv-sizes", type=int, nargs="*", default=[60, 600, 2000],
                        help="mmv section: N of the MMV problems (M = N/2, L = 20, 20 dB)")
    parser.add_argument("--mmv-seeds", type=int, default=3,
                        help="mmv section: median over this many problems")
    args = parser.parse_args(argv)
    if "sparse" in args.sections:  # numba compiles skglm's solver once: not timed
        SkglmLasso().fit(np.eye(3), np.ones(3))
    with threadpool_limits(limits=1, user_api="blas"):
        for name in args.sections:
            SECTIONS[name](args)


if __name__ == "__main__":
    main()
