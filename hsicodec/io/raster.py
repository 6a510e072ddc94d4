"""Raster I/O: read a hyperspectral cube (plus its geo metadata) and write one back.

A *cube* is a numpy array shaped ``(rows, cols, bands)`` in the source dtype,
returned C-contiguous.  Supported inputs:

* anything rasterio/GDAL opens (GeoTIFF, ENVI through its data file or its
  ``.hdr``, ...);
* ``.npy`` (2-D → one band, or 3-D; never pickled);
* MATLAB ``.mat``: v4/v5/v7 through :func:`scipy.io.loadmat`, v7.3 (HDF5)
  through h5py.

Outputs: GeoTIFF, ENVI (data file + ``.hdr``) and ``.npy``.  Every user
error becomes a one-line :class:`~hsicodec.errors.RasterError`.

This module is the public entry point (:func:`read_cube`, :func:`read_info`,
:func:`write_cube`, and re-exports); the work is done in:

* :mod:`hsicodec.io.geo`: :class:`GeoInfo` and its `.hsim` header form;
* :mod:`hsicodec.io.formats`: format detection (:func:`raster_format`, :func:`write_format`), writable dtypes;
* :mod:`hsicodec.io.rio`: rasterio/GDAL plumbing shared by the GDAL formats;
* :mod:`hsicodec.io.rio_read`: reading GDAL rasters and their metadata;
* :mod:`hsicodec.io.geotiff`, :mod:`hsicodec.io.envi`: writing GeoTIFF and ENVI (the
  spectral metadata conventions of each are described there);
* :mod:`hsicodec.io.npy`, :mod:`hsicodec.io.matlab`: ``.npy`` and ``.mat`` files;
* :mod:`hsicodec.io.streaming`: windowed reading/writing of scenes larger than memory
  (:func:`open_raster_writer` adds GDAL creation options to its writer);
* :mod:`hsicodec.io.cast`: :func:`cast_to_dtype`;
* :mod:`hsicodec.io.checks`: shared error wrapping and dtype/shape checks;
* :mod:`hsicodec.io.atomic`: atomic output files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from hsicodec.errors import OptionError, RasterError
from hsicodec.io.atomic import atomic_path, check_writable
from hsicodec.io.cast import cast_to_dtype
from hsicodec.io.checks import PathLike, _check_dtype, _native, _require_file, _wrap
from hsicodec.io.envi import _envi_paths_for_write, _write_envi
from hsicodec.io.formats import SUPPORTED_DTYPES, WRITE_FORMATS, raster_format, write_format
from hsicodec.io.geo import GeoInfo
from hsicodec.io.geotiff import _write_gtiff, parse_creation_options
from hsicodec.io.matlab import _info_mat, _read_mat
from hsicodec.io.npy import _info_npy, _read_npy, _write_npy
from hsicodec.io.rio import _check_geo_for
from hsicodec.io.rio_read import _info_rio, _read_rio
from hsicodec.io.streaming import (
    STREAM_CACHE_MB,
    CubeReader,
    CubeWriter,
    open_cube_reader,
    open_cube_writer,
)

__all__ = [
    "GeoInfo",
    "read_cube",
    "read_info",
    "write_cube",
    "raster_format",
    "write_format",
    "cast_to_dtype",
    "SUPPORTED_DTYPES",
    "WRITE_FORMATS",
    "CubeReader",
    "CubeWriter",
    "open_cube_reader",
    "open_cube_writer",
    "open_raster_writer",
    "parse_creation_options",
    "STREAM_CACHE_MB",
]


def read_cube(path: PathLike, var: str | None = None, band_first: bool = False) -> tuple[np.ndarray, GeoInfo]:
    """Read a raster as a C-contiguous ``(rows, cols, bands)`` cube in its own dtype, plus its GeoInfo.

    ``var`` picks the variable of a ``.mat`` file (or the subdataset of an HDF/NetCDF
    file); ``band_first`` says a ``.npy``/``.mat`` array is ``(bands, rows, cols)``.
    ``.npy`` and ``.mat`` inputs carry no geo metadata (empty GeoInfo).  Any failure
    raises :class:`~hsicodec.errors.RasterError`.
    """
    p = _require_file(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        return _read_npy(p, band_first), GeoInfo()
    if ext == ".mat":
        return _read_mat(p, var, band_first), GeoInfo()
    return _read_rio(p, var)


def read_info(
    path: PathLike, var: str | None = None, band_first: bool = False
) -> tuple[tuple[int, int, int], np.dtype, GeoInfo]:
    """``((rows, cols, bands), dtype, GeoInfo)`` of a raster without reading its pixels.

    ``.npy`` reads only the array header, ``.mat`` only the variable list (v5) or
    dataset headers (v7.3), rasterio formats only the dataset profile and metadata.
    """
    p = _require_file(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        shape, dtype = _info_npy(p, band_first)
        return shape, dtype, GeoInfo()
    if ext == ".mat":
        shape, dtype = _info_mat(p, var, band_first)
        return shape, dtype, GeoInfo()
    return _info_rio(p, var)


def write_cube(
    path: PathLike,
    cube: np.ndarray,
    geo: GeoInfo | None = None,
    *,
    format: str | None = None,
    force: bool = False,
    compress: str | None = None,
    creation_options: Mapping[str, str] | Sequence[str] | None = None,
) -> None:
    """Write a ``(rows, cols, bands)`` cube (2-D → one band) atomically, in the cube's dtype.

    ``format`` (``gtiff``, ``envi``, ``npy``) defaults to the one the extension implies.
    GeoTIFF and ENVI keep the GeoInfo (CRS, transform, nodata, band names, wavelengths,
    FWHM, units); ``.npy`` drops it.  For ENVI, ``path`` may name the data file (its
    header is the same name with ``.hdr``; a ``.bil``/``.bip`` extension selects that
    interleave) or the ``.hdr`` (the data file is then ``<name>.img``); both files are
    written to temporary names and renamed, and an existing one is refused unless
    ``force``.  GeoTIFF is tiled 256×256 (band-interleaved) where the image is at least
    256 pixels each way, DEFLATE-compressed with predictor 2 (integers) or 3 (floats),
    and BigTIFF when needed; ``compress`` names another GDAL codec (``lzw``, ``zstd``,
    ``none``...) and ``creation_options`` (``{"COMPRESS": "ZSTD"}`` or ``["TILED=NO"]``)
    are GDAL GTiff creation options that override any of it (GeoTIFF only: OptionError
    for another format).  Existing output without ``force`` raises
    :class:`~hsicodec.errors.OutputExistsError`; other failures raise RasterError.
    """
    p = Path(path)
    fmt = write_format(p, format)
    options = _creation_options_for(fmt, p, creation_options)
    arr = np.asarray(cube)
    _check_dtype(arr.dtype, p)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise RasterError(f"cannot write {p}: expected a (rows, cols, bands) array, got shape {arr.shape}")
    if 0 in arr.shape:
        raise RasterError(f"cannot write {p}: empty array (shape {arr.shape})")
    arr = _native(arr)
    geo = geo if geo is not None else GeoInfo()

    if fmt == "npy":
        _write_npy(p, arr, force)
        return

    if arr.dtype not in SUPPORTED_DTYPES:
        raise RasterError(
            f"cannot write {p}: {fmt} does not support {arr.dtype} pixels "
            f"(supported: {', '.join(d.name for d in SUPPORTED_DTYPES)})"
        )
    _check_geo_for(geo, arr.shape[2], p)
    if fmt == "gtiff":
        check_writable(p, force)
        with _wrap("write", p), atomic_path(p, force) as tmp:
            _write_gtiff(tmp, arr, geo, compress, options)
        return

    data, hdr = _envi_paths_for_write(p, force)
    with _wrap("write", data):
        _write_envi(data, hdr, arr, geo, force)


def _creation_options_for(
    fmt: str, path: Path, options: Mapping[str, str] | Sequence[str] | None
) -> dict[str, str] | None:
    """Checked GDAL creation options for an output of format ``fmt`` (OptionError for a non-GeoTIFF one)."""
    if not options:
        return None
    if fmt != "gtiff":
        raise OptionError(f"--co (GDAL creation options) applies to GeoTIFF output only, not {fmt} ({path})")
    return parse_creation_options(options)


@contextlib.contextmanager
def open_raster_writer(
    path: PathLike,
    shape: Sequence[int],
    dtype,
    geo: GeoInfo | None = None,
    *,
    format: str | None = None,
    force: bool = False,
    creation_options: Mapping[str, str] | Sequence[str] | None = None,
) -> Iterator[CubeWriter]:
    """:func:`open_cube_writer` with GDAL GeoTIFF creation options: a raster written window by window,
    atomically (the file appears when the ``with`` block ends without an exception).

    GeoTIFF output has :func:`write_cube`'s layout (256×256 tiles, DEFLATE with a predictor,
    BigTIFF when needed), with ``creation_options`` overriding it, and its metadata (CRS,
    transform, nodata, band names, wavelengths, FWHM, units); the GDAL block cache is held to
    :data:`STREAM_CACHE_MB`. ENVI and ``.npy`` output are :func:`open_cube_writer`'s;
    ``creation_options`` with them is an OptionError.
    """
    p = Path(path)
    fmt = write_format(p, format)
    options = _creation_options_for(fmt, p, creation_options)
    with open_cube_writer(p, shape, dtype, geo, format=fmt, force=force, options=options or None) as writer:
        yield writer
