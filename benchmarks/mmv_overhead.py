"""IR-MMV: cost per iteration on the MMV estimator's workload, optionally against a baseline.

The workload of ``MMVRegressor()`` (held-out validation, 5 folds) on the MMV setting of
benchmarks/noisy.py (M=30, N=60, L=20, K=5, 20 dB): the 5 fold paths as one batched call
(B=5 problems of 24 x 60 x 20, a Validation per problem, init_scale=1e-2), then an unbatched
refit (30 x 60 x 20) up to a flow time, with the estimator's solver settings (``init="zero"``,
the row cap ``max_row_change``; ``--paper-init``: the solver's defaults, ``init="ones"`` and
no cap, the workload of this script before issue 15). Prints CPU microseconds per loop
iteration (``time.process_time``: the call's time over its slowest problem's accepted plus
rejected steps) and the fixed cost of a
call (one iteration), medians over problems and repeats.

``--baseline PATH`` loads another version of the solver and times both side by side
(alternating), after checking that both compute the same results on the workload: either a
file, another version of ``src/overparam/solvers/mmv.py`` (e.g.
``git show HEAD:src/overparam/solvers/mmv.py > /tmp/mmv_old.py``; it runs on the current
batch loop, stopping rule and step policies), or a directory, another copy of the whole
package (e.g. ``/path/to/main/src/overparam``, loaded under another name).

``--fits N [N ...]`` (with a package directory as ``--baseline``) times instead whole default
fits, ``MMVRegressor().fit``, of both versions and of scikit-learn's ``MultiTaskLassoCV`` at
the sizes of benchmarks/mmv_speed.py (M = N/2, L = 20, K = N/12, 20 dB; ``--problems``
seeds, ``--repeats`` rounds, alternating, one BLAS thread), after checking that both
versions give the same ``coef_`` (else how far apart): median CPU seconds per fit, the ratios
and the median relative errors to the truth.

Run: ``.venv/bin/python benchmarks/mmv_overhead.py [--repeats 5] [--problems 3]
[--baseline PATH] [--paper-init] [--fits 60 600]``
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

from overparam.datasets import make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.metrics import add_noise, relative_error
from overparam.operators import DenseOperator
from overparam.solvers import ir_mmv
from overparam.stopping import StoppingRule, Validation


def _load(path, name: str = "solvers.mmv"):
    """``ir_mmv`` of another ``mmv.py`` file, or of another copy of the package (a
    directory; then ``name`` picks the module, ``ir_mmv`` of ``solvers.mmv`` by default,
    ``"estimators"`` for the module itself)."""
    if Path(path).is_dir():
        spec = importlib.util.spec_from_file_location(
            "_overparam_baseline", Path(path) / "__init__.py",
            submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location("overparam.solvers._mmv_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    if Path(path).is_dir():
        found = importlib.import_module(f"_overparam_baseline.{name}")
        return found.ir_mmv if name == "solvers.mmv" else found
    return module.ir_mmv


def _settings(paper_init: bool) -> dict:
    """The solver settings of the workload: the estimator's, or the solver's defaults."""
    if paper_init:
        return {"init_scale": 1e-2}
    est = MMVRegressor()
    return {"init_scale": 1e-2, "init": est.init, "max_row_change": est.max_row_change}


def _problem(seed, snr=20.0):
    p = make_mmv_problem(30, 60, 20, 5, row_values="gaussian", random_state=seed)
    Y, _ = add_noise(p.operator @ p.truth, snr, np.random.default_rng([seed, 1]))
    folds = list(KFold(5, shuffle=True, random_state=seed).split(np.arange(30)))
    return p.operator, Y, folds


def _validations(A, Y, folds):
    est = MMVRegressor
    return [Validation(DenseOperator(A[held]), Y[held], every=est.validation_every,
                       patience=est.validation_patience, horizon=est.validation_horizon,
                       min_improvement=est.validation_min_improvement)
            for _, held in folds]


def _workload(solver, A, Y, folds, settings):
    """(batched result, refit result, seconds per batched loop, seconds per refit loop)."""
    As = np.stack([A[train] for train, _ in folds])
    Ys = np.stack([Y[train] for train, _ in folds])
    start = time.process_time()
    batch = solver(As, Ys, validation=_validations(A, Y, folds), **settings)
    batch_time = time.process_time() - start
    stop_time = float(np.median(batch.info["best_time"]))
    start = time.process_time()
    refit = solver(A, Y, stopping=StoppingRule(max_flow_time=stop_time), **settings)
    refit_time = time.process_time() - start
    batch_loops = int(np.max(batch.n_iter + batch.info["n_rejected_steps"]))
    refit_loops = refit.n_iter + refit.info["n_rejected_steps"]
    return batch, refit, batch_time / batch_loops, refit_time / refit_loops


def _same(a, b) -> bool:
    return (np.array_equal(a.coef, b.coef) and np.array_equal(a.n_iter, b.n_iter)
            and list(np.atleast_1d(a.stop_reason)) == list(np.atleast_1d(b.stop_reason))
            and np.array_equal(a.info["time"], b.info["time"]))


def _fixed_cost(solver, A, Y, folds, settings, repeats=50):
    As = np.stack([A[train] for train, _ in folds])
    Ys = np.stack([Y[train] for train, _ in folds])
    one = StoppingRule(max_iter=1)
    costs = []
    for X, Z in ((As, Ys), (A, Y)):
        times = []
        for _ in range(repeats):
            start = time.process_time()
            solver(X, Z, stopping=one, **settings)
            times.append(time.process_time() - start)
        costs.append(float(np.median(times)))
    return costs


def _fits(sizes, n_seeds: int, repeats: int, baseline: str) -> None:
    """Whole default fits of the current and the baseline package, side by side: median CPU
    seconds and median relative errors (to the truth), and how far the two versions' ``coef_``
    lie apart (relative) where they differ."""
    from threadpoolctl import threadpool_limits

    from mmv_speed import problem  # a sibling script: benchmarks/ is on sys.path
    from overparam.baselines import MultiTaskLassoCVRegressor

    models = {"current": MMVRegressor, "baseline": _load(baseline, "estimators").MMVRegressor}
    with threadpool_limits(limits=1, user_api="blas"):
        for n in sizes:
            problems = [problem(n, seed) for seed in range(n_seeds)]
            names = (*models, "MultiTaskLassoCV")
            times = {k: [] for k in names}
            errors = {k: [] for k in names}
            for r in range(repeats):
                for p in problems:
                    coefs = []
                    for name, model in models.items():
                        est = model()
                        est.accelerator = "numpy"  # the numpy step in both (no-op on old ones)
                        start = time.process_time()
                        coefs.append(est.fit(p.operator, p.y).coef_)
                        times[name].append(time.process_time() - start)
                    start = time.process_time()
                    cv = MultiTaskLassoCVRegressor(random_state=0).fit(p.operator, p.y)
                    times["MultiTaskLassoCV"].append(time.process_time() - start)
                    if r == 0:
                        for name, coef in zip(names, (*coefs, cv.coef_), strict=True):
                            errors[name].append(relative_error(coef.T, p.truth))
                        if not np.array_equal(*coefs):
                            gap = relative_error(coefs[0], coefs[1])
                            print(f"N={n}: the two versions' coef_ differ by {gap:.2e} "
                                  f"(relative); errors {errors['current'][-1]:.4f} "
                                  f"/ {errors['baseline'][-1]:.4f}", flush=True)
            med = {k: float(np.median(v)) for k, v in times.items()}
            err = {k: float(np.median(v)) for k, v in errors.items()}
            print(f"N={n}: current {med['current']:.3f} s, baseline {med['baseline']:.3f} s "
                  f"(baseline / current {med['baseline'] / med['current']:.2f}), "
                  f"MultiTaskLassoCV {med['MultiTaskLassoCV']:.3f} s (current / MTLassoCV "
                  f"{med['current'] / med['MultiTaskLassoCV']:.2f}, baseline / MTLassoCV "
                  f"{med['baseline'] / med['MultiTaskLassoCV']:.2f}); median errors "
                  f"current {err['current']:.4f}, baseline {err['baseline']:.4f}, "
                  f"MultiTaskLassoCV {err['MultiTaskLassoCV']:.4f}", flush=True)


def main(repeats: int, n_problems: int, baseline: str | None, paper_init: bool = False) -> None:
    settings = _settings(paper_init)
    # the numpy step, as the baseline's (the compiled one: benchmarks/mmv_numba.py)
    solvers = {"current": functools.partial(ir_mmv, accelerator="numpy")}
    if baseline:
        solvers["baseline"] = _load(baseline)
    problems = [_problem(seed) for seed in range(n_problems)]
    if baseline:
        for A, Y, folds in problems:
            new, old = (_workload(s, A, Y, folds, settings) for s in solvers.values())
            identical = _same(new[0], old[0]) and _same(new[1], old[1])
            print(f"identical results on the workload: {identical}")
    per_loop = {name: ([], []) for name in solvers}
    for _ in range(repeats):
        for A, Y, folds in problems:
            for name, solver in solvers.items():
                _, _, batch, refit = _workload(solver, A, Y, folds, settings)
                per_loop[name][0].append(batch)
                per_loop[name][1].append(refit)
    A, Y, folds = problems[0]
    print(f"{'':10s} {'B=5 us/iter':>12s} {'B=1 us/iter':>12s} {'B=5 call us':>12s} "
          f"{'B=1 call us':>12s}")
    for name, solver in solvers.items():
        fixed = _fixed_cost(solver, A, Y, folds, settings)
        batch, refit = (1e6 * float(np.median(t)) for t in per_loop[name])
        print(f"{name:10s} {batch:12.1f} {refit:12.1f} {1e6 * fixed[0]:12.0f} "
              f"{1e6 * fixed[1]:12.0f}")
    if baseline:
        for k, label in enumerate(("B=5", "B=1")):
            ratio = np.median(per_loop["baseline"][k]) / np.median(per_loop["current"][k])
            print(f"baseline / current per iteration, {label}: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--baseline", default=None,
                        help="another version of solvers/mmv.py, or of the package directory")
    parser.add_argument("--paper-init", action="store_true",
                        help="the solver's defaults (init='ones', no row cap)")
    parser.add_argument("--fits", type=int, nargs="+", default=None,
                        help="time whole default fits at these N (needs a package --baseline)")
    args = parser.parse_args()
    if args.fits:
        if not (args.baseline and Path(args.baseline).is_dir()):
            parser.error("--fits needs --baseline with a package directory")
        _fits(args.fits, args.problems, args.repeats, args.baseline)
    else:
        main(args.repeats, args.problems, args.baseline, args.paper_init)
