"""Tiles of one scene encoded several at a time on threads (hsicodec.codec.tilepool) and the rate budget
they share (hsicodec.codec.tilebudget): the file never depends on the number of tile threads.

Small cubes with --tile 32 (9 tiles, partial edge ones); one model (not auto) keeps it fast.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from hsicodec.cli.main import cli
from hsicodec.codec import tiled, tilepool
from hsicodec.codec.tilebudget import RATE_CLAMP, CarryBudget, check_lag
from hsicodec.errors import OptionError
from hsicodec.format.container import HsimReader

MODEL = "hsi-grid-v1"


def scene(h: int = 70, w: int = 90, c: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.stack([np.sin(rr / (6 + 3 * k) + k) * np.cos(cc / (8 + 2 * k) - k) + 1.2 for k in range(3)], -1)
    spectra = np.stack([np.linspace(0.2 + 0.2 * k, 1.0 - 0.1 * k, c) for k in range(3)])
    return np.clip(np.rint(maps @ spectra * 1500 + rng.normal(0, 4, (h, w, c)) + 200), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def cube():
    return scene()


class InFlight:
    """Wraps encode_tile: counts the tiles being encoded at once (each held a moment, so overlaps show)."""

    def __init__(self, real):
        self.real, self.now, self.most, self.lock = real, 0, 0, threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.05)
            return self.real(*args, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize(
    "target",
    [{"psnr": 34.0}, {"max_error": 40.0}, {"lossless": True}, {"psnr": 34.0, "shared_basis": True}],
    ids=["psnr", "max_error", "lossless", "psnr_shared"],
)
def test_any_number_of_tile_threads_writes_the_same_file(cube, target):
    files = {
        n: tiled.compress_tiled(cube, tile=32, effort="fast", model=MODEL, tile_threads=n, **target) for n in (1, 2, 3)
    }
    assert files[1] == files[2] == files[3]
    assert tiled.is_tiled(HsimReader(files[1]).header)


def test_tiles_really_run_at_once_and_no_more_than_asked(cube, monkeypatch):
    spy = InFlight(tilepool.encode_tile)
    monkeypatch.setattr(tilepool, "encode_tile", spy)
    seen = []
    st: dict = {}
    data = tiled.compress_tiled(
        cube, tile=32, psnr=34.0, effort="fast", model=MODEL, tile_threads=3, stats=st,
        tile_progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert spy.most == 3 and st["tiles_at_once"] == 3 and not st["cluster"]
    assert seen == [(i, 9) for i in range(1, 10)]  # reported in tile order
    assert [t["tile"] for t in st["per_tile"]] == list(range(9))
    monkeypatch.setattr(tilepool, "encode_tile", spy.real)
    assert data == tiled.compress_tiled(cube, tile=32, psnr=34.0, effort="fast", model=MODEL, tile_threads=1)


def test_a_rate_target_runs_as_many_tiles_as_its_carry_lag(cube, monkeypatch):
    kw = dict(tile=32, bpppb=1.0, effort="fast", model=MODEL)
    seq = tiled.compress_tiled(cube, **kw)  # lag 1: the sequential carry
    spy = InFlight(tilepool.encode_tile)
    monkeypatch.setattr(tilepool, "encode_tile", spy)
    assert tiled.compress_tiled(cube, tile_threads=4, **kw) == seq
    assert spy.most == 1  # each tile waited for the one before
    lagged = {n: tiled.compress_tiled(cube, tile_threads=n, carry_lag=2, **kw) for n in (1, 2, 4)}
    assert spy.most == 2
    assert lagged[1] == lagged[2] == lagged[4]  # the file depends on the lag, not on the threads
    assert len(lagged[1]) <= 1.0 * cube.size / 8


def test_a_failing_tile_leaves_no_output_and_names_the_tile(cube, tmp_path, monkeypatch):
    real = tilepool.encode_tile

    def broken(block, rate, settings, where, or_smallest=False):
        if where.startswith("tile 4 "):
            raise OptionError(f"{where}: cannot reach the target")
        return real(block, rate, settings, where, or_smallest)

    monkeypatch.setattr(tilepool, "encode_tile", broken)
    dst = tmp_path / "out.hsim"
    with pytest.raises(OptionError, match=r"^tile 4 \(rows 32\.\.64, cols 32\.\.64\)"):
        tiled.write_tiled(cube, dst, tile=32, psnr=34.0, effort="fast", model=MODEL, tile_threads=2)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file, no spool
    assert not [t for t in threading.enumerate() if t.name.startswith("hsicodec-tile-enc")]


def test_tile_encoders(monkeypatch):
    monkeypatch.setattr(tilepool.os, "cpu_count", lambda: 2)
    assert tilepool.tile_encoders(0, 16) == 1  # auto on 2 cores: one tile at a time
    monkeypatch.setattr(tilepool.os, "cpu_count", lambda: 64)
    assert tilepool.tile_encoders(0, 16) == tilepool.MAX_AUTO_TILE_THREADS
    assert tilepool.tile_encoders(0, 2) == 2  # never more than the tiles
    assert tilepool.tile_encoders(3, 16) == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(OptionError):
            tilepool.tile_encoders(bad, 4)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the rate budget


def test_lag_one_is_the_sequential_carry():
    sizes, values, target, overhead = [700, 1300, 1000, 900], [4000, 4000, 4000, 2000], 1.5, 120
    b = CarryBudget(target, sum(values), overhead, lag=1)
    bits, left = target * sum(values) - 8.0 * overhead, sum(values)
    for n, v in zip(sizes, values):
        lo, hi = RATE_CLAMP
        assert b.next_rate(v) == min(max(bits / left, lo * target), hi * target)
        b.commit(n)
        bits, left = bits - 8.0 * n, max(left - v, 1)


def test_a_lagged_rate_waits_only_for_the_tiles_lag_before_it():
    def rates(sizes, lag, eager=False):
        b = CarryBudget(1.0, 4000, 0, lag=lag)
        out = []
        for i in range(4):
            while not b.ready(i) or (eager and b.committed < i):  # eager: every earlier tile already done
                b.commit(sizes[b.committed])
            out.append(b.next_rate(1000))
        return out

    a, b = rates([100, 100, 100, 100], 2), rates([100, 150, 100, 100], 2)
    assert a[:3] == b[:3] and a[3] != b[3]  # tile 1's bytes reach tile 3's rate, not tile 2's
    assert rates([100, 150, 100, 100], 2, eager=True) == b  # whenever the tiles finish
    assert rates([100, 150, 100, 100], 1) != b
    assert rates([100, 150, 100, 100], 4) == [1.0] * 4  # nothing committed in time: every tile its share
    budget = CarryBudget(1.0, 4000, 0, lag=2)
    budget.next_rate(1000)
    budget.next_rate(1000)
    with pytest.raises(RuntimeError):
        budget.next_rate(1000)  # tile 2 needs tile 0's bytes
    for bad in (0, -1, 1.5, True):
        with pytest.raises(OptionError):
            check_lag(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the command line


def test_cli_tile_threads_gives_the_same_file(cube, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, cube)
    base = ["compress", str(src), "--tile", "32", "--psnr", "34", "--effort", "fast", "--model", MODEL, "-q"]
    for n in ("1", "2"):
        r = CliRunner().invoke(cli, [*base[:2], str(tmp_path / f"o{n}.hsim"), *base[2:], "--tile-threads", n])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "o1.hsim").read_bytes() == (tmp_path / "o2.hsim").read_bytes()
    r = CliRunner().invoke(cli, [*base[:2], str(tmp_path / "x.hsim"), *base[2:], "--tile-threads", "-1"])
    assert r.exit_code == 2 and r.stderr.startswith("hsicodec: error: ") and len(r.stderr.splitlines()) == 1


def test_cli_carry_lag_gives_the_same_file_on_any_tile_threads(cube, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, cube)
    base = ["--tile", "32", "--bpppb", "1", "--effort", "fast", "--model", MODEL, "-q", "--carry-lag", "2"]
    for n in ("1", "2"):
        r = CliRunner().invoke(cli, ["compress", str(src), str(tmp_path / f"o{n}.hsim"), *base, "--tile-threads", n])
        assert r.exit_code == 0, r.output
    assert (tmp_path / "o1.hsim").read_bytes() == (tmp_path / "o2.hsim").read_bytes()
    r = CliRunner().invoke(cli, ["compress", str(src), str(tmp_path / "x.hsim"), "--psnr", "34", "--carry-lag", "2"])
    assert r.exit_code == 2 and "--carry-lag goes with a rate" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "x.hsim").exists()


@pytest.mark.parametrize("tile_threads", [1, 2])
def test_tiles_convert_into_their_threads_scratch(cube, monkeypatch, tile_threads):
    """The float64 copy of each tile lands in one buffer per encoding thread (no fresh pages per tile), and the
    file is the one fresh arrays give."""
    from hsicodec.codec import analysis, memory

    monkeypatch.setattr(analysis, "PARALLEL_CAST_VALUES", 1)  # the tiles' conversion path, at this small size
    buffers: list = []
    real = memory.Scratch.float64

    def spy(self, shape):
        out = real(self, shape)
        buffers.append((id(self), out.__array_interface__["data"][0]))
        return out

    monkeypatch.setattr(memory.Scratch, "float64", spy)
    kw = dict(tile=32, effort="fast", model=MODEL, psnr=34.0, tile_threads=tile_threads)
    reused = tiled.compress_tiled(cube, **kw)
    tiles = -(-cube.shape[0] // 32) * -(-cube.shape[1] // 32)
    assert len(buffers) >= tiles > tile_threads
    assert len(set(buffers)) <= tile_threads  # one buffer per thread, at one address, for every tile
    monkeypatch.setattr(analysis, "float64_buffer", lambda shape: np.empty(shape))
    assert tiled.compress_tiled(cube, **kw) == reused


def test_scratch_views_share_one_buffer_and_grow():
    from hsicodec.codec import memory

    s = memory.Scratch()
    a = s.float64((4, 5))
    b = s.float64((2, 3, 2))
    assert a.shape == (4, 5) and b.shape == (2, 3, 2) and np.shares_memory(a, b)
    c = s.float64((50,))
    assert c.shape == (50,) and not np.shares_memory(a, c)
    assert not np.shares_memory(memory.float64_buffer((3,)), memory.float64_buffer((3,)))  # no scratch: new arrays
    with memory.reused_scratch(s):
        assert np.shares_memory(memory.float64_buffer((3,)), c)
    assert not np.shares_memory(memory.float64_buffer((3,)), c)
