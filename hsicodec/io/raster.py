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

Spectral metadata conventions written (and read back) by this module:

* GeoTIFF: per-band tags ``wavelength`` and ``fwhm``; dataset tags
  ``wavelength_units`` and ``units`` (the band unit type is set too); band
  descriptions hold the band names; GDAL's standard ``IMAGERY`` domain
  ``CENTRAL_WAVELENGTH_UM``/``FWHM_UM`` is added when the wavelength unit is
  nanometres or micrometres.
* ENVI: the ``wavelength``, ``fwhm``, ``wavelength units``, ``band names`` and
  ``data ignore value`` header fields, plus a non-standard ``data units``
  field for the radiometric units.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

import numpy as np

from hsicodec.errors import HsicodecError, HsimHeaderError, OptionError, RasterError
from hsicodec.io.atomic import atomic_path, check_writable

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "GeoInfo",
    "read_cube",
    "read_info",
    "write_cube",
    "raster_format",
    "cast_to_dtype",
    "SUPPORTED_DTYPES",
    "WRITE_FORMATS",
]

#: dtypes a cube may have to be written to GeoTIFF (ENVI: all but int8; .npy: any real dtype).
SUPPORTED_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(t)
    for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64")
)
#: formats :func:`write_cube` can produce.
WRITE_FORMATS = ("gtiff", "envi", "npy")

_FORMAT_ALIASES = {
    "gtiff": "gtiff",
    "geotiff": "gtiff",
    "tif": "gtiff",
    "tiff": "gtiff",
    "cog": "gtiff",
    "envi": "envi",
    "hdr": "envi",
    "npy": "npy",
    "numpy": "npy",
    "mat": "mat",
    "matlab": "mat",
}
_EXT_FORMAT = {
    ".tif": "gtiff",
    ".tiff": "gtiff",
    ".hdr": "envi",
    ".img": "envi",
    ".bsq": "envi",
    ".bil": "envi",
    ".bip": "envi",
    ".dat": "envi",
    ".npy": "npy",
    ".mat": "mat",
}
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
_CHUNK_BYTES = 64 << 20  # pixel data moved per rasterio read/write call
_TILE = 256
_HEADER_KEYS = ("crs", "transform", "nodata", "band_names", "wavelengths", "fwhm", "wavelength_units", "units")
_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_UM_UNITS = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"}


# ---------------------------------------------------------------------------
# GeoInfo
# ---------------------------------------------------------------------------


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _py_number(x: Any) -> float | int:
    """A numpy or Python real number as a plain Python int or float."""
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(x)


