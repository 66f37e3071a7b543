"""The reproduction report: every experiment's figure, numbers and the paper's claim, from a store.

:func:`write_report` reads a :class:`~overparam.experiments.store.ResultStore` only, so a report
can be re-rendered at any time without re-running anything: figures are drawn again from the
stored rows with each spec's ``plot``, the headline numbers come from its ``summarize`` and the
tables from :func:`~overparam.experiments.aggregate`. It writes ``report.html`` and ``report.md``
with ``figures/<name>.png`` and ``data/<name>.csv`` beside them.
"""

from __future__ import annotations

import html
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .runner import RunResult, summarize_and_plot
from .spec import Experiment, aggregate, list_experiments
from .store import (
    ResultStore,
    TrialRecord,
    canonical_params,
    machine_info,
    path_inside,
    write_csv,
)

__all__ = ["ExperimentSection", "collect", "write_report"]

#: At most this many rows per aggregate table in the page (the CSV has everything).
MAX_TABLE_ROWS = 40
#: At most this many metrics (columns) per aggregate table.
MAX_TABLE_METRICS = 6


@dataclass
class ExperimentSection:
    """Everything the report shows about one experiment."""

    name: str
    quick: bool
    spec: Experiment | None
    rows: list
    errors: list[TrialRecord]
    summary: dict = field(default_factory=dict)
    figure: str | None = None  # path relative to the report
    csv: str | None = None
    plot_error: str | None = None
    table_columns: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    table_note: str = ""
    trial_time: float = 0.0
    versions: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def _fmt(value) -> str:
    """A number as the report prints it: 4 significant digits, ints as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) <= 4:
            return "[" + ", ".join(_fmt(v) for v in value) + "]"
        return f"[{_fmt(value[0])}, …, {_fmt(value[-1])}] ({len(value)} values)"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _is_scalar(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _aggregate_table(rows: list) -> tuple[list[str], list[list[str]], str]:
    """Per-cell mean ± sd of each scalar metric, grouped by the parameters that vary."""
    if not rows:
        return [], [], ""
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    varying = [p for p in params
               if len({json.dumps(r["params"].get(p), default=str) for r in rows}) > 1]
    metrics = [m for m in dict.fromkeys(k for r in rows for k in r["metrics"])
               if any(_is_scalar(r["metrics"].get(m)) for r in rows)]
    note = ""
    if len(metrics) > MAX_TABLE_METRICS:
        note = f"{len(metrics) - MAX_TABLE_METRICS} more metrics in the CSV. "
        metrics = metrics[:MAX_TABLE_METRICS]
    # Group under private names so that no parameter can clash with a statistic's name.
    safe = {p: f"\x00{i}" for i, p in enumerate(varying)}
    renamed = [{"params": {safe[p]: _sort_key(r["params"].get(p)) for p in varying},
                "metrics": r["metrics"]} for r in rows]
    cells: dict[tuple, dict] = {}
    for metric in metrics:
        scalar_rows = [r for r in renamed if _is_scalar(r["metrics"].get(metric))]
        for s in aggregate(scalar_rows, [safe[p] for p in varying], metric):
            key = tuple(s[safe[p]] for p in varying)
            entry = (f"{_fmt(s['mean'])} ± {_fmt(s['sd'])}" if s["count"] > 1
                     else _fmt(s["mean"]))
            cells.setdefault(key, {"count": 0})[metric] = entry
            cells[key]["count"] = max(cells[key]["count"], s["count"])
    keys = sorted(cells)
    if len(keys) > MAX_TABLE_ROWS:
        note += f"First {MAX_TABLE_ROWS} of {len(keys)} cells shown; all are in the CSV."
        keys = keys[:MAX_TABLE_ROWS]
    columns = [*varying, *(f"{m} (mean ± sd)" for m in metrics), "trials"]
    table = [[_fmt(v) for _, v in key] + [cells[key].get(m, "") for m in metrics]
             + [str(cells[key]["count"])] for key in keys]
    return columns, table, note.strip()


def _sort_key(value) -> tuple:
    """A hashable, mutually comparable stand-in for a parameter value (numbers first)."""
    if _is_scalar(value):
        return (0, value)
    if isinstance(value, list | dict):
        return (2, json.dumps(value, default=str))
    return (1, "" if value is None else str(value))


def _grid_rows(records: list[TrialRecord], spec: Experiment | None,
               quick: bool) -> tuple[list[TrialRecord], list[dict], int]:
    """The records of the spec's current grid in grid order, their rows, and how many were not.

    Rows carry the spec's own parameter values (tuples stay tuples), as the runner gives them,
    so that a plot sees the same rows after a re-render as after a run. Without a spec (an
    experiment no longer registered) every record is kept, in the store's order.
    """
    if spec is None:
        return records, [r.as_row() for r in records if r.status == "ok"], 0
    cells = {canonical_params(c): (i, c) for i, c in enumerate(spec.cells(quick))}
    kept = sorted((r for r in records if canonical_params(r.params) in cells),
                  key=lambda r: (cells[canonical_params(r.params)][0], r.trial))
    rows = []
    for record in kept:
        if record.status == "ok":
            row = record.as_row()
            row["params"] = dict(cells[canonical_params(record.params)][1])
            rows.append(row)
    return kept, rows, len(records) - len(kept)


def _choose_mode(modes: set[bool], quick: bool | None) -> bool | None:
    if quick is not None:
        return quick if quick in modes else None
    return False if False in modes else (True if True in modes else None)


def collect(store: ResultStore, outdir: str | Path, *, quick: bool | None = None,
            names: Sequence[str] | None = None,
            fresh_results: Sequence[RunResult] = ()) -> list[ExperimentSection]:
    """Build each experiment's section from the store, drawing figures and writing CSVs.

    Parameters
    ----------
    store : ResultStore
    outdir : path
        Report folder; figures go to ``figures/``, CSVs to ``data/``.
    quick : bool, optional
        Show the quick (``True``) or full (``False``) results; default: full where stored,
        else quick.
    names : sequence of str, optional
        Only these experiments (default: every experiment with stored trials).
    fresh_results : sequence of RunResult, optional
        Results of a run just made on this store (``overparam reproduce``): where one holds
        exactly the rows shown, its figure is copied and its summary reused instead of being
        computed again.
    """
    fresh = {(r.experiment.name, r.quick): r for r in fresh_results}
    registry = {e.name: e for e in list_experiments()}
    registry.update({r.experiment.name: r.experiment for r in fresh_results})
    outdir = Path(outdir)
    stored: dict[str, set[bool]] = {}
    for name, mode in store.experiments():
        stored.setdefault(name, set()).add(mode)
    order = [n for n in registry if n in stored] + sorted(n for n in stored if n not in registry)
    if names is not None:
        unknown = set(names) - set(stored)
        if unknown:
            raise ValueError(f"no stored results for {sorted(unknown)} in {store.path}")
        order = [n for n in order if n in set(names)]
    sections = []
    for name in order:
        mode = _choose_mode(stored[name], quick)
        if mode is None:
            continue
        spec = registry.get(name)
        records, rows, n_stale = _grid_rows(store.records(name, quick=mode), spec, mode)
        section = ExperimentSection(
            name=name, quick=mode, spec=spec, rows=rows,
            errors=[r for r in records if r.status != "ok"],
            trial_time=sum(r.time for r in records),
            versions=sorted({r.version for r in records}))
        if spec is not None:
            figure = path_inside(outdir / "figures", f"{name}.png")  # name: stored text
            figure.unlink(missing_ok=True)
            done = fresh.get((name, mode))
            if done is not None and done.experiment is spec and done.rows == rows and (
                    done.figure is not None or spec.plot is None):
                section.summary, section.plot_error = done.summary, done.plot_error
                if done.figure is not None:
                    figure.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(done.figure, figure)
            else:
                section.summary, section.plot_error = summarize_and_plot(spec, rows, figure)
            if figure.exists():
                section.figure = f"figures/{name}.png"
        if rows:
            write_csv(path_inside(outdir / "data", f"{name}.csv"), rows)
            section.csv = f"data/{name}.csv"
        section.table_columns, section.table, section.table_note = _aggregate_table(rows)
        if n_stale:
            section.table_note += (f" {n_stale} stored trials of cells no longer in the grid"
                                   " are left out.")
            section.table_note = section.table_note.strip()
        sections.append(section)
    return sections


# ---------------------------------------------------------------------------------------------
# Rendering

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { font-size: 1.3rem; border-top: 1px solid #ccc;
     padding-top: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.claim { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.claim > div { background: #f7f7fb; border-left: 4px solid #5060c0; padding: 0.5rem 0.8rem; }
.claim > div.measured { border-left-color: #40a060; }
.meta { color: #555; font-size: 0.9rem; }
img { max-width: 100%; border: 1px solid #ddd; }
.error { color: #a00; } pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto;
     font-size: 0.8rem; }
.badge { font-size: 0.75rem; padding: 0.1rem 0.4rem; border-radius: 0.3rem; background: #eee; }
"""


