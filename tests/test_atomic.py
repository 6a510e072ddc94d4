"""Tests of hsicodec.io.atomic: the mode of new output files, refused outputs, and every io writer through it."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hsicodec.errors import OptionError, OutputExistsError
from hsicodec.io import atomic
from hsicodec.io.atomic import atomic_path, check_writable, current_umask, new_file_mode, write_bytes_atomic

UMASKS = [0o022, 0o027]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- the umask


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_current_umask_is_read_without_changing_it(mask):
    with umask(mask):
        assert current_umask() == mask
        assert new_file_mode() == 0o666 & ~mask
        assert os.umask(mask) == mask  # still set


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_current_umask_without_proc(mask, monkeypatch):
    def no_proc(*a, **k):
        raise FileNotFoundError("/proc/self/status")

    monkeypatch.setattr(atomic, "open", no_proc, raising=False)  # the os.umask round trip
    with umask(mask):
        assert current_umask() == mask
        assert os.umask(mask) == mask


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_new_files_follow_the_umask(tmp_path, mask):
    with umask(mask):
        write_bytes_atomic(tmp_path / "a.hsim", b"data")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"data")
        with atomic_path(tmp_path / "c.hdr") as tmp:  # a writer that puts another file in its place
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
    for name in ("a.hsim", "b.bin", "c.hdr"):
        assert mode(tmp_path / name) == 0o666 & ~mask, name
    assert listing(tmp_path) == ["a.hsim", "b.bin", "c.hdr"]


def test_force_keeps_the_mode_of_the_replaced_file(tmp_path):
    p = tmp_path / "x.hsim"
    p.write_bytes(b"old")
    p.chmod(0o600)
    with umask(0o022):
        write_bytes_atomic(p, b"new", force=True)
    assert p.read_bytes() == b"new" and mode(p) == 0o600


# --------------------------------------------------------------------------- refused outputs


def test_existing_output_message_speaks_api():
    with pytest.raises(OutputExistsError) as e:
        check_writable(__file__)
    assert "pass force=True to overwrite it" in str(e.value)
    assert "--force" not in str(e.value)


def test_missing_output_directory_is_named(tmp_path):
    out = tmp_path / "nodir" / "x.hsim"
    with pytest.raises(OptionError, match="output directory .*nodir does not exist") as e:
        check_writable(out)
    assert ".part" not in str(e.value)
    with pytest.raises(OptionError, match="nodir does not exist"):
        write_bytes_atomic(out, b"data")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OptionError, match="file is not a directory"):
        write_bytes_atomic(tmp_path / "file" / "x.hsim", b"data")
    assert listing(tmp_path) == ["file"]


# --------------------------------------------------------------------------- every io writer


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_every_io_writer_follows_the_umask(tmp_path, mask):
    pytest.importorskip("rasterio")
    from hsicodec.io.raster import GeoInfo, open_cube_writer, write_cube

    cube = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3)
    geo = GeoInfo(wavelengths=[500.0, 600.0, 700.0])
    with umask(mask):
        for name in ("w.tif", "w.npy", "w.img", "h.hdr"):
            write_cube(tmp_path / name, cube, geo)
        for name in ("s.tif", "s.npy", "s.img"):
            with open_cube_writer(tmp_path / name, cube.shape, cube.dtype, geo) as w:
                w.write(0, 0, cube)
    names = listing(tmp_path)
    assert names == sorted(["w.tif", "w.npy", "w.img", "w.hdr", "h.hdr", "h.img", "s.tif", "s.npy", "s.img", "s.hdr"])
    assert {n: oct(mode(tmp_path / n)) for n in names} == {n: oct(0o666 & ~mask) for n in names}