@dataclass
class GeoInfo:
    """Georeferencing and spectral metadata of a cube; every field optional.

    ``transform`` is the affine pixel→map transform in rasterio/``Affine``
    order ``(a, b, c, d, e, f)``: ``x = a*col + b*row + c``, ``y = d*col + e*row + f``.
    Per-band lists (``band_names``, ``wavelengths``, ``fwhm``) have one entry per band.
    """

    crs_wkt: str | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    nodata: float | int | None = None
    band_names: list[str] | None = None
    wavelengths: list[float] | None = None
    fwhm: list[float] | None = None
    wavelength_units: str | None = None
    units: str | None = None

    def is_empty(self) -> bool:
        """True when no field is set."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_header(self) -> dict:
        """A compact msgpack-able map of the set fields (keys: ``crs``, ``transform``, ``nodata``,
        ``band_names``, ``wavelengths``, ``fwhm``, ``wavelength_units``, ``units``)."""
        out: dict[str, Any] = {}
        if self.crs_wkt is not None:
            out["crs"] = str(self.crs_wkt)
        if self.transform is not None:
            out["transform"] = [float(v) for v in self.transform]
        if self.nodata is not None:
            out["nodata"] = _py_number(self.nodata)
        if self.band_names is not None:
            out["band_names"] = [str(v) for v in self.band_names]
        if self.wavelengths is not None:
            out["wavelengths"] = [float(v) for v in self.wavelengths]
        if self.fwhm is not None:
            out["fwhm"] = [float(v) for v in self.fwhm]
        if self.wavelength_units is not None:
            out["wavelength_units"] = str(self.wavelength_units)
        if self.units is not None:
            out["units"] = str(self.units)
        return out

    @classmethod
    def from_header(cls, d: Mapping | None, *, n_bands: int | None = None) -> GeoInfo:
        """Build a GeoInfo from a :meth:`to_header` map (``None`` → empty GeoInfo).

        Types and lengths are checked (per-band lists must agree with each other and,
        when given, with ``n_bands``); a bad value raises
        :class:`~hsicodec.errors.HsimHeaderError` naming the key.  Unknown keys are ignored.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise HsimHeaderError(f"geo header must be a map, got {type(d).__name__}")

        def bad(key: str, what: str) -> HsimHeaderError:
            return HsimHeaderError(f"geo header key {key!r}: {what}")

        def text(key: str) -> str | None:
            v = d.get(key)
            if v is None:
                return None
            if not isinstance(v, str):
                raise bad(key, f"expected a string, got {type(v).__name__}")
            return v

        def numbers(key: str, *, finite: bool = False) -> list[float] | None:
            v = d.get(key)
            if v is None:
                return None
            if not isinstance(v, (list, tuple)):
                raise bad(key, f"expected a list of numbers, got {type(v).__name__}")
            for i, x in enumerate(v):
                if not _is_real(x):
                    raise bad(key, f"item {i} is {type(x).__name__}, expected a number")
                if finite and not math.isfinite(float(x)):
                    raise bad(key, f"item {i} is not finite ({x!r})")
            return [float(x) for x in v]

        crs = text("crs")
        transform = numbers("transform", finite=True)
        if transform is not None and len(transform) != 6:
            raise bad("transform", f"expected 6 numbers, got {len(transform)}")
        nodata = d.get("nodata")
        if nodata is not None:
            if not _is_real(nodata):
                raise bad("nodata", f"expected a number, got {type(nodata).__name__}")
            nodata = _py_number(nodata)
        names = d.get("band_names")
        if names is not None:
            if not isinstance(names, (list, tuple)):
                raise bad("band_names", f"expected a list of strings, got {type(names).__name__}")
            for i, x in enumerate(names):
                if not isinstance(x, str):
                    raise bad("band_names", f"item {i} is {type(x).__name__}, expected a string")
            names = list(names)
        wavelengths = numbers("wavelengths")
        fwhm = numbers("fwhm")
        lengths = {
            k: len(v) for k, v in (("band_names", names), ("wavelengths", wavelengths), ("fwhm", fwhm)) if v is not None
        }
        if n_bands is not None:
            for k, n in lengths.items():
                if n != n_bands:
                    raise bad(k, f"has {n} entries for {n_bands} bands")
        elif len(set(lengths.values())) > 1:
            k = sorted(lengths)[-1]
            raise bad(
                k, "per-band lists differ in length: " + ", ".join(f"{name}={n}" for name, n in sorted(lengths.items()))
            )
        return cls(
            crs_wkt=crs,
            transform=tuple(transform) if transform is not None else None,  # type: ignore[arg-type]
            nodata=nodata,
            band_names=names,
            wavelengths=wavelengths,
            fwhm=fwhm,
            wavelength_units=text("wavelength_units"),
            units=text("units"),
        )

    def subset(self, rows: slice, cols: slice, bands: slice) -> GeoInfo:
        """The GeoInfo of ``cube[rows, cols, bands]`` (window decoding).

        The transform origin moves to the window's first pixel (a positive step scales
        the pixel size); per-band lists are sliced with ``bands``.  Row/column starts
        must be non-negative (``None`` = 0) and steps positive.
        """

        def start_step(s: slice, name: str) -> tuple[int, int]:
            if not isinstance(s, slice):
                raise OptionError(f"{name} must be a slice, got {type(s).__name__}")
            start = 0 if s.start is None else int(s.start)
            step = 1 if s.step is None else int(s.step)
            if start < 0:
                raise OptionError(f"{name} window start must be >= 0, got {start}")
            if step <= 0:
                raise OptionError(f"{name} window step must be > 0, got {step}")
            return start, step

        r0, rs = start_step(rows, "row")
        c0, cs = start_step(cols, "column")
        if not isinstance(bands, slice):
            raise OptionError(f"bands must be a slice, got {type(bands).__name__}")
        transform = None
        if self.transform is not None:
            a, b, c, d, e, f = (float(v) for v in self.transform)
            transform = (a * cs, b * rs, a * c0 + b * r0 + c, d * cs, e * rs, d * c0 + e * r0 + f)

        def cut(v: list | None) -> list | None:
            return None if v is None else list(v)[bands]

        return GeoInfo(
            crs_wkt=self.crs_wkt,
            transform=transform,
            nodata=self.nodata,
            band_names=cut(self.band_names),
            wavelengths=cut(self.wavelengths),
            fwhm=cut(self.fwhm),
            wavelength_units=self.wavelength_units,
            units=self.units,
        )


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


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


