"""GDAL and rio habits of the command line (issue #22, point 6): ``decompress --bounds`` in map coordinates,
``--bands N``, tiled DEFLATE GeoTIFF output with a predictor and ``--co`` creation options (tiled .hsim files
too), and ``info`` on any raster compress reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.crs import CRS

import hsicodec
from hsicodec.cli.main import cli
from hsicodec.codec import api
from hsicodec.errors import OptionError
from hsicodec.io.geo import GeoInfo
from hsicodec.io.geotiff import parse_creation_options
from hsicodec.io.raster import open_raster_writer, read_cube, write_cube

ROWS, COLS, BANDS = 300, 280, 8
X0, Y0, PIX = 500000.0, 4000000.0, 30.0


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_proc(*args: object) -> subprocess.CompletedProcess:
    """``python -m hsicodec.cli``: the real exit code and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "hsicodec.cli", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HSICODEC_DEBUG": ""},
    )


def scene_cube(rows: int = ROWS, cols: int = COLS, bands: int = BANDS) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:rows, 0:cols]
    cube = np.stack([1000 + 500 * np.sin(x / 17 + b / 3) + 300 * np.cos(y / 19 - b / 2) for b in range(bands)], -1)
    return np.ascontiguousarray((cube + rng.normal(0, 5, cube.shape)).astype(np.uint16))


