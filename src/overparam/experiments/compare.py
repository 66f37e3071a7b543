"""Compare the numbers of two result stores: did a change preserve the reproduction's results?

``python -m overparam.experiments.compare OLD NEW`` reads two stores (a ``results.sqlite``
or the folder that holds one, as ``overparam reproduce --outdir`` writes it) and prints, for
every experiment stored in both, the numbers that differ by more than a relative tolerance:

* the report's headline numbers: each experiment's ``summarize`` output and the measured value
  and verdict of each declared claim, computed by the *current* code from each store's rows
  of the trials finished in both (so a difference comes from the stored trials, not from a
  changed summary or an unfinished run);
* the trials themselves: every scalar metric of every (cell, trial) stored in both.

Wall-clock times (metrics in seconds, see :func:`~overparam.experiments.report.unit_of`)
change from run to run and are left out.

Cells stored in only one of the two (a grid that changed) are counted, not compared.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .report import _grid_rows, unit_of
from .runner import summarize_and_plot
from .spec import Experiment, format_number, list_experiments
from .store import ResultStore, canonical_params

__all__ = ["Difference", "ExperimentComparison", "compare_stores", "format_comparison",
           "relative_difference"]


@dataclass(frozen=True)
class Difference:
    """One number (or text) of an experiment in the old and the new store."""

    label: str
    old: object
    new: object
    rel: float  # relative difference; inf for a changed text or a number present in one only


@dataclass
class ExperimentComparison:
    """What differs in one experiment between the two stores."""

    name: str
    headlines: list[Difference] = field(default_factory=list)  # every headline number
    trial_diffs: list[Difference] = field(default_factory=list)  # trial metrics past rtol
    trials_compared: int = 0
    metrics_compared: int = 0
    only_old: int = 0  # (cell, trial) pairs finished (status ok) in the old store only
    only_new: int = 0
    failed_old: int = 0  # trials stored with an error or a timeout
    failed_new: int = 0

    def changed(self, rtol: float) -> list[Difference]:
        """The headline numbers that differ by more than ``rtol`` (wall-clock times aside)."""
        return [d for d in self.headlines if not d.rel <= rtol and not _is_timing(d.label)]


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")


def relative_difference(old, new, atol: float = 1e-12) -> float:
    """``|new − old| / max(|old|, |new|, atol)``; 0 for equal values (NaN = NaN, ∞ = ∞).

    Texts that differ only in their numbers ("0.121 ± 0.01" and "0.124 ± 0.01") give the
    largest relative difference of those numbers; other texts and missing values count as
    equal or infinitely different.
    """
    if _is_number(old) and _is_number(new):
        a, b = float(old), float(new)
        if a == b or (math.isnan(a) and math.isnan(b)):
            return 0.0
        if not (math.isfinite(a) and math.isfinite(b)):
            return math.inf
        return abs(b - a) / max(abs(a), abs(b), atol)
    if isinstance(old, str) and isinstance(new, str) and old != new:
        if _NUMBER.sub("#", old) == _NUMBER.sub("#", new):
            return max(relative_difference(float(a), float(b), atol)
                       for a, b in zip(_NUMBER.findall(old), _NUMBER.findall(new), strict=True))
    return 0.0 if old == new else math.inf


def _is_timing(label: str) -> bool:
    """Wall-clock times (``ir_time``, ``time_M-SP``) differ from run to run: not compared."""
    return unit_of(label.rsplit(": ", 1)[-1]) == "s"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flatten(value, label: str = "") -> dict[str, object]:
    """A summary as ``label -> number or text``; nested dicts and lists get joined labels."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if k != "error":
                out.update(_flatten(v, f"{label}: {k}" if label else str(k)))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{label}[{i}]"))
        return out
    return {label: value}


def _headlines(spec: Experiment, rows: list) -> dict[str, object]:
    """The report's headline numbers of ``rows``: the summary and each claim's measured value."""
    summary = summarize_and_plot(spec, rows, None)[0] if rows else {}
    out = {f"summary: {k}": v for k, v in _flatten(summary).items()}
    if "error" in summary:
        out["summary failed"] = summary["error"].strip().splitlines()[-1]
    for claim in spec.claims:
        outcome = claim.evaluate(rows, summary)
        out[f"claim {claim.name}: measured"] = outcome.measured
        out[f"claim {claim.name}: verdict"] = outcome.verdict.value
    return out


def _trial_metrics(records) -> dict[tuple, dict]:
    return {(canonical_params(r.params), r.trial): r.metrics or {} for r in records
            if r.status == "ok"}


def _compare_trials(result: ExperimentComparison, old_records, new_records,
                    rtol: float, atol: float) -> None:
    old, new = _trial_metrics(old_records), _trial_metrics(new_records)
    common = sorted(set(old) & set(new), key=str)
    result.only_old = len(set(old) - set(new))
    result.only_new = len(set(new) - set(old))
    result.failed_old = sum(r.status != "ok" for r in old_records)
    result.failed_new = sum(r.status != "ok" for r in new_records)
    result.trials_compared = len(common)
    for key in common:
        for metric in sorted(set(old[key]) & set(new[key])):
            a, b = old[key][metric], new[key][metric]
            if not (_is_number(a) and _is_number(b)) or _is_timing(metric):
                continue
            result.metrics_compared += 1
            rel = relative_difference(a, b)
            if not (rel <= rtol or abs(float(b) - float(a)) <= atol):
                params, trial = key
                result.trial_diffs.append(Difference(f"{params} trial {trial}: {metric}",
                                                     a, b, rel))
    result.trial_diffs.sort(key=lambda d: -d.rel if not math.isnan(d.rel) else 0.0)