def raster_format(path: PathLike, format: str | None = None) -> str:
    """The format name of ``path``: ``"gtiff"``, ``"envi"``, ``"npy"`` (or ``"mat"``, read-only).

    An explicit ``format`` (``gtiff``/``geotiff``/``tif``, ``envi``, ``npy``, ``mat``) wins;
    otherwise the extension decides (``.tif``/``.tiff``; ``.hdr``/``.img``/``.bsq``/``.bil``/
    ``.bip``/``.dat``; ``.npy``; ``.mat``), or an ENVI ``.hdr`` beside the file.
    """
    if format is not None:
        key = str(format).strip().lower().lstrip(".")
        if key not in _FORMAT_ALIASES:
            raise OptionError(f"unknown raster format {format!r}; use gtiff, envi or npy")
        return _FORMAT_ALIASES[key]
    p = Path(path)
    ext = p.suffix.lower()
    if ext in _EXT_FORMAT:
        return _EXT_FORMAT[ext]
    if _envi_header_for(p).exists() or Path(str(p) + ".hdr").exists():
        return "envi"
    raise RasterError(
        f"{p}: cannot tell the raster format from the extension {ext or '(none)'!r}; "
        "use .tif, .hdr/.img, .npy or .mat, or pass the format explicitly"
    )


# ---------------------------------------------------------------------------
# rasterio (GeoTIFF, ENVI, anything GDAL reads)
# ---------------------------------------------------------------------------


def _envi_paths_for_write(p: Path, force: bool) -> tuple[Path, Path]:
    """(data, header) paths of an ENVI output named by either file, both checked writable."""
    if p.suffix.lower() == ".hdr":
        hdr, data = p, p.with_suffix(".img")
    else:
        data, hdr = p, _envi_header_for(p)
    check_writable(hdr, force)
    check_writable(data, force)
    return data, hdr


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


def _floats(items: Sequence[str] | None, n: int) -> list[float] | None:
    if items is None or len(items) != n:
        return None
    try:
        return [float(s) for s in items]
    except (TypeError, ValueError):
        return None


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


def _rio_target(p: Path) -> Path:
    return _envi_data_for_header(p) if p.suffix.lower() == ".hdr" else p


