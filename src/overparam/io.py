"""Read and write arrays in the formats users keep measurements in: .npy, .npz, .mat, .csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "load_array", "save_array"]

FORMATS = (".npy", ".npz", ".mat", ".csv")


class DataFileError(ValueError):
    """A data file is missing, unreadable, or does not hold one numeric array."""


def _split_key(spec: str) -> tuple[Path, str | None]:
    # "data.npz:A" selects array A; a bare path must then hold exactly one array.
    path, sep, key = str(spec).rpartition(":")
    if sep and Path(path).suffix.lower() in (".npz", ".mat") and "/" not in key:
        return Path(path), key
    return Path(spec), None


def _pick(arrays: dict, key: str | None, path: Path) -> np.ndarray:
    if key is not None:
        if key not in arrays:
            raise DataFileError(f"{path}: no array named {key!r} (has: {', '.join(arrays)})")
        return arrays[key]
    if len(arrays) != 1:
        names = ", ".join(arrays) or "none"
        raise DataFileError(f"{path}: holds {len(arrays)} arrays ({names}); "
                            f"choose one with {path}:NAME")
    return next(iter(arrays.values()))


def load_array(spec: str | Path) -> np.ndarray:
    """Load one numeric array from ``spec`` = ``path`` or ``path:name`` (.npz and .mat).

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
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arr = _pick({k: data[k] for k in data.files}, key, path)
        elif suffix == ".mat":
            from scipy.io import loadmat

            data = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
            arr = _pick(data, key, path)
            if arr.ndim == 2 and 1 in arr.shape:  # MATLAB stores vectors as matrices
                arr = arr.ravel()
        else:
            arr = _load_csv(path)
    except DataFileError:
        raise
    except Exception as exc:  # every parser has its own exceptions; report them in one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{path}: cannot read as {suffix}: {msg}") from exc
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def _load_csv(path: Path) -> np.ndarray:
    try:
        arr = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError:  # a header row
        arr = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)
    return arr.ravel() if arr.shape[1] == 1 else arr


def save_array(path: str | Path, x: np.ndarray) -> Path:
    """Write ``x`` to ``path`` in the format its suffix names (.npz and .mat store it as ``x``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    x = np.asarray(x)
    if suffix not in FORMATS:
        raise DataFileError(f"{path}: unsupported output format {suffix or '(none)'!r}; "
                            f"use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".npz":
        np.savez(path, x=x)
    elif suffix == ".mat":
        from scipy.io import savemat

        savemat(path, {"x": x})
    else:
        np.savetxt(path, x if x.ndim > 0 else x[None], delimiter=",", fmt="%.17g")
    return path
