"""Cost of a full reproduction: CPU time per experiment and the wall time on a few jobs.

For each registered experiment (or those matching ``--only``), this runs ``--cells`` cells of
its full grid (evenly spaced in grid order), ``--trials`` trials each (evenly spaced from trial
0; a cell's time is their mean), in a fresh worker process (one BLAS thread) that first runs
one quick trial to warm up (numba compiles, imports, caches: paid once per worker in a sweep),
and measures each trial's CPU time (``time.process_time``). The
experiment's full cost is extrapolated as (mean CPU time of the sampled cells) × cells ×
trials. A trial that runs past ``--max-trial-seconds`` is killed; its experiment is then
reported as "> limit" (a lower bound).

``--store PATH`` reads the recorded (full, status ok) trial times of a result store instead of
running the trials: for every experiment the store holds (or only those given with
``--store-only``), the sum of its recorded trial times and its longest trial. Recorded times are
wall times of the workers: CPU times on an idle machine, several times more on a shared one.

From the per-trial estimates the wall time on ``--wall-jobs`` workers is computed two ways: the
runner's old order (trials in grid order, each to the first free worker) and longest first
(the longest trial starts at once; the critical path is the longest single trial, which no
number of workers can split).

``--json FILE`` saves the per-trial estimates; ``--merge FILE ...`` prints the table of several
such files (runs of different experiments, e.g. in parallel) without measuring.

Run (niced: the machine is shared)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/reproduction_cost.py --only 'group-snr' \\
        --cells 2
    python benchmarks/reproduction_cost.py --store /work/repro3/results.sqlite
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import heapq
import json
import time
from pathlib import Path

import numpy as np

from overparam.experiments.runner import plan
from overparam.experiments.spec import list_experiments
from overparam.experiments.store import ResultStore, canonical_params
from overparam.experiments.workers import iter_pool

CPU_KEY = "__reproduction_cost_cpu_s"


class CpuTimed:
    """``run_trial`` that also returns its own CPU time (picklable for the worker pool)."""

    def __init__(self, run_trial):
        self.run_trial = run_trial

    def __call__(self, params, seed):
        start = time.process_time()
        metrics = dict(self.run_trial(params, seed))
        metrics[CPU_KEY] = time.process_time() - start
        return metrics


def sample_cells(experiment, n_cells: int) -> list[dict]:
    """``n_cells`` cells of the full grid, evenly spaced in grid order (all if fewer)."""
    cells = experiment.cells(quick=False)
    if n_cells >= len(cells):
        return cells
    index = np.unique(np.round(np.linspace(0, len(cells) - 1, n_cells)).astype(int))
    return [cells[i] for i in index]


def parse_scales(specs) -> dict:
    """``["NAME:KEY=VALUE", ...]`` as ``{name: (key, value)}``."""
    out = {}
    for spec in specs or ():
        name, _, assignment = spec.partition(":")
        key, _, value = assignment.partition("=")
        if not (name and key and value):
            raise SystemExit(f"--scale wants NAME:KEY=VALUE, got {spec!r}")
        out[name] = (key, float(value))
    return out


def scaled(params: dict, scale) -> tuple[dict, float]:
    """The cell with ``key = value`` and the factor that extrapolates its CPU time back."""
    if scale is None:
        return params, 1.0
    key, value = scale
    factor = float(params[key]) / value
    return {**params, key: type(params[key])(value)}, factor


def sample_trials(n_planned: int, n_trials: int) -> set[int]:
    """``n_trials`` trial indices of a cell, evenly spaced from 0 (all if fewer)."""
    count = max(1, min(n_trials, n_planned))
    return {int(i) for i in np.round(np.linspace(0, n_planned - 1, count))} if count > 1 else {0}


def measure(experiments, n_cells: int, limit: float, warm_up: bool,
            scales: dict | None = None, n_trials: int = 1) -> dict:
    """Run the sampled cells' first trials, each experiment in a fresh worker of its own.

    With ``warm_up`` the worker first runs one quick trial, not counted: the runner's workers
    live for the whole sweep, so one-time costs (numba compiling skglm's solvers: ~35 CPU s)
    are paid once per worker, not once per trial. ``scales[name] = (key, value)`` runs that
    experiment's cells with ``key = value`` (e.g. fewer iterations of a fixed-length run) and
    multiplies the CPU time by ``cell[key] / value``: a linear extrapolation. Returns
    ``{name: {"cell_cpu": {cell: s}, "warm_up": s, "timeouts": n, "errors": n}}``.
    """
    out, scales = {}, scales or {}
    for exp in experiments:
        calls, factors = [], {}
        if warm_up:
            first = plan(exp, quick=True)[0]
            calls.append((CpuTimed(exp.run_trial), first, limit or None))
        trial_ids = sample_trials(exp.n_trials(), n_trials)
        for params in sample_cells(exp, n_cells):
            run_params, factor = scaled(params, scales.get(exp.name))
            factors[canonical_params(run_params)] = (canonical_params(params), factor)
            for task in plan(exp):
                if task.params == params and task.trial in trial_ids:
                    calls.append((CpuTimed(exp.run_trial),
                                  dataclasses.replace(task, params=run_params), limit or None))
        entry = out[exp.name] = {"cell_cpu": {}, "cell_runs": {}, "warm_up": 0.0, "timeouts": 0,
                                 "errors": 0}
        for record in iter_pool(calls, 1):
            if record.status == "ok" and record.quick:
                entry["warm_up"] = record.metrics[CPU_KEY]
            elif record.status == "ok":  # a cell's time: the mean of its sampled trials
                cell, factor = factors[canonical_params(record.params)]
                entry["cell_runs"].setdefault(cell, []).append(factor * record.metrics[CPU_KEY])
                entry["cell_cpu"][cell] = float(np.mean(entry["cell_runs"][cell]))
            elif record.status == "timeout":
                entry["timeouts"] += 1
            else:
                entry["errors"] += 1
                print(f"{record.experiment}: trial failed:\n{record.error}")
        print(f"  measured {exp.name}: warm-up {entry['warm_up']:.1f} s, cells "
              f"{[[round(v, 2) for v in runs] for runs in entry['cell_runs'].values()]} s",
              flush=True)
    return out


def trial_estimates(experiment, cell_cpu: dict) -> list[float]:
    """Estimated time of every full trial: its cell's measured time, else the mean measured."""
    mean = float(np.mean(list(cell_cpu.values()))) if cell_cpu else 0.0
    return [cell_cpu.get(canonical_params(t.params), mean) for t in plan(experiment)]


def from_store(path: str, experiments) -> dict:
    """Recorded times of the full, successful trials: ``{name: [trial times in plan order]}``."""
    out = {}
    with ResultStore(path) as store:
        for exp in experiments:
            recorded = {(canonical_params(r.params), r.trial): r.time
                        for r in store.records(exp.name, quick=False, status="ok")}
            if recorded:
                mean = float(np.mean(list(recorded.values())))
                out[exp.name] = [recorded.get(t.key, mean) for t in plan(exp)]
    return out


def makespan(times: list[float], jobs: int) -> float:
    """Wall time of list scheduling: each trial, in the given order, to the first free worker."""
    free = [0.0] * max(1, jobs)
    for t in times:
        heapq.heapreplace(free, free[0] + t)
    return max(free)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="experiment name glob (repeatable)")
    parser.add_argument("--cells", type=int, default=1, help="cells sampled per experiment")
    parser.add_argument("--trials", type=int, default=1,
                        help="trials sampled per sampled cell (their mean is the cell's time)")
    parser.add_argument("--max-trial-seconds", type=float, default=600.0,
                        help="kill a sampled trial past this (0: no limit)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="count the worker's one-time costs in the first sampled trial")
    parser.add_argument("--wall-jobs", type=int, default=2, help="jobs of the wall estimate")
    parser.add_argument("--store", help="result store whose recorded full trial times to use")
    parser.add_argument("--store-only", action="append",
                        help="use the store only for these experiment globs (repeatable); "
                             "measure the others")
    parser.add_argument("--measure", action="append",
                        help="measure only these experiment globs (repeatable); the store "
                             "gives the others")
    parser.add_argument("--scale", action="append",
                        help="NAME:KEY=VALUE: run NAME's cells with KEY=VALUE and scale the CPU "
                             "time by cell[KEY]/VALUE (e.g. ir-mmv-digits:max_iter=20000)")
    parser.add_argument("--json", help="write the per-trial estimates to this file")
    parser.add_argument("--merge", nargs="+",
                        help="print the table of earlier --json files (later ones win); "
                             "measures nothing")
    args = parser.parse_args(argv)

    exps = [e for e in list_experiments() if "demo" not in e.tags
            and (not args.only or any(fnmatch.fnmatch(e.name, p) for p in args.only))]
    if args.merge:
        entries = {}
        for path in args.merge:
            entries.update(json.loads(Path(path).read_text()))
        entries = {e.name: entries[e.name] for e in exps if e.name in entries}
        missing = [e.name for e in exps if e.name not in entries]
        if missing:
            print(f"not in the merged files (left out): {', '.join(missing)}")
    else:
        entries = estimate(exps, args, parse_scales(args.scale))
    if args.json:
        Path(args.json).write_text(json.dumps(entries, indent=1))
    print_table(entries, args.wall_jobs)


def estimate(exps, args, scales) -> dict:
    """``{name: {"times": [s per planned trial], "source": str, "note": str}}``."""
    stored = from_store(args.store, exps) if args.store else {}
    if args.store_only:
        stored = {k: v for k, v in stored.items()
                  if any(fnmatch.fnmatch(k, p) for p in args.store_only)}
    if args.measure:
        stored = {k: v for k, v in stored.items()
                  if not any(fnmatch.fnmatch(k, p) for p in args.measure)}
    to_measure = [e for e in exps if e.name not in stored]
    start = time.perf_counter()
    measured = measure(to_measure, args.cells, args.max_trial_seconds, not args.no_warm_up,
                       scales, args.trials)
    print(f"(sampling took {time.perf_counter() - start:.0f} s wall)")
    entries = {}
    for exp in exps:
        if exp.name in stored:
            entries[exp.name] = {"times": stored[exp.name], "source": "store", "note": ""}
            continue
        entry = measured[exp.name]
        n_runs = sum(len(r) for r in entry["cell_runs"].values())
        source = f"{len(entry['cell_cpu'])} cell(s), {n_runs} trial(s)"
        if exp.name in scales:
            key, value = scales[exp.name]
            source += f", run at {key}={value:g}, scaled"
        note = (f"> {args.max_trial_seconds:.0f} s: {entry['timeouts']} sampled trial(s) "
                "killed" if entry["timeouts"] else "")
        if entry["errors"]:
            note += f" {entry['errors']} failed"
        entries[exp.name] = {"times": trial_estimates(exp, entry["cell_cpu"]),
                             "source": source, "note": note}
    return entries


def print_table(entries: dict, jobs: int) -> None:
    """Experiments by cost, the total, and the wall time on ``jobs`` workers (grid order is
    the order of ``entries``: the runner's order before longest-first)."""
    rows = sorted(((sum(e["times"]), name, len(e["times"]), max(e["times"], default=0.0),
                    e["source"], e["note"]) for name, e in entries.items()), reverse=True)
    print(f"\n{'experiment':34s} {'trials':>7s} {'CPU s':>9s} {'max trial s':>12s}  source")
    for total, name, n_trials, longest, source, note in rows:
        print(f"{name:34s} {n_trials:7d} {total:9.0f} {longest:12.1f}  {source} {note}")
    all_trials = [t for e in entries.values() for t in e["times"]]
    total, longest = sum(all_trials), max(all_trials, default=0.0)
    grid_order = makespan(all_trials, jobs)
    longest_first = makespan(sorted(all_trials, reverse=True), jobs)
    bound = max(total / jobs, longest)
    print(f"\ntotal CPU {total:.0f} s = {total / 60:.1f} min over {len(all_trials)} trials; "
          f"longest trial (critical path) {longest:.0f} s")
    print(f"wall on {jobs} jobs: grid order {grid_order / 60:.1f} min, longest first "
          f"{longest_first / 60:.1f} min (lower bound {bound / 60:.1f} min)")
    incomplete = [r[1] for r in rows if r[5]]
    if incomplete:
        print(f"lower bounds only (a sampled trial was killed or failed): {', '.join(incomplete)}")


if __name__ == "__main__":
    main()
