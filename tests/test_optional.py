"""Optional dependencies: a missing extra is one line that names it; the core works without."""

import subprocess
import sys

import numpy as np
import pytest

from overparam._optional import MissingExtraError, require


@pytest.mark.parametrize(("module", "extra"), [("cvxpy", "baselines"), ("skglm", "baselines"),
                                               ("distributed", "dask")])
def test_missing_extra_is_one_line_naming_it(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(MissingExtraError) as info:
        require(module, extra=extra)
    message = str(info.value)
    assert "\n" not in message
    assert f"pip install 'overparam[{extra}]'" in message and module in message
    assert isinstance(info.value, ImportError)


def test_require_returns_the_module():
    assert require("numpy", extra="core") is np


def test_baselines_name_the_extra_when_missing(monkeypatch):
    from overparam.baselines import GroupLassoRegressor, NuclearNormRegressor
    from overparam.implicit_bias import minimize_implicit_bias

    rng = np.random.default_rng(0)
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    monkeypatch.setitem(sys.modules, "skglm", None)
    with pytest.raises(MissingExtraError, match=r"overparam\[baselines\]"):
        NuclearNormRegressor().fit(rng.standard_normal((12, 3, 3)), rng.standard_normal(12))
    with pytest.raises(MissingExtraError, match=r"overparam\[baselines\]"):
        minimize_implicit_bias(rng.standard_normal((4, 8)), rng.standard_normal(4), 0.1)
    with pytest.raises(MissingExtraError, match=r"overparam\[baselines\]"):
        GroupLassoRegressor(groups=[0, 0, 1, 1]).fit(rng.standard_normal((10, 4)),
                                                     rng.standard_normal(10))


def test_dask_backend_names_the_extra_when_missing(monkeypatch):
    from overparam.experiments.runner import _iter_dask

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"overparam\[dask\]"):
        next(_iter_dask([], jobs=1, scheduler=None))


CORE_ONLY = """
import sys
for name in ("cvxpy", "skglm", "numba", "dask", "distributed"):
    sys.modules[name] = None  # as if not installed
import numpy as np
import overparam
from overparam.datasets import make_sparse_problem
from overparam.estimators import HadamardRegressor
from overparam.experiments.spec import LOAD_ERRORS, list_experiments
from overparam.methods import available_methods

assert overparam.__version__ and available_methods()
assert list_experiments() and not LOAD_ERRORS, LOAD_ERRORS
problem = make_sparse_problem(30, 60, 3, random_state=0)
est = HadamardRegressor().fit(problem.operator, problem.y)
assert np.linalg.norm(est.coef_ - problem.truth) < 1e-2 * np.linalg.norm(problem.truth)
from overparam.datasets import make_mmv_problem
from overparam.estimators import MMVRegressor
mmv = make_mmv_problem(20, 40, 10, 3, random_state=0)  # accelerator="auto": the numpy step
est = MMVRegressor().fit(mmv.operator, mmv.y)
assert np.linalg.norm(est.signal_ - mmv.truth) < 1e-2 * np.linalg.norm(mmv.truth)
print("core ok")
"""


def test_core_imports_and_fits_without_extras():
    """The package, its registries and an IR estimator work with no extra (fresh process)."""
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "core ok" in out.stdout
