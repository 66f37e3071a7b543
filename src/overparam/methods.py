"""Registry of recovery methods by name, for the CLI and the experiment runner."""

from __future__ import annotations

from ._registry import METHODS, register_method

__all__ = ["available_methods", "get_method", "register_method"]


def _load_all() -> None:
    # Importing the packages runs their register_method decorators.
    from . import baselines, estimators  # noqa: F401


def available_methods() -> dict[str, str]:
    """Method names and one-line descriptions."""
    _load_all()
    return {name: desc for name, (_, desc) in sorted(METHODS.items())}


def get_method(name: str) -> type:
    """The estimator class registered as ``name``."""
    _load_all()
    try:
        return METHODS[name][0]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown method {name!r}; available: {known}") from None
