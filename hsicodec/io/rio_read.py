"""Reading anything rasterio/GDAL opens (GeoTIFF, ENVI through its data file or ``.hdr``,
HDF/NetCDF subdatasets, ...): the pixels, or the shape and dtype alone, and the GeoInfo
built from the GDAL metadata (ENVI domain, per-band tags, ``IMAGERY`` domain).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hsicodec.errors import RasterError
from hsicodec.io.checks import _wrap
from hsicodec.io.envi import _envi_data_for_header, _parse_envi_list
from hsicodec.io.geo import GeoInfo
from hsicodec.io.rio import _read_bands, _rio_dtype, _rio_open


def _floats(items: Sequence[str] | None, n: int) -> list[float] | None:
    if items is None or len(items) != n:
        return None
    try:
        return [float(s) for s in items]
    except (TypeError, ValueError):
        return None


def _geo_from_dataset(ds) -> GeoInfo:
    """GeoInfo of an open rasterio dataset."""
    from affine import Affine

    n = ds.count
    geo = GeoInfo()
    if ds.crs is not None:
        with contextlib.suppress(Exception):
            geo.crs_wkt = ds.crs.to_wkt()
    t = ds.transform
    if t is not None and (ds.crs is not None or tuple(t) != tuple(Affine.identity())):
        geo.transform = tuple(float(v) for v in tuple(t)[:6])  # type: ignore[assignment]
    nd = ds.nodata
    if nd is not None:
        if np.dtype(ds.dtypes[0]).kind in "iu" and math.isfinite(nd) and float(nd).is_integer():
            geo.nodata = int(nd)
        else:
            geo.nodata = float(nd)

    tags = ds.tags()
    envi = ds.tags(ns="ENVI") if "ENVI" in (ds.tag_namespaces() or []) else {}
    is_envi = ds.driver == "ENVI"

    # band names
    if is_envi:
        names = _parse_envi_list(envi.get("band_names"))
        if names is not None and (len(names) != n or names == [f"Band {i + 1}" for i in range(n)]):
            names = None
        geo.band_names = names
    else:
        descs = list(ds.descriptions)
        if any(descs):
            geo.band_names = [d or "" for d in descs]

    # wavelengths / fwhm: ENVI domain, then our per-band tags, then GDAL's IMAGERY domain
    band_tags = [ds.tags(i + 1) for i in range(n)]
    wl = _floats(_parse_envi_list(envi.get("wavelength")), n)
    fw = _floats(_parse_envi_list(envi.get("fwhm")), n)
    wl_units = envi.get("wavelength_units")
    if wl is None:
        wl = _floats(
            [bt.get("wavelength") for bt in band_tags] if all("wavelength" in bt for bt in band_tags) else None, n
        )
    if fw is None:
        fw = _floats([bt.get("fwhm") for bt in band_tags] if all("fwhm" in bt for bt in band_tags) else None, n)
    if wl_units is None:
        wl_units = tags.get("wavelength_units")
    if wl is None:
        imagery = [ds.tags(i + 1, ns="IMAGERY") for i in range(n)]
        wl_um = _floats(
            [t.get("CENTRAL_WAVELENGTH_UM") for t in imagery]
            if all("CENTRAL_WAVELENGTH_UM" in t for t in imagery)
            else None,
            n,
        )
        if wl_um is not None:
            wl, wl_units = wl_um, "Micrometers"
            if fw is None:
                fw = _floats([t.get("FWHM_UM") for t in imagery] if all("FWHM_UM" in t for t in imagery) else None, n)
    geo.wavelengths, geo.fwhm = wl, fw
    if wl_units is not None and (wl is not None or fw is not None or not is_envi):
        geo.wavelength_units = wl_units

    # radiometric units
    units = tags.get("units") or envi.get("data_units")
    if not units:
        bu = [u for u in (ds.units or ()) if u]
        if len(bu) == n and len(set(bu)) == 1:
            units = bu[0]
    geo.units = units or None
    return geo


def _rio_target(p: Path) -> Path:
    return _envi_data_for_header(p) if p.suffix.lower() == ".hdr" else p


def _read_rio(p: Path, var: str | None) -> tuple[np.ndarray, GeoInfo]:
    src = _rio_target(p)
    with _wrap("read", p):
        ds = _rio_open(src, var)
        with ds:
            dtype = _rio_dtype(ds, p)
            rows, cols, n = ds.height, ds.width, ds.count
            if 0 in (rows, cols, n):
                raise RasterError(f"{p}: empty raster ({rows}x{cols}x{n})")
            out = _read_bands(ds, dtype)
            geo = _geo_from_dataset(ds)
    return out, geo


def _info_rio(p: Path, var: str | None) -> tuple[tuple[int, int, int], np.dtype, GeoInfo]:
    src = _rio_target(p)
    with _wrap("read", p):
        ds = _rio_open(src, var)
        with ds:
            dtype = _rio_dtype(ds, p)
            shape = (ds.height, ds.width, ds.count)
            if 0 in shape:
                raise RasterError(f"{p}: empty raster ({shape[0]}x{shape[1]}x{shape[2]})")
            geo = _geo_from_dataset(ds)
    return shape, dtype, geo
