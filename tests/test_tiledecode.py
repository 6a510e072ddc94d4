"""Tiles decoded on threads (hsicodec.codec.tiledecode): the same pixels for any number of tile threads, in
memory and into a raster, at most that many tiles in flight, and a damaged tile's error raised as it is."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import hsicodec
from hsicodec.codec import tiled, tiledecode
from hsicodec.errors import HsimError, HsimHeaderError
from hsicodec.format.container import HsimReader


def smooth_cube(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A smooth low-rank uint16 cube with a little noise."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.stack([np.sin(rr / (7 + 3 * k) + k) * np.cos(cc / (9 + 2 * k) - k) + 1.2 for k in range(3)], -1)
    spectra = np.stack([np.linspace(0.2 + 0.2 * k, 1.0 - 0.1 * k, c) for k in range(3)])
    return np.clip(np.rint(maps @ spectra * 1500 + rng.normal(0, 5, (h, w, c)) + 200), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def tiled_file():
    cube = smooth_cube(70, 90, 12, seed=3)
    return cube, tiled.compress_tiled(cube, tile=32, bpppb=1.0, effort="fast")  # 3 x 3 tiles


@pytest.mark.parametrize("tile_threads", [2, 3, 16])
def test_any_number_of_tile_threads_decodes_the_same_pixels(tiled_file, tile_threads):
    _, data = tiled_file
    one, geo1 = tiledecode.decompress_tiled(data, tile_threads=1)
    many, geo2 = tiledecode.decompress_tiled(data, tile_threads=tile_threads, threads=2)
    np.testing.assert_array_equal(many, one)
    assert geo1 == geo2
    win, _ = tiledecode.decompress_tiled(data, window=(5, 20, 50, 60), bands=(2, 9), tile_threads=tile_threads)
    np.testing.assert_array_equal(win, one[5:55, 20:80, 2:9])
    red, _ = tiledecode.decompress_tiled(data, reduce=1, tile_threads=tile_threads)
    np.testing.assert_array_equal(red, tiledecode.decompress_tiled(data, reduce=1, tile_threads=1)[0])


def test_tile_threads_into_a_raster(tiled_file, tmp_path):
    _, data = tiled_file
    src = tmp_path / "in.hsim"
    src.write_bytes(data)
    for n in (1, 3):
        st = tiledecode.decompress_file_tiled(str(src), tmp_path / f"out{n}.npy", tile_threads=n)
        assert st["tiles_decoded"] == 9
    np.testing.assert_array_equal(np.load(tmp_path / "out1.npy"), np.load(tmp_path / "out3.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "out1.npy"), hsicodec.decompress(data)[0])


def test_at_most_tile_threads_tiles_in_flight(tiled_file, monkeypatch):
    _, data = tiled_file
    orig = tiledecode.decode_tile
    lock, now, peak = threading.Lock(), [0], [0]

    def counting(*a, **k):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.02)  # let the others start if they may
        try:
            return orig(*a, **k)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(tiledecode, "decode_tile", counting)
    tiledecode.decompress_tiled(data, tile_threads=2)
    assert peak[0] == 2
    peak[0] = 0
    tiledecode.decompress_tiled(data, tile_threads=1)
    assert peak[0] == 1


def test_a_damaged_tile_raises_its_error(tiled_file, monkeypatch):
    _, data = tiled_file
    with HsimReader(data) as r:
        off, size = r.section_spans["t4"]
    bad = bytearray(data)
    bad[off + size // 2] ^= 0xFF  # its CRC32C no longer matches (checked as the section is read)
    with pytest.raises(HsimError, match="t4"):
        tiledecode.decompress_tiled(bytes(bad), tile_threads=3, verify=False)
    orig = tiledecode.decode_tile

    def failing(data, grid, i, *a, **k):
        if i == 4:
            raise HsimHeaderError("tile 4: damaged")
        return orig(data, grid, i, *a, **k)

    monkeypatch.setattr(tiledecode, "decode_tile", failing)  # an error inside a tile thread
    with pytest.raises(HsimHeaderError, match="tile 4"):
        tiledecode.decompress_tiled(data, tile_threads=3)


def test_tile_workers():
    assert tiledecode.tile_workers(0, 1) == 1
    assert tiledecode.tile_workers(5, 3) == 3
    assert 1 <= tiledecode.tile_workers(0, 100) <= tiledecode.AUTO_TILE_THREADS


def test_the_cli_decompress_takes_tile_threads(tiled_file, tmp_path, monkeypatch):
    """`hsicodec decompress --tile-threads N` reaches the tiled decoder; the pixels do not depend on N."""
    from click.testing import CliRunner

    from hsicodec.cli.main import cli

    _, data = tiled_file
    src = tmp_path / "in.hsim"
    src.write_bytes(data)
    seen = []
    orig = tiledecode.decompress_file_tiled

    def spy(*args, **kwargs):
        seen.append(kwargs.get("tile_threads"))
        return orig(*args, **kwargs)

    monkeypatch.setattr(tiledecode, "decompress_file_tiled", spy)
    monkeypatch.setattr(tiled, "decompress_file_tiled", spy)
    for n in (1, 3):
        res = CliRunner().invoke(
            cli, ["decompress", str(src), str(tmp_path / f"o{n}.npy"), "--tile-threads", str(n), "-q"]
        )
        assert res.exit_code == 0, res.output
    assert seen == [1, 3]
    np.testing.assert_array_equal(np.load(tmp_path / "o1.npy"), np.load(tmp_path / "o3.npy"))


def test_a_tile_decodes_into_its_window_of_a_larger_array(tiled_file):
    """decode_tile(out=view) writes the tile's pixels into that window of the caller's cube (nothing around
    it) and returns the view; the pixels are those of a decode into a fresh array."""
    _, data = tiled_file
    with HsimReader(data) as reader:
        grid, _, bnd, plan = tiledecode._iter_tiles(
            reader, None, None, limits=reader.limits, max_tile_values=tiledecode.MAX_TILE_VALUES, verify=True
        )
        decode = tiledecode._tile_decoder(reader, grid, bnd, limits=reader.limits, backend="auto", registry=None)
        i, local, _ = plan[4]
        section = reader.section(tiledecode.section_name(i))
        fresh = decode(section, grid, i, local, threads=1)
        big = np.zeros((fresh.shape[0] + 9, fresh.shape[1] + 13, fresh.shape[2]), fresh.dtype)
        view = big[4 : 4 + fresh.shape[0], 6 : 6 + fresh.shape[1]]
        assert decode(section, grid, i, local, threads=2, out=view) is view
    np.testing.assert_array_equal(view, fresh)
    big[4 : 4 + fresh.shape[0], 6 : 6 + fresh.shape[1]] = 0
    assert not big.any()


def test_an_untiled_decode_into_a_given_array_masked_or_not(tmp_path):
    """decompress_untiled(out=...) returns that array with the pixels of a plain decode, also where the
    file's mask makes the decoder cast apart and copy."""
    from hsicodec.codec.cube import decompress_untiled

    cube = smooth_cube(20, 24, 9, seed=1)
    masked = cube.copy()
    masked[3:6, 4:9] = 0
    for data in (hsicodec.compress(cube, bpppb=1.0), hsicodec.compress(masked, bpppb=1.0, nodata=0)):
        want = hsicodec.decompress(data)[0]
        out = np.full((30, 30, 9), 7, np.uint16)
        with HsimReader(data) as reader:
            got, _ = decompress_untiled(reader, out=out[2:22, 3:27])
        assert got.base is out or got is out
        np.testing.assert_array_equal(out[2:22, 3:27], want)
        out[2:22, 3:27] = 7
        assert (out == 7).all()