def _read_rio(p: Path, var: str | None) -> tuple[np.ndarray, GeoInfo]:
    from rasterio.windows import Window

    src = _rio_target(p)
    with _wrap("read", p):
        ds = _rio_open(src, var)
        with ds:
            dtype = _rio_dtype(ds, p)
            rows, cols, n = ds.height, ds.width, ds.count
            if 0 in (rows, cols, n):
                raise RasterError(f"{p}: empty raster ({rows}x{cols}x{n})")
            out = np.empty((rows, cols, n), dtype=dtype)
            step = max(1, _CHUNK_BYTES // max(1, cols * n * dtype.itemsize))
            for r0 in range(0, rows, step):
                h = min(step, rows - r0)
                block = ds.read(window=Window(0, r0, cols, h))
                out[r0 : r0 + h] = block.transpose(1, 2, 0)
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


# ---------------------------------------------------------------------------
# .npy
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# MATLAB .mat
# ---------------------------------------------------------------------------

_MAT_CLASS_DTYPE = {
    "double": "float64",
    "single": "float32",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}


def _is_hdf5(p: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(p))
    except Exception:
        return False


def _mat_entries(p: Path) -> tuple[bool, list[tuple[str, tuple[int, ...], np.dtype | None]]]:
    """(is_v73, [(name, MATLAB shape, dtype or None when not a real numeric array)])."""
    entries: list[tuple[str, tuple[int, ...], np.dtype | None]] = []
    if _is_hdf5(p):
        import h5py

        with h5py.File(p, "r") as f:
            for name, obj in f.items():
                if name.startswith("#") or not isinstance(obj, h5py.Dataset):
                    continue
                cls = obj.attrs.get("MATLAB_class")
                if isinstance(cls, bytes):
                    cls = cls.decode("ascii", "replace")
                dt = obj.dtype
                numeric = dt.kind in "iuf" and cls not in ("char", "logical") and not obj.attrs.get("MATLAB_empty", 0)
                entries.append((name, tuple(int(s) for s in obj.shape[::-1]), np.dtype(dt) if numeric else None))
        return True, entries
    import scipy.io

    for name, shape, cls in scipy.io.whosmat(p):
        dt = _MAT_CLASS_DTYPE.get(cls)
        entries.append((name, tuple(int(s) for s in shape), np.dtype(dt) if dt else None))
    return False, entries


def _pick_mat_var(p: Path, entries, var: str | None) -> tuple[str, tuple[int, ...], np.dtype | None]:
    def desc(e) -> str:
        return f"{e[0]} ({'x'.join(map(str, e[1])) or 'scalar'}{'' if e[2] is not None else ', not numeric'})"

    if var is not None:
        for e in entries:
            if e[0] == var:
                if len(e[1]) != 3:
                    raise RasterError(
                        f"{p}: variable {var!r} is {len(e[1])}-D ({'x'.join(map(str, e[1]))}); a 3-D "
                        "rows x cols x bands array is needed (2-D bands x pixels arrays are not reshaped "
                        "automatically: reshape it and save it as .npy)"
                    )
                return e
        have = ", ".join(desc(e) for e in entries) or "no variables"
        raise RasterError(f"{p}: no variable named {var!r} (have: {have})")
    cands = [e for e in entries if e[2] is not None and len(e[1]) == 3]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        have = ", ".join(desc(e) for e in entries) or "no variables"
        raise RasterError(
            f"{p}: no 3-D numeric array (have: {have}); a rows x cols x bands array is needed "
            "(2-D bands x pixels arrays are not reshaped automatically); pick a 3-D variable with --var NAME"
        )
    raise RasterError(f"{p}: several 3-D arrays ({', '.join(desc(e) for e in cands)}); pick one with --var NAME")


def _read_mat(p: Path, var: str | None, band_first: bool) -> np.ndarray:
    with _wrap("read", p):
        v73, entries = _mat_entries(p)
        name = _pick_mat_var(p, entries, var)[0]
        what = f" (variable {name!r})"
        if v73:
            import h5py

            with h5py.File(p, "r") as f:
                ds = f[name]
                _check_dtype(ds.dtype, p, what)
                cls = ds.attrs.get("MATLAB_class")
                if isinstance(cls, bytes):
                    cls = cls.decode("ascii", "replace")
                if cls == "logical":
                    raise RasterError(f"{p}{what}: boolean data is not supported; convert it to uint8")
                arr = ds[()]
            arr = np.asarray(arr).T  # h5py sees MATLAB's column-major array transposed
        else:
            import scipy.io

            arr = scipy.io.loadmat(p, variable_names=[name], squeeze_me=False, mat_dtype=False)[name]
            if not isinstance(arr, np.ndarray):
                raise RasterError(f"{p}{what}: not a numeric array")
    if arr.ndim != 3:
        raise RasterError(f"{p}{what}: expected a 3-D array, got shape {arr.shape}; pick another with --var NAME")
    return _finish(arr, p, band_first, what)


def _info_mat(p: Path, var: str | None, band_first: bool) -> tuple[tuple[int, int, int], np.dtype]:
    with _wrap("read", p):
        _, entries = _mat_entries(p)
        name, shape, dtype = _pick_mat_var(p, entries, var)
    what = f" (variable {name!r})"
    if dtype is None:
        raise RasterError(f"{p}{what}: not a real numeric array")
    return _shape_after(shape, p, band_first, what), np.dtype(dtype)


# ---------------------------------------------------------------------------
# public reading API
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# casting
# ---------------------------------------------------------------------------


def cast_to_dtype(values: np.ndarray, dtype, nodata: float | int | None = None) -> np.ndarray:
    """``values`` converted to ``dtype``: rounded to nearest (half to even) and clipped for
    integer dtypes, clipped to the finite range for float dtypes.

    NaN stays NaN for float targets.  For integer targets NaN becomes ``nodata`` when it
    is an integer the dtype can hold; otherwise it becomes 0 and a RuntimeWarning says
    how many values were affected.  ±inf clip to the integer range's ends.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    src = values.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if src.kind in "iub":
            if src.kind == "b":
                return values.astype(dtype)
            sinfo = np.iinfo(src)
            lo, hi = max(info.min, sinfo.min), min(info.max, sinfo.max)
            if lo > sinfo.min or hi < sinfo.max:
                values = np.clip(values, np.array(lo, src), np.array(hi, src))
            return values.astype(dtype)
        if src.kind != "f":
            raise TypeError(f"cannot cast {src} values to {dtype}")
        lo_f, hi_f = float(info.min), float(info.max)
        if int(hi_f) > info.max:  # 2**63, 2**64 are not representable in (u)int64
            hi_f = float(np.nextafter(hi_f, -np.inf))
        if int(lo_f) < info.min:
            lo_f = float(np.nextafter(lo_f, np.inf))
        work = np.rint(values.astype(np.float64, copy=False) if src.itemsize < 8 else values)
        work = np.clip(work, lo_f, hi_f)
        nan = np.isnan(work)
        if nan.any():
            fill = 0
            if (
                nodata is not None
                and _is_real(nodata)
                and math.isfinite(float(nodata))
                and float(nodata).is_integer()
                and info.min <= int(nodata) <= info.max
            ):
                fill = int(nodata)
            else:
                warnings.warn(
                    f"{int(nan.sum())} NaN values cast to {dtype} became 0 (no integer nodata value)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            work[nan] = fill
        return work.astype(dtype)
    if dtype.kind == "f":
        if src.kind == "f" and src.itemsize > dtype.itemsize:
            fmax = float(np.finfo(dtype).max)
            clipped = np.clip(values, -fmax, fmax)
            values = np.where(np.isinf(values), values, clipped)
        return values.astype(dtype)
    raise TypeError(f"cast_to_dtype: unsupported target dtype {dtype}")


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def _check_geo_for(geo: GeoInfo, n: int, path: Path) -> None:
    for key in ("band_names", "wavelengths", "fwhm"):
        v = getattr(geo, key)
        if v is not None and len(v) != n:
            raise RasterError(f"cannot write {path}: {key} has {len(v)} entries for {n} bands")
    if geo.transform is not None and len(geo.transform) != 6:
        raise RasterError(f"cannot write {path}: transform needs 6 numbers, got {len(geo.transform)}")


def _profile(cube: np.ndarray, geo: GeoInfo, driver: str) -> dict:
    from affine import Affine
    from rasterio.crs import CRS

    rows, cols, n = cube.shape
    prof: dict[str, Any] = dict(driver=driver, width=cols, height=rows, count=n, dtype=cube.dtype.name)
    if geo.crs_wkt:
        prof["crs"] = CRS.from_user_input(geo.crs_wkt)
    if geo.transform is not None:
        prof["transform"] = Affine(*(float(v) for v in geo.transform))
    if geo.nodata is not None:
        nd = geo.nodata
        if cube.dtype.kind in "iu":
            ok = (
                _is_real(nd)
                and math.isfinite(float(nd))
                and float(nd).is_integer()
                and np.iinfo(cube.dtype).min <= int(nd) <= np.iinfo(cube.dtype).max
            )
            if not ok:
                raise RasterError(f"nodata {nd!r} does not fit the {cube.dtype} data type")
        elif not _is_real(nd) or (math.isfinite(float(nd)) and abs(float(nd)) > float(np.finfo(cube.dtype).max)):
            raise RasterError(f"nodata {nd!r} does not fit the {cube.dtype} data type")
        prof["nodata"] = nd
    return prof


def _fmt(x: float) -> str:
    return repr(float(x))


def _um_factor(units: str | None) -> float | None:
    u = (units or "").strip().lower()
    if u in _NM_UNITS:
        return 1e-3
    if u in _UM_UNITS:
        return 1.0
    return None


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
    from types import SimpleNamespace

    rows, cols, n = shape
    prof = _profile(SimpleNamespace(shape=tuple(shape), dtype=np.dtype(dtype)), geo, "GTiff")
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
    from types import SimpleNamespace

    import rasterio

    dtype = np.dtype(dtype)
    if dtype == np.int8:
        raise RasterError(f"cannot write {data_target}: ENVI has no int8 data type; use GeoTIFF or .npy")
    interleave = {".bil": "bil", ".bip": "bip"}.get(data_target.suffix.lower(), "bsq")
    prof = _profile(SimpleNamespace(shape=tuple(shape), dtype=dtype), geo, "ENVI")
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


def write_cube(
    path: PathLike,
    cube: np.ndarray,
    geo: GeoInfo | None = None,
    *,
    format: str | None = None,
    force: bool = False,
    compress: str | None = None,
) -> None:
    """Write a ``(rows, cols, bands)`` cube (2-D → one band) atomically, in the cube's dtype.

    ``format`` (``gtiff``, ``envi``, ``npy``) defaults to the one the extension implies.
    GeoTIFF and ENVI keep the GeoInfo (CRS, transform, nodata, band names, wavelengths,
    FWHM, units); ``.npy`` drops it.  For ENVI, ``path`` may name the data file (its
    header is the same name with ``.hdr``; a ``.bil``/``.bip`` extension selects that
    interleave) or the ``.hdr`` (the data file is then ``<name>.img``); both files are
    written to temporary names and renamed, and an existing one is refused unless
    ``force``.  GeoTIFF is uncompressed unless ``compress`` names a GDAL codec
    (``deflate``, ``lzw``, ``zstd``...), tiled 256×256 for images of 512×512 or more,
    and BigTIFF when needed.  Existing output without ``force`` raises
    :class:`~hsicodec.errors.OutputExistsError`; other failures raise RasterError.
    """
    p = Path(path)
    fmt = raster_format(p, format)
    if fmt not in WRITE_FORMATS:
        raise RasterError(f"cannot write {p}: writing {fmt} files is not supported (use .tif, .hdr/.img or .npy)")
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
        check_writable(p, force)
        with _wrap("write", p), atomic_path(p, force) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr.astype(arr.dtype.newbyteorder("<"), copy=False), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
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
            _write_gtiff(tmp, arr, geo, compress)
        return

    data, hdr = _envi_paths_for_write(p, force)
    with _wrap("write", data):
        _write_envi(data, hdr, arr, geo, force)


# ---------------------------------------------------------------------------
# windowed (streaming) reading and writing: scenes larger than memory
# ---------------------------------------------------------------------------

#: GDAL block cache (MB) while streaming; GDAL's own default (5 % of the RAM) would let the
#: cache, not the scene window, set the peak memory.
STREAM_CACHE_MB = 256


def _stream_env():
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB)


class CubeReader:
    """Windowed reads of a raster that may not fit in memory (see :func:`open_cube_reader`).

    ``shape`` ``(rows, cols, bands)``, ``dtype`` and ``geo`` are known without reading
    pixels; :meth:`read` returns one window as a C-contiguous ``(h, w, bands)`` cube in
    native byte order. ``windowed`` is False when the format cannot be read by windows
    (MATLAB v5 ``.mat``): the whole array is then loaded once, on the first read.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        dtype: np.dtype,
        geo: GeoInfo,
        read_window,
        close=None,
        windowed: bool = True,
    ) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self.geo = geo
        self.windowed = windowed
        self._read = read_window
        self._close = close

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Pixels ``[row:row+height, col:col+width, :]``."""
        rows, cols, _ = self.shape
        if not (0 <= row and 0 <= col and height >= 1 and width >= 1 and row + height <= rows and col + width <= cols):
            raise OptionError(
                f"window ({row}, {col}, {height}, {width}) does not fit the {rows}x{cols} raster {os.fspath(self.path)}"
            )
        if self._read is None:
            raise RasterError(f"{os.fspath(self.path)}: reader is closed")
        with _wrap("read", self.path):
            block = self._read(int(row), int(col), int(height), int(width))
            return np.ascontiguousarray(_native(np.asarray(block)))

    def close(self) -> None:
        if self._close is not None:
            self._close()
        self._close = self._read = None

    def __enter__(self) -> CubeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CubeReader({os.fspath(self.path)!r}, shape={self.shape}, dtype={self.dtype.name})"


def _npy_window_reader(p: Path, band_first: bool):
    def read(r0: int, c0: int, h: int, w: int) -> np.ndarray:
        # a fresh memory map per window: its pages are released with it, so resident memory
        # stays one window however large the file is
        m = np.load(p, mmap_mode="r", allow_pickle=False)
        try:
            if m.ndim == 2:
                return np.array(m[r0 : r0 + h, c0 : c0 + w])[:, :, np.newaxis]
            if band_first:
                return np.array(m[:, r0 : r0 + h, c0 : c0 + w]).transpose(1, 2, 0)
            return np.array(m[r0 : r0 + h, c0 : c0 + w, :])
        finally:
            mm = getattr(m, "_mmap", None)
            del m
            if mm is not None:
                with contextlib.suppress(Exception):
                    mm.close()

    return read


def open_cube_reader(path: PathLike, var: str | None = None, band_first: bool = False) -> CubeReader:
    """Open a raster for windowed reading (use as a context manager, or call ``close()``).

    rasterio formats (GeoTIFF, ENVI, ...) read each window with one GDAL call (the GDAL block
    cache is held to :data:`STREAM_CACHE_MB` meanwhile); ``.npy`` reads through a memory map
    opened per window; MATLAB v7.3 (HDF5) ``.mat`` reads the window's hyperslab; MATLAB v5
    ``.mat`` cannot be read by parts and is loaded whole on the first read.
    """
    p = _require_file(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        shape, dtype = _info_npy(p, band_first)
        return CubeReader(p, shape, dtype, GeoInfo(), _npy_window_reader(p, band_first))
    if ext == ".mat":
        shape, dtype = _info_mat(p, var, band_first)
        with _wrap("read", p):
            v73, entries = _mat_entries(p)
            name = _pick_mat_var(p, entries, var)[0]
        if v73:
            import h5py

            f = h5py.File(p, "r")
            ds = f[name]

            def read_h5(r0: int, c0: int, h: int, w: int) -> np.ndarray:
                # h5py sees MATLAB's column-major array transposed: (C, W, H), or (W, H, C) band-first
                if band_first:
                    return np.asarray(ds[c0 : c0 + w, r0 : r0 + h, :]).T.transpose(1, 2, 0)
                if ds.ndim == 2:
                    return np.asarray(ds[c0 : c0 + w, r0 : r0 + h]).T[:, :, np.newaxis]
                return np.asarray(ds[:, c0 : c0 + w, r0 : r0 + h]).T

            return CubeReader(p, shape, dtype, GeoInfo(), read_h5, f.close)
        whole: dict = {}

        def read_v5(r0: int, c0: int, h: int, w: int) -> np.ndarray:
            if "cube" not in whole:
                whole["cube"] = _read_mat(p, var, band_first)
            return whole["cube"][r0 : r0 + h, c0 : c0 + w]

        return CubeReader(p, shape, dtype, GeoInfo(), read_v5, whole.clear, windowed=False)

    from rasterio.windows import Window

    src = _rio_target(p)
    stack = contextlib.ExitStack()
    with _wrap("read", p):
        try:
            stack.enter_context(_stream_env())
            ds = stack.enter_context(_rio_open(src, var))
            dtype = _rio_dtype(ds, p)
            shape = (ds.height, ds.width, ds.count)
            if 0 in shape:
                raise RasterError(f"{p}: empty raster ({shape[0]}x{shape[1]}x{shape[2]})")
            geo = _geo_from_dataset(ds)
        except BaseException:
            stack.close()
            raise

    def read_rio(r0: int, c0: int, h: int, w: int) -> np.ndarray:
        return ds.read(window=Window(c0, r0, w, h)).transpose(1, 2, 0)

    return CubeReader(p, shape, dtype, geo, read_rio, stack.close)


class CubeWriter:
    """Windowed writes of a cube into an output raster (see :func:`open_cube_writer`)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, write_window) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self._write = write_window

    def write(self, row: int, col: int, block: np.ndarray) -> None:
        """Write ``block`` ``(h, w, bands)`` (all the output's bands) at ``[row, col]``."""
        block = np.asarray(block)
        if block.ndim == 2:
            block = block[:, :, np.newaxis]
        rows, cols, n = self.shape
        h, w = block.shape[:2]
        if block.ndim != 3 or block.shape[2] != n or row < 0 or col < 0 or row + h > rows or col + w > cols:
            raise OptionError(
                f"block {block.shape} at ({row}, {col}) does not fit the {rows}x{cols}x{n} output "
                f"{os.fspath(self.path)}"
            )
        if block.dtype != self.dtype:
            raise OptionError(f"block dtype {block.dtype} differs from the output's {self.dtype}")
        with _wrap("write", self.path):
            self._write(int(row), int(col), block)


