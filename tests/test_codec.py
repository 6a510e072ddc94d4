"""End-to-end codec behaviour with the bundled default model."""

import os
import subprocess
import sys

import numpy as np
import pytest

import hsicodec
from hsicodec import metrics
from hsicodec.data import sample_path
from hsicodec.errors import HsimError, ModelNotFoundError, OptionError


@pytest.fixture(scope="module")
def sample():
    return np.load(sample_path())


@pytest.fixture(scope="module")
def small(sample):
    return np.ascontiguousarray(sample[:24, :20])


@pytest.fixture(scope="module")
def encoded(small):
    return hsicodec.compress(small, bpppb=0.2, effort="fast")


def test_round_trip_keeps_shape_dtype_and_quality(small, encoded):
    out, geo = hsicodec.decompress(encoded)
    assert out.shape == small.shape and out.dtype == small.dtype
    assert metrics.psnr(small, out) > 25
    assert geo.is_empty()


@pytest.mark.parametrize("target", [0.05, 0.1])
def test_bpppb_lands_at_or_under_target_and_within_10_percent(sample, target):
    st = {}
    data = hsicodec.compress(sample, bpppb=target, effort="fast", stats=st)
    rate = metrics.bpppb(len(data), sample.shape)
    assert rate <= target
    assert rate >= 0.9 * target


def test_higher_rate_gives_higher_psnr(sample):
    lo = hsicodec.decompress(hsicodec.compress(sample, bpppb=0.02, effort="fast"))[0]
    hi = hsicodec.decompress(hsicodec.compress(sample, bpppb=0.2, effort="fast"))[0]
    assert metrics.psnr(sample, hi) > metrics.psnr(sample, lo)


def test_psnr_target_is_reached(small):
    st = {}
    data = hsicodec.compress(small, psnr=28.0, effort="fast", stats=st)
    out, _ = hsicodec.decompress(data)
    assert metrics.psnr(small, out) >= 28.0


def test_unreachable_psnr_is_a_clear_error(small):
    with pytest.raises(OptionError, match="psnr"):
        hsicodec.compress(small, psnr=150.0, effort="fast", layer="maps")  # (lossless reaches any PSNR)


def test_window_and_bands_equal_crop_of_full_decode(small, encoded):
    full, _ = hsicodec.decompress(encoded)
    part, _ = hsicodec.decompress(encoded, window=(3, 5, 10, 7), bands=(20, 60))
    assert np.array_equal(part, full[3:13, 5:12, 20:60])


@pytest.mark.parametrize("window", [(0, 0, 0, 5), (20, 0, 10, 5), (-1, 0, 2, 2), (0, 0, 5)])
def test_bad_window_refused(encoded, window):
    with pytest.raises(OptionError):
        hsicodec.decompress(encoded, window=window)


@pytest.mark.parametrize("bands", [(5, 5), (0, 999), (3,)])
def test_bad_bands_refused(encoded, bands):
    with pytest.raises(OptionError):
        hsicodec.decompress(encoded, bands=bands)


def test_native_and_numpy_decode_agree(small, encoded):
    from hsicodec.layers.network.siren import native_available

    if not native_available():
        pytest.skip("native extension not built")
    a, _ = hsicodec.decompress(encoded, backend="native")
    b, _ = hsicodec.decompress(encoded, backend="numpy")
    assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 1


def test_decode_is_identical_across_thread_counts(encoded):
    a, _ = hsicodec.decompress(encoded, threads=1)
    b, _ = hsicodec.decompress(encoded, threads=2)
    assert np.array_equal(a, b)


def test_encode_is_deterministic(small):
    assert hsicodec.compress(small, bpppb=0.1, effort="fast") == hsicodec.compress(small, bpppb=0.1, effort="fast")


def test_torch_and_native_fits_agree(small):
    pytest.importorskip("torch")
    from hsicodec.codec.analysis import analyse
    from hsicodec.codec.api import load_codec_model
    from hsicodec.layers.network.fit import fit_latents

    cm = load_codec_model()
    an = analyse(small, cm)
    a = fit_latents(cm, an.targets, 3)
    b = fit_latents(cm, an.targets, 3, backend="torch")
    for x, y in zip(a, b):
        assert np.abs(x - y).max() <= 1e-3 * max(1.0, float(np.abs(y).max()))


@pytest.mark.parametrize(
    "shape,dtype", [((5, 7, 1), np.uint8), ((1, 1, 12), np.int16), ((9, 11, 4), np.float32), ((17, 3, 30), np.uint16)]
)
def test_edge_shapes_and_dtypes_round_trip(shape, dtype):
    rng = np.random.default_rng(0)
    cube = (rng.random(shape) * 100).astype(dtype)
    out, _ = hsicodec.decompress(hsicodec.compress(cube, bpppb=300.0, effort="fast"))  # tiny cubes: header-bound
    assert out.shape == cube.shape and out.dtype == cube.dtype


