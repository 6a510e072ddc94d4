"""Reduced-resolution decoding of the coefficient-map layer (hsicodec.layers.maps.reduced, hsicodec.coding.coarse):
the coarse subbands alone, decoded by C++ and by the reference alike; the estimate they give, against the
full decode it estimates, on real files, legacy vectors and tiled files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

import hsicodec
from hsicodec.codec import tiledecode
from hsicodec.codec.decode import GridParams, own_reduce, reduced_by_layers
from hsicodec.coding.coarse import PROBE_SPACING, coarse_block_means, coarse_mean_operator
from hsicodec.coding.reduce import block_mean, reduced_size
from hsicodec.coding.wavelet import NATIVE_ENV, cdf97_forward, cdf97_inverse, wavelet_levels
from hsicodec.errors import HsimHeaderError
from hsicodec.format.container import HsimReader, decode_hsim, encode_hsim
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import rans, reduced
from hsicodec.layers.maps.postfilter import encode_post
from hsicodec.layers.maps.reduced import reduced_reference

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "spec" / "vectors"
#: a map file's reduced read against the projection of its full decode (uint16): the full decode is rounded
#: pixel by pixel (|e| ≤ 0.5), and the projection's rows sum to at most about 1.7 in absolute value per axis
#: (negative lowpass taps; measured 1.39–1.69 on these sizes), so 0.5 · 1.7² + 0.5 (the read's own rounding)
ROUNDING = 2.0


def smooth_maps(h: int, w: int, k: int, seed: int = 0) -> np.ndarray:
    """(h, w, k) maps with structure at every scale: smooth waves plus noise."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    waves = np.stack([np.sin(rr / (3 + j) + j) * np.cos(cc / (4 + j)) for j in range(k)], -1)
    return 4.0 * waves + rng.normal(0, 0.5, (h, w, k))


def check_estimate(red: np.ndarray, full: np.ndarray, want: np.ndarray, n: int) -> None:
    """A reduce-n read ``red`` is the projection ``want`` of the full decode ``full``: to float rounding for float
    cubes, within :data:`ROUNDING` for integer ones where neither was clipped to the dtype's range (these
    cubes touch 0: a clipped full decode projects to other values)."""
    assert red.shape == want.shape and red.dtype == full.dtype
    if full.dtype.kind == "f":
        np.testing.assert_allclose(red, want, rtol=1e-5, atol=1e-5 * np.abs(full).max())
        return
    info = np.iinfo(full.dtype)
    side = (16 << n) + 1  # wider than the projection's reach
    clipped = maximum_filter((full == info.min) | (full == info.max), size=(side, side, 1))
    far = (block_mean(clipped, n) == 0) & (red > info.min) & (red < info.max)
    assert far.mean() > 0.5
    assert np.abs(red - want)[far].max() <= ROUNDING


def dense_operator(n: int, levels: int, reduce: int) -> np.ndarray:
    """coarse_mean_operator the slow way: every low-band sample synthesised on its own."""
    m = reduced_size(n, levels)
    eye = np.zeros((n, 1, m))
    eye[np.arange(m), 0, np.arange(m)] = 1.0
    return block_mean(cdf97_inverse(eye, levels), reduce)[:, 0, :]


# -- the operator ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 33, 45, 100, 127, 300])
def test_coarse_mean_operator_equals_the_dense_synthesis(n):
    for levels in range(0, 6):
        for reduce in range(levels, levels + 3):
            a = coarse_mean_operator(n, levels, reduce)
            assert a.shape == (reduced_size(n, reduce), reduced_size(n, levels))
            np.testing.assert_allclose(a.toarray(), dense_operator(n, levels, reduce), rtol=0, atol=1e-14)
            np.testing.assert_allclose(a.toarray().sum(axis=1), 1.0, atol=1e-12)  # constants stay
    assert n <= PROBE_SPACING or coarse_mean_operator(n, 2, 2).nnz < 8 * reduced_size(n, 2)  # sparse


