"""The reproduction report: every experiment's figure, numbers and verdicts, from a store.

:func:`write_report` reads a :class:`~overparam.experiments.store.ResultStore` only, so a report
can be re-rendered at any time without re-running anything: the headline numbers come from each
spec's ``summarize``, the verdict of each declared :class:`~overparam.experiments.spec.Claim`
from the stored rows, the tables from :func:`~overparam.experiments.aggregate`. Figures are
drawn with each spec's ``plot`` only when their rows changed: a digest of the rows (and of the
plotting code) is kept beside each PNG. It writes ``report.html`` and ``report.md`` (rendered
from the Jinja2 templates in ``templates/``, stored text escaped in both) with
``figures/<name>.png`` and ``data/<name>.csv`` beside them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from .runner import RunResult, summarize_and_plot
from .spec import Claim, Experiment, Outcome, Verdict, aggregate, format_number, list_experiments
from .store import (
    ResultStore,
    TrialRecord,
    canonical_params,
    machine_info,
    path_inside,
    write_csv,
)

__all__ = ["ExperimentSection", "Report", "collect", "verdict_counts", "write_report"]

#: At most this many rows per aggregate table in the page (the CSV has everything).
MAX_TABLE_ROWS = 40
#: At most this many metrics (columns) per aggregate table.
MAX_TABLE_METRICS = 6
#: Order of the verdicts in every table.
VERDICTS = (Verdict.REPRODUCED, Verdict.PARTLY, Verdict.NOT_REPRODUCED, Verdict.NOT_EVALUATED)
#: Experiment names that may become file names (no separators, no leading dot).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


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
    outcomes: list[tuple[Claim, Outcome]] = field(default_factory=list)
    redrawn: bool = False

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    @property
    def paper(self) -> str:
        return self.spec.paper if self.spec is not None else "?"


# ---------------------------------------------------------------------------------------------
# Numbers and text for people

_FLOAT_IN_TEXT = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])"
                            r"|(?<![\w.])-?\d+[eE][-+]?\d+(?![\w.])")


def _fmt(value) -> str:
    """A stored value as the report prints it: 3 significant figures, no JSON, no escapes."""
    if isinstance(value, str):
        # Summaries sometimes pre-format numbers ("1.234567e-03 ± 2e-04"): round those too.
        return _FLOAT_IN_TEXT.sub(lambda m: format_number(float(m.group())), value)
    if isinstance(value, list | tuple):
        if len(value) <= 4:
            return "[" + ", ".join(_fmt(v) for v in value) + "]"
        return f"[{_fmt(value[0])}, …, {_fmt(value[-1])}] ({len(value)} values)"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return format_number(value)


def _summary_items(summary: Mapping) -> list[tuple[str, str]]:
    """Flat ``(label, formatted value)`` pairs; nested dicts give ``"outer: inner"`` labels."""
    items = []
    for key, value in summary.items():
        if key == "error":
            continue
        if isinstance(value, Mapping):
            items += [(f"{key}: {k}", v) for k, v in _summary_items(value)]
        else:
            items.append((str(key), _fmt(value)))
    return items


def _is_scalar(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _looks_numeric(text: str) -> bool:
    """Right-align numbers (and ``mean ± sd`` cells) so that digits line up."""
    head = str(text).split(" ± ")[0].split(" × ")[0].replace("−", "-")
    try:
        float(head)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Collecting the sections


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
    by = [safe[p] for p in varying]
    for metric in metrics:
        scalar_rows = [r for r in renamed if _is_scalar(r["metrics"].get(metric))]
        finite = [r for r in scalar_rows if math.isfinite(r["metrics"][metric])]
        for s in aggregate(finite, by, metric):
            key = tuple(s[safe[p]] for p in varying)
            entry = (f"{_fmt(s['mean'])} ± {_fmt(s['sd'])}" if s["count"] > 1
                     else _fmt(s["mean"]))
            cells.setdefault(key, {"count": 0})[metric] = entry
            cells[key]["count"] = max(cells[key]["count"], s["count"])
        for key, (text, n) in _non_finite(scalar_rows, finite, varying, safe, metric).items():
            cell = cells.setdefault(key, {"count": 0})
            cell[metric] = f"{cell[metric]}; {text}" if metric in cell else text
            cell["count"] = max(cell["count"], n)
    keys = sorted(cells)
    if len(keys) > MAX_TABLE_ROWS:
        note += f"First {MAX_TABLE_ROWS} of {len(keys)} cells shown; all are in the CSV."
        keys = keys[:MAX_TABLE_ROWS]
    columns = [*varying, *(f"{m} ({_unit_prefix(m)}mean ± sd)" for m in metrics), "trials"]
    table = [[_fmt(v) for _, v in key] + [cells[key].get(m, "") for m in metrics]
             + [str(cells[key]["count"])] for key in keys]
    return columns, table, note.strip()


#: Words that make a ``*time*`` metric a flow time or an iteration count, not seconds.
_DIMENSIONLESS_TIME = frozenset({"flow", "learn", "half", "first", "last", "row", "iteration"})


def _non_finite(rows: list, finite: list, varying: list, safe: dict,
                metric: str) -> dict[tuple, tuple[str, int]]:
    """Per cell, the trials whose ``metric`` is not finite, e.g. ``"1 of 5: ∞"``.

    The mean ± sd of a cell is over its finite values; these are named beside it instead of
    turning the mean into ``∞ ± NaN``.
    """
    total: dict[tuple, int] = {}
    bad: dict[tuple, list[float]] = {}
    kept = {id(r) for r in finite}
    for r in rows:
        key = tuple(r["params"][safe[p]] for p in varying)
        total[key] = total.get(key, 0) + 1
        if id(r) not in kept:
            bad.setdefault(key, []).append(r["metrics"][metric])
    out = {}
    for key, values in bad.items():
        kinds = sorted({format_number(float(v)) for v in values})
        out[key] = (f"{len(values)} of {total[key]}: {', '.join(kinds)}", total[key])
    return out


def unit_of(name: str) -> str:
    """The unit a metric's name implies (``time``/``*_time`` in s, PSNR and SNR in dB), or "".

    Flow times and learning times (``learn_time_x1``, ``first_row_time``) have no unit.
    """
    words = re.split(r"[^a-z0-9]+", name.lower())
    if _DIMENSIONLESS_TIME & set(words):
        return ""
    if "time" in words or "seconds" in words:
        return "s"
    if any(w in ("psnr", "db") for w in words):
        return "dB"
    return ""


def _unit_prefix(name: str) -> str:
    unit = unit_of(name)
    return f"{unit}, " if unit else ""


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


def _code_fingerprint(func) -> str:
    """Source of the module that defines ``func`` (a changed plot must be redrawn)."""
    try:
        return Path(inspect.getsourcefile(func)).read_text(encoding="utf-8")
    except (TypeError, OSError):
        return getattr(func, "__qualname__", repr(func))


def rows_digest(spec: Experiment, rows: list) -> str:
    """SHA-256 of what a figure depends on: the rows, the plot's code and the plot style."""
    h = hashlib.sha256()
    h.update(json.dumps(rows, sort_keys=True, default=str).encode())
    h.update(_code_fingerprint(spec.plot).encode())
    from . import plotting

    h.update(Path(plotting.__file__).read_bytes())
    return h.hexdigest()


