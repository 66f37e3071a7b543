"""IR-MMV: CPU time per iteration on the paper experiments' workloads, against a baseline.

The shapes and settings of the ``ir-mmv-*`` experiments (src/overparam/experiments/papers/
ir_mmv.py): the digits runs (one problem, M x N x L = 84 x 64 x 100 and 40 x 64 x 100, L = 100
images, from both inits), the balance runs (50 x 25 and 25 x 50, L = 100, init 1e-4, with
the experiment's history of the support rows and the default stopping rule) and the
error-vs-K/M batches (20 problems of 25 x 50 and 50 x 25, L = 100, at 40 dB). Each workload
runs a fixed number of iterations (shorter than the experiments; the cost per iteration is
what is compared).

``--baseline FILE`` loads another version of ``src/overparam/solvers/mmv.py`` (e.g.
``git show main:src/overparam/solvers/mmv.py > /tmp/mmv_old.py``), checks that it computes
the same iterates, bit for bit, and times both alternately in one process (CPU time,
``time.process_time``; run with ``OMP_NUM_THREADS=1``): medians and their ratio.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmv_experiments.py --baseline FILE
[--repeats 5] [--scale 1.0]``
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

from overparam.datasets import make_mmv_batch, make_mmv_problem
from overparam.solvers import History, ir_mmv
from overparam.stopping import StoppingRule

sys.path.insert(0, str(Path(__file__).parent))
from mmv_overhead import _load  # a sibling script, not a package


def _digits(M, init, scale):
    rng = np.random.default_rng(M)
    A = rng.standard_normal((M, 64)) / np.sqrt(M)
    X = rng.random((64, 100))  # dense rows, like the digits' pixel rows
    return (A, A @ X), dict(init=init, init_scale={"zero": 1e-2, "ones": 1e-4}[init],
                            stopping=StoppingRule(max_iter=int(3000 * scale)))


def _balance(M, N, scale):
    p = make_mmv_problem(M, N, 100, 3, row_values="ramp", random_state=4)
    return (p.operator, p.y), dict(init_scale=1e-4,
                                   stopping=StoppingRule(max_iter=int(3000 * scale)))


def _batch(M, N, scale):
    prob = make_mmv_batch(20, M, N, 100, 4, snr=40.0, random_state=6)
    return (prob.operator, prob.y), dict(stopping=StoppingRule(max_iter=int(300 * scale)))


WORKLOADS = {
    "digits pixels 84x64, zero init": lambda s: _digits(84, "zero", s),
    "digits DCT 40x64, paper init": lambda s: _digits(40, "ones", s),
    "balance 50x25 (history)": lambda s: _balance(50, 25, s),
    "balance 25x50 (history)": lambda s: _balance(25, 50, s),
    "batch of 20, 25x50": lambda s: _batch(25, 50, s),
    "batch of 20, 50x25": lambda s: _batch(50, 25, s),
}


def _run(solver, data, kw, history):
    hist = History(every=7, quantities={"row_norm": lambda p, x: np.linalg.norm(x, axis=1)}) \
        if history else None
    start = time.process_time()
    res = solver(*data, history=hist, **kw)
    seconds = time.process_time() - start
    loops = int(np.max(np.asarray(res.n_iter) + np.asarray(res.info["n_rejected_steps"])))
    return res, seconds / loops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="another version of solvers/mmv.py to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the iteration counts")
    args = ap.parse_args(argv)
    # the numpy step, as the baseline's (the compiled one: benchmarks/mmv_numba.py)
    solvers = {"current": functools.partial(ir_mmv, accelerator="numpy")}
    if args.baseline:
        solvers["baseline"] = _load(args.baseline)
    print(f"{'workload':36s}" + "".join(f"{k + ' us/it':>18s}" for k in solvers)
          + ("   ratio  same" if args.baseline else ""))
    for name, make in WORKLOADS.items():
        data, kw = make(args.scale)
        history = "history" in name
        times = {k: [] for k in solvers}
        results = {}
        for _ in range(args.repeats):
            for key, solver in solvers.items():  # alternating: the same machine load
                results[key], per_loop = _run(solver, data, kw, history)
                times[key].append(per_loop * 1e6)
        med = {k: float(np.median(v)) for k, v in times.items()}
        line = f"{name:36s}" + "".join(f"{med[k]:18.0f}" for k in solvers)
        if args.baseline:
            a, b = results["current"], results["baseline"]
            same = (np.array_equal(a.coef, b.coef) and np.array_equal(a.n_iter, b.n_iter)
                    and np.array_equal(a.info["time"], b.info["time"]))
            line += f"{med['baseline'] / med['current']:8.2f}  {same}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
