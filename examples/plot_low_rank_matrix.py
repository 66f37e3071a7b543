"""
Recover a low-rank matrix
=========================

Matrix sensing: a 10 x 10 rank-2 matrix from 80 Gaussian measurements ``<A_i, X>`` (fewer
than its 100 entries). Gradient descent on a full-width factorization ``X = U V^T`` from a
small random initialization learns the singular values one at a time and approaches a low-rank
interpolant; no rank is given. See :doc:`/matrix_sensing` (Wind, *Implicit Regularization
Makes Overparameterized Asymmetric Matrix Sensing Robust to Perturbations*).
"""

import matplotlib.pyplot as plt
import numpy as np

from overparam.datasets import make_low_rank_problem
from overparam.estimators import FactorizedRegressor
from overparam.metrics import relative_error

problem = make_low_rank_problem((10, 10), rank=2, n_measurements=80, random_state=0)
# Noiseless data: follow the path to the iteration budget (no held-out stopping time).
est = FactorizedRegressor(init_scale=1e-3, early_stopping=None, random_state=0)
est.fit(problem.operator, problem.y)
print(f"relative error {relative_error(est.coef_, problem.truth):.1e}; {est.result_.summary()}")

fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
axes[0].imshow(problem.truth, cmap="RdBu_r")
axes[0].set_title("truth (rank 2)")
axes[1].imshow(est.coef_, cmap="RdBu_r")
axes[1].set_title("recovered")
axes[2].semilogy(np.linalg.svd(est.coef_, compute_uv=False), "o-")
axes[2].set_title("singular values")
for ax in axes[:2]:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
