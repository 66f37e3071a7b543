"""Tuning-free recovery under noise: the default stopping rule vs the oracle vs tuned peers.

For each setting (sparse, group, MMV, low rank) and SNR, over independent trials, prints the
median relative error ||x_hat - x|| / ||x|| (with quartiles) and the median wall time of

- the IR estimator with its default, data-driven stopping rule (held-out validation),
- the same estimator stopped at the oracle time (best point of the path, using the truth),
- the cross-validated peers users already have (LassoCV, group lasso CV, MultiTaskLassoCV,
  nuclear norm with lambda by CV),
- OMP / M-OMP given the true sparsity (an unfair advantage: they know s),

then the ratios that the goal is stated in: default/oracle error, default/peer error and
default/peer time, each a median over trials of the per-trial ratio. All numbers of one table
come from one run on one machine, so the ratios compare like with like. Every method runs on
one BLAS thread.

Usage::

    python benchmarks/noisy.py                      # 20 trials, SNR 10/20/30/40 dB, all settings
    python benchmarks/noisy.py --trials 3 --settings sparse --snr 20
    python benchmarks/noisy.py --csv noisy.csv      # also write every trial
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LassoCV, OrthogonalMatchingPursuit
from threadpoolctl import threadpool_limits

from overparam.datasets import Problem
from overparam.metrics import add_noise, relative_error
from overparam.stopping import Oracle

DEFAULT = "IR default (validation)"
ORACLE = "IR oracle stop"


@dataclass
class Setting:
    description: str
    make: Callable[[float, int], Problem]
    ir: Callable[[Problem, int], object]  # (problem, seed) -> unfitted IR estimator
    peers: dict[str, Callable[[Problem, int], object]]
    peer_cv: str  # the cross-validated peer the goal compares with


def _sklearn_fit(model, A, y):
    """Fit a scikit-learn linear model without intercept; return its coefficients."""
    model.fit(A, y)
    return model.coef_.T if np.ndim(y) == 2 else model.coef_


class _SklearnPeer:
    """Adapter so scikit-learn peers are timed and scored like the overparam estimators."""

    def __init__(self, model):
        self.model = model

    def fit(self, A, y):
        self.coef_ = self.signal_ = _sklearn_fit(self.model, A, y)  # the signal, (N, L)
        return self


# ---------------------------------------------------------------- settings


def make_sparse(snr, seed):
    from overparam.datasets import make_sparse_problem

    p = make_sparse_problem(300, 1000, 20, snr=snr, random_state=seed)
    p.meta["s"] = 20
    return p


def make_group(snr, seed):
    from overparam.datasets.group import make_group_sparse_problem

    p = make_group_sparse_problem(150, 300, group_size=5, n_active_groups=4, design="gaussian",
                                  random_state=seed)
    y, noise = add_noise(p.operator @ p.truth, snr, np.random.default_rng([seed, 1]))
    return Problem(p.operator, y, p.truth, noise,
                   {**p.meta, "s": int(np.count_nonzero(p.truth))})


def make_mmv(snr, seed):
    from overparam.datasets.mmv import make_mmv_problem

    p = make_mmv_problem(30, 60, 20, 5, row_values="gaussian", random_state=seed)
    Y, noise = add_noise(p.operator @ p.truth, snr, np.random.default_rng([seed, 1]))
    return Problem(p.operator, Y, p.truth, noise, {**p.meta, "k": 5})


def make_low_rank(snr, seed):
    from overparam.datasets.low_rank import make_low_rank_problem

    p = make_low_rank_problem((10, 10), 2, 80, random_state=seed)
    y, noise = add_noise(p.operator.forward(p.truth), snr, np.random.default_rng([seed, 1]))
    return Problem(p.operator, y, p.truth, noise, p.meta)


def _ir_sparse(p, seed):
    from overparam.estimators import HadamardRegressor

    return HadamardRegressor(early_stopping="validation", random_state=seed)


def _ir_group(p, seed):
    from overparam.estimators.group import GroupHadamardRegressor

    return GroupHadamardRegressor(groups=p.meta["groups"], early_stopping="validation",
                                  random_state=seed)


def _ir_mmv(p, seed):
    from overparam.estimators.mmv import MMVRegressor

    return MMVRegressor(early_stopping="validation", random_state=seed)


def _ir_low_rank(p, seed):
    from overparam.estimators.low_rank import FactorizedRegressor

    return FactorizedRegressor(early_stopping="validation", random_state=seed)


def _group_lasso_cv(p, seed):
    from overparam.baselines.group import GroupLassoRegressor

    return GroupLassoRegressor(groups=p.meta["groups"], random_state=seed)


def _mtl_cv(p, seed):
    from overparam.baselines.mmv import MultiTaskLassoCVRegressor

    return MultiTaskLassoCVRegressor(random_state=seed)


def _somp(p, seed):
    from overparam.baselines.mmv import SOMPRegressor

    return SOMPRegressor(n_nonzero_rows=p.meta["k"])


def _nuclear_cv(p, seed):
    from overparam.baselines.low_rank import NuclearNormCV

    return NuclearNormCV(random_state=seed)


SETTINGS = {
    "sparse": Setting(
        "sparse vector, N=1000, M=300, s=20, Gaussian A", make_sparse, _ir_sparse,
        {"LassoCV": lambda p, s: _SklearnPeer(LassoCV(fit_intercept=False, cv=5,
                                                      random_state=s)),
         "OMP (true s)": lambda p, s: _SklearnPeer(OrthogonalMatchingPursuit(
             n_nonzero_coefs=p.meta["s"], fit_intercept=False))},
        "LassoCV"),
    "group": Setting(
        "group-sparse, n=150, p=300, groups of 5, 4 active, Gaussian X", make_group, _ir_group,
        {"group lasso CV": _group_lasso_cv,
         "OMP (true s)": lambda p, s: _SklearnPeer(OrthogonalMatchingPursuit(
             n_nonzero_coefs=p.meta["s"], fit_intercept=False))},
        "group lasso CV"),
    "mmv": Setting(
        "row-sparse MMV, M=30, N=60, L=20, K=5 Gaussian rows", make_mmv, _ir_mmv,
        {"MultiTaskLassoCV": _mtl_cv, "M-OMP (true K)": _somp}, "MultiTaskLassoCV"),
    "low-rank": Setting(
        "matrix sensing, 10x10 rank 2, m=80 Gaussian", make_low_rank, _ir_low_rank,
        {"nuclear norm CV": _nuclear_cv}, "nuclear norm CV"),
}


# ---------------------------------------------------------------- running


def run_trial(name: str, snr: float, trial: int) -> list[dict]:
    """All methods of one setting on one noisy problem."""
    setting = SETTINGS[name]
    seed = 1000 * trial + int(snr)
    p = setting.make(snr, seed)
    estimators = {DEFAULT: setting.ir(p, seed),
                  ORACLE: setting.ir(p, seed).set_params(early_stopping=Oracle(p.truth)),
                  **{label: make(p, seed) for label, make in setting.peers.items()}}
    rows = []
    for label, est in estimators.items():
        # Every method on one BLAS thread (the IR solvers pin one anyway): one trial per core
        # with --jobs equal to the cores, and no method is slowed by oversubscription.
        with threadpool_limits(1, user_api="blas"):
            start = time.perf_counter()
            est.fit(p.operator, p.y)
            elapsed = time.perf_counter() - start
        rows.append({"setting": name, "snr": snr, "trial": trial, "method": label,
                     "error": relative_error(np.reshape(est.signal_, p.truth.shape), p.truth),
                     "time": elapsed})
    return rows


def _median_ratio(rows, setting, snr, num, den, key):
    by = {(r["trial"], r["method"]): r[key] for r in rows
          if r["setting"] == setting and r["snr"] == snr}
    ratios = [by[(t, num)] / by[(t, den)] for (t, m) in by if m == num and (t, den) in by]
    return float(np.median(ratios)) if ratios else float("nan")


def report(rows: list[dict]) -> str:
    lines = [f"machine: {platform.machine()} {platform.processor() or ''}, "
             f"python {platform.python_version()}"]
    for name in dict.fromkeys(r["setting"] for r in rows):
        setting = SETTINGS[name]
        lines += ["", f"== {name}: {setting.description}",
                  f"{'SNR':>4} {'method':26s} {'median err':>10} {'[q25, q75]':>20} "
                  f"{'median time':>11} {'n':>3}"]
        snrs = sorted({r["snr"] for r in rows if r["setting"] == name})
        for snr in snrs:
            sel = [r for r in rows if r["setting"] == name and r["snr"] == snr]
            for method in dict.fromkeys(r["method"] for r in sel):
                err = np.array([r["error"] for r in sel if r["method"] == method])
                tim = np.array([r["time"] for r in sel if r["method"] == method])
                q25, q75 = np.quantile(err, [0.25, 0.75])
                lines.append(f"{snr:4.0f} {method:26s} {np.median(err):10.4f} "
                             f"[{q25:8.4f}, {q75:8.4f}] {np.median(tim):10.3f}s {len(err):3d}")
        lines.append(f"ratios (median over trials): {'SNR':>4} {'default/oracle err':>18} "
                     f"{'default/' + setting.peer_cv + ' err':>28} {'time':>8}")
        for snr in snrs:
            r_or = _median_ratio(rows, name, snr, DEFAULT, ORACLE, "error")
            r_pe = _median_ratio(rows, name, snr, DEFAULT, setting.peer_cv, "error")
            r_ti = _median_ratio(rows, name, snr, DEFAULT, setting.peer_cv, "time")
            lines.append(f"{'':28s} {snr:4.0f} {r_or:18.3f} {r_pe:28.3f} {r_ti:8.3f}")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--snr", type=float, nargs="+", default=[10, 20, 30, 40])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel trials (timings are fairest with 1)")
    parser.add_argument("--csv", help="write every trial to this CSV file")
    args = parser.parse_args(argv)

    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    tasks = [(name, snr, t) for name in args.settings for snr in args.snr
             for t in range(args.trials)]
    start = time.perf_counter()
    out = Parallel(n_jobs=args.jobs, return_as="generator")(
        delayed(run_trial)(*task) for task in tasks)
    rows = [row for chunk in tqdm(out, total=len(tasks), desc="trials") for row in chunk]
    print(report(rows))
    print(f"\ntotal {time.perf_counter() - start:.1f} s for {len(tasks)} problems")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
