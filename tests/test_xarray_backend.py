"""The xarray backend: engine="hsim", lazy windowed decoding, coordinates and attributes."""

from __future__ import annotations

import io

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

import hsicodec  # noqa: E402
import hsicodec.codec.api  # noqa: E402
from hsicodec.data import sample_path  # noqa: E402
from hsicodec.errors import HsimMagicError  # noqa: E402
from hsicodec.integrations.xarray_backend import HsimBackendEntrypoint  # noqa: E402

ROWS, COLS, BANDS = 48, 40, 20
TRANSFORM = (30.0, 0.0, 500000.0, 0.0, -30.0, 4200000.0)
WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
    'UNIT["degree",0.0174532925199433]]'
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A small georeferenced .hsim with nodata (0) pixels, and its full decode."""
    cube = np.load(sample_path())[:ROWS, :COLS, :BANDS].copy()
    cube[0, :5, :] = 0  # nodata pixels
    geo = hsicodec.GeoInfo(
        crs_wkt=WKT,
        transform=TRANSFORM,
        nodata=0,
        units="DN",
        wavelengths=list(np.linspace(400.0, 900.0, BANDS)),
        wavelength_units="nm",
        fwhm=[10.0] * BANDS,
        band_names=[f"B{i}" for i in range(BANDS)],
    )
    path = tmp_path_factory.mktemp("xr") / "scene.hsim"
    path.write_bytes(hsicodec.compress(cube, geo=geo, psnr=35, model="hsi-grid-v1", effort="fast"))
    full, _ = hsicodec.decompress(path)
    return path, full


@pytest.fixture
def spy(monkeypatch):
    """Records the (window, bands) of every decompress call the backend makes."""
    calls: list = []
    real = hsicodec.codec.api.decompress

    def recording(source, **kwargs):
        calls.append((kwargs.get("window"), kwargs.get("bands")))
        return real(source, **kwargs)

    monkeypatch.setattr(hsicodec.codec.api, "decompress", recording)
    return calls


def test_engine_is_registered():
    assert "hsim" in xr.backends.list_engines()
    assert isinstance(xr.backends.list_engines()["hsim"], HsimBackendEntrypoint)


def test_open_is_lazy_and_describes_the_file(scene, spy):
    path, full = scene
    ds = xr.open_dataset(path, engine="hsim", mask_and_scale=False)
    assert spy == []  # nothing decoded at open time
    da = ds["data"]
    assert da.dims == ("y", "x", "band") and da.shape == full.shape and da.dtype == full.dtype
    a, _, c, _, e, f = TRANSFORM
    np.testing.assert_allclose(ds.x, c + a * (np.arange(COLS) + 0.5))
    np.testing.assert_allclose(ds.y, f + e * (np.arange(ROWS) + 0.5))
    assert list(ds.band.values) == list(range(BANDS))
    np.testing.assert_allclose(ds.wavelength, np.linspace(400.0, 900.0, BANDS))
    assert ds.wavelength.attrs["units"] == "nm" and ds.fwhm.dims == ("band",)
    assert list(ds.band_name.values) == [f"B{i}" for i in range(BANDS)]
    for attrs in (ds.attrs, da.attrs):
        assert attrs["crs_wkt"] == WKT and list(attrs["transform"]) == list(TRANSFORM)
    assert da.attrs["units"] == "DN" and da.attrs["_FillValue"] == 0
    assert spy == []
    assert np.array_equal(da.values, full)


def test_windowed_selection_decodes_only_the_window(scene, spy):
    path, full = scene
    da = xr.open_dataset(path, engine="hsim", mask_and_scale=False)["data"]
    part = da.isel(y=slice(5, 20), x=slice(3, 30, 2), band=slice(2, 9)).values
    assert np.array_equal(part, full[5:20, 3:30:2, 2:9])
    assert spy == [((5, 3, 15, 27), (2, 9))]
    spy.clear()
    pixel = da.isel(y=7, x=11).values
    assert np.array_equal(pixel, full[7, 11, :]) and spy == [((7, 11, 1, 1), (0, BANDS))]
    spy.clear()
    by_label = da.sel(band=[3, 5]).isel(y=slice(-4, None)).values  # outer indexing: one covering window
    assert np.array_equal(by_label, full[-4:, :, [3, 5]])
    assert spy == [((ROWS - 4, 0, 4, COLS), (3, 6))]
    spy.clear()
    assert da.isel(y=slice(3, 3)).values.shape == (0, COLS, BANDS) and spy == []


def test_dask_chunks_map_to_windows(scene, spy):
    pytest.importorskip("dask")
    path, full = scene
    da = xr.open_dataset(path, engine="hsim", chunks={"y": 16, "x": 32}, mask_and_scale=False)["data"]
    assert da.chunks == ((16, 16, 16), (32, 8), (BANDS,))
    assert spy == []
    assert np.array_equal(da.compute().values, full)
    expected = {((r, c, 16, w), (0, BANDS)) for r in (0, 16, 32) for c, w in ((0, 32), (32, 8))}
    assert set(spy) == expected and len(spy) == len(expected)
    spy.clear()
    mean = da[16:32, 32:].mean(dim=("y", "x")).compute()
    np.testing.assert_allclose(mean, full[16:32, 32:].mean(axis=(0, 1)))
    assert spy == [((16, 32, 16, 8), (0, BANDS))]


def test_nodata_is_the_fill_value(scene):
    path, full = scene
    masked = xr.open_dataset(path, engine="hsim")["data"]  # mask_and_scale=True by default
    assert masked.dtype.kind == "f" and masked.encoding["_FillValue"] == 0
    values = masked.values
    assert np.isnan(values[0, :5]).all()
    assert np.array_equal(np.isnan(values), full == 0)
    assert np.array_equal(values[full != 0], full[full != 0])
    raw = xr.open_dataset(path, engine="hsim", mask_and_scale=False)["data"].values
    assert raw.dtype == full.dtype and (raw[0, :5] == 0).all()


def test_float_nan_without_nodata(tmp_path):
    cube = np.load(sample_path())[:16, :16, :6].astype("float32")
    cube[3:6, 4:8, 1] = np.nan
    path = tmp_path / "nan.hsim"
    path.write_bytes(hsicodec.compress(cube, psnr=35, model="hsi-grid-v1", effort="fast"))
    ds = xr.open_dataset(path, engine="hsim")
    assert "x" not in ds.coords and "y" not in ds.coords and "crs_wkt" not in ds.attrs  # no geo metadata
    assert set(ds.coords) == {"band"}
    values = ds["data"].values
    assert np.array_equal(np.isnan(values), np.isnan(cube))


def test_sources_other_than_paths(scene):
    path, full = scene
    data = path.read_bytes()
    assert np.array_equal(xr.open_dataarray(data, engine="hsim", mask_and_scale=False).values, full)
    da = xr.open_dataarray(io.BytesIO(data), engine="hsim", mask_and_scale=False, name="radiance")
    assert da.name == "radiance" and np.array_equal(da[4:8, 4:8].values, full[4:8, 4:8])
    with pytest.raises(HsimMagicError):
        xr.open_dataset(b"definitely not a .hsim file, no", engine="hsim")


def test_guess_can_open(scene, tmp_path):
    path, _ = scene
    entry = HsimBackendEntrypoint()
    renamed = tmp_path / "scene.bin"
    renamed.write_bytes(path.read_bytes())
    other = tmp_path / "other.bin"
    other.write_bytes(b"GIF89a........")
    assert entry.guess_can_open(path) and entry.guess_can_open(str(path))
    assert entry.guess_can_open("missing.HSIM")
    assert entry.guess_can_open(renamed)  # by the magic bytes
    assert not entry.guess_can_open(other) and not entry.guess_can_open(tmp_path / "missing.tif")
    assert not entry.guess_can_open("s3://bucket/scene.nc")
    buf = io.BytesIO(b"xx" + path.read_bytes())
    buf.seek(2)
    assert entry.guess_can_open(buf) and buf.tell() == 2
    assert entry.guess_can_open(path.read_bytes()) and not entry.guess_can_open(b"\x89PNG\r\n\x1a\n")
    assert xr.open_dataset(path)["data"].shape == (ROWS, COLS, BANDS)  # engine found without being named
