"""Checks and error handling shared by the raster I/O modules.

Every user error of :mod:`hsicodec.io` is a one-line :class:`~hsicodec.errors.RasterError`:
:func:`_wrap` turns any other exception (rasterio, GDAL, h5py, scipy, numpy, OS) into one
naming the file; the other helpers check a loaded array's dtype and shape.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from hsicodec.errors import HsicodecError, RasterError

PathLike = Union[str, "os.PathLike[str]"]


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg or type(exc).__name__


@contextlib.contextmanager
def _wrap(action: str, path: PathLike) -> Iterator[None]:
    """Turn any non-hsicodec exception into a one-line RasterError naming ``path``."""
    try:
        yield
    except HsicodecError:
        raise
    except Exception as exc:  # rasterio, GDAL, h5py, scipy, numpy, OS errors
        raise RasterError(f"cannot {action} {os.fspath(path)}: {_one_line(exc)}") from exc


def _native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order (same kind and item size)."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _check_dtype(dtype: np.dtype, path: PathLike, what: str = "") -> None:
    dtype = np.dtype(dtype)
    where = f"{os.fspath(path)}{what}"
    if dtype.kind == "c":
        raise RasterError(f"{where}: complex data ({dtype}) is not supported")
    if dtype.kind == "b":
        raise RasterError(f"{where}: boolean data is not supported; convert it to uint8")
    if dtype.kind not in "iuf":
        raise RasterError(f"{where}: unsupported data type {dtype} (need integer or float pixels)")


def _finish(arr: np.ndarray, path: PathLike, band_first: bool, what: str = "") -> np.ndarray:
    """Check dtype/ndim/size of a loaded array and return it as a C-contiguous (rows, cols, bands) cube."""
    where = f"{os.fspath(path)}{what}"
    _check_dtype(arr.dtype, path, what)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    elif arr.ndim == 3:
        if band_first:
            arr = arr.transpose(1, 2, 0)
    else:
        raise RasterError(f"{where}: expected a 2-D or 3-D array, got {arr.ndim}-D with shape {arr.shape}")
    if 0 in arr.shape:
        raise RasterError(f"{where}: empty array (shape {arr.shape})")
    return np.ascontiguousarray(_native(arr))


def _shape_after(shape: Sequence[int], path: PathLike, band_first: bool, what: str = "") -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    where = f"{os.fspath(path)}{what}"
    if len(shape) == 2:
        out = (shape[0], shape[1], 1)
    elif len(shape) == 3:
        out = (shape[1], shape[2], shape[0]) if band_first else shape
    else:
        raise RasterError(f"{where}: expected a 2-D or 3-D array, got {len(shape)}-D with shape {shape}")
    if 0 in out:
        raise RasterError(f"{where}: empty array (shape {shape})")
    return out  # type: ignore[return-value]


def _require_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise RasterError(f"{p}: no such file")
    if p.is_dir():
        raise RasterError(f"{p}: is a directory, not a raster file")
    return p