def _figure(spec: Experiment, rows: list, figure: Path,
            done: RunResult | None) -> tuple[str | None, bool]:
    """Bring ``figure`` up to date with ``rows``; returns ``(plot_error, redrawn)``.

    The figure is kept when the digest stored beside it matches, copied from a fresh run that
    drew exactly these rows, or else drawn again.
    """
    stamp = figure.with_name(figure.name + ".sha256")
    digest = rows_digest(spec, rows)
    if figure.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return None, False
    figure.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    if not rows:
        return None, False
    if done is not None and done.figure is not None and Path(done.figure).exists():
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(done.figure, figure)
        plot_error = None
    else:
        plot_error = summarize_and_plot(dataclasses.replace(spec, summarize=None), rows,
                                        figure)[1]
    if figure.exists():
        stamp.write_text(digest + "\n")
    return plot_error, True


def _fresh_match(fresh: dict, spec: Experiment, mode: bool, rows: list) -> RunResult | None:
    done = fresh.get((spec.name, mode))
    if done is not None and done.experiment is spec and done.rows == rows:
        return done
    return None


def collect(store: ResultStore, outdir: str | Path, *, quick: bool | None = None,
            names: Sequence[str] | None = None,
            fresh_results: Sequence[RunResult] = ()) -> list[ExperimentSection]:
    """Build each experiment's section from the store: numbers, verdicts, figures and CSVs.

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
        if mode is not None:
            sections.append(_section(store, outdir, name, mode, registry.get(name), fresh))
    return sections


def _section(store: ResultStore, outdir: Path, name: str, mode: bool, spec: Experiment | None,
             fresh: dict) -> ExperimentSection:
    records, rows, n_stale = _grid_rows(store.records(name, quick=mode), spec, mode)
    section = ExperimentSection(
        name=name, quick=mode, spec=spec, rows=rows,
        errors=[r for r in records if r.status != "ok"],
        trial_time=sum(r.time for r in records),
        versions=sorted({r.version for r in records}))
    safe = _SAFE_NAME.fullmatch(name) is not None and ".." not in name
    if spec is not None:
        done = _fresh_match(fresh, spec, mode, rows)
        if done is not None:
            section.summary = done.summary
        else:
            section.summary = summarize_and_plot(spec, rows, None)[0]
        if spec.plot is not None and safe:
            figure = path_inside(outdir / "figures", f"{name}.png")  # name: stored text
            section.plot_error, section.redrawn = _figure(spec, rows, figure, done)
            if figure.exists():
                section.figure = f"figures/{name}.png"
        section.outcomes = [(c, c.evaluate(rows, section.summary)) for c in spec.claims]
    if rows and safe:
        write_csv(path_inside(outdir / "data", f"{name}.csv"), rows)
        section.csv = f"data/{name}.csv"
    section.table_columns, section.table, section.table_note = _aggregate_table(rows)
    if n_stale:
        section.table_note += (f" {n_stale} stored trials of cells no longer in the grid"
                               " are left out.")
    if not safe:
        section.table_note += " Its name is not a safe file name: no figure or CSV written."
    section.table_note = section.table_note.strip()
    return section


# ---------------------------------------------------------------------------------------------
# The verdict overview


def verdict_counts(outcomes: Sequence[Outcome]) -> dict[Verdict, int]:
    """How many outcomes have each verdict (every verdict present, zeros included)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for outcome in outcomes:
        counts[outcome.verdict] += 1
    return counts


