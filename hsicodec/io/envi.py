"""ENVI files: data/header file names, header list values, and writing through GDAL.

An ENVI raster is a data file plus a ``.hdr`` text header.  Written header fields:
``wavelength``, ``fwhm``, ``wavelength units``, ``band names`` and ``data ignore value``,
plus a non-standard ``data units`` field for the radiometric units.  Reading goes
through GDAL (:mod:`hsicodec.io.rio_read`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hsicodec.errors import RasterError
from hsicodec.io.atomic import atomic_path, check_writable
from hsicodec.io.geo import GeoInfo
from hsicodec.io.rio import _fmt, _gdal_write_env, _profile, _write_bands

# Data-file names tried, in order, next to an ENVI header "x.hdr" (the first is "x").
_ENVI_DATA_EXTS = (
    "",
    ".img",
    ".dat",
    ".bsq",
    ".bil",
    ".bip",
    ".raw",
    ".bin",
    ".envi",
    ".IMG",
    ".DAT",
    ".BSQ",
    ".BIL",
    ".BIP",
    ".RAW",
    ".BIN",
)


def _envi_header_for(data_path: Path) -> Path:
    return data_path.with_suffix(".hdr") if data_path.suffix else Path(str(data_path) + ".hdr")


def _envi_data_for_header(hdr: Path) -> Path:
    base = hdr.with_suffix("")
    for ext in _ENVI_DATA_EXTS:
        cand = Path(str(base) + ext)
        if cand != hdr and cand.is_file():
            return cand
    raise RasterError(
        f"{hdr}: ENVI header without a data file beside it "
        f"(looked for {base.name} with extensions {', '.join(e for e in _ENVI_DATA_EXTS[1:9])})"
    )


def _envi_paths_for_write(p: Path, force: bool) -> tuple[Path, Path]:
    """(data, header) paths of an ENVI output named by either file, both checked writable."""
    if p.suffix.lower() == ".hdr":
        hdr, data = p, p.with_suffix(".img")
    else:
        data, hdr = p, _envi_header_for(p)
    check_writable(hdr, force)
    check_writable(data, force)
    return data, hdr


def _parse_envi_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    t = text.strip()
    if t.startswith("{") and t.endswith("}"):
        t = t[1:-1]
    items = [s.strip() for s in t.split(",")]
    if items and items[-1] == "":
        items.pop()
    return items


def _fix_envi_description(hdr: Path, data_name: str) -> None:
    """GDAL writes the (temporary) data file name as description; use the final name."""
    if "{" in data_name or "}" in data_name:
        return
    text = hdr.read_text(encoding="latin-1")
    new = re.sub(
        r"^description = \{[^}]*\}", lambda m: "description = {\n" + data_name + "}", text, count=1, flags=re.M
    )
    if new != text:
        hdr.write_text(new, encoding="latin-1")


def _envi_tags(ds, geo: GeoInfo) -> None:
    if geo.band_names is not None:
        ds.descriptions = tuple(str(s) for s in geo.band_names)
    meta = {}
    if geo.wavelengths is not None:
        meta["wavelength"] = "{" + ", ".join(_fmt(v) for v in geo.wavelengths) + "}"
    if geo.fwhm is not None:
        meta["fwhm"] = "{" + ", ".join(_fmt(v) for v in geo.fwhm) + "}"
    if geo.wavelength_units is not None:
        meta["wavelength_units"] = str(geo.wavelength_units)
    if geo.units is not None:
        meta["data_units"] = str(geo.units)
    if meta:
        ds.update_tags(ns="ENVI", **meta)


@contextlib.contextmanager
def _envi_dataset(
    data_target: Path,
    hdr_target: Path,
    shape: tuple,
    dtype: np.dtype,
    geo: GeoInfo,
    force: bool,
    env: Mapping | None = None,
) -> Iterator[Any]:
    """An open rasterio ENVI dataset on temporary names; data file and header renamed into place on success."""
    import rasterio

    dtype = np.dtype(dtype)
    if dtype == np.int8:
        raise RasterError(f"cannot write {data_target}: ENVI has no int8 data type; use GeoTIFF or .npy")
    interleave = {".bil": "bil", ".bip": "bip"}.get(data_target.suffix.lower(), "bsq")
    prof = _profile(shape, dtype, geo, "ENVI")
    prof["interleave"] = interleave
    with atomic_path(hdr_target, force, suffix=".hdr") as tmp_hdr, atomic_path(data_target, force) as tmp_data:
        gdal_hdrs = [tmp_data.with_suffix(".hdr"), Path(str(tmp_data) + ".hdr")]
        try:
            with _gdal_write_env(), rasterio.Env(**dict(env or {})):
                with rasterio.open(tmp_data, "w", **prof) as ds:
                    _envi_tags(ds, geo)
                    yield ds
            written = next((h for h in gdal_hdrs if h.is_file()), None)
            if written is None:
                raise RasterError(f"cannot write {hdr_target}: GDAL wrote no ENVI header")
            _fix_envi_description(written, data_target.name)
            os.replace(written, tmp_hdr)
        finally:
            for h in gdal_hdrs:
                with contextlib.suppress(FileNotFoundError):
                    h.unlink()
            for extra in (Path(str(tmp_data) + ".aux.xml"),):
                with contextlib.suppress(FileNotFoundError):
                    extra.unlink()


def _write_envi(data_target: Path, hdr_target: Path, cube: np.ndarray, geo: GeoInfo, force: bool) -> None:
    with _envi_dataset(data_target, hdr_target, cube.shape, cube.dtype, geo, force) as ds:
        _write_bands(ds, cube)