def _check_out_shape(p: Path, shape: Sequence[int], dtype: np.dtype) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise RasterError(f"cannot write {p}: expected a (rows, cols, bands) shape of positive sizes, got {shape}")
    _check_dtype(dtype, p)
    return shape  # type: ignore[return-value]


@contextlib.contextmanager
def open_cube_writer(
    path: PathLike,
    shape: Sequence[int],
    dtype,
    geo: GeoInfo | None = None,
    *,
    format: str | None = None,
    force: bool = False,
    compress: str | None = None,
) -> Iterator[CubeWriter]:
    """Create a ``(rows, cols, bands)`` raster and write it window by window, atomically.

    Yields a :class:`CubeWriter`; the file appears under ``path`` only when the ``with``
    block ends without an exception (like :func:`write_cube`, whose formats, GeoTIFF
    layout and metadata it shares: CRS, transform, nodata, band names, wavelengths, FWHM,
    units). Windows never written hold zeros. GeoTIFF writes go through a GDAL block
    cache of :data:`STREAM_CACHE_MB`; ``.npy`` writes each window row with one ``pwrite``.
    """
    p = Path(path)
    fmt = raster_format(p, format)
    if fmt not in WRITE_FORMATS:
        raise RasterError(f"cannot write {p}: writing {fmt} files is not supported (use .tif, .hdr/.img or .npy)")
    dtype = np.dtype(dtype)
    shape = _check_out_shape(p, shape, dtype)
    rows, cols, n = shape
    geo = geo if geo is not None else GeoInfo()

    if fmt == "npy":
        check_writable(p, force)
        le = dtype.newbyteorder("<")
        with atomic_path(p, force) as tmp:
            with _wrap("write", p):
                f = open(tmp, "w+b")
            try:
                with _wrap("write", p):
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": np.lib.format.dtype_to_descr(le), "fortran_order": False, "shape": shape}
                    )
                    f.flush()
                    base = f.tell()
                    f.truncate(base + rows * cols * n * dtype.itemsize)
                fd = f.fileno()
                row_bytes = cols * n * dtype.itemsize

                def write_npy(r0: int, c0: int, block: np.ndarray) -> None:
                    data = np.ascontiguousarray(block, dtype=le)
                    for i in range(data.shape[0]):
                        off = base + (r0 + i) * row_bytes + c0 * n * dtype.itemsize
                        buf = memoryview(data[i]).cast("B")
                        while len(buf):
                            done = os.pwrite(fd, buf, off)
                            buf, off = buf[done:], off + done

                yield CubeWriter(p, shape, dtype, write_npy)
                with _wrap("write", p):
                    os.fsync(fd)
            finally:
                f.close()
        return

    if dtype not in SUPPORTED_DTYPES:
        raise RasterError(
            f"cannot write {p}: {fmt} does not support {dtype} pixels "
            f"(supported: {', '.join(d.name for d in SUPPORTED_DTYPES)})"
        )
    _check_geo_for(geo, n, p)

    def write_rio(ds):
        from rasterio.windows import Window

        def write(r0: int, c0: int, block: np.ndarray) -> None:
            h, w = block.shape[:2]
            ds.write(np.ascontiguousarray(block.transpose(2, 0, 1)), window=Window(c0, r0, w, h))

        return write

    if fmt == "gtiff":
        import rasterio

        check_writable(p, force)
        prof, _ = _gtiff_profile(shape, dtype, geo, compress)
        with atomic_path(p, force) as tmp:
            stack = contextlib.ExitStack()
            with _wrap("write", p):
                stack.enter_context(_gdal_write_env())
                stack.enter_context(_stream_env())
                ds = stack.enter_context(rasterio.open(tmp, "w", **prof))
                _gtiff_tags(ds, geo, n)
            try:
                yield CubeWriter(p, shape, dtype, write_rio(ds))
            except BaseException:
                with contextlib.suppress(Exception):
                    stack.close()
                raise
            with _wrap("write", p):
                stack.close()
        return

    data, hdr = _envi_paths_for_write(p, force)
    with _envi_dataset(data, hdr, shape, dtype, geo, force, env={"GDAL_CACHEMAX": STREAM_CACHE_MB}) as ds:
        yield CubeWriter(data, shape, dtype, write_rio(ds))


__all__ += ["CubeReader", "CubeWriter", "open_cube_reader", "open_cube_writer", "STREAM_CACHE_MB"]