def test_coarse_block_means_is_the_block_mean_of_the_zero_detail_synthesis():
    x = np.random.default_rng(1).normal(size=(37, 29, 3))
    for levels, reduce in ((1, 1), (2, 2), (2, 4), (0, 3)):
        c = cdf97_forward(x, levels)
        h, w = reduced_size(37, levels), reduced_size(29, levels)
        z = np.zeros_like(c)
        z[:h, :w] = c[:h, :w]
        got = coarse_block_means(c[:h, :w], 37, 29, levels, reduce)
        np.testing.assert_allclose(got, block_mean(cdf97_inverse(z, levels), reduce), atol=1e-12)
    const = coarse_block_means(np.full((10, 8, 2), 7.25), 37, 29, 2, 4)
    assert const.shape == (3, 2, 2) and np.abs(const - 7.25).max() < 1e-12
    with pytest.raises(ValueError):
        coarse_block_means(np.zeros((9, 8)), 37, 29, 2, 2)  # not the low band of that image
    with pytest.raises(ValueError):
        coarse_mean_operator(37, 3, 2)  # blocks finer than the low band


# -- the coarse subbands ----------------------------------------------------------------------------------


def _stream(k: int, h: int, w: int, coder: int = cm.EC_RANS, count: int | None = None, seed: int = 0):
    levels = cm.map_levels(h, w)
    sym, _, rho = cm.quantize(cm.Transformed.of(smooth_maps(h, w, k, seed), levels), -40, k)
    data, p = cm.encode_symbols(sym, -40, levels, rho, coder=coder)
    if count is not None:
        data = cm.rans_encode(sym, p, h, w, count=count)
    return data, p, sym


@pytest.mark.parametrize("k, h, w", [(1, 9, 7), (3, 33, 30), (5, 40, 24), (4, 1, 19)])
def test_native_stops_where_the_reference_stops(k, h, w):
    levels = cm.map_levels(h, w)
    n_bands = 1 + 3 * levels
    for count in sorted({1, 2 if k > 1 else 1, k}):
        data, p, sym = _stream(k, h, w, count=count, seed=count)
        need = rans.subbands_needed(k, count, n_bands, 1)
        assert need[-1] == 1 and all(a >= b for a, b in zip(need, need[1:]))
        for stop in sorted({1, 4, n_bands}):
            if stop > n_bands:
                continue
            rows, cols = cm._leading_box(h, w, levels, stop)
            ref = cm.rans_decode_reference(data, p, h, w, stop)
            for threads in (1, 3):
                got = cm.rans_decode(data, p, h, w, threads, stop=stop)
                assert got.shape == (k, rows, cols)
                np.testing.assert_array_equal(got, ref[:, :rows, :cols])
                np.testing.assert_array_equal(got, sym[:, :rows, :cols])  # the coarse symbols, exactly


@pytest.mark.parametrize("coder", [cm.EC_RANS, cm.EC_CONSTRICTION])
def test_coarse_symbols_and_low_band_equal_those_of_the_full_decode(coder, monkeypatch):
    k, h, w = 4, 45, 38
    data, p, sym = _stream(k, h, w, coder=coder)
    full = cm.decode_maps(data, p, h, w)
    for level in range(0, p.levels + 1):
        coarse = reduced.decode_coarse_symbols(data, p, h, w, level)
        rows, cols = reduced_size(h, level), reduced_size(w, level)
        np.testing.assert_array_equal(coarse, sym[:, :rows, :cols])
        low = reduced.dequantize_coarse(coarse, p, h, w, level)
        np.testing.assert_allclose(low, cdf97_forward(full, level)[:rows, :cols], rtol=0, atol=1e-9)
        monkeypatch.setenv(NATIVE_ENV, "0")  # the numpy reference: the same low band
        np.testing.assert_allclose(reduced.dequantize_coarse(coarse, p, h, w, level), low, rtol=0, atol=1e-12)
        monkeypatch.delenv(NATIVE_ENV)


