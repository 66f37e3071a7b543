"""Synthetic problem generators matching each paper, and loaders for shipped real data."""

from .group import (
    GroupSparseProblem,
    SplineRegressionData,
    load_breast_cancer_groups,
    load_diabetes_splines,
    make_group_sparse_problem,
)
from .low_rank import LowRankProblem, make_low_rank_matrix, make_low_rank_problem
from .mmv import (
    MMVProblem,
    dct2_basis,
    load_digit_columns,
    make_mmv_batch,
    make_mmv_problem,
    normalized_gaussian_matrix,
)
from .spectral import (
    MatrixSensingProblem,
    load_digit,
    load_grayscale_sample_image,
    make_aligned_problem,
    make_gaussian_sensing_problem,
    make_low_rank_truth,
)
from .synthetic import SparseProblem, make_sparse_problem

__all__ = [
    "MMVProblem",
    "SparseProblem",
    "dct2_basis",
    "load_digit_columns",
    "make_mmv_batch",
    "make_mmv_problem",
    "make_sparse_problem",
    "normalized_gaussian_matrix",
]
__all__ += ["GroupSparseProblem", "SplineRegressionData", "load_breast_cancer_groups",
            "load_diabetes_splines", "make_group_sparse_problem"]
__all__ += ["LowRankProblem", "make_low_rank_matrix", "make_low_rank_problem"]
__all__ += ["MatrixSensingProblem", "load_digit", "load_grayscale_sample_image",
            "make_aligned_problem", "make_gaussian_sensing_problem", "make_low_rank_truth"]
