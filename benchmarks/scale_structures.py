"""Group and low-rank recovery at scale: each IR default next to its cross-validated peer.

Two sections, each on noisy data (20 dB) of growing size, methods side by side in this one
process on the same problem, all at their automatic settings:

- group (``group_rows``): Gaussian ``X`` of ``n = p / 2`` rows, groups of 5, 3 active groups,
  20 dB; ``GroupHadamardRegressor`` (held-out validation) against ``GroupLassoRegressor``
  (skglm, 5-fold CV over 30 penalties);
- low rank (``low_rank_rows``): Gaussian matrix sensing of an ``n x n`` matrix of rank 2 from
  ``m = 8 n`` measurements (about twice the ``4 n`` degrees of freedom), 20 dB, the
  operator's stack stored; ``FactorizedRegressor`` (held-out validation) against
  ``NuclearNormCV`` (5-fold CV) solved by cvxpy only up to ``peer_max`` (its conic problems
  grow like ``m n^2``) and by accelerated proximal gradient (``solver="proximal"``, the
  ``proximal`` extra: products with the operator only) at every size.

CPU time (``time.process_time``, one BLAS thread via threadpoolctl) and relative error to the
truth, then the growth exponent of each method's time (least-squares slope of log time
against log size) and the ratio IR / peer at each size.

Run: ``python benchmarks/scale_structures.py [--group-sizes 300 1000 3000]
[--low-rank-sizes 10 20 40] [--large]``; ``--large`` adds group p = 10,000 and low rank
n = 200 (slow: minutes per fit, 0.4-0.5 GB matrices); ``benchmarks/scale.py`` calls the same
functions.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

#: growth exponents and ratios are read from these rows
Row = dict
#: the sizes ``--large`` adds (issue 15 asks for group p up to 3e4, low rank n up to 200).
#: p = 3e4 (a 3.6 GB design; the IR fit holds about two more copies, the CV peer about as
#: many) is left to an explicit ``--group-sizes ... 30000``: its peer takes about 25 CPU
#: minutes (docs/group.md)
LARGE_GROUP_SIZES = (10_000,)
LARGE_LOW_RANK_SIZES = (200,)


def _timed_fit(make, A, y, truth):
    """``(CPU seconds, relative error, note)`` of ``make(A, y, truth).fit(A, y)``; a failure
    is a row."""
    est = make(A, y, truth)
    start = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(A, y)
    except Exception as exc:  # a failed method is reported, not fatal
        return np.nan, np.nan, f"{type(exc).__name__}: {str(exc)[:60]}"
    seconds = time.process_time() - start
    coef = np.asarray(getattr(est, "signal_", est.coef_)).reshape(truth.shape)
    return seconds, float(np.linalg.norm(coef - truth) / np.linalg.norm(truth)), ""


def _rows(structure, sizes, problem, methods, skip):
    rows = []
    for size in sizes:
        A, y, truth = problem(size)
        for name, make in methods.items():
            if skip(name, size):
                continue
            seconds, error, note = _timed_fit(make, A, y, truth)
            rows.append({"structure": structure, "size": size, "method": name,
                         "cpu_s": seconds, "error": error, "note": note})
            print(f"{structure:8} {size:>7} {name:26} {seconds:9.2f} {error:11.3e}  {note}",
                  flush=True)
    return rows


def group_rows(sizes=(300, 1000, 3000), *, seed=0, snr_db=20.0) -> list[Row]:
    """Rows ``{structure, size, method, cpu_s, error, note}`` of the group section.

    ``size`` is ``p``; ``n = p / 2``, groups of 5, 3 active groups of N(0, 1) entries.
    """
    from overparam.baselines import GroupLassoRegressor
    from overparam.datasets import make_group_sparse_problem
    from overparam.estimators import GroupHadamardRegressor

    def problem(p):
        pb = make_group_sparse_problem(p // 2, p, group_size=5, n_active_groups=3,
                                       design="gaussian", snr=snr_db, random_state=seed)
        return pb.operator, pb.y, pb.truth

    methods = {"IR group (default)": lambda *_: GroupHadamardRegressor(groups=5,
                                                                       random_state=seed),
               "group lasso (5-fold CV)": lambda *_: GroupLassoRegressor(groups=5,
                                                                         random_state=seed)}
    GroupLassoRegressor(groups=2, alpha=0.1).fit(np.eye(4), np.ones(4))  # numba: not timed
    return _rows("group", sizes, problem, methods, lambda name, size: False)


def low_rank_rows(sizes=(10, 20, 40), *, seed=0, rank=2, peer_max=40, snr_db=20.0,
                  store=True) -> list[Row]:
    """Rows of the low-rank section: ``size`` is ``n`` of the ``n x n`` matrix of rank
    ``rank``, ``m = 8 n`` Gaussian measurements; the nuclear-norm CV peer with cvxpy up to
    ``peer_max``, with the first-order solver (``solver="proximal"``, pyproximal) at every
    size.

    ``store`` keeps the Gaussian operator's stack in memory (0.5 GB at ``n = 200``) for every
    method: unstored, each product regenerates it (27 times the cost of a stored product at
    ``n = 200``), which is then what every method measures.
    """
    from overparam.baselines import NuclearNormCV
    from overparam.datasets.low_rank import make_low_rank_problem
    from overparam.estimators import FactorizedRegressor

    def problem(n):
        m = 8 * n
        # ||A(Y)|| is about ||Y||_F = 1: noise of this level per measurement is snr_db
        level = 10 ** (-snr_db / 20) / np.sqrt(m)
        pb = make_low_rank_problem((n, n), rank, m, noise_std=level, random_state=seed,
                                   store=store)
        return pb.operator, pb.y, pb.truth

    methods = {"IR factorized (default)": lambda *_: FactorizedRegressor(random_state=seed),
               "nuclear norm (CV, cvxpy)": lambda *_: NuclearNormCV(random_state=seed),
               "nuclear norm (CV, proximal)": lambda *_: NuclearNormCV(random_state=seed,
                                                                       solver="proximal")}

    def skip(name, size):
        return name == "nuclear norm (CV, cvxpy)" and size > peer_max

    return _rows("low-rank", sizes, problem, methods, skip)


def growth_exponent(sizes, times) -> float:
    """Least-squares slope of log time against log size (NaN with fewer than 2 points)."""
    ok = [(s, t) for s, t in zip(sizes, times, strict=True) if np.isfinite(t) and t > 0]
    if len(ok) < 2:
        return np.nan
    logs = np.log(np.asarray(ok, dtype=float))
    return float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])


def summary(rows: list[Row]) -> list[str]:
    """Lines: per structure, the IR / peer time ratio at each size (against each other
    method) and each method's growth exponent."""
    lines = []
    for structure in dict.fromkeys(r["structure"] for r in rows):
        kept = [r for r in rows if r["structure"] == structure]
        methods = list(dict.fromkeys(r["method"] for r in kept))
        times = {(r["method"], r["size"]): r["cpu_s"] for r in kept}
        ir = methods[0]
        for peer in methods[1:]:
            ratios = [f"{size}: {times[ir, size] / times[peer, size]:.2f}"
                      for size in dict.fromkeys(r["size"] for r in kept)
                      if (ir, size) in times and (peer, size) in times]
            lines.append(f"{structure}: time {ir} / {peer} by size: {', '.join(ratios)}")
        for name in methods:
            sizes = sorted(s for m, s in times if m == name)
            exponent = growth_exponent(sizes, [times[name, s] for s in sizes])
            lines.append(f"  growth exponent {name:26} size^{exponent:.2f}")
    return lines


