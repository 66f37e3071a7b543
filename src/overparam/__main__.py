"""``python -m overparam`` runs the command line."""

from .cli import main

main()