def _overview_by_paper(sections: list[ExperimentSection],
                       not_run: Sequence[Experiment]) -> tuple[list[str], list[list[str]]]:
    """One row per paper and a total: experiments, claims and the count of each verdict."""
    papers: dict[str, list] = {}
    for s in sections:
        papers.setdefault(s.paper, [0, []])
        papers[s.paper][0] += 1
        papers[s.paper][1] += [o for _, o in s.outcomes]
    for exp in not_run:
        papers.setdefault(exp.paper, [0, []])
        papers[exp.paper][0] += 1
        papers[exp.paper][1] += [Outcome(Verdict.NOT_EVALUATED, detail="not run")
                                 for _ in exp.claims]
    columns = ["paper", "experiments", "claims", *(v.value for v in VERDICTS)]
    rows = []
    total = [0, []]
    for paper in sorted(papers):
        n, outcomes = papers[paper]
        total[0] += n
        total[1] += outcomes
        rows.append([paper, str(n), str(len(outcomes)),
                     *(str(c) for c in verdict_counts(outcomes).values())])
    rows.append(["all papers", str(total[0]), str(len(total[1])),
                 *(str(c) for c in verdict_counts(total[1]).values())])
    return columns, rows


def _overview(sections: list[ExperimentSection]) -> tuple[list[str], list[list[str]]]:
    columns = ["experiment", "paper", "figure", "mode", "trials", "failed", "trial time",
               "verdicts"]
    rows = []
    for s in sections:
        spec = s.spec
        counts = verdict_counts([o for _, o in s.outcomes])
        verdicts = ", ".join(f"{n} {v.value}" for v, n in counts.items() if n) or "no claims"
        rows.append([s.name, s.paper, spec.figure if spec else "?", s.mode, str(len(s.rows)),
                     str(len(s.errors)), format_number(float(s.trial_time), "s"), verdicts])
    return columns, rows


