"""Atomic output files: write to a temporary file beside the target, then rename.

An interrupted or failed write leaves nothing behind, and an existing file is
never replaced unless ``force`` is given.  A new file gets the mode ``cp`` and GDAL
give it, ``0o666 & ~umask`` (a file replaced with ``force`` keeps its mode), although the
temporary file itself is created private (0600).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union

from hsicodec.errors import OptionError, OutputExistsError

PathLike = Union[str, "os.PathLike[str]"]

#: How an API error tells the caller to overwrite (the CLI says ``--force`` instead,
#: see :func:`hsicodec.cli.common._cli_message`).
FORCE_HINT = "pass force=True to overwrite it"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status).

    Elsewhere it falls back to setting and restoring it (``os.umask`` has no getter), which is
    not atomic against other threads creating files at that very moment.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split(":", 1)[1].strip(), 8) & 0o777
    mask = os.umask(0o077)  # meanwhile, files other threads create are private: the safe side
    os.umask(mask)
    return mask & 0o777


def new_file_mode() -> int:
    """The permission bits of a newly created file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def check_writable(path: PathLike, force: bool = False) -> Path:
    """Refuse an existing output unless ``force``, and an output whose folder is missing; return it as a Path."""
    p = Path(path)
    if p.is_dir():
        raise OutputExistsError(f"{p} is a directory")
    if p.exists() and not force:
        raise OutputExistsError(f"{p} exists; {FORCE_HINT}")
    folder = p.parent
    if not folder.is_dir():
        if folder.exists():
            raise OptionError(f"cannot write {p}: {folder} is not a directory")
        raise OptionError(f"cannot write {p}: the output directory {folder} does not exist")
    return p


def _set_mode(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the mode ``target`` will have: a replaced file's own, else a new file's."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) & 0o777
    except OSError:
        mode = new_file_mode()
    with contextlib.suppress(OSError):  # e.g. a filesystem without permissions (vfat): keep what it gives
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_path(path: PathLike, force: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    Whatever file lies at the temporary path when the block ends is given the mode of a new
    file (``0o666 & ~umask``; with ``force``, that of the file it replaces) and renamed onto
    ``path``. On any exception (KeyboardInterrupt included) the temporary file is removed and
    the target is left as it was.
    """
    target = check_writable(path, force)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=(suffix or target.suffix) + ".part", dir=folder)
    except OSError as e:  # name the output, not the temporary file
        raise OSError(e.errno, f"cannot create a file in {folder}: {e.strerror}", str(target)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        check_writable(target, force)  # refuse if someone created it meanwhile
        _set_mode(tmp_path, target)
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