GEO = GeoInfo(
    crs_wkt=CRS.from_epsg(32611).to_wkt(),
    transform=(PIX, 0.0, X0, 0.0, -PIX, Y0),
    nodata=0,
    band_names=[f"B{i}" for i in range(BANDS)],
    wavelengths=[400.0 + 10 * i for i in range(BANDS)],
    wavelength_units="nm",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A georeferenced GeoTIFF scene, its default .hsim and a tiled .hsim of it (128 x 128 tiles)."""
    d = tmp_path_factory.mktemp("gis")
    tif = d / "scene.tif"
    write_cube(tif, scene_cube(), GEO)
    for name, extra in (("scene.hsim", ()), ("tiled.hsim", ("--tile", "128"))):
        r = run("compress", tif, d / name, "--bpppb", "0.3", "--effort", "fast", *extra)
        assert r.exit_code == 0, r.output
    return {"dir": d, "tif": tif, "hsim": d / "scene.hsim", "tiled": d / "tiled.hsim"}


def layout(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            st = ds.tags(ns="IMAGE_STRUCTURE")
            return {
                "block": ds.block_shapes[0],
                "tiled": bool(ds.profile.get("tiled")),
                "compress": (st.get("COMPRESSION") or "NONE").upper(),
                "predictor": st.get("PREDICTOR"),
                "crs": ds.crs,
                "transform": tuple(ds.transform)[:6],
                "nodata": ds.nodata,
                "shape": (ds.height, ds.width, ds.count),
            }


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hsicodec: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# --------------------------------------------------------------------------- GeoTIFF layout and --co


@pytest.mark.parametrize("which", ["hsim", "tiled"])
def test_geotiff_output_is_tiled_deflate_with_predictor_and_keeps_geo(files, tmp_path, which):
    out = tmp_path / "out.tif"
    r = run("decompress", files[which], out)
    assert r.exit_code == 0, r.output
    lay = layout(out)
    assert lay["block"] == (256, 256) and lay["tiled"]
    assert lay["compress"] == "DEFLATE" and lay["predictor"] == "2"
    cube, geo = read_cube(out)
    assert cube.shape == (ROWS, COLS, BANDS)
    assert geo.crs_wkt == CRS.from_epsg(32611).to_wkt() and geo.transform == GEO.transform
    assert geo.nodata == 0 and geo.wavelengths == GEO.wavelengths and geo.band_names == GEO.band_names
    assert geo.wavelength_units == "nm"


@pytest.mark.parametrize("which", ["hsim", "tiled"])
def test_creation_options_reach_gdal(files, tmp_path, which):
    out = tmp_path / "zstd.tif"
    r = run("decompress", files[which], out, "--co", "COMPRESS=ZSTD", "--co", "tiled=no", "--co", "ZSTD_LEVEL=5")
    assert r.exit_code == 0, r.output
    lay = layout(out)
    assert lay["compress"] == "ZSTD" and not lay["tiled"] and lay["block"][1] == COLS
    assert lay["predictor"] == "2" and lay["transform"] == GEO.transform
    out2 = tmp_path / "plain.tif"
    assert run("decompress", files[which], out2, "--co", "COMPRESS=NONE").exit_code == 0
    assert layout(out2)["compress"] == "NONE" and layout(out2)["block"] == (256, 256)
    a, _ = read_cube(out)
    b, _ = read_cube(out2)
    np.testing.assert_array_equal(a, b)


def test_float_output_uses_the_floating_point_predictor_and_small_images_strips(tmp_path):
    cube = np.random.default_rng(2).normal(0.3, 0.01, (40, 30, 5)).astype(np.float32)
    out = tmp_path / "f.tif"
    write_cube(out, cube)
    lay = layout(out)
    assert lay["compress"] == "DEFLATE" and lay["predictor"] == "3"
    assert not lay["tiled"] and lay["block"] == (40, 30)  # one band-interleaved strip per band
    np.testing.assert_array_equal(read_cube(out)[0], cube)


def test_streaming_writer_honours_creation_options(tmp_path):
    cube = scene_cube(64, 48, 3)
    out = tmp_path / "s.tif"
    with open_raster_writer(out, cube.shape, cube.dtype, GeoInfo(), creation_options=["COMPRESS=LZW"]) as w:
        w.write(0, 0, cube[:32])
        w.write(32, 0, cube[32:])
    assert layout(out)["compress"] == "LZW"
    np.testing.assert_array_equal(read_cube(out)[0], cube)
    with pytest.raises(OptionError, match="GeoTIFF output only"):
        with open_raster_writer(tmp_path / "s.npy", cube.shape, cube.dtype, creation_options={"COMPRESS": "LZW"}):
            pass
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize(
    "items,match",
    [
        (["COMPRESS"], "expected KEY=VALUE"),
        (["=ZSTD"], "expected KEY=VALUE"),
        (["FOO=1"], "not a GeoTIFF creation option"),
        (["COMPRESS=ZIPPY"], "unknown compression"),
        (["TILED=maybe"], "YES or NO"),
        (["PREDICTOR=7"], "expected 1"),
        (["COMPRESS=LZW", "compress=ZSTD"], "given twice"),
    ],
)
def test_bad_creation_options_are_refused(items, match):
    with pytest.raises(OptionError, match=match):
        parse_creation_options(items)


@pytest.mark.parametrize(
    "args,out,match",
    [
        (("--co", "COMPRESS"), "bad.tif", "expected KEY=VALUE"),
        (("--co", "FOO=BAR"), "bad.tif", "not a GeoTIFF creation option"),
        (("--co", "COMPRESS=ZSTD"), "bad.npy", "GeoTIFF output only"),
        (("--bounds", "0", "0", "10", "10"), "bad.tif", "do not overlap the image"),
        (("--bounds", "500100", "3995000", "500000", "3999000"), "bad.tif", "LEFT < RIGHT"),
        (("--bounds", "500100", "3995000", "501000", "3999000", "--window", "0,0,1,1"), "bad.tif", "exclusive"),
        (("--bands", "8"), "bad.tif", "band"),
    ],
)
def test_decompress_errors_are_one_line_and_leave_no_output(files, tmp_path, args, out, match):
    r = run_proc("decompress", files["hsim"], tmp_path / out, *args)
    assert match in one_error_line(r)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- --bounds and --bands N


def test_bounds_is_the_outward_rounded_pixel_window(files):
    header = hsicodec.HsimReader(files["hsim"]).header
    # pixel edges: col = (x - X0) / 30, row = (Y0 - y) / 30; 3.5 .. 20.2 cols, 10.1 .. 40.9 rows
    bounds = (X0 + 3.5 * PIX, Y0 - 40.9 * PIX, X0 + 20.2 * PIX, Y0 - 10.1 * PIX)
    assert api.bounds_window(header, bounds) == (10, 3, 31, 18)
    exact = (X0 + 3 * PIX, Y0 - 41 * PIX, X0 + 21 * PIX, Y0 - 10 * PIX)  # on pixel edges: no extra pixel
    assert api.bounds_window(header, exact) == (10, 3, 31, 18)
    beyond = (X0 - 1e6, Y0 - 1e6, X0 + 1e6, Y0 + 1e6)  # clipped to the image
    assert api.bounds_window(header, beyond) == (0, 0, ROWS, COLS)


@pytest.mark.parametrize("which", ["hsim", "tiled"])
def test_decompress_bounds_equals_the_window_and_moves_the_transform(files, tmp_path, which):
    bounds = [X0 + 100.5 * PIX, Y0 - 200.2 * PIX, X0 + 140.1 * PIX, Y0 - 120.7 * PIX]
    a, b = tmp_path / "bounds.tif", tmp_path / "window.tif"
    r = run("decompress", files[which], a, "--bounds", *bounds, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["window"] == [120, 100, 81, 41]
    assert run("decompress", files[which], b, "--window", "120,100,81,41").exit_code == 0
    got, geo = read_cube(a)
    want, wgeo = read_cube(b)
    np.testing.assert_array_equal(got, want)
    assert geo == wgeo and geo.transform == (PIX, 0.0, X0 + 100 * PIX, 0.0, -PIX, Y0 - 120 * PIX)
    full, _ = hsicodec.decompress(files[which])
    np.testing.assert_array_equal(got, full[120:201, 100:141])


def test_bounds_needs_a_georeferenced_file(tmp_path):
    np.save(tmp_path / "c.npy", scene_cube(20, 20, 3))
    assert run("compress", tmp_path / "c.npy", tmp_path / "c.hsim", "--bpppb", "1", "--effort", "fast").exit_code == 0
    r = run_proc("decompress", tmp_path / "c.hsim", tmp_path / "c.tif", "--bounds", "0", "0", "5", "5")
    assert "no geo transform" in one_error_line(r)
    assert not (tmp_path / "c.tif").exists()


def test_bands_takes_one_band(files, tmp_path):
    out = tmp_path / "b5.tif"
    r = run("decompress", files["hsim"], out, "--bands", "5")
    assert r.exit_code == 0, r.output
    got, geo = read_cube(out)
    full, _ = hsicodec.decompress(files["hsim"])
    assert got.shape == (ROWS, COLS, 1)
    np.testing.assert_array_equal(got[:, :, 0], full[:, :, 5])
    assert geo.wavelengths == [450.0] and geo.band_names == ["B5"]


# --------------------------------------------------------------------------- info on rasters


def test_info_on_a_geotiff_measures_the_default_compress(files):
    r = run("info", files["tif"], "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["shape"] == [ROWS, COLS, BANDS] and d["dtype"] == "uint16" and d["format"] == "gtiff"
    assert d["crs"] == CRS.from_epsg(32611).to_wkt() and d["transform"] == list(GEO.transform)
    assert d["bounds"] == [X0, Y0 - ROWS * PIX, X0 + COLS * PIX, Y0]
    assert d["nodata"] == 0 and d["wavelengths"] == GEO.wavelengths
    dc = d["default_compress"]
    assert dc["measured"] and dc["target_bpppb"] == 0.05
    cube, geo = read_cube(files["tif"])
    assert dc["bytes"] == len(hsicodec.compress(cube, geo=geo))  # what a default compress writes
    text = run("info", files["tif"]).stdout
    assert "crs: PROJCS" in text and "bounds: 500000 3991000 508400 4000000" in text
    assert f"default compress: {dc['bytes']:,} bytes" in text and "wavelengths: 400 to 470 nm (8 bands)" in text


def test_info_on_npy_envi_and_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    cube = scene_cube(12, 10, 4)
    np.save(tmp_path / "c.npy", cube)
    write_cube(tmp_path / "e.img", cube, GEO.subset(slice(0, 12), slice(0, 10), slice(0, 4)), format="envi")
    scipy_io.savemat(tmp_path / "m.mat", {"cube": cube})
    for name, fmt in (("c.npy", "npy"), ("e.hdr", "envi"), ("m.mat", "mat")):
        r = run("info", tmp_path / name, "--json")
        assert r.exit_code == 0, r.output
        d = json.loads(r.stdout)
        assert d["shape"] == [12, 10, 4] and d["dtype"] == "uint16" and d["format"] == fmt
        assert d["default_compress"]["measured"]
        assert d["default_compress"]["target_fallback"] == "smallest file"  # 480 values: 0.05 bpppb is 3 bytes
        if fmt == "envi":
            assert d["transform"] == list(GEO.transform) and d["wavelengths"] == GEO.wavelengths[:4]
        else:
            assert d["crs"] is None and d["transform"] is None and d["bounds"] is None
    assert "not reachable: smallest file" in run("info", tmp_path / "c.npy").stdout


def test_info_does_not_compress_big_rasters_or_when_told(files, monkeypatch):
    monkeypatch.setattr(api, "INFO_ESTIMATE_VALUES", 1000)

    def boom(*a, **k):
        raise AssertionError("info read the pixels")

    monkeypatch.setattr(api, "read_cube", boom)
    for args in ((), ("--no-estimate",)):
        r = run("info", files["tif"], "--json", *args)
        assert r.exit_code == 0, r.output
        dc = json.loads(r.stdout)["default_compress"]
        assert not dc["measured"] and dc["target_bpppb"] == 0.05 and dc["reason"]
    assert "not measured" in run("info", files["tif"]).stdout


def test_info_still_describes_hsim_files(files):
    d = json.loads(run("info", files["hsim"], "--json").stdout)
    assert d["format_version"] and d["shape"] == [ROWS, COLS, BANDS] and "default_compress" not in d


def test_info_on_a_missing_or_unreadable_file_is_one_line(tmp_path):
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    assert "junk.tif" in one_error_line(run_proc("info", tmp_path / "junk.tif"))
    assert "nothing.tif" in one_error_line(run_proc("info", tmp_path / "nothing.tif"))
