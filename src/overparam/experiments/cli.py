"""Experiment commands of the CLI (`experiments list`, `run`, `reproduce`, `report`)."""

from __future__ import annotations

import contextlib
import fnmatch
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register_commands"]


class BackendName(StrEnum):
    """``--backend`` values (a choice checked when the command line is parsed)."""

    serial = "serial"
    process = "process"
    loky = "loky"
    dask = "dask"


class ReportMode(StrEnum):
    """``--mode`` values of ``report``."""

    auto = "auto"
    quick = "quick"
    full = "full"

_OUTDIR_HELP = "Folder of the CSVs, figures, report and (by default) the result store."
_STORE_HELP = "SQLite result store (default: OUTDIR/results.sqlite). Finished trials are skipped."
_JOBS_HELP = "Parallel workers (-1: every core)."
_SCHEDULER_HELP = "Address of a Dask scheduler (tcp://host:8786) to run the trials on."
_BACKEND_HELP = ("serial (one worker process), process (a local pool; 'loky' is its former name) "
                 "or dask (a LocalCluster unless --scheduler); default: dask with --scheduler, "
                 "serial for --jobs 1, else process.")
_TIMEOUT_HELP = ("Time limit of each trial in seconds (0: none); a trial past it is killed and "
                 "stored as a timeout. Default: the experiment's own (usually 3600).")


def _check_jobs(value: int) -> int:
    if value == 0 or value < -1:
        raise typer.BadParameter(f"must be a positive number of workers or -1 (every core), "
                                 f"got {value}")
    return value


Quick = Annotated[bool, typer.Option("--quick", help="Run the small CI grid and trial count.")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help=_JOBS_HELP, callback=_check_jobs)]
Outdir = Annotated[Path, typer.Option("--outdir", "-o", help=_OUTDIR_HELP)]
StoreOpt = Annotated[Path | None, typer.Option("--store", help=_STORE_HELP)]
Scheduler = Annotated[str | None, typer.Option("--scheduler", help=_SCHEDULER_HELP)]
Backend = Annotated[BackendName | None, typer.Option("--backend", help=_BACKEND_HELP)]
TrialTimeout = Annotated[float | None, typer.Option("--trial-timeout", min=0,
                                                    help=_TIMEOUT_HELP)]