def run(group_sizes, low_rank_sizes, *, seed=0, peer_max=40) -> list[Row]:
    """Both sections under one BLAS thread; prints the rows as they come and the summary."""
    print(f"{'section':8} {'size':>7} {'method':26} {'CPU s':>9} {'rel. error':>11}")
    with threadpool_limits(limits=1, user_api="blas"):
        rows = group_rows(group_sizes, seed=seed) if group_sizes else []
        if low_rank_sizes:
            rows += low_rank_rows(low_rank_sizes, seed=seed, peer_max=peer_max)
    print()
    for line in summary(rows):
        print(line)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group-sizes", type=int, nargs="*", default=[300, 1000, 3000],
                        help="p of the group problems (n = p/2)")
    parser.add_argument("--low-rank-sizes", type=int, nargs="*", default=[10, 20, 40],
                        help="n of the n x n low-rank matrices (m = 8 n)")
    parser.add_argument("--peer-max", type=int, default=40,
                        help="largest n for the nuclear-norm CV peer solved by cvxpy")
    parser.add_argument("--large", action="store_true",
                        help="add group p = 10000 and low rank n = 200 (slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    group_sizes, low_rank_sizes = list(args.group_sizes), list(args.low_rank_sizes)
    if args.large:
        group_sizes += [p for p in LARGE_GROUP_SIZES if p not in group_sizes]
        low_rank_sizes += [n for n in LARGE_LOW_RANK_SIZES if n not in low_rank_sizes]
    run(group_sizes, low_rank_sizes, seed=args.seed, peer_max=args.peer_max)


if __name__ == "__main__":
    main()
