"""MATLAB ``.mat`` files: v4/v5/v7 through :func:`scipy.io.loadmat`, v7.3 (HDF5) through h5py.

A file may hold several variables: :func:`_pick_mat_var` picks the one named by ``var``
or the only 3-D numeric array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsicodec.errors import RasterError
from hsicodec.io.checks import _check_dtype, _finish, _shape_after, _wrap

_MAT_CLASS_DTYPE = {
    "double": "float64",
    "single": "float32",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}


def _is_hdf5(p: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(p))
    except Exception:
        return False


def _mat_entries(p: Path) -> tuple[bool, list[tuple[str, tuple[int, ...], np.dtype | None]]]:
    """(is_v73, [(name, MATLAB shape, dtype or None when not a real numeric array)])."""
    entries: list[tuple[str, tuple[int, ...], np.dtype | None]] = []
    if _is_hdf5(p):
        import h5py

        with h5py.File(p, "r") as f:
            for name, obj in f.items():
                if name.startswith("#") or not isinstance(obj, h5py.Dataset):
                    continue
                cls = obj.attrs.get("MATLAB_class")
                if isinstance(cls, bytes):
                    cls = cls.decode("ascii", "replace")
                dt = obj.dtype
                numeric = dt.kind in "iuf" and cls not in ("char", "logical") and not obj.attrs.get("MATLAB_empty", 0)
                entries.append((name, tuple(int(s) for s in obj.shape[::-1]), np.dtype(dt) if numeric else None))
        return True, entries
    import scipy.io

    for name, shape, cls in scipy.io.whosmat(p):
        dt = _MAT_CLASS_DTYPE.get(cls)
        entries.append((name, tuple(int(s) for s in shape), np.dtype(dt) if dt else None))
    return False, entries


def _pick_mat_var(p: Path, entries, var: str | None) -> tuple[str, tuple[int, ...], np.dtype | None]:
    def desc(e) -> str:
        return f"{e[0]} ({'x'.join(map(str, e[1])) or 'scalar'}{'' if e[2] is not None else ', not numeric'})"

    if var is not None:
        for e in entries:
            if e[0] == var:
                if len(e[1]) != 3:
                    raise RasterError(
                        f"{p}: variable {var!r} is {len(e[1])}-D ({'x'.join(map(str, e[1]))}); a 3-D "
                        "rows x cols x bands array is needed (2-D bands x pixels arrays are not reshaped "
                        "automatically: reshape it and save it as .npy)"
                    )
                return e
        have = ", ".join(desc(e) for e in entries) or "no variables"
        raise RasterError(f"{p}: no variable named {var!r} (have: {have})")
    cands = [e for e in entries if e[2] is not None and len(e[1]) == 3]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        have = ", ".join(desc(e) for e in entries) or "no variables"
        raise RasterError(
            f"{p}: no 3-D numeric array (have: {have}); a rows x cols x bands array is needed "
            "(2-D bands x pixels arrays are not reshaped automatically); pick a 3-D variable with --var NAME"
        )
    raise RasterError(f"{p}: several 3-D arrays ({', '.join(desc(e) for e in cands)}); pick one with --var NAME")


def _read_mat(p: Path, var: str | None, band_first: bool) -> np.ndarray:
    with _wrap("read", p):
        v73, entries = _mat_entries(p)
        name = _pick_mat_var(p, entries, var)[0]
        what = f" (variable {name!r})"
        if v73:
            import h5py

            with h5py.File(p, "r") as f:
                ds = f[name]
                _check_dtype(ds.dtype, p, what)
                cls = ds.attrs.get("MATLAB_class")
                if isinstance(cls, bytes):
                    cls = cls.decode("ascii", "replace")
                if cls == "logical":
                    raise RasterError(f"{p}{what}: boolean data is not supported; convert it to uint8")
                arr = ds[()]
            arr = np.asarray(arr).T  # h5py sees MATLAB's column-major array transposed
        else:
            import scipy.io

            arr = scipy.io.loadmat(p, variable_names=[name], squeeze_me=False, mat_dtype=False)[name]
            if not isinstance(arr, np.ndarray):
                raise RasterError(f"{p}{what}: not a numeric array")
    if arr.ndim != 3:
        raise RasterError(f"{p}{what}: expected a 3-D array, got shape {arr.shape}; pick another with --var NAME")
    return _finish(arr, p, band_first, what)


def _info_mat(p: Path, var: str | None, band_first: bool) -> tuple[tuple[int, int, int], np.dtype]:
    with _wrap("read", p):
        _, entries = _mat_entries(p)
        name, shape, dtype = _pick_mat_var(p, entries, var)
    what = f" (variable {name!r})"
    if dtype is None:
        raise RasterError(f"{p}{what}: not a real numeric array")
    return _shape_after(shape, p, band_first, what), np.dtype(dtype)
