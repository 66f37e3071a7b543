"""CLI habits: bare command, --version, flags without a type, suggestions; fit progress bars."""

import subprocess
import sys

import numpy as np
import pytest

import overparam
from overparam import show_progress
from overparam._progress import progress_bar


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "overparam", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_bare_command_prints_help_and_succeeds():
    out = run_cli()
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and "recover" in out.stdout


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"overparam {overparam.__version__}"


def test_boolean_flags_have_no_type_label():
    out = run_cli("reproduce", "--help")
    assert out.returncode == 0
    assert "--quick" in out.stdout and "--progress / --no-progress" in out.stdout
    assert "<bool>" not in out.stdout


def test_unknown_method_suggests_the_closest():
    out = run_cli("recover", "--method", "hadamrd", "--A", "A.npy", "--y", "y.npy",
                  "-o", "x.npy")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: unknown method 'hadamrd'; did you mean 'hadamard'? "
                                  "(`overparam methods` lists them)")


def test_unknown_parameter_lists_valid_ones_and_suggests(tmp_path):
    out = run_cli("recover", "--method", "hadamard", "--A", "A.npy", "--y", "y.npy",
                  "-o", "x.npy", "-p", "dept=3", cwd=tmp_path)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert "\n" not in line
    assert "no parameter 'dept'; did you mean 'depth'?" in line
    assert "valid: " in line and "init_scale" in line and "early_stopping" in line


def _sparse(rng):
    A = rng.standard_normal((30, 60))
    x = np.zeros(60)
    x[[1, 20]] = [1.0, -1.0]
    return A, A @ x


def test_fit_is_silent_by_default(rng, capsys):
    from overparam.estimators import HadamardRegressor

    HadamardRegressor().fit(*_noisy_sparse(rng))  # paths run, quietly
    assert capsys.readouterr().err == ""


def _noisy_sparse(rng):
    A, y = _sparse(rng)
    return A, y + 0.1 * rng.standard_normal(y.shape)  # the validated paths run (no shortcut)


def test_progress_attribute_and_block_show_a_bar(rng, capsys):
    from overparam.estimators import HadamardRegressor

    est = HadamardRegressor()
    est.progress = True
    est.fit(*_noisy_sparse(rng))
    assert "dual flow" in capsys.readouterr().err
    with show_progress():
        HadamardRegressor().fit(*_noisy_sparse(rng))
    assert "dual flow" in capsys.readouterr().err


@pytest.mark.parametrize(("block", "progress", "disabled", "delay"),
                         [(None, False, True, 0.0), (None, True, False, 0.0),
                          (1.0, False, False, 1.0)])
def test_progress_bar_settings(block, progress, disabled, delay):
    if block is None:
        bar = progress_bar(progress, total=3)
    else:
        with show_progress(delay=block):
            bar = progress_bar(progress, total=3)
    assert bar.disable is disabled
    if not disabled:
        assert bar.delay == delay
    bar.close()
