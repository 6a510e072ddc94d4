"""Tests of hsicodec.io.raster: cube reading/writing and geo metadata."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
rasterio = pytest.importorskip("rasterio")
scipy_io = pytest.importorskip("scipy.io")

from rasterio.crs import CRS  # noqa: E402

from hsicodec.errors import HsimHeaderError, OptionError, OutputExistsError, RasterError  # noqa: E402
from hsicodec.io.raster import (  # noqa: E402
    GeoInfo,
    cast_to_dtype,
    raster_format,
    read_cube,
    read_info,
    write_cube,
)

ROWS, COLS, BANDS = 7, 9, 5
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def make_cube(dtype="int16", seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(100.0, 30.0, (ROWS, COLS, BANDS)).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, (ROWS, COLS, BANDS), dtype=dt, endpoint=True)


def full_geo(nodata=-9999):
    return GeoInfo(
        crs_wkt=CRS.from_epsg(32611).to_wkt(),
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        nodata=nodata,
        band_names=[f"B{i:02d}" for i in range(BANDS)],
        wavelengths=[400.5 + 10.25 * i for i in range(BANDS)],
        fwhm=[9.5 + 0.1 * i for i in range(BANDS)],
        wavelength_units="Nanometers",
        units="uW/(cm^2 sr nm)",
    )


def assert_geo_equal(got: GeoInfo, want: GeoInfo):
    assert CRS.from_wkt(got.crs_wkt) == CRS.from_wkt(want.crs_wkt)
    assert got.transform == pytest.approx(want.transform)
    assert got.nodata == want.nodata
    assert got.band_names == want.band_names
    assert got.wavelengths == want.wavelengths
    assert got.fwhm == want.fwhm
    assert got.wavelength_units == want.wavelength_units
    assert got.units == want.units


def no_leftovers(folder, *keep):
    names = sorted(os.listdir(folder))
    assert names == sorted(keep), names


# --- GeoTIFF -----------------------------------------------------------------


def test_gtiff_round_trip_with_geo(tmp_path):
    cube, geo = make_cube("int16"), full_geo()
    out = tmp_path / "cube.tif"
    write_cube(out, cube, geo)
    got, ggeo = read_cube(out)
    assert got.dtype == cube.dtype and got.shape == (ROWS, COLS, BANDS)
    np.testing.assert_array_equal(got, cube)
    assert got.flags.c_contiguous
    assert_geo_equal(ggeo, geo)
    assert ggeo.crs_wkt == CRS.from_epsg(32611).to_wkt()
    assert isinstance(ggeo.nodata, int)
    shape, dtype, igeo = read_info(out)
    assert shape == (ROWS, COLS, BANDS) and dtype == np.int16
    assert igeo == ggeo
    no_leftovers(tmp_path, "cube.tif")
    # interop: GDAL's own view of the file
    with rasterio.open(out) as ds:
        assert ds.count == BANDS and ds.crs == CRS.from_epsg(32611)
        assert ds.descriptions[0] == "B00"
        assert float(ds.tags(1, ns="IMAGERY")["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(0.4005)
        assert ds.compression is not None and ds.compression.name == "deflate"  # DEFLATE + predictor by default


@pytest.mark.parametrize("dtype", DTYPES)
def test_gtiff_every_dtype(tmp_path, dtype):
    cube = make_cube(dtype, seed=3)
    out = tmp_path / f"c_{dtype}.tif"
    write_cube(out, cube)
    got, geo = read_cube(out)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, cube)
    assert geo.crs_wkt is None and geo.transform is None


def test_gtiff_without_georef_no_warning(tmp_path):
    cube = make_cube("float32")
    out = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_cube(out, cube, GeoInfo())
        got, geo = read_cube(out)
    np.testing.assert_array_equal(got, cube)
    assert geo.is_empty()


def test_gtiff_float_nan_nodata_and_compress(tmp_path):
    cube = make_cube("float32")
    cube[0, 0, :] = np.nan
    out = tmp_path / "nan.tif"
    write_cube(out, cube, GeoInfo(nodata=float("nan")), compress="deflate")
    got, geo = read_cube(out)
    np.testing.assert_array_equal(got, cube)  # NaNs in the same places
    assert math.isnan(geo.nodata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out) as ds:
            assert ds.compression is not None


def test_gtiff_tiled_chunked(tmp_path, monkeypatch):
    import hsicodec.io.rio as rio

    monkeypatch.setattr(rio, "_CHUNK_BYTES", 40_000)  # many row chunks on write and read
    cube = np.random.default_rng(5).integers(0, 255, (520, 530, 2), dtype=np.uint8)
    out = tmp_path / "big.tif"
    write_cube(out, cube, GeoInfo(transform=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)))
    with rasterio.open(out) as ds:
        assert ds.profile.get("tiled") and ds.block_shapes[0] == (256, 256)
    got, geo = read_cube(out)
    np.testing.assert_array_equal(got, cube)
    assert geo.transform == (1.0, 0.0, 0.0, 0.0, -1.0, 0.0) and geo.crs_wkt is None


def test_gtiff_single_band_from_2d(tmp_path):
    img = make_cube("uint16")[:, :, 0]
    out = tmp_path / "one.tif"
    write_cube(out, img)
    got, _ = read_cube(out)
    assert got.shape == (ROWS, COLS, 1)
    np.testing.assert_array_equal(got[:, :, 0], img)


def test_write_rejects_bad_geo(tmp_path):
    cube = make_cube("uint8")
    with pytest.raises(RasterError, match="wavelengths"):
        write_cube(tmp_path / "a.tif", cube, GeoInfo(wavelengths=[1.0, 2.0]))
    with pytest.raises(RasterError, match="nodata"):
        write_cube(tmp_path / "b.tif", cube, GeoInfo(nodata=-1))
    with pytest.raises(RasterError):
        write_cube(tmp_path / "c.tif", cube.astype(np.float16))
    with pytest.raises(RasterError):
        write_cube(tmp_path / "d.tif", cube.astype(np.complex64))
    with pytest.raises(RasterError):
        write_cube(tmp_path / "e.mat", cube)
    assert os.listdir(tmp_path) == []


# --- ENVI ----------------------------------------------------------------------


def test_envi_round_trip(tmp_path):
    cube, geo = make_cube("float32"), full_geo(nodata=-1.5)
    out = tmp_path / "scene.img"
    write_cube(out, cube, geo)
    no_leftovers(tmp_path, "scene.hdr", "scene.img")
    hdr_text = (tmp_path / "scene.hdr").read_text()
    assert "wavelength = {" in hdr_text and "fwhm = {" in hdr_text
    assert "description = {\nscene.img}" in hdr_text  # not the temporary name
    for src in (out, tmp_path / "scene.hdr"):  # data file or header
        got, ggeo = read_cube(src)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, cube)
        assert_geo_equal(ggeo, geo)
    shape, dtype, igeo = read_info(tmp_path / "scene.hdr")
    assert shape == (ROWS, COLS, BANDS) and dtype == np.float32 and igeo.wavelengths == geo.wavelengths


@pytest.mark.parametrize("ext", [".bil", ".bip"])
def test_envi_interleaves_and_no_band_names(tmp_path, ext):
    cube = make_cube("uint16")
    geo = GeoInfo(wavelengths=[0.4 + 0.01 * i for i in range(BANDS)], wavelength_units="Micrometers")
    out = tmp_path / f"x{ext}"
    write_cube(out, cube, geo)
    assert f"interleave = {ext[1:]}" in (tmp_path / "x.hdr").read_text()
    got, ggeo = read_cube(out)
    np.testing.assert_array_equal(got, cube)
    assert ggeo.band_names is None
    assert ggeo.wavelengths == geo.wavelengths and ggeo.wavelength_units == "Micrometers"


def test_envi_write_via_hdr_path_and_refusals(tmp_path):
    cube = make_cube("int32")
    write_cube(tmp_path / "h.hdr", cube)
    no_leftovers(tmp_path, "h.hdr", "h.img")
    np.testing.assert_array_equal(read_cube(tmp_path / "h.hdr")[0], cube)
    # header exists, data file does not: still refused, nothing written
    (tmp_path / "k.hdr").write_text("ENVI\n")
    with pytest.raises(OutputExistsError):
        write_cube(tmp_path / "k.img", cube)
    no_leftovers(tmp_path, "h.hdr", "h.img", "k.hdr")
    write_cube(tmp_path / "k.img", cube, force=True)
    np.testing.assert_array_equal(read_cube(tmp_path / "k.img")[0], cube)
    with pytest.raises(RasterError, match="int8"):
        write_cube(tmp_path / "i8.img", make_cube("int8"))


# --- .npy -------------------------------------------------------------------------


def test_npy_round_trip(tmp_path):
    cube = make_cube("uint16")
    out = tmp_path / "c.npy"
    write_cube(out, cube, full_geo())  # geo dropped silently
    got, geo = read_cube(out)
    np.testing.assert_array_equal(got, cube)
    assert got.dtype == np.uint16 and geo.is_empty()
    assert read_info(out)[:2] == ((ROWS, COLS, BANDS), np.dtype("uint16"))
    no_leftovers(tmp_path, "c.npy")


def test_npy_big_endian_and_band_first(tmp_path):
    cube = make_cube("float64")
    be = cube.transpose(2, 0, 1).astype(">f8")
    path = tmp_path / "be.npy"
    np.save(path, be)
    got, _ = read_cube(path, band_first=True)
    assert got.dtype == np.dtype("float64") and got.dtype.isnative
    np.testing.assert_array_equal(got, cube)
    shape, dtype, _ = read_info(path, band_first=True)
    assert shape == (ROWS, COLS, BANDS) and dtype == np.float64 and dtype.isnative
    # written .npy files are little-endian
    write_cube(tmp_path / "le.npy", be.transpose(1, 2, 0))
    assert np.load(tmp_path / "le.npy").dtype.str == "<f8"


def test_npy_2d_is_one_band_and_bad_arrays(tmp_path):
    np.save(tmp_path / "two.npy", np.arange(12, dtype=np.int16).reshape(3, 4))
    got, _ = read_cube(tmp_path / "two.npy")
    assert got.shape == (3, 4, 1)
    for name, arr in [
        ("c.npy", np.zeros((2, 3, 4), np.complex64)),
        ("b.npy", np.zeros((2, 3, 4), bool)),
        ("d1.npy", np.zeros(5)),
        ("d4.npy", np.zeros((2, 2, 2, 2))),
        ("z.npy", np.zeros((0, 3, 4))),
    ]:
        np.save(tmp_path / name, arr)
        with pytest.raises(RasterError, match=name):
            read_cube(tmp_path / name)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RasterError, match="o.npy"):
        read_cube(tmp_path / "o.npy")


# --- .mat ---------------------------------------------------------------------------


def test_mat_v5(tmp_path):
    cube = make_cube("uint16")
    path = tmp_path / "scene.mat"
    scipy_io.savemat(path, {"paviaU": cube, "labels": np.ones((ROWS, COLS), np.uint8)})
    got, geo = read_cube(path)
    assert got.dtype == np.uint16 and geo.is_empty()
    np.testing.assert_array_equal(got, cube)
    np.testing.assert_array_equal(read_cube(path, var="paviaU")[0], cube)
    assert read_info(path)[:2] == ((ROWS, COLS, BANDS), np.dtype("uint16"))
    with pytest.raises(RasterError, match="labels"):
        read_cube(path, var="labels")  # 2-D: not reshaped
    with pytest.raises(RasterError, match="nope"):
        read_cube(path, var="nope")


def test_mat_v5_multiple_3d_and_zhu_style(tmp_path):
    path = tmp_path / "two.mat"
    scipy_io.savemat(path, {"A": make_cube("float32"), "B": make_cube("float64")})
    with pytest.raises(RasterError) as ei:
        read_cube(path)
    assert "A" in str(ei.value) and "B" in str(ei.value) and "--var" in str(ei.value)
    np.testing.assert_array_equal(read_cube(path, var="B")[0], make_cube("float64"))
    zhu = tmp_path / "zhu.mat"
    scipy_io.savemat(zhu, {"Y": np.ones((BANDS, ROWS * COLS))})
    with pytest.raises(RasterError, match="--var"):
        read_cube(zhu)


def write_v73(path, **arrays):
    """An HDF5 file laid out like MATLAB -v7.3 (column-major → transposed datasets)."""
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            ds = f.create_dataset(name, data=np.asarray(arr).T)
            ds.attrs["MATLAB_class"] = np.bytes_(
                {"float64": "double", "float32": "single"}.get(arr.dtype.name, arr.dtype.name)
            )


def test_mat_v73(tmp_path):
    cube = make_cube("float32")
    path = tmp_path / "big.mat"
    write_v73(path, indian_pines=cube, gt=np.zeros((ROWS, COLS), np.uint8))
    got, geo = read_cube(path)
    assert got.dtype == np.float32 and geo.is_empty() and got.flags.c_contiguous
    np.testing.assert_array_equal(got, cube)
    np.testing.assert_array_equal(read_cube(path, var="indian_pines")[0], cube)
    assert read_info(path)[:2] == ((ROWS, COLS, BANDS), np.dtype("float32"))
    # band-first MATLAB array
    bf = tmp_path / "bf.mat"
    write_v73(bf, X=cube.transpose(2, 0, 1))
    np.testing.assert_array_equal(read_cube(bf, band_first=True)[0], cube)
    two = tmp_path / "two73.mat"
    write_v73(two, A=cube, B=cube)
    with pytest.raises(RasterError, match="A.*B|B.*A"):
        read_cube(two)


# --- errors ----------------------------------------------------------------------


def test_read_errors(tmp_path):
    with pytest.raises(RasterError, match="missing.tif"):
        read_cube(tmp_path / "missing.tif")
    with pytest.raises(RasterError, match="missing.npy"):
        read_info(tmp_path / "missing.npy")
    bad = tmp_path / "x.tif"
    bad.write_text("this is not a GeoTIFF\n")
    with pytest.raises(RasterError, match="x.tif") as ei:
        read_cube(bad)
    assert "\n" not in str(ei.value)
    with pytest.raises(RasterError, match="x.tif"):
        read_info(bad)
    badmat = tmp_path / "x.mat"
    badmat.write_bytes(b"garbage" * 50)
    with pytest.raises(RasterError, match="x.mat"):
        read_cube(badmat)
    lone_hdr = tmp_path / "lone.hdr"
    lone_hdr.write_text("ENVI\n")
    with pytest.raises(RasterError, match="lone.hdr"):
        read_cube(lone_hdr)


def test_write_refuses_existing_without_force(tmp_path):
    cube = make_cube("uint8")
    for name in ("a.tif", "a.npy"):
        out = tmp_path / name
        out.write_bytes(b"keep")
        with pytest.raises(OutputExistsError):
            write_cube(out, cube)
        assert out.read_bytes() == b"keep"
        write_cube(out, cube, force=True)
        np.testing.assert_array_equal(read_cube(out)[0], cube)
    no_leftovers(tmp_path, "a.npy", "a.tif")


def test_raster_format():
    assert raster_format("a.TIF") == "gtiff" and raster_format("a.tiff") == "gtiff"
    for ext in (".hdr", ".img", ".bsq", ".bil", ".bip", ".dat"):
        assert raster_format("a" + ext) == "envi"
    assert raster_format("a.npy") == "npy" and raster_format("a.mat") == "mat"
    assert raster_format("a.xyz", "GeoTIFF") == "gtiff" and raster_format("a", "envi") == "envi"
    with pytest.raises(RasterError):
        raster_format("a.xyz")
    with pytest.raises(OptionError):
        raster_format("a.tif", "jpeg2000")


def test_unwritable_output_names_list_only_writable_formats(tmp_path):
    """An output name that tells no writable format is refused naming .tif, .hdr/.img and .npy only (no .mat)."""
    from hsicodec.io.raster import open_cube_writer, write_format

    cube = make_cube("uint16")
    (tmp_path / "b.hdr").write_text("ENVI\n")  # beside b.png: still not an ENVI data file to write
    for name in ("a.png", "b.png", "c.jpg", "noext", "d.mat"):
        for write in (
            lambda p: write_cube(p, cube),
            lambda p: open_cube_writer(p, cube.shape, cube.dtype).__enter__(),
            write_format,
        ):
            with pytest.raises(RasterError) as e:
                write(tmp_path / name)
            msg = str(e.value)
            assert ".tif" in msg and ".hdr/.img" in msg and ".npy" in msg, msg
            assert ".mat" not in msg.replace(name, ""), msg
    assert sorted(os.listdir(tmp_path)) == ["b.hdr"]
    assert write_format("a.TIF") == "gtiff" and write_format("a.bil") == "envi" and write_format("a.npy") == "npy"
    assert write_format("a.png", "npy") == "npy"
    (tmp_path / "e.hdr").write_text("ENVI\n")
    assert write_format(tmp_path / "e") == "envi"  # an ENVI data file without extension, header beside it


# --- cast_to_dtype -------------------------------------------------------------------


def test_cast_to_dtype_ints():
    v = np.array([-3.7, -0.5, 0.5, 1.5, 2.4999, 254.6, 300.0, np.inf, -np.inf])
    np.testing.assert_array_equal(cast_to_dtype(v, np.uint8), [0, 0, 0, 2, 2, 255, 255, 255, 0])
    assert cast_to_dtype(v, np.uint8).dtype == np.uint8
    np.testing.assert_array_equal(cast_to_dtype(np.array([-40000.4, 40000.0, 12.5]), "int16"), [-32768, 32767, 12])
    big = cast_to_dtype(np.array([1e30, -1e30]), np.int64)
    assert big.tolist() == [np.iinfo(np.int64).max - 1023, np.iinfo(np.int64).min]
    # int → narrower int clips
    np.testing.assert_array_equal(cast_to_dtype(np.array([-5, 70000], np.int32), np.uint16), [0, 65535])


def test_cast_to_dtype_nan():
    v = np.array([1.2, np.nan], np.float32)
    np.testing.assert_array_equal(cast_to_dtype(v, np.int16, nodata=-9999), [1, -9999])
    with pytest.warns(RuntimeWarning, match="NaN"):
        out = cast_to_dtype(v, np.int16)
    assert out.tolist() == [1, 0]
    f = cast_to_dtype(np.array([np.nan, 1e300, -np.inf, 2.5]), np.float32)
    assert f.dtype == np.float32 and math.isnan(f[0])
    assert f[1] == np.finfo(np.float32).max and f[2] == -np.inf and f[3] == 2.5


# --- GeoInfo ------------------------------------------------------------------------


def test_geoinfo_subset_transform():
    g = full_geo()
    s = g.subset(slice(2, 5), slice(3, 8), slice(1, 4))
    assert s.transform == (30.0, 0.0, 500000.0 + 3 * 30.0, 0.0, -30.0, 4100000.0 - 2 * 30.0)
    assert s.band_names == ["B01", "B02", "B03"]
    assert s.wavelengths == g.wavelengths[1:4] and s.fwhm == g.fwhm[1:4]
    assert s.crs_wkt == g.crs_wkt and s.nodata == g.nodata and s.units == g.units
    # rotated/sheared transform and strides
    r = GeoInfo(transform=(2.0, 0.5, 10.0, 0.25, -3.0, 20.0)).subset(slice(4, None, 2), slice(1, None, 3), slice(None))
    assert r.transform == pytest.approx((6.0, 1.0, 10.0 + 2.0 * 1 + 0.5 * 4, 0.75, -6.0, 20.0 + 0.25 * 1 - 3.0 * 4))
    assert GeoInfo().subset(slice(None), slice(None), slice(0, 2)).is_empty()
    with pytest.raises(OptionError):
        g.subset(slice(-1, None), slice(None), slice(None))


def test_geoinfo_header_round_trip():
    g = full_geo()
    h = g.to_header()
    assert set(h) == {"crs", "transform", "nodata", "band_names", "wavelengths", "fwhm", "wavelength_units", "units"}
    assert GeoInfo.from_header(h) == g
    assert GeoInfo().to_header() == {} and GeoInfo.from_header(None).is_empty()
    assert GeoInfo.from_header({}).is_empty()
    partial = GeoInfo(nodata=0.5, wavelengths=[1.0, 2.0])
    assert partial.to_header() == {"nodata": 0.5, "wavelengths": [1.0, 2.0]}
    assert GeoInfo.from_header(partial.to_header()) == partial
    msgpack = pytest.importorskip("msgpack")
    assert GeoInfo.from_header(msgpack.unpackb(msgpack.packb(h))) == g


@pytest.mark.parametrize(
    "key,value",
    [
        ("crs", 32611),
        ("transform", [1.0, 2.0, 3.0]),
        ("transform", [1.0, 0.0, 0.0, 0.0, "x", 0.0]),
        ("transform", [1.0, 0.0, float("nan"), 0.0, -1.0, 0.0]),
        ("nodata", "0"),
        ("nodata", True),
        ("band_names", ["a", 2, "c", "d", "e"]),
        ("band_names", "abcde"),
        ("wavelengths", [1.0, 2.0]),
        ("fwhm", [None] * BANDS),
        ("wavelength_units", 5),
        ("units", ["W"]),
    ],
)
def test_geoinfo_from_header_rejects(key, value):
    h = full_geo().to_header()
    h[key] = value
    with pytest.raises(HsimHeaderError, match=key):
        GeoInfo.from_header(h)


def test_geoinfo_from_header_band_count():
    h = full_geo().to_header()
    assert GeoInfo.from_header(h, n_bands=BANDS).band_names == full_geo().band_names
    with pytest.raises(HsimHeaderError, match="band_names"):
        GeoInfo.from_header(h, n_bands=BANDS + 1)
    with pytest.raises(HsimHeaderError):
        GeoInfo.from_header([1, 2, 3])
