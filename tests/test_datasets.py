"""One vocabulary: every generator returns a ``Problem(operator, y, truth, noise, meta)``."""

import functools
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
    "low_rank": lambda: datasets.make_low_rank_problem((6, 5), 2, 30, noise_std=0.1,
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


# --- one keyword vocabulary -------------------------------------------------------------------

MAKERS = [datasets.make_sparse_problem, datasets.make_group_sparse_problem,
          datasets.make_mmv_problem, datasets.make_low_rank_problem,
          datasets.make_aligned_problem, datasets.make_gaussian_sensing_problem]


@pytest.mark.parametrize("maker", MAKERS, ids=lambda f: f.__name__)
def test_every_generator_speaks_the_same_keywords(maker):
    import inspect

    names = set(inspect.signature(maker).parameters)
    assert {"n_measurements", "snr", "noise_std", "random_state"} <= names
    assert not names & {"n_samples", "snr_db", "noise_level", "noise"}


def _name(value):
    """Test id of a generator (or of a partial of one)."""
    return getattr(getattr(value, "func", value), "__name__", None)


# (generator, arguments, old keywords, the same keywords under their new names)
ALIASES = [
    (functools.partial(datasets.make_group_sparse_problem, n_features=60), (),
     {"n_samples": 30, "snr_db": 10.0},
     {"n_measurements": 30, "snr": 10.0}),
    (datasets.make_low_rank_problem, ((6, 5), 2, 30), {"noise_level": 0.1}, {"noise_std": 0.1}),
    (datasets.make_aligned_problem, (), {"noise": 0.05}, {"noise_std": 0.05}),
    (datasets.make_gaussian_sensing_problem, (), {"noise": 0.0}, {"noise_std": 0.0}),
]


@pytest.mark.parametrize("maker, args, old, new", ALIASES, ids=_name)
def test_old_keywords_warn_and_give_the_same_problem(maker, args, old, new):
    expected = maker(*args, **new, random_state=3)
    for old_name, new_name in zip(old, new, strict=True):
        with pytest.warns(FutureWarning, match=rf"{old_name}=\.\.\.\) is deprecated: use "
                                               rf"{new_name}="):
            got = maker(*args, **{old_name: old[old_name]}, **{k: v for k, v in new.items()
                                                                if k != new_name},
                        random_state=3)
        for field in ("y", "truth", "noise"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        np.testing.assert_array_equal(as_operator(got.operator).to_dense(),
                                      as_operator(expected.operator).to_dense())
        with pytest.raises(TypeError, match="both"):
            maker(*args, **old, **new)


@pytest.mark.parametrize("maker, args", [
    (datasets.make_sparse_problem, (40, 20, 3)), (datasets.make_group_sparse_problem, (40, 60)),
    (datasets.make_mmv_problem, (20, 10, 5, 2)), (datasets.make_low_rank_problem, ((6, 5), 2, 30)),
    (datasets.make_aligned_problem, ()), (datasets.make_gaussian_sensing_problem, ()),
], ids=_name)
def test_snr_is_exact_and_exclusive_with_noise_std(maker, args):
    problem = maker(*args, snr=15.0, random_state=0)
    clean = problem.y - problem.noise
    ratio = np.sum(clean**2) / np.sum(problem.noise**2)
    assert 10 * np.log10(ratio) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="snr or noise_std"):
        maker(*args, snr=15.0, noise_std=0.1)
    with pytest.raises(ValueError, match="noise_std"):
        maker(*args, noise_std=-1.0)


def test_noise_std_sets_the_noise_level():
    # 4000 draws: the sample sd is within 1.2 % (one standard error) of sigma; 5 % is 4 errors
    problem = datasets.make_sparse_problem(4000, 10, 2, noise_std=0.2, random_state=0)
    assert problem.noise_std == pytest.approx(0.2, rel=0.05)
    mmv = datasets.make_mmv_problem(200, 10, 20, 2, noise_std=0.2, random_state=0)
    assert mmv.noise_std == pytest.approx(0.2, rel=0.05)
    np.testing.assert_array_equal(datasets.make_sparse_problem(30, 10, 2, random_state=0).noise, 0)
    # the spectral-network paper's generators default to its noise 1e-2
    aligned = datasets.make_aligned_problem(n_measurements=4000, random_state=0)
    assert aligned.noise_std == pytest.approx(1e-2, rel=0.05)


# --- real data ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader, shape, n_groups", [
    (datasets.load_diabetes_splines, (442, 46), 10),
    (datasets.load_breast_cancer_groups, (569, 30), 10),
])
def test_real_data_loaders_return_a_problem_with_unknown_truth(loader, shape, n_groups):
    data = loader()
    assert type(data) is Problem and data.meta["structure"] == "group_sparse"
    assert data.operator.shape == shape and data.y.shape == (shape[0],)
    assert data.truth is None and data.noise is None and data.noise_std is None
    assert np.unique(data.meta["groups"]).size == len(data.meta["feature_names"]) == n_groups
    for old, new in (("X", data.operator), ("groups", data.meta["groups"]),
                     ("feature_names", data.meta["feature_names"])):
        with pytest.warns(DeprecationWarning, match=f"Problem.{old} is deprecated"):
            assert getattr(data, old) is new
    with pytest.raises(AttributeError, match="feature_names"):
        GENERATORS["group_sparse"]().feature_names  # synthetic: no names


def test_old_real_data_class_name_warns():
    with pytest.warns(DeprecationWarning, match="SplineRegressionData"):
        assert datasets.SplineRegressionData is Problem
