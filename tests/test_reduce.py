"""Reduced-resolution reads (hsicodec.coding.reduce): ``decompress(..., reduce=n)`` of a coefficient-map file is
the estimate its coarse wavelet levels give (the 2^n block means of the image its low band synthesises,
hsicodec.layers.maps.reduced; tests/test_maps_reduced.py goes into it), and of other layers' files the mean of
every 2^n × 2^n block of the full decode; windows, band ranges, tiled files and nodata masks; and the preview
command built on it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import hsicodec
from hsicodec.codec import api as codec
from hsicodec.coding.reduce import aligned_window, block_all, block_mean, check_reduce, reduced_size
from hsicodec.data import sample_path
from hsicodec.errors import OptionError
from hsicodec.io.raster import GeoInfo
from hsicodec.layers.maps.coding import map_levels
from hsicodec.layers.maps.reduced import reduced_reference

MODEL = "hsi-grid-v1"
TRANSFORM = (30.0, 0.0, 500000.0, 0.0, -30.0, 4200000.0)


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    """A 45 × 38 crop of the bundled sample, lifted away from 0 so that no decoded value is clipped (the
    reduced image is the mean before the dtype cast, the full decode is cast pixel by pixel)."""
    x = np.load(sample_path())[:45, :38].astype(np.int32) + 3000
    return x.astype(np.uint16)


#: a map file's reduced read against :func:`_projection` of its full decode: the full decode's rounding
#: (|e| ≤ 0.5) through the projection (absolute row sums ≤ about 1.7 per axis), plus the read's own rounding
ROUNDING = 2.0


def _tiled_projection(full: np.ndarray, n: int, tile: int) -> np.ndarray:
    """:func:`_projection` tile by tile (tile sides multiples of 2^n), assembled."""
    f = 1 << n
    out = np.empty((reduced_size(full.shape[0], n), reduced_size(full.shape[1], n)) + full.shape[2:])
    for r0 in range(0, full.shape[0], tile):
        for c0 in range(0, full.shape[1], tile):
            part = full[r0 : r0 + tile, c0 : c0 + tile]
            p = reduced_reference(part, n, map_levels(part.shape[0], part.shape[1]))
            out[r0 // f : r0 // f + p.shape[0], c0 // f : c0 // f + p.shape[1]] = p
    return out


def _full_and_reduced(data: bytes, n: int, **kw):
    full, _ = hsicodec.decompress(data)
    red, geo = hsicodec.decompress(data, reduce=n, **kw)
    return full, red, geo


def test_block_helpers():
    a = np.arange(5 * 7, dtype=float).reshape(5, 7, 1)
    m = block_mean(a, 1)
    assert m.shape == (3, 4, 1)
    assert m[0, 0, 0] == np.mean(a[:2, :2]) and m[2, 3, 0] == a[4, 6, 0]  # a partial corner block: one pixel
    assert m[2, 0, 0] == np.mean(a[4, :2])
    mask = np.zeros((5, 7), bool)
    mask[:2, :2] = True
    mask[4, 6] = True
    assert block_all(mask, 1)[0, 0] and block_all(mask, 1)[2, 3] and not block_all(mask, 1)[0, 1]
    assert aligned_window((3, 5, 6, 2), (20, 20), 2) == ((0, 4, 12, 4), (0, 1, 3, 1))
    assert aligned_window((0, 0, 20, 19), (20, 19), 3) == ((0, 0, 20, 19), (0, 0, 3, 3))
    assert reduced_size(45, 3) == 6 and reduced_size(1, 5) == 1
    for bad in (-1, 17, 1.5, True, "2"):
        with pytest.raises(OptionError):
            check_reduce(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_map_layer_reduce_is_the_coarse_estimate_of_the_full_decode(cube, n):
    data = hsicodec.compress(cube, model=MODEL, bpppb=0.3, effort="fast")
    assert "maps" in hsicodec.file_info(data)["coding"]["layers"]  # the default layer here
    full, red, _ = _full_and_reduced(data, n)
    assert red.dtype == cube.dtype
    assert red.shape == (reduced_size(45, n), reduced_size(38, n), cube.shape[2])  # n = 6: past its 5 levels
    assert np.abs(red - reduced_reference(full, n, map_levels(45, 38))).max() <= ROUNDING
    # an estimate of the block means, not them: measured on this crop 36.6 / 28.2 / 25.5 dB PSNR against the
    # block means of the full decode for n = 1 / 2 / 3 (those means: 56 / 58 / 63 dB from the original's)
    if n <= 3:
        assert hsicodec.psnr(block_mean(full, n), red) > {1: 35.0, 2: 27.0, 3: 24.0}[n]


@pytest.mark.parametrize("kw", [dict(max_error=3), dict(bpppb=0.2, layer="network", effort="fast")])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_reduced_decode_is_the_block_mean_of_the_full_decode(cube, kw, n):
    """Layers that do not give their reduced part themselves (predictive, network): block means."""
    data = hsicodec.compress(cube, model=MODEL, **kw)
    full, red, _ = _full_and_reduced(data, n)
    assert red.dtype == cube.dtype
    assert red.shape == (reduced_size(45, n), reduced_size(38, n), cube.shape[2])
    # the full decode is rounded pixel by pixel, the reduced one after the mean: within half a unit and
    # the mean of the full decode's rounding (half a unit)
    assert np.abs(red.astype(float) - block_mean(full, n)).max() <= 1.0


@pytest.mark.parametrize("n", [1, 2])
def test_reduced_window_and_bands(cube, n):
    data = hsicodec.compress(cube, model=MODEL, bpppb=0.3, effort="fast")
    full, _ = hsicodec.decompress(data)
    win = (5, 7, 21, 13)
    red, _ = hsicodec.decompress(data, reduce=n, window=win, bands=(3, 9))
    _, (r0, c0, h, w) = aligned_window(win, cube.shape, n)
    expect = reduced_reference(full, n, map_levels(45, 38))[r0 : r0 + h, c0 : c0 + w, 3:9]  # the whole image's estimate
    assert red.shape == expect.shape
    assert np.abs(red - expect).max() <= ROUNDING


def test_reduced_geo_scales_the_transform(cube, tmp_path):
    geo = GeoInfo(transform=TRANSFORM, wavelengths=[float(v) for v in np.linspace(400, 2500, cube.shape[2])])
    data = hsicodec.compress(cube, model=MODEL, bpppb=0.3, effort="fast", geo=geo)
    _, g2 = hsicodec.decompress(data, reduce=2)
    assert g2.transform == (120.0, 0.0, 500000.0, 0.0, -120.0, 4200000.0)
    assert g2.wavelengths == geo.wavelengths
    _, gw = hsicodec.decompress(data, reduce=1, window=(5, 7, 10, 10))  # widened to (4, 6, ...)
    assert gw.transform == (60.0, 0.0, 500000.0 + 6 * 30, 0.0, -60.0, 4200000.0 - 4 * 30)


def test_reduced_nodata_blocks(cube):
    x = cube.copy()
    x[:4, :4, :] = 0  # a whole 4 × 4 block of nodata, and one masked pixel in another block
    x[10, 10, 5] = 0
    geo = GeoInfo(nodata=0)
    data = hsicodec.compress(x, model=MODEL, bpppb=0.3, effort="fast", geo=geo)
    red, _ = hsicodec.decompress(data, reduce=2)
    assert (red[0, 0] == 0).all()  # every value of the block is nodata: nodata
    assert red[2, 2, 5] != 0  # a block with some valid values: their reconstruction's mean


@pytest.mark.parametrize("n", [1, 3])
def test_reduced_tiled_file_matches_block_means(cube, tmp_path, n):
    src = tmp_path / "c.npy"
    np.save(src, cube)
    codec.compress_file(src, tmp_path / "t.hsim", tile=16, bpppb=0.5, effort="fast", model=MODEL)
    full, _ = hsicodec.decompress(tmp_path / "t.hsim")
    red, _ = hsicodec.decompress(tmp_path / "t.hsim", reduce=n)
    expect = _tiled_projection(full, n, 16)  # each tile reduced on its own; 13 × 6 tiles at the edges
    assert red.shape == expect.shape == block_mean(full, n).shape
    assert np.abs(red - expect).max() <= ROUNDING
    win = (17, 3, 20, 30)
    part, _ = hsicodec.decompress(tmp_path / "t.hsim", reduce=n, window=win)
    _, (r0, c0, h, w) = aligned_window(win, cube.shape, n)
    np.testing.assert_array_equal(part, red[r0 : r0 + h, c0 : c0 + w])
    with pytest.raises(OptionError, match="multiples of 32"):
        hsicodec.decompress(tmp_path / "t.hsim", reduce=5)  # 16-pixel tiles hold no whole 32-pixel block


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_preview_writes_a_true_colour_png(cube, tmp_path):
    import rasterio

    wl = [float(v) for v in np.linspace(400, 2500, cube.shape[2])]
    data = hsicodec.compress(cube, model=MODEL, bpppb=0.3, effort="fast", geo=GeoInfo(wavelengths=wl))
    src = tmp_path / "s.hsim"
    src.write_bytes(data)
    out = tmp_path / "s.png"
    run = [sys.executable, "-c", "from hsicodec.cli import main; main()", "preview", str(src), str(out)]
    p = subprocess.run([*run, "--reduce", "1", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    import json

    st = json.loads(p.stdout)
    expect = [int(np.argmin(np.abs(np.asarray(wl) - v))) for v in (640, 550, 460)]
    assert st["bands"] == expect and st["reduce"] == 1 and st["size"] == [23, 19]
    with rasterio.open(out) as ds:
        assert (ds.count, ds.height, ds.width, ds.dtypes[0]) == (3, 23, 19, "uint8")
        img = ds.read()
    assert img.min() == 0 and img.max() == 255  # stretched
    assert not list(tmp_path.glob("*.aux.xml"))
    p = subprocess.run([*run], capture_output=True, text=True)  # exists: refused, the file kept
    assert p.returncode == 1 and "exists" in p.stderr and p.stderr.count("\n") == 1
    p = subprocess.run([*run, "-f", "--rgb", "1,2,999"], capture_output=True, text=True)
    assert p.returncode == 1 and "three band indices" in p.stderr
    assert out.exists()


@pytest.mark.parametrize("tile", [0, 16])
def test_cli_decompress_reduce_writes_a_scaled_geotiff(cube, tmp_path, tile):
    import rasterio

    src = tmp_path / "s.tif"
    hsicodec.write_cube(src, cube, GeoInfo(crs_wkt="EPSG:32611", transform=TRANSFORM))
    codec.compress_file(src, tmp_path / "s.hsim", tile=tile, bpppb=0.5, effort="fast", model=MODEL)
    run = [sys.executable, "-c", "from hsicodec.cli import main; main()", "decompress", str(tmp_path / "s.hsim")]
    p = subprocess.run([*run, str(tmp_path / "o.tif"), "--reduce", "2", "-q"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    full, _ = hsicodec.decompress(tmp_path / "s.hsim")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert (ds.height, ds.width, ds.count) == (12, 10, cube.shape[2])
        assert tuple(ds.transform)[:6] == (120.0, 0.0, 500000.0, 0.0, -120.0, 4200000.0)
        got = np.moveaxis(ds.read(), 0, 2)
    np.testing.assert_array_equal(got, hsicodec.decompress(tmp_path / "s.hsim", reduce=2)[0])
    expect = _tiled_projection(full, 2, tile) if tile else reduced_reference(full, 2, map_levels(45, 38))
    assert np.abs(got - expect).max() <= ROUNDING
