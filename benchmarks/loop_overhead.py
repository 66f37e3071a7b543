"""The solver loop's cost per iteration: this checkout against another source tree.

CPU time (``time.process_time``, one BLAS/OpenMP thread) per iteration of small workloads
where the loop's own overhead, not arithmetic, is a visible share of an iteration:

* ``loop``: :func:`~overparam.solvers.run_loop` with a step that does nothing (returns its
  iterate), 20000 iterations: the loop's own cost and nothing else;
* ``gd``: :func:`~overparam.solvers.gradient_descent` on a Hadamard problem (m=20, N=50),
  2000 iterations (the single-problem loop);
* ``gd+val``: the same with a held-out :class:`~overparam.stopping.Validation` checked every
  10 iterations (``patience=None``: the whole budget runs);
* ``mmv B=5``: :func:`~overparam.solvers.ir_mmv` on the MMV estimator's fold workload (5
  problems of 24 x 60 x 20, a validation each, 1500 iterations; benchmarks/mmv_overhead.py);
* ``mmv B=1``: one problem of 30 x 60 x 20, 1500 iterations.

``--baseline SRC`` times another source tree (e.g. a ``git worktree`` of main at
``SRC=/tmp/base/src``) in alternating subprocesses, checks that both give the same estimates,
and prints medians and the ratio current / baseline per workload, and Python function calls
per iteration (counted by cProfile: the loop's overhead in a form that the machine's load
does not blur).

Run: ``.venv/bin/python benchmarks/loop_overhead.py [--rounds 5] [--baseline SRC]
[--only loop gd ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ITERS = {"loop": 20000, "gd": 2000, "gd+val": 2000, "mmv B=5": 1500, "mmv B=1": 1500}


def _workloads():
    from overparam.datasets import make_mmv_problem
    from overparam.operators import DenseOperator
    from overparam.parameterizations import Hadamard
    from overparam.solvers import Iterate, gradient_descent, ir_mmv, run_loop
    from overparam.stopping import StoppingRule, Validation

    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 50)) / np.sqrt(20)
    x = np.zeros(50)
    x[:3] = [1.0, -2.0, 1.5]
    y = A @ x + 0.01 * rng.standard_normal(20)
    A_val = rng.standard_normal((10, 50)) / np.sqrt(20)
    y_val = A_val @ x
    fixed = StoppingRule(max_iter=ITERS["gd"], tol=0, stagnation_tol=0)

    def gd(validation=None):
        val = None if validation is None else Validation(DenseOperator(A_val), y_val, every=10,
                                                         patience=None)
        res = gradient_descent(Hadamard(50), DenseOperator(A), y, init_scale=1e-3,
                               stopping=fixed, validation=val)
        return res.coef, res.n_iter

    p = make_mmv_problem(30, 60, 20, 5, row_values="gaussian", random_state=0)
    Y = p.operator @ p.truth + 0.05 * rng.standard_normal((30, 20))
    folds = [(np.setdiff1d(np.arange(30), np.arange(k, 30, 5)), np.arange(k, 30, 5))
             for k in range(5)]
    As = np.stack([p.operator[tr] for tr, _ in folds])
    Ys = np.stack([Y[tr] for tr, _ in folds])
    mmv_rule = StoppingRule(max_iter=ITERS["mmv B=5"], tol=0, stagnation_tol=0)

    def mmv_batch():
        vals = [Validation(DenseOperator(p.operator[held]), Y[held], every=10, patience=None)
                for _, held in folds]
        res = ir_mmv(As, Ys, init_scale=1e-2, validation=vals, stopping=mmv_rule)
        return res.coef, int(np.max(res.n_iter + res.info["n_rejected_steps"]))

    def mmv_one():
        res = ir_mmv(p.operator, Y, init_scale=1e-2, stopping=mmv_rule)
        return res.coef, res.n_iter + res.info["n_rejected_steps"]

    class Idle:
        name, clock = "idle", "iterations"
        point = Iterate((np.zeros(3),), np.zeros(3), 1.0, 1.0, dt=1.0)

        def init(self):
            return self.point

        def step(self, current, *, time_left, diverged):
            return self.point

        def info(self):
            return {}

    idle_rule = StoppingRule(max_iter=ITERS["loop"], tol=0, stagnation_tol=0)

    def idle():
        res = run_loop(Idle(), 1.0, stopping=idle_rule)
        return res.coef, res.n_iter

    return {"loop": idle, "gd": gd, "gd+val": lambda: gd(True), "mmv B=5": mmv_batch,
            "mmv B=1": mmv_one}


def worker(repeats: int, only: list[str]) -> dict:
    """CPU seconds per iteration of each workload (median of ``repeats``), Python calls per
    iteration and a checksum."""
    import cProfile
    import pstats

    out = {}
    for name, run in _workloads().items():
        if name not in only:
            continue
        profile = cProfile.Profile()
        profile.enable()
        _, n = run()  # also the warm-up
        profile.disable()
        calls = pstats.Stats(profile).total_calls / max(int(n), 1)
        per_iter = []
        for _ in range(repeats):
            start = time.process_time()
            coef, n = run()
            per_iter.append((time.process_time() - start) / max(int(n), 1))
        out[name] = {"cpu": float(np.median(per_iter)), "sum": float(np.sum(coef)),
                     "n": int(n), "calls": calls}
    return out


def _spawn(src: str, repeats: int, only: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--worker", "--repeats", str(repeats),
                           "--only", *only],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(rounds: int, repeats: int, baseline: str | None, only: list[str]) -> None:
    trees = {"current": str(Path(__file__).resolve().parents[1] / "src")}
    if baseline:
        trees["baseline"] = baseline
    samples = {tree: {name: [] for name in only} for tree in trees}
    checks, calls = {}, {}
    for r in range(rounds):
        order = list(trees.items())
        for tree, src in order if r % 2 == 0 else order[::-1]:  # neither tree always first
            result = _spawn(src, repeats, only)
            for name, row in result.items():
                samples[tree][name].append(row["cpu"])
                checks.setdefault(tree, {})[name] = (row["sum"], row["n"])
                calls.setdefault(tree, {})[name] = row["calls"]
    print(f"{'workload':10s} " + " ".join(f"{t + ' us/it':>16s}" for t in trees)
          + " ".join(f"{t + ' calls/it':>18s}" for t in trees)
          + ("  ratio  same" if baseline else ""))
    for name in only:
        med = {t: 1e6 * float(np.median(samples[t][name])) for t in trees}
        line = (f"{name:10s} " + " ".join(f"{med[t]:16.2f}" for t in trees)
                + " ".join(f"{calls[t][name]:18.2f}" for t in trees))
        if baseline:
            same = checks["current"][name] == checks["baseline"][name]
            line += f"  {med['current'] / med['baseline']:5.3f}  {same}"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--only", nargs="+", default=list(ITERS), choices=list(ITERS))
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.repeats, args.only)))
    else:
        main(args.rounds, args.repeats, args.baseline, args.only)
