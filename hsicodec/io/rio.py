"""rasterio/GDAL plumbing shared by the GDAL formats (GeoTIFF, ENVI, ...).

Opening a dataset (ENVI headers resolved by the caller, HDF/NetCDF subdatasets picked
here), its pixel dtype, band reads and writes in row chunks of :data:`_CHUNK_BYTES`,
the creation profile (CRS, transform, nodata) and the GDAL environment for writing.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hsicodec.errors import RasterError
from hsicodec.io.checks import PathLike, _check_dtype, _is_real
from hsicodec.io.geo import GeoInfo

_CHUNK_BYTES = 64 << 20  # pixel data moved per rasterio read/write call


def _rio_open(path: Path, var: str | None):
    """Open ``path`` with rasterio, resolving ENVI headers and HDF/NetCDF subdatasets."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(path)
        if ds.count == 0 and ds.subdatasets:
            subs = list(ds.subdatasets)
            ds.close()
            if var is None:
                names = ", ".join(s.rsplit(":", 1)[-1].lstrip("/") for s in subs[:20])
                raise RasterError(f"{path}: holds several datasets ({names}); pick one with --var NAME")
            want = var.strip("/")
            match = [s for s in subs if s == var or s.endswith(":" + want) or s.endswith("/" + want)]
            if not match:
                names = ", ".join(s.rsplit(":", 1)[-1].lstrip("/") for s in subs[:20])
                raise RasterError(f"{path}: no dataset named {var!r} (have: {names})")
            ds = rasterio.open(match[0])
    if ds.count == 0:
        ds.close()
        raise RasterError(f"{path}: the raster has no bands")
    return ds


def _rio_dtype(ds, path: PathLike) -> np.dtype:
    dtypes = set(ds.dtypes)
    if len(dtypes) != 1:
        raise RasterError(f"{os.fspath(path)}: bands have different data types ({', '.join(sorted(dtypes))})")
    name = ds.dtypes[0]
    if "complex" in str(name):
        raise RasterError(f"{os.fspath(path)}: complex data ({name}) is not supported")
    dtype = np.dtype(name)
    _check_dtype(dtype, path)
    return dtype


def _read_bands(ds, dtype: np.dtype) -> np.ndarray:
    """All of ``ds`` as a ``(rows, cols, bands)`` array of ``dtype``, read in row chunks of :data:`_CHUNK_BYTES`."""
    from rasterio.windows import Window

    rows, cols, n = ds.height, ds.width, ds.count
    out = np.empty((rows, cols, n), dtype=dtype)
    step = max(1, _CHUNK_BYTES // max(1, cols * n * dtype.itemsize))
    for r0 in range(0, rows, step):
        h = min(step, rows - r0)
        block = ds.read(window=Window(0, r0, cols, h))
        out[r0 : r0 + h] = block.transpose(1, 2, 0)
    return out


def _write_bands(ds, cube: np.ndarray, row_align: int = 1) -> None:
    from rasterio.windows import Window

    rows, cols, n = cube.shape
    step = max(1, _CHUNK_BYTES // max(1, cols * n * cube.dtype.itemsize))
    if row_align > 1:
        step = max(row_align, step // row_align * row_align)
    for r0 in range(0, rows, step):
        h = min(step, rows - r0)
        ds.write(np.ascontiguousarray(cube[r0 : r0 + h].transpose(2, 0, 1)), window=Window(0, r0, cols, h))


@contextlib.contextmanager
def _gdal_write_env() -> Iterator[None]:
    import rasterio

    with rasterio.Env(GDAL_PAM_ENABLED="NO"), warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        yield


def _check_geo_for(geo: GeoInfo, n: int, path: Path) -> None:
    for key in ("band_names", "wavelengths", "fwhm"):
        v = getattr(geo, key)
        if v is not None and len(v) != n:
            raise RasterError(f"cannot write {path}: {key} has {len(v)} entries for {n} bands")
    if geo.transform is not None and len(geo.transform) != 6:
        raise RasterError(f"cannot write {path}: transform needs 6 numbers, got {len(geo.transform)}")


def _profile(shape: Sequence[int], dtype: np.dtype, geo: GeoInfo, driver: str) -> dict:
    """rasterio creation profile of a ``shape`` ``(rows, cols, bands)`` raster of ``dtype``."""
    from affine import Affine
    from rasterio.crs import CRS

    dtype = np.dtype(dtype)
    rows, cols, n = shape
    prof: dict[str, Any] = dict(driver=driver, width=cols, height=rows, count=n, dtype=dtype.name)
    if geo.crs_wkt:
        prof["crs"] = CRS.from_user_input(geo.crs_wkt)
    if geo.transform is not None:
        prof["transform"] = Affine(*(float(v) for v in geo.transform))
    if geo.nodata is not None:
        nd = geo.nodata
        if dtype.kind in "iu":
            ok = (
                _is_real(nd)
                and math.isfinite(float(nd))
                and float(nd).is_integer()
                and np.iinfo(dtype).min <= int(nd) <= np.iinfo(dtype).max
            )
            if not ok:
                raise RasterError(f"nodata {nd!r} does not fit the {dtype} data type")
        elif not _is_real(nd) or (math.isfinite(float(nd)) and abs(float(nd)) > float(np.finfo(dtype).max)):
            raise RasterError(f"nodata {nd!r} does not fit the {dtype} data type")
        prof["nodata"] = nd
    return prof


def _fmt(x: float) -> str:
    return repr(float(x))
