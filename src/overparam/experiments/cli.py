"""Experiment commands of the CLI (`experiments list`, `run`, `reproduce`, `report`)."""

from __future__ import annotations

import typer

__all__ = ["register_commands"]


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

    app.add_typer(experiments_app, name="experiments")
