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


# -- every error path: one line on stderr, no traceback, exit 2 (input) or 1 (computation) ----
def _make_error_fixtures(tmp):
    rng = np.random.default_rng(0)
    (tmp / "corrupt.sqlite").write_bytes(b"not a database at all" * 10)
    (tmp / "afile").write_text("x")
    (tmp / "old.npy").write_bytes(b"previous result")
    np.save(tmp / "A.npy", rng.standard_normal((10, 20)))
    np.save(tmp / "y.npy", rng.standard_normal(10))
    np.save(tmp / "Z.npy", np.zeros((10, 20)))
    np.save(tmp / "Y0.npy", np.zeros((10, 3)))
    np.save(tmp / "Ainf.npy", rng.standard_normal((30, 3, 3)))  # 30 equations, 9 unknowns
    np.save(tmp / "yinf.npy", rng.standard_normal(30))
    np.save(tmp / "Ams.npy", rng.standard_normal((20, 6, 6)))
    np.save(tmp / "yms.npy", rng.standard_normal(20))


RECOVER = ["recover", "--method", "min-norm", "--A", "A.npy", "--y", "y.npy"]


@pytest.mark.parametrize("args, code, message", [
    (["run", "demo-sleep", "--jobs", "0"], 2, "--jobs"),
    (["run", "demo-sleep", "--backend", "foo"], 2, "--backend"),
    (["run", "demo-sleep", "--trial-timeout", "-1"], 2, "--trial-timeout"),
    (["report", "--mode", "everything"], 2, "--mode"),
    (["no-such-command"], 2, "No such command"),
    (["run", "demo-sleep", "--quick", "--store", "corrupt.sqlite"], 2, "not a result store"),
    (["report", "--store", "corrupt.sqlite"], 2, "not a result store"),
    (["run", "demo-sleep", "--quick", "--outdir", "afile/sub"], 2, "afile"),
    ([*RECOVER, "-o", "afile/x.npy"], 2, "not a folder"),
    ([*RECOVER, "-o", "old.npy"], 2, "--force"),
    ([*RECOVER, "-o", "x.txt"], 2, "unsupported output format"),
    ([*RECOVER, "-o", "."], 2, "unsupported output format"),
    ([*RECOVER, "-o", "x.npy", "--param", "a=" + "[" * 5000], 2, "no parameter 'a'"),
    (["recover", "--method", "nuclear-norm", "--A", "Ainf.npy", "--y", "yinf.npy", "-o",
      "x.npy"], 2, "infeasible"),
    (["recover", "--method", "factorized", "--A", "Ams.npy", "--y", "yms.npy", "-o", "x.npy",
      "--param", "width=1" + "0" * 12], 1, "out of memory"),
])
def test_every_error_is_one_line_without_traceback(args, code, message, tmp_path):
    _make_error_fixtures(tmp_path)
    out = run_cli(*args, cwd=tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert (tmp_path / "old.npy").read_bytes() == b"previous result"
    assert not (tmp_path / "x.npy").exists()


def test_all_zero_data_recovers_zero(tmp_path):
    """All-zero A and Y: x = 0 is the answer (this used to end in an IndexError)."""
    _make_error_fixtures(tmp_path)
    out = run_cli("recover", "--method", "ir-mmv", "--A", "Z.npy", "--y", "Y0.npy", "-o",
                  "x.npy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not np.load(tmp_path / "x.npy").any()


def test_crafted_store_cannot_write_outside_outdir(tmp_path):
    import sqlite3
    import time

    from overparam.experiments.store import ResultStore

    store = tmp_path / "crafted.sqlite"
    ResultStore(store).close()
    outside = tmp_path / "outside"
    with sqlite3.connect(store) as conn:
        for name in ("../outside/escape", str(outside / "abs")):
            conn.execute("INSERT INTO trials (experiment, params, trial, quick, seed, status,"
                         " metrics, error, time, finished_at, version, host, run_id)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (name, '{"n":1}', 0, 1, 1, "ok", '{"e":1}', None, 0.1, time.time(),
                          "0", "h", None))
    out = run_cli("report", "--store", store, "--outdir", tmp_path / "out")
    assert out.returncode == 2 and "invalid experiment name" in out.stderr
    assert "Traceback" not in out.stderr
    assert not outside.exists()
    assert not list(tmp_path.glob("**/*.csv"))


def test_recover_force_and_real_output_path(sparse_files):
    tmp, _ = sparse_files
    base = ["recover", "--method", "min-norm", "--A", "A.npy", "--y", "y.csv"]
    out = run_cli(*base, "-o", "X.NPY", cwd=tmp)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("written to X.NPY")
    assert (tmp / "X.NPY").exists() and not (tmp / "X.NPY.npy").exists()
    first = (tmp / "X.NPY").read_bytes()
    out = run_cli(*base, "-o", "X.NPY", cwd=tmp)
    assert out.returncode == 2 and "--force" in out.stderr
    out = run_cli(*base, "-o", "X.NPY", "--force", cwd=tmp)
    assert out.returncode == 0 and (tmp / "X.NPY").read_bytes() == first
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no temp


def test_recover_says_what_it_guessed_about_a_csv(sparse_files):
    tmp, _ = sparse_files
    y = np.loadtxt(tmp / "y.csv", delimiter=",")
    # pandas' to_csv(): an unnamed index column first.
    lines = [",y"] + [f"{i},{float(v)!r}" for i, v in enumerate(y)]
    (tmp / "y_pandas.csv").write_text("\n".join(lines) + "\n")
    out = run_cli("recover", "--method", "min-norm", "--A", "A.npy", "--y", "y_pandas.csv",
                  "-o", "x.npy", cwd=tmp)
    assert out.returncode == 0, out.stderr
    assert "header" in out.stderr and "pandas index" in out.stderr
    assert load_array(tmp / "x.npy").shape == (100,)


def test_param_counts_in_exponent_notation_are_integers():
    from overparam.cli import parse_params

    params = parse_params(["max_iter=1e4", "init_scale=1e-5", "tol=1.5", "depth=3"])
    assert params == {"max_iter": 10_000, "init_scale": 1e-5, "tol": 1.5, "depth": 3}
    assert type(params["max_iter"]) is int
