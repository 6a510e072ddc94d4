"""Atomic output files: write to a temporary file beside the target, then rename.

An interrupted or failed write leaves nothing behind, and an existing file is
never replaced unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union

from hsicodec.errors import OutputExistsError

PathLike = Union[str, "os.PathLike[str]"]


def check_writable(path: PathLike, force: bool = False) -> Path:
    """Refuse an existing output unless ``force``; return the path as a Path."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p} exists; pass --force (force=True) to overwrite it")
    if p.is_dir():
        raise OutputExistsError(f"{p} is a directory")
    return p


@contextlib.contextmanager
def atomic_path(path: PathLike, force: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed
    and the target is left as it was.
    """
    target = check_writable(path, force)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=(suffix or target.suffix) + ".part", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        check_writable(target, force)  # refuse if someone created it meanwhile
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: PathLike, data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (fsync before the rename)."""
    with atomic_path(path, force) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
