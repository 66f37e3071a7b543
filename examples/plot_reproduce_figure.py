"""
Reproduce a figure of a paper
=============================

Every figure that ``overparam reproduce`` draws comes from a registered
:class:`~overparam.experiments.Experiment`: a parameter grid, a trial function, a plot and
the paper's claim. Here the quick version of ``group-convergence`` (Li, Nguyen, Hegde, Wong,
Fig. 2 and 6: Algorithms 1 and 2 on a 3-group signal, a short run) is run into a throw-away
result store; the command line does the same with ``overparam run group-convergence --quick``
and ``overparam reproduce --quick`` does it for every experiment, with an HTML report.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from overparam.experiments import get_experiment
from overparam.experiments.runner import run_experiment

experiment = get_experiment("group-convergence")
print(f"{experiment.paper}, {experiment.figure}\nclaim: {experiment.claim}")

outdir = Path(tempfile.mkdtemp())
result = run_experiment(experiment, quick=True, jobs=1, store=outdir / "results.sqlite",
                        outdir=outdir, progress=False)
print(f"{len(result.rows)} trials stored; summary:")
for key, value in list(result.summary.items())[:4]:
    print(f"    {key}: {value}")

# The experiment's own plot, as the report shows it.
fig, ax = plt.subplots(figsize=(9, 4))
ax.imshow(plt.imread(result.figure))
ax.set_axis_off()
fig.tight_layout()
plt.show()