def test_decode_maps_reduced_estimates_the_full_maps_and_keeps_constants():
    k, h, w = 3, 45, 38
    data, p, _ = _stream(k, h, w)
    full = cm.decode_maps(data, p, h, w)
    for n in (1, 2, 3, p.levels + 2):
        got = reduced.decode_maps_reduced(data, p, h, w, n)
        assert got.shape == (reduced_size(h, n), reduced_size(w, n), k)
        np.testing.assert_allclose(got, reduced_reference(full, n, p.levels), atol=1e-9)
    const = np.full((h, w, 2), 2.5)
    data, p, dec = cm.encode_maps(const, -40, cm.map_levels(h, w))
    for n in (1, 3, 9):
        got = reduced.decode_maps_reduced(data, p, h, w, n)
        assert np.abs(got - dec.mean()).max() < 1e-9 and np.abs(dec - dec.mean()).max() < 1e-9


def test_without_the_extension_the_reduced_maps_are_the_same(monkeypatch):
    k, h, w = 3, 40, 24
    data, p, _ = _stream(k, h, w, count=3)
    native_result = reduced.decode_maps_reduced(data, p, h, w, 2)
    real = cm._native_function
    monkeypatch.setattr(cm, "_native_function", lambda name: None if name.startswith("map_") else real(name))
    monkeypatch.setenv(NATIVE_ENV, "0")  # and the numpy wavelet
    np.testing.assert_allclose(reduced.decode_maps_reduced(data, p, h, w, 2), native_result, rtol=0, atol=1e-12)


def test_a_damaged_coarse_stream_is_an_error_never_a_crash():
    data, p, _ = _stream(3, 40, 24, count=3)
    with pytest.raises(HsimHeaderError):
        cm.rans_decode(data[:4], p, 40, 24, stop=1)  # its substream index overruns the bytes
    bad = bytearray(data)
    bad[3] ^= 0xFF  # a substream's initial state
    for threads in (1, 2):
        try:
            cm.rans_decode(bytes(bad), p, 40, 24, threads, stop=4)
        except HsimHeaderError:
            pass


# -- whole files ---------------------------------------------------------------------------------------


def _maps_levels(path) -> int:
    return int(hsicodec.file_info(path)["coding"]["layers"]["maps"]["wavelet_levels"])


@pytest.mark.parametrize(
    "name",
    [
        "maps_33x30x66_uint16",
        "maps_substreams_24x20x40_uint16",
        "geo_12x16x50_float32",
        "legacy/maps_v3_33x30x66_uint16",
        "legacy/maps_v4_33x30x66_uint16",
        "legacy/maps_v7_33x30x66_uint16",
        "legacy/maps_v8_33x30x66_uint16",
    ],
)
def test_map_vectors_reduce_to_the_projection_of_their_full_decode(name):
    path = VECTORS / f"{name}.hsim"
    full, _ = hsicodec.decompress(path)
    levels = _maps_levels(path)
    for n in (1, 2, 3):
        red, _ = hsicodec.decompress(path, reduce=n)
        assert red.dtype == full.dtype and red.shape == (
            reduced_size(full.shape[0], n),
            reduced_size(full.shape[1], n),
            full.shape[2],
        )
        check_estimate(red, full, reduced_reference(full, n, levels), n)