def test_constant_cube_is_exact():
    cube = np.full((6, 5, 8), 321, np.uint16)
    out, _ = hsicodec.decompress(hsicodec.compress(cube, bpppb=100.0))
    assert np.array_equal(out, cube)


def test_nan_and_inf_are_kept_as_an_exact_mask(small):
    cube = small[:16, :16, :40].astype(np.float32)
    cube[2, 3, :] = np.nan
    cube[5, 5, 7] = np.inf
    cube[6, 1, 0] = -np.inf
    out, _ = hsicodec.decompress(hsicodec.compress(cube, bpppb=1.0, effort="fast"))
    bad = ~np.isfinite(cube)
    assert np.array_equal(np.isnan(out), bad)  # every invalid value comes back as NaN, no other does
    assert metrics.psnr(cube[~bad], out[~bad]) > 25


def test_nodata_mask_round_trips_exactly_in_a_window(small):
    cube = small[:20, :20, :30].copy()
    cube[:4, :, :] = 0  # a nodata stripe
    cube[10, 10, 5] = 0
    data = hsicodec.compress(cube, bpppb=1.0, effort="fast", nodata=0)
    out, _ = hsicodec.decompress(data)
    assert np.array_equal(out == 0, cube == 0)
    part, _ = hsicodec.decompress(data, window=(2, 5, 10, 8), bands=(3, 9))
    assert np.array_equal(part == 0, cube[2:12, 5:13, 3:9] == 0)


def test_all_invalid_cube_refused():
    with pytest.raises(OptionError, match="nodata"):
        hsicodec.compress(np.full((4, 4, 3), np.nan, np.float32))


def test_corrupt_mask_stream_is_an_error():
    from hsicodec.codec.mask import decode_mask, encode_mask

    m = np.zeros((5, 6, 7), bool)
    m[1, 2, 3] = True
    assert np.array_equal(decode_mask(encode_mask(m), m.shape), m)
    with pytest.raises(HsimError):
        decode_mask(encode_mask(m)[:-3], m.shape)
    with pytest.raises(HsimError):
        decode_mask(encode_mask(np.zeros((50, 60, 70), bool)), m.shape)


def test_corrupted_file_is_an_error_not_wrong_pixels(encoded):
    bad = bytearray(encoded)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(HsimError):
        hsicodec.decompress(bytes(bad))


def test_missing_model_names_the_hash(small, tmp_path, monkeypatch):
    from hsicodec.models.registry import Registry, clear_model_cache

    encoded = hsicodec.compress(small, bpppb=0.2, effort="fast", layer="network")
    clear_model_cache()  # loaded models are cached by their (verified) hash
    empty = Registry([("path", tmp_path)])
    with pytest.raises(ModelNotFoundError) as err:
        hsicodec.decompress(encoded, registry=empty)
    assert hsicodec.HsimReader(encoded).header["model"] in str(err.value)


def test_map_layer_files_need_no_model(small, tmp_path):
    """A file without network latents names no model and decodes with an empty registry."""
    from hsicodec.models.registry import Registry, clear_model_cache

    data = hsicodec.compress(small, bpppb=0.2, layer="maps")
    assert "model" not in hsicodec.HsimReader(data).header
    clear_model_cache()
    out, _ = hsicodec.decompress(data, registry=Registry([("path", tmp_path)]))
    assert metrics.psnr(small, out) > 25


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.__setitem__("k", 2),
        lambda c: c.__setitem__("q", 3),
        lambda c: (c.pop("rl"), c.__setitem__("sp", {"m": "id", "off": 0.0})),
    ],
)
def test_a_file_without_model_may_not_use_network_keys(small, edit):
    data = hsicodec.compress(small, bpppb=0.2, layer="maps")
    with pytest.raises(HsimError, match="'model' is missing"):
        hsicodec.decompress(_reheader(data, edit))


def test_compact_map_files_are_one_section_and_refuse_bad_splits_and_network_keys(small):
    """Grid v5: sp and rl as arrays, both streams in section "c"; a spectral length past the section, or
    network latents next to the compact form, are clear errors."""
    from hsicodec.codec.api import load_codec_model
    from hsicodec.codec.decode import parse_codec
    from hsicodec.format.container import decode_hsim

    data = hsicodec.compress(small, bpppb=0.2, layer="maps")
    h = decode_hsim(data)
    assert [n for n, *_ in h.header["sections"]] == ["c"] and isinstance(h.header["codec"]["rl"], list)
    with pytest.raises(HsimError, match="does not fit section 'c'"):
        hsicodec.decompress(_reheader(data, lambda c: c["sp"].__setitem__(3, len(h.sections["c"]) + 1)))
    header = {**h.header, "codec": {**h.header["codec"], "k": 1}}
    with pytest.raises(HsimError, match="compact form"):
        parse_codec(header, load_codec_model("hsi-grid-v1", None))


