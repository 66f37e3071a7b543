"""The ``overparam`` command line.

Errors in the user's input (a bad file, shapes that do not match, an unknown method) print one
line on stderr and exit with code 2; a solver failure exits with code 1.
"""

from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Annotated

import typer

# Plain (not rich) help: flags print without a "<bool>" type column.
app = typer.Typer(help="Tuning-free structured signal recovery by implicit regularization.",
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

USAGE_ERROR = 2


def fail(message: str, code: int = USAGE_ERROR) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_params(pairs: list[str]) -> dict:
    """``["depth=3", "signed=False"]`` -> ``{"depth": 3, "signed": False}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            fail(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare word such as adaptive
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
) -> None:
    """Recover a signal from measurements y = A x and write the estimate."""
    import numpy as np

    from ._progress import show_progress
    from .io import FORMATS, DataFileError, load_array, save_array
    from .stopping import DivergenceError

    if output.suffix.lower() not in FORMATS:
        fail(f"{output}: unsupported output format; use one of {', '.join(FORMATS)}")
    try:
        cls = resolve_method(method)
        params = parse_params(param or [])
        check_params(cls, params)
        estimator = cls(**params)
        A_arr, y_arr = load_array(A), load_array(y)
    except (DataFileError, ValueError, TypeError) as exc:
        fail(str(exc).splitlines()[0])
    try:
        with show_progress(delay=1.0):  # a bar for fits longer than a second
            estimator.fit(A_arr, y_arr)
    except (ValueError, TypeError) as exc:
        fail(str(exc).splitlines()[0])
    except DivergenceError as exc:
        fail(f"the solver diverged: {exc}", code=1)
    save_array(output, estimator.coef_)
    resid = np.linalg.norm(estimator.predict(A_arr) - y_arr) / max(np.linalg.norm(y_arr), 1e-300)
    typer.echo(f"{method}: {estimator.result_.summary()}; relative residual {resid:.3g}; "
               f"estimate {estimator.coef_.shape} written to {output}")


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
        est.fit(problem.A, problem.y)
        err = relative_error(est.coef_, problem.x)
        typer.echo(f"- {label}:\n    relative error {err:.2e}, support recovered: "
                   f"{support_recovered(est.coef_, problem.x)}, {est.result_.summary()}")


def main() -> None:
    """Entry point of the ``overparam`` script."""
    from .experiments.cli import register_commands

    register_commands(app)
    app()
