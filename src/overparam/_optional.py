"""Optional dependencies: imported on first use, with a one-line hint naming the extra.

The core install (numpy, scipy, scikit-learn, matplotlib, typer, tqdm, joblib) runs every
implicit-regularization estimator; a few baselines and the Dask backend need an extra::

    pip install "overparam[baselines]"   # cvxpy (nuclear norm, implicit bias), skglm (group lasso)
    pip install "overparam[dask]"        # dask.distributed backend of the experiment runner
    pip install "overparam[numba]"       # the compiled IR-MMV step (an optional accelerator)
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        Importable name, e.g. ``"cvxpy"`` or ``"distributed"``.
    extra : str
        The ``overparam`` extra that installs it, e.g. ``"baselines"``.

    Returns
    -------
    module
        The imported module.

    Examples
    --------
    >>> np = require("numpy", extra="core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed; it comes with the {extra!r} extra: "
            f"pip install 'overparam[{extra}]'") from exc
