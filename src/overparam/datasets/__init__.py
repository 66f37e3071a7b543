"""Synthetic problem generators matching each paper, and loaders for shipped real data."""

from .synthetic import SparseProblem, make_sparse_problem

__all__ = ["SparseProblem", "make_sparse_problem"]
