"""Progress bars of single fits: off unless asked for, per call or for a block of code.

Solvers take ``progress=True``; :func:`show_progress` turns their bars on for every fit in a
``with`` block (the CLI does this, with a delay so that fits under a second print nothing).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

from tqdm.auto import tqdm

__all__ = ["progress_bar", "progress_shown", "show_progress"]

#: ``None``: bars only where a solver was called with ``progress=True``; else the tqdm delay.
_DELAY: ContextVar[float | None] = ContextVar("overparam_progress_delay", default=None)


@contextlib.contextmanager
def show_progress(delay: float = 0.0):
    """Show the solvers' progress bars for every fit inside the block.

    Parameters
    ----------
    delay : float, default=0.0
        Seconds before a bar appears (shorter fits print nothing).

    Examples
    --------
    >>> from overparam import show_progress
    >>> with show_progress(delay=1.0):  # doctest: +SKIP
    ...     estimator.fit(A, y)
    """
    token = _DELAY.set(float(delay))
    try:
        yield
    finally:
        _DELAY.reset(token)


def progress_shown() -> bool:
    """Whether the calling code is inside :func:`show_progress`."""
    return _DELAY.get() is not None


def progress_bar(progress: bool, **kwargs) -> tqdm:
    """A tqdm bar of a solver loop, shown if ``progress`` or inside :func:`show_progress`."""
    delay = _DELAY.get()
    shown = progress or delay is not None
    return tqdm(disable=not shown, delay=delay or 0.0, leave=False, **kwargs)
