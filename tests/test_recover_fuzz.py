"""Fuzz ``overparam recover`` with malformed files and parameters: a result or one error line.

Runs the command line in this process (``main(argv)``) so that 50 examples take seconds; the
subprocess tests in ``test_cli.py`` check the same contract end to end.
"""

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overparam.cli import main
from overparam.io import load_array

SUFFIXES = [".npy", ".npz", ".csv", ".mat", ".txt", ""]
CSV_TOKENS = ["1", "-2.5", "3e-2", "nan", "inf", "x", "", '"4"', " ", "1e999", "0x10"]
METHODS = ["min-norm", "lasso", "omp", "hadamard", "basis-pursuit"]
PARAMS = ["max_iter=30", "max_iter=30", "max_iter=0", "max_iter=-5", "max_iter=abc", "init_scale=0",
          "init_scale=-1", "init_scale=nan", "init_scale=1e300", "tol=None", "alpha=0",
          "n_nonzero_coefs=3", "n_nonzero_coefs=10**9", "colour=3", "=3", "x", "a=[[[",
          "depth=1", "depth=100", "step=adaptive", "step=-1.0", "random_state=0"]


def _valid(draw, shape):
    """A clean array of ``shape`` in one of the formats (about half the examples)."""
    arr = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    fmt = draw(st.sampled_from([".npy", ".csv", ".npz", ".mat"]))
    buf = io.BytesIO()
    if fmt == ".npy":
        np.save(buf, arr)
    elif fmt == ".npz":
        np.savez(buf, only=arr)
    elif fmt == ".mat":
        from scipy.io import savemat

        savemat(buf, {"only": arr})
    else:
        np.savetxt(buf, arr, delimiter=draw(st.sampled_from([",", ";"])))
    return buf.getvalue(), fmt


@st.composite
def array_file(draw, rows: int, shape: tuple):
    """Bytes of a file and its suffix: a valid array, a broken one, or junk."""
    if draw(st.booleans()):
        return _valid(draw, shape)
    kind = draw(st.sampled_from(["npy", "npy", "npz", "csv", "junk", "object", "complex"]))
    shape = draw(st.sampled_from([(rows,), (rows, 7), (rows, 0), (0,), (rows, 7, 2), ()]))
    values = draw(st.sampled_from([1.0, 0.0, np.nan, np.inf, 1e300]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arr = rng.standard_normal(shape)
    if values != 1.0:
        arr.flat[: max(arr.size // 3, 0)] = values
    buf = io.BytesIO()
    if kind == "npy":
        np.save(buf, arr)
        data = buf.getvalue()
        cut = draw(st.sampled_from([None, None, 10, len(data) // 2]))
        return (data if cut is None else data[:cut]), ".npy"
    if kind == "object":
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return buf.getvalue(), ".npy"
    if kind == "complex":
        np.save(buf, arr + 1j)
        return buf.getvalue(), ".npy"
    if kind == "npz":
        names = draw(st.lists(st.sampled_from(["A", "y", "x", "format", "shape"]),
                              min_size=0, max_size=3, unique=True))
        np.savez(buf, **{n: arr for n in names})
        return buf.getvalue(), ".npz"
    if kind == "csv":
        n_rows = draw(st.integers(0, rows + 2))
        sep = draw(st.sampled_from([",", ";", "\t"]))
        lines = [sep.join(draw(st.lists(st.sampled_from(CSV_TOKENS), min_size=1, max_size=3)))
                 for _ in range(n_rows)]
        return "\n".join(lines).encode(), ".csv"
    return draw(st.binary(max_size=200)), draw(st.sampled_from(SUFFIXES))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=array_file(rows=6, shape=(6, 7)), y=array_file(rows=6, shape=(6,)),
       method=st.sampled_from(METHODS),
       params=st.one_of(st.just([]), st.lists(st.sampled_from(PARAMS), max_size=2)),
       out_name=st.sampled_from(["x.npy", "X.NPY", "x.csv", "x.mat", "sub/x.npz", "x.txt"]))
def test_recover_gives_a_result_or_one_error_line(A, y, method, params, out_name):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / f"A{A[1]}").write_bytes(A[0])
        (tmp / f"y{y[1]}").write_bytes(y[0])
        argv = ["recover", "--method", method, "--A", str(tmp / f"A{A[1]}"),
                "--y", str(tmp / f"y{y[1]}"), "-o", str(tmp / out_name)]
        for p in params:
            argv += ["--param", p]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
        code, err = exit_info.value.code, stderr.getvalue()
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert all(line.startswith(("note: ", "error: ")) for line in lines), err
        if code == 0:
            x = load_array(tmp / out_name)
            assert np.all(np.isfinite(x.toarray() if hasattr(x, "toarray") else x))
            assert "written to" in stdout.getvalue()
            assert not any(line.startswith("error: ") for line in lines)
        else:
            assert code in (1, 2), (code, err)
            assert sum(line.startswith("error: ") for line in lines) == 1, err
            assert not (tmp / out_name).exists()
        assert not [p for p in os.listdir(tmp) if p.startswith(".")]  # no temporary file
