"""Synthetic problem generators matching each paper, and loaders for shipped real data.

Every generator and loader returns one :class:`Problem` ``(operator, y, truth, noise, meta)``,
and the generators share one keyword vocabulary (see :mod:`overparam.datasets.base`).
"""

import warnings

from .base import Problem
from .group import (
    load_breast_cancer_groups,
    load_diabetes_splines,
    make_group_sparse_problem,
)
from .low_rank import (
    load_digit,
    load_grayscale_sample_image,
    make_aligned_problem,
    make_gaussian_sensing_problem,
    make_low_rank_matrix,
    make_low_rank_problem,
    make_low_rank_truth,  # noqa: F401  (deprecated: not in __all__)
)
from .mmv import (
    dct2_basis,
    load_digit_columns,
    make_mmv_batch,
    make_mmv_problem,
    normalized_gaussian_matrix,
)
from .sparse import make_sparse_problem

__all__ = ["Problem"]
__all__ += ["make_sparse_problem"]
__all__ += ["load_breast_cancer_groups", "load_diabetes_splines",
            "make_group_sparse_problem"]
__all__ += ["dct2_basis", "load_digit_columns", "make_mmv_batch", "make_mmv_problem",
            "normalized_gaussian_matrix"]
__all__ += ["load_digit", "load_grayscale_sample_image", "make_aligned_problem",
            "make_gaussian_sensing_problem", "make_low_rank_matrix", "make_low_rank_problem"]

# The problem classes before they became one Problem (names only: they construct a Problem).
_OLD_CLASSES = ("SparseProblem", "GroupSparseProblem", "MMVProblem", "LowRankProblem",
                "MatrixSensingProblem", "SplineRegressionData")


def __getattr__(name):
    if name in _OLD_CLASSES:
        warnings.warn(f"overparam.datasets.{name} is deprecated: every generator returns a "
                      "overparam.datasets.Problem", DeprecationWarning, stacklevel=2)
        return Problem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
