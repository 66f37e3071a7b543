"""The table of recovery methods by name; filled by the ``register_method`` decorators.

A leaf module: the estimator and baseline modules import it to register themselves, and
:mod:`overparam.methods` imports them to look a name up, so that dependencies point one way.
"""

from __future__ import annotations

__all__ = ["METHODS", "register_method"]

#: name -> (estimator class, one-line description)
METHODS: dict[str, tuple[type, str]] = {}


def register_method(name: str, description: str):
    """Class decorator: make an estimator available as ``name`` (e.g. to ``overparam recover``)."""

    def decorate(cls):
        if name in METHODS and METHODS[name][0] is not cls:
            raise ValueError(f"method name {name!r} is already registered")
        METHODS[name] = (cls, description)
        return cls

    return decorate
