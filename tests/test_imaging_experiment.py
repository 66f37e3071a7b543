"""The compressive-imaging example (``imaging-dct``): operator, Lasso peer, quick run."""

import math

import numpy as np
import pytest

from overparam.experiments import get_experiment
from overparam.experiments.papers.imaging import (
    LASSO_RATIOS,
    RandomizedDCTSensing,
    fista_lasso_path,
    load_test_image,
)
from overparam.experiments.runner import run_experiments
from overparam.experiments.spec import Verdict
from overparam.testing import check_adjoint


def _operator(side=8, m=20, seed=0):
    return RandomizedDCTSensing.random(side, m, np.random.default_rng(seed))


def test_operator_is_adjoint_with_orthonormal_rows_and_matches_its_matrix():
    op = _operator()
    assert check_adjoint(op) < 1e-12
    A = op.to_dense()
    assert A.shape == (20, 64)
    np.testing.assert_allclose(A @ A.T, np.eye(20), atol=1e-12)
    x = np.random.default_rng(1).standard_normal((64, 3))
    np.testing.assert_allclose(op.forward(x), A @ x, atol=1e-12)  # (N, L) columns
    z = np.random.default_rng(2).standard_normal((20, 3))
    np.testing.assert_allclose(op.adjoint(z), A.T @ z, atol=1e-12)
    sub = op.rows([3, 7])
    np.testing.assert_allclose(sub.to_dense(), A[[3, 7]], atol=1e-12)


def test_operator_rejects_bad_rows_and_signs():
    with pytest.raises(ValueError, match="distinct"):
        RandomizedDCTSensing(4, [1, 1], np.ones(16))
    with pytest.raises(ValueError, match="distinct"):
        RandomizedDCTSensing(4, [16], np.ones(16))
    with pytest.raises(ValueError, match="signs"):
        RandomizedDCTSensing(4, [1, 2], np.full(16, 0.5))


def test_test_image_is_a_grey_square_in_unit_range():
    img = load_test_image(32)
    assert img.shape == (32, 32) and 0.0 <= img.min() < img.max() <= 1.0
    assert img.std() > 0.05  # a picture, not a flat field


def test_fista_path_solves_the_lasso_with_the_stated_penalty():
    pytest.importorskip("pylops")
    op = _operator(side=8, m=32, seed=3)
    rng = np.random.default_rng(4)
    truth = np.zeros(64)
    truth[rng.choice(64, 5, replace=False)] = rng.standard_normal(5)
    y = op.forward(truth) + 0.01 * rng.standard_normal(32)
    ratios = [0.3, 0.1]
    fits, seconds = fista_lasso_path(op, y, ratios, n_iter=5000)
    assert len(fits) == 2 and seconds[0] <= seconds[1]
    lam_max = np.max(np.abs(op.adjoint(y)))
    for ratio, x in zip(ratios, fits, strict=True):
        lam = ratio * lam_max
        corr = op.adjoint(y - op.forward(x))  # KKT: A^T r = lam sign(x) on the support, |.| <= lam
        on = np.abs(x) > 1e-10
        assert on.any()
        np.testing.assert_allclose(corr[on], lam * np.sign(x[on]), rtol=1e-4, atol=1e-8)
        assert np.all(np.abs(corr[~on]) <= lam * (1 + 1e-4))


def test_quick_run_writes_the_figure_and_ir_is_within_a_db_of_the_validated_lasso(tmp_path):
    pytest.importorskip("pylops")
    exp = get_experiment("imaging-dct")
    assert exp.cells()[0]["side"] ** 2 >= 65_536  # the full run is at N >= 65,536
    (result,) = run_experiments([exp], quick=True, outdir=tmp_path, progress=False)
    assert not result.errors and len(result.rows) == exp.quick_trials
    assert result.figure is not None and result.figure.stat().st_size > 10_000
    for row in result.rows:
        m = row["metrics"]
        for key in ("psnr_ir", "psnr_lasso", "psnr_lasso_oracle", "time_ir", "time_lasso"):
            assert math.isfinite(m[key]), key
        assert m["ir_solver"] == "newton-cg" and m["ir_stop"] == "converged"
        assert m["psnr_ir"] > 15.0 and m["lasso_ratio"] in LASSO_RATIOS
        assert len(m["image_ir"]) == m["N"] == 4 * m["M"]
        # the oracle penalty is, by construction, at least as good as the validated one
        assert m["psnr_lasso_oracle"] >= m["psnr_lasso"] - 1e-9
    (claim,) = exp.claims
    outcome = claim.evaluate(result.rows, result.summary)
    assert outcome.verdict is Verdict.REPRODUCED, outcome


def test_lasso_peer_names_the_pylops_extra_when_missing(monkeypatch):
    import sys

    from overparam._optional import MissingExtraError

    monkeypatch.setitem(sys.modules, "pylops", None)
    op = _operator()
    with pytest.raises(MissingExtraError, match=r"overparam\[pylops\]"):
        fista_lasso_path(op, np.ones(op.n_measurements), [0.1])