def _h(value) -> str:
    return html.escape(str(value))


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_h(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{_num_class(v)}>{_h(v)}</td>" for v in row) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num_class(value) -> str:
    """Right-align numbers (and ``mean ± sd`` cells) so that digits line up."""
    head = str(value).split(" ± ")[0]
    try:
        float(head)
    except ValueError:
        return ""
    return ' class="num"'


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_items(section: ExperimentSection) -> list[tuple[str, str]]:
    return [(k, _fmt(v)) for k, v in section.summary.items() if k != "error"]


def _overview(sections: list[ExperimentSection]) -> tuple[list[str], list[list[str]]]:
    columns = ["experiment", "paper", "figure", "mode", "trials", "failed", "trial time (s)",
               "measured"]
    rows = []
    for s in sections:
        spec = s.spec
        measured = "; ".join(f"{k} = {v}" for k, v in _summary_items(s)[:3])
        if "error" in s.summary:
            measured = "summarize failed"
        rows.append([s.name, spec.paper if spec else "?", spec.figure if spec else "?", s.mode,
                     str(len(s.rows)), str(len(s.errors)), f"{s.trial_time:.1f}", measured])
    return columns, rows


def _runs_table(store: ResultStore) -> tuple[list[str], list[list[str]]]:
    columns = ["run", "started (UTC)", "mode", "backend", "jobs", "experiments", "trials run",
               "failed", "wall time (s)"]
    rows = []
    for r in store.runs()[-20:]:
        rows.append([str(r["run_id"]),
                     time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["started_at"])),
                     "quick" if r["quick"] else "full", r["backend"], str(r["jobs"]),
                     str(len(r["experiments"])), _fmt(r["n_run"]), _fmt(r["n_errors"]),
                     "unfinished" if r["wall_time"] is None else f"{r['wall_time']:.1f}"])
    return columns, rows


