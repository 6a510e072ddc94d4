"""The numcodecs codec (HsimCodec) on its own, as a zarr 3 serializer and as a zarr 2 compressor."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

numcodecs = pytest.importorskip("numcodecs")

import hsicodec  # noqa: E402
from hsicodec.data import sample_path  # noqa: E402
from hsicodec.errors import HsicodecError, HsimMagicError, OptionError  # noqa: E402
from hsicodec.integrations.zarr_codec import HsimCodec  # noqa: E402

FAST = {"model": "hsi-grid-v1", "effort": "fast"}
SAMPLE = np.load(sample_path())


def _cube(rows: int, cols: int, bands: int, dtype: str = "uint16") -> np.ndarray:
    return SAMPLE[:rows, 10 : 10 + cols, :bands].astype(dtype)


# --------------------------------------------------------------------------- numcodecs API


def test_entry_point_and_get_codec():
    eps = importlib.metadata.entry_points(group="numcodecs.codecs", name="hsim")
    assert [ep.load() for ep in eps] == [HsimCodec]
    numcodecs.registry.codec_registry.pop("hsim", None)  # force the entry-point path
    codec = numcodecs.get_codec({"id": "hsim", "psnr": 35, **FAST})
    assert isinstance(codec, HsimCodec) and codec.psnr == 35.0 and codec.effort == "fast"


def test_core_package_imports_without_the_extras():
    code = (
        "import sys, hsicodec; extras = {'numcodecs', 'zarr', 'xarray', 'dask'} & set(sys.modules); "
        "assert not extras, extras; assert hsicodec.HsimCodec.codec_id == 'hsim'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_round_trip():
    codec = HsimCodec(bpppb=0.5, model="hsi-grid-v1", effort=10, nodata=0, threads=1)
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == "hsim"
    assert HsimCodec.from_config(config) == codec
    assert numcodecs.get_codec(config) == codec
    assert HsimCodec.from_config({}) == HsimCodec()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bpppb": 0.1, "psnr": 30},
        {"bpppb": -1},
        {"psnr": float("nan")},
        {"psnr": "40"},
        {"effort": "slow"},
        {"effort": 101},
        {"effort": True},
        {"model": 3},
        {"nodata": "0"},
        {"threads": -1},
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(OptionError, match="HsimCodec"):
        HsimCodec(**kwargs)


def test_bad_config_keys():
    with pytest.raises(OptionError, match="unknown config keys"):
        HsimCodec.from_config({"id": "hsim", "level": 3})
    with pytest.raises(OptionError, match="'zlib'"):
        HsimCodec.from_config({"id": "zlib"})


@pytest.mark.parametrize(
    "buf, match",
    [
        (b"\x00" * 64, "raw bytes"),
        (np.zeros((4, 4), bool), "dtype"),
        (np.zeros((2, 2, 2, 2)), "shape"),
        (np.zeros(8), "shape"),
        (np.zeros((0, 4, 3)), "empty"),
        (np.zeros((2, 2, 2), complex), "dtype"),
    ],
)
def test_encode_rejects(buf, match):
    with pytest.raises(OptionError, match=match):
        HsimCodec(**FAST).encode(buf)


def test_decode_rejects_garbage():
    with pytest.raises(HsimMagicError):
        HsimCodec().decode(b"not an hsim file at all, not at all")


def test_round_trip_quality():
    cube = _cube(24, 24, 16)
    codec = HsimCodec(psnr=35, **FAST)
    data = codec.encode(cube)
    assert isinstance(data, bytes) and data.startswith(b"\x89HSIM")
    assert len(data) < cube.nbytes / 4
    back = codec.decode(data)
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert hsicodec.psnr(cube, back) >= 35.0
    # the chunk is a plain .hsim file
    whole, _ = hsicodec.decompress(data)
    assert np.array_equal(whole, back)


def test_decode_into_out():
    cube = _cube(8, 8, 6, "float32")
    codec = HsimCodec(psnr=35, **FAST)
    data = codec.encode(cube)
    out = np.empty_like(cube)
    assert codec.decode(data, out=out) is out
    assert np.array_equal(out, codec.decode(data))
    flat = np.empty(cube.size, cube.dtype)
    codec.decode(data, out=flat)
    assert np.array_equal(flat, out.ravel())


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((1, 1, 1), "float32"),
        ((1, 1, 5), "uint16"),
        ((16, 16, 1), "int16"),
        ((5, 7, 3), "int32"),
        ((12, 10), "uint8"),
        ((6, 6, 4), "float16"),
        ((6, 5, 4), ">u2"),
        ((9, 4, 3), "float64"),
        ((3, 3, 2), "int64"),
    ],
)
def test_chunk_edge_cases(shape, dtype):
    base = _cube(shape[0], shape[1], shape[2] if len(shape) == 3 else 1)
    arr = (base // 40 if dtype in ("uint8", "int8") else base).reshape(shape).astype(dtype)
    back = HsimCodec(psnr=35, **FAST).decode(HsimCodec(psnr=35, **FAST).encode(arr))
    assert back.shape == arr.shape and back.dtype == arr.dtype
    assert hsicodec.psnr(arr.astype(np.float64), back.astype(np.float64)) >= 34.9


def test_fortran_order_survives():
    cube = np.asfortranarray(_cube(8, 6, 5))
    back = HsimCodec(psnr=35, **FAST).decode(HsimCodec(psnr=35, **FAST).encode(cube))
    assert back.flags.f_contiguous and back.shape == cube.shape
    assert hsicodec.psnr(cube, back) >= 35.0


@pytest.mark.parametrize(
    "arr, nodata",
    [
        (np.zeros((8, 8, 4), np.uint16), None),  # all zeros: stored exactly
        (np.full((1, 1, 1), 7, np.int32), None),  # one value below the smallest rate-controlled file
        (np.full((4, 5, 3), np.nan, np.float32), None),  # nothing valid
        (np.full((4, 5, 3), 9, np.uint16), 9),  # nothing but nodata
    ],
)
def test_uniform_chunks_are_exact(arr, nodata):
    codec = HsimCodec(bpppb=0.05, nodata=nodata, **FAST)
    data = codec.encode(arr)
    back = codec.decode(data)
    assert back.dtype == arr.dtype and np.array_equal(back, arr, equal_nan=True)
    assert len(data) < 400


def test_uniform_needs_an_exact_fill():
    from hsicodec.integrations.zarr_codec import _uniform_value

    assert _uniform_value(np.full((2, 2, 1), 2**60 + 1, np.int64), None) is None  # not exact as a float
    assert _uniform_value(np.full((2, 2, 1), 2**60, np.int64), None) == 2.0**60


def test_nan_and_nodata_are_kept():
    cube = _cube(16, 16, 8, "float32")
    cube[2:5, 3:9, :] = np.nan
    cube[10, 10, 2] = -1
    back = HsimCodec(psnr=35, nodata=-1, **FAST).decode(HsimCodec(psnr=35, nodata=-1, **FAST).encode(cube))
    assert (back[2:5, 3:9] == -1).all()  # masked values decode to the nodata value (as hsicodec.compress does)
    assert back[10, 10, 2] == -1
    valid = np.isfinite(cube) & (cube != -1)
    assert hsicodec.psnr(cube[valid], back[valid]) >= 30.0


def test_errors_are_hsicodec_errors():
    assert issubclass(OptionError, HsicodecError)
    with pytest.raises(HsicodecError):  # a target this tiny chunk cannot meet
        HsimCodec(bpppb=0.01, **FAST).encode(_cube(4, 4, 3))


# --------------------------------------------------------------------------- zarr


@pytest.fixture
def zarr():
    """zarr (the tests above need only numcodecs), without its warning that numcodecs codecs are no zarr 3 standard."""
    module = pytest.importorskip("zarr")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")
        yield module


def test_zarr3_serializer(tmp_path, zarr):
    from hsicodec.integrations.zarr_codec import HsimZarr3Codec

    cube = _cube(64, 48, 24)
    z = zarr.create_array(
        store=tmp_path / "a.zarr",
        shape=cube.shape,
        dtype=cube.dtype,
        chunks=(32, 24, 24),
        serializer=HsimZarr3Codec(psnr=35, **FAST),
        compressors=None,
    )
    z[:] = cube
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    (entry,) = meta["codecs"]
    assert entry["name"] == "numcodecs.hsim"
    assert entry["configuration"]["psnr"] == 35 and entry["configuration"]["nodata"] == 0  # from fill_value
    chunk = next((tmp_path / "a.zarr" / "c").rglob("*"), None)
    while chunk is not None and chunk.is_dir():
        chunk = next(chunk.iterdir())
    assert chunk.read_bytes().startswith(b"\x89HSIM")  # every chunk is a .hsim file
    back = zarr.open_array(tmp_path / "a.zarr")[:]
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert hsicodec.psnr(cube, back) >= 35.0
    part = zarr.open_array(tmp_path / "a.zarr")[40:50, 20:30, 5]
    assert np.array_equal(part, back[40:50, 20:30, 5])


def test_zarr3_partial_edge_chunks(tmp_path, zarr):
    from hsicodec.integrations.zarr_codec import HsimZarr3Codec

    cube = _cube(40, 36, 12, "float32")
    z = zarr.create_array(
        store=tmp_path / "e.zarr",
        shape=cube.shape,
        dtype=cube.dtype,
        chunks=(32, 32, 8),
        fill_value=np.nan,
        serializer=HsimZarr3Codec(psnr=35, **FAST),
        compressors=None,
    )
    z[:] = cube
    back = zarr.open_array(tmp_path / "e.zarr")[:]
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert np.isfinite(back).all()  # the NaN padding never leaks into the array
    assert hsicodec.psnr(cube, back) >= 33.0
    # The 8x4 corner is 1/32 of its padded chunk: the target holds on its valid pixels, not only on
    # the padded chunk (the padding is masked and left out of the encoder's quality measure).
    for rows, cols in ((slice(0, 32), slice(32, 36)), (slice(32, 40), slice(0, 32)), (slice(32, 40), slice(32, 36))):
        assert hsicodec.psnr(cube[rows, cols, :8], back[rows, cols, :8]) >= 35.0
        assert hsicodec.psnr(cube[rows, cols, 8:], back[rows, cols, 8:]) >= 35.0


def test_zarr3_two_dimensional(tmp_path, zarr):
    from hsicodec.integrations.zarr_codec import HsimZarr3Codec

    img = _cube(32, 32, 1)[:, :, 0]
    z = zarr.create_array(
        store=tmp_path / "b.zarr",
        shape=img.shape,
        dtype=img.dtype,
        chunks=(16, 16),
        serializer=HsimZarr3Codec(psnr=35, **FAST),
        compressors=None,
    )
    z[:] = img
    back = zarr.open_array(tmp_path / "b.zarr")[:]
    assert back.shape == img.shape and hsicodec.psnr(img, back) >= 35.0


def test_zarr3_rejects_bad_arrays(tmp_path, zarr):
    from hsicodec.integrations.zarr_codec import HsimZarr3Codec

    with pytest.raises(OptionError, match="dimensions"):
        zarr.create_array(
            store=tmp_path / "c.zarr",
            shape=(4, 4, 4, 4),
            dtype="uint16",
            serializer=HsimZarr3Codec(psnr=35),
            compressors=None,
        )
    with pytest.raises(OptionError, match="both"):
        HsimZarr3Codec(psnr=35, bpppb=1)


def test_zarr2_compressor(tmp_path, zarr):
    cube = _cube(32, 32, 10)
    z = zarr.create_array(
        store=tmp_path / "v2.zarr",
        shape=cube.shape,
        dtype=cube.dtype,
        chunks=(16, 32, 10),
        zarr_format=2,
        compressors=HsimCodec(psnr=35, **FAST),
    )
    z[:] = cube
    meta = json.loads((tmp_path / "v2.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "hsim"
    numcodecs.registry.codec_registry.pop("hsim", None)  # reading resolves the codec by its id
    back = zarr.open_array(tmp_path / "v2.zarr")[:]
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert hsicodec.psnr(cube, back) >= 35.0


def test_masked_border_is_cropped_and_restored():
    from hsicodec.format.container import decode_hsim
    from hsicodec.integrations.zarr_codec import HsimCodec

    cube = _cube(24, 20, 6, "float32")
    cube[:, 15:] = np.nan  # padding-like border: only the valid box is coded
    codec = HsimCodec(psnr=35, **FAST)
    data = codec.encode(cube)
    assert decode_hsim(data).header["shape"][:2] == [24, 15]
    back = codec.decode(data)
    assert back.shape == cube.shape and np.isnan(back[:, 15:]).all()
    assert hsicodec.psnr(cube[:, :15], back[:, :15]) >= 35.0
