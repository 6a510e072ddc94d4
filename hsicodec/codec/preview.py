"""Quick looks: a true-colour PNG of a `.hsim` from a reduced-resolution decode of three bands.

What users of this field look at before they download or decode a whole scene. The three bands are
given (``rgb``), or the nearest to red, green and blue wavelengths when the file records wavelengths,
else spread over the first half of the bands (the visible and near infrared of most sensors). Each channel is stretched
between its 2nd and 98th percentiles over the valid pixels (nodata, NaN and ±Inf left black).
"""

from __future__ import annotations

import os
import warnings
from typing import Union

import numpy as np

from hsicodec.codec.tilegrid import TileGrid, is_tiled
from hsicodec.coding.reduce import check_reduce, reduced_size
from hsicodec.errors import OptionError
from hsicodec.format.container import HsimReader
from hsicodec.io.atomic import atomic_path
from hsicodec.io.geo import GeoInfo

PathLike = Union[str, "os.PathLike[str]"]
TRUE_COLOUR_NM = (640.0, 550.0, 460.0)
MAX_SIDE = 1024  # the automatic reduction makes the longer side at most this
STRETCH = (2.0, 98.0)  # percentiles mapped to 0 and 255
_NM_PER_UNIT = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "micrometer": 1e3,
                "micrometers": 1e3, "micron": 1e3, "microns": 1e3, "mm": 1e6}  # fmt: skip


def wavelengths_nm(geo: GeoInfo) -> np.ndarray | None:
    """The bands' wavelengths in nanometres (None when the file records none). Units from the file, else
    guessed from the values (under 100: micrometres, as ENVI headers of AVIRIS often give them)."""
    if not geo.wavelengths:
        return None
    wl = np.asarray(geo.wavelengths, np.float64)
    unit = (geo.wavelength_units or "").strip().lower()
    factor = _NM_PER_UNIT.get(unit)
    if factor is None:
        factor = 1e3 if np.nanmax(wl) < 100 else 1.0
    return wl * factor


def choose_bands(n_bands: int, geo: GeoInfo, rgb=None, wavelengths=None) -> tuple[int, int, int]:
    """The (red, green, blue) band indices (0-based) of a preview: ``rgb`` as given, the bands nearest
    ``wavelengths`` (nm; the file must record wavelengths), true colour when the file has wavelengths, else
    bands at 1/2, 1/4 and 1/8 of the band range."""
    if rgb is not None and wavelengths is not None:
        raise OptionError("give the preview's bands by index (rgb) or by wavelength, not both")
    if rgb is not None:
        bands = tuple(int(b) for b in rgb)
        if len(bands) != 3 or not all(0 <= b < n_bands for b in bands):
            raise OptionError(f"rgb must be three band indices in 0..{n_bands - 1} (0-based), not {rgb!r}")
        return bands  # type: ignore[return-value]
    wl = wavelengths_nm(geo)
    if wavelengths is not None:
        want = tuple(float(v) for v in wavelengths)
        if len(want) != 3:
            raise OptionError(f"wavelengths must be three values (nm), not {wavelengths!r}")
        if wl is None:
            raise OptionError("this file records no band wavelengths: give the bands by index (--rgb R,G,B)")
    elif wl is not None:
        want = TRUE_COLOUR_NM
    else:
        return (n_bands // 2, n_bands // 4, n_bands // 8)
    return tuple(int(np.nanargmin(np.abs(wl - w))) for w in want)  # type: ignore[return-value]


def auto_reduce(height: int, width: int, limit: int = MAX_SIDE) -> int:
    """The smallest reduction that brings the longer side to ``limit`` pixels or fewer."""
    n = 0
    while max(reduced_size(height, n), reduced_size(width, n)) > limit:
        n += 1
    return n


def stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, 3) values → uint8, each channel from its 2nd–98th percentile over the valid pixels to 0–255."""
    out = np.zeros(rgb.shape, np.uint8)
    for j in range(3):
        ch, ok = rgb[..., j].astype(np.float64), valid[..., j]
        if not ok.any():
            continue
        lo, hi = np.percentile(ch[ok], STRETCH)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        out[..., j] = np.where(ok, np.clip(np.rint((ch - lo) * scale), 0, 255), 0).astype(np.uint8)
    return out


def preview(
    src: PathLike,
    dst: PathLike,
    *,
    rgb=None,
    wavelengths=None,
    reduce: int | None = None,
    force: bool = False,
    threads: int = 0,
) -> dict:
    """Write a PNG quick look of the `.hsim` ``src`` (see the module doc); returns what was chosen.

    ``reduce`` None: the smallest that keeps the longer side at most :data:`MAX_SIDE` pixels (tiled files:
    at most what their tiles allow)."""
    from hsicodec.codec.api import decompress

    with HsimReader(src) as reader:
        header = reader.header
        h, w, c = (int(v) for v in header["shape"])
        geo = GeoInfo.from_header(header.get("geo"), n_bands=c)
        bands = choose_bands(c, geo, rgb, wavelengths)
        n = auto_reduce(h, w) if reduce is None else check_reduce(reduce)
        if reduce is None and is_tiled(header):  # whole blocks in every tile
            grid = TileGrid.from_header(header, reader.limits)
            while n and not grid.reducible(n):
                n -= 1
        lo, hi = min(bands), max(bands) + 1
        cube, _ = decompress(reader, bands=(lo, hi), reduce=n, threads=threads)
    picked = cube[..., [b - lo for b in bands]]
    valid = np.isfinite(picked) if picked.dtype.kind == "f" else np.ones(picked.shape, bool)
    if geo.nodata is not None and np.isfinite(geo.nodata):
        valid &= picked != geo.nodata
    image = stretch(picked, valid)
    _write_png(dst, image, force)
    wl = wavelengths_nm(geo)
    return {
        "input": str(src),
        "output": str(dst),
        "bands": list(bands),
        "wavelengths_nm": None if wl is None else [float(wl[b]) for b in bands],
        "reduce": n,
        "size": [int(image.shape[0]), int(image.shape[1])],
    }


def _write_png(dst: PathLike, image: np.ndarray, force: bool) -> None:
    """An 8-bit RGB PNG written atomically through GDAL's PNG driver (no georeferencing, no .aux.xml)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with atomic_path(dst, force=force, suffix=".png") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a quick look carries no georeferencing
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):
            with rasterio.open(
                tmp, "w", driver="PNG", width=image.shape[1], height=image.shape[0], count=3, dtype="uint8"
            ) as ds:
                ds.write(np.moveaxis(image, 2, 0))
