"""IR-MMV's compiled step (numba) against its numpy step: CPU time side by side, and agreement.

Three workloads, each run with ``accelerator="numpy"`` and ``"numba"`` alternating in one
process, one BLAS thread, CPU time (``time.process_time``), medians over ``--repeats``
rounds (and over ``--seeds`` problems for the fits):

* default fits, ``MMVRegressor().fit`` (``"numpy"`` and ``"auto"``), on the setting of
  benchmarks/mmv_speed.py at ``--sizes`` (M = N/2, L = 20, K = N/12, 20 dB), with
  scikit-learn's MultiTaskLassoCV beside them. From ``active_rows_from`` (100) columns on
  the default takes the multirate step ("auto": its compiled form,
  ``CompiledActiveRowsStep``); the column "compiled plain" times the compiled plain step
  there (``active_rows_from = None``);
* the digits experiment's runs (``ir-mmv-digits``: one problem, both settings, both inits,
  the experiment's history, ``--max-iter`` iterations; Gram form, L = 100 images);
* the first compiled call in a fresh process, without and with numba's on-disk cache:
  the compile (or cache load) time, excluded from the medians above.

Each pair is checked to agree: the same stop reasons and iteration counts, and the largest
relative difference of the estimates is printed (rounding: the sums run in another order).

Run: ``OMP_NUM_THREADS=1 python benchmarks/mmv_numba.py [--sizes 60 240] [--seeds 3]
[--repeats 3] [--max-iter 20000]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.baselines import MultiTaskLassoCVRegressor
from overparam.estimators import MMVRegressor

ACCELERATORS = ("numpy", "numba")
#: The fits' accelerators: "auto" is the compiled step where it covers the default's step
FIT_ACCELERATORS = ("numpy", "auto")


def _fit(p, accelerator, plain=False):
    est = MMVRegressor()
    est.accelerator = accelerator
    if plain:
        est.active_rows_from = None
    start = time.process_time()
    est.fit(p.operator, p.y)
    return time.process_time() - start, est


def _rel(a, b) -> float:
    scale = max(float(np.linalg.norm(a)), 1e-300)
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b))) / scale


def fits(sizes, seeds: int, repeats: int) -> None:
    """Default fits: numpy, "auto" (numba where it covers the step), MultiTaskLassoCV, and
    from ``active_rows_from`` columns on the compiled plain step."""
    from mmv_speed import problem  # a sibling script: benchmarks/ is on sys.path

    print(f"{'N':>5} | {'numpy s':>8} {'auto s':>8} {'gain':>6} | {'MTLCV s':>8} "
          f"{'auto/MTLCV':>10} | {'compiled plain s':>16} | agreement")
    for n in sizes:
        times = {"numpy": [], "auto": [], "cv": [], "plain": []}
        notes = []
        for seed in range(seeds):
            p = problem(n, seed)
            _fit(p, "auto")  # compile (or load) outside the medians
            for _ in range(repeats):
                fitted = {}
                for acc in FIT_ACCELERATORS:
                    t, fitted[acc] = _fit(p, acc)
                    times[acc].append(t)
                start = time.process_time()
                MultiTaskLassoCVRegressor(random_state=0).fit(p.operator, p.y)
                times["cv"].append(time.process_time() - start)
                if n >= MMVRegressor.active_rows_from:
                    times["plain"].append(_fit(p, "numba", plain=True)[0])
            a, b = fitted["numpy"], fitted["auto"]
            notes.append(f"seed {seed}: n_iter {a.n_iter_}/{b.n_iter_}, "
                         f"coef {_rel(a.signal_, b.signal_):.1e}")
        med = {k: float(np.median(v)) if v else float("nan") for k, v in times.items()}
        print(f"{n:>5} | {med['numpy']:>8.3f} {med['auto']:>8.3f} "
              f"{med['numpy'] / med['auto']:>5.2f}x | {med['cv']:>8.3f} "
              f"{med['auto'] / med['cv']:>9.2f}x | {med['plain']:>16.3f} | "
              + "; ".join(notes), flush=True)


def _digits_run(A, Y, truth, synth, init, scale, max_iter):
    """``run(accelerator)``: one IR-MMV run of the digits experiment, its CPU seconds,
    result and history."""
    from overparam.metrics import psnr
    from overparam.solvers import ir_mmv
    from overparam.solvers.result import History
    from overparam.stopping import StoppingRule

    def run(acc):
        hist = History(every=max(1, max_iter // 50), quantities={
            "psnr": lambda p, x: psnr(synth(x), truth, data_range=1.0)})
        start = time.process_time()
        res = ir_mmv(A, Y, init=init, init_scale=scale, history=hist,
                     stopping=StoppingRule(max_iter=max_iter), accelerator=acc)
        return time.process_time() - start, res, hist

    return run


def digits(max_iter: int, repeats: int) -> None:
    """The digits experiment's IR-MMV runs (history included), numpy against numba."""
    from overparam.experiments import get_experiment
    from overparam.experiments.papers import ir_mmv as E

    exp = get_experiment("ir-mmv-digits")
    print(f"\ndigits runs, max_iter = {max_iter}")
    print(f"{'setting':>8} {'init':>5} {'shape':>14} | {'numpy s':>8} {'numba s':>8} "
          f"{'gain':>6} | agreement")
    for setting in E.DIGIT_SETTINGS:
        cell = next(c for c in exp.cells() if c["setting"] == setting)
        A, Y, truth, _, synth = E._digits_problem(setting, cell["n_images"],
                                                  exp.trial_seed(cell, 0))
        for init, (_, scale) in E.DIGIT_INITS.items():
            run = _digits_run(A, Y, truth, synth, init, scale, max_iter)
            run("numba")
            times = {acc: [] for acc in ACCELERATORS}
            for _ in range(repeats):
                out = {}
                for acc in ACCELERATORS:
                    t, *out[acc] = run(acc)
                    times[acc].append(t)
            (ra, ha), (rb, hb) = out["numpy"], out["numba"]
            med = {k: float(np.median(v)) for k, v in times.items()}
            psnr_gap = max(abs(x - y) for x, y in zip(ha.values["psnr"], hb.values["psnr"],
                                                      strict=True))
            print(f"{E.DIGIT_SETTINGS[setting]:>8} {init:>5} {A.shape + Y.shape[1:]!s:>14} "
                  f"| {med['numpy']:>8.2f} {med['numba']:>8.2f} "
                  f"{med['numpy'] / med['numba']:>5.2f}x | {ra.stop_reason}/{rb.stop_reason}, "
                  f"n_iter {ra.n_iter}/{rb.n_iter}, coef {_rel(ra.coef, rb.coef):.1e}, "
                  f"history rows {len(ha.iteration)}/{len(hb.iteration)}, "
                  f"largest PSNR gap {psnr_gap:.1e} dB", flush=True)


_FIRST_CALL = """
import time, numpy as np
t = time.process_time()
from overparam.solvers import ir_mmv
rng = np.random.default_rng(0)
ir_mmv(rng.standard_normal((30, 60)), rng.standard_normal((30, 20)), accelerator="numba")
print(time.process_time() - t)
"""


def first_call() -> None:
    """CPU seconds of a fresh process's first compiled fit: compiling, then from the cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = [float(subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, check=True,
                                    capture_output=True, text=True).stdout)
               for _ in range(2)]
    print(f"\nfirst compiled call in a fresh process (import included): {out[0]:.1f} s "
          f"compiling, {out[1]:.1f} s from numba's cache")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 240])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=20_000)
    parser.add_argument("--skip", nargs="*", default=(), choices=("fits", "digits", "compile"))
    args = parser.parse_args(argv)
    with threadpool_limits(limits=1, user_api="blas"):
        if "fits" not in args.skip:
            fits(args.sizes, args.seeds, args.repeats)
        if "digits" not in args.skip:
            digits(args.max_iter, args.repeats)
    if "compile" not in args.skip:
        first_call()


if __name__ == "__main__":
    main()
