"""Hyperparameter constraints: scikit-learn's ``_parameter_constraints``, declared once.

Every estimator declares the allowed values of each ``__init__`` parameter in a class
attribute ``_parameter_constraints`` (the mechanism of
:mod:`sklearn.utils._param_validation`: Interval, StrOptions, types, None, ...);
:meth:`RecoveryEstimator.fit <overparam.estimators.RecoveryEstimator.fit>` validates them
once, before it looks at the data, and a bad value raises scikit-learn's
:class:`~sklearn.utils._param_validation.InvalidParameterError` (a ``ValueError`` and a
``TypeError``) naming the parameter. What the constraints cannot say (required parameters,
combinations of parameters, parameters against the data) is checked right after, in the
estimator's ``_check_params``, still before any solver. The parameters that many estimators
share (the stopping rule, the budget, the seed) are declared here once and picked by name
with :func:`shared_constraints`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ..solvers.steps import StepPolicy
from ..stopping import Validation

__all__ = [
    "ARRAY_LIKE",
    "GROUPS",
    "GROUPS_REQUIRED",
    "NON_NEGATIVE",
    "POSITIVE",
    "POSITIVE_INT",
    "RANDOM_STATE",
    "SHARED_CONSTRAINTS",
    "STEP",
    "shared_constraints",
]


#: a number > 0 (finite)
POSITIVE = Interval(Real, 0, None, closed="neither")
#: a number >= 0 (finite)
NON_NEGATIVE = Interval(Real, 0, None, closed="left")
#: an int >= 1
POSITIVE_INT = Interval(Integral, 1, None, closed="left")
#: an array-like, to unpack into a list of constraints: a list, a tuple or an array (not
#: scikit-learn's "array-like", which takes anything with a length: a dict or a set has one,
#: but ``groups={"groups": labels}`` is a mistake, not labels)
ARRAY_LIKE = (list, tuple, HasMethods(["__array__"]))
#: a partition of the features (:func:`~overparam.parameterizations.group.as_group_labels`):
#: a group size, a list of index arrays or a label per feature; None where the default
#: stands for "not given" (a required parameter, see ``RecoveryEstimator._required_params``)
GROUPS = [POSITIVE_INT, *ARRAY_LIKE, None]
GROUPS_REQUIRED = "a group size, a list of index arrays or a label per feature"
#: what :func:`overparam._validation.check_random_state` takes
RANDOM_STATE = ["random_state", np.random.Generator, np.random.SeedSequence]
#: a gradient step: the safe adaptive step, a fixed step, or a StepPolicy
#: (:func:`~overparam.solvers.steps.as_step_policy`)
STEP = [StrOptions({"adaptive"}), POSITIVE, StepPolicy]

#: The parameters that many estimators share, declared once.
SHARED_CONSTRAINTS: dict[str, list] = {
    "max_iter": [POSITIVE_INT],
    "tol": [NON_NEGATIVE],
    "early_stopping": [StrOptions({"validation", "discrepancy"}), Validation, None],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "noise_level": [POSITIVE, None],
    "random_state": RANDOM_STATE,
}
#: the stopping quartet and the budget of the implicit-regularization estimators
PATH_PARAMS = tuple(SHARED_CONSTRAINTS)


def shared_constraints(*names: str) -> dict[str, list]:
    """The shared constraints of ``names`` (all of :data:`SHARED_CONSTRAINTS` when none),
    to unpack into a class's ``_parameter_constraints``."""
    return {name: SHARED_CONSTRAINTS[name] for name in (names or PATH_PARAMS)}
