import numpy as np
import pytest
from scipy.io import savemat

from overparam.io import DataFileError, DataFileNote, load_array, save_array


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
    with pytest.warns(DataFileNote, match="header"):
        np.testing.assert_array_equal(load_array(tmp_path / "h.csv"), [[1, 2], [3, 4]])


@pytest.mark.filterwarnings("ignore::overparam.io.DataFileNote")
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


def _npz_with_broken_member(path, A):
    """An .npz whose member B is not an array at all: reading it would fail."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.save(buf, A)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("A.npy", buf.getvalue())
        zf.writestr("B.npy", b"\x93NUMPY garbage that no reader can parse")


def test_npz_reads_only_the_chosen_array(tmp_path, rng):
    A = rng.standard_normal((3, 4))
    _npz_with_broken_member(tmp_path / "d.npz", A)
    np.testing.assert_array_equal(load_array(f"{tmp_path}/d.npz:A"), A)
    with pytest.raises(DataFileError, match="cannot read"):
        load_array(f"{tmp_path}/d.npz:B")


def test_scipy_sparse_npz(tmp_path, rng):
    import scipy.sparse as sp

    A = sp.random(6, 9, density=0.3, random_state=0, format="csr")
    sp.save_npz(tmp_path / "A.npz", A)
    got = load_array(tmp_path / "A.npz")
    assert sp.issparse(got)
    np.testing.assert_array_equal(got.toarray(), A.toarray())


@pytest.mark.parametrize("sep", [";", "\t", ","])
def test_csv_separators(sep, tmp_path):
    (tmp_path / "s.csv").write_text(f"1{sep}2.5\n-3{sep}4e-2\n")
    np.testing.assert_array_equal(load_array(tmp_path / "s.csv"), [[1, 2.5], [-3, 0.04]])


def test_csv_header_and_pandas_index_are_announced(tmp_path):
    (tmp_path / "h.csv").write_text("a;b\n1;2\n3;4\n")
    with pytest.warns(DataFileNote, match="header"):
        np.testing.assert_array_equal(load_array(tmp_path / "h.csv"), [[1, 2], [3, 4]])
    # pandas' DataFrame.to_csv(): an unnamed index column first.
    (tmp_path / "p.csv").write_text(",y\n0,0.5\n1,1.5\n2,2.5\n")
    with pytest.warns(DataFileNote) as notes:
        np.testing.assert_array_equal(load_array(tmp_path / "p.csv"), [0.5, 1.5, 2.5])
    assert any("pandas index" in str(n.message) for n in notes)
    # A non-numeric row after the first is an error, not a silently dropped header.
    (tmp_path / "m.csv").write_text("1,2\n3,x\n")
    with pytest.raises(DataFileError, match="cannot read"):
        load_array(tmp_path / "m.csv")


def test_save_writes_exactly_the_given_path(tmp_path, rng):
    x = rng.standard_normal(4)
    for name in ("X.NPY", "X.NPZ", "X.MAT", "X.CSV"):
        assert save_array(tmp_path / name, x) == tmp_path / name
        np.testing.assert_array_equal(load_array(tmp_path / name), x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.CSV", "X.MAT", "X.NPY", "X.NPZ"]
    with pytest.raises(DataFileError, match="exists"):
        save_array(tmp_path / "X.NPY", x, overwrite=False)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, rng):
    import overparam.io as io_module

    target = tmp_path / "x.npy"
    target.write_bytes(b"old result")

    def broken_write(fh, suffix, x):
        fh.write(b"half a fi")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_module, "_write", broken_write)
    with pytest.raises(OSError, match="No space"):
        save_array(target, rng.standard_normal(3))
    assert target.read_bytes() == b"old result"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temporary file left
