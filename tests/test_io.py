import numpy as np
import pytest
from scipy.io import savemat

from overparam.io import DataFileError, load_array, save_array


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".mat", ".csv"])
@pytest.mark.parametrize("shape", [(5,), (4, 3)])
def test_roundtrip(suffix, shape, tmp_path, rng):
    x = rng.standard_normal(shape)
    path = save_array(tmp_path / f"x{suffix}", x)
    np.testing.assert_array_equal(load_array(path), x)


def test_npz_and_mat_keys(tmp_path, rng):
    A, y = rng.standard_normal((3, 4)), rng.standard_normal(3)
    np.savez(tmp_path / "d.npz", A=A, y=y)
    savemat(tmp_path / "d.mat", {"A": A, "y": y})
    for ext in ("npz", "mat"):
        np.testing.assert_array_equal(load_array(f"{tmp_path}/d.{ext}:A"), A)
        np.testing.assert_array_equal(load_array(f"{tmp_path}/d.{ext}:y"), y)
        with pytest.raises(DataFileError, match="holds 2 arrays"):
            load_array(tmp_path / f"d.{ext}")
        with pytest.raises(DataFileError, match="no array named 'B'"):
            load_array(f"{tmp_path}/d.{ext}:B")


def test_csv_with_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4\n")
    np.testing.assert_array_equal(load_array(tmp_path / "h.csv"), [[1, 2], [3, 4]])


@pytest.mark.parametrize("content, name, match", [
    (None, "missing.npy", "no such file"),
    ("x", "data.txt", "unsupported format"),
    ("not numbers\nat all\n", "bad.csv", "cannot read"),
    ("garbage", "bad.npy", "cannot read"),
])
def test_bad_files(content, name, match, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataFileError, match=match):
        load_array(path)


def test_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="cannot read"):
        load_array(tmp_path / "o.npy")
