"""hsicodec.open: a rasterio-style dataset over `.hsim` files, checked against rasterio.open of the GeoTIFF
that hsicodec.decompress_file writes from the same file (metadata, pixels, windows, band lists, out_shape)."""

from __future__ import annotations

import builtins
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

import hsicodec
from hsicodec.codec import api as codec_api
from hsicodec.errors import OptionError
from hsicodec.integrations.dataset import HsimDataset, open_dataset
from hsicodec.io.raster import GeoInfo, write_cube

WKT = (
    'PROJCS["WGS 84 / UTM zone 11N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-117],PARAMETER["scale_factor",0.9996],'
    'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32611"]]'
)
ROWS, COLS, BANDS, TILE = 80, 96, 12, 32
FAST: dict[str, Any] = dict(bpppb=2.0, effort="fast", layer="maps")


def smooth_cube(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A low-rank mixture of smooth abundance maps plus noise, uint16."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.stack([np.sin(rr / (7 + 3 * k) + k) * np.cos(cc / (9 + 2 * k) - k) + 1.2 for k in range(3)], -1)
    spectra = np.stack([np.linspace(0.2 + 0.2 * k, 1.0 - 0.1 * k, c) for k in range(3)])
    cube = maps @ spectra * 1500 + rng.normal(0, 5, (h, w, c)) + 200
    return np.clip(np.rint(cube), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{"untiled" | "tiled": (.hsim, the GeoTIFF decompress_file writes from it)}; nodata 0 on a few pixels."""
    d = tmp_path_factory.mktemp("dataset")
    cube = smooth_cube(ROWS, COLS, BANDS)
    cube[5:9, 60:70] = 0
    geo = GeoInfo(
        crs_wkt=WKT,
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        nodata=0,
        wavelengths=[400.0 + 50 * i for i in range(BANDS)],
        fwhm=[10.0] * BANDS,
        band_names=[f"B{i}" for i in range(BANDS)],
        wavelength_units="Nanometers",
        units="DN",
    )
    src = d / "in.tif"
    write_cube(src, cube, geo)
    out = {}
    for name, tile in (("untiled", 0), ("tiled", TILE)):
        h = d / f"{name}.hsim"
        hsicodec.compress_file(src, h, tile=tile, **FAST)
        tif = d / f"{name}.tif"
        hsicodec.decompress_file(h, tif)
        out[name] = (h, tif)
    return out


@pytest.fixture(params=["untiled", "tiled"])
def pair(request, files):
    h, tif = files[request.param]
    with hsicodec.open(h) as ds, rasterio.open(tif) as ref:
        yield ds, ref


def test_open_is_exported_without_shadowing_builtins() -> None:
    assert hsicodec.open is open_dataset and "open" in hsicodec.__all__
    assert builtins.open is open and not isinstance(open, type(open_dataset))
    assert "RemoteError" in hsicodec.__all__


def test_metadata_matches_rasterio(pair) -> None:
    ds, ref = pair
    for key in ("count", "width", "height", "shape", "dtypes", "crs", "transform", "res", "nodata", "nodatavals"):
        assert getattr(ds, key) == getattr(ref, key), key
    assert tuple(ds.bounds) == pytest.approx(tuple(ref.bounds))
    assert ds.descriptions == ref.descriptions == tuple(f"B{i}" for i in range(BANDS))
    assert ds.units == ref.units and ds.indexes == ref.indexes
    assert ds.tags() == ref.tags()
    for b in (1, 7, BANDS):
        assert ds.tags(b) == ref.tags(b) == {"wavelength": repr(400.0 + 50 * (b - 1)), "fwhm": "10.0"}
        assert ds.tags(b, ns="IMAGERY") == ref.tags(b, ns="IMAGERY")
        assert ds.tag_namespaces(b) == ref.tag_namespaces(b) == ["IMAGERY"]
    meta = dict(ref.meta, driver="HSIM")
    assert ds.meta == meta
    prof = ds.profile
    assert {k: prof[k] for k in meta} == meta and prof["tiled"] == (ds.grid is not None)
    assert ds.driver == "HSIM" and ds.mode == "r" and not ds.closed and ds.name.endswith(".hsim")
    assert ds.file_size == Path(ds.name).stat().st_size and ds.format_version[0] == 1


def test_coordinates_match_rasterio(pair) -> None:
    ds, ref = pair
    for x, y in ((500100.0, 4099900.0), (501234.5, 4098765.4), (500000.0, 4100000.0)):
        assert ds.index(x, y) == ref.index(x, y)
    for r, c in ((0, 0), (3, 7), (79, 95)):
        assert ds.xy(r, c) == ref.xy(r, c)
        assert ds.xy(r, c, offset="ul") == ref.xy(r, c, offset="ul")
    box = (500300.0, 4098500.0, 501500.0, 4099700.0)
    assert ds.window(*box) == ref.window(*box)
    win = Window(8, 16, 40, 24)
    assert ds.window_transform(win) == ref.window_transform(win)
    assert ds.window_bounds(win) == pytest.approx(ref.window_bounds(win))


WINDOWS = [None, Window(0, 0, COLS, ROWS), Window(3, 5, 40, 21), ((30, 70), (50, 96)), ((0, 1), (95, 96))]
INDEXES = [None, 4, [5, 2, 9], [3, 3], [12, 1], (7,)]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("indexes", INDEXES, ids=str)
def test_pixels_match_rasterio(pair, window, indexes) -> None:
    ds, ref = pair
    got, want = ds.read(indexes, window=window), ref.read(indexes, window=window)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_a_window_from_bounds_reads_what_rasterio_reads(pair) -> None:
    ds, ref = pair
    box = (500300.0, 4098500.0, 501500.0, 4099700.0)
    np.testing.assert_array_equal(ds.read([1, 2], window=ds.window(*box)), ref.read([1, 2], window=ref.window(*box)))


@pytest.mark.parametrize(
    "window, shape",
    [
        (None, (ROWS * 2, COLS * 2)),
        (None, (100, 97)),
        (Window(3, 5, 40, 21), (30, 50)),
        (Window(10, 10, 30, 30), (17, 23)),
    ],
    ids=str,
)
def test_out_shape_without_a_reduced_level_is_rasterio_nearest(pair, window, shape) -> None:
    """Enlarging, or reducing less than 2x: nearest resampling of full-resolution pixels, as rasterio does."""
    ds, ref = pair
    got = ds.read([2, 6], window=window, out_shape=shape)
    np.testing.assert_array_equal(got, ref.read([2, 6], window=window, out_shape=(2, *shape)))
    np.testing.assert_array_equal(ds.read(6, window=window, out_shape=shape), got[1])


@pytest.fixture
def decodes(monkeypatch):
    """The reduce level of every decode the dataset asks for."""
    seen: list[int] = []
    real = codec_api.decompress

    def spy(source, **kwargs):
        seen.append(kwargs.get("reduce", 0))
        return real(source, **kwargs)

    monkeypatch.setattr(codec_api, "decompress", spy)
    return seen


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_power_of_two_reduction_reads_the_reduced_level(files, decodes, n) -> None:
    for name in ("untiled", "tiled"):
        path = files[name][0]
        with hsicodec.open(path) as ds:
            shape = (math.ceil(ROWS / 2**n), math.ceil(COLS / 2**n))
            got = ds.read([3, 1], out_shape=shape)
            assert decodes[-1] == n
            level, _ = hsicodec.decompress(path, reduce=n)
            np.testing.assert_array_equal(got, level[:, :, [2, 0]].transpose(2, 0, 1))
            full = ds.read([3, 1]).astype(np.float64)
            f = 2**n
            means = np.add.reduceat(np.add.reduceat(full, np.arange(0, ROWS, f), 1), np.arange(0, COLS, f), 2)
            counts = np.outer(np.minimum(np.arange(0, ROWS, f) + f, ROWS) - np.arange(0, ROWS, f),
                              np.minimum(np.arange(0, COLS, f) + f, COLS) - np.arange(0, COLS, f))  # fmt: skip
            valid = np.add.reduceat(np.add.reduceat((full == 0).astype(int), np.arange(0, ROWS, f), 1),
                                    np.arange(0, COLS, f), 2) == 0  # fmt: skip
            assert valid.mean() > 0.9  # blocks without nodata: estimates of the means of the decoded pixels (a map
            # file's level comes from its coarse wavelet levels, hsicodec.layers.maps.reduced), measured for n = 1,
            # 2, 3: 61.3 / 51.0 / 41.7 dB untiled, 58.0 / 44.4 / 33.3 dB in 32² tiles (each tile's edges cost)
            floor = {"untiled": {1: 58, 2: 48, 3: 39}, "tiled": {1: 55, 2: 41, 3: 30}}[name][n]
            assert hsicodec.psnr((means / counts)[valid], got[valid]) > floor
            win = Window(32, 32, 64, 32)  # aligned on the blocks: the window's part of the level
            sub = ds.read(2, window=win, out_shape=(32 // f, 64 // f))
            np.testing.assert_array_equal(sub, level[32 // f : 64 // f, 32 // f : 96 // f, 1])


def test_a_reduction_matches_gdal_reading_average_overviews(files, tmp_path) -> None:
    """Where GDAL has average overviews, its reads of the same out_shape agree: they average the decoded pixels,
    the codec's level of a map file estimates those averages from its coarse wavelet levels (measured: 45–55 dB
    PSNR, median difference 1–5 of values in the thousands; larger at the image and tile edges)."""
    for name in ("untiled", "tiled"):
        h, tif = files[name]
        copy = tmp_path / f"{name}-ovr.tif"
        shutil.copy(tif, copy)
        with rasterio.open(copy, "r+") as ref:
            ref.build_overviews([2, 4, 8], Resampling.average)
        with hsicodec.open(h) as ds, rasterio.open(copy) as ref:
            for window, shape in ((None, (40, 48)), (None, (20, 24)), (Window(32, 16, 64, 32), (8, 16))):
                got = ds.read(window=window, out_shape=shape).astype(int)
                want = ref.read(window=window, out_shape=(BANDS, *shape)).astype(int)
                if window is None:  # GDAL averages the valid pixels of a block, the codec its decoded values
                    f = ROWS // shape[0]
                    got[:, 5 // f : 9 // f + 1, 60 // f : 70 // f + 1] = want[
                        :, 5 // f : 9 // f + 1, 60 // f : 70 // f + 1
                    ]
                assert hsicodec.psnr(want, got) > 42.0, (name, window, shape)
                assert np.median(np.abs(got - want)) <= 6, (name, window, shape)


def test_a_reduction_between_levels_reads_the_finer_one(files, decodes) -> None:
    with hsicodec.open(files["tiled"][0]) as ds:
        got = ds.read(1, out_shape=(27, 30))  # 80/27 ≈ 2.96 and 96/30 = 3.2: level 1 (2x), then nearest
        assert decodes == [1] and got.shape == (27, 30)
        level, _ = hsicodec.decompress(files["tiled"][0], reduce=1, bands=(0, 1))
        rows = np.floor((np.arange(27) + 0.5) * ROWS / 27).astype(int) // 2
        cols = np.floor((np.arange(30) + 0.5) * COLS / 30).astype(int) // 2
        np.testing.assert_array_equal(got, level[rows][:, cols, 0])


def test_overviews_and_blocks(files) -> None:
    with hsicodec.open(files["untiled"][0]) as ds:
        assert ds.overviews(1) == [2, 4, 8, 16, 32, 64]  # while the reduced image keeps a whole pixel
        assert ds.block_shapes == [(ROWS, COLS)] * BANDS
        assert list(ds.block_windows()) == [((0, 0), Window(0, 0, COLS, ROWS))]
    with hsicodec.open(files["tiled"][0]) as ds:
        assert ds.overviews(BANDS) == [2, 4, 8, 16, 32]  # and tile sides stay multiples of the factor
        assert ds.block_shapes == [(TILE, TILE)] * BANDS
        blocks = list(ds.block_windows(1))
        assert [ij for ij, _ in blocks] == [(i, j) for i in range(3) for j in range(3)]
        cover = np.zeros((ROWS, COLS), int)
        for _, w in blocks:
            cover[w.toslices()] += 1
        assert (cover == 1).all()
        assert ds.block_window(1, 2, 2) == Window(64, 64, 32, 16)
        with pytest.raises(IndexError):
            ds.block_window(1, 3, 0)
        with pytest.raises(IndexError):
            ds.overviews(BANDS + 1)


def test_masked_out_and_out_dtype(pair) -> None:
    ds, ref = pair
    m, mr = ds.read(1, masked=True), ref.read(1, masked=True)
    assert isinstance(m, np.ma.MaskedArray)
    mask = np.ma.getmaskarray(m)
    assert mask[5:9, 60:70].all() and mask.sum() == 40
    np.testing.assert_array_equal(mask, np.ma.getmaskarray(mr))
    out = np.empty((2, 10, 12), np.uint16)
    assert ds.read([1, 2], window=Window(0, 0, 12, 10), out=out) is out
    np.testing.assert_array_equal(out, ref.read([1, 2], window=Window(0, 0, 12, 10)))
    f = ds.read(1, window=Window(0, 0, 4, 4), out_dtype="float32")
    assert f.dtype == np.float32 and np.array_equal(f, ref.read(1, window=Window(0, 0, 4, 4)).astype(np.float32))


def test_errors(files) -> None:
    ds = hsicodec.open(files["tiled"][0])
    with pytest.raises(IndexError):
        ds.read(0)
    with pytest.raises(IndexError):
        ds.read([1, BANDS + 1])
    with pytest.raises(OptionError, match="inside"):
        ds.read(1, window=Window(90, 0, 10, 10))
    with pytest.raises(OptionError, match="boundless"):
        ds.read(1, boundless=True)
    with pytest.raises(OptionError, match="output shape"):
        ds.read([1, 2], out_shape=(3, 10, 10))
    with pytest.raises(OptionError, match="empty"):
        ds.read([])
    with ds:
        pass
    assert ds.closed
    with pytest.raises(OptionError, match="closed"):
        ds.read(1)
    ds.close()  # twice: harmless


def test_sources_other_than_paths(files) -> None:
    path = files["tiled"][0]
    want = hsicodec.open(path).read(3, window=((10, 50), (20, 90)))
    data = path.read_bytes()
    with builtins.open(path, "rb") as f:
        sources = [str(path), data, f, path.as_uri()]
        for src in sources:
            with open_dataset(src) as ds:
                np.testing.assert_array_equal(ds.read(3, window=((10, 50), (20, 90))), want)
        assert not f.closed  # a caller's file object stays open


def test_a_file_without_georeferencing(tmp_path) -> None:
    cube = smooth_cube(20, 24, 3)
    h = tmp_path / "plain.hsim"
    h.write_bytes(hsicodec.compress(cube, **FAST))
    tif = tmp_path / "plain.tif"
    hsicodec.decompress_file(h, tif)
    with hsicodec.open(h) as ds, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tif) as ref:
            for key in ("crs", "transform", "res", "nodata", "descriptions", "count", "dtypes"):
                assert getattr(ds, key) == getattr(ref, key), key
            assert tuple(ds.bounds) == tuple(ref.bounds)
            np.testing.assert_array_equal(ds.read(), ref.read())
    assert isinstance(ds, HsimDataset) and ds.crs is None and ds.nodata is None


@pytest.mark.parametrize(
    "transform",
    [(30.0, 0.0, 0.0, 0.0, 30.0, 0.0), (-30.0, 0.0, 100.0, 0.0, -20.0, 50.0), (10.0, 5.0, 0.0, 3.0, -10.0, 0.0)],
    ids=["south-up", "flipped", "rotated"],
)
def test_bounds_and_res_of_any_transform(tmp_path, transform) -> None:
    h, tif = tmp_path / "t.hsim", tmp_path / "t.tif"
    geo = GeoInfo(crs_wkt=WKT, transform=transform)
    h.write_bytes(hsicodec.compress(smooth_cube(24, 32, 6), geo=geo, **FAST))
    hsicodec.decompress_file(h, tif)
    with hsicodec.open(h) as ds, rasterio.open(tif) as ref:
        assert ds.transform == ref.transform
        assert ds.res == pytest.approx(ref.res) and tuple(ds.bounds) == pytest.approx(tuple(ref.bounds))
