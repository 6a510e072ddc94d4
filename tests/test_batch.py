"""``hsicodec batch`` / :mod:`hsicodec.integrations.batch`: many files on a Dask cluster.

Five tiny cubes and one corrupt file, a tiny real model (meta-trained for 2 steps),
a LocalCluster of 2 in-process workers for the API tests, and one CLI run on a real
LocalCluster of 2 worker processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")
pytest.importorskip("torch")

from hsicodec.cli.main import cli  # noqa: E402
from hsicodec.integrations import batch as bm  # noqa: E402
from hsicodec.models.registry import reset_default_registry  # noqa: E402

N_GOOD = 5


@pytest.fixture(scope="module")
def model_env(tmp_path_factory):
    """A tiny real model (alias ``batch-test``) in an isolated registry, set in os.environ for the workers."""
    from hsicodec.train.meta import TrainConfig, train_model

    root = tmp_path_factory.mktemp("batch_env")
    mpath = root / "models"
    mpath.mkdir()
    rng = np.random.default_rng(1)
    np.save(root / "scene.npy", (np.cumsum(rng.normal(size=(32, 32, 20)), axis=2) * 30 + 1000).astype(np.uint16))
    cfg = TrainConfig(
        data_dir=str(root),
        train_scenes=["scene"],
        width=16,
        depth=2,
        n_out=4,
        crop=16,
        batch=2,
        inner_steps=2,
        steps=2,
        val_every=2,
        levels=[[8, 4, "linear"], [4, 2, "linear"]],
        coord_cell=8,
        threads=1,
    )
    train_model(cfg, mpath / "batch-test.hsmodel", alias="batch-test")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HSICODEC_DATA_DIR", str(root / "userdata"))
        mp.setenv("HSICODEC_MODEL_PATH", str(mpath))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.delenv("HSICODEC_DEBUG", raising=False)
        reset_default_registry()
        yield root
    reset_default_registry()


@pytest.fixture(scope="module")
def client(model_env):
    with bm.open_client(workers=2, processes=False) as c:
        yield c


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_GOOD):
        cube = (np.cumsum(rng.normal(size=(16 + 4 * i, 20, 12)), axis=2) * 40 + 2000).astype(np.uint16)
        np.save(d / f"cube{i}.npy", cube)
    (d / "corrupt.npy").write_bytes(b"\x93NUMPY this is not an array")
    return d


OPTS = bm.BatchOptions(bpppb=1.0, model="batch-test", effort="fast")


def by_name(rows):
    return {Path(r["input"]).name: r for r in rows}


def test_plan_outputs_and_errors(tmp_path, inputs):
    jobs = bm.plan([str(inputs / "*.npy")], tmp_path / "out")
    assert [Path(j.src).name for j in jobs] == ["corrupt.npy"] + [f"cube{i}.npy" for i in range(N_GOOD)]
    assert all(Path(j.dst) == tmp_path / "out" / (Path(j.src).stem + ".hsim") and not j.skip for j in jobs)
    # the same file twice (two patterns) is one job; a literal name is a pattern too
    assert len(bm.plan([str(inputs / "cube1.npy"), str(inputs / "cube1.*")], tmp_path / "out")) == 1
    with pytest.raises(bm.BatchError, match="no files match"):
        bm.plan([str(inputs / "*.tif")], tmp_path / "out")
    (inputs / "cube1.tif").write_bytes(b"")  # same stem: both would write cube1.hsim
    with pytest.raises(bm.BatchError, match="both be written"):
        bm.plan([str(inputs / "cube1.*")], tmp_path / "out")
    assert bm.output_path(Path("a/b.hsim"), Path("o"), decompress=True) == Path("o/b.tif")
    assert bm.output_path(Path("a/b.hsim"), Path("o"), decompress=True, format="envi") == Path("o/b.hdr")


def test_corrupt_file_fails_alone_and_resume_skips_done_files(client, tmp_path, inputs):
    out = tmp_path / "out"
    seen = []
    rows = bm.batch([str(inputs / "*.npy")], out, OPTS, client=client, on_result=seen.append)
    assert len(seen) == N_GOOD + 1  # one callback per completed file
    rows = by_name(rows)
    bad = rows.pop("corrupt.npy")
    assert bad["status"] == "failed" and bad["error"] and "\n" not in bad["error"]
    assert "corrupt.npy" in bad["error"]
    assert not (out / "corrupt.hsim").exists()
    for _name, r in rows.items():
        assert r["status"] == "done", r
        assert 0 < r["bpppb"] <= 1.0 and np.isfinite(r["psnr"]) and r["psnr_measured"]
        assert r["seconds"] > 0 and Path(r["output"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == [f"cube{i}.hsim" for i in range(N_GOOD)]  # no temp files
    # the reported PSNR is the decoded file's against the source
    from hsicodec import decompress
    from hsicodec.metrics import psnr

    back, _ = decompress(out / "cube2.hsim")
    assert rows["cube2.npy"]["psnr"] == pytest.approx(psnr(np.load(inputs / "cube2.npy"), back))

    # rerun: the done files are skipped (not rewritten), the corrupt one is tried again
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    jobs = bm.plan([str(inputs / "*.npy")], out)
    assert {Path(j.src).name for j in jobs if not j.skip} == {"corrupt.npy"}
    rows2 = by_name(bm.batch([str(inputs / "*.npy")], out, OPTS, client=client))
    assert rows2["corrupt.npy"]["status"] == "failed"
    assert all(rows2[f"cube{i}.npy"]["status"] == "skipped" for i in range(N_GOOD))
    assert rows2["cube0.npy"]["bpppb"] == pytest.approx(rows["cube0.npy"]["bpppb"])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes

    # a newer source, or a damaged output, is redone; the rest stays skipped
    time.sleep(0.01)
    os.utime(inputs / "cube1.npy")
    data = (out / "cube3.hsim").read_bytes()
    (out / "cube3.hsim").write_bytes(data[:-7])
    todo = {Path(j.src).name for j in bm.plan([str(inputs / "cube*.npy")], out) if not j.skip}
    assert todo == {"cube1.npy", "cube3.npy"}

    # --force redoes everything
    rows3 = by_name(bm.batch([str(inputs / "cube*.npy")], out, OPTS, client=client, force=True))
    assert all(r["status"] == "done" for r in rows3.values()) and len(rows3) == N_GOOD
    assert all((out / f"cube{i}.hsim").stat().st_mtime_ns > mtimes[f"cube{i}.hsim"] for i in range(N_GOOD))
    assert (out / "cube3.hsim").read_bytes() == data  # same options: the same file


def test_decompress_batch(client, tmp_path, inputs):
    out = tmp_path / "out"
    bm.batch([str(inputs / "cube*.npy")], out, OPTS, client=client)
    back = tmp_path / "back"
    rows = by_name(bm.batch([str(out / "*.hsim")], back, bm.BatchOptions(decompress=True, format="npy"), client=client))
    assert all(r["status"] == "done" and r["psnr"] is None and r["bpppb"] > 0 for r in rows.values())
    for i in range(N_GOOD):
        a = np.load(back / f"cube{i}.npy")
        assert a.shape == np.load(inputs / f"cube{i}.npy").shape and a.dtype == np.uint16
    again = bm.batch([str(out / "*.hsim")], back, bm.BatchOptions(decompress=True, format="npy"), client=client)
    assert {r["status"] for r in again} == {"skipped"}


def test_cli_batch_on_worker_processes(model_env, tmp_path, inputs):
    """The CLI on a real LocalCluster (2 worker processes): JSON, exit code 1, one error line per failure."""
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli,
        [
            "batch",
            str(inputs / "*.npy"),
            str(out),
            "--bpppb",
            "1",
            "--model",
            "batch-test",
            "--effort",
            "fast",
            "--workers",
            "2",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["summary"] == {"done": N_GOOD, "skipped": 0, "failed": 1, "total": N_GOOD + 1}
    workers = {row["worker"] for row in doc["files"]}
    assert all(w.split(":")[-1] != str(os.getpid()) for w in workers)  # ran in other processes
    err = r.stderr.splitlines()
    assert len(err) == 2, r.stderr
    assert err[0].startswith("hsicodec: error: ") and "corrupt.npy" in err[0]
    assert err[1] == f"hsicodec: error: 1 of {N_GOOD + 1} file(s) failed"
    assert "Traceback" not in r.stderr

    # table output; everything up to date: no cluster needed, exit 0
    r = CliRunner().invoke(
        cli, ["batch", str(inputs / "cube*.npy"), str(out), "--model", "batch-test"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["FILE", "STATUS", "BPPPB", "PSNR", "dB", "TIME", "s"]
    assert all("skipped" in line for line in lines[1:-1]) and len(lines) == N_GOOD + 2
    assert lines[-1] == f"{N_GOOD} file(s): 0 done, {N_GOOD} skipped (up to date), 0 failed"


@pytest.mark.parametrize(
    "args",
    [
        ["--bpppb", "1", "--psnr", "30"],
        ["--decompress", "--bpppb", "1"],
        ["--format", "npy"],
        ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
    ],
)
def test_cli_usage_errors(model_env, tmp_path, inputs, args):
    r = CliRunner().invoke(cli, ["batch", str(inputs / "*.npy"), str(tmp_path / "o"), *args])
    assert r.exit_code == 2
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("hsicodec: error: ")


def test_no_matching_files_and_missing_dask(model_env, tmp_path, inputs, monkeypatch):
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "none*.tif"), str(tmp_path / "o")])
    assert r.exit_code == 1 and "no files match" in r.stderr and len(r.stderr.splitlines()) == 1
    monkeypatch.setitem(sys.modules, "distributed", None)
    r = CliRunner().invoke(cli, ["batch", str(inputs / "cube0.npy"), str(tmp_path / "o"), "--model", "batch-test"])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        "1 file(s): 1 to compress, 0 up to date",
        "hsicodec: error: batch needs dask and distributed: pip install 'hsicodec[dask]'",
    ]


# --------------------------------------------------------------------------- progress off a terminal, nodata PSNR

#: a log line of batch: "hsicodec: batch: [i/n] IN -> OUT: done, BPPPB bpppb[, PSNR dB], SECONDS s"
#: or "hsicodec: batch: [i/n] IN -> OUT: failed: ERROR"
BATCH_LINE = re.compile(
    r"^hsicodec: batch: \[(\d+)/(\d+)\] (\S+) -> (\S+): "
    r"(?:done, (\d[0-9.e-]*) bpppb(?:, (\d+\.\d\d|inf) dB)?, (\d+\.\d\d) s|failed: (.+))$"
)


@pytest.fixture
def cli_on_client(client, monkeypatch):
    """``hsicodec batch`` on the module's in-process cluster instead of a new LocalCluster."""

    @contextlib.contextmanager
    def reuse(scheduler=None, workers=None, processes=True):
        yield client

    monkeypatch.setattr(bm, "open_client", reuse)
    return lambda *args: CliRunner().invoke(cli, ["batch", *map(str, args)], catch_exceptions=False)


