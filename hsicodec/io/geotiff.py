"""GeoTIFF writing: file layout (tiling, BigTIFF, compression, GDAL creation options) and spectral tags.

Layout by default (:func:`_gtiff_profile`): 256x256 tiles, band-interleaved, where the image is at
least 256 pixels each way (else band-interleaved strips of about as many pixels as a tile), DEFLATE
with the predictor that suits the data type
(2, horizontal differencing, for integers; 3, floating point, for floats), BigTIFF when needed.
Callers may override any of it with GDAL GTiff creation options (``--co KEY=VALUE``), checked by
:func:`parse_creation_options`.

Tags written (and read back by :mod:`hsicodec.io.rio_read`): per-band ``wavelength`` and
``fwhm``; dataset ``wavelength_units`` and ``units`` (the band unit type is set too);
band descriptions hold the band names; GDAL's standard ``IMAGERY`` domain
``CENTRAL_WAVELENGTH_UM``/``FWHM_UM`` is added when the wavelength unit is nanometres
or micrometres.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hsicodec.errors import OptionError
from hsicodec.io.geo import GeoInfo
from hsicodec.io.rio import _fmt, _gdal_write_env, _profile, _write_bands

_TILE = 256

#: GDAL GTiff creation options (GDAL 3.x); ``--co`` keys outside this list are refused, since GDAL
#: itself ignores an unknown key without a word.
GTIFF_CREATION_OPTIONS = frozenset(
    """ALPHA BIGTIFF BLOCKXSIZE BLOCKYSIZE COMPRESS COPY_SRC_OVERVIEWS DISCARD_LSB ENDIANNESS GEOTIFF_KEYS_FLAVOR
    GEOTIFF_VERSION INTERLEAVE JPEG_QUALITY JPEGTABLESMODE JXL_ALPHA_DISTANCE JXL_DISTANCE JXL_EFFORT
    JXL_LOSSLESS LZMA_PRESET MAX_Z_ERROR MAX_Z_ERROR_OVERVIEW NBITS NUM_THREADS PHOTOMETRIC PIXELTYPE PREDICTOR
    PROFILE RPB RPCTXT SOURCE_ICC_PROFILE SPARSE_OK STREAMABLE_OUTPUT TFW TILED WEBP_LEVEL WEBP_LOSSLESS
    WORLDFILE ZLEVEL ZSTD_LEVEL""".split()
)
#: GDAL's GTiff compression names.
GTIFF_COMPRESSIONS = frozenset(
    "NONE LZW PACKBITS JPEG CCITTRLE CCITTFAX3 CCITTFAX4 DEFLATE ZSTD LZMA LERC LERC_DEFLATE LERC_ZSTD WEBP JXL".split()
)
#: compressions that take a predictor (the default one is added only for these).
_PREDICTOR_COMPRESSIONS = frozenset({"LZW", "DEFLATE", "ZSTD", "LZMA"})
#: options of rasterio's profile that :func:`_gtiff_profile` sets itself (lower case, as rasterio spells them).
_LAYOUT_KEYS = ("tiled", "blockxsize", "blockysize", "interleave", "compress", "predictor", "bigtiff", "photometric")
_FALSE = {"NO", "FALSE", "OFF", "0"}
_TRUE = {"YES", "TRUE", "ON", "1"}


def parse_creation_options(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, str]:
    """GDAL GeoTIFF creation options from ``KEY=VALUE`` strings (or a mapping) as ``{KEY: VALUE}``, keys upper-cased.

    Refused with a one-line :class:`~hsicodec.errors.OptionError`: an item that is not KEY=VALUE, a key
    that is not a GTiff creation option (:data:`GTIFF_CREATION_OPTIONS`), an unknown COMPRESS, a
    TILED that is not yes/no, a BLOCKXSIZE/BLOCKYSIZE that is not a multiple of 16, a PREDICTOR
    other than 1, 2 or 3, and a key given twice.
    """
    if items is None:
        return {}
    pairs = [(str(k), str(v)) for k, v in items.items()] if isinstance(items, Mapping) else None
    if pairs is None:
        pairs = []
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip() or not value.strip():
                raise OptionError(f"--co {item!r}: expected KEY=VALUE (a GDAL creation option, e.g. COMPRESS=ZSTD)")
            pairs.append((key, value))
    out: dict[str, str] = {}
    for raw_key, raw_value in pairs:
        key, value = raw_key.strip().upper(), raw_value.strip()
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or key not in GTIFF_CREATION_OPTIONS:
            raise OptionError(
                f"--co {raw_key}={raw_value}: {raw_key!r} is not a GeoTIFF creation option "
                "(e.g. COMPRESS, PREDICTOR, ZLEVEL, ZSTD_LEVEL, TILED, BLOCKXSIZE, BLOCKYSIZE, INTERLEAVE, BIGTIFF)"
            )
        if key in out:
            raise OptionError(f"--co {key} is given twice")
        _check_option(key, value)
        out[key] = value
    return out


def _check_option(key: str, value: str) -> None:
    """The values of the layout options GDAL would otherwise ignore or misread without an error."""
    up = value.upper()
    if key == "COMPRESS" and up not in GTIFF_COMPRESSIONS:
        names = ", ".join(sorted(GTIFF_COMPRESSIONS))
        raise OptionError(f"--co COMPRESS={value}: unknown compression (GDAL's: {names})")
    if key == "TILED" and up not in _TRUE | _FALSE:
        raise OptionError(f"--co TILED={value}: expected YES or NO")
    if key in ("BLOCKXSIZE", "BLOCKYSIZE", "ZLEVEL", "ZSTD_LEVEL", "PREDICTOR", "NBITS"):
        if not re.fullmatch(r"\d+", value) or int(value) < 1:
            raise OptionError(f"--co {key}={value}: expected a positive integer")
    if key == "PREDICTOR" and int(value) not in (1, 2, 3):
        raise OptionError(f"--co PREDICTOR={value}: expected 1 (none), 2 (integers) or 3 (floating point)")
    if key == "INTERLEAVE" and up not in ("PIXEL", "BAND"):
        raise OptionError(f"--co INTERLEAVE={value}: expected PIXEL or BAND")


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


def _gtiff_profile(
    shape: tuple,
    dtype: np.dtype,
    geo: GeoInfo,
    compress: str | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[dict, bool]:
    """(rasterio profile, tiled?) of a GeoTIFF for a cube of ``shape`` and ``dtype``.

    Defaults: 256x256 tiles (band-interleaved) where the image is at least 256 pixels each way,
    DEFLATE, predictor 2 for integers and 3 for floats, BigTIFF when needed. ``compress`` (a GDAL
    codec name, or "none") replaces the default compression; ``options`` (checked
    :func:`parse_creation_options` output) override any of it: TILED=NO gives strips, COMPRESS=NONE or a
    compression without a predictor drops the default predictor.
    """
    rows, cols, _ = shape
    dtype = np.dtype(dtype)
    opts = parse_creation_options(options) if options else {}
    prof: dict[str, Any] = _profile(shape, dtype, geo, "GTiff")
    prof.update(bigtiff="IF_SAFER", photometric="MINISBLACK")
    tiled = rows >= _TILE and cols >= _TILE
    if "TILED" in opts:
        tiled = opts["TILED"].upper() in _TRUE
    elif "BLOCKXSIZE" in opts:
        tiled = True  # GDAL tiles when a block width is given
    if tiled:
        prof.update(tiled=True, blockxsize=_TILE, blockysize=_TILE, interleave="band")
    codec = "DEFLATE" if compress is None else str(compress).upper()
    codec = opts.get("COMPRESS", codec).upper()
    if codec != "NONE":
        prof["compress"] = codec
        if codec in _PREDICTOR_COMPRESSIONS:
            prof["predictor"] = 3 if dtype.kind == "f" else 2
    for key, value in opts.items():
        if key == "TILED":
            prof["tiled"] = tiled
            continue
        if key == "COMPRESS":
            continue  # set above (NONE: no compression option at all)
        prof[key.lower()] = int(value) if key in ("BLOCKXSIZE", "BLOCKYSIZE", "PREDICTOR") else value
    if not tiled:  # strips (band-interleaved) of about a tile's pixels each, unless the options say otherwise
        prof.pop("blockxsize", None)
        prof["tiled"] = False
        prof.setdefault("blockysize", max(1, min(rows, _TILE * _TILE // max(cols, 1))))
        prof.setdefault("interleave", "band")
    return prof, tiled


def _write_gtiff(
    tmp: Path, cube: np.ndarray, geo: GeoInfo, compress: str | None, options: Mapping[str, str] | None = None
) -> None:
    import rasterio

    prof, tiled = _gtiff_profile(cube.shape, cube.dtype, geo, compress, options)
    with _gdal_write_env():
        with rasterio.open(tmp, "w", **prof) as ds:
            _write_bands(ds, cube, int(prof.get("blockysize", _TILE)) if tiled else 1)
            _gtiff_tags(ds, geo, cube.shape[2])
