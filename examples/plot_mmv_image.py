"""
Recover jointly sparse signals (MMV), seen as an image
======================================================

Multiple measurement vectors: ``Y = A X`` where the 20 columns of ``X`` share the same 4
nonzero rows, seen through 30 measurements of 60 unknowns each. Shown as an image (rows are
features, columns are signals), the truth is four bright lines. The factorization
``X = (g^2 1^T) * V`` ties each row's entries to one scale ``g``, and plain gradient descent
from a small initialization recovers every column at once, with no sparsity level and no
penalty. See :doc:`/mmv` (Jayalal, Kalyani, *Tuning-Free Structured Sparse Recovery of
Multiple Measurement Vectors using Implicit Regularization*).
"""

import matplotlib.pyplot as plt
import numpy as np

from overparam.datasets import make_mmv_problem
from overparam.estimators import MMVRegressor
from overparam.metrics import relative_error

problem = make_mmv_problem(n_measurements=30, n_features=60, n_columns=20, n_nonzero_rows=4,
                           row_values="gaussian", random_state=0)
# Noiseless data: run to the limit (no held-out stopping time needed).
est = MMVRegressor(early_stopping=None, random_state=0).fit(problem.operator, problem.y)
min_norm = np.linalg.pinv(problem.operator) @ problem.y  # least squares from zero
print(f"IR-MMV relative error {relative_error(est.signal_, problem.truth):.1e}, "
      f"minimum-norm {relative_error(min_norm, problem.truth):.2f}")
print("rows found:", np.flatnonzero(np.linalg.norm(est.signal_, axis=1) > 1e-3),
      "true:", np.flatnonzero(np.linalg.norm(problem.truth, axis=1)))

fig, axes = plt.subplots(1, 3, figsize=(8, 4), sharey=True)
vmax = np.abs(problem.truth).max()
for ax, (title, image) in zip(axes, [("truth", problem.truth), ("IR-MMV", est.signal_),
                                     ("minimum l2 norm", min_norm)], strict=True):
    ax.imshow(image, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_title(title)
    ax.set_xlabel("signal (column)")
axes[0].set_ylabel("feature (row)")
fig.tight_layout()
plt.show()