def test_cli_batch_logs_one_line_per_file_off_a_terminal(cli_on_client, tmp_path, inputs):
    out = tmp_path / "out"
    args = [inputs / "*.npy", out, "--bpppb", "1", "--model", "batch-test", "--effort", "fast"]
    r = cli_on_client(*args)
    assert r.exit_code == 1, r.output
    err = r.stderr.splitlines()
    assert err[0] == f"{N_GOOD + 1} file(s): {N_GOOD + 1} to compress, 0 up to date"
    found = [BATCH_LINE.match(line) for line in err[1 : N_GOOD + 2]]
    assert all(found), r.stderr
    assert [(m.group(1), m.group(2)) for m in found] == [(str(i), str(N_GOOD + 1)) for i in range(1, N_GOOD + 2)]
    by_input = {Path(m.group(3)).name: m for m in found}
    assert set(by_input) == {"corrupt.npy"} | {f"cube{i}.npy" for i in range(N_GOOD)}  # completion order
    bad = by_input.pop("corrupt.npy")
    assert bad.group(8) and "corrupt.npy" in bad.group(8) and Path(bad.group(4)) == out / "corrupt.hsim"
    rows = {Path(line.split()[0]).name: line.split() for line in r.stdout.splitlines()[1:-1]}
    for name, m in by_input.items():
        assert Path(m.group(4)) == out / name.replace(".npy", ".hsim") and m.group(8) is None
        assert 0 < float(m.group(5)) <= 1.0 and m.group(6) is not None
        assert rows[name][1] == "done" and rows[name][3] == m.group(6)  # the table's PSNR
    # then the errors, as before
    assert len(err) == N_GOOD + 4, r.stderr
    assert err[-2].startswith("hsicodec: error: ") and "corrupt.npy" in err[-2]
    assert err[-1] == f"hsicodec: error: 1 of {N_GOOD + 1} file(s) failed"

    # decompressing: a line per file too, without a PSNR
    r = cli_on_client(out / "*.hsim", tmp_path / "back", "--decompress", "--format", "npy")
    assert r.exit_code == 0, r.output
    found = [BATCH_LINE.match(line) for line in r.stderr.splitlines()[1:]]
    assert len(found) == N_GOOD and all(m and m.group(5) and m.group(6) is None for m in found), r.stderr

    # -q: errors only
    r = cli_on_client(*args, "--force", "-q")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines() == err[-2:]


