"""
Recover a group-sparse vector
=============================

The diagonally grouped network ``w = (D u)^2 * v`` (one scale per group, a direction per
entry) trained by weight-normalized gradient descent selects whole groups. Under noise the
stopping time is chosen on held-out measurements (the default), so there is still nothing to
tune. See :doc:`/group` (Li, Nguyen, Hegde, Wong, *Implicit Regularization for Group
Sparsity*).
"""

import matplotlib.pyplot as plt
import numpy as np

from overparam.datasets import make_group_sparse_problem
from overparam.estimators import GroupHadamardRegressor
from overparam.metrics import relative_error

problem = make_group_sparse_problem(120, 90, group_size=3, n_active_groups=3,
                                    noise_std=0.5, random_state=0)
est = GroupHadamardRegressor(groups=3, random_state=0).fit(problem.operator, problem.y)
print(f"relative error {relative_error(est.coef_, problem.truth):.3f}")
print("active groups found:", np.flatnonzero(est.group_norms_ > 0.1 * est.group_norms_.max()),
      "true:", np.sort(problem.meta["active_groups"]))

fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(np.arange(problem.truth.size), problem.truth, color="0.7", label="truth")
ax.plot(est.coef_, "C3.", label="estimate")
ax.set_xlabel("feature (groups of 3)")
ax.legend()
fig.tight_layout()
plt.show()
