"""Paper fidelity (issue 16): the measurements behind docs/fidelity.md.

Each subcommand runs a registered experiment's ``run_trial`` on a chosen grid (more trials or
other cells than the quick grid, fewer than the full reproduction) and prints the numbers that
docs/fidelity.md quotes. Run: ``python benchmarks/fidelity.py {more-is-less,horizon,group-fig2,
group-snr,diabetes,spectral} [--trials N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from threadpoolctl import threadpool_limits

from overparam.experiments import get_experiment
from overparam.experiments.runner import run_serial


def _rows(name, grid, trials):
    exp = dataclasses.replace(get_experiment(name), grid=grid)
    start = time.perf_counter()
    rows = run_serial(exp, trials=trials)
    print(f"{name}: {len(rows)} trials in {time.perf_counter() - start:.0f} s")
    return exp, rows


def _print(summary):
    for key, value in summary.items():
        print(f"  {key}: {value}")


def more_is_less(trials):
    """Both init readings over (M, s), signed and positive, limit of the flow."""
    grid = {"sign": ["positive", "signed"], "M": list(range(4, 21, 2)), "s": list(range(1, 9)),
            "init_reading": ["product", "per-factor"], "horizon": ["limit"]}
    exp, rows = _rows("more-is-less-phase-transition", grid, trials)
    _print(exp.summarize(rows))
    for sign in ("positive", "signed"):
        for reading in ("product", "per-factor"):
            kept = [r["metrics"] for r in rows
                    if r["params"]["sign"] == sign and r["params"]["init_reading"] == reading]
            for ir in ("ir2", "ir3"):
                same = np.mean([m[f"success_{ir}"] == m["success_bp"] for m in kept])
                print(f"  {sign}, {reading}: {ir} succeeds/fails with BP in {same:.3f} "
                      f"of {len(kept)} trials")


def horizon(trials):
    """The paper's eta T = 1e5 instead of the limit, a few cells."""
    grid = {"sign": ["signed"], "M": [8, 12, 16], "s": [2, 4],
            "init_reading": ["product", "per-factor"], "horizon": ["paper"]}
    exp, rows = _rows("more-is-less-phase-transition", grid, trials)
    _print(exp.summarize(rows))


def group_fig2(trials):
    """Fig. 2/6 at the full 20,000 iterations on both loss scales."""
    grid = {"algorithm": ["alg1", "alg2"], "n_iter": [20_000],
            "loss_scale": ["half-mean", "authors"], "tau": [0.1]}
    exp, rows = _rows("group-convergence", grid, trials)
    _print(exp.summarize(rows))


def group_snr(trials):
    grid = {"snr_db": [10, 20, 30], "n_alphas": [30]}
    exp, rows = _rows("group-snr", grid, trials)
    _print(exp.summarize(rows))


def diabetes(trials):
    exp = get_experiment("group-diabetes")
    exp, rows = _rows("group-diabetes", exp.grid, trials)
    _print(exp.summarize(rows))


def spectral(trials):
    exp = get_experiment("spectral-nn-recovery")
    exp, rows = _rows(exp.name, exp.grid, trials)
    _print(exp.summarize(rows))


_COMMANDS = {"more-is-less": more_is_less, "horizon": horizon, "group-fig2": group_fig2,
             "group-snr": group_snr, "diabetes": diabetes, "spectral": spectral}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(_COMMANDS))
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    with threadpool_limits(1):
        _COMMANDS[args.command](args.trials)


if __name__ == "__main__":
    main()
