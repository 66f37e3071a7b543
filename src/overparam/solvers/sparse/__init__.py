"""Solvers of the sparse (deep Hadamard) structure: the dual flow and its limit (:mod:`.flow`), the
matrix-free Newton-CG limit (:mod:`.krylov_newton`) and path (:mod:`.krylov_path`)."""
