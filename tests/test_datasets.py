"""One vocabulary: every generator returns a ``Problem(operator, y, truth, noise, meta)``."""

import pickle

import numpy as np
import pytest

import overparam.datasets as datasets
from overparam.datasets import Problem
from overparam.operators import as_operator

GENERATORS = {
    "sparse": lambda: datasets.make_sparse_problem(20, 40, 3, snr=20, random_state=0),
    "group_sparse": lambda: datasets.make_group_sparse_problem(30, 60, noise_std=0.1,
                                                               random_state=0),
    "row_sparse": lambda: datasets.make_mmv_problem(20, 30, 5, 3, snr=20, random_state=0),
    "row_sparse_batch": lambda: datasets.make_mmv_batch(2, 20, 30, 5, 3, random_state=0),
    "low_rank": lambda: datasets.make_low_rank_problem((6, 5), 2, 30, noise_level=0.1,
                                                       random_state=0),
    "low_rank_aligned": lambda: datasets.make_aligned_problem(random_state=0),
    "low_rank_gaussian": lambda: datasets.make_gaussian_sensing_problem(random_state=0),
}
STRUCTURE = {"sparse": "sparse", "group_sparse": "group_sparse", "row_sparse": "row_sparse",
             "row_sparse_batch": "row_sparse", "low_rank": "low_rank",
             "low_rank_aligned": "low_rank", "low_rank_gaussian": "low_rank"}


def _forward(problem):
    """``A(truth)`` for an operator, a matrix, or a stack of matrices (batch)."""
    op = problem.operator
    if isinstance(op, np.ndarray) and op.ndim == 3:
        return np.stack([a @ x for a, x in zip(op, problem.truth, strict=True)])
    return as_operator(op).forward(problem.truth)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_generator_returns_a_problem_with_measurements_of_its_truth(name):
    problem = GENERATORS[name]()
    assert type(problem) is Problem
    assert problem.meta["structure"] == STRUCTURE[name]
    np.testing.assert_allclose(problem.y, _forward(problem) + problem.noise, atol=1e-12)
    assert problem.noise_std == pytest.approx(np.sqrt(np.mean(problem.noise**2)))
    copy = pickle.loads(pickle.dumps(problem))  # __getattr__ must not recurse mid-unpickling
    np.testing.assert_array_equal(copy.truth, problem.truth)
    assert sorted(copy.meta) == sorted(problem.meta)


def test_structure_specific_meta():
    sparse = GENERATORS["sparse"]()
    np.testing.assert_array_equal(sparse.meta["support"], sparse.truth != 0)
    assert sparse.meta["support"].sum() == 3
    group = GENERATORS["group_sparse"]()
    nonzero_groups = np.unique(group.meta["groups"][group.truth != 0])
    np.testing.assert_array_equal(nonzero_groups, np.sort(group.meta["active_groups"]))
    mmv = GENERATORS["row_sparse"]()
    np.testing.assert_array_equal(mmv.meta["support"], np.any(mmv.truth != 0, axis=1))
    batch = GENERATORS["row_sparse_batch"]()
    assert batch.meta["support"].shape == (2, 30)
    low = GENERATORS["low_rank"]()
    assert low.meta["rank"] == np.linalg.matrix_rank(low.truth) == 2


@pytest.mark.parametrize("name, old, new", [
    ("sparse", "A", "operator"), ("sparse", "x", "truth"),
    ("group_sparse", "X", "operator"), ("group_sparse", "w", "truth"),
    ("group_sparse", "groups", ("meta", "groups")),
    ("group_sparse", "active_groups", ("meta", "active_groups")),
    ("row_sparse", "A", "operator"), ("row_sparse", "Y", "y"), ("row_sparse", "X", "truth"),
    ("row_sparse", "support", ("meta", "support")),
    ("low_rank", "Y", "truth"),
])
def test_old_attribute_names_warn_and_read_the_new_fields(name, old, new):
    problem = GENERATORS[name]()
    with pytest.warns(DeprecationWarning, match=f"Problem.{old} is deprecated"):
        value = getattr(problem, old)
    expected = problem.meta[new[1]] if isinstance(new, tuple) else getattr(problem, new)
    assert value is expected


def test_old_names_of_another_structure_do_not_exist():
    with pytest.raises(AttributeError, match="'w'"):
        GENERATORS["sparse"]().w
    with pytest.raises(AttributeError, match="'A'"):
        GENERATORS["low_rank"]().A


@pytest.mark.parametrize("old", ["SparseProblem", "GroupSparseProblem", "MMVProblem",
                                 "LowRankProblem", "MatrixSensingProblem"])
def test_old_class_names_warn(old):
    with pytest.warns(DeprecationWarning, match=old):
        assert getattr(datasets, old) is Problem
    with pytest.raises(AttributeError):
        datasets.NoSuchProblem


def test_one_low_rank_generator_gives_both_papers_truths():
    with pytest.warns(DeprecationWarning, match="make_low_rank_truth"):
        old = datasets.make_low_rank_truth(10, rank=6, random_state=3)
    new = datasets.make_low_rank_matrix((10, 10), 6, factors="uniform", symmetric_psd=True,
                                        random_state=3)
    np.testing.assert_array_equal(old, new)
    haar = datasets.make_low_rank_matrix((8, 6), 2, condition_number=4.0, random_state=0)
    s = np.linalg.svd(haar, compute_uv=False)
    assert s[0] == pytest.approx(1.0) and s[0] / s[1] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="factors"):
        datasets.make_low_rank_matrix((4, 4), 2, factors="gaussian")
    with pytest.raises(ValueError, match="condition_number"):
        datasets.make_low_rank_matrix((4, 4), 2, factors="uniform", condition_number=2.0)