Fresh = Annotated[bool, typer.Option("--fresh", help="Forget stored trials and run again.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def _store_path(outdir: Path, store: Path | None) -> Path:
    from .runner import STORE_NAME

    return store if store is not None else outdir / STORE_NAME


def _echo_result(result, max_summary: int | None = None) -> None:
    exp = result.experiment
    typer.echo(f"{exp.name}: {len(result.rows)}/{result.n_planned} trials ok "
               f"(ran {result.n_run}, {result.n_skipped} already stored, "
               f"{len(result.errors)} failed), trial time {result.run_time:.1f} s "
               f"(CPU {result.cpu_time:.1f} s)")
    items = [(k, v) for k, v in result.summary.items() if k != "error"]
    for key, value in items[:max_summary]:
        typer.echo(f"    {key}: {value}")
    if max_summary is not None and len(items) > max_summary:
        typer.echo(f"    ... {len(items) - max_summary} more numbers in the report")
    if "error" in result.summary:
        typer.secho("    summarize failed (see the log above)", fg="red", err=True)
    if result.plot_error:
        typer.secho("    plot failed (see the log above)", fg="red", err=True)
    for rec in result.errors[:3]:
        last = (rec.error or "").strip().splitlines()[-1:] or [""]
        typer.secho(f"    failed: {rec.params} trial {rec.trial}: {last[0]}", fg="red", err=True)


def cost_summary(results) -> str:
    """One line: the trials' summed wall and CPU time, and the costliest experiments."""
    trial_time = sum(r.run_time for r in results)
    cpu = sum(r.cpu_time for r in results)
    costliest = sorted(results, key=lambda r: -r.run_time)[:3]
    top = ", ".join(f"{r.experiment.name} {r.run_time:.1f} s" for r in costliest if r.n_run)
    return (f"trials run now: {sum(r.n_run for r in results)}, trial time {trial_time:.1f} s "
            f"(CPU {cpu:.1f} s = {cpu / 60:.1f} CPU-min)" + (f"; costliest: {top}" if top else ""))


@contextlib.contextmanager
def _interruptible(store: Path):
    """Turn Ctrl-C into a short message: the finished trials are stored, a rerun resumes."""
    try:
        yield
    except KeyboardInterrupt:
        typer.secho(f"\ninterrupted; finished trials are kept in {store}: run the same command "
                    "again to resume", fg="yellow", err=True)
        raise typer.Exit(130) from None


def _warn_load_errors() -> int:
    """Print the spec modules that failed to import; return how many."""
    from .spec import LOAD_ERRORS

    for module, error in LOAD_ERRORS.items():
        typer.echo(f"error: experiments of papers/{module}.py not loaded: {error}", err=True)
    return len(LOAD_ERRORS)


def _select(patterns: list[str] | None, include_demo: bool) -> list:
    from .spec import list_experiments

    exps = [e for e in list_experiments() if include_demo or "demo" not in e.tags]
    _warn_load_errors()
    if patterns:
        exps = [e for e in exps if any(fnmatch.fnmatch(e.name, p) or fnmatch.fnmatch(e.paper, p)
                                       for p in patterns)]
    return exps


def register_commands(app: typer.Typer) -> None:
    """Add the experiment commands to the main ``overparam`` app."""
    experiments_app = typer.Typer(help="List the registered paper experiments.",
                                  no_args_is_help=True)

    @experiments_app.command("list")
    def list_cmd() -> None:
        """List every registered experiment."""
        from .spec import list_experiments

        for exp in list_experiments():
            typer.echo(f"{exp.name:40s} {exp.paper:28s} {exp.figure}")
        if _warn_load_errors():
            raise typer.Exit(1)

    @experiments_app.command("export")
    def export_cmd(
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
        quick: Quick = False,
        outdir: Outdir = Path("overparam-results"),
        store: StoreOpt = None,
    ) -> None:
        """Export an experiment's stored trials to CSV."""
        from .store import ResultStore

        path = _store_path(outdir, store)
        if not path.exists():
            raise typer.BadParameter(f"no result store at {path}", param_hint="--store")
        with ResultStore(path) as db:
            rows = db.rows(name, quick=quick)
            if not rows:
                raise typer.BadParameter(f"no stored {'quick ' if quick else ''}trials of "
                                         f"{name!r} in {path}")
            db.export_csv(out, name, quick=quick, rows=rows)
        typer.echo(f"{len(rows)} trials -> {out}")

    app.add_typer(experiments_app, name="experiments")

    @app.command("run")
    def run_cmd(
        name: Annotated[str, typer.Argument(help="Experiment name (see `experiments list`).")],
        quick: Quick = False,
        trials: Annotated[int | None, typer.Option(
            "--trials", min=1, help="Trials per cell (default: the spec's).")] = None,
        jobs: Jobs = -1,
        outdir: Outdir = Path("overparam-results"),
        store: StoreOpt = None,
        scheduler: Scheduler = None,
        backend: Backend = None,
        fresh: Fresh = False,
        progress: Progress = True,
        trial_timeout: TrialTimeout = None,
    ) -> None:
        """Run one experiment: store its trials, write OUTDIR/NAME.csv and OUTDIR/NAME.png."""
        from .runner import run_experiment
        from .spec import get_experiment

        try:
            exp = get_experiment(name)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="NAME") from None
        start = time.perf_counter()
        with _interruptible(_store_path(outdir, store)):
            result = run_experiment(exp, quick=quick, trials=trials, jobs=jobs,
                                    backend=backend and backend.value, scheduler=scheduler,
                                    store=_store_path(outdir, store), outdir=outdir,
                                    fresh=fresh, progress=progress,
                                    trial_timeout=trial_timeout)
        _echo_result(result)
        typer.echo(f"wall time {time.perf_counter() - start:.1f} s; wrote {result.csv}"
                   + (f" and {result.figure}" if result.figure else ""))
        if not result.ok:
            raise typer.Exit(1)

    @app.command("reproduce")
    def reproduce_cmd(
        quick: Quick = False,
        only: Annotated[list[str] | None, typer.Option(
            "--only", help="Experiment or paper name (glob); repeatable.")] = None,
        jobs: Jobs = -1,
        outdir: Outdir = Path("overparam-results"),
        store: StoreOpt = None,
        scheduler: Scheduler = None,
        backend: Backend = None,
        fresh: Fresh = False,
        progress: Progress = True,
        include_demo: Annotated[bool, typer.Option(
            "--include-demo", help="Also run the toy experiments tagged 'demo'.")] = False,
        trial_timeout: TrialTimeout = None,
    ) -> None:
        """Run every registered experiment as one sweep, then write the report."""
        from .report import write_report
        from .runner import run_experiments

        exps = _select(only, include_demo)
        if not exps:
            raise typer.BadParameter("no experiment matches", param_hint="--only")
        store_path = _store_path(outdir, store)
        start = time.perf_counter()
        with _interruptible(store_path):
            results = run_experiments(exps, quick=quick, jobs=jobs,
                                      backend=backend and backend.value,
                                      scheduler=scheduler, store=store_path, outdir=outdir,
                                      fresh=fresh, progress=progress,
                                      trial_timeout=trial_timeout)
        for result in results:
            _echo_result(result, max_summary=3)
        typer.echo(cost_summary(results))
        report = write_report(store_path, outdir, quick=quick, names=[e.name for e in exps],
                              fresh_results=results)
        wall = time.perf_counter() - start
        n_bad = sum(not r.ok for r in results)
        typer.echo(f"{len(results)} experiments in {wall:.1f} s ({n_bad} with failures); "
                   f"report: {report.html}")
        if n_bad or _warn_load_errors():
            raise typer.Exit(1)

    @app.command("report")
    def report_cmd(
        outdir: Outdir = Path("overparam-results"),
        store: StoreOpt = None,
        mode: Annotated[ReportMode, typer.Option(
            "--mode", help="auto (full results where stored, else quick), quick or full.")
        ] = ReportMode.auto,
        only: Annotated[list[str] | None, typer.Option(
            "--only", help="Experiment name; repeatable.")] = None,
    ) -> None:
        """Write OUTDIR/report.html and report.md from the stored results (no re-run)."""
        from .report import write_report
        from .store import StoreError

        path = _store_path(outdir, store)
        if not path.exists():
            raise typer.BadParameter(f"no result store at {path}", param_hint="--store")
        quick = None if mode == "auto" else mode == "quick"
        try:
            report = write_report(path, outdir, quick=quick, names=only)
        except StoreError:
            raise  # a corrupt store: one line from the command line's error handler
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--only") from None
        typer.echo(f"{len(report.sections)} experiments -> {report.html}, {report.markdown}")
