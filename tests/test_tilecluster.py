"""The tiles of one scene encoded on a Dask cluster (``write_tiled(client=...)``, ``compress --scheduler``):
the file is byte for byte the local one, and an unreachable scheduler or a failing worker is one clear
error with no output written.

A LocalCluster of 2 in-process workers (tcp, so the command line connects to it by address); the slow
test runs 2 worker processes and kills one.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")

import distributed  # noqa: E402

from hsicodec.cli.main import cli  # noqa: E402
from hsicodec.codec import api, tiled, tilepool  # noqa: E402
from hsicodec.errors import OptionError  # noqa: E402
from hsicodec.integrations import cluster  # noqa: E402
from hsicodec.integrations.cluster import ClusterError  # noqa: E402

MODEL = "hsi-grid-v1"
FAST = dict(tile=32, effort="fast", model=MODEL)


def scene(h: int = 70, w: int = 90, c: int = 12) -> np.ndarray:
    rng = np.random.default_rng(5)
    base = np.cumsum(rng.normal(size=(h, w, c)), axis=2) * 30 + 2000
    rr, cc = np.mgrid[0:h, 0:w]
    return np.clip(base + 300 * np.sin(rr / 9.0)[..., None] * np.cos(cc / 13.0)[..., None], 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def cube():
    return scene()


def local_cluster(processes: bool) -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=processes, protocol="tcp", dashboard_address=":0",
        scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def address():
    with local_cluster(processes=False) as lc:
        yield lc.scheduler_address


@pytest.fixture(scope="module")
def client(address):
    with distributed.Client(address) as c:
        yield c


@pytest.mark.parametrize("target", [{"psnr": 34.0}, {"max_error": 30.0}, {"bpppb": 1.0}, {}])
def test_the_cluster_writes_the_local_file(cube, client, target):
    st: dict = {}
    remote = tiled.compress_tiled(cube, client=client, stats=st, **FAST, **target)
    assert remote == tiled.compress_tiled(cube, **FAST, **target)
    assert [t["tile"] for t in st["per_tile"]] == list(range(9))
    assert st["cluster"] and st["tiles_at_once"] == (2 if "psnr" in target or "max_error" in target else 1)


def test_cli_scheduler_writes_the_local_file(cube, address, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, cube)
    args = ["--tile", "32", "--psnr", "34", "--effort", "fast", "--model", MODEL]
    r = CliRunner().invoke(
        cli, ["compress", str(src), str(tmp_path / "c.hsim"), *args, "--scheduler", address, "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tiles"]["count"] == 9
    r = CliRunner().invoke(cli, ["compress", str(src), str(tmp_path / "l.hsim"), *args, "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c.hsim").read_bytes() == (tmp_path / "l.hsim").read_bytes()


def test_the_api_takes_a_scheduler_address(cube, address, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, cube)
    st = api.compress_file(src, tmp_path / "a.hsim", scheduler=address, psnr=34.0, **FAST)
    assert st["tiled"] and (tmp_path / "a.hsim").read_bytes() == tiled.compress_tiled(cube, psnr=34.0, **FAST)
    with pytest.raises(OptionError, match="give --tile N"):
        api.compress_file(src, tmp_path / "b.hsim", scheduler=address, tile=0, psnr=34.0)
    assert not (tmp_path / "b.hsim").exists()


def test_an_unreachable_scheduler_is_one_line(cube, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    src = tmp_path / "in.npy"
    np.save(src, cube)
    out = tmp_path / "out.hsim"
    r = CliRunner().invoke(
        cli, ["compress", str(src), str(out), "--tile", "32", "--psnr", "34", "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert r.exit_code == 1
    assert r.stderr.startswith("hsicodec: error: cannot connect to the Dask scheduler at tcp://127.0.0.1:1: ")
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_a_failing_worker_is_a_cluster_error_naming_the_tile(cube, client, tmp_path, monkeypatch):
    real = tilepool.encode_tile

    def broken(block, rate, settings, where, or_smallest=False):  # the workers run in this process
        if where.startswith("tile 3 "):
            raise MemoryError("out of memory")
        return real(block, rate, settings, where, or_smallest)

    monkeypatch.setattr(tilepool, "encode_tile", broken)
    with pytest.raises(
        ClusterError, match=r"^tile 3 \(rows 32\.\.64, cols 0\.\.32\): a Dask worker failed: MemoryError"
    ):
        tiled.write_tiled(cube, tmp_path / "out.hsim", psnr=34.0, client=client, **FAST)
    assert list(tmp_path.iterdir()) == []  # nothing written, no spool left


def test_an_hsicodec_error_on_a_worker_keeps_its_class_and_message(cube, client, tmp_path):
    with pytest.raises(OptionError, match=r"^tile 0 \(rows 0\.\.32, cols 0\.\.32\): unknown layer 'nope'") as info:
        tiled.write_tiled(cube, tmp_path / "out.hsim", psnr=34.0, layer="nope", client=client, **FAST)
    assert not isinstance(info.value, ClusterError)
    assert list(tmp_path.iterdir()) == []


def test_cli_scheduler_usage_errors(cube, tmp_path, monkeypatch):
    src = tmp_path / "in.npy"
    np.save(src, cube)
    run = CliRunner().invoke
    for extra in (["--tile", "0"], ["--tile", "32", "--tile-threads", "2"]):
        r = run(cli, ["compress", str(src), str(tmp_path / "o.hsim"), "--scheduler", "tcp://127.0.0.1:1", *extra])
        assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.output
    r = run(cli, ["compress", str(src), str(tmp_path / "o.hsim"), "--scheduler", "tcp://127.0.0.1:1"])  # not tiled
    assert r.exit_code == 1 and "give --tile N" in r.stderr and len(r.stderr.splitlines()) == 1
    monkeypatch.setitem(sys.modules, "distributed", None)
    r = run(cli, ["compress", str(src), str(tmp_path / "o.hsim"), "--tile", "32", "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "hsicodec: error: --scheduler needs dask and distributed: pip install 'hsicodec[dask]'"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


@pytest.mark.slow
def test_worker_processes_write_the_local_file_and_a_killed_worker_is_an_error(cube, tmp_path):
    """Two worker processes: the same bytes; then a worker that dies on a tile (no retry) is a ClusterError."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), local_cluster(processes=True) as lc:
        with distributed.Client(lc) as c:
            assert tiled.compress_tiled(cube, client=c, psnr=34.0, **FAST) == tiled.compress_tiled(
                cube, psnr=34.0, **FAST
            )
            c.run(_die_on_tile_5)
            # tile 5 or a tile queued on the same worker before it: the first lost one in tile order
            with pytest.raises(ClusterError, match=r"^tile [0-5] \(rows .*: a Dask worker failed: \w+"):
                tiled.write_tiled(cube, tmp_path / "out.hsim", psnr=34.0, client=c, **FAST)
    assert list(tmp_path.iterdir()) == []


def _die_on_tile_5() -> None:
    """Run on each worker: its process exits when it is given tile 5."""
    import os

    from hsicodec.codec import tilepool as pool

    real = pool.encode_tile

    def dying(block, rate, settings, where, or_smallest=False):
        if where.startswith("tile 5 "):
            os._exit(1)
        return real(block, rate, settings, where, or_smallest)

    pool.encode_tile = dying
