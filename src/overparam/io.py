"""Read and write arrays in the formats users keep measurements in: .npy, .npz, .mat, .csv.

Reading says what it guessed: a CSV header row or a pandas index column that is skipped is
announced with a :class:`DataFileNote` warning (the command line prints it on stderr).
Writing is atomic: the array goes to a temporary file in the target folder, renamed over the
target only once complete, so a failed write leaves any previous file as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "DataFileNote", "load_array", "save_array"]

FORMATS = (".npy", ".npz", ".mat", ".csv")
#: Keys of a ``scipy.sparse.save_npz`` file (one of the index sets below with them).
_SPARSE_KEYS = {"format", "shape", "data"}


class DataFileError(ValueError):
    """A data file is missing, unreadable, or does not hold one numeric array."""


class DataFileNote(UserWarning):
    """Something a reader guessed about a file and did (a header or index column skipped)."""


def _split_key(spec: str) -> tuple[Path, str | None]:
    # "data.npz:A" selects array A; a bare path must then hold exactly one array.
    path, sep, key = str(spec).rpartition(":")
    if sep and Path(path).suffix.lower() in (".npz", ".mat") and "/" not in key:
        return Path(path), key
    return Path(spec), None


def _choose(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise DataFileError(f"{path}: no array named {key!r} (has: {', '.join(names)})")
        return key
    if len(names) != 1:
        shown = ", ".join(names) or "none"
        raise DataFileError(f"{path}: holds {len(names)} arrays ({shown}); "
                            f"choose one with {path}:NAME")
    return names[0]


def load_array(spec: str | Path):
    """Load one numeric array from ``spec`` = ``path`` or ``path:name`` (.npz and .mat).

    A ``.npz`` written by :func:`scipy.sparse.save_npz` gives that sparse matrix (CSR/CSC/COO
    as saved); from any other ``.npz`` only the chosen array is read. A ``.csv`` may use
    ``,``, ``;`` or tabs; a first row that is not numeric is taken as a header and a first
    column with an empty header (pandas' ``to_csv`` index) is dropped, each with a
    :class:`DataFileNote` warning.

    Raises
    ------
    DataFileError
        With a one-line message, for a missing file, an unknown format, a file that does not
        parse, or an ambiguous choice of array.
    """
    path, key = _split_key(str(spec))
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataFileError(f"{path}: unsupported format {suffix or '(none)'!r}; "
                            f"use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        arr = _READERS[suffix](path, key)
    except DataFileError:
        raise
    except MemoryError:
        raise DataFileError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # every parser has its own exceptions; report them in one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{path}: cannot read as {suffix}: {msg[:300]}") from exc
    return _check_numeric(arr, path)


def _check_numeric(arr, path: Path):
    import scipy.sparse as sp

    if not sp.issparse(arr):
        arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def _read_npy(path: Path, key: str | None) -> np.ndarray:
    if key is not None:
        raise DataFileError(f"{path}: a .npy file holds one array; drop ':{key}'")
    return np.load(path, allow_pickle=False)


def _read_npz(path: Path, key: str | None):
    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        if key is None and _SPARSE_KEYS <= set(names):
            import scipy.sparse as sp

            return sp.load_npz(path)
        return data[_choose(names, key, path)]  # NpzFile decompresses only this member


def _read_mat(path: Path, key: str | None) -> np.ndarray:
    from scipy.io import loadmat, whosmat

    names = [name for name, _, _ in whosmat(path) if not name.startswith("__")]
    name = _choose(names, key, path)
    arr = loadmat(path, variable_names=[name])[name]
    if arr.ndim == 2 and 1 in arr.shape:  # MATLAB stores vectors as matrices
        arr = arr.ravel()
    return arr


def _numeric(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, key: str | None) -> np.ndarray:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        lines = [line.strip() for line, _ in zip(fh, range(2), strict=False)]
    if not lines or not lines[0]:
        raise DataFileError(f"{path}: empty file")
    first = lines[0]
    # A tab or a semicolon is never part of a number; a comma alone is the separator.
    delimiter = "\t" if "\t" in first else (";" if ";" in first else ",")
    header = [f.strip().strip('"') for f in first.split(delimiter)]
    skip, columns = 0, None
    if not all(_numeric(f) for f in header):
        skip = 1
        shown = delimiter.join(header)[:80]
        warnings.warn(f"{path}: first row is not numeric, read as a header and skipped: "
                      f"{shown!r}", DataFileNote, stacklevel=3)
        if len(header) > 1 and header[0] in ("", "Unnamed: 0"):
            columns = range(1, len(header))
            warnings.warn(f"{path}: first column has no name (a pandas index): dropped",
                          DataFileNote, stacklevel=3)
    arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, usecols=columns,
                     encoding="utf-8-sig", quotechar='"')
    return arr.ravel() if arr.shape[1] == 1 else arr


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".mat": _read_mat, ".csv": _read_csv}


def _write(fh, suffix: str, x: np.ndarray) -> None:
    if suffix == ".npy":
        np.save(fh, x)  # a file object: NumPy adds no ".npy" to the name
    elif suffix == ".npz":
        np.savez(fh, x=x)
    elif suffix == ".mat":
        from scipy.io import savemat

        savemat(fh, {"x": x})
    else:
        np.savetxt(fh, x if x.ndim > 0 else x[None], delimiter=",", fmt="%.17g")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_array(path: str | Path, x, *, overwrite: bool = True) -> Path:
    """Write ``x`` to ``path`` in the format its suffix names (.npz and .mat store it as ``x``).

    The file is written exactly at ``path`` (whatever the case of its suffix), atomically: a
    failed write leaves an earlier file at ``path`` untouched. A sparse ``x`` is densified.

    Parameters
    ----------
    path : str or Path
    x : array_like
    overwrite : bool, default=True
        If False, an existing ``path`` raises :class:`DataFileError`.

    Returns
    -------
    Path
        The path written.
    """
    import scipy.sparse as sp

    path = Path(path)
    suffix = path.suffix.lower()
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if suffix not in FORMATS:
        raise DataFileError(f"{path}: unsupported output format {suffix or '(none)'!r}; "
                            f"use one of {', '.join(FORMATS)}")
    if not overwrite and path.exists():
        raise DataFileError(f"{path}: exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give the usual mode
        with os.fdopen(fd, "wb" if suffix != ".csv" else "w") as fh:
            _write(fh, suffix, x)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