# prepended to subprocess code: any import of torch fails
BLOCK_TORCH = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is blocked in this test')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_decoding_works_without_torch(tmp_path, encoded):
    path = tmp_path / "x.hsim"
    path.write_bytes(encoded)
    code = BLOCK_TORCH + (
        "import hsicodec\n"
        f"cube, geo = hsicodec.decompress({str(path)!r})\n"
        "assert 'torch' not in sys.modules\n"
        "print(cube.shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr
    out = tmp_path / "y.npy"
    code2 = code.replace(
        f"cube, geo = hsicodec.decompress({str(path)!r})\n",
        f"from hsicodec.cli.main import main\nsys.argv=['hsicodec','decompress',{str(path)!r},{str(out)!r},'-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "cube = None\n",
    ).replace("print(cube.shape)\n", "")
    r = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape == (24, 20, 198)


def test_encoding_works_without_torch(tmp_path):
    code = BLOCK_TORCH + (
        "import numpy as np, hsicodec\n"
        "from hsicodec.data import sample_path\n"
        "cube = np.load(sample_path())[:16, :16]\n"
        "data = hsicodec.compress(cube, bpppb=0.2, effort='default')\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_single_byte_change_of_a_small_file_is_detected():
    data = hsicodec.compress(np.full((3, 4, 5), 77, np.uint16), bpppb=200.0)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(HsimError):
            hsicodec.decompress(bytes(bad))


def test_rate_gradient_matches_finite_differences():
    from hsicodec.layers.network.fit import _laplace_bits_grad

    def bits(v, b):
        cdf = lambda x: np.where(x < 0, 0.5 * np.exp(x / b), 1 - 0.5 * np.exp(-x / b))  # noqa: E731
        return -np.log2(cdf(v + 0.5) - cdf(v - 0.5))

    v = np.array([-3.2, -0.7, -0.3, 0.0, 0.2, 0.45, 0.8, 2.5])
    b = np.full_like(v, 0.8)
    h = 1e-6
    fd = (bits(v + h, b) - bits(v - h, b)) / (2 * h)
    assert np.allclose(_laplace_bits_grad(v, b), fd, atol=1e-4)


@pytest.mark.parametrize("seed", ["grid_9x6x12_f32_nan", "plain_4x4x3_f32_nan", "grid_7x5x6_geo"])
def test_every_byte_change_and_truncation_is_detected_latents_and_mask(seed):
    """Files with latent, spectral and mask sections and geo, both models: any changed byte
    (three patterns) and any truncation is an HsimError, never wrong pixels."""
    from pathlib import Path

    data = (Path(__file__).resolve().parent / "fuzz" / "seeds" / "hsim" / f"{seed}.hsim").read_bytes()
    hsicodec.decompress(data)  # valid as is
    for i in range(len(data)):
        for bad_byte in (data[i] ^ 0x01, data[i] ^ 0x80, 0xFF if data[i] != 0xFF else 0x00):
            bad = bytearray(data)
            bad[i] = bad_byte
            with pytest.raises(HsimError):
                hsicodec.decompress(bytes(bad))
    for n in range(len(data)):
        with pytest.raises(HsimError):
            hsicodec.decompress(data[:n])
    with pytest.raises(HsimError):
        hsicodec.decompress(data + b"\0")


def _reheader(data: bytes, edit) -> bytes:
    """The same file with its codec map changed by ``edit`` (checksums resealed)."""
    from hsicodec.format.container import decode_hsim, encode_hsim

    f = decode_hsim(data)
    header = {k: v for k, v in f.header.items() if k != "sections"}
    header["codec"] = dict(header["codec"])
    edit(header["codec"])
    return encode_hsim(header, list(f.sections.items()))


def test_latents_are_coded_as_rotated_haar_coefficients(sample):
    from hsicodec.codec.api import load_codec_model
    from hsicodec.codec.encode import encode
    from hsicodec.format.container import decode_hsim

    cube = np.ascontiguousarray(sample[:48, :40])
    model = load_codec_model("hsi-grid-v1")
    header = {"shape": list(cube.shape), "dtype": str(cube.dtype), "model": model.sha256}
    data, _ = encode(cube, model, bpppb=0.1, base_header=header, latent_codings=("haar+klt",))
    codec = decode_hsim(data).header["codec"]
    assert codec["wt"] >= 1 and isinstance(codec["ct"], bytes) and "rl" not in codec
    rec, _ = hsicodec.decompress(data)
    assert metrics.psnr(cube, rec) > 25


def test_unknown_codec_key_is_refused_not_guessed(encoded):
    bad = _reheader(encoded, lambda c: c.__setitem__("zz", 1))
    with pytest.raises(HsimError, match="unknown key"):
        hsicodec.decompress(bad)


@pytest.mark.parametrize("key,value", [("wt", -1), ("wt", 99), ("wt", "3"), ("ct", b"\x00"), ("ct", 5)])
def test_bad_wavelet_or_rotation_keys_are_header_errors(sample, key, value):
    data = hsicodec.compress(np.ascontiguousarray(sample[:32, :32]), bpppb=0.2, model="hsi-grid-v1", layer="network")
    with pytest.raises(HsimError, match=f"codec.{key}|codec.ls"):
        hsicodec.decompress(_reheader(data, lambda c: c.__setitem__(key, value)))


@pytest.mark.parametrize("names", [("plain",), ("haar",), ("haar+klt",)])
def test_each_latent_coding_round_trips(sample, names):
    from hsicodec.codec.api import load_codec_model
    from hsicodec.codec.encode import encode
    from hsicodec.format.container import decode_hsim

    cube = np.ascontiguousarray(sample[:40, :36])
    cm = load_codec_model("hsi-grid-v1")
    header = {"shape": list(cube.shape), "dtype": cube.dtype.name, "model": cm.sha256}
    data, st = encode(cube, cm, bpppb=0.1, base_header=header, latent_codings=names)
    codec = decode_hsim(data).header["codec"]
    assert ("wt" in codec) == (names != ("plain",)) and ("ct" in codec) == (names == ("haar+klt",))
    rec, _ = hsicodec.decompress(data)
    assert abs(metrics.psnr(cube, rec) - st["psnr"]) < 0.5  # the encoder measures before the uint16 cast


def test_unknown_latent_coding_refused(small):
    from hsicodec.codec.api import load_codec_model
    from hsicodec.codec.encode import encode

    cm = load_codec_model("hsi-grid-v1")
    with pytest.raises(OptionError, match="latent codings"):
        encode(
            small,
            cm,
            bpppb=0.1,
            base_header={"shape": list(small.shape), "dtype": small.dtype.name, "model": cm.sha256},
            latent_codings=("jpeg",),
        )


def test_map_layer_files_decode_torch_free_and_by_window(sample):
    """The coefficient-map layer (no network latents): rate control, window decode = crop of the full decode."""
    from hsicodec.format.container import decode_hsim

    cube = np.ascontiguousarray(sample[:40, :36])
    data = hsicodec.compress(cube, bpppb=0.2, model="hsi-grid-v1")
    codec = decode_hsim(data).header["codec"]
    assert (
        codec.get("k", 0) == 0
        and codec["rl"][0] >= 1
        and "l" not in dict((n, 0) for n, *_ in decode_hsim(data).header["sections"])
    )
    assert 0.9 * 0.2 <= 8 * len(data) / cube.size <= 0.2
    full, _ = hsicodec.decompress(data)
    win, _ = hsicodec.decompress(data, window=(5, 7, 20, 11), bands=(3, 40))
    np.testing.assert_array_equal(win, full[5:25, 7:18, 3:40])
    assert metrics.psnr(cube, full) > 30


def test_map_layer_reaches_a_psnr_target(sample):
    cube = np.ascontiguousarray(sample[:32, :32])
    for target in (30.0, 40.0):
        rec, _ = hsicodec.decompress(hsicodec.compress(cube, psnr=target, model="hsi-grid-v1"))
        assert metrics.psnr(cube, rec) >= target


def test_encoder_keeps_the_better_layer(sample):
    """Restricting the encoder to the network's latents never gives a better file than letting it choose."""
    from hsicodec.codec.api import load_codec_model
    from hsicodec.codec.encode import encode

    cube = np.ascontiguousarray(sample[:48, :48])
    model = load_codec_model("hsi-grid-v1")
    header = {"shape": list(cube.shape), "dtype": str(cube.dtype), "model": model.sha256}
    _, grid = encode(cube, model, bpppb=0.05, base_header=header, latent_codings=("haar+klt",))
    _, maps = encode(cube, model, bpppb=0.05, base_header=header, latent_codings=("maps",))
    _, both = encode(cube, model, bpppb=0.05, base_header=header)
    assert both["psnr"] == max(grid["psnr"], maps["psnr"])
    assert grid["layer"] == "network" and maps["layer"] == "maps"
