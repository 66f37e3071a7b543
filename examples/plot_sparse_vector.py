"""
Recover a sparse vector
=======================

Gradient descent on the overparameterization ``x = u^2 - v^2``, started near zero, finds a
sparse solution of an underdetermined system ``y = A x`` with no penalty and nothing to tune;
plain least squares from zero (the minimum-l2-norm solution) spreads the signal everywhere.
See :doc:`/sparse` for the maths (Chou, Maly, Rauhut, *More is Less*).
"""

import matplotlib.pyplot as plt

from overparam.baselines import MinNormRegressor
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.metrics import relative_error

problem = make_sparse_problem(n_measurements=60, n_features=200, n_nonzero=6, random_state=0)
implicit = HadamardRegressor(depth=2).fit(problem.operator, problem.y)
min_norm = MinNormRegressor().fit(problem.operator, problem.y)

for name, est in [("x = u^2 - v^2", implicit), ("minimum l2 norm", min_norm)]:
    print(f"{name:16s} relative error {relative_error(est.coef_, problem.truth):.1e}")

fig, ax = plt.subplots(figsize=(7, 3))
ax.stem(problem.truth, linefmt="k-", markerfmt="ko", basefmt=" ", label="truth")
ax.plot(implicit.coef_, "C1.", label="implicit regularization")
ax.plot(min_norm.coef_, "C0x", ms=4, label="minimum l2 norm")
ax.set_xlabel("index")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
