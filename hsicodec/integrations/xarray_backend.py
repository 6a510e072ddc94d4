"""xarray backend: ``xr.open_dataset("scene.hsim", engine="hsim")``, decoded lazily by window.

The dataset holds one variable (``data`` by default) with dims ``(y, x, band)``.
Nothing is decoded at open time (only the header is read); indexing the
variable, or each dask chunk with ``chunks=``, decodes just that window and band
range through :func:`hsicodec.decompress` (``window=``, ``bands=``).

Coordinates: ``x``/``y`` at pixel centres from the affine transform (north-up
or any axis-aligned transform; a rotated one is left to the attributes),
``band`` (0-based band index, as ``decompress(bands=...)`` counts), and
``wavelength``, ``fwhm``, ``band_name`` along ``band`` when the file has them.
Attributes: ``crs_wkt``, ``transform`` (``a, b, c, d, e, f`` as in
:class:`hsicodec.GeoInfo`), ``units``. Masked values (NaN, ±Inf, nodata at
encode time) decode to the nodata value (NaN without one); that value is the
variable's ``_FillValue``, so with ``mask_and_scale=True`` (the default) they
become NaN and ``_FillValue`` moves to ``.encoding``, as in other xarray backends.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from typing import Any, Union

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from hsicodec.codec import api as _codec
from hsicodec.errors import HsimHeaderError, OptionError
from hsicodec.format.container import MAGIC, HsimReader
from hsicodec.io.raster import GeoInfo

__all__ = ["HsimBackendArray", "HsimBackendEntrypoint", "hsim_coords"]

Source = Union[str, "os.PathLike[str]", bytes]
DIMS = ("y", "x", "band")


class HsimBackendArray(BackendArray):
    """Lazy (rows, cols, bands) array over a `.hsim` source; basic indexing decodes one window."""

    def __init__(self, source: Source, shape: tuple[int, int, int], dtype: np.dtype, threads: int = 0) -> None:
        self.source = source
        self.shape = shape
        self.dtype = dtype
        self.threads = threads

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._getitem)

    def _getitem(self, key: tuple) -> np.ndarray:
        """Decode the smallest window and band range covering ``key`` (ints and slices), then index it."""
        spans: list[tuple[int, int]] = []
        post: list[int | slice] = []
        out_shape: list[int] = []
        for k, n in zip(key, self.shape):
            if isinstance(k, (int, np.integer)):
                i = int(k) + n if k < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
                spans.append((i, i + 1))
                post.append(0)
                continue
            start, stop, step = k.indices(n)
            length = len(range(start, stop, step))
            out_shape.append(length)
            last = start + (length - 1) * step
            spans.append((min(start, last), max(start, last) + 1) if length else (0, 0))
            post.append(slice(None, None, step))
        if any(lo == hi for lo, hi in spans):
            return np.empty(tuple(out_shape), self.dtype)
        (r0, r1), (c0, c1), bands = spans
        cube, _ = _codec.decompress(self.source, window=(r0, c0, r1 - r0, c1 - c0), bands=bands, threads=self.threads)
        return cube[tuple(post)]


def hsim_coords(shape: tuple[int, int, int], geo: GeoInfo) -> dict[str, Any]:
    """xarray coordinates of a cube of ``shape``: pixel-centre x/y, band index and per-band metadata."""
    rows, cols, n_bands = shape
    coords: dict[str, Any] = {"band": ("band", np.arange(n_bands))}
    if geo.transform is not None:
        a, b, c, d, e, f = geo.transform
        if b == 0 and d == 0:  # axis-aligned: 1-D coordinates exist
            coords["x"] = ("x", c + a * (np.arange(cols) + 0.5), {"long_name": "x of pixel centre"})
            coords["y"] = ("y", f + e * (np.arange(rows) + 0.5), {"long_name": "y of pixel centre"})
    if geo.wavelengths is not None:
        units = {"units": geo.wavelength_units} if geo.wavelength_units else {}
        coords["wavelength"] = ("band", np.asarray(geo.wavelengths, np.float64), units)
        if geo.fwhm is not None:
            coords["fwhm"] = ("band", np.asarray(geo.fwhm, np.float64), dict(units))
    elif geo.fwhm is not None:
        coords["fwhm"] = ("band", np.asarray(geo.fwhm, np.float64))
    if geo.band_names is not None:
        coords["band_name"] = ("band", np.asarray(geo.band_names, dtype=str))
    return coords


def _fill_value(header: dict, geo: GeoInfo, dtype: np.dtype) -> float | None:
    """The value masked pixels decode to (nodata, else the mask's fill), if the dtype can hold it."""
    fill = geo.nodata
    if fill is None and isinstance(header.get("mask"), dict):
        fill = header["mask"].get("fill")
    if fill is None or isinstance(fill, bool) or not isinstance(fill, (int, float)):
        return None
    if dtype.kind in "iu" and not (
        math.isfinite(fill) and float(fill).is_integer() and np.iinfo(dtype).min <= fill <= np.iinfo(dtype).max
    ):
        return None  # masked values of an integer cube then decode to 0 (see cast_to_dtype)
    return fill


def _source(filename_or_obj: Any) -> Source:
    """A path, or the bytes of a file object / buffer (decoded windows reopen it per call)."""
    if isinstance(filename_or_obj, (str, os.PathLike)):
        return filename_or_obj
    if isinstance(filename_or_obj, (bytes, bytearray, memoryview)):
        return bytes(filename_or_obj)
    if hasattr(filename_or_obj, "read"):
        return filename_or_obj.read()
    raise OptionError(
        f"engine='hsim' opens a path, bytes or a binary file object, not {type(filename_or_obj).__name__}"
    )


def open_hsim_dataset(
    filename_or_obj: Any,
    *,
    name: str = "data",
    mask_and_scale: bool = True,
    drop_variables: str | Iterable[str] | None = None,
    threads: int = 0,
) -> xr.Dataset:
    """The lazy Dataset of a `.hsim` file (see the module docstring)."""
    src = _source(filename_or_obj)
    with HsimReader(src) as reader:
        header = reader.header
    try:
        rows, cols, n_bands = (int(v) for v in header["shape"])  # 3 ints: HsimReader checked the header
        shape = (rows, cols, n_bands)
        dtype = np.dtype(header["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HsimHeaderError(f"header key 'shape'/'dtype': {exc}") from exc
    geo = GeoInfo.from_header(header.get("geo"), n_bands=shape[2])
    attrs: dict[str, Any] = {}
    if geo.crs_wkt is not None:
        attrs["crs_wkt"] = geo.crs_wkt
    if geo.transform is not None:
        attrs["transform"] = [float(v) for v in geo.transform]
    if geo.units is not None:
        attrs["units"] = geo.units
    var_attrs = dict(attrs)
    fill = _fill_value(header, geo, dtype)
    if fill is not None:
        var_attrs["_FillValue"] = dtype.type(fill)
    data = indexing.LazilyIndexedArray(HsimBackendArray(src, shape, dtype, threads))  # type: ignore[arg-type]
    variable = xr.Variable(DIMS, data, var_attrs, encoding={"dtype": dtype})
    ds_attrs = dict(attrs)
    ds_attrs["hsim_model"] = header.get("model")
    if isinstance(header.get("tags"), dict):
        ds_attrs.update({f"tag_{k}": v for k, v in header["tags"].items()})
    ds = xr.Dataset({name: variable}, coords=hsim_coords(shape, geo), attrs=ds_attrs)
    drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables or ())
    ds = ds.drop_vars([v for v in drop if v in ds.variables])
    return xr.decode_cf(
        ds,
        mask_and_scale=mask_and_scale,
        decode_times=False,
        decode_coords=False,
        concat_characters=False,
        decode_timedelta=False,
    )


class HsimBackendEntrypoint(BackendEntrypoint):
    """``engine="hsim"``: lazy, windowed decoding of `.hsim` files (see :mod:`hsicodec.integrations.xarray_backend`)."""

    description = "Open hyperspectral .hsim files (hsicodec) with lazy, windowed decoding"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "mask_and_scale", "name", "threads")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        mask_and_scale: bool = True,
        name: str = "data",
        threads: int = 0,
    ) -> xr.Dataset:
        return open_hsim_dataset(
            filename_or_obj, name=name, mask_and_scale=mask_and_scale, drop_variables=drop_variables, threads=threads
        )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for a ``.hsim`` path, or a file / buffer that starts with the `.hsim` magic bytes."""
        try:
            if isinstance(filename_or_obj, (str, os.PathLike)):
                path = os.fspath(filename_or_obj)
                if str(path).lower().endswith(".hsim"):
                    return True
                if "://" in str(path) or not os.path.isfile(path):
                    return False
                with open(path, "rb") as f:
                    return f.read(len(MAGIC)) == MAGIC
            if isinstance(filename_or_obj, (bytes, bytearray, memoryview)):
                return bytes(filename_or_obj[: len(MAGIC)]) == MAGIC
            if isinstance(filename_or_obj, io.IOBase) or hasattr(filename_or_obj, "seek"):
                pos = filename_or_obj.tell()
                try:
                    return filename_or_obj.read(len(MAGIC)) == MAGIC
                finally:
                    filename_or_obj.seek(pos)
        except (OSError, TypeError, ValueError, AttributeError):
            return False
        return False