def _claim_rows(section: ExperimentSection) -> list[dict]:
    out = []
    for claim, outcome in section.outcomes:
        measured = format_number(outcome.measured, claim.unit)
        out.append({"name": claim.name, "statement": claim.statement,
                    "criterion": claim.criterion, "measured": measured,
                    "verdict": outcome.verdict.value,
                    "css": outcome.verdict.name.lower().replace("_", "-"),
                    "detail": _fmt(outcome.detail),
                    "cause": _cause(claim, outcome)})
    return out


def _cause(claim: Claim, outcome: Outcome) -> str:
    """Why a claim is short of *reproduced*: the declared cause, or that none is known."""
    if outcome.verdict in (Verdict.PARTLY, Verdict.NOT_REPRODUCED):
        return claim.cause or "not established"
    return ""


def _claims_overview(sections: list[ExperimentSection],
                     not_run: Sequence[Experiment]) -> list[dict]:
    """Every claim of every paper experiment in one list: verdict, measured value, cause.

    Ordered by paper and experiment, like the overview by paper; experiments not run show
    their claims as not evaluated.
    """
    entries = [(s.paper, s.name, True, _claim_rows(s)) for s in sections]
    for exp in not_run:
        outcome = Outcome(Verdict.NOT_EVALUATED, detail="not run")
        rows = _claim_rows(ExperimentSection(exp.name, False, exp, [], [],
                                             outcomes=[(c, outcome) for c in exp.claims]))
        entries.append((exp.paper, exp.name, False, rows))
    out = []
    for paper, name, shown, rows in sorted(entries, key=lambda e: (e[0], e[1])):
        out += [{**row, "paper": paper, "experiment": name, "linked": shown,
                 "experiment_rows": len(rows) if i == 0 else 0} for i, row in enumerate(rows)]
    # The first row of each paper spans its claims (HTML rowspan; Markdown names it once).
    for i, row in enumerate(out):
        first = i == 0 or out[i - 1]["paper"] != row["paper"]
        row["paper_rows"] = sum(r["paper"] == row["paper"] for r in out) if first else 0
    return out


def _runs_table(store: ResultStore) -> tuple[list[str], list[list[str]]]:
    columns = ["run", "started (UTC)", "mode", "backend", "jobs", "experiments", "trials run",
               "failed", "wall time"]
    rows = []
    for r in store.runs()[-20:]:
        wall = r["wall_time"]
        rows.append([str(r["run_id"]),
                     time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["started_at"])),
                     "quick" if r["quick"] else "full", str(r["backend"]), str(r["jobs"]),
                     str(len(r["experiments"])), _fmt(r["n_run"]), _fmt(r["n_errors"]),
                     "unfinished" if wall is None else format_number(float(wall), "s")])
    return columns, rows


