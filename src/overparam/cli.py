"""The ``overparam`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="Tuning-free structured signal recovery by implicit regularization.",
                  no_args_is_help=True, add_completion=False)


def main() -> None:
    """Entry point of the ``overparam`` script."""
    from .experiments.cli import register_commands

    register_commands(app)
    app()
