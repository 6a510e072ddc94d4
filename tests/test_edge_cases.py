"""Edge-case cubes through compress -> decompress (API and CLI), and safe output on failure.

Every case either round-trips within the requested quality (``psnr=30``; exactly
for constant cubes and for the mask of NaN/Inf/nodata values) or is refused
with one clear HsicodecError line. Cubes are tiny so the whole matrix runs in seconds.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsicodec
from hsicodec import metrics
from hsicodec.errors import HsicodecError, OptionError, OutputExistsError

INT_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]
FLOAT_DTYPES = ["float32", "float64"]
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES
TARGET = 30.0


def smooth(shape, dtype, seed=0) -> np.ndarray:
    """A smooth, spectrally correlated cube filling a good part of the dtype's range."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    spec = np.linspace(0.5, 1.0, c) + 0.1 * np.sin(np.arange(c))
    u = (0.5 + 0.25 * np.sin(3 * x + 2 * y))[..., None] * spec + 0.01 * rng.standard_normal(shape)
    u = (u - u.min()) / max(np.ptp(u), 1e-12)  # [0, 1]
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (u * 0.8 + 0.05).astype(dt)
    info = np.iinfo(dt)
    if dt.itemsize >= 4:  # a realistic span (not 2^64 wide), well away from zero
        return np.round(1e9 + u * 2e6).astype(dt)
    return np.round(info.min + (0.1 + 0.8 * u) * (float(info.max) - info.min)).astype(dt)


def roundtrip(cube, **kw):
    data = hsicodec.compress(cube, psnr=TARGET, effort="fast", **kw)
    out, _ = hsicodec.decompress(data)
    assert out.shape == cube.shape and out.dtype == cube.dtype
    return out, data


def assert_quality(cube, out):
    if np.ptp(cube.astype(np.float64)) == 0:
        assert np.array_equal(out, cube)
    else:
        assert metrics.psnr(cube, out) >= TARGET - 0.05


# --------------------------------------------------------------------------- API matrix


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype_reaches_the_target(dtype):
    cube = smooth((12, 10, 6), dtype)
    out, _ = roundtrip(cube, model="hsi-grid-v1")
    assert_quality(cube, out)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_plain_model_and_auto_choice(dtype):
    cube = smooth((8, 8, 20), dtype, seed=3)
    for model in ("hsi-plain-v1", None):
        try:
            out, _ = roundtrip(cube, model=model)
        except OptionError as exc:  # the plain model may not reach 30 dB on 20 arbitrary bands: clear refusal
            assert model == "hsi-plain-v1" and "psnr" in str(exc) and "\n" not in str(exc)
            continue
        assert_quality(cube, out)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 7), (1, 9, 3), (9, 1, 3), (5, 7, 1), (17, 19, 5), (33, 3, 2)])
def test_odd_shapes(shape):
    cube = smooth(shape, "uint16", seed=1)
    out, _ = roundtrip(cube, model="hsi-grid-v1")
    assert_quality(cube, out)


@pytest.mark.parametrize("model", ["hsi-grid-v1", "hsi-plain-v1"])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_constant_cube(dtype, model):
    """Constant cubes: exact for integers; floats exact with the plain model (its offset is a float64),
    within 1e-6 relative with the PCA model (its mean is quantized, |symbol| <= 2^20: see the report)."""
    dt = np.dtype(dtype)
    value = (200 if dt.kind == "u" else -100) if dt.kind in "ui" else -1.25e3
    cube = np.full((5, 6, 3), value, dt)
    out, _ = roundtrip(cube, model=model)
    if dt.kind in "ui" or model == "hsi-plain-v1":
        assert np.array_equal(out, cube), out.ravel()[:3]
    else:
        assert np.allclose(out, cube, rtol=1e-6, atol=0), out.ravel()[:3]


@pytest.mark.parametrize("dtype", INT_DTYPES + ["float32", "float64"])
def test_constant_cube_at_the_top_of_the_range(dtype):
    """Near the dtype's maximum: within one unit (32-bit), float64 rounding (64-bit), 1e-6 relative (floats),
    or a clear refusal."""
    dt = np.dtype(dtype)
    value = np.iinfo(dt).max - 1 if dt.kind in "ui" else np.finfo(dt).max / 4
    cube = np.full((4, 3, 2), value, dt)
    for model in ("hsi-grid-v1", "hsi-plain-v1"):
        try:
            out, _ = roundtrip(cube, model=model)
        except HsicodecError as exc:  # e.g. "spectral quantization step too fine for the value range"
            assert "\n" not in str(exc)
            continue
        err = np.abs(out.astype(np.float64) - cube.astype(np.float64)).max()
        tol = {1: 0, 2: 0, 4: 1}.get(dt.itemsize, 0) if dt.kind in "ui" else 1e-6 * abs(float(value))
        if dt.kind in "ui" and dt.itemsize == 8:
            tol = 2.0**-52 * float(np.iinfo(dt).max) * 2
        assert err <= tol, (model, err)


