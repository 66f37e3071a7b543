"""Registry of recovery methods by name, for the CLI and the experiment runner."""

from __future__ import annotations

__all__ = ["available_methods", "get_method", "register_method"]

_METHODS: dict[str, tuple[type, str]] = {}


def register_method(name: str, description: str):
    """Class decorator: make an estimator available as ``name`` (e.g. to ``overparam recover``)."""

    def decorate(cls):
        if name in _METHODS and _METHODS[name][0] is not cls:
            raise ValueError(f"method name {name!r} is already registered")
        _METHODS[name] = (cls, description)
        return cls

    return decorate


def _load_all() -> None:
    # Importing the packages runs their register_method decorators.
    from . import baselines, estimators  # noqa: F401


def available_methods() -> dict[str, str]:
    """Method names and one-line descriptions."""
    _load_all()
    return {name: desc for name, (_, desc) in sorted(_METHODS.items())}


def get_method(name: str) -> type:
    """The estimator class registered as ``name``."""
    _load_all()
    try:
        return _METHODS[name][0]
    except KeyError:
        known = ", ".join(sorted(_METHODS))
        raise ValueError(f"unknown method {name!r}; available: {known}") from None
