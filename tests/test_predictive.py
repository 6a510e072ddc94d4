"""The predictive layer: lossless and error-bounded coding through the codec, on random and adversarial cubes."""

from __future__ import annotations

import numpy as np
import pytest

import hsicodec
from hsicodec.data import sample_path
from hsicodec.errors import HsimError, OptionError
from hsicodec.layers.predictive.lattice import lattice_for, parse_params, to_lattice

INT_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32"]


def smooth(shape: tuple, dtype: str, seed: int = 0) -> np.ndarray:
    """A cube with spatial and spectral structure spanning most of the dtype's range (clipped at its edges)."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    y, x = np.mgrid[0:h, 0:w]
    base = np.sin(x / 3.0)[..., None] * np.cos(y / 4.0)[..., None] * np.linspace(0.5, 1.0, c)
    noisy = base + 0.05 * rng.standard_normal(shape)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = float(max(info.min, -(2**20))), float(min(info.max, 2**20))
        vals = lo + (noisy - noisy.min()) / (np.ptp(noisy) or 1.0) * (hi - lo) * 1.1 - 0.05 * (hi - lo)
        return np.clip(np.rint(vals), info.min, info.max).astype(dt)
    return (noisy * 1000.0).astype(dt)


def roundtrip(cube: np.ndarray, **kw) -> tuple[np.ndarray, dict, bytes]:
    st: dict = {}
    data = hsicodec.compress(cube, stats=st, **kw)
    out, _ = hsicodec.decompress(data)
    assert out.dtype == cube.dtype and out.shape == cube.shape
    return out, st, data


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_lossless_is_bit_exact_for_every_integer_dtype(dtype):
    cube = smooth((11, 13, 5), dtype)
    out, st, _ = roundtrip(cube, lossless=True)
    assert np.array_equal(out, cube) and st["layer"] == "predictive"


@pytest.mark.parametrize("dtype", INT_DTYPES + ["float32", "float64"])
@pytest.mark.parametrize("bound", [1, 2, 4, 16])
def test_every_value_is_within_the_bound(dtype, bound):
    cube = smooth((9, 10, 6), dtype, seed=bound)
    out, st, _ = roundtrip(cube, max_error=bound)
    assert np.abs(out.astype(np.float64) - cube.astype(np.float64)).max() <= bound
    assert st["target_max_error"] == bound


@pytest.mark.parametrize("seed", range(6))
def test_random_cubes_and_bounds(seed):
    rng = np.random.default_rng(100 + seed)
    dtype = rng.choice(INT_DTYPES)
    info = np.iinfo(dtype)
    shape = tuple(int(v) for v in rng.integers(1, 9, 3))
    lo, hi = max(info.min, -(2**24)), min(info.max, 2**24)
    cube = rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    bound = int(rng.choice([0, 1, 3, 7, 100]))
    out, _, _ = roundtrip(cube, max_error=bound)
    assert np.abs(out.astype(np.int64) - cube.astype(np.int64)).max() <= bound


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16"])
def test_the_edges_of_the_dtype_range(dtype):
    info = np.iinfo(dtype)
    cube = np.full((6, 7, 4), info.max, dtype)
    cube[::2, :, 1] = info.min
    cube[:, ::3, 2] = info.min + 1
    cube[:, :, 3] = info.max - 1
    for bound in (0, 1, 5):
        out, _, _ = roundtrip(cube, max_error=bound)
        assert np.abs(out.astype(np.int64) - cube.astype(np.int64)).max() <= bound


def test_constant_bands_and_a_constant_cube():
    cube = smooth((8, 8, 5), "uint16")
    cube[..., 2] = 777
    out, _, _ = roundtrip(cube, lossless=True)
    assert np.array_equal(out, cube)
    flat = np.full((5, 4, 3), 9, np.int16)
    out, _, data = roundtrip(flat, lossless=True)
    assert np.array_equal(out, flat) and len(data) < 400


def test_nan_and_nodata_are_kept_exactly_and_never_hit_by_valid_values():
    cube = smooth((10, 9, 4), "float32")
    cube[2, 3, 1] = np.nan
    cube[5, :, 2] = np.nan
    out, _, _ = roundtrip(cube, max_error=0.5)
    ok = np.isfinite(cube)
    assert np.isnan(out[2, 3, 1]) and np.all(np.isnan(out[5, :, 2]))
    assert np.abs(out[ok].astype(np.float64) - cube[ok]).max() <= 0.5
    ints = smooth((10, 9, 4), "uint16")
    nodata = int(ints[0, 0, 0]) + 3  # a value valid neighbours could decode to with a bound of 4
    ints[ints == nodata] += 1
    ints[1, 1, :] = nodata
    out, _, _ = roundtrip(ints, max_error=4, nodata=nodata)
    valid = ints != nodata
    assert np.all(out[~valid] == nodata) and np.all(out[valid] != nodata)
    assert np.abs(out[valid].astype(np.int64) - ints[valid]).max() <= 4


def test_lossless_floats_are_refused_with_one_clear_line():
    with pytest.raises(OptionError, match="lossless coding of float32 cubes is not supported"):
        hsicodec.compress(smooth((4, 4, 2), "float32"), lossless=True)
    with pytest.raises(OptionError, match="below the float32 precision"):
        hsicodec.compress(np.full((4, 4, 2), 1e7, np.float32) + np.arange(2, dtype=np.float32), max_error=1e-9)


def test_targets_conflict_and_bad_bounds_are_clear():
    cube = smooth((4, 4, 2), "uint8")
    with pytest.raises(OptionError, match="one target"):
        hsicodec.compress(cube, bpppb=1.0, max_error=2)
    with pytest.raises(OptionError, match="max-error"):
        hsicodec.compress(cube, max_error=-1)
    with pytest.raises(OptionError, match="bounds every value"):
        hsicodec.compress(cube, max_error=2, layer="maps")


def test_windows_and_band_ranges_decode_like_the_whole():
    cube = np.ascontiguousarray(np.load(sample_path())[:64, :30, :20])
    data = hsicodec.compress(cube, max_error=3)
    whole, _ = hsicodec.decompress(data)
    for window, bands in (((0, 0, 64, 30), (0, 20)), ((33, 5, 30, 7), (4, 9)), ((63, 29, 1, 1), (19, 20))):
        part, _ = hsicodec.decompress(data, window=window, bands=bands)
        r0, c0, h, w = window
        assert np.array_equal(part, whole[r0 : r0 + h, c0 : c0 + w, bands[0] : bands[1]])


def test_rate_and_quality_targets_reach_high_rates_through_the_layer():
    cube = np.ascontiguousarray(np.load(sample_path())[:48, :48, :60])
    lossless = len(hsicodec.compress(cube, lossless=True))
    for rate in (1.0, 2.0):
        st: dict = {}
        data = hsicodec.compress(cube, bpppb=rate, layer="predictive", stats=st)
        assert 8 * len(data) <= rate * cube.size and len(data) < lossless
    st = {}
    hsicodec.compress(cube, psnr=70.0, layer="predictive", stats=st)
    assert st["psnr"] >= 70.0


def test_lattice_keeps_the_bound_and_avoids_the_fill():
    vals = np.arange(0, 50, dtype=np.float64).reshape(5, 10, 1)
    p = lattice_for((vals.min(), vals.max()), np.dtype("uint16"), 2, avoid=10.0)
    assert (10.0 - p.offset) % p.step != 0
    u = to_lattice(vals, p, np.dtype("uint16"))
    assert np.abs(p.values(u) - vals).max() <= 2
    assert parse_params(p.to_header()) == p


@pytest.mark.parametrize(
    "edit", [{"pe": -1}, {"ps": 0}, {"pm": -3}, {"pb": 0}, {"po": float("nan")}, {"pm": "x"}], ids=str
)
def test_bad_layer_keys_are_header_errors(edit):
    from hsicodec.format.container import decode_hsim, encode_hsim

    data = hsicodec.compress(smooth((5, 5, 3), "uint16"), max_error=1)
    h = decode_hsim(data)
    header = {k: v for k, v in h.header.items() if k not in ("sections",)}
    header["codec"] = {**h.header["codec"], **edit}
    bad = encode_hsim(header, list(h.sections.items()))
    with pytest.raises(HsimError):
        hsicodec.decompress(bad)


def test_cli_lossless_and_max_error(tmp_path):
    from click.testing import CliRunner

    from hsicodec.cli.main import cli

    cube = smooth((12, 10, 6), "uint16")
    np.save(tmp_path / "c.npy", cube)
    run = CliRunner()
    r = run.invoke(cli, ["compress", str(tmp_path / "c.npy"), str(tmp_path / "c.hsim"), "--lossless"])
    assert r.exit_code == 0 and "lossless" in r.output and "layer predictive" in r.output
    r = run.invoke(cli, ["decompress", str(tmp_path / "c.hsim"), str(tmp_path / "back.npy")])
    assert r.exit_code == 0 and np.array_equal(np.load(tmp_path / "back.npy"), cube)
    r = run.invoke(cli, ["compress", str(tmp_path / "c.npy"), str(tmp_path / "e.hsim"), "--max-error", "3"])
    assert r.exit_code == 0 and "max error 3" in r.output
    r = run.invoke(cli, ["compress", str(tmp_path / "c.npy"), str(tmp_path / "x.hsim"), "--lossless", "--bpppb", "1"])
    assert r.exit_code == 2 and "mutually exclusive" in r.output
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", cube)
    r = run.invoke(cli, ["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--max-error", "2", "-q"])
    assert r.exit_code == 0, r.output
    back, _ = hsicodec.decompress(tmp_path / "out" / "a.hsim")
    assert np.abs(back.astype(np.int64) - cube).max() <= 2


def test_zarr_codec_keeps_the_bound():
    pytest.importorskip("numcodecs")
    from hsicodec.integrations.zarr_codec import HsimCodec

    cube = smooth((16, 16, 8), "int16")
    codec = HsimCodec(max_error=2)
    assert HsimCodec.from_config(codec.get_config()).max_error == 2
    back = codec.decode(codec.encode(cube))
    assert np.abs(np.asarray(back).astype(np.int64).reshape(cube.shape) - cube).max() <= 2
    assert np.array_equal(np.asarray(HsimCodec(max_error=0).decode(HsimCodec(max_error=0).encode(cube))), cube)
    with pytest.raises(OptionError):
        HsimCodec(max_error=1, bpppb=0.1)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("bound", [1, 3])
def test_the_encoder_measures_the_psnr_of_the_decoded_file(dtype, bound):
    """The PSNR the encoder reports (from the remainders' histogram where no value is clipped, else from the
    reconstruction) is metrics.psnr of the decoded file."""
    cube = smooth((9, 11, 5), dtype, seed=bound)
    out, st, _ = roundtrip(cube, max_error=bound)
    assert st["psnr"] == pytest.approx(hsicodec.psnr(cube, out), rel=1e-9)
