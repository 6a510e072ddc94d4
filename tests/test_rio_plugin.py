"""``rio hsim``: the rasterio CLI plugin (hsicodec.integrations.rio_plugin), run through click's CliRunner."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result
from rasterio.windows import Window

import hsicodec
from hsicodec.integrations.rio_plugin import hsim, parse_bidx
from hsicodec.io.raster import GeoInfo, write_cube

WKT = 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'  # noqa: E501
FAST = ["--co", "BPPPB=2", "--co", "effort=fast", "--co", "LAYER=maps"]


def _cube(h: int = 40, w: int = 48, c: int = 8) -> np.ndarray:
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.stack([np.sin(rr / (5 + 2 * k) + k) * np.cos(cc / (7 + k)) + 1.2 for k in range(3)], -1)
    spectra = np.stack([np.linspace(0.3 + 0.2 * k, 1.0 - 0.1 * k, c) for k in range(3)])
    noise = np.random.default_rng(1).normal(0, 4, (h, w, c))
    return np.clip(np.rint(maps @ spectra * 1500 + noise + 100), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("rio") / "in.tif"
    geo = GeoInfo(
        crs_wkt=WKT,
        transform=(0.001, 0.0, 10.0, 0.0, -0.001, 50.0),
        band_names=[f"band {i + 1}" for i in range(8)],
        wavelengths=[500.0 + 25 * i for i in range(8)],
        wavelength_units="nm",
    )
    write_cube(p, _cube(), geo)
    return p


def run(*args: str | Path | float) -> Result:
    return CliRunner().invoke(hsim, [str(a) for a in args])


@pytest.fixture(scope="module")
def hsim_file(src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rio-out") / "scene.hsim"
    r = run("compress", src, out, *FAST)
    assert r.exit_code == 0, r.output
    return out


def test_compress_writes_a_file_and_says_so(src, tmp_path) -> None:
    out = tmp_path / "a.hsim"
    r = run("compress", src, out, *FAST)
    assert r.exit_code == 0, r.output
    assert str(out) in r.output and "bpppb" in r.output
    with hsicodec.open(out) as ds, rasterio.open(src) as ref:
        assert (ds.count, ds.crs, ds.transform, ds.descriptions) == (8, ref.crs, ref.transform, ref.descriptions)
    quiet = tmp_path / "q.hsim"
    r = run("compress", src, quiet, *FAST, "-q")
    assert r.exit_code == 0 and r.output == "" and quiet.exists()


def test_an_existing_output_needs_overwrite(src, hsim_file, tmp_path) -> None:
    out = tmp_path / "x.tif"
    out.write_bytes(b"keep me")
    for args in (("compress", src, tmp_path / "y.hsim"), ("decompress", hsim_file, out)):
        Path(args[2]).write_bytes(b"keep me")
        r = run(*args, *(FAST if args[0] == "compress" else ()))
        assert r.exit_code == 1 and "exists: use --overwrite" in r.output and len(r.output.strip().splitlines()) == 1
        assert Path(args[2]).read_bytes() == b"keep me"
        r = run(*args, *(FAST if args[0] == "compress" else ()), "--overwrite")
        assert r.exit_code == 0, r.output
        assert Path(args[2]).read_bytes() != b"keep me"


@pytest.mark.parametrize("bidx", [("-b", "5", "-b", "2"), ("-b", "5,2"), ("--bidx", "5", "--bidx", "2")], ids=str)
def test_decompress_band_lists_in_any_order(hsim_file, tmp_path, bidx) -> None:
    out = tmp_path / "sel.tif"
    r = run("decompress", hsim_file, out, *bidx, "-q")
    assert r.exit_code == 0 and r.output == "", r.output
    with rasterio.open(out) as got, hsicodec.open(hsim_file) as ds:
        np.testing.assert_array_equal(got.read(), ds.read([5, 2]))
        assert got.descriptions == ("band 5", "band 2")
        assert got.tags(1)["wavelength"] == repr(600.0) and got.tags(2)["wavelength"] == repr(525.0)
        assert (got.crs, got.transform) == (ds.crs, ds.transform)


def test_decompress_a_band_range_and_bounds(hsim_file, tmp_path) -> None:
    out = tmp_path / "range.tif"
    with hsicodec.open(hsim_file) as ds:
        bounds = ds.window_bounds(Window(8, 4, 20, 16))
        want = ds.read([3, 4, 5, 6], window=Window(8, 4, 20, 16))
        full = ds.read()
    r = run("decompress", hsim_file, out, "-b", "3..6", "--bounds", *bounds)
    assert r.exit_code == 0, r.output
    assert "16x20x4" in r.output
    with rasterio.open(out) as got:
        np.testing.assert_array_equal(got.read(), want)
        assert got.bounds == pytest.approx(bounds)
    whole = tmp_path / "whole.npy"
    assert run("decompress", hsim_file, whole, "-f", "NPY").exit_code == 0
    np.testing.assert_array_equal(np.load(whole).transpose(2, 0, 1), full)


def test_creation_options_of_decompress(hsim_file, tmp_path) -> None:
    out = tmp_path / "deflate.tif"
    r = run("decompress", hsim_file, out, "--co", "compress=deflate", "-b", "1")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as got, hsicodec.open(hsim_file) as ds:
        assert got.compression.name.lower() == "deflate" and got.count == 1
        np.testing.assert_array_equal(got.read(1), ds.read(1))
    r = run("decompress", hsim_file, tmp_path / "b.tif", "--co", "TILED=YES")
    assert r.exit_code == 2 and "TILED not supported" in r.output and "COMPRESS" in r.output


def test_creation_options_of_compress(src, tmp_path) -> None:
    out = tmp_path / "tiled.hsim"
    r = run("compress", src, out, "--co", "lossless=yes", "--co", "TILE=16", "-b", "2..4", "-b", "8")
    assert r.exit_code == 0, r.output
    info = hsicodec.file_info(out)
    assert info["tiles"]["size"] == [16, 16] and info["shape"] == [40, 48, 4]
    with hsicodec.open(out) as ds, rasterio.open(src) as ref:
        assert ds.descriptions == ("band 2", "band 3", "band 4", "band 8")
        assert ds.tags(4)["wavelength"] == repr(675.0)
        np.testing.assert_array_equal(ds.read(), ref.read([2, 3, 4, 8]))
    lossless = tmp_path / "lossless.hsim"
    r = run("compress", src, lossless, "--co", "MAX_ERROR=0", "--co", "NUM_THREADS=ALL_CPUS")
    assert r.exit_code == 0, r.output
    assert "tiles" not in hsicodec.file_info(lossless)
    with hsicodec.open(lossless) as ds, rasterio.open(src) as ref:
        np.testing.assert_array_equal(ds.read(), ref.read())
    for bad, text in (
        (("--co", "QUALITY=9"), "QUALITY not supported"),
        (("--co", "BPPPB=lots"), "BPPPB"),
        (("--co", "BPPPB=1", "--co", "PSNR=40"), "exclude each other"),
        (("--co", "NOEQUALS"), "KEY=VALUE"),
        (("-b", "9"), "band 9 does not exist"),
        (("-b", "0"), "band 0 does not exist"),
        (("-b", "two"), "not a band index"),
    ):
        r = run("compress", src, tmp_path / "bad.hsim", *bad)
        assert r.exit_code == 2 and text in r.output, (bad, r.output)
        assert not (tmp_path / "bad.hsim").exists()


def test_hsicodec_errors_are_one_line(hsim_file, tmp_path) -> None:
    broken = tmp_path / "broken.hsim"
    data = bytearray(hsim_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    r = run("decompress", broken, tmp_path / "out.tif")
    assert r.exit_code == 1 and "checksum mismatch" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.tif").exists()
    r = run("info", tmp_path / "missing.hsim")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and "missing.hsim" in r.output
    r = run("decompress", hsim_file, tmp_path / "o.tif", "--bounds", "0", "0", "1", "1")
    assert r.exit_code == 1 and "do not overlap" in r.output


def test_info_prints_rio_style_json(hsim_file) -> None:
    r = run("info", hsim_file, "--indent", "2")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    with hsicodec.open(hsim_file) as ds:
        assert info["count"] == 8 and info["dtype"] == "uint16" and info["crs"] == "EPSG:4326"
        assert info["transform"] == list(ds.transform) and info["bounds"] == pytest.approx(list(ds.bounds))
        assert info["descriptions"] == [f"band {i + 1}" for i in range(8)] and info["overviews"] == ds.overviews(1)
    assert info["driver"] == "HSIM" and info["hsim"]["file_bytes"] == hsim_file.stat().st_size
    assert info["hsim"]["shape"] == [40, 48, 8]


def test_parse_bidx() -> None:
    assert parse_bidx(["5", "9"]) == [5, 9] and parse_bidx(["5,9", "1..3"]) == [5, 9, 1, 2, 3]
    assert parse_bidx([]) is None and parse_bidx([" 2 , 4 "], 4) == [2, 4]


def test_the_rio_entry_point_names_the_group() -> None:
    """Passes once the package is installed with this pyproject.toml (rasterio finds plugins this way)."""
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="rasterio.rio_plugins")}
    assert "hsim" in eps and eps["hsim"].value == "hsicodec.integrations.rio_plugin:hsim"
    assert eps["hsim"].load() is hsim
