"""NumPy ``.npy`` files (never pickled): reading a cube, its shape and dtype from the header, writing one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hsicodec.errors import RasterError
from hsicodec.io.atomic import atomic_path, check_writable
from hsicodec.io.checks import _check_dtype, _finish, _shape_after, _wrap


def _read_npy(p: Path, band_first: bool) -> np.ndarray:
    with _wrap("read", p):
        arr = np.load(p, allow_pickle=False)
        if not isinstance(arr, np.ndarray):
            raise RasterError(f"{p}: not a single .npy array")
    return _finish(arr, p, band_first)


def _info_npy(p: Path, band_first: bool) -> tuple[tuple[int, int, int], np.dtype]:
    with _wrap("read", p):
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # type: ignore[attr-defined]
    dtype = np.dtype(dtype)
    _check_dtype(dtype, p)
    return _shape_after(shape, p, band_first), dtype.newbyteorder("=")


def _write_npy(p: Path, arr: np.ndarray, force: bool) -> None:
    """Write the checked, native-order cube ``arr`` to ``p`` atomically, little-endian."""
    check_writable(p, force)
    with _wrap("write", p), atomic_path(p, force) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr.astype(arr.dtype.newbyteorder("<"), copy=False), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
