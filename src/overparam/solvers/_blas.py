"""BLAS thread limits for the solvers that multiply small matrices many times."""

from __future__ import annotations

import contextlib

from threadpoolctl import ThreadpoolController

_CONTROLLER: ThreadpoolController | None = None


def blas_limit(threads: int | None):
    """Context in which BLAS uses at most ``threads`` threads; None leaves it as configured.

    The controller is made once (inspecting the loaded libraries costs up to ~2 ms, more than a
    small solve); BLAS libraries loaded after that first call are not limited (numpy's own,
    which the solvers use, always is).
    """
    global _CONTROLLER
    if threads is None:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=int(threads), user_api="blas")
