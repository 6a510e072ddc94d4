"""GeoTIFF writing: file layout (tiling, BigTIFF, compression) and spectral tags.

Tags written (and read back by :mod:`hsicodec.io.rio_read`): per-band ``wavelength`` and
``fwhm``; dataset ``wavelength_units`` and ``units`` (the band unit type is set too);
band descriptions hold the band names; GDAL's standard ``IMAGERY`` domain
``CENTRAL_WAVELENGTH_UM``/``FWHM_UM`` is added when the wavelength unit is nanometres
or micrometres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsicodec.io.geo import GeoInfo
from hsicodec.io.rio import _fmt, _gdal_write_env, _profile, _write_bands

_TILE = 256


_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}


_UM_UNITS = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"}


def _um_factor(units: str | None) -> float | None:
    u = (units or "").strip().lower()
    if u in _NM_UNITS:
        return 1e-3
    if u in _UM_UNITS:
        return 1.0
    return None


def _gtiff_tags(ds, geo: GeoInfo, n: int) -> None:
    """Band descriptions, per-band wavelength/FWHM tags (and GDAL's IMAGERY domain) and units."""
    if geo.band_names is not None:
        ds.descriptions = tuple(str(s) for s in geo.band_names)
    for i in range(n):
        tags = {}
        if geo.wavelengths is not None:
            tags["wavelength"] = _fmt(geo.wavelengths[i])
        if geo.fwhm is not None:
            tags["fwhm"] = _fmt(geo.fwhm[i])
        if tags:
            ds.update_tags(i + 1, **tags)
    factor = _um_factor(geo.wavelength_units)
    if factor is not None and geo.wavelengths is not None:
        for i in range(n):
            img = {"CENTRAL_WAVELENGTH_UM": _fmt(geo.wavelengths[i] * factor)}
            if geo.fwhm is not None:
                img["FWHM_UM"] = _fmt(geo.fwhm[i] * factor)
            ds.update_tags(i + 1, ns="IMAGERY", **img)
    dtags = {}
    if geo.wavelength_units is not None:
        dtags["wavelength_units"] = str(geo.wavelength_units)
    if geo.units is not None:
        dtags["units"] = str(geo.units)
        ds.units = tuple(str(geo.units) for _ in range(n))
    if dtags:
        ds.update_tags(**dtags)


def _gtiff_profile(shape: tuple, dtype: np.dtype, geo: GeoInfo, compress: str | None) -> tuple[dict, bool]:
    """(rasterio profile, tiled?) of a GeoTIFF for a cube of ``shape`` and ``dtype``."""
    rows, cols, n = shape
    prof = _profile(shape, dtype, geo, "GTiff")
    prof.update(BIGTIFF="IF_SAFER", photometric="MINISBLACK")
    tiled = rows >= 2 * _TILE and cols >= 2 * _TILE
    if tiled:
        prof.update(tiled=True, blockxsize=_TILE, blockysize=_TILE, interleave="band")
    if compress and compress.lower() != "none":
        prof["compress"] = compress
    return prof, tiled


def _write_gtiff(tmp: Path, cube: np.ndarray, geo: GeoInfo, compress: str | None) -> None:
    import rasterio

    prof, tiled = _gtiff_profile(cube.shape, cube.dtype, geo, compress)
    with _gdal_write_env():
        with rasterio.open(tmp, "w", **prof) as ds:
            _write_bands(ds, cube, _TILE if tiled else 1)
            _gtiff_tags(ds, geo, cube.shape[2])