def test_large_offset_reaches_target_or_is_refused():
    cube = smooth((12, 10, 6), "float64") * 2e6 + 1e12
    try:
        out, _ = roundtrip(cube, model="hsi-grid-v1")
    except OptionError:
        return
    assert_quality(cube, out)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_extreme_64bit_values_round_trip_or_are_refused(dtype):
    info = np.iinfo(dtype)
    cube = np.array([info.min, info.max, info.min // 2 + info.max // 2], dtype=dtype)
    cube = np.resize(cube, (4, 4, 3)).astype(dtype)
    try:
        out, _ = roundtrip(cube, model="hsi-grid-v1")
    except HsicodecError as exc:
        assert "\n" not in str(exc)
        return
    assert_quality(cube, out)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_inf_mask_is_exact(dtype):
    cube = smooth((10, 9, 5), dtype)
    cube[0, 0, :] = np.nan
    cube[3, 4, 2] = np.inf
    cube[7, 1, 0] = -np.inf
    cube[:, 8, 4] = np.nan
    out, _ = roundtrip(cube, model="hsi-grid-v1")
    bad = ~np.isfinite(cube)
    assert np.array_equal(np.isnan(out), bad) and np.isfinite(out[~bad]).all()
    assert metrics.psnr(cube[~bad], out[~bad]) >= TARGET - 0.5


@pytest.mark.parametrize(
    "dtype, nodata", [("int16", -9999), ("uint16", 0), ("uint8", 255), ("float32", -9999.0), ("int64", -1)]
)
def test_nodata_mask_is_exact(dtype, nodata):
    cube = smooth((10, 9, 4), dtype, seed=2)
    cube[2:4, :, :] = nodata
    cube[6, 6, 1] = nodata
    out, _ = roundtrip(cube, model="hsi-grid-v1", nodata=nodata)
    m = cube == nodata
    assert np.array_equal(out == nodata, m)
    assert metrics.psnr(cube[~m], out[~m]) >= TARGET - 0.5


def test_nan_plus_nodata_float():
    cube = smooth((6, 6, 3), "float32")
    cube[0, 0, 0] = np.nan
    cube[1, 1, 1] = -9999.0
    out, _ = roundtrip(cube, model="hsi-grid-v1", nodata=-9999.0)
    # every invalid value decodes to the fill (nodata); none of the others does
    m = ~np.isfinite(cube) | (cube == -9999.0)
    assert np.array_equal(out == -9999.0, m)


@pytest.mark.parametrize("dtype", ["float16", "bool", "complex64"])
def test_unsupported_dtypes_refused_clearly(dtype):
    with pytest.raises(HsicodecError) as err:
        hsicodec.compress(np.ones((4, 4, 3), dtype), model="hsi-grid-v1", psnr=TARGET)
    assert dtype in str(err.value) and "\n" not in str(err.value)


def test_all_invalid_and_bad_ndim_refused():
    with pytest.raises(OptionError, match="nodata"):
        hsicodec.compress(np.full((3, 3, 2), np.nan, np.float32), model="hsi-grid-v1", psnr=TARGET)
    with pytest.raises(OptionError, match="dimensions"):
        hsicodec.compress(np.zeros((2, 2, 2, 2), np.uint8), model="hsi-grid-v1", psnr=TARGET)


# --------------------------------------------------------------------------- CLI matrix


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    from hsicodec.models.registry import reset_default_registry

    monkeypatch.setenv("HSICODEC_DATA_DIR", str(tmp_path / "userdata"))
    monkeypatch.delenv("HSICODEC_MODEL_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    reset_default_registry()
    yield tmp_path
    reset_default_registry()


def cli(*args):
    from hsicodec.cli.main import cli as main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(r) -> str:
    lines = r.stderr.splitlines()
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("hsicodec: error: "), r.output
    return lines[0]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_cli_geotiff_every_dtype(cli_env, dtype):
    pytest.importorskip("rasterio")
    from hsicodec.io.raster import GeoInfo, read_cube, write_cube

    cube = smooth((9, 11, 4), dtype)
    src = cli_env / "in.tif"
    try:
        write_cube(src, cube, GeoInfo(nodata=None))
    except HsicodecError as exc:  # rasterio/GDAL without this dtype: a clear refusal is fine
        pytest.skip(f"GeoTIFF cannot hold {dtype} here: {exc}")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    r = cli("compress", src, "c.hsim", "--psnr", TARGET, "-m", "hsi-grid-v1", "-e", "fast", "-q")
    assert r.exit_code == 0, r.output
    r = cli("decompress", "c.hsim", "back.tif", "-q")
    assert r.exit_code == 0, r.output
    back, _ = read_cube(cli_env / "back.tif")
    assert back.dtype == cube.dtype and back.shape == cube.shape
    assert_quality(cube, back)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # the input is never touched


def test_cli_big_endian_npy_and_nodata_geotiff(cli_env):
    cube = smooth((8, 7, 5), ">i2")
    np.save(cli_env / "be.npy", cube)
    assert cli("compress", "be.npy", "be.hsim", "--psnr", TARGET, "-m", "hsi-grid-v1", "-q").exit_code == 0
    assert cli("decompress", "be.hsim", "be_out.npy", "-q").exit_code == 0
    back = np.load(cli_env / "be_out.npy")
    assert back.dtype.newbyteorder("=") == np.dtype("int16") or back.dtype == np.dtype("int16")
    assert_quality(cube.astype("<i2"), back.astype("<i2"))


def test_cli_unreachable_target_is_one_line(cli_env):
    np.save(cli_env / "x.npy", smooth((6, 6, 4), "uint16"))
    line = one_error_line(cli("compress", "x.npy", "x.hsim", "--psnr", "250", "-m", "hsi-grid-v1", "--layer", "maps"))
    assert "psnr" in line.lower()
    assert not (cli_env / "x.hsim").exists()
    np.save(cli_env / "h.npy", np.ones((4, 4, 2), np.float16))
    one_error_line(cli("compress", "h.npy", "h.hsim", "--psnr", TARGET, "-m", "hsi-grid-v1"))
    assert not (cli_env / "h.hsim").exists()


# --------------------------------------------------------------------------- safe output


def _leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_compress_leaves_nothing_and_keeps_input(tmp_path, monkeypatch, exc):
    from hsicodec.io import atomic as fileio

    src = tmp_path / "in.npy"
    np.save(src, smooth((6, 6, 3), "uint16"))
    before = src.read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):  # the data was written, the disk is full when it is flushed
        raise exc

    monkeypatch.setattr(fileio.os, "fsync", full_disk)
    with pytest.raises(type(exc)):
        hsicodec.compress_file(src, tmp_path / "out.hsim", model="hsi-grid-v1", psnr=TARGET, effort="fast")
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    assert not (tmp_path / "out.hsim").exists() and _leftovers(tmp_path) == []
    assert src.read_bytes() == before


@pytest.mark.parametrize("fmt", ["npy", "tif", "envi"])
@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_decompress_leaves_nothing(tmp_path, monkeypatch, fmt, exc):
    if fmt == "tif":
        pytest.importorskip("rasterio")
    data = hsicodec.compress(smooth((6, 6, 3), "uint16"), model="hsi-grid-v1", psnr=TARGET, effort="fast")
    src = tmp_path / "in.hsim"
    src.write_bytes(data)
    dst = tmp_path / ("out.img" if fmt == "envi" else f"out.{fmt}")
    from hsicodec.io import atomic as fileio

    real = fileio.os.replace

    def fail_rename(a, b):  # everything written, then the disk fills / Ctrl-C arrives before the rename
        raise exc

    monkeypatch.setattr(fileio.os, "replace", fail_rename)
    with pytest.raises((type(exc), HsicodecError)):  # an OSError becomes a clear RasterError
        hsicodec.decompress_file(src, dst, format=fmt if fmt != "tif" else "gtiff")
    monkeypatch.setattr(fileio.os, "replace", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.hsim"]
    assert src.read_bytes() == data


def test_decode_error_midway_leaves_nothing(tmp_path, monkeypatch):
    from hsicodec.codec import decode

    data = hsicodec.compress(smooth((6, 6, 3), "uint16"), model="hsi-grid-v1", psnr=TARGET, effort="fast")
    (tmp_path / "in.hsim").write_bytes(data)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(decode, "_decode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hsicodec.decompress_file(tmp_path / "in.hsim", tmp_path / "out.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.hsim"]


def test_existing_output_needs_force_api_and_cli(cli_env):
    np.save(cli_env / "in.npy", smooth((5, 5, 3), "uint16"))
    out = cli_env / "out.hsim"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        hsicodec.compress_file(cli_env / "in.npy", out, model="hsi-grid-v1", psnr=TARGET)
    assert out.read_bytes() == b"precious"
    one_error_line(cli("compress", "in.npy", out, "--psnr", TARGET, "-m", "hsi-grid-v1"))
    assert out.read_bytes() == b"precious"
    assert cli("compress", "in.npy", out, "--psnr", TARGET, "-m", "hsi-grid-v1", "-q", "--force").exit_code == 0
    assert out.read_bytes()[:5] == b"\x89HSIM"
    dec = cli_env / "dec.npy"
    dec.write_bytes(b"keep")
    one_error_line(cli("decompress", out, dec))
    assert dec.read_bytes() == b"keep"
    assert cli("decompress", out, dec, "-q", "--force").exit_code == 0
    assert np.load(dec).shape == (5, 5, 3)
    assert _leftovers(cli_env) == []