def _machine(store: ResultStore) -> dict:
    runs = store.runs()
    return runs[-1]["machine"] if runs else machine_info()


def _render_html(sections, store, title) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_h(title)}</h1>",
             f"<p class='meta'>Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
             f" from <code>{_h(store.path)}</code>. Each section puts the paper's claim beside"
             " the measured numbers; tables give mean ± sd over trials per grid cell.</p>"]
    parts.append("<h2 id='overview'>Overview</h2>")
    columns, rows = _overview(sections)
    linked = [[f"<a href='#{_h(r[0])}'>{_h(r[0])}</a>", *(_h(v) for v in r[1:])] for r in rows]
    head = "".join(f"<th>{_h(c)}</th>" for c in columns)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>"
                           for r in linked) + "</tbody></table>")
    machine = _machine(store)
    parts.append("<h3>Machine</h3>" + _html_table(["property", "value"],
                                                   [[k, v] for k, v in machine.items()]))
    parts.append("<h3>Runs</h3>" + _html_table(*_runs_table(store)))
    for s in sections:
        spec = s.spec
        parts.append(f"<h2 id='{_h(s.name)}'>{_h(s.name)} <span class='badge'>{s.mode}</span>"
                     "</h2>")
        if spec is not None:
            parts.append(f"<p class='meta'>Paper <b>{_h(spec.paper)}</b>, {_h(spec.figure)}."
                         f" {_h(spec.description)}</p>")
        else:
            parts.append("<p class='meta'>Not a registered experiment: stored data only.</p>")
        measured = "".join(f"<li>{_h(k)}: <b>{_h(v)}</b></li>" for k, v in _summary_items(s))
        if "error" in s.summary:
            measured += (f"<li class='error'>summarize failed</li>"
                         f"<pre>{_h(s.summary['error'])}</pre>")
        parts.append("<div class='claim'>"
                     f"<div><b>Paper's claim</b><p>{_h(spec.claim if spec else '—')}</p></div>"
                     f"<div class='measured'><b>Measured</b><ul>{measured or '<li>—</li>'}</ul>"
                     "</div></div>")
        if s.figure:
            parts.append(f"<p><img src='{_h(s.figure)}' alt='figure of {_h(s.name)}'></p>")
        elif s.plot_error:
            parts.append(f"<p class='error'>The plot failed:</p><pre>{_h(s.plot_error)}</pre>")
        if s.table:
            parts.append(_html_table(s.table_columns, s.table))
        if s.table_note:
            parts.append(f"<p class='meta'>{_h(s.table_note)}</p>")
        csv_link = f" Data: <a href='{_h(s.csv)}'>{_h(s.csv)}</a>." if s.csv else ""
        parts.append(f"<p class='meta'>{len(s.rows)} trials, summed trial time "
                     f"{s.trial_time:.2f} s, overparam {_h(', '.join(s.versions))}.{csv_link}</p>")
        if s.errors:
            parts.append(f"<p class='error'>{len(s.errors)} trials failed.</p>")
            for rec in s.errors[:5]:
                parts.append(f"<details><summary>{_h(json.dumps(rec.params))} trial {rec.trial}"
                             f"</summary><pre>{_h(rec.error)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_markdown(sections, store, title) -> str:
    out = [f"# {title}", "",
           f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from "
           f"`{store.path}`. Tables give mean ± sd over trials per grid cell.", "",
           "## Overview", "", _md_table(*_overview(sections)), "", "### Machine", "",
           _md_table(["property", "value"],
                     [[k, str(v)] for k, v in _machine(store).items()]), "",
           "### Runs", "", _md_table(*_runs_table(store)), ""]
    for s in sections:
        spec = s.spec
        out += [f"## {s.name} ({s.mode})", ""]
        if spec is not None:
            out += [f"Paper **{spec.paper}**, {spec.figure}. {spec.description}".strip(), "",
                    f"**Paper's claim.** {spec.claim}", ""]
        items = _summary_items(s)
        out += ["**Measured.** " + ("; ".join(f"{k} = {v}" for k, v in items) or "—"), ""]
        if "error" in s.summary:
            out += ["summarize failed:", "", "```", s.summary["error"], "```", ""]
        if s.figure:
            out += [f"![{s.name}]({s.figure})", ""]
        elif s.plot_error:
            out += ["The plot failed:", "", "```", s.plot_error, "```", ""]
        if s.table:
            out += [_md_table(s.table_columns, s.table), ""]
        if s.table_note:
            out += [s.table_note, ""]
        data = f" Data: [{s.csv}]({s.csv})." if s.csv else ""
        out += [f"{len(s.rows)} trials, summed trial time {s.trial_time:.2f} s.{data}", ""]
        if s.errors:
            out += [f"**{len(s.errors)} trials failed**; first:", "", "```",
                    s.errors[0].error or "", "```", ""]
    return "\n".join(out)


@dataclass
class Report:
    """Files written by :func:`write_report`."""

    html: Path
    markdown: Path
    sections: list[ExperimentSection]

    @property
    def n_errors(self) -> int:
        return sum(len(s.errors) + (s.plot_error is not None) + ("error" in s.summary)
                   for s in self.sections)


def write_report(store: ResultStore | str | Path, outdir: str | Path, *,
                 quick: bool | None = None, names: Sequence[str] | None = None,
                 fresh_results: Sequence[RunResult] = (),
                 title: str = "overparam: reproduction of the papers' experiments") -> Report:
    """Write ``report.html`` and ``report.md`` (with figures and CSVs) for the stored results.

    Parameters
    ----------
    store : ResultStore or path
        The results; nothing is re-run.
    outdir : path
        Folder of the report (created).
    quick, names, fresh_results
        See :func:`collect`.
    title : str
        Page title.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    own = not isinstance(store, ResultStore)
    if own and not Path(store).exists():
        raise FileNotFoundError(f"no result store at {store}; run `overparam run` first")
    db = ResultStore(store) if own else store
    try:
        sections = collect(db, outdir, quick=quick, names=names, fresh_results=fresh_results)
        html_path = outdir / "report.html"
        md_path = outdir / "report.md"
        html_path.write_text(_render_html(sections, db, title), encoding="utf-8")
        md_path.write_text(_render_markdown(sections, db, title), encoding="utf-8")
    finally:
        if own:
            db.close()
    return Report(html_path, md_path, sections)
