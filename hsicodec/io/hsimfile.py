"""Writing a `.hsim` file atomically (the container itself, :mod:`hsicodec.format.container`, knows no files
beyond reading them)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from hsicodec.format.container import encode_hsim
from hsicodec.io.atomic import write_bytes_atomic


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
