"""Group-sparse regression problems: the group paper's synthetic settings and the diabetes data.

Paper: Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_positive, check_random_state
from .base import Problem, renamed_keywords, with_noise

__all__ = [
    "load_breast_cancer_groups",
    "load_diabetes_splines",
    "make_group_sparse_problem",
]

_DESIGNS = ("rademacher", "gaussian")


@renamed_keywords(n_samples="n_measurements", snr_db="snr")
def make_group_sparse_problem(
    n_measurements: int,
    n_features: int,
    *,
    group_size: int = 3,
    n_active_groups: int = 3,
    n_nonzero: int | None = None,
    values=None,
    design: str = "rademacher",
    noise_std: float | None = None,
    snr: float | None = None,
    active: str = "random",
    random_state=None,
) -> Problem:
    """The synthetic setting of the paper's section 5 and appendix E: ``y = X w + noise``.

    Parameters
    ----------
    n_measurements, n_features : int
        The paper's ``n`` (samples) and ``p`` (``p`` a multiple of ``group_size``).
    group_size : int, default=3
        Contiguous groups of this size; 1 gives plain sparsity (the paper's Fig. 5).
    n_active_groups : int, default=3
        Number of non-zero groups.
    n_nonzero : int, optional
        Number of non-zero entries, filled group after group (default: every entry of the
        active groups). The paper's Fig. 12 has 10 non-zeros "in 3 groups of size 4": the
        last group then holds 2.
    values : None, float or array_like, default=None
        Non-zero entries: a constant, one value per non-zero (in order), or None for
        standard Gaussian values.
    design : {"rademacher", "gaussian"}, default="rademacher"
        Entries of ``X``: +-1 with equal probability, or standard normal (not normalized, so
        that ``X^T X / n`` is close to the identity).
    noise_std : float, optional
        ``sigma`` of i.i.d. Gaussian noise (the paper uses 0.5; default: no noise).
    snr : float, optional
        Or noise scaled to this SNR ``10 log10(||Xw||^2/||noise||^2)`` in dB.
    active : {"random", "first"}, default="random"
        Which groups are active: chosen at random, or the first ones.
    random_state : None, int or Generator

    Returns
    -------
    Problem
        ``operator`` the design ``X`` ``(n, p)``, ``truth`` the coefficients ``w`` ``(p,)``;
        ``meta["groups"]`` the group label of each feature and ``meta["active_groups"]`` the
        labels of the non-zero groups (in the order they were filled).
    """
    for value, name in ((n_measurements, "n_measurements"), (n_features, "n_features"),
                        (group_size, "group_size")):
        check_positive(value, name, integer=True)
    check_positive(n_active_groups, "n_active_groups", strict=False, integer=True)
    if design not in _DESIGNS:
        raise ValueError(f"design must be one of {_DESIGNS}, got {design!r}")
    if active not in ("random", "first"):
        raise ValueError(f"active must be 'random' or 'first', got {active!r}")
    if n_features % group_size:
        raise ValueError(f"n_features={n_features} is not a multiple of group_size={group_size}")
    n_groups = n_features // group_size
    if n_active_groups > n_groups:
        raise ValueError(f"n_active_groups={n_active_groups} exceeds the {n_groups} groups")
    capacity = n_active_groups * group_size
    n_nonzero = capacity if n_nonzero is None else int(n_nonzero)
    if not (n_nonzero > (n_active_groups - 1) * group_size and n_nonzero <= capacity):
        raise ValueError(f"n_nonzero={n_nonzero} does not fill {n_active_groups} groups of size "
                         f"{group_size}")
    rng = check_random_state(random_state)
    if design == "rademacher":
        X = rng.choice([-1.0, 1.0], size=(n_measurements, n_features))
    else:
        X = rng.standard_normal((n_measurements, n_features))
    groups = np.arange(n_features) // group_size
    if active == "random":
        active_groups = np.sort(rng.choice(n_groups, size=n_active_groups, replace=False))
    else:
        active_groups = np.arange(n_active_groups)
    index = np.concatenate([np.flatnonzero(groups == k) for k in active_groups])[:n_nonzero] \
        if n_active_groups else np.zeros(0, dtype=int)
    if values is None:
        vals = rng.standard_normal(n_nonzero)
    else:
        vals = np.broadcast_to(np.asarray(values, dtype=float), (n_nonzero,)).copy() \
            if np.ndim(values) == 0 else np.asarray(values, dtype=float)
        if vals.shape != (n_nonzero,):
            raise ValueError(f"values has {vals.size} entries for {n_nonzero} non-zeros")
    w = np.zeros(n_features)
    w[index] = vals
    y, noise = with_noise(X @ w, rng, snr=snr, noise_std=noise_std)
    meta = {"structure": "group_sparse", "groups": groups, "active_groups": active_groups}
    return Problem(operator=X, y=y, truth=w, noise=noise, meta=meta)


def _regression_data(X, y, groups, feature_names) -> Problem:
    """A real regression data set as a :class:`Problem` with unknown truth and noise."""
    meta = {"structure": "group_sparse", "groups": np.asarray(groups),
            "feature_names": list(feature_names)}
    return Problem(operator=np.asarray(X, float), y=np.asarray(y, float), truth=None,
                   noise=None, meta=meta)


def load_diabetes_splines(n_knots: int = 3, degree: int = 3) -> Problem:
    """scikit-learn's diabetes data, each feature expanded into B-splines (one group each).

    The stand-in, shipped with scikit-learn, for the paper's eye-tissue gene-expression data
    (120 samples, 20 genes x 5 B-splines), which cannot be downloaded here. Each of the 10
    features goes through :class:`sklearn.preprocessing.SplineTransformer`
    (``n_knots + degree - 1`` columns, 5 by default, like the paper); the binary feature
    ``sex`` has only two values and becomes one indicator column instead, so the groups have
    unequal sizes (9 of 5 and 1 of 1). The knots depend only on each feature's range.
    Columns and target are left unscaled: standardize them on the training part of each split.

    Returns
    -------
    Problem
        ``operator`` the expanded design ``(442, 46)``, ``y`` the target, ``truth`` and
        ``noise`` None (unknown); ``meta["groups"]`` the group (original feature) of each
        column and ``meta["feature_names"]`` the name of each group.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import SplineTransformer

    data = load_diabetes()
    columns, labels = [], []
    for k in range(len(data.feature_names)):
        feature = data.data[:, [k]]
        if np.unique(feature).size <= 2:
            block = (feature == feature.max()).astype(float)
        else:
            block = SplineTransformer(n_knots=n_knots, degree=degree).fit_transform(feature)
        columns.append(block)
        labels += [k] * block.shape[1]
    return _regression_data(np.hstack(columns), data.target, labels, data.feature_names)


def load_breast_cancer_groups() -> Problem:
    """scikit-learn's breast-cancer data with its natural groups: 10 measurements x 3 statistics.

    Each of the 10 nuclear measurements (radius, texture, ..., fractal dimension) is reported
    as its mean, standard error and worst value over the cells of an image: the three columns
    of one measurement form a group (10 groups of 3). The target is the diagnosis (1 =
    malignant), fitted by least squares as in the diabetes table (569 samples, shipped with
    scikit-learn). Columns and target are left unscaled. Returns a :class:`Problem` laid out
    as :func:`load_diabetes_splines`'s.
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    # columns are named "mean radius", "radius error" and "worst radius"
    base = [n.removeprefix("mean ").removeprefix("worst ").removesuffix(" error")
            for n in names]
    measurements = list(dict.fromkeys(base))
    labels = np.array([measurements.index(b) for b in base])
    return _regression_data(data.data, np.asarray(data.target) == 0, labels, measurements)
