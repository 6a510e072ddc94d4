"""Writing a `.hsim` file atomically (the container itself, :mod:`hsicodec.format.container`, knows no files
beyond reading them), and refusing a `.hsim` output named like a raster."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hsicodec.errors import OptionError
from hsicodec.format.container import encode_hsim
from hsicodec.io.atomic import write_bytes_atomic
from hsicodec.io.formats import _EXT_FORMAT

#: extensions of the rasters hsicodec reads or writes, and of common images: never a `.hsim` name.
RASTER_EXTS: frozenset[str] = frozenset(
    {".tif", ".tiff", ".npy", ".img", ".hdr", ".mat", ".png", ".jpg", ".jpeg", *_EXT_FORMAT}
)


def check_hsim_output(path: str | os.PathLike[str]) -> None:
    """Refuse (OptionError) an output name ending in a raster extension: compress writes `.hsim` files."""
    ext = Path(path).suffix.lower()
    if ext in RASTER_EXTS:
        raise OptionError(
            f"cannot write {os.fspath(path)}: compress writes a .hsim file, not a {ext} raster; name the output *.hsim"
        )


def write_hsim(
    path: str | os.PathLike[str],
    header: Mapping,
    sections: Sequence[tuple[str, bytes]] | Mapping[str, bytes],
    force: bool = False,
) -> int:
    """Encode and write atomically (refuses an existing file unless ``force``); return bytes written."""
    data = encode_hsim(header, sections)
    write_bytes_atomic(path, data, force=force)
    return len(data)