def compare_stores(old: str | Path, new: str | Path, *, quick: bool = True,
                   rtol: float = 1e-6, atol: float = 0.0,
                   names: Sequence[str] | None = None) -> list[ExperimentComparison]:
    """Compare every registered experiment stored in both ``old`` and ``new``.

    Parameters
    ----------
    old, new : path
        Result stores, or folders holding ``results.sqlite``.
    quick : bool, default=True
        Compare the quick (``overparam reproduce --quick``) or the full results.
    rtol, atol : float, default=1e-6, 0
        A trial metric differs when it is past both the relative and the absolute
        tolerance (headlines are all kept; see :meth:`ExperimentComparison.changed`).
    names : sequence of str, optional
        Only these experiments.

    Returns
    -------
    list of ExperimentComparison
        In the registry's order.
    """
    with ResultStore(_store_path(old)) as a, ResultStore(_store_path(new)) as b:
        stored = {n for n, q in a.experiments() if q == quick} & {
            n for n, q in b.experiments() if q == quick}
        out = []
        for spec in list_experiments():
            if spec.name not in stored or (names is not None and spec.name not in names):
                continue
            old_records = a.records(spec.name, quick=quick)
            new_records = b.records(spec.name, quick=quick)
            result = ExperimentComparison(spec.name)
            # Headlines over the trials finished in both: a partial store compares like
            # for like (the counts say how many were left out).
            both = set(_trial_metrics(old_records)) & set(_trial_metrics(new_records))
            old_rows, new_rows = (
                [r for r in _grid_rows(records, spec, quick)[1]
                 if (canonical_params(r["params"]), r["trial"]) in both]
                for records in (old_records, new_records))
            h_old, h_new = _headlines(spec, old_rows), _headlines(spec, new_rows)
            result.headlines = [Difference(k, h_old.get(k), h_new.get(k),
                                           relative_difference(h_old.get(k), h_new.get(k)))
                                for k in dict.fromkeys([*h_old, *h_new])]
            _compare_trials(result, old_records, new_records, rtol, atol)
            out.append(result)
    return out


def _store_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "results.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"no result store at {path}")
    return path


def _show(value) -> str:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value)[:80]
    return format_number(value)


def format_comparison(results: Sequence[ExperimentComparison], rtol: float = 1e-6,
                      show_all: bool = False, max_trial_rows: int = 5) -> str:
    """The comparison as Markdown: one table of the headline numbers that differ, per trial
    counts, and the largest differences of the trial metrics."""
    lines = [f"Relative tolerance {rtol:g}.", "",
             "| experiment | headline number | old | new | relative difference |",
             "|---|---|---|---|---|"]
    n_changed = n_headlines = 0
    for r in results:
        n_headlines += len(r.headlines)
        shown = r.headlines if show_all else r.changed(rtol)
        n_changed += len(r.changed(rtol))
        lines += [f"| {r.name} | {d.label} | {_show(d.old)} | {_show(d.new)} | "
                  f"{format_number(d.rel)} |" for d in shown]
    lines += ["", f"{n_changed} of {n_headlines} headline numbers differ by more than "
              f"{rtol:g}.", "",
              "| experiment | trials compared | metrics compared | metrics past tolerance | "
              "largest relative difference | only old | only new | failed old | failed new |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        largest = r.trial_diffs[0].rel if r.trial_diffs else 0.0
        lines.append(f"| {r.name} | {r.trials_compared} | {r.metrics_compared} | "
                     f"{len(r.trial_diffs)} | {format_number(largest)} | {r.only_old} | "
                     f"{r.only_new} | {r.failed_old} | {r.failed_new} |")
    for r in results:
        for d in r.trial_diffs[:max_trial_rows]:
            lines.append(f"- {r.name} {d.label}: {_show(d.old)} -> {_show(d.new)} "
                         f"({format_number(d.rel)})")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m overparam.experiments.compare OLD NEW [--rtol R]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="result store (or its folder) before the change")
    parser.add_argument("new", help="result store (or its folder) after the change")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=0.0,
                        help="absolute tolerance of the trial metrics")
    parser.add_argument("--full", action="store_true", help="compare the full results")
    parser.add_argument("--all", action="store_true", help="list every headline number")
    parser.add_argument("--only", action="append", help="experiment name; repeatable")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a headline number differs past rtol")
    args = parser.parse_args(argv)
    results = compare_stores(args.old, args.new, quick=not args.full, rtol=args.rtol,
                             atol=args.atol, names=args.only)
    sys.stdout.write(format_comparison(results, args.rtol, show_all=args.all))
    return int(args.check and any(r.changed(args.rtol) for r in results))


if __name__ == "__main__":
    raise SystemExit(main())
