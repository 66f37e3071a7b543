"""The ``overparam`` command line.

Every error prints one line on stderr, ``error: ...``, never a traceback: errors in the
user's input (a bad option, file, store or output path, shapes that do not match, an unknown
method) exit with code 2, a failed computation (a solver that diverged or raised, out of
memory) with code 1; Ctrl-C exits with 130. :func:`main` maps the exceptions that escape a
command; set ``OVERPARAM_TRACEBACK=1`` to see the traceback of an unexpected one.
"""

from __future__ import annotations

import ast
import difflib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

# Plain (not rich) help: flags print without a "<bool>" type column.
app = typer.Typer(help="Tuning-free structured signal recovery by implicit regularization.",
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

USAGE_ERROR = 2
COMPUTATION_ERROR = 1
INTERRUPTED = 130


def fail(message: str, code: int = USAGE_ERROR) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_params(pairs: list[str]) -> dict:
    """``["depth=3", "signed=False"]`` -> ``{"depth": 3, "signed": False}``.

    A whole number in exponent notation (``1e4``) is read as an ``int``: counts such as
    ``max_iter`` must be integers, and every real-valued parameter takes an ``int`` too.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            fail(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
            if isinstance(out[key], float) and out[key].is_integer() and "e" in value.lower():
                out[key] = int(out[key])  # max_iter=1e4: a count written in float notation
        except (ValueError, SyntaxError):
            out[key] = value  # a bare word such as adaptive
        except (MemoryError, RecursionError):
            fail(f"--param {key}: value too large or too deeply nested to read")
    return out


def did_you_mean(word: str, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (difflib), else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def resolve_method(name: str) -> type:
    """The estimator class registered as ``name``, or a one-line error with a suggestion."""
    from .methods import available_methods, get_method

    names = available_methods()
    if name not in names:
        fail(f"unknown method {name!r}{did_you_mean(name, names)} "
             "(`overparam methods` lists them)")
    return get_method(name)


def check_params(cls: type, params: dict) -> None:
    """A one-line error naming the valid parameters if ``params`` has an unknown name."""
    valid = cls._get_param_names()  # scikit-learn: the __init__ arguments
    for key in params:
        if key not in valid:
            fail(f"{cls.__name__} has no parameter {key!r}{did_you_mean(key, valid)} "
                 f"(valid: {', '.join(valid)})")


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"overparam {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Tuning-free structured signal recovery by implicit regularization."""
    if ctx.invoked_subcommand is None:  # bare `overparam`: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@app.command()
def methods() -> None:
    """List the recovery methods available to `overparam recover`."""
    from .methods import available_methods

    for name, description in available_methods().items():
        typer.echo(f"{name:22s} {description}")


@app.command()
def recover(
    method: Annotated[str, typer.Option(help="Method name (see `overparam methods`).")],
    A: Annotated[str, typer.Option("--A", help="Measurement matrix: .npy, .npz[:NAME], "
                                   ".mat[:NAME] or .csv; a 3-D array is a stack of sensing "
                                   "matrices.")],
    y: Annotated[str, typer.Option("--y", help="Measurements, same formats.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the estimate "
                                         "(.npy, .npz, .mat or .csv).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Estimator "
                                                    "parameter NAME=VALUE (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output "
                                        "file.")] = False,
) -> None:
    """Recover a signal from measurements y = A x and write the estimate."""
    import warnings

    from ._progress import show_progress
    from .io import DataFileError, DataFileNote, load_array, save_array
    from .stopping import DivergenceError

    check_output(output, force)
    try:
        cls = resolve_method(method)
        params = parse_params(param or [])
        check_params(cls, params)
        estimator = cls(**params)
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", DataFileNote)
            A_arr, y_arr = load_array(A), load_array(y)
    except (DataFileError, ValueError, TypeError) as exc:
        fail(_first_line(exc))
    for note in notes:
        if issubclass(note.category, DataFileNote):
            typer.echo(f"note: {note.message}", err=True)
    try:
        with show_progress(delay=1.0):  # a bar for fits longer than a second
            estimator.fit(A_arr, y_arr)
    except DivergenceError as exc:
        fail(f"the solver diverged: {_first_line(exc)}", code=COMPUTATION_ERROR)
    except (ValueError, TypeError) as exc:  # the data or parameters do not fit the method
        fail(_first_line(exc))
    except MemoryError:
        fail(f"{method} ran out of memory: the problem or a parameter is too large",
             code=COMPUTATION_ERROR)
    except Exception as exc:  # the computation itself failed (infeasible, degenerate data)
        fail(f"{method} failed: {type(exc).__name__}: {_first_line(exc)}",
             code=COMPUTATION_ERROR)
    # the recovered signal (MMV: X of shape (N, L), the transpose of coef_)
    written = save_array(output, estimator.signal_, overwrite=force)
    typer.echo(f"{method}: {estimator.result_.summary()}; relative residual "
               f"{_relative_residual(estimator, A_arr, y_arr):.3g}; "
               f"estimate {estimator.signal_.shape} written to {written}")


def _relative_residual(estimator, A, y) -> float:
    import numpy as np

    resid = np.asarray(estimator.predict(A) - y, dtype=float)
    y = np.asarray(y, dtype=float)
    scale = max(float(np.max(np.abs(y), initial=0.0)), float(np.max(np.abs(resid), initial=0.0)))
    if not scale > 0:
        return 0.0
    # Scaled first: the squares of values near 1e300 overflow.
    return float(np.linalg.norm(resid / scale) / max(np.linalg.norm(y / scale), 1e-300))


def check_output(output: Path, force: bool) -> None:
    """Refuse, before any work, an output the run could not write or must not overwrite."""
    from .io import FORMATS

    if output.suffix.lower() not in FORMATS:
        fail(f"{output}: unsupported output format; use one of {', '.join(FORMATS)}")
    if output.is_dir():
        fail(f"{output}: is a folder; give a file name")
    if output.exists() and not force:
        fail(f"{output}: exists; pass --force to overwrite it")
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders up to here will be created
    if not folder.is_dir():
        fail(f"{output}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{output}: cannot write in {folder}")


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


@app.command()
def demo(
    n_features: Annotated[int, typer.Option(help="Signal length N.")] = 200,
    n_measurements: Annotated[int, typer.Option(help="Number of measurements M.")] = 60,
    sparsity: Annotated[int, typer.Option(help="Nonzeros s.")] = 6,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Recover a random sparse vector from random measurements, with no tuning."""
    from .baselines import MinNormRegressor
    from .datasets import make_sparse_problem
    from .estimators import HadamardRegressor
    from .metrics import relative_error, support_recovered

    try:
        problem = make_sparse_problem(n_measurements, n_features, sparsity, random_state=seed)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    typer.echo(f"Problem: recover an {sparsity}-sparse x in R^{n_features} from "
               f"{n_measurements} Gaussian measurements y = A x (seed {seed}).")
    for label, est in (
        ("implicit regularization, x = u^2 - v^2 (no penalty, no tuning)", HadamardRegressor()),
        ("plain least squares from zero (minimum l2 norm)", MinNormRegressor()),
    ):
        est.fit(problem.operator, problem.y)
        err = relative_error(est.coef_, problem.truth)
        typer.echo(f"- {label}:\n    relative error {err:.2e}, support recovered: "
                   f"{support_recovered(est.coef_, problem.truth)}, {est.result_.summary()}")


_REGISTERED = False


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``overparam`` script: run the command, map every error to one line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Raises
    ------
    SystemExit
        Always, with the exit code: 0, 1 (failed computation), 2 (bad input) or 130.
    """
    global _REGISTERED
    if not _REGISTERED:
        from .experiments.cli import register_commands

        register_commands(app)
        _REGISTERED = True
    sys.exit(_run_app(argv))


def _run_app(argv: list[str] | None) -> int:
    try:
        code = app(args=argv, prog_name="overparam", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except (typer.Exit, typer.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc, typer.Exit):
            return exc.exit_code
        typer.echo("error: interrupted", err=True)
        return INTERRUPTED
    except typer.TyperException as exc:  # click's usage errors: bad option, value or command
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
            return exc.exit_code
        return _report(_first_line(exc.format_message(), 500), exc.exit_code)
    except Exception as exc:
        if os.environ.get("OVERPARAM_TRACEBACK"):
            raise
        return _report(*_describe(exc))


def _describe(exc: BaseException) -> tuple[str, int]:
    """One line and an exit code for an exception that escaped a command."""
    from .experiments.store import StoreError
    from .io import DataFileError

    if isinstance(exc, StoreError | DataFileError):
        return _first_line(exc, 500), USAGE_ERROR
    if isinstance(exc, MemoryError):
        return (f"out of memory ({_first_line(exc)}): the problem or a parameter is too "
                "large", COMPUTATION_ERROR)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or _first_line(exc)}{where}", USAGE_ERROR
    return (f"{type(exc).__name__}: {_first_line(exc)} (OVERPARAM_TRACEBACK=1 shows where)",
            COMPUTATION_ERROR)


def _report(message: str, code: int) -> int:
    typer.echo(f"error: {message}", err=True)
    return code
