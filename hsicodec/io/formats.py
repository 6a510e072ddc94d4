"""Raster format names: telling the format of a path, and what can be written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hsicodec.errors import OptionError, RasterError
from hsicodec.io.checks import PathLike
from hsicodec.io.envi import _ENVI_DATA_EXTS, _envi_header_for

#: dtypes a cube may have to be written to GeoTIFF (ENVI: all but int8; .npy: any real dtype).
SUPPORTED_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(t)
    for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64")
)


#: formats :func:`write_cube` can produce.
WRITE_FORMATS = ("gtiff", "envi", "npy")

#: the output names of :data:`WRITE_FORMATS`, for messages.
_WRITE_HINT = ".tif, .hdr/.img or .npy"


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


def write_format(path: PathLike, format: str | None = None) -> str:
    """The format :func:`write_cube` writes ``path`` in: one of :data:`WRITE_FORMATS`.

    As :func:`raster_format`, but an output name that tells no writable format is refused
    naming only the formats that can be written.  An ENVI header beside the path makes it
    an ENVI data file only when its extension is one of ENVI's (none, ``.raw``, ``.bin``...):
    ``x.png`` is never written as ENVI data.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if format is None and ext not in _EXT_FORMAT and ext not in _ENVI_DATA_EXTS:
        raise RasterError(
            f"cannot write {p}: cannot tell the raster format from the extension {ext!r}; "
            f"name it {_WRITE_HINT}, or pass the format explicitly (gtiff, envi or npy)"
        )
    try:
        fmt = raster_format(p, format)
    except RasterError:
        raise RasterError(
            f"cannot write {p}: no extension to tell the raster format; "
            f"name it {_WRITE_HINT}, or pass the format explicitly (gtiff, envi or npy)"
        ) from None
    if fmt not in WRITE_FORMATS:
        raise RasterError(f"cannot write {p}: writing {fmt} files is not supported (use {_WRITE_HINT})")
    return fmt
