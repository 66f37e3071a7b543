"""overparam: tuning-free structured signal recovery by implicit regularization.

Plain gradient descent on an overparameterized factorization of the unknown finds sparse,
group-sparse, row-sparse and low-rank solutions with no explicit penalty.
"""

from importlib.metadata import PackageNotFoundError, version

from ._optional import MissingExtraError
from ._progress import show_progress

try:
    __version__ = version("overparam")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["MissingExtraError", "__version__", "show_progress"]
