"""Do the IR-MMV experiments' last iterations change what they report?

For each chosen cell (and trial) of an ``ir-mmv-*`` experiment's full grid this runs the
experiment's own trial twice, with ``max_iter`` cut to ``--fraction`` of the grid's and with
the grid's, and prints how far the metrics that describe the end of the run moved in between:
the relative change of each (largest over the problems of a batch), and the stop reasons and
iteration counts. The two runs follow the same path (a stop on ``max_iter`` changes nothing
before it), so a change here is what the iterations past the cut contribute to the stored
numbers; zero would mean they could be cut. Curves sampled along the run (their sampling
period is ``max_iter``-dependent) are not compared.

``--digits-batch`` instead times the digits' two IR-MMV inits (same problem) run as one batch
of two against two calls, ``--iterations`` each, alternating (CPU time, median of
``--repeats``), and checks that the batch gives the same estimates, iteration counts and clocks
bit for bit. ``--trial-batch`` does the same for ``B`` problems of the balance experiment's
kind (rows ``1, 2, 3 x 1_L``, L = 100, ``alpha_g = 1e-4``; seeds 0..B-1), as if a cell's
trials ran as one batch, for B = 3 and 5 on 50 x 25 and 25 x 50 (2,000 iterations).

Run (niced: the machine is shared)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mmv_cap.py ir-mmv-error-vs-k --cells 2 5
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mmv_cap.py ir-mmv-init-scale --cells 3 \\
        --trials 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/mmv_cap.py ir-mmv-digits --digits-batch
    OMP_NUM_THREADS=1 python benchmarks/mmv_cap.py ir-mmv-balance --trial-batch
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from overparam.experiments import get_experiment

#: Per experiment: the stored metrics that describe the end of a run (not the sampled curves).
END_METRICS = {
    "ir-mmv-digits": ("psnr_IR-MMV", "psnr_IR-MMV (paper init)", "ir_iterations",
                      "ir_iterations_paper_init", "ir_stop_reason", "ir_stop_reason_paper_init"),
    "ir-mmv-init-scale": ("final_loss", "rel_error", "off_support_norm", "n_iter",
                          "stop_reason"),
    "ir-mmv-balance": ("rel_error", "n_iter", "stop_reason"),
    "ir-mmv-error-vs-m": ("IR-MMV_errors", "ir_iterations_max", "ir_stop_reasons"),
    "ir-mmv-error-vs-k": ("IR-MMV_errors", "ir_iterations_max", "ir_stop_reasons"),
}


def _change(a, b) -> str:
    """The relative change from ``a`` to ``b`` (largest over a list), or both texts."""
    if isinstance(a, str | bool) or (isinstance(a, list) and a and isinstance(a[0], str)):
        return f"{a} -> {b}" if a != b else f"{a} (same)"
    a, b = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    rel = np.abs(b - a) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    rel[a == b] = 0.0
    if a.size > 1:
        return (f"{float(np.max(rel)):.2e} (largest of {a.size}; {int(np.sum(rel > 1e-12))} "
                f"moved by more than 1e-12)")
    return f"{float(rel.max()):.2e} ({float(a[0]):.6g} -> {float(b[0]):.6g})"


def digits_batch(iterations: int, repeats: int) -> None:
    """Two calls (one per init) against one batch of two, per digits setting."""
    from overparam.experiments.papers import ir_mmv as E
    from overparam.solvers import ir_mmv
    from overparam.solvers.mmv import _start_params
    from overparam.stopping import StoppingRule

    exp = get_experiment("ir-mmv-digits")
    rule = StoppingRule(max_iter=iterations)
    for setting in E.DIGIT_SETTINGS:
        cell = next(c for c in exp.cells() if c["setting"] == setting)
        A, Y, *_ = E._digits_problem(setting, cell["n_images"], exp.trial_seed(cell, 0))
        # each init's start as ir_mmv makes it, one per problem of the batch
        starts = [_start_params(None, 1, A.shape[1], Y.shape[1], init_scale=scale, v_scale=None,
                                init=init) for init, (_, scale) in E.DIGIT_INITS.items()]
        g0, V0 = (np.concatenate(parts) for parts in zip(*starts, strict=True))
        times = {"two calls": [], "one batch": []}
        for _ in range(repeats):
            start = time.process_time()
            single = [ir_mmv(A, Y, init=init, init_scale=scale, stopping=rule)
                      for init, (_, scale) in E.DIGIT_INITS.items()]
            times["two calls"].append(time.process_time() - start)
            start = time.process_time()
            batch = ir_mmv(np.stack([A, A]), np.stack([Y, Y]), init_params=(g0, V0),
                           stopping=rule)
            times["one batch"].append(time.process_time() - start)
        same = all(np.array_equal(r.coef, batch.coef[b]) and r.n_iter == batch.n_iter[b]
                   and r.info["time"] == batch.info["time"][b]
                   for b, r in enumerate(single))
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(f"{setting[:15]} {A.shape}: two calls {med['two calls']:.2f} s, one batch "
              f"{med['one batch']:.2f} s ({med['two calls'] / med['one batch']:.2f}x), "
              f"bit for bit: {same}", flush=True)


def trial_batch(repeats: int) -> None:
    """``B`` single calls against one batch of ``B`` (balance-like problems, one shape)."""
    from overparam.datasets.mmv import make_mmv_problem
    from overparam.solvers import ir_mmv
    from overparam.stopping import StoppingRule

    rule = StoppingRule(max_iter=2000, tol=0, stagnation_tol=0)  # a fixed length
    for M, N in ((50, 25), (25, 50)):
        for B in (3, 5):
            probs = [make_mmv_problem(M, N, 100, 3, row_values="ramp", random_state=s)
                     for s in range(B)]
            A, Y = np.stack([p.operator for p in probs]), np.stack([p.y for p in probs])
            times = {"single": [], "batch": []}
            for _ in range(repeats):
                start = time.process_time()
                single = [ir_mmv(p.operator, p.y, init_scale=1e-4, stopping=rule)
                          for p in probs]
                times["single"].append(time.process_time() - start)
                start = time.process_time()
                batch = ir_mmv(A, Y, init_scale=1e-4, stopping=rule)
                times["batch"].append(time.process_time() - start)
            same = all(np.array_equal(r.coef, batch.coef[b]) and r.n_iter == batch.n_iter[b]
                       for b, r in enumerate(single))
            med = {k: float(np.median(v)) for k, v in times.items()}
            print(f"{M} x {N}, B = {B}: {B} calls {med['single']:.2f} s, one batch "
                  f"{med['batch']:.2f} s ({med['single'] / med['batch']:.2f}x), bit for bit: "
                  f"{same}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=sorted(END_METRICS))
    ap.add_argument("--cells", type=int, nargs="+", default=[0], help="indices in the grid")
    ap.add_argument("--trials", type=int, nargs="+", default=[0])
    ap.add_argument("--fraction", type=float, default=0.5, help="of max_iter, the cut run")
    ap.add_argument("--digits-batch", action="store_true",
                    help="time the digits' two inits as one batch against two calls")
    ap.add_argument("--trial-batch", action="store_true",
                    help="time B balance-like problems as one batch against B calls")
    ap.add_argument("--iterations", type=int, default=3000, help="of --digits-batch")
    ap.add_argument("--repeats", type=int, default=3, help="of --digits-batch, --trial-batch")
    args = ap.parse_args(argv)
    if args.digits_batch:
        digits_batch(args.iterations, args.repeats)
        return
    if args.trial_batch:
        trial_batch(args.repeats)
        return
    exp = get_experiment(args.experiment)
    cells = exp.cells()
    for c in args.cells:
        for trial in args.trials:
            params = cells[c]
            seed = exp.trial_seed(params, trial)
            cut = {**params, "max_iter": int(args.fraction * params["max_iter"])}
            start = time.process_time()
            short = exp.run_trial(cut, seed)
            mid = time.process_time()
            full = exp.run_trial(params, seed)
            end = time.process_time()
            shown = {k: v for k, v in params.items() if k not in ("L", "max_iter")}
            print(f"cell {c} trial {trial} {shown}: CPU {mid - start:.1f} s to "
                  f"{cut['max_iter']}, {end - mid:.1f} s to {params['max_iter']}")
            for key in END_METRICS[args.experiment]:
                if key in full:
                    print(f"    {key}: {_change(short[key], full[key])}", flush=True)


if __name__ == "__main__":
    main()