def test_a_tiled_vector_reduces_tile_by_tile():
    path = VECTORS / "tiled_40x36x50_uint16.hsim"  # 24 × 24 tiles: partial tiles of 16 and 12 at the edges
    full, _ = hsicodec.decompress(path)
    with HsimReader(path) as r:
        assert reduced_by_layers(HsimReader(r.section("t0")).header)
    for n in (1, 2, 3):
        red, _ = hsicodec.decompress(path, reduce=n)
        f = 1 << n
        for r0 in (0, 24):
            for c0 in (0, 24):
                tile = full[r0 : r0 + 24, c0 : c0 + 24]
                want = reduced_reference(tile, n, wavelet_levels(tile.shape[0], tile.shape[1], cm.DEFAULT_LEVELS))
                got = red[r0 // f : r0 // f + want.shape[0], c0 // f : c0 // f + want.shape[1]]
                check_estimate(got, tile, want, n)


def test_a_tiled_reduce_decodes_each_tile_once_in_reduced_strips(tmp_path, monkeypatch):
    cube = (smooth_maps(40, 36, 1)[..., 0:1] * 50 + 3000 + np.arange(12) * 10).astype(np.uint16)
    np.save(tmp_path / "c.npy", cube)
    hsicodec.compress_file(tmp_path / "c.npy", tmp_path / "c.hsim", tile=16, bpppb=1.0, effort="fast", layer="maps")
    calls = []
    real = reduced.decode_maps_reduced

    def spy(*args, **kwargs):
        calls.append(args[1:4])
        return real(*args, **kwargs)

    from hsicodec.layers.maps import layer as maps_layer

    monkeypatch.setattr(maps_layer, "decode_maps_reduced", spy)
    monkeypatch.setattr(tiledecode, "STRIP_VALUES", 16 * 12)  # one full-resolution row of a tile per strip
    red, _ = hsicodec.decompress(tmp_path / "c.hsim", reduce=2)
    assert red.shape == (10, 9, 12) and len(calls) == 9  # one call a tile: strips of whole reduced rows
    monkeypatch.undo()
    np.testing.assert_array_equal(red, hsicodec.decompress(tmp_path / "c.hsim", reduce=2)[0])


def test_files_of_other_or_mixed_layers_keep_block_means():
    assert own_reduce(GridParams({}, 1.0, {}, {"maps": None}))
    assert not own_reduce(GridParams({}, 1.0, {}, {"network": None, "maps": None}))  # never a mix of the two
    assert not own_reduce(GridParams({}, 1.0, None, {"predictive": None}))
    path = VECTORS / "lossless_37x20x25_uint16.hsim"  # the predictive layer (network files: tests/test_reduce.py)
    full, _ = hsicodec.decompress(path)
    red, _ = hsicodec.decompress(path, reduce=2)
    assert np.abs(red - block_mean(full, 2)).max() <= 0.5  # exact values: their means, rounded


def test_post_filtered_files_reduce_without_their_filter():
    rng = np.random.default_rng(3)
    cube = (smooth_maps(48, 40, 3) @ rng.uniform(0.5, 1.5, (3, 30)) * 80 + 4000).astype(np.uint16)
    plain = hsicodec.compress(cube, bpppb=0.3, layer="maps")
    f = decode_hsim(plain)
    header = dict(f.header)
    header["codec"] = dict(header["codec"], pf=encode_post(np.array([[3, -2, 1, 0, 1], [2, 0, 0, -1, 0]]), None, 6))
    filtered = encode_hsim(header, list(f.sections.items()))
    full_plain, full_filtered = hsicodec.decompress(plain)[0], hsicodec.decompress(filtered)[0]
    assert np.abs(full_filtered.astype(float) - full_plain).max() > 5  # the filter changes the full decode
    for n in (1, 2):
        red = hsicodec.decompress(filtered, reduce=n)[0]
        np.testing.assert_array_equal(red, hsicodec.decompress(plain, reduce=n)[0])  # not applied when reduced
        check_estimate(red, full_plain, reduced_reference(full_plain, n, cm.map_levels(48, 40)), n)


@pytest.mark.parametrize("n, levels, reduce", [(1500, 2, 2), (2051, 1, 3), (1200, 0, 2)])
def test_a_wide_band_matrix_applies_by_its_band_as_its_dense_product(n, levels, reduce):
    """Above DENSE_COLS columns the operator applies band column by band column: the dense product's values."""
    from hsicodec.coding.coarse import DENSE_COLS

    op = coarse_mean_operator(n, levels, reduce)
    assert op.shape[1] > DENSE_COLS
    x = np.random.default_rng(n).normal(size=(op.shape[1], 5, 3))
    np.testing.assert_allclose(op @ x, np.einsum("ij,jkl->ikl", op.toarray(), x), rtol=0, atol=1e-12)