def _machine(store: ResultStore) -> list[list[str]]:
    runs = store.runs()
    info = runs[-1]["machine"] if runs else machine_info()
    return [[str(k), _fmt(v)] for k, v in info.items()]


# ---------------------------------------------------------------------------------------------
# Rendering (Jinja2 templates in templates/)

_MD_ALWAYS = re.compile(r"([\\`*|~])")
#: An underscore next to a non-word character can open or close emphasis; inside a word not.
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(value) -> str:
    """Stored text made inert in Markdown: no HTML, no emphasis, links or table breaks.

    Only what Markdown would act on is escaped, so that the file stays readable as text:
    ``<`` where it could open a tag, ``&`` where it could start an entity, ``_`` at a word's
    edge, ``]`` where it could close a link, a leading ``#`` or ``>``, and ``\\ ` * | ~``.
    ``Markup`` values (pieces the report itself built) pass unchanged.
    """
    if isinstance(value, Markup):
        return str(value)
    text = re.sub(r"&(?=#?\w+;)", "&amp;", str(value))
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    text = _MD_ALWAYS.sub(r"\\\1", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    text = re.sub(r"\](?=[(\[:])", r"\\]", text)
    text = " ".join(text.split())
    return "\\" + text if text[:1] in ("#", ">") else text


def md_code(value) -> Markup:
    """A fenced code block that no backtick run inside ``value`` can close."""
    text = str(value)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markup(f"{fence}\n{text}\n{fence}")


def _environment(markdown: bool) -> jinja2.Environment:
    kwargs = ({"autoescape": False, "finalize": md_escape} if markdown
              else {"autoescape": True})
    env = jinja2.Environment(loader=jinja2.PackageLoader("overparam.experiments", "templates"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, **kwargs)
    env.filters["numeric"] = _looks_numeric
    env.filters["trusted"] = Markup
    env.filters["code"] = md_code
    return env


def _context(sections: list[ExperimentSection], store: ResultStore, title: str,
             not_run: Sequence[Experiment]) -> dict:
    return {
        "title": title,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "store": str(store.path),
        "papers": _overview_by_paper(sections, not_run),
        "overview": _overview(sections),
        "all_claims": _claims_overview(sections, not_run),
        "not_run": [e.name for e in not_run],
        "machine": _machine(store),
        "runs": _runs_table(store),
        "sections": [{
            "s": s, "claims": _claim_rows(s), "summary": _summary_items(s.summary),
            "summary_error": s.summary.get("error"),
            "first_errors": [(_fmt(rec.params), rec.trial, rec.error or "")
                             for rec in s.errors[:5]],
            "trial_time": format_number(float(s.trial_time), "s"),
        } for s in sections],
    }


def render(sections: list[ExperimentSection], store: ResultStore, title: str,
           not_run: Sequence[Experiment] = ()) -> tuple[str, str]:
    """The HTML and Markdown pages of the sections."""
    context = _context(sections, store, title, not_run)
    page = _environment(False).get_template("report.html.j2").render(context)
    text = _environment(True).get_template("report.md.j2").render(context)
    return page, text


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

    @property
    def verdicts(self) -> dict[Verdict, int]:
        """Count of each verdict over every claim of the report's sections."""
        return verdict_counts([o for s in self.sections for _, o in s.outcomes])


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
        See :func:`collect`. Without ``names``, registered paper experiments with no stored
        trials are listed in the overview, their claims counted as not evaluated.
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
        shown = {s.name for s in sections}
        not_run = [] if names is not None else [
            e for e in list_experiments() if e.name not in shown and "demo" not in e.tags]
        page, text = render(sections, db, title, not_run)
        html_path = outdir / "report.html"
        md_path = outdir / "report.md"
        html_path.write_text(page, encoding="utf-8")
        md_path.write_text(text, encoding="utf-8")
    finally:
        if own:
            db.close()
    return Report(html_path, md_path, sections)
