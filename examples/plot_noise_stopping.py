"""
Tuning-free stopping under noise
================================

With noisy measurements the gradient-descent path first fits the signal, then the noise:
its limit interpolates. ``early_stopping="validation"`` (the default) holds out a fifth of
the measurements, follows the path on the rest and stops where the held-out error is
smallest: no noise level and no sparsity needed. The discrepancy rule needs the noise level;
the oracle knows the truth. See :doc:`/noise`.
"""

import matplotlib.pyplot as plt
import numpy as np

from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.metrics import relative_error
from overparam.stopping import Oracle

problem = make_sparse_problem(150, 400, 10, snr=15, random_state=0)
sigma = np.linalg.norm(problem.noise) / np.sqrt(problem.y.size)
rules = {"validation (default)": "validation", "discrepancy (knows sigma)": "discrepancy",
         "oracle (knows x)": Oracle(problem.truth), "none: interpolate": None}
errors = {}
for label, rule in rules.items():
    est = HadamardRegressor(early_stopping=rule, noise_level=sigma, random_state=0)
    errors[label] = relative_error(est.fit(problem.operator, problem.y).coef_, problem.truth)
    print(f"{label:26s} relative error {errors[label]:.3f}")

fig, ax = plt.subplots(figsize=(6, 2.8))
ax.barh(list(errors), list(errors.values()), color=["C2", "C0", "0.6", "C3"])
ax.set_xlabel("relative error")
ax.invert_yaxis()
fig.tight_layout()
plt.show()
