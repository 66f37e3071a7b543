import subprocess
import sys

import numpy as np
import pytest

from overparam.io import load_array


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "overparam", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def sparse_files(tmp_path, rng):
    A = rng.standard_normal((40, 100)) / np.sqrt(40)
    x = np.zeros(100)
    x[[3, 50, 77]] = [1.0, -2.0, 0.5]
    np.save(tmp_path / "A.npy", A)
    np.savetxt(tmp_path / "y.csv", A @ x, delimiter=",")
    np.savez(tmp_path / "data.npz", A=A, y=A @ x)
    return tmp_path, x


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("recover", "demo", "methods", "experiments"):
        assert command in out.stdout


def test_recover_writes_estimate(sparse_files):
    tmp, x = sparse_files
    out = run_cli("recover", "--method", "hadamard", "--A", tmp / "A.npy", "--y", tmp / "y.csv",
                  "-o", tmp / "x.mat", "--param", "init_scale=1e-5")
    assert out.returncode == 0, out.stderr
    assert "written to" in out.stdout
    assert np.linalg.norm(load_array(tmp / "x.mat") - x) < 1e-2 * np.linalg.norm(x)


def test_recover_from_npz_keys(sparse_files):
    tmp, _ = sparse_files
    out = run_cli("recover", "--method", "min-norm", "--A", f"{tmp}/data.npz:A",
                  "--y", f"{tmp}/data.npz:y", "-o", tmp / "x.csv")
    assert out.returncode == 0, out.stderr
    assert load_array(tmp / "x.csv").shape == (100,)


@pytest.mark.parametrize("args, message", [
    (["--A", "missing.npy", "--y", "y.csv"], "no such file"),
    (["--A", "data.npz", "--y", "y.csv"], "holds 2 arrays"),
    (["--A", "A.npy", "--y", "bad.csv"], "cannot read"),
    (["--A", "A.npy", "--y", "short.csv"], "inconsistent numbers of samples: [40, 3]"),
])
def test_bad_input_is_one_line_exit_2(args, message, sparse_files):
    tmp, _ = sparse_files
    (tmp / "bad.csv").write_text("1,2\nthree\n")
    np.savetxt(tmp / "short.csv", np.ones(3), delimiter=",")
    out = run_cli("recover", "--method", "hadamard", *args, "-o", "x.npy", cwd=tmp)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_method_and_bad_param(sparse_files):
    tmp, _ = sparse_files
    base = ["recover", "--A", "A.npy", "--y", "y.csv", "-o", "x.npy"]
    out = run_cli(*base, "--method", "nope", cwd=tmp)
    assert out.returncode == 2 and "unknown method 'nope'" in out.stderr
    out = run_cli(*base, "--method", "hadamard", "--param", "colour=3", cwd=tmp)
    assert out.returncode == 2 and "colour" in out.stderr and "Traceback" not in out.stderr


def test_demo_recovers_sparse_vector():
    out = run_cli("demo", "--n-features", "100", "--n-measurements", "40", "--sparsity", "4")
    assert out.returncode == 0, out.stderr
    assert "support recovered: True" in out.stdout