def test_batch_psnr_with_nodata_is_compress_psnr(client, tmp_path):
    """A GeoTIFF with a nodata value: batch's PSNR is measured over the valid values, as compress reports it."""
    rasterio = pytest.importorskip("rasterio")
    from hsicodec.codec.api import compress_file, decompress
    from hsicodec.metrics import psnr

    rng = np.random.default_rng(3)
    cube = (np.cumsum(rng.normal(size=(20, 20, 6)), axis=2) * 300 + 20000).astype(np.uint16)
    cube[:5, :7, :] = 65535  # a nodata corner
    cube[12, 3:9, 2] = 65535  # and a few nodata values in one band
    src = tmp_path / "in" / "nodata.tif"
    src.parent.mkdir()
    profile = {"driver": "GTiff", "width": 20, "height": 20, "count": 6, "dtype": "uint16", "nodata": 65535}
    with rasterio.open(src, "w", transform=rasterio.Affine(1.0, 0.0, 0.0, 0.0, -1.0, 20.0), **profile) as f:
        f.write(np.moveaxis(cube, 2, 0))
    opts = bm.BatchOptions(bpppb=2.0, model="batch-test", effort="fast")
    stats = compress_file(src, tmp_path / "compress.hsim", bpppb=2.0, model="batch-test", effort="fast")
    (row,) = bm.batch([str(src)], tmp_path / "out", opts, client=client)
    assert row["status"] == "done" and row["psnr_measured"], row
    assert (tmp_path / "out" / "nodata.hsim").read_bytes() == (tmp_path / "compress.hsim").read_bytes()
    assert row["psnr"] == pytest.approx(stats["psnr"], abs=0.01)
    # the nodata value neither widens the peak nor counts in the MSE; over all values it would
    back, _ = decompress(tmp_path / "out" / "nodata.hsim")
    valid = cube != 65535
    assert np.array_equal(back[~valid], cube[~valid])  # nodata decodes exactly
    assert row["psnr"] == pytest.approx(psnr(cube[valid], back[valid]))
    assert psnr(cube, back) > stats["psnr"] + 5


def test_a_folder_input_stands_for_its_rasters(tmp_path):
    """`hsicodec batch in/ out/` used to fail with "no files match 'in'"."""
    from hsicodec.integrations.batch import BatchError, expand_inputs, plan

    (tmp_path / "in").mkdir()
    for name in ("a.npy", "b.tif", "notes.txt", "c.hsim"):
        (tmp_path / "in" / name).write_bytes(b"x")
    got = [p.name for p in expand_inputs([str(tmp_path / "in")], (".npy", ".tif"))]
    assert got == ["a.npy", "b.tif"]
    assert [Path(j.src).name for j in plan([str(tmp_path / "in")], tmp_path / "out")] == ["a.npy", "b.tif"]
    assert [Path(j.src).name for j in plan([str(tmp_path / "in")], tmp_path / "out", decompress=True)] == ["c.hsim"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="holds no"):
        expand_inputs([str(tmp_path / "empty")], (".npy",))
